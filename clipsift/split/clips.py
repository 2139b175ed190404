"""Scenes into clips: length bounds, trimming next to cuts, and optional materialisation.

Every clip is a row of ``clips.parquet``; clips that fail a bound stay in the table with a
``split_reason`` so that the export can say why they are missing. A video that could not be
scanned gets one row with its error, so it appears in every table downstream.
"""

from __future__ import annotations

import logging
import math
import os
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pandas as pd

from .. import reasons
from ..config import with_defaults
from ..io.atomic import atomic_path
from ..io.decode import (
    VideoError,
    counted_times,
    iter_frames,
    open_video,
    reason,
    seek_to,
    slot_clock,
    stream_fps,
)
from ..io.hdr import hdr_transfer
from ..io.x264 import X264_THREADS, x264_options

log = logging.getLogger(__name__)

CLIP_COLUMNS = [
    "clip_id", "video_id", "scene", "window", "start_frame", "end_frame", "start_time", "end_time",
    "last_time", "duration", "n_frames", "fps", "frame_rate_mode", "width", "height",
    "source_path", "path", "split_reason", "error",
]  # fmt: skip
VFR_SPREAD = 0.05  # frame intervals that vary more than this (relative) make a video "variable"
# s: how far a constant rate's frame times, rounded by a container's clock, may lie from the
# straight line fitted to them: three quarters of a tick of the coarsest common clock
# (QuickTime's 1/600 s; Matroska and WebM keep milliseconds). A dropped frame at 240 fps moves
# the frames off the line by 2 ms
CLOCK_ROUNDING = 0.75 / 600 + 1e-6
# a stream's stated rate within this (relative) of its frames' own pace is the clips' rate
RATE_AGREEMENT = 0.005


def clip_id(video_id: str, k: int) -> str:
    return f"{video_id}_{k:04d}"


def skip_reason(clip) -> str | None:
    """Why a clip row is not analysed (its error, or the split's reason), else None."""
    if isinstance(clip.error, str):
        return clip.error
    if isinstance(clip.split_reason, str):
        return f"not analysed: {clip.split_reason}"
    return None


def last_time(clip) -> float | None:
    """The time of the clip's last frame; None for clip tables written before the column."""
    value = getattr(clip, "last_time", None)
    return None if value is None or pd.isna(value) else float(value)


def rows_in_clip(by_video: dict, clip) -> pd.DataFrame | None:
    """The per-frame rows (a ``frame`` column) of the clip's video that fall inside the clip;
    ``by_video`` maps video ids to that video's rows."""
    rows = by_video.get(clip.video_id)
    if rows is None:
        return None
    return rows[(rows["frame"] >= clip.start_frame) & (rows["frame"] < clip.end_frame)]


def scenes_to_clips(
    scenes: pd.DataFrame, source: pd.DataFrame, cfg: dict, frames: pd.DataFrame | None = None
) -> pd.DataFrame:
    """Clip rows (not yet materialised) for every scene of every video.

    Times are the decoder's: ``frames`` (the scan's per-frame table: video_id, frame, time) gives
    each frame's presentation time, so a clip's start and end times, duration and length bounds
    are real time, also at a variable frame rate (never ``frame / fps``). Frames the table skips
    (``scan.luma_stride`` > 1) get times interpolated between their recorded neighbours and
    the scenes' exact start times (a window boundary inside a scene may then be off by a frame's
    fraction at a constant rate, more at a variable one; readers take the nearest frame).
    """
    cfg = with_defaults("split", cfg)
    by_video = dict(tuple(scenes.groupby("video_id", sort=False)))
    times_of = {}
    if frames is not None and len(frames):
        for vid, g in frames.groupby("video_id", sort=False):
            g = g.sort_values("frame")
            times_of[vid] = (g["frame"].to_numpy(np.int64), g["time"].to_numpy(np.float64))
    rows = []
    whole = cfg["mode"] == "whole"
    for info in source.to_dict("records"):
        video_id = info["video_id"]
        first_id = video_id if whole else clip_id(video_id, 0)
        base = {
            "video_id": video_id, "fps": info["fps"], "width": info["width"], "height": info["height"],
            "source_path": info["path"], "path": info["path"],
        }  # fmt: skip
        if isinstance(info["duplicate_of"], str):
            # kept once: the copy is one row, never split or analysed, in every later table
            reason = reasons.split_duplicate(info["duplicate_of"])
            rows.append(base | {"clip_id": first_id, "split_reason": reason})
            continue
        group = by_video.get(video_id)
        error = info["error"] if isinstance(info["error"], str) else None
        if error is None and group is not None and group["error"].notna().any():
            error = group["error"].dropna().iloc[0]
        if error is None and group is None:
            error = "not scanned"
        if error is not None:
            # failures are data: one row per failed video, in this table and every later one
            rows.append(base | {"clip_id": first_id, "error": error})
            continue
        group = group.sort_values("scene")
        times = frame_times(group, times_of.get(video_id), float(base["fps"] or 0) or 30.0)
        if whole:
            rows.append(_whole_video(video_id, base, cfg, times, group))
        else:
            rows += _video_clips(video_id, group, base, cfg, times)
    return pd.DataFrame(rows, columns=CLIP_COLUMNS)


