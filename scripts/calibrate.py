"""Snakemake entry point: stored scores of every shard -> results/report/calibration/."""

import pandas as pd

from clipsift.calibration import write_report
from clipsift.selection import clip_table, load_json
from clipsift.smk import rule_logging

with rule_logging(snakemake) as log:  # noqa: F821
    sm = snakemake  # noqa: F821
    n = len(sm.input.clips)
    flash = list(sm.input.flash) or [None] * n
    ocr = list(sm.input.ocr) or [None] * n
    tables = [
        clip_table(
            pd.read_parquet(c),
            pd.read_parquet(s),
            load_json(f) if f else {},
            load_json(o) if o else {},
        )
        for c, s, f, o in zip(sm.input.clips, sm.input.scores, flash, ocr, strict=True)
    ]
    table = pd.concat(tables, ignore_index=True)
    write_report(table, sm.params.select, sm.params.quantiles, sm.output[0])
    log.info("calibration over %d clips", len(table))
