# Flash and OCR filters: measurements only (verdicts are made by select from its thresholds).
rule flash:
    input:
        clips=shard_path("clips.parquet"),
        frames=shard_path("scan/frames.parquet"),
        samples=shard_path("scan/samples.parquet"),
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
        unpack(ocr_inputs),
    output:
        shard_path("ocr.json"),
    log:
        f"{R}/logs/ocr/{{shard}}.log",
    conda:
        "../envs/clipsift.yaml"
    resources:
        # only the seek modes read frames here; in scan mode this job just aggregates
        gpu=1 if config["filters"]["ocr"]["gpu"] and not scan_ocr() else 0,
    params:
        ocr=config["filters"]["ocr"],
        source=fetched_source,
    script:
        "../scripts/ocr.py"