def scene_size(scene: dict) -> tuple[int, int] | None:
    """A scene row's display (width, height); None from a scan that did not record it."""
    w, h = scene.get("width"), scene.get("height")
    if w is None or h is None or pd.isna(w) or pd.isna(h):
        return None
    return int(w), int(h)


def _whole_video(
    video_id: str, base: dict, cfg: dict, times: np.ndarray, scenes: pd.DataFrame
) -> dict:
    """``split.mode: whole``: the video from its first frame to its last is one clip, named by
    the video's id (a trainer's sample id is then the video's). A video whose picture size
    changes is an error row: a clip has one size."""
    sizes = list(dict.fromkeys(s for s in map(scene_size, scenes.to_dict("records")) if s))
    # every size of the video, also of parts with no scene left (all blank); an older scan
    # recorded its scenes' sizes only
    every = scenes["video_sizes"].iloc[0] if "video_sizes" in scenes else None
    labels = every.split() if isinstance(every, str) else [f"{w}x{h}" for w, h in sizes]
    if len(labels) > 1:
        return base | {"clip_id": video_id, "error": f"the picture size changes ({', '.join(labels)}):"
                       " a whole-video clip has one size (split.mode: scenes cuts at each change)"}  # fmt: skip
    if sizes:
        base = base | {"width": sizes[0][0], "height": sizes[0][1]}
    n = len(times) - 1
    base = with_rate(base, times, video_id)
    short = n <= 0 or times[n] - times[0] < cfg["min_seconds"] - 1e-6
    row = _row(base, video_id, 0, 0, 0, 0, n, times, "too_short" if short else None)
    return row | {"clip_id": video_id}


def frame_times(scenes: pd.DataFrame, recorded, fps: float) -> np.ndarray:
    """Presentation time of every frame of a video, and the video's end as one more entry
    (``times[n]``: the end of its last frame). ``recorded``: (frame indices, times) from the
    scan, or None (an older scan): then the scenes' own times, with frames in between at
    ``fps``."""
    n = int(scenes["n_frames"].iloc[0])
    end = float(scenes["end_time"].iloc[-1])
    if recorded is not None and len(recorded[0]):
        # scene starts are exact whatever the table skips (the scan times every frame): pinned
        # too, so that a clip that starts at a cut starts at its frame's own time
        pins = scenes["start_frame"].to_numpy(np.int64), scenes["start_time"].to_numpy(np.float64)
        idx, first = np.unique(np.concatenate([recorded[0], pins[0]]), return_index=True)
        t = np.concatenate([recorded[1], pins[1]])[first]
    else:
        idx = scenes["start_frame"].to_numpy(np.int64)
        t = scenes["start_time"].to_numpy(np.float64)
    return np.append(fill_times(np.arange(n), idx, t, fps, end), end)


