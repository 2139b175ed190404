"""Snakemake entry point: the kept clips of one shard -> latents/ (VAE latents, text embeddings,
one JSON per clip) + latents.parquet."""

import json
from pathlib import Path

import pandas as pd

from clipsift.encoders.stage import run_encode
from clipsift.failures import check_error_share, check_failed_sources
from clipsift.ingest import localize
from clipsift.io.atomic import atomic_dir, write_parquet
from clipsift.smk import results_dir, rule_logging

with rule_logging(snakemake) as log:  # noqa: F821
    sm = snakemake  # noqa: F821
    source = localize(
        pd.read_parquet(sm.input.source), sm.params.source, results_dir(sm), sm.wildcards.shard
    )
    captions = None
    if sm.input.get("captions"):
        captions = json.loads(Path(sm.input.captions).read_text())
    clips = pd.read_parquet(sm.input.clips)
    with atomic_dir(sm.output.dir) as tmp:
        table = run_encode(
            clips,
            source,
            pd.read_parquet(sm.input.selection),
            pd.read_parquet(sm.input.scores),
            captions,
            sm.params.encode,
            tmp,
            final_dir=Path(sm.output.dir),
            lock_dir=results_dir(sm) / ".gpu_locks",
            cache_dir=results_dir(sm) / "cache" / "encode" / sm.wildcards.shard,
            frames=pd.read_parquet(sm.input.frames, columns=["video_id", "frame", "time"]),
        )
    log.info("timing: %s", {k: round(v, 2) for k, v in table.attrs.pop("timing", {}).items()})
    if len(table):
        errors = table["error"].where(table["status"].eq("error"), None)
        failed = table.loc[errors.notna(), "clip_id"]
        check_failed_sources("encode", clips, failed, source, results_dir(sm))
        check_error_share("encode", sm.wildcards.shard, errors, sm.config["max_error_share"])
    write_parquet(sm.output.table, table)
