"""Snakemake entry point: scores/{scorer}.parquet files -> scores.parquet."""

from pathlib import Path

from clipsift.io.atomic import write_parquet
from clipsift.scorers import merge_scores
from clipsift.smk import rule_logging

with rule_logging(snakemake) as log:  # noqa: F821
    sm = snakemake  # noqa: F821
    merged = merge_scores({Path(p).stem: p for p in sm.input})
    log.info("%d clips, %d columns", len(merged), merged.shape[1])
    write_parquet(sm.output[0], merged)
