rule export:
    input:
        sources=all_shards("source.parquet"),
        clips=all_shards("clips.parquet"),
        selection=all_shards("selection.parquet"),
        scores=all_shards("scores.parquet"),
        flash=all_filter_outputs("flash"),
        ocr=all_filter_outputs("ocr"),
    output:
        parquet=f"{R}/dataset/metadata.parquet",
        jsonl=f"{R}/dataset/metadata.jsonl",
    params:
        export=config["export"],
    log:
        f"{R}/logs/export.log",
    script:
        "../scripts/export.py"
