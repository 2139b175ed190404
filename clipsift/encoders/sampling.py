"""Which source frames of a clip go into the VAE.

The ``encode.frames`` options, in order of precedence for the step between frames:

1. ``target_fps``: frames at that rate, each the source frame nearest its time (e.g. 16 fps for
   Wan from a 30 fps source: steps of 1.875 source frames). Never faster than the source: a
   target above the source rate takes every frame.
2. ``stride_by_fps``: the rule with the highest ``min_fps`` at or below the clip's frame rate
   (HunyuanVideo: stride 2 at 50 fps or more).
3. ``stride``: a fixed step.

On a variable frame rate (the clip's ``frame_rate_mode``), the step is applied in time: the rate
is the clip's own average (its ``fps``), and each taken frame is the one nearest its time at
``fps / step`` from the first, by the frames' own times (the scan's). Counted in frames, a shot
of 2 s at 30 fps, then 3 s at 10 fps (a phone in low light; 18 fps on average) taken at
``target_fps`` 16 came out at 0.6 times its speed, then at 1.8 times: its frames were 1.125
source frames apart in both parts. Where the source is slower than that rate its frames
repeat, as a constant-rate copy of it would show them. Constant-rate clips are counted.

``skip_start`` source frames are left out first. ``count`` is made valid for the VAE (the
largest ``k * temporal + 1`` not above it: 81 for Wan, 129 for HunyuanVideo, 121 for LTX), or
``null`` for the longest valid count the clip allows. A clip with too few frames is dropped with
the reason ``too_short`` (``too_short: drop``) or encoded at the longest valid count it allows,
if that is at least ``min_count`` (``too_short: shorten``). ``position: center`` centres the
taken span in what is left of the clip instead of starting right after the skipped frames.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from ..config import with_defaults
from ..io.decode import TIMESTAMP_ROUNDING
from ..split.clips import nearest_times
from .base import valid_count


@dataclass
class FramePlan:
    """Source frame indices (counted from the start of the video) and how they were chosen."""

    indices: list[int] = field(default_factory=list)
    step: float = 1.0  # source frames between taken frames
    fps: float = 0.0  # frame rate of the taken frames
    requested: int | None = None  # the valid count asked for (None: longest)
    reason: str | None = None  # why no frames (too_short ...), else None

    @property
    def count(self) -> int:
        return len(self.indices)

    @property
    def ok(self) -> bool:
        return self.reason is None


def step_for(fps: float, cfg: dict) -> float:
    """Source frames between taken frames (see the module docstring)."""
    return _step(fps, with_defaults("encode.frames", cfg))


def _step(fps: float, cfg: dict) -> float:
    target = cfg["target_fps"]
    if target:
        return max(1.0, fps / float(target)) if fps else 1.0
    rules = [r for r in cfg["stride_by_fps"] if fps and fps >= float(r["min_fps"]) - 1e-6]
    if rules:
        return float(max(rules, key=lambda r: float(r["min_fps"]))["stride"])
    return float(cfg["stride"])


def plan_frames(
    start_frame: int,
    end_frame: int,
    fps: float,
    cfg: dict,
    temporal: int,
    times: np.ndarray | None = None,
) -> FramePlan:
    """The frames of the clip ``[start_frame, end_frame)`` to encode, per ``cfg`` (the
    ``encode.frames`` section), for a VAE that compresses time by ``temporal``. ``times``: the
    presentation time of each of the clip's frames, for a variable-rate clip (frames are then
    taken by time, see the module notes); None takes them by count."""
    cfg = with_defaults("encode.frames", cfg)
    step = _step(fps, cfg)
    out_fps = fps / step if fps else 0.0
    first = int(start_frame) + int(cfg["skip_start"])
    span = int(end_frame) - first  # source frames left
    requested = valid_count(int(cfg["count"]), temporal) if cfg["count"] else None
    if requested == 0:
        requested = 1
    timed = times is not None and span > 0 and out_fps > 0
    if timed:
        times = np.asarray(times, np.float64)[first - int(start_frame) :]
        if len(times) != span:
            raise ValueError(f"{len(times) + first - int(start_frame)} frame times for a clip "
                             f"of {int(end_frame) - int(start_frame)} frames")  # fmt: skip
        length = (times[-1] - times[0]) * out_fps  # the span in taken frames' intervals
        # containers round times (Matroska to 1 ms): a span a millisecond short still fits
        fits = math.floor(length + TIMESTAMP_ROUNDING * out_fps) + 1
    else:
        fits = math.floor((span - 1) / step + 1e-9) + 1 if span > 0 else 0  # frames that fit
    plan = FramePlan(step=step, fps=out_fps, requested=requested)
    n = requested if requested is not None else valid_count(fits, temporal)
    if n and fits >= n:
        pass
    elif cfg["too_short"] == "shorten" or requested is None:
        n = valid_count(fits, temporal)
        need = max(1, valid_count(int(cfg["min_count"]), temporal) or 1)
        if n < need:
            plan.reason = f"too_short: {fits} frames at step {step:g} < min_count {need}"
            return plan
    else:
        plan.reason = f"too_short: {fits} frames at step {step:g} < count {n}"
        return plan
    if timed:
        offset = (length - (n - 1)) / 2 if cfg["position"] == "center" else 0.0
        wanted = times[0] + (offset + np.arange(n)) / out_fps
        plan.indices = [first + i for i in nearest_times(times, wanted)]
        return plan
    offset = 0.0
    if cfg["position"] == "center":
        offset = ((span - 1) - (n - 1) * step) / 2
    plan.indices = [first + int(math.floor(offset + k * step + 0.5)) for k in range(n)]
    return plan