def fill_times(frames: np.ndarray, idx: np.ndarray, t: np.ndarray, fps: float, end=np.inf):
    """The times of ``frames`` from known ``(idx, t)`` (ascending frame indices): interpolated
    between them, and past the last one at ``fps``, never beyond ``end``."""
    times = np.interp(frames.astype(np.float64), idx, t)
    after = frames > idx[-1]
    times[after] = np.minimum(t[-1] + (frames[after] - idx[-1]) / fps, end)
    return times


def nearest_frame(times: np.ndarray, t: float, a: int, b: int) -> int:
    """The frame in ``(a, b)`` whose time is nearest ``t`` (the earlier one on a tie)."""
    i = int(np.searchsorted(times[a : b + 1], t)) + a
    if i > a and t - times[i - 1] <= times[i] - t + 1e-9:
        i -= 1
    return min(max(i, a + 1), b - 1)


def nearest_times(times: np.ndarray, wanted: np.ndarray) -> list[int]:
    """For each of ``wanted`` (ascending), the position in ``times`` (ascending) of the time
    nearest it, the later on a tie (within a microsecond: times are sums of ticks), as counting
    rounds half a step up."""
    if len(times) < 2:
        return [0] * len(wanted)
    i = np.clip(np.searchsorted(times, wanted), 1, len(times) - 1)
    earlier = wanted - times[i - 1] < times[i] - wanted - 1e-6
    return (i - earlier).clip(0, len(times) - 1).tolist()


class FrameTimes:
    """Each frame's presentation time from the scan's per-frame table, for variable-rate clips.
    Frames the table skips (``scan.luma_stride`` > 1) get times interpolated between their
    recorded neighbours and the clip's own first and last frame times (``start_time``,
    ``last_time``), which the split has exactly."""

    def __init__(self, frames: pd.DataFrame | None):
        self.given = frames is not None
        self.by_video = {}
        if frames is not None and len(frames):
            for vid, g in frames.sort_values(["video_id", "frame"]).groupby("video_id"):
                self.by_video[vid] = (g["frame"].to_numpy(np.float64),
                                      g["time"].to_numpy(np.float64))  # fmt: skip

    def of(self, clip) -> np.ndarray | None:
        """The times of ``clip``'s frames where its source's rate is variable, else None."""
        if getattr(clip, "frame_rate_mode", None) != "variable" or not self.given:
            return None
        known = self.by_video.get(clip.video_id)
        if known is None:
            log.warning("%s: variable frame rate, but the scan recorded no frame times: frames "
                        "are taken by count", clip.clip_id)  # fmt: skip
            return None
        a, b = int(clip.start_frame), int(clip.end_frame)
        idx, t = known
        last = last_time(clip)
        keep = (idx > a) & (idx < (b - 1 if last is not None else b))
        idx = np.concatenate([[a], idx[keep], [b - 1] if last is not None else []])
        t = np.concatenate([[float(clip.start_time)], t[keep], [last] if last is not None else []])
        # past the last known time (a clip table from before last_time): the clip's own pace;
        # never backwards: a frame handed out of order after damaged packets keeps its place
        return np.maximum.accumulate(fill_times(np.arange(a, b), idx, t, float(clip.fps)))


def rate_mode(times: np.ndarray) -> str:
    """``variable`` when the frame intervals spread more than :data:`VFR_SPREAD` around their
    median (phones, screen recordings, drops), else ``constant``; but a spread that a container
    clock's rounding explains is no variable rate: the frames then lie near one straight line
    (:data:`CLOCK_ROUNDING`). A 60-fps Matroska file's frames come 16 and 17 ms apart (6 % of a
    frame) and were "variable"; a rate change or a dropped frame moves the frames after it off
    any line by far more."""
    frame_times = np.asarray(times[:-1], np.float64)
    gaps = np.diff(frame_times)
    if len(gaps) < 2:
        return "constant"
    med = float(np.median(gaps))
    if med <= 0 or np.abs(gaps - med).max() <= VFR_SPREAD * med:
        return "constant"
    n = np.arange(len(frame_times), dtype=np.float64)
    slope, at0 = np.polyfit(n, frame_times, 1)
    off = float(np.abs(frame_times - (at0 + slope * n)).max())
    return "constant" if off <= CLOCK_ROUNDING else "variable"


