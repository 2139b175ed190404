"""Snakemake entry point: probe and hash the videos of one shard -> source.parquet."""

import pandas as pd

from clipsift.ingest import check_probed, ingest_shard, shard_items
from clipsift.io.atomic import write_parquet
from clipsift.smk import results_dir, rule_logging

with rule_logging(snakemake) as log:  # noqa: F821
    sm = snakemake  # noqa: F821
    items = shard_items(
        pd.read_parquet(sm.input.plan), sm.params.source, sm.wildcards.shard, results_dir(sm)
    )
    table = ingest_shard(items, hash_algo=sm.params.hash)
    check_probed(items, table, sm.wildcards.shard, sm.config["max_error_share"])
    write_parquet(sm.output[0], table)
