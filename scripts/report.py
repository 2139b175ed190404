"""Snakemake entry point of rule report: metadata + provenance -> results/report/index.html and
results/report/figures/ (funnel, histograms, contact sheets)."""

import json
from pathlib import Path

import pandas as pd

from clipsift.io.atomic import atomic_dir
from clipsift.report import write_report
from clipsift.smk import rule_logging

with rule_logging(snakemake) as log:  # noqa: F821
    sm = snakemake  # noqa: F821
    meta = pd.read_parquet(sm.input.metadata)
    prov = json.loads(Path(sm.input.provenance).read_text())
    with atomic_dir(sm.output.figures) as tmp:
        figs = write_report(
            meta, prov, sm.output.html, tmp, cfg=sm.params.report,
            dataset_dir=Path(sm.input.metadata).parent, logs=Path(sm.log[0]).parent,
            fig_final=sm.output.figures,
        )  # fmt: skip
    log.info("report: %s", {k: len(v) for k, v in figs.items()})