def same_rate(a: float, b: float) -> bool:
    """Whether two frame rates agree within :data:`RATE_AGREEMENT` (no: one is unknown)."""
    return a > 0 and b > 0 and math.isfinite(a / b) and abs(a / b - 1) <= RATE_AGREEMENT


def with_rate(base: dict, times: np.ndarray, video_id: str) -> dict:
    """``base`` with the video's ``frame_rate_mode`` and, at a constant rate, the rate of its
    frames as ``fps``: the stream's stated (average) rate where the frames' own pace agrees
    within :data:`RATE_AGREEMENT`, else that pace (a line fitted to their times). A screen
    recording whose last frame is held 3 s states 17.2 fps for frames 33 ms apart, and a
    Matroska header can state 24 fps over frames 1/60 s apart: exported at the stated rate,
    their clips played 1.7 and 2.5 times too slowly. (A variable-rate clip's ``fps`` is its
    own average, :func:`_row`.)"""
    mode = rate_mode(times)
    base = base | {"frame_rate_mode": mode}
    t = np.asarray(times[:-1], np.float64)
    stated = float(base["fps"] or 0)
    if mode != "constant" or len(t) < 3:
        return base
    step = float(np.polyfit(np.arange(len(t), dtype=np.float64), t, 1)[0])
    if step <= 0 or same_rate(1 / step, stated):
        return base
    log.warning("%s: its frames come at %.3f fps, not at the %.3f fps of source.parquet: its "
                "clips take the frames' rate", video_id, 1 / step, stated)  # fmt: skip
    return base | {"fps": 1 / step}


def _video_clips(
    video_id: str, scenes: pd.DataFrame, base: dict, cfg: dict, times: np.ndarray
) -> list[dict]:
    n_total = len(times) - 1
    trim = cfg["trim_frames"]
    base = with_rate(base, times, video_id)
    out, k = [], 0
    for sc in scenes.to_dict("records"):
        first, end = int(sc["start_frame"]), int(sc["end_frame"])
        size = scene_size(sc)
        if size is not None:  # the scene's own picture size (a video's can change: scan.py)
            base = base | {"width": size[0], "height": size[1]}
        # trim only the sides that border a cut, not the start or end of the video
        if first > 0:
            first += trim
        if end < n_total:
            end -= trim
        for a, b in unheld(times, first, end, cfg["max_hold_seconds"]):
            length = times[b] - times[a] if b > a else 0.0
            if b <= a or length < cfg["min_seconds"] - 1e-6:  # times are sums of float ticks
                row = _row(base, video_id, k, sc["scene"], 0, a, max(a, b), times, "too_short")
                out.append(row)
                k += 1
                continue
            for w, (wa, wb, why) in enumerate(windows(times, a, b, cfg)):
                out.append(_row(base, video_id, k, sc["scene"], w, wa, wb, times, why))
                k += 1
    return out


def windows(times: np.ndarray, a: int, b: int, cfg: dict) -> list[tuple[int, int, str | None]]:
    """A shot's frames ``[a, b)`` (at least ``min_seconds`` long) as clips of at most
    ``max_seconds``: windows of equal real time, each starting on the frame nearest its start
    time. Where one of those would be shorter than ``min_seconds`` (a 3.5-s shot with min 2 and
    max 3 made two of 1.75 s, both kept; edges on frames can also shave a window under it),
    the windows are ``max_seconds`` long from the shot's start instead, each ending on the first
    frame at or after that (so at least ``max_seconds``, less than a frame over), and the rest
    is a window where it lasts ``min_seconds``, else a ``too_short`` row."""
    length, most, least = times[b] - times[a], cfg["max_seconds"], cfg["min_seconds"]
    n_win = max(1, math.ceil(length / most - 1e-9))
    targets = times[a] + np.arange(1, n_win) * length / n_win
    edges = [a, *(nearest_frame(times, t, a, b) for t in targets), b]
    spans = list(zip(edges, edges[1:], strict=False))
    if all(times[y] - times[x] >= least - 1e-6 for x, y in spans):
        return [(x, y, None) for x, y in spans]
    edges = [a]
    while True:
        nxt = int(np.searchsorted(times, times[edges[-1]] + most - 1e-6))
        if nxt >= b:
            break
        edges.append(max(nxt, edges[-1] + 1))
    out: list[tuple[int, int, str | None]] = [
        (x, y, None) for x, y in zip(edges, edges[1:], strict=False)
    ]
    rest = times[b] - times[edges[-1]] >= least - 1e-6
    return out + [(edges[-1], b, None if rest else "too_short")]


