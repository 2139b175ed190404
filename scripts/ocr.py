"""Snakemake entry point: RapidOCR on a few frames per clip -> ocr.json."""

import pandas as pd

from clipsift.filters.ocr import ocr_shard
from clipsift.ingest import localize
from clipsift.io.atomic import write_json
from clipsift.smk import results_dir, rule_logging

with rule_logging(snakemake) as log:  # noqa: F821
    sm = snakemake  # noqa: F821
    localize(
        pd.read_parquet(sm.input.source), sm.params.source, results_dir(sm), sm.wildcards.shard
    )
    write_json(sm.output[0], ocr_shard(pd.read_parquet(sm.input.clips), sm.params.ocr))
