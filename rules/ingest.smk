rule ingest:
    input:
        plan=f"{R}/plan/shards/{{shard}}.parquet",
    output:
        shard_path("source.parquet"),
    params:
        source=source_of,
        hash=config["ingest"]["hash"],
        results=R,
    log:
        f"{R}/logs/ingest/{{shard}}.log",
    script:
        "../scripts/ingest.py"