def unheld(times: np.ndarray, a: int, b: int, hold: float | None) -> list[tuple[int, int]]:
    """Frames ``[a, b)`` as the runs between frames shown longer than ``hold`` seconds (the
    next frame's time comes that much later: a recording paused and resumed, a screen recorder
    that sends no frame while nothing changes). Such a frame belongs to no clip, as a cut's
    transition frames: exported at a constant rate, it was a freeze as long as its hold (a 20-s
    pause made a 20-s clip of one frame). ``[(a, b)]`` when none is held; ``[(a, a)]``, no frame
    (a ``too_short`` row), when every frame is (a slideshow)."""
    if hold is None or b <= a:
        return [(a, b)]
    held = np.flatnonzero(np.diff(times[a : b + 1]) > hold) + a
    if not len(held):
        return [(a, b)]
    runs = [(x, y) for x, y in zip([a, *(held + 1)], [*held, b], strict=True) if y > x]
    return runs or [(a, a)]


def _row(base, video_id, k, scene, window, a, b, times, reason) -> dict:
    """A clip over frames ``[a, b)``: from frame a's time to frame b's (the video's end for the
    last frame), and ``last_time``, frame b - 1's own time; its ``fps`` is its own average rate
    (the source's, for constant-rate video)."""
    start, end = float(times[a]), float(times[b])
    last = float(times[b - 1]) if b > a else start
    n = b - a
    rate = float(base["fps"] or 0)
    if n and end > start and (base["frame_rate_mode"] == "variable" or not rate):
        rate = n / (end - start)
    return base | {
        "clip_id": clip_id(video_id, k), "scene": scene, "window": window,
        "start_frame": a, "end_frame": b, "start_time": start, "end_time": end,
        "last_time": last, "duration": end - start, "n_frames": n, "fps": rate,
        "split_reason": reason, "error": None,
    }  # fmt: skip


def materialize(clips: pd.DataFrame, out_dir: Path, cfg: dict) -> pd.DataFrame:
    """Write clip files for ``copy`` or ``reencode``; ``virtual`` leaves clips as time ranges."""
    mode = cfg["materialize"]
    out_dir.mkdir(parents=True, exist_ok=True)
    if mode == "virtual":
        return clips
    clips = clips.copy()
    todo = clips["error"].isna() & clips["split_reason"].isna()
    fallbacks: dict[str, int] = {}
    for i in clips.index[todo]:
        row = clips.loc[i]
        dest = out_dir / f"{row['clip_id']}.mp4"
        args = (row["source_path"], dest, row["start_time"], row["end_time"])
        encode = {"crf": cfg["crf"], "preset": cfg["preset"], "fps": row.get("fps"),
                  "variable": row.get("frame_rate_mode") == "variable"}  # fmt: skip
        try:
            if mode == "copy":
                why = copy_or_reencode(*args, **encode)
                if why:
                    fallbacks[why] = fallbacks.get(why, 0) + 1
            else:
                reencode(*args, **encode)
            clips.loc[i, "path"] = os.fspath(dest.resolve())
        except (VideoError, av.FFmpegError) as exc:
            clips.loc[i, "error"] = f"{mode} failed: {exc}"
    for why, n in fallbacks.items():
        log.warning("materialize copy: %d clip(s) re-encoded instead: %s", n, why)
    return clips


class CopyUnsupported(VideoError):
    """The clip's codec cannot be stream-copied into an MP4 file (VP8, ProRes, DNxHR, FLV1,
    WMV): the clip is re-encoded instead."""


