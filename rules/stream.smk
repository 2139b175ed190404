# Streaming shards with bounded disk (clipsift/streaming.py): per-shard metadata, a per-shard
# upload to the Hub, and the release of what a shard downloaded and extracted once every rule
# that reads its videos is done. The ingest of a shard waits for the release of the shard
# `streaming.window` places earlier (rules/common.smk, ingest_input).
STREAM = config["streaming"]


rule shard_metadata:
    input:
        unpack(shard_tables),
    output:
        jsonl=shard_path("metadata.jsonl"),
        parquet=shard_path("metadata.parquet"),
    log:
        f"{R}/logs/shard_metadata/{{shard}}.log",
    conda:
        "../envs/clipsift.yaml"
    params:
        export={k: EXPORT[k] for k in ("dedupe_across_shards", "clips")},
    script:
        "../scripts/stream.py"


rule upload_shard:
    input:
        metadata=shard_path("metadata.jsonl"),
        clips=f"{R}/dataset/clips/{{shard}}.parquet",
    output:
        shard_path("upload.json"),
    log:
        f"{R}/logs/upload_shard/{{shard}}.log",
    localrule: True  # where snakemake runs: the network compute nodes often lack
    conda:
        "../envs/clipsift.yaml"
    params:
        publish=config["publish"],
    script:
        "../scripts/stream.py"


rule release_shard:
    input:
        unpack(release_inputs),
    output:
        shard_path("released.json"),
    log:
        f"{R}/logs/release_shard/{{shard}}.log",
    localrule: True
    conda:
        "../envs/clipsift.yaml"
    params:
        source=source_of,
        downloads=STREAM["delete_downloads"],
    script:
        "../scripts/stream.py"
