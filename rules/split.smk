# One decode pass per video (scan), then scenes -> clips (split). Split parameters live only in
# the split rule, so changing a clip bound never decodes again.
rule scan:
    input:
        source=shard_path("source.parquet"),
    output:
        scenes=shard_path("scan/scenes.parquet"),
        frames=shard_path("scan/frames.parquet"),
        samples=shard_path("scan/samples.parquet"),
    log:
        f"{R}/logs/scan/{{shard}}.log",
    conda:
        "../envs/clipsift.yaml"
    params:
        scan=config["scan"],
        source=source_of,
    script:
        "../scripts/scan.py"


rule split:
    input:
        source=shard_path("source.parquet"),
        scenes=shard_path("scan/scenes.parquet"),
    output:
        clips=shard_path("clips.parquet"),
        dir=directory(shard_path("clips")),
    log:
        f"{R}/logs/split/{{shard}}.log",
    conda:
        "../envs/clipsift.yaml"
    params:
        split=config["split"],
        source=source_of,
    script:
        "../scripts/split.py"
