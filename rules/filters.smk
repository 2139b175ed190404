# Flash and OCR filters: measurements only (verdicts are made by select from its thresholds).
rule flash:
    input:
        clips=shard_path("clips.parquet"),
        frames=shard_path("scan/frames.parquet"),
    output:
        shard_path("flash.json"),
    params:
        flash=config["filters"]["flash"],
    log:
        f"{R}/logs/flash/{{shard}}.log",
    script:
        "../scripts/flash.py"


rule ocr:
    input:
        clips=shard_path("clips.parquet"),
        source=shard_path("source.parquet"),
    output:
        shard_path("ocr.json"),
    params:
        ocr=config["filters"]["ocr"],
        source=source_of,
        results=R,
    resources:
        gpu=1 if config["filters"]["ocr"]["gpu"] else 0,
    log:
        f"{R}/logs/ocr/{{shard}}.log",
    script:
        "../scripts/ocr.py"
