# Flash and OCR filters: measurements only (verdicts are made by select from its thresholds).
rule flash:
    input:
        clips=shard_path("clips.parquet"),
        frames=shard_path("scan/frames.parquet"),
    output:
        shard_path("flash.json"),
    log:
        f"{R}/logs/flash/{{shard}}.log",
    conda:
        "../envs/clipsift.yaml"
    params:
        flash=config["filters"]["flash"],
    script:
        "../scripts/flash.py"


rule ocr:
    input:
        clips=shard_path("clips.parquet"),
        source=shard_path("source.parquet"),
    output:
        shard_path("ocr.json"),
    log:
        f"{R}/logs/ocr/{{shard}}.log",
    conda:
        "../envs/clipsift.yaml"
    resources:
        gpu=1 if config["filters"]["ocr"]["gpu"] else 0,
    params:
        ocr=config["filters"]["ocr"],
        source=source_of,
    script:
        "../scripts/ocr.py"
