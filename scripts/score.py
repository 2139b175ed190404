"""Snakemake entry point: one scorer over one shard -> scores/{scorer}.parquet."""

import os

import pandas as pd

from clipsift.dedup import write_embeddings
from clipsift.failures import check_error_share, check_failed_sources
from clipsift.ingest import localize
from clipsift.io.atomic import write_parquet
from clipsift.scorers import ShardInputs, run_scorer, usable_clips
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
    scored = run_scorer(sm.wildcards.scorer, inputs, sm.params.cfg)
    tried = scored[scored["clip_id"].isin(usable_clips(inputs.clips)["clip_id"])]
    failed = tried.loc[tried["error"].notna(), "clip_id"]
    stage = f"scorer {sm.wildcards.scorer}"
    check_failed_sources(stage, inputs.clips, failed, source, results_dir(sm))
    check_error_share(
        stage,
        sm.wildcards.shard,
        tried["error"],
        sm.config["max_error_share"],
    )
    write_parquet(sm.output[0], scored)
    emb = sm.output.get("embeddings")
    if emb and not os.path.exists(emb):  # a shard without a usable clip: the scorer never ran
        write_embeddings(emb, [], [])