def copy_or_reencode(src: str, dest: Path, start: float, end: float, **encode) -> str | None:
    """A stream copy of the clip (:func:`stream_copy`), or, for a codec MP4 cannot hold, the
    clip re-encoded (:func:`reencode` with ``encode``; frame-exact, as MP4). Returns why it was
    re-encoded, or None for a copy."""
    try:
        stream_copy(src, dest, start, end)
        return None
    except CopyUnsupported as exc:
        reencode(src, dest, start, end, **encode)
        return str(exc)


def stream_copy(src: str, dest: Path, start: float, end: float) -> None:
    """Remux packets from the last keyframe at or before ``start`` up to ``end``
    (keyframe-accurate).

    In decode order a B-frame shown before ``end`` can follow a frame shown after it, so packets
    are taken while their decode time is before ``end``; the ones after the last packet shown
    before ``end`` are dropped, and the ones before it are kept as references (a clip may show a
    frame or two past ``end``).
    """
    with open_video(src) as (container, stream):
        if counted_times(container, stream):
            # AVI states decode times only, and packs B-frames with the frame before them: the
            # copies lost their last frame (DivX and old cameras' MPEG-4)
            raise CopyUnsupported("AVI with B-frames has no presentation times to cut by")
        tb = stream.time_base
        zero = stream.start_time or 0  # times are from the stream's start, packets' are not
        # an AVI without B-frames shows each packet at its decode time, its slot (H.264's pts
        # is a slot late there: the copy lost the clip's last frame)
        slots = slot_clock(stream)

        def secs(ts) -> float:
            return float((ts - zero) * tb)

        back = 0.0
        while True:  # a seek must land on a keyframe at or before start (TS and AVI land late)
            at = max(0.0, start - back)
            seek_to(container, stream, at)
            packets = []
            for packet in container.demux(stream):
                if slots and packet.dts is not None:
                    packet.pts = packet.dts
                # Matroska leaves the first packet's decode time out where B-frames follow
                # (filled in below): skipping it skipped the video's first keyframe
                decoded_at = packet.dts if packet.dts is not None else packet.pts
                if decoded_at is None or (not packets and not packet.is_keyframe):
                    continue
                if secs(decoded_at) >= end:
                    break
                packets.append(packet)
            first = packets[0].pts if packets else None
            if at <= 0 or (first is not None and secs(first) <= start + 1e-4):
                break
            back = max(1.0, 2 * back)
        if not packets:
            raise VideoError("no keyframe in range")
        # from the last keyframe shown at or before start: a seek that landed early (MPEG-TS,
        # AVI) put whole GOPs of the shot before into the clip
        keys = [i for i, p in enumerate(packets)
                if p.is_keyframe and p.pts is not None and secs(p.pts) <= start + 1e-4]  # fmt: skip
        packets = packets[keys[-1] :] if keys else packets
        shown = [i for i, p in enumerate(packets) if p.pts is not None and secs(p.pts) < end]
        packets = packets[: shown[-1] + 1] if shown else packets[:1]
        coded = first_picture_size(stream, packets)
        if coded is not None and coded != (stream.codec_context.width, stream.codec_context.height):
            # the MP4 would carry the stream's first size in its header (and H.264's parameter
            # sets of that size) over pictures of another: a stream whose size changes
            head = f"{stream.codec_context.width}x{stream.codec_context.height}"
            raise CopyUnsupported(
                f"the clip's pictures are {coded[0]}x{coded[1]}, the stream's header {head}"
            )
        fill_decode_times(packets, stream)
        offset = packets[0].dts
        with atomic_path(dest) as tmp, av.open(os.fspath(tmp), "w", format="mp4") as out:
            try:
                # opaque: the stream's codec as it is, not looked up by its decoder's name
                # (AV1 decodes with libdav1d, which is no encoder: "unknown codec")
                ostream = out.add_stream_from_template(stream, opaque=True)
            except ValueError as exc:  # FFmpeg's MP4 muxer has no tag for this codec
                raise CopyUnsupported(
                    f"MP4 cannot hold {stream.codec_context.name} ({reason(exc)})"
                ) from None
            for packet in packets:
                packet.dts -= offset
                if packet.pts is not None:
                    packet.pts -= offset
                packet.stream = ostream
                out.mux(packet)


