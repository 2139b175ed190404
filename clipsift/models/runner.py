"""The loop every frame-based model scorer shares: sample frames per clip, decode them ahead of
the model, run the model over batches of frames, hand back per-frame outputs per clip.

- Frames: ``frames`` per clip at uniform times from its first frame to its last
  (:func:`clipsift.models.frames.sample_span`), read with one open container per
  group of clips of the same video, at a decode width just large enough for the model input
  (:func:`clipsift.models.frames.decode_width`).
- Overlap: decoding and the image processor run in ``workers`` threads
  (:func:`clipsift.models.frames.prefetch`), a few groups ahead of the model.
- Batches: frames of consecutive clips are batched together (``batch_size`` frames), through
  :class:`clipsift.models.batching.Batcher`, so an out-of-memory error halves the batch instead of
  failing the job.
- Failures are data: a clip whose frames cannot be decoded (or preprocessed) gets an error
  string; the other clips of its video are still scored.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from ..io.decode import VideoError, read_frames_at, reason
from ..split.clips import last_time
from .batching import Batcher
from .frames import decode_width, prefetch, uniform_times

log = logging.getLogger(__name__)


@dataclass
class FrameModel:
    """What a frame-based scorer plugs into :func:`frame_outputs`.

    ``preprocess`` turns a list of RGB uint8 frames into a CPU tensor batch (runs in the decoding
    threads); ``forward`` turns such a batch into an ``(n, k)`` float32 array, one row per frame
    (runs in the main thread, on the model's device). ``short_side`` is the smallest frame side
    the preprocessing needs (frames are decoded no larger than that, see ``decode_width``).
    """

    preprocess: Callable
    forward: Callable
    short_side: int | None = None


@dataclass
class FrameResults:
    outputs: dict[str, np.ndarray] = field(default_factory=dict)  # clip_id -> (frames, k)
    errors: dict[str, str] = field(default_factory=dict)  # clip_id -> reason
    batch_size: int = 0  # the batch size at the end (smaller than asked after an OOM)
    n_oom: int = 0
    seconds: float = 0.0


def clip_times(clip, n: int) -> list[float]:
    fps = float(clip.fps) if clip.fps and clip.fps > 0 else 30.0
    return uniform_times(float(clip.start_time), float(clip.end_time), fps, n, last_time(clip))


def _groups(clips, group: int) -> list[tuple[str, list]]:
    """Clips grouped by source video and picture size (first-appearance order), at most
    ``group`` per item: one read decodes a group at one size (a video's picture size can
    change, and with it its clips')."""
    by_path: dict[tuple, list] = {}
    for clip in clips.itertuples(index=False):
        by_path.setdefault((clip.source_path, clip.width, clip.height), []).append(clip)
    items = []
    for (path, *_), cl in by_path.items():
        for i in range(0, len(cl), max(1, group)):
            items.append((path, cl[i : i + group]))
    return items


def _decode_group(item, model: FrameModel, n_frames: int) -> dict:
    """clip_id -> preprocessed frame batch, or an error string."""
    path, clips = item
    times = [clip_times(c, n_frames) for c in clips]
    width = decode_width(clips[0].width, clips[0].height, model.short_side)
    out: dict = {}
    try:
        flat = read_frames_at(path, [t for ts in times for t in ts], size=width, fmt="rgb")
        per_clip = [flat[i * n_frames : (i + 1) * n_frames] for i in range(len(clips))]
    except (VideoError, OSError, ValueError) as exc:
        if len(clips) == 1:
            return {clips[0].clip_id: f"frames: {reason(exc)}"}
        per_clip = []
        for ts in times:  # isolate the clip(s) that cannot be read
            try:
                per_clip.append(read_frames_at(path, ts, size=width, fmt="rgb"))
            except (VideoError, OSError, ValueError) as exc2:
                per_clip.append(f"frames: {reason(exc2)}")
    for c, frames in zip(clips, per_clip, strict=True):
        if isinstance(frames, str):
            out[c.clip_id] = frames
            continue
        try:
            out[c.clip_id] = model.preprocess(frames)
        except (ValueError, TypeError, RuntimeError) as exc:
            out[c.clip_id] = f"preprocess: {reason(exc)}"
    return out


def frame_outputs(
    clips,
    model: FrameModel,
    *,
    n_frames: int,
    batch_size: int,
    workers: int = 2,
    group: int = 8,
    ahead: int = 4,
    batcher: Batcher | None = None,
) -> FrameResults:
    """Per-frame model outputs of every clip (rows of ``clips``: clip_id, source_path,
    start_time, end_time, fps, width, height), in frame order; see the module docstring."""
    import torch

    res = FrameResults()
    batcher = batcher or Batcher(batch_size)
    per_clip: dict[str, list] = {}
    pending: list[tuple[str, object]] = []  # (clip_id, one preprocessed frame)
    t0 = time.monotonic()

    def run(chunk):
        def fn(part):
            return list(model.forward(torch.stack([f for _, f in part])))

        rows = batcher.map(fn, chunk)
        for (cid, _), row in zip(chunk, rows, strict=True):
            per_clip.setdefault(cid, []).append(row)

    items = _groups(clips, group)
    for k, (item, result) in enumerate(
        prefetch(lambda it: _decode_group(it, model, n_frames), items, workers=workers, ahead=ahead)
    ):
        if isinstance(result, Exception):
            for c in item[1]:
                res.errors[c.clip_id] = f"frames: {reason(result)}"
            continue
        for cid, value in result.items():
            if isinstance(value, str):
                res.errors[cid] = value
            else:
                pending.extend((cid, f) for f in value)
        while len(pending) >= batcher.batch_size:
            n = batcher.batch_size
            run(pending[:n])
            pending = pending[n:]
        if (k + 1) % 50 == 0:
            log.info("%d of %d clip groups (%.1f s)", k + 1, len(items), time.monotonic() - t0)
    if pending:
        run(pending)
    res.outputs = {cid: np.stack(rows).astype(np.float32) for cid, rows in per_clip.items()}
    res.batch_size, res.n_oom = batcher.batch_size, batcher.n_oom
    res.seconds = time.monotonic() - t0
    return res


def reduce_frames(values: np.ndarray, how: str) -> float:
    """One number per clip from per-frame values: ``mean`` or ``min`` (the worst frame)."""
    if how == "mean":
        return float(np.mean(values))
    if how == "min":
        return float(np.min(values))
    raise ValueError(f"unknown reduce {how!r} (mean or min)")


def clip_embedding(frame_embeddings: np.ndarray) -> np.ndarray:
    """The clip's embedding: the mean of its L2-normalised frame embeddings, normalised again."""
    e = frame_embeddings.astype(np.float32)
    e = e / np.maximum(np.linalg.norm(e, axis=1, keepdims=True), 1e-12)
    m = e.mean(axis=0)
    return m / max(float(np.linalg.norm(m)), 1e-12)


def model_label(record: dict) -> str:
    """``id@resolved_revision`` for the output tables."""
    return f"{record['id']}@{record.get('resolved_revision') or record.get('revision')}"
