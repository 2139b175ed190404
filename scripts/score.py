"""Snakemake entry point: one scorer over one shard -> scores/{scorer}.parquet."""

import os

import pandas as pd

from clipsift.dedup import write_embeddings
from clipsift.ingest import localize
from clipsift.io.atomic import write_parquet
from clipsift.scorers import ShardInputs, run_scorer
from clipsift.smk import results_dir, rule_logging

with rule_logging(snakemake) as log:  # noqa: F821
    sm = snakemake  # noqa: F821
    source = localize(
        pd.read_parquet(sm.input.source), sm.params.source, results_dir(sm), sm.wildcards.shard
    )
    inputs = ShardInputs(
        pd.read_parquet(sm.input.clips),
        source,
        sm.input.get("samples"),
        lock_dir=results_dir(sm) / ".gpu_locks",
        outputs=dict(sm.output.items()),
    )
    write_parquet(sm.output[0], run_scorer(sm.wildcards.scorer, inputs, sm.params.cfg))
    emb = sm.output.get("embeddings")
    if emb and not os.path.exists(emb):  # a shard without a usable clip: the scorer never ran
        write_embeddings(emb, [], [])
