"""Snakemake entry point: one decode pass per video -> scenes, luma, samples, OCR on a time grid."""

import pandas as pd

from clipsift.ingest import localize, usable
from clipsift.io.atomic import write_parquet
from clipsift.smk import results_dir, rule_logging
from clipsift.split import DETECTORS, detector_device
from clipsift.split.scan import as_float32, scan_shard

with rule_logging(snakemake) as log:  # noqa: F821
    sm = snakemake  # noqa: F821
    source = localize(
        pd.read_parquet(sm.input.source), sm.params.source, results_dir(sm), sm.wildcards.shard
    )
    scan = sm.params.scan
    if DETECTORS.entry(scan["detector"]).device == "gpu":  # a model: its device, locked here
        from clipsift.models.device import resolve_device

        device = resolve_device(detector_device(scan), lock_dir=results_dir(sm) / ".gpu_locks")
        scan = {**scan, scan["detector"]: {**scan[scan["detector"]], "device": device}}
        log.info("scene detector %s on %s", scan["detector"], device)
    scenes, frames, samples, texts = scan_shard(
        usable(source), scan, sm.params.ocr, results=results_dir(sm)
    )
    write_parquet(sm.output.scenes, scenes)
    write_parquet(sm.output.frames, as_float32(frames))
    write_parquet(sm.output.samples, as_float32(samples))
    write_parquet(sm.output.ocr, texts)
