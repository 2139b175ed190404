"""Snakemake entry point: probe and hash the videos of one shard -> source.parquet."""

import pandas as pd

from clipsift.failures import MIN_FAILED_VIDEOS, VIDEO_CAUSES, check_error_share
from clipsift.ingest import ingest_shard, probed_errors, shard_items
from clipsift.io.atomic import write_parquet
from clipsift.smk import results_dir, rule_logging

with rule_logging(snakemake) as log:  # noqa: F821
    sm = snakemake  # noqa: F821
    items = shard_items(
        pd.read_parquet(sm.input.plan), sm.params.source, sm.wildcards.shard, results_dir(sm)
    )
    table = ingest_shard(items, hash_algo=sm.params.hash)
    check_error_share(
        "ingest",
        sm.wildcards.shard,
        probed_errors(items, table),
        sm.config["max_error_share"],
        unit="videos",
        causes=VIDEO_CAUSES,
        min_failed=MIN_FAILED_VIDEOS,
    )
    write_parquet(sm.output[0], table)
