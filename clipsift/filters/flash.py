"""Flash detection from the mean luma of consecutive frames.

A flash is a run of 1..``max_len`` frames whose luma jumps by at least ``brightness_delta`` away
from BOTH the frame before the run and the frame after it, all in the same direction, while the
frames around the run are within ``brightness_delta / 2`` of each other. So:
- a hard cut to a brighter scene (no return) is not a flash (before and after differ);
- a slow fade is not a flash (no single step of ``brightness_delta``);
- a brief drop to black between two similar frames (a dropout) is, like a bright strobe.

None of the peer pipelines we compared has such a filter; this is our own definition. Mean
luma must be recorded on every frame (stride 1) to see one-frame flashes: it costs about 4 us per
320-px frame.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from ..split.clips import rows_in_clip, skip_reason
from . import Measure, Test


def find_flashes(
    luma: Sequence[float] | np.ndarray, *, brightness_delta: float = 40.0, max_len: int = 3
) -> list[int]:
    """Indices into ``luma`` (mean luma 0-255 of consecutive frames) of the frames in flashes."""
    x = np.asarray(luma, dtype=np.float64)
    n = len(x)
    flagged = np.zeros(n, dtype=bool)
    for run in range(1, max_len + 1):
        m = n - run - 1  # number of candidate runs starting at 1..m
        if m <= 0:
            break
        before, after = x[:m], x[run + 1 :]
        window = sliding_window_view(x[1 : n - 1], run)[:m]
        lo, hi = window.min(axis=1), window.max(axis=1)
        settled = np.abs(before - after) <= brightness_delta / 2
        up = lo - np.maximum(before, after) >= brightness_delta
        down = np.minimum(before, after) - hi >= brightness_delta
        for start in np.flatnonzero(settled & (up | down)) + 1:
            flagged[start : start + run] = True
    return np.flatnonzero(flagged).tolist()


def flash_shard(clips, frames, cfg: dict) -> dict:
    """``flash.json`` content: per clip, the flash frames and ratio from the scan's luma rows.

    Measurements only: the verdict against ``select.flash.max_flash_ratio`` is made by the
    selection, so changing that threshold never re-runs this stage.
    """
    by_video = dict(tuple(frames.groupby("video_id"))) if len(frames) else {}
    out = {}
    for clip in clips.itertuples():
        if skip := skip_reason(clip):
            out[clip.clip_id] = {"error": skip}
            continue
        f = rows_in_clip(by_video, clip)
        if f is None or f.empty:
            out[clip.clip_id] = {"error": "no luma rows from the scan"}
            continue
        luma = f["luma"].to_numpy(dtype=np.float64)
        idx = f["frame"].to_numpy()
        hits = find_flashes(luma, brightness_delta=cfg["brightness_delta"], max_len=cfg["max_len"])
        out[clip.clip_id] = {
            "flash_frames": [int(idx[i]) for i in hits],
            "n_flash": len(hits),
            "frames_analysed": len(luma),
            "flash_ratio": len(hits) / len(luma),
            "error": None,
        }
    return out


MEASURE = Measure(
    "flash",
    about="a flash filter",
    columns=(
        ("flash.ratio", lambda r: r.get("flash_ratio"), True),
        ("flash.n", lambda r: r.get("n_flash"), False),
    ),
    tests=(Test("flash", "flash.ratio", "<=", "max_flash_ratio"),),
)
