"""Frames for model stages: which frames of a clip, decoded ahead of the model in threads.

PyAV releases the GIL while decoding, so a small thread pool keeps the next clips' frames ready
while the GPU works on the current batch (the GPU is otherwise starved by CPU decoding).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

import av
import numpy as np

from ..io.decode import VideoError, frames_by_index

T = TypeVar("T")
R = TypeVar("R")


def sample_span(
    start: float, end: float, fps: float, last: float | None = None
) -> tuple[float, float]:
    """The first and last times to sample a clip ``[start, end)`` at; a reader takes the frame
    nearest a time. ``last`` is the time of the clip's last frame: then the span is the clip's
    first and last frame times, exact frames whatever the frame rate. Without it (clip tables
    written before ``last_time``): frame centres at the clip's average ``fps``, which on variable
    frame rate can fall nearer the next clip's first frame (a last frame four times as long as
    the average one: the next shot was read)."""
    if last is not None and start <= last < end:
        return start, last
    half = 0.5 / fps
    return start + half, max(start + half, end - half)


def uniform_times(
    start: float, end: float, fps: float, n: int, last: float | None = None
) -> list[float]:
    """``n`` frame times spread evenly inside ``[start, end)`` (:func:`sample_span`)."""
    if n == 1:
        return [(start + end) / 2]
    return list(np.linspace(*sample_span(start, end, fps, last), n))


def clip_frames(job, indices: list[int], size=None) -> list[np.ndarray]:
    """RGB frames of one clip (a captioner's job: ``source_path``, ``start``) by number, counted
    from the clip's first frame (0), ascending (repeats allowed): exact at any frame rate, where
    ``start + i / fps`` read other frames, or the next shot, on variable frame rate."""
    return timed_clip_frames(job, indices, size)[0]


def timed_clip_frames(job, indices: list[int], size=None) -> tuple[list[np.ndarray], list[float]]:
    """:func:`clip_frames` and each frame's presentation time, in seconds from the clip's start
    (what the caption records show, and the times the images path tells Qwen3-VL and SmolVLM2).
    ``index / fps`` at the clip's average rate is right only while the rate holds: in a shot of
    2 s at 30 fps, then 3 s at 10 fps (a phone in low light) it put the 10-fps frames up to
    1.3 s late."""
    first = (0, float(job.start))
    images, times = [], []
    for _, (img, t) in frames_by_index(
        job.source_path, indices, first, convert=lambda frame: (frame.rgb(size), frame.time)
    ):
        images.append(img)
        times.append(max(0.0, t - float(job.start)))
    return images, times


def decode_width(width, height, short_side: int | None) -> int | None:
    """Width to decode at so that the shorter side is at least ``short_side`` (aspect kept).

    Model inputs are small (224-448 px). Resizing the decoded 4:2:0 planes with OpenCV, then
    letting the image processor only crop or squash, measured 1.09 s for four 1080p frames
    against 1.55 s for full-size RGB frames resized by CLIP's processor (PIL): the processor's
    share fell from 0.41 s to 0.03 s; the rest is seeking and decoding. ``None`` (keep the
    decoded size) when the size is unknown or the frame is already that small (never upscale).
    """
    try:
        w, h = int(width), int(height)
    except (TypeError, ValueError):
        return None
    if not short_side or w <= 0 or h <= 0 or min(w, h) <= short_side:
        return None
    target = int(np.ceil(short_side * w / h)) if h < w else int(short_side)
    target += target % 2  # even, for the 4:2:0 planes
    return target if target < w else None


def prefetch(
    fn: Callable[[T], R], items: Iterable[T], *, workers: int = 2, ahead: int = 8
) -> Iterator[tuple[T, R | Exception]]:
    """Yield ``(item, fn(item))`` in order, computing up to ``ahead`` items in ``workers``
    threads; an exception is yielded in place of its result (failures are data)."""

    def safe(item):
        try:
            return fn(item)
        except (VideoError, OSError, ValueError, av.FFmpegError) as exc:
            return exc

    items = list(items)
    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        futures = [pool.submit(safe, it) for it in items[:ahead]]
        nxt = len(futures)
        for k, item in enumerate(items):
            result = futures[k].result()
            futures[k] = None  # free the frames once handed out
            if nxt < len(items):
                futures.append(pool.submit(safe, items[nxt]))
                nxt += 1
            yield item, result
