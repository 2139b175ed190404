"""Snakemake entry point of rule export_clips: the kept clips of one shard ->
results/dataset/clips/{shard}/ (files) + results/dataset/clips/{shard}.parquet (index)."""

from pathlib import Path

import pandas as pd

from clipsift.export_clips import export_shard_clips
from clipsift.failures import check_error_share, check_failed_sources
from clipsift.ingest import localize
from clipsift.io.atomic import atomic_dir, write_parquet
from clipsift.smk import results_dir, rule_logging

with rule_logging(snakemake) as log:  # noqa: F821
    sm = snakemake  # noqa: F821
    shard = sm.wildcards.shard
    results = results_dir(sm)
    source = localize(pd.read_parquet(sm.input.source), sm.params.source, results, shard)
    dups = pd.read_parquet(sm.input.duplicates) if sm.input.get("duplicates") else None
    final = Path(sm.output.dir)
    clips = pd.read_parquet(sm.input.clips)
    with atomic_dir(final) as tmp:
        index = export_shard_clips(
            clips,
            source,
            pd.read_parquet(sm.input.selection),
            tmp,
            final_dir=final,
            dataset_dir=final.parent.parent,
            cfg=sm.params.export,
            materialize=sm.params.materialize,
            cache_dir=results / "cache" / "export" / shard,
            duplicates=dups[dups["shard"] == shard] if dups is not None else None,
        )
    failed = index.loc[index["error"].notna(), "clip_id"]
    check_failed_sources("export", clips, failed, source, results)
    check_error_share("export", shard, index["error"], sm.config["max_error_share"])
    write_parquet(sm.output.table, index)
    log.info(
        "%d kept clips exported, %d failed",
        index["error"].isna().sum(),
        index["error"].notna().sum(),
    )
