"""Snakemake entry point: scenes -> clips.parquet (+ clip files unless materialize is virtual)."""

from pathlib import Path

import pandas as pd

from clipsift.failures import check_failed_sources
from clipsift.ingest import localize
from clipsift.io.atomic import write_parquet
from clipsift.smk import results_dir, rule_logging
from clipsift.split.clips import materialize, scenes_to_clips

with rule_logging(snakemake) as log:  # noqa: F821
    sm = snakemake  # noqa: F821
    source = pd.read_parquet(sm.input.source)
    frames = pd.read_parquet(sm.input.frames, columns=["video_id", "frame", "time"])
    clips = scenes_to_clips(pd.read_parquet(sm.input.scenes), source, sm.params.split, frames)
    if sm.params.split["materialize"] != "virtual":
        localize(source, sm.params.source, results_dir(sm), sm.wildcards.shard)
    made = materialize(clips, Path(sm.output.dir), sm.params.split)
    failed = made.loc[made["error"].notna() & clips["error"].isna(), "clip_id"]
    check_failed_sources("split", clips, failed, source, results_dir(sm))
    clips = made
    n_ok = int((clips["error"].isna() & clips["split_reason"].isna()).sum())
    log.info("%d clip rows, %d usable", len(clips), n_ok)
    write_parquet(sm.output.clips, clips)
