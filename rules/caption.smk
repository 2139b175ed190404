# Captions for the kept clips of a shard: a local VLM (GPU) or an API (network). Captions made so
# far are kept in {results}/cache/captions/{shard}.jsonl, outside the outputs, so a rerun only
# captions what is new (see clipsift/captioners/cache.py).
from clipsift.captioners import gpus_needed


rule caption:
    input:
        clips=shard_path("clips.parquet"),
        source=shard_path("source.parquet"),
        selection=shard_path("selection.parquet"),
        # each frame's time: variable-rate clips are sampled by time
        frames=shard_path("scan/frames.parquet"),
    output:
        shard_path("caption.json"),
    log:
        f"{R}/logs/caption/{{shard}}.log",
    conda:
        "../envs/clipsift.yaml"
    threads: 2
    resources:
        gpu=gpus_needed(config.get("caption", {})),
    params:
        caption=config.get("caption", {}),
        source=fetched_source,
    script:
        "../scripts/caption.py"
