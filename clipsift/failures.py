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

The scripts read ``max_error_share`` from the workflow's config, not from a rule's ``params``:
raising it to accept a shard must re-run no job that finished (a changed param re-runs every job
of its rule, scorers and encoders included).
"""

from __future__ import annotations

from collections.abc import Iterable

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