def fill_decode_times(packets: list, stream) -> None:
    """Give packets without a decode time one, a frame apart from their neighbours in decode
    order (MP4 needs them; a Matroska stream with B-frames leaves the first one's out). Raises
    :class:`CopyUnsupported` where that would decode a frame after it is shown."""
    step = next((p.duration for p in packets if p.duration), None) or max(
        1, round(1 / ((stream_fps(stream) or 25.0) * stream.time_base))
    )
    known = next((i for i, p in enumerate(packets) if p.dts is not None), None)
    if known is None:
        raise CopyUnsupported("no packet states a decode time")
    for i in range(known - 1, -1, -1):
        packets[i].dts = packets[i + 1].dts - step
    for i in range(known + 1, len(packets)):
        if packets[i].dts is None:
            packets[i].dts = packets[i - 1].dts + step
    if any(p.pts is not None and p.dts > p.pts for p in packets):
        raise CopyUnsupported("decode times cannot be inferred for the packets")


def first_picture_size(stream, packets) -> tuple[int, int] | None:
    """Coded (width, height) of the first picture ``packets`` decode to, on a decoder of its
    own (None when none decodes in the first few packets)."""
    ctx = av.CodecContext.create(stream.codec_context.name, "r")
    if stream.codec_context.extradata:
        ctx.extradata = stream.codec_context.extradata
    try:
        for packet in [*packets[:8], None]:
            for frame in ctx.decode(packet):
                return frame.width, frame.height
    except av.FFmpegError:
        return None
    return None


def reencode(
    src: str,
    dest: Path,
    start: float,
    end: float,
    *,
    crf: int = 18,
    preset: str = "veryfast",
    max_height: int | None = None,
    variable: bool = False,
    fps: float | None = None,
) -> dict:
    """Frame-accurate clip: decode ``[start, end)`` and encode it with libx264 (rotation applied),
    the shorter side at most ``max_height``; written atomically. Returns ``{width, height,
    n_frames, fps}``. Encoded with ``x264_options``, so the same frames give the same bytes
    (a dataset is rebuilt byte for byte from its config).

    ``variable`` (a source of variable frame rate): each frame keeps its own time, from the
    clip's first, and ``fps`` is the clip's average rate. At one constant rate (the stream's
    average) a 3-s shot of 10-fps frames in a stream that averages 19.8 fps played in 1.5 s,
    and a 2.5-s shot of 30-fps frames in 3.8 s.

    ``fps``: a constant-rate clip's own rate (the clip table's, :func:`with_rate`), used where
    the stream states another (by over :data:`RATE_AGREEMENT`); otherwise the stream's stated
    rate is kept, exact (29.97 is 30000/1001). A variable-rate clip's frames keep their times
    whatever the rate the stream names, so its bytes do not depend on ``fps``."""
    with open_video(src) as (_, s):
        rate = s.average_rate or Fraction(30)
    if not variable and fps is not None and fps > 0 and not same_rate(float(rate), fps):
        rate = Fraction(fps).limit_denominator(1001)
    with atomic_path(dest) as tmp, av.open(os.fspath(tmp), "w", format="mp4") as out:
        options = x264_options(crf, preset, bframes=not variable)
        ostream = out.add_stream("libx264", rate=rate, options=options)
        if variable:
            ostream.codec_context.time_base = VFR_TIME_BASE
        ostream.pix_fmt = "yuv420p"
        # A fixed thread count, not the job's: x264's output depends on it (frame threads and
        # lookahead), so `--cores 1` and `--cores 8` would write different bytes.
        ostream.codec_context.thread_count = X264_THREADS
        n, width, matrix, held, t0 = 0, None, None, None, 0.0
        durations: dict[int, int] = {}  # a variable-rate frame's duration by its pts
        damaged: list[str] = []  # skipped, as the scan skipped them: the clip's frames decode
        for fr in iter_frames(src, start=start, end=end, errors=damaged):
            if n == 0:
                # square pixels at the display aspect (rotation and sample aspect applied)
                w0, h0 = fr.display_size()
                width = target_width(w0, h0, max_height) or (w0 if fr.sar != 1.0 else None)
                matrix = colour_tags(fr.av_frame, ostream.codec_context)
            img = fr.rgb(width) if width else fr.rgb()
            if n == 0:
                ostream.height, ostream.width = img.shape[0] // 2 * 2, img.shape[1] // 2 * 2
            frame = av.VideoFrame.from_ndarray(
                np.ascontiguousarray(img[: ostream.height, : ostream.width]), format="rgb24"
            )
            if matrix is not None:
                frame = frame.reformat(format="yuv420p", dst_colorspace=matrix)
            n += 1
            if not variable:
                frame.pts, frame.time_base = n - 1, 1 / Fraction(rate)
                for packet in ostream.encode(frame):
                    out.mux(packet)
                continue
            # each frame lasts until the next one (the last until the clip's end): held back
            # one frame, so that the file plays for the clip's own duration
            if n == 1:
                t0 = fr.time
            pts = round((fr.time - t0) / VFR_TIME_BASE)
            frame.pts, frame.time_base = max(pts, held.pts + 1) if held else pts, VFR_TIME_BASE
            if held is not None:
                durations[held.pts] = frame.pts - held.pts
                mux_timed(out, ostream.encode(held), durations)
            held = frame
        if n == 0:
            raise VideoError("no frames in range" + (f" ({damaged[0]})" if damaged else ""))
        if damaged:
            log.warning("%s [%.3f, %.3f) s: %d damaged packet(s) skipped, as the scan skipped "
                        "them", src, start, end, len(damaged))  # fmt: skip
        if held is not None:
            durations[held.pts] = max(1, round((end - t0) / VFR_TIME_BASE) - held.pts)
            mux_timed(out, ostream.encode(held), durations)
        mux_timed(out, ostream.encode(), durations)
        size = {"width": ostream.width, "height": ostream.height}
    if variable and end > start:
        rate = n / (end - start)
    return size | {"n_frames": n, "fps": float(rate)}


