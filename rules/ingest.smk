rule ingest:
    input:
        unpack(ingest_input),
    output:
        shard_path("source.parquet"),
    log:
        f"{R}/logs/ingest/{{shard}}.log",
    conda:
        "../envs/clipsift.yaml"
    params:
        source=fetched_source,
        hash=config["ingest"]["hash"],
    script:
        "../scripts/ingest.py"
