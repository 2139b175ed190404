# One decode pass per video (scan), then scenes -> clips (split). Split parameters live only in
# the split rule, so changing a clip bound never decodes again. OCR on a time grid runs in the
# scan by default (filters.ocr.frames: scan), so its options are scan params too.
rule scan:
    input:
        source=shard_path("source.parquet"),
    output:
        scenes=shard_path("scan/scenes.parquet"),
        frames=shard_path("scan/frames.parquet"),
        samples=shard_path("scan/samples.parquet"),
        ocr=shard_path("scan/ocr.parquet"),
    log:
        f"{R}/logs/scan/{{shard}}.log",
    conda:
        "../envs/clipsift.yaml"
    resources:
        # OCR in the scan pass (filters.ocr.gpu) or a model detector (TransNetV2) may use it
        gpu=scan_gpus(),
    params:
        scan=config["scan"],
        ocr=scan_ocr(),
        source=fetched_source,
    script:
        "../scripts/scan.py"


rule split:
    input:
        source=shard_path("source.parquet"),
        scenes=shard_path("scan/scenes.parquet"),
        frames=shard_path("scan/frames.parquet"),
    output:
        clips=shard_path("clips.parquet"),
        dir=directory(shard_path("clips")),
    log:
        f"{R}/logs/split/{{shard}}.log",
    conda:
        "../envs/clipsift.yaml"
    params:
        split=config["split"],
        source=fetched_source,
    script:
        "../scripts/split.py"
