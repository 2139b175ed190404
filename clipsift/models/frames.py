"""Frames for model stages: which frames of a clip, decoded ahead of the model in threads.

PyAV releases the GIL while decoding, so a small thread pool keeps the next clips' frames ready
while the GPU works on the current batch (the GPU is otherwise starved by CPU decoding).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

import numpy as np

from ..io.decode import VideoError, read_frames_at

T = TypeVar("T")
R = TypeVar("R")


def uniform_times(start: float, end: float, fps: float, n: int) -> list[float]:
    """``n`` frame times spread evenly inside ``[start, end)``, at frame centres."""
    half = 0.5 / fps
    if n == 1:
        return [(start + end) / 2]
    return list(np.linspace(start + half, end - half, n))


def rate_times(start: float, end: float, fps: float, rate: float, max_n: int) -> list[float]:
    """Frames at ``rate`` per second, at most ``max_n`` (then spread evenly), at least one."""
    n = max(1, min(max_n, int((end - start) * rate)))
    return uniform_times(start, end, fps, n)


def clip_frames(clip, times: list[float], size=None) -> list[np.ndarray]:
    """RGB frames of one clip at ``times`` (seconds in the source)."""
    return read_frames_at(clip.source_path, times, size=size, fmt="rgb")


def prefetch(
    fn: Callable[[T], R], items: Iterable[T], *, workers: int = 2, ahead: int = 8
) -> Iterator[tuple[T, R | Exception]]:
    """Yield ``(item, fn(item))`` in order, computing up to ``ahead`` items in ``workers``
    threads; an exception is yielded in place of its result (failures are data)."""

    def safe(item):
        try:
            return fn(item)
        except (VideoError, OSError, ValueError) as exc:
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
