"""Snakemake entry point: stored scores of every shard -> results/report/calibration/."""

import pandas as pd

from clipsift.calibration import write_report
from clipsift.selection import clip_table, filter_records
from clipsift.smk import rule_logging

with rule_logging(snakemake) as log:  # noqa: F821
    sm = snakemake  # noqa: F821
    records = filter_records(sm.input, len(sm.input.clips))
    tables = [
        clip_table(pd.read_parquet(c), pd.read_parquet(s), r)
        for c, s, r in zip(sm.input.clips, sm.input.scores, records, strict=True)
    ]
    table = pd.concat(tables, ignore_index=True)
    write_report(table, sm.params.select, sm.params.quantiles, sm.output[0])
    log.info("calibration over %d clips", len(table))
