"""The batch loop of the local captioners (:class:`~clipsift.captioners.local.LocalVLM`).

What surrounds the family's ``generate``: frames decoded ahead in threads, clips grouped into
batches by ``batch_key``, a batch that runs out of memory halved (the ``Batcher``) and one that
fails otherwise retried clip by clip, so that one bad clip fails alone; and the pieces of one
transformers ``generate`` call that do not depend on the family (inputs on the device, each
row's answer cut at its end of sequence).
"""

from __future__ import annotations

import logging

from ..io.decode import reason
from ..models.batching import Batcher, is_oom
from ..models.frames import prefetch
from .base import ClipJob, OnResult, Result

log = logging.getLogger(__name__)


def caption_in_batches(vlm, jobs: list[ClipJob], on_result: OnResult) -> None:
    """Caption ``jobs`` with ``vlm`` (a loaded ``LocalVLM``) in batches of ``batch_size``."""
    batcher = Batcher(int(vlm.cfg["batch_size"]))
    plans = {job.clip_id: vlm.plan(job) for job in jobs}
    pending: dict = {}

    def decode(job):
        return vlm.decode(job, plans[job.clip_id])

    workers = int(vlm.cfg["decode_workers"])
    for job, video in prefetch(decode, jobs, workers=workers, ahead=2 * batcher.batch_size):
        plan = plans[job.clip_id]
        if isinstance(video, Exception):
            on_result(job, Result(frames=plan.record(job), error=f"decode: {reason(video)}"))
            continue
        key = vlm.batch_key(plan)
        pending.setdefault(key, []).append((job, plan, video))
        if len(pending[key]) >= batcher.batch_size:
            run_batch(vlm.generate, pending.pop(key), batcher, on_result)
    for key in list(pending):
        run_batch(vlm.generate, pending.pop(key), batcher, on_result)


def run_batch(generate, items: list, batcher: Batcher, on_result: OnResult) -> None:
    """``generate`` over ``items`` (``(job, plan, video)``) through ``batcher``; a failure other
    than out-of-memory is retried one clip at a time and a clip that still fails is an error."""

    def call(chunk):
        try:
            return list(zip(chunk, generate(list(chunk)), strict=True))
        except Exception as exc:
            if is_oom(exc) and len(chunk) > 1:
                raise  # the Batcher halves the batch and retries
            if len(chunk) > 1:
                log.warning("batch of %d failed (%s); one clip at a time", len(chunk), reason(exc))
                return [pair for item in chunk for pair in call([item])]
            job, plan, video = chunk[0]
            log.warning("%s: generation failed: %s", job.clip_id, reason(exc))
            frames = plan.record(job, video.timestamps)  # decoded: their own times
            return [(chunk[0], Result(frames=frames, error=reason(exc)))]

    for (job, _, _), result in batcher.map(call, items):
        on_result(job, result)


def on_device(inputs: dict, device: str, dtype) -> dict:
    """The tensors of ``inputs`` on ``device``: pixels in the model's dtype, other floats
    (``second_per_grid_ts``) keep their precision; what is not a tensor is left out."""
    return {
        k: (
            v.to(device, dtype=dtype)
            if k.startswith("pixel_values") and v.is_floating_point()
            else v.to(device)
        )
        for k, v in inputs.items()
        if hasattr(v, "to")
    }


def eos_ids(model, tokenizer) -> set[int]:
    """The token ids that end an answer (the generation config's, else the tokenizer's)."""
    eos = model.generation_config.eos_token_id
    if eos is None:
        eos = tokenizer.eos_token_id
    return set(eos if isinstance(eos, (list, tuple)) else [eos]) - {None}


def answer_tokens(ids: list[int], eos: set[int], pad) -> tuple[list[int], int]:
    """One row's generated ``ids`` up to its end of sequence, and how many tokens it generated
    (the end of sequence counted, the padding of a row that stopped early not)."""
    kept, n_out = [], 0
    for tok in ids:
        n_out += 1
        if tok in eos:
            break
        kept.append(tok)
    while kept and kept[-1] == pad:  # padding of a row that stopped early
        kept.pop()
        n_out -= 1
    return kept, n_out
