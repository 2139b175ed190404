rule export:
    input:
        sources=all_shards("source.parquet"),
        clips=all_shards("clips.parquet"),
    output:
        parquet=f"{R}/dataset/metadata.parquet",
        jsonl=f"{R}/dataset/metadata.jsonl",
    params:
        export=config["export"],
    log:
        f"{R}/logs/export.log",
    script:
        "../scripts/export.py"
