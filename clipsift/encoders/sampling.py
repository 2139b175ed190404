"""Which source frames of a clip go into the VAE.

The ``encode.frames`` options, in order of precedence for the step between frames:

1. ``target_fps``: frames at that rate, each the source frame nearest its time (e.g. 16 fps for
   Wan from a 30 fps source: steps of 1.875 source frames). Never faster than the source: a
   target above the source rate takes every frame.
2. ``stride_by_fps``: the rule with the highest ``min_fps`` at or below the clip's frame rate
   (HunyuanVideo: stride 2 at 50 fps or more).
3. ``stride``: a fixed step.

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

from ..config import with_defaults
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
    start_frame: int, end_frame: int, fps: float, cfg: dict, temporal: int
) -> FramePlan:
    """The frames of the clip ``[start_frame, end_frame)`` to encode, per ``cfg`` (the
    ``encode.frames`` section), for a VAE that compresses time by ``temporal``."""
    cfg = with_defaults("encode.frames", cfg)
    step = _step(fps, cfg)
    out_fps = fps / step if fps else 0.0
    first = int(start_frame) + int(cfg["skip_start"])
    span = int(end_frame) - first  # source frames left
    requested = valid_count(int(cfg["count"]), temporal) if cfg["count"] else None
    if requested == 0:
        requested = 1
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
    offset = 0.0
    if cfg["position"] == "center":
        offset = ((span - 1) - (n - 1) * step) / 2
    plan.indices = [first + int(math.floor(offset + k * step + 0.5)) for k in range(n)]
    return plan
