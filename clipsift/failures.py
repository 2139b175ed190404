"""A stage that fails most of what it tries stops its job, loudly.

Failures are data: one clip that cannot be captioned, scored, encoded or exported is a row with
an error, and the run goes on. But when most of a shard's clips fail, the cause is rarely the
clips: an API that answers 500 to everything, a wrong key, a model that does not load, a full
disk. Writing that shard's output as if it were done would hide it (the run exits 0 and the
dataset is quietly empty). So past ``max_error_share`` of the shard's items (the config's
top-level key, 0.5 by default), the job fails with the count and the first errors; what was
made so far stays in the stage's cache where it has one (captions, exported clips), so the
rerun after the fix redoes only the rest. Ingest does the same for a shard's videos (files that
were never downloaded, a wrong base folder), counting only a shard where at least
:data:`MIN_FAILED_VIDEOS` failed: the last shard of a big source may hold a single, corrupt video.

A source file that ingest read and that is missing now (a folder not mounted, a mount that
dropped mid-run, a source moved) is no fault of its clips: recorded as their errors, those clips
would stay failures for good, since a finished job is not re-run. So the scan checks its files
before it starts (:func:`check_reachable`), and every later stage that reads source files
checks the files of the clips it failed on before it writes its table
(:func:`check_failed_sources`). Either stops the job with the files named, and the next run,
the files back, does the work.

The scripts read ``max_error_share`` from the workflow's config, not from a rule's ``params``:
raising it to accept a shard must re-run no job that finished (a changed param re-runs every job
of its rule, scorers and encoders included).
"""

from __future__ import annotations

import os
from collections.abc import Iterable

import numpy as np
import pandas as pd

from .sources.base import SourceUnavailable

SHOWN = 3  # first errors quoted in the message
MIN_FAILED_VIDEOS = 3  # ingest: fewer failed videos in a shard are the videos' fault, not a cause's
CLIP_CAUSES = "model, API, key, network, disk"
VIDEO_CAUSES = (
    "Git LFS pointers or failed downloads, a wrong path or base_dir, a missing mount, permissions"
)


class StageFailed(RuntimeError):
    pass


def check_error_share(
    stage: str,
    shard: str,
    errors: Iterable,
    max_share: float,
    *,
    unit: str = "clips",
    causes: str = CLIP_CAUSES,
    min_failed: int = 1,
) -> None:
    """Raise :class:`StageFailed` when more than ``max_share`` of the items (``errors``: one
    entry per item, a message or None) failed, and at least ``min_failed`` did."""
    errors = list(errors)
    failed = [str(e) for e in errors if isinstance(e, str) and e]
    if not errors or len(failed) < min_failed or len(failed) / len(errors) <= max_share:
        return
    first = "; ".join(list(dict.fromkeys(failed))[:SHOWN])  # distinct messages, in order
    raise StageFailed(
        f"{stage} of shard {shard}: {len(failed)} of {len(errors)} {unit} failed "
        f"({len(failed) / len(errors):.0%}, over max_error_share = {max_share:g}). "
        f"First errors: {first}. Fix the cause ({causes}) and run again; "
        "set max_error_share to accept such a shard as it is (that re-runs no finished job)."
    )


def check_reachable(
    source: pd.DataFrame,
    results=None,
    *,
    stage: str = "scan",
    which: str = "of this shard",
    shown: int = 5,
) -> None:
    """Raise :class:`SourceUnavailable` when files of ``source`` (rows of ``source.parquet``)
    that ingest read are not there now: the job fails, writes nothing, and the next run reads
    them. Recorded as the videos' errors, they lost their clips for good (a tryout's unmounted
    folder: every later run, the folder back, ended in "no clip kept")."""
    if source.empty:  # (a list mask on no rows would select columns)
        return
    missing = source.loc[np.array([not os.path.exists(p) for p in source["path"]], dtype=bool)]
    gone = list(missing["path"])
    if not gone:
        return
    where = f" --results {results}" if results else ""
    names = " --drop ".join(sorted(set(missing["source"].dropna()))) if "source" in missing else ""
    listed = ", ".join(gone[:shown]) + (
        f" and {len(gone) - shown} more" if len(gone) > shown else ""
    )
    raise SourceUnavailable(
        f"{len(gone)} of {len(source)} source file(s) {which} are not there now, though "
        f"ingest read them: {listed}. A file missing now is no fault of its video, so the {stage} "
        "records nothing and stops: mount or restore them and run again. Files deleted on "
        f"purpose: `clipsift accept-changes --gone{where}` drops them (with `--unreachable` "
        "where their folder is missing too). A source moved elsewhere: point its `path` "
        f"there and run `clipsift plan --drop {names or 'NAME'}` (with the run's --config "
        "files), which plans it anew at the new paths."
    )


def check_failed_sources(
    stage: str, clips: pd.DataFrame, failed: Iterable, source: pd.DataFrame, results=None
) -> None:
    """After a stage read source files: :func:`check_reachable` on the source files of the
    clips in ``failed`` (clip ids) that it could read, those of ``clips`` (the table it was
    given) without an earlier error or split reason. Materialized clips count too: the stages
    read frames from the source by index, not from the split's clip files. Called before the
    job's table is written and before :func:`check_error_share`, so a dropped mount says so
    rather than "most clips failed"; what the stage made so far stays in its cache."""
    failed = set(failed)
    if not failed or clips.empty:
        return
    ok = clips["error"].isna() if "error" in clips else pd.Series(True, index=clips.index)
    if "split_reason" in clips:
        ok &= clips["split_reason"].isna()
    videos = set(clips.loc[ok & clips["clip_id"].isin(failed), "video_id"])
    check_reachable(
        source[source["video_id"].isin(videos)],
        results,
        stage=stage,
        which=f"of the clips that {stage} failed on",
    )
