"""Flash detection from the mean luma of consecutive frames.

A flash is a run of 1..``max_len`` frames whose luma jumps by at least ``brightness_delta`` away
from BOTH the frame before the run and the frame after it, all in the same direction, while the
frames around the run are within ``brightness_delta / 2`` of each other. So:
- a hard cut to a brighter scene (no return) is not a flash (before and after differ);
- a slow fade is not a flash (no single step of ``brightness_delta``);
- a brief drop to black between two similar frames (a dropout) is, like a bright strobe.

A flash may also fade out (:func:`decaying_flashes`): a camera flash, lightning or a muzzle flash
jumps up in one frame and decays over the next few (+170, +80, +25 levels), so the frame after
its brightest ones is still raised and no run of them stands out from both sides. Such a flash
was cut at its first frame by the scene detector, and its frames opened the next clip, where the
filter, which needs the frame before a flash, could not see them. A flash at a clip's edge is cut
off it (:func:`edge_flashes`).

None of the peer pipelines we compared has such a filter; this is our own definition. Mean
luma must be recorded on every frame (stride 1) to see one-frame flashes: it costs about 4 us per
320-px frame.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from ..scorers.technical import CLIP_LOW
from ..split.clips import rows_in_clip, skip_reason
from . import Measure, Test

# black bars (flash_shard): the frame's mean luma is read as the picture's, with the bars at
# limited-range black, where they take at most MAX_BARS of the frame (a frame of bars is black)
MAX_BARS = 0.7
# seconds: the longest decay of a flash (lightning's strokes, a flash's afterglow on a sensor)
DECAY_SECONDS = 0.25


def decay_frames(fps: float | None, max_len: int = 3) -> int:
    """Frames a flash may take to fade out at ``fps`` (at least ``max_len``)."""
    if not fps or not np.isfinite(fps) or fps <= 0:
        fps = 30.0
    return max(max_len, round(DECAY_SECONDS * fps))


def find_flashes(
    luma: Sequence[float] | np.ndarray,
    *,
    brightness_delta: float = 40.0,
    max_len: int = 3,
    max_decay: int | None = None,
) -> list[int]:
    """Indices into ``luma`` (mean luma 0-255 of consecutive frames) of the frames in flashes:
    runs of up to ``max_len`` frames that stand out from both sides, and flashes that fade out
    over up to ``max_decay`` frames (:func:`decaying_flashes`; None: ``max_len``)."""
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
    for a, b in decaying_flashes(x, brightness_delta, max_decay or max_len):
        flagged[a:b] = True
    return np.flatnonzero(flagged).tolist()


def _decays(x: np.ndarray, tol: float) -> bool:
    """Whether ``x`` never rises by more than ``tol`` from one frame to the next."""
    return bool(len(x) < 2 or (np.diff(x) <= tol).all())


def decaying_flashes(x: np.ndarray, delta: float, max_decay: int) -> list[tuple[int, int]]:
    """Runs ``[a, b)`` of a flash that fades out: frame ``a`` jumps at least ``delta`` from the
    frame before, the run never brightens again (by more than ``delta / 20``), and frame ``b``,
    at most ``max_decay`` frames on, is the first back within ``delta / 4`` of the level before;
    a run longer than 3 frames must have lost half of ``delta`` from its peak by its last frame
    (a bright insert that holds its level is a shot, not a flash). Dark flashes (a dropout that
    recovers) likewise, upside down."""
    out = []
    for sign in (1.0, -1.0):
        y = sign * np.asarray(x, dtype=np.float64)
        for a in np.flatnonzero(np.diff(y) >= delta) + 1:
            base = y[a - 1]
            stop = min(len(y), a + max_decay + 1)
            back = np.flatnonzero(np.abs(y[a + 1 : stop] - base) <= delta / 4)
            if not len(back):
                continue
            b = a + 1 + int(back[0])
            run = y[a:b]
            if not _decays(run, delta / 20) or (b - a > 3 and run[-1] > run[0] - delta / 2):
                continue
            out.append((int(a), b))
    return sorted(out)


def edge_flashes(
    x: Sequence[float] | np.ndarray,
    bounds: list[tuple[int, int]],
    delta: float,
    max_decay: int,
) -> list[list[int]]:
    """Flash frames at the edges of the scenes ``bounds`` (``[a, b)`` into ``x``, the frames'
    mean luma), as ``[first, last]`` runs to cut out of them, in order:

    - a scene that opens on frames at least ``delta`` brighter (or darker) than the level it
      settles to (two frames within ``delta / 8``) within ``max_decay`` frames, and than the
      frame before the scene, fading towards that level: a flash cut to (an edit's white flash
      at a cut, a flash the detector cut at, a camera's exposure catching up after a cut). Where
      the detector cut inside the flash, its frames before the scene go too (a scene of flash
      frames alone disappears);
    - a scene that closes on a run of frames that jumps at least ``delta`` from the settled
      level before it and never comes back within ``delta / 4`` of it: a flash cut from.

    Such frames are no picture of either shot; in a clip, the flash filter cannot see them
    (it needs the frame before and after a flash), so they belong to no clip."""
    x = np.asarray(x, dtype=np.float64)
    out: list[list[int]] = []
    for a, b in bounds:
        for sign in (1.0, -1.0):
            y = sign * x
            # the flash may begin before the scene: the detector also cuts inside its decay
            # (white, then 0.35 and 0.1 of the way: a cut at each of the first two frames), and
            # the faint frames left opened the next clip. Its onset is the brightest frame
            # reached walking back over frames each clearly brighter than the next
            onset = a
            while onset > 0 and a - onset < max_decay and y[onset - 1] - y[onset] > delta / 8:
                onset -= 1
            # opening: the first frame from which two frames agree is the scene's level (a
            # scene that opens inside a flash may open on it)
            for k in range(0 if onset < a else 1, min(max_decay, b - a - 2) + 1):
                if abs(y[a + k + 1] - y[a + k]) > delta / 8:
                    continue
                level = y[a + k]
                if (
                    y[onset] - level >= delta
                    and (onset == 0 or y[onset] - y[onset - 1] >= delta)
                    and _decays(y[onset : a + k + 1], delta / 20)
                ):
                    out.append([onset, a + k - 1])
                break
            # closing: a jump from a settled level that lasts to the scene's end
            for k in range(1, min(max_decay, b - a - 3) + 1):
                c = b - k
                if y[c] - y[c - 1] < delta or abs(y[c - 1] - y[c - 2]) > delta / 8:
                    continue
                if (y[c:b] - y[c - 1] > delta / 4).all():
                    out.append([c, b - 1])
                break
    return [list(r) for r in sorted({tuple(r) for r in out})]  # a run may be seen from both sides


def picture_bars(samples, w: int, h: int) -> float:
    """The share of a ``w`` x ``h`` frame that black bars take in the scan ``samples`` (a
    clip's, a video's): a centred matte's (:func:`~clipsift.scorers.technical.centred`), at
    most ``MAX_BARS`` (a frame of bars is black), else 0. A night shot's dark top is no bar:
    read as one, a 30-level rise of the whole frame passed for a flash."""
    from ..scorers.technical import centred, clip_bars

    w, h = int(w), int(h)
    b = clip_bars(samples, w, h)
    ch = (
        h - b["border_top"] - b["border_bottom"]
        if centred(b["border_top"], b["border_bottom"])
        else h
    )
    cw = (
        w - b["border_left"] - b["border_right"]
        if centred(b["border_left"], b["border_right"])
        else w
    )
    share = 1.0 - (cw * ch) / (w * h) if cw > 0 and ch > 0 else 0.0
    return share if share <= MAX_BARS else 0.0


def picture_luma(luma: np.ndarray, bars: float) -> np.ndarray:
    """The picture's mean luma from the whole frame's ``luma``, where ``bars`` of the frame
    (:func:`picture_bars`) are bars at limited-range black."""
    return (luma - CLIP_LOW * bars) / (1.0 - bars) if bars else luma


def flash_shard(clips, frames, cfg: dict, samples=None) -> dict:
    """``flash.json`` content: per clip, the flash frames and ratio from the scan's luma rows.

    The rows are the whole frame's mean luma; where the scan's ``samples`` show a centred black
    matte in the clip (:func:`picture_bars`, recorded as ``border_ratio``), the luma is taken
    as the picture's, so a flash inside the bars rises by as much as it does in the picture (a
    quarter of a 2.39:1 film's 16:9 frame is bars, and a flash of 50 levels read 37, under the
    default 40).

    Measurements only: the verdict against ``select.flash.max_flash_ratio`` is made by the
    selection, so changing that threshold never re-runs this stage.
    """
    from ..scorers import clip_samples
    from ..scorers.technical import BORDER_SIDES

    by_video = dict(tuple(frames.groupby("video_id"))) if len(frames) else {}
    with_bars = (
        samples is not None and len(samples) > 0 and set(BORDER_SIDES) <= set(samples.columns)
    )
    by_sample = dict(tuple(samples.groupby("video_id"))) if with_bars else {}
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
        rows = clip_samples(by_sample, samples, clip) if with_bars else None
        bars = picture_bars(rows, clip.width, clip.height) if with_bars else 0.0
        luma = picture_luma(luma, bars)
        idx = f["frame"].to_numpy()
        # a decay's length in analysed frames (the scan's rows: every luma_stride-th frame)
        stride = float(np.median(np.diff(idx))) if len(idx) > 1 else 1.0
        decay = decay_frames(float(clip.fps or 0) / max(stride, 1.0), cfg["max_len"])
        hits = find_flashes(luma, brightness_delta=cfg["brightness_delta"], max_len=cfg["max_len"],
                            max_decay=decay)  # fmt: skip
        out[clip.clip_id] = {
            "flash_frames": [int(idx[i]) for i in hits],
            "n_flash": len(hits),
            "frames_analysed": len(luma),
            "flash_ratio": len(hits) / len(luma),
            "border_ratio": bars,
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