# the clock of a variable-rate clip's frames: MPEG's 90 kHz, exact for every common rate
VFR_TIME_BASE = Fraction(1, 90000)


def mux_timed(out, packets, durations: dict[int, int]) -> None:
    """Mux ``packets``, each with its frame's duration (by pts) where known: the encoder passes
    no duration on, and MP4 stores one per frame (the last frame's is the file's end)."""
    for packet in packets:
        if packet.pts in durations:
            packet.duration = durations.pop(packet.pts)
        out.mux(packet)


# A source's AVColorSpace -> the swscale matrix its re-encoded clip is written with
_EXPORT_MATRICES = {1: "ITU709", 5: "ITU601", 6: "ITU601", 9: "BT2020", 10: "BT2020"}


def colour_tags(source: av.VideoFrame, ctx) -> str | None:
    """Tag the encoder ``ctx`` with the source frame's colour matrix, primaries and transfer,
    and return the matrix to convert RGB with (None: an untagged source, written untagged with
    FFmpeg's default BT.601, as before). An untagged HD clip is shown as BT.709 by most players,
    so a BT.709 source written the default way would play with shifted colours. An HDR source
    (PQ, HLG) is written as what :meth:`Frame.rgb` made of it, SDR BT.709, and tagged so."""
    if hdr_transfer(source) is not None:
        ctx.colorspace = ctx.color_primaries = ctx.color_trc = 1  # BT.709
        return "ITU709"
    matrix = _EXPORT_MATRICES.get(int(source.colorspace))
    if matrix is not None:
        ctx.colorspace = int(source.colorspace)
        ctx.color_primaries = int(source.color_primaries)
        ctx.color_trc = int(source.color_trc)
    return matrix


def target_width(width: int, height: int, max_height: int | None) -> int | None:
    """Display width after the downscale that makes the shorter side at most ``max_height``
    (None: no downscale). The shorter side: 720 gives 1280x720 landscape and 720x1280 portrait."""
    if not max_height or min(width, height) <= max_height:
        return None
    return max(2, int(round(width * max_height / min(width, height))) // 2 * 2)
