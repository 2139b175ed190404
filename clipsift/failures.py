"""A stage that fails most of what it tries stops its job, loudly.

Failures are data: one clip that cannot be captioned, scored, encoded or exported is a row with
an error, and the run goes on. But when most of a shard's clips fail, the cause is rarely the
clips: an API that answers 500 to everything, a wrong key, a model that does not load, a full
disk. Writing that shard's output as if it were done would hide it (the run exits 0 and the
dataset is quietly empty). So past ``max_error_share`` of the shard's items (the config's
top-level key, 0.5 by default), the job fails with the count and the first errors; what was
made so far stays in the stage's cache where it has one (captions, exported clips), so the
rerun after the fix redoes only the rest.
"""

from __future__ import annotations

from collections.abc import Iterable

SHOWN = 3  # first errors quoted in the message


class StageFailed(RuntimeError):
    pass


def check_error_share(stage: str, shard: str, errors: Iterable, max_share: float) -> None:
    """Raise :class:`StageFailed` when more than ``max_share`` of the items (``errors``: one
    entry per item, a message or None) failed."""
    errors = list(errors)
    failed = [str(e) for e in errors if isinstance(e, str) and e]
    if not errors or len(failed) / len(errors) <= max_share:
        return
    first = "; ".join(list(dict.fromkeys(failed))[:SHOWN])  # distinct messages, in order
    raise StageFailed(
        f"{stage} of shard {shard}: {len(failed)} of {len(errors)} clips failed "
        f"({len(failed) / len(errors):.0%}, over max_error_share = {max_share:g}). "
        f"First errors: {first}. Fix the cause (model, API, key, network, disk) and run again; "
        "set max_error_share to accept such a shard as it is."
    )
