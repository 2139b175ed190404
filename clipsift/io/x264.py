"""libx264 settings: one home for every H.264 encode (clip export, generated videos, test renders).

The same frames must give the same bytes (a dataset is rebuilt byte for byte from its config),
which x264 does not promise by default:
- macroblock-tree rate control made repeated encodes of the same frames differ (PyAV's wheels:
  6 distinct outputs in 8 calls at 96x64, decoded pixels up to 20 levels apart): ``mbtree=0``;
- on AVX-512 CPUs, x264's AVX-512 code gave different pixels for the same input (local blocks
  off by up to ~20 levels at 160x96 to 480x270, like a read of uninitialised memory); with AVX2
  and below the output was always the same. Every AVX-512 CPU has AVX2, so the assembly is
  capped there (``asm=AVX2``); the speed cost is negligible at these sizes;
- the thread count changes how x264 splits the work, so encodes use a fixed one.
"""

from __future__ import annotations

import functools
from pathlib import Path

X264_THREADS = 4  # part of the encode settings: the same frames give the same bytes anywhere


@functools.cache
def _avx512() -> bool:
    try:
        return "avx512" in Path("/proc/cpuinfo").read_text()
    except OSError:  # not Linux: keep x264's own choice
        return False


def x264_options(crf: int, preset: str, *, mbtree: bool = False, bframes: bool = True) -> dict:
    """Codec options for libx264 at ``crf`` and ``preset``; ``mbtree=True`` keeps x264's
    macroblock-tree rate control (only the test renders of :mod:`clipsift.sample`, whose pixels,
    not bytes, are their ground truth, and whose bytes earlier runs already fixed).
    ``bframes=False``: no B-frames, for frames of uneven durations (MP4 derives each frame's
    duration from the decode times, which B-frames shift by frames of the wrong length: a clip
    whose rate drops from 30 to 10 fps read 4.87 s long instead of 5)."""
    params = [] if mbtree else ["mbtree=0"]
    if not bframes:
        params.append("bframes=0")
    if _avx512():
        params.append("asm=AVX2")
    opts = {"crf": str(crf), "preset": preset}
    if params:
        opts["x264-params"] = ":".join(params)
    return opts
