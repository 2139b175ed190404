"""Snakemake entry point: one decode pass per video -> scenes, luma, samples, OCR on a time grid."""

import pandas as pd

from clipsift.ingest import localize, usable
from clipsift.io.atomic import write_parquet
from clipsift.smk import results_dir, rule_logging
from clipsift.split.scan import as_float32, scan_shard

with rule_logging(snakemake) as log:  # noqa: F821
    sm = snakemake  # noqa: F821
    source = localize(
        pd.read_parquet(sm.input.source), sm.params.source, results_dir(sm), sm.wildcards.shard
    )
    scenes, frames, samples, texts = scan_shard(usable(source), sm.params.scan, sm.params.ocr)
    write_parquet(sm.output.scenes, scenes)
    write_parquet(sm.output.frames, as_float32(frames))
    write_parquet(sm.output.samples, as_float32(samples))
    write_parquet(sm.output.ocr, texts)
