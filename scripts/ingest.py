"""Snakemake entry point: probe and hash the videos of one shard -> source.parquet."""

import pandas as pd

from clipsift.ingest import ingest_shard, shard_items
from clipsift.io.atomic import write_parquet
from clipsift.smk import results_dir, rule_logging

with rule_logging(snakemake) as log:  # noqa: F821
    sm = snakemake  # noqa: F821
    items = shard_items(
        pd.read_parquet(sm.input.plan), sm.params.source, sm.wildcards.shard, results_dir(sm)
    )
    write_parquet(sm.output[0], ingest_shard(items, hash_algo=sm.params.hash))
