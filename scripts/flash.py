"""Snakemake entry point: flash frames per clip from the scan's luma -> flash.json."""

import pandas as pd

from clipsift.filters.flash import flash_shard
from clipsift.io.atomic import write_json
from clipsift.smk import rule_logging

with rule_logging(snakemake) as log:  # noqa: F821
    sm = snakemake  # noqa: F821
    rec = flash_shard(
        pd.read_parquet(sm.input.clips),
        pd.read_parquet(sm.input.frames),
        sm.params.flash,
        pd.read_parquet(sm.input.samples),
    )
    log.info(
        "%d clips, %d with flashes", len(rec), sum(1 for r in rec.values() if r.get("n_flash"))
    )
    write_json(sm.output[0], rec)
