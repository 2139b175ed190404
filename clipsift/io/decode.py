"""All video reading goes through this module (PyAV).

Why it looks the way it does (figures measured by bench/throughput.py, bench/results/):
- Small analysis frames come from the decoded Y (and U/V) planes resized with OpenCV, which costs
  about a sixth of PyAV's own scaler at 1080p.
- One decoding thread per process by default: threads raise wall-clock speed but cost CPU, and the
  pipeline gets its parallelism from running one job per core.
- Containers are always closed (context managers), since leaked containers are a known memory leak
  of video pipelines.
- Rotation from the display matrix is applied to every array we hand out; frame indices count
  decoded frames and times come from each frame's pts, so variable frame rate stays correct.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from fractions import Fraction

import av
import cv2
import numpy as np

PLANAR_420 = {"yuv420p", "yuvj420p"}


class VideoError(Exception):
    """The video cannot be read; the message is the reason recorded in the tables."""


@contextmanager
def open_video(
    path: str | os.PathLike,
    *,
    threads: int = 1,
    skip_loop_filter: bool = False,
    export_mvs: bool = False,
    skip_frame: str | None = None,
) -> Iterator[tuple[av.container.InputContainer, av.video.stream.VideoStream]]:
    """Open ``path`` and yield ``(container, first video stream)``; always closes the container."""
    try:
        container = av.open(os.fspath(path), metadata_errors="ignore")
    except (av.FFmpegError, OSError, UnicodeDecodeError) as exc:
        raise VideoError(f"cannot open: {reason(exc)}") from exc
    try:
        if not container.streams.video:
            raise VideoError("no video stream")
        stream = container.streams.video[0]
        ctx = stream.codec_context
        if threads and threads > 1:
            ctx.thread_type = "AUTO"
            ctx.thread_count = threads
        else:
            ctx.thread_count = 1
        options = {}
        if skip_loop_filter:
            # analysis only: 8-17 % faster decoding, slightly blockier pixels
            options["skip_loop_filter"] = "all"
        if export_mvs:
            options["flags2"] = "+export_mvs"
        if options:
            ctx.options = options
        if skip_frame:
            ctx.skip_frame = skip_frame  # e.g. "NONKEY" (keyframes only), "NONREF"
        yield container, stream
    finally:
        container.close()


def reason(exc: BaseException) -> str:
    """First line of an error, short enough for a table cell."""
    msg = str(exc).strip() or type(exc).__name__
    return msg.splitlines()[0][:300]


def sample_aspect(stream) -> float:
    """The stream's sample (pixel) aspect ratio as a float; 1.0 when unset or invalid."""
    sar = stream.sample_aspect_ratio or stream.codec_context.sample_aspect_ratio
    try:
        value = float(sar) if sar else 1.0
    except (TypeError, ZeroDivisionError):
        return 1.0
    return value if 0.1 < value < 10 else 1.0


def stream_fps(stream) -> float:
    rate = stream.average_rate or stream.guessed_rate or stream.base_rate
    return float(rate) if rate else 0.0


def probe(path: str | os.PathLike) -> dict:
    """Container facts plus one decoded frame (to prove the video decodes and read its rotation).

    Never raises: an unreadable video returns ``{"error": reason}`` with the other fields empty.
    """
    out = {
        "duration": None,
        "fps": None,
        "n_frames": None,
        "width": None,
        "height": None,
        "rotation": 0,
        "sar": None,
        "codec": None,
        "pix_fmt": None,
        "bit_rate": None,
        "error": None,
    }
    try:
        if os.path.getsize(path) == 0:
            raise VideoError("empty file")
        with open_video(path) as (container, stream):
            ctx = stream.codec_context
            out["codec"] = ctx.name
            out["pix_fmt"] = ctx.pix_fmt
            out["bit_rate"] = int(container.bit_rate or ctx.bit_rate or 0) or None
            fps = stream_fps(stream)
            out["fps"] = fps or None
            duration = None
            if stream.duration and stream.time_base:
                duration = float(stream.duration * stream.time_base)
            elif container.duration:
                duration = container.duration / av.time_base
            first = None
            for frame in container.decode(stream):
                first = frame
                break
            if first is None:
                raise VideoError("no decodable frame")
            rotation = int(first.rotation or 0) % 360
            out["rotation"] = rotation
            sar = sample_aspect(stream)
            out["sar"] = sar
            # what a viewer sees: rotation applied, non-square pixels at the display aspect
            out["width"], out["height"] = Frame(0, 0.0, first, sar).display_size()
            n = stream.frames or (round(duration * fps) if duration and fps else None)
            out["n_frames"] = int(n) if n else None
            if duration is None and n and fps:
                duration = n / fps
            out["duration"] = duration
            if not duration or duration <= 0:
                raise VideoError("zero duration")
    except VideoError as exc:
        out["error"] = str(exc)
    except (av.FFmpegError, OSError, ValueError) as exc:
        out["error"] = f"probe failed: {reason(exc)}"
    return out


# ----------------------------------------------------------------------------- frames


@dataclass
class Frame:
    """One decoded frame: its index among decoded frames, its time in seconds, the PyAV frame,
    and the stream's sample aspect ratio (non-square pixels: display width = coded width x sar).

    Sized outputs (``gray(width)``, ``bgr(width)``, ``analysis``, ``rgb(size)``) are what a
    viewer sees: rotation applied and square pixels at the display aspect. ``luma()`` and the
    unsized forms keep the coded pixels (rotated), for measures on the full-resolution plane."""

    index: int
    time: float
    av_frame: av.VideoFrame
    sar: float = 1.0

    @property
    def rotation(self) -> int:
        return int(self.av_frame.rotation or 0) % 360

    def display_size(self) -> tuple[int, int]:
        """(width, height) a viewer sees (rotation and sample aspect applied)."""
        w, h = round(self.av_frame.width * self.sar), self.av_frame.height
        return (h, w) if self.rotation in (90, 270) else (w, h)

    def _sar(self) -> float:
        """Horizontal pixel aspect of the rotated image (a quarter turn swaps the axes)."""
        return 1.0 / self.sar if self.rotation in (90, 270) else self.sar

    def luma(self) -> np.ndarray:
        """Full-size Y plane (a view where possible), rotation applied."""
        return _rotate(_plane(self.av_frame, 0), self.rotation)

    def gray(self, width: int | None = None) -> np.ndarray:
        """Y plane resized to ``width`` (aspect kept), rotation applied."""
        y = self.luma()
        return y if width is None else resize_to_width(y, width, self._sar())

    def bgr(self, width: int | None = None) -> np.ndarray:
        """BGR image, optionally resized to ``width`` before colour conversion (cheap path)."""
        if width is not None and self.av_frame.format.name in PLANAR_420:
            return self.analysis(width)[1]
        img = _rotate(self.av_frame.to_ndarray(format="bgr24"), self.rotation)
        return img if width is None else resize_to_width(img, width, self._sar())

    def analysis(self, width: int) -> tuple[np.ndarray, np.ndarray]:
        """Small gray and BGR frames of display width ``width`` from one resize of each plane."""
        f = self.av_frame
        if f.format.name not in PLANAR_420:
            img = _rotate(f.to_ndarray(format="bgr24"), self.rotation)
            bgr = resize_to_width(img, width, self._sar())
            return cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY), bgr
        y = _plane(f, 0)
        h0, w0 = y.shape
        w, h = _even_size(w0, h0, width, self.rotation, self.sar)
        # 4:2:0 planes resized separately, then one colour conversion at the small size
        i420 = np.empty((h * 3 // 2, w), np.uint8)
        i420[:h] = shrink(y, (w, h))
        u = shrink(_plane(f, 1), (w // 2, h // 2))
        v = shrink(_plane(f, 2), (w // 2, h // 2))
        i420.reshape(-1)[h * w :] = np.concatenate([u.ravel(), v.ravel()])  # any even h
        bgr = cv2.cvtColor(i420, cv2.COLOR_YUV2BGR_I420)
        return _rotate(i420[:h], self.rotation), _rotate(bgr, self.rotation)

    def rgb(self, size: int | tuple[int, int] | None = None) -> np.ndarray:
        """RGB image; ``size`` is a width (aspect kept) or ``(width, height)``."""
        img = self.bgr(size if isinstance(size, int) else None)
        if isinstance(size, tuple):
            img = cv2.resize(img, size, interpolation=cv2.INTER_AREA)
        return cv2.cvtColor(img, cv2.COLOR_BGR2RGB)


def _plane(frame: av.VideoFrame, i: int) -> np.ndarray:
    if frame.format.name not in PLANAR_420:
        if i == 0:
            return frame.to_ndarray(format="gray")
        raise ValueError("chroma planes only for 4:2:0 input")
    plane = frame.planes[i]
    h = frame.height if i == 0 else (frame.height + 1) // 2
    w = frame.width if i == 0 else (frame.width + 1) // 2
    buf = np.frombuffer(plane, np.uint8)
    return buf.reshape(-1, plane.line_size)[:h, :w]


def _rotate(img: np.ndarray, rotation: int) -> np.ndarray:
    # the display matrix rotation is counter-clockwise in degrees
    if rotation == 90:
        return cv2.rotate(img, cv2.ROTATE_90_COUNTERCLOCKWISE)
    if rotation == 180:
        return cv2.rotate(img, cv2.ROTATE_180)
    if rotation == 270:
        return cv2.rotate(img, cv2.ROTATE_90_CLOCKWISE)
    return img


def _even_size(w0: int, h0: int, width: int, rotation: int, sar: float = 1.0) -> tuple[int, int]:
    """Coded-orientation size to resize a ``w0`` x ``h0`` coded frame to, so that it shows
    ``width`` wide (0: its own display width) with square pixels; even numbers for 4:2:0. The
    result is (display width, height) swapped back for a quarter-turned frame."""
    dw, dh = w0 * sar, float(h0)
    if rotation in (90, 270):
        dw, dh = dh, dw
    tw = max(2, int(round(width or dw)) // 2 * 2)
    th = max(2, int(round(dh * tw / dw)) // 2 * 2)
    return (th, tw) if rotation in (90, 270) else (tw, th)


def shrink(img: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Downscale to ``size`` (w, h): exact halvings with INTER_LINEAR (a 2x2 mean), then one
    INTER_AREA step. One INTER_AREA resize from 1080p cost 62 % of decoding the frame; this
    costs about half of that for frames within a grey level (bench/README.md)."""
    w, h = size
    while img.shape[1] >= 2 * w and img.shape[0] >= 2 * h:
        img = cv2.resize(
            img, (img.shape[1] // 2, img.shape[0] // 2), interpolation=cv2.INTER_LINEAR
        )
    if img.shape[1] == w and img.shape[0] == h:
        return img
    return cv2.resize(img, (w, h), interpolation=cv2.INTER_AREA)


def resize_to_width(img: np.ndarray, width: int, sar: float = 1.0) -> np.ndarray:
    """``img`` (pixels ``sar`` times as wide as high) at ``width``, square pixels."""
    h0, w0 = img.shape[:2]
    if w0 == width and sar == 1.0:
        return img
    h = max(1, int(round(h0 * width / (w0 * sar))))
    interp = cv2.INTER_AREA if width < w0 else cv2.INTER_LINEAR
    return cv2.resize(img, (width, h), interpolation=interp)


SEEK_TOLERANCE = 1e-4  # s: times are the decoder's own, so a frame "at" a time matches closely


def iter_frames(
    path: str | os.PathLike,
    *,
    start: float | None = None,
    end: float | None = None,
    threads: int = 1,
    skip_loop_filter: bool = False,
    errors: list[str] | None = None,
) -> Iterator[Frame]:
    """Decode frames in order, from the first frame at or after ``start`` (seconds) up to ``end``
    (exclusive), by the frames' own timestamps.

    Indices count decoded frames from the start of the video when ``start`` is None; after a seek
    they are estimated from the time and the average frame rate (times are exact).

    ``errors``: a list to tolerate damaged data in a whole-video decode (``start`` None): a packet
    the decoder refuses is skipped and its error appended, and decoding goes on with the next
    one (a 4 KB corruption in the middle of a video cost 16 of 180 frames, not the 136 after
    it). Without it, the first decode error raises :class:`VideoError`.
    """
    with open_video(path, threads=threads, skip_loop_filter=skip_loop_filter) as (
        container,
        stream,
    ):
        fps = stream_fps(stream) or 30.0
        sar = sample_aspect(stream)
        counted = counted_times(container)
        seek = start and not counted
        if seek:
            frames = seek_decode(container, stream, start)
        elif errors is not None:
            frames = tolerant_decode(container, stream, errors)
        else:
            frames = container.decode(stream)
        base = None  # after a seek: the estimated index of the first frame decoded
        try:
            for n, av_frame in enumerate(frames):
                t = n / fps if counted else frame_time(av_frame, stream)
                if start is not None and t < start - SEEK_TOLERANCE:
                    continue
                if end is not None and t >= end - SEEK_TOLERANCE:
                    break
                if seek and base is None:
                    base = int(round(t * fps)) - n
                yield Frame(base + n if seek else n, t, av_frame, sar)
        except av.FFmpegError as exc:
            raise VideoError(f"decode failed: {reason(exc)}") from exc


def tolerant_decode(container, stream, errors: list[str]) -> Iterator[av.VideoFrame]:
    """Every frame the decoder can make, packet by packet: a refused packet is skipped and its
    error appended to ``errors``."""
    for packet in container.demux(stream):
        try:
            frames = packet.decode()
        except av.FFmpegError as exc:
            errors.append(reason(exc))
            continue
        yield from frames


def counted_times(container) -> bool:
    """Whether frame times must come from counting decoded frames: AVI has no presentation
    timestamps (with B-frames, PyAV hands out reordered ones), and is constant-rate by design;
    such a file is decoded from its start, never seeked."""
    return container.format.name == "avi"


def seek_to(container, stream, at: float) -> None:
    """Seek to the keyframe at or before ``at`` seconds from the stream's start (to the file's
    start for 0: a seek to the first pts lands late in MPEG-TS). Callers check where it landed."""
    try:
        if at <= 0:
            container.seek(0)
        else:
            pts = int(Fraction(at).limit_denominator(10**6) / stream.time_base)
            container.seek((stream.start_time or 0) + pts, stream=stream, backward=True)
    except av.FFmpegError as exc:
        raise VideoError(f"seek failed: {reason(exc)}") from exc


def seek_decode(container, stream, target: float) -> Iterator[av.VideoFrame]:
    """Frames decoded from a seek before ``target`` (seconds from the stream's start), verified:
    a seek must land at or before the target, or frames at the target would be lost (MPEG-TS
    and AVI seek by byte estimates, and land late). While the first frame comes after the
    target, seek again further back (1, 2, 4... s), down to the start of the stream."""
    back = 0.0
    while True:
        at = max(0.0, target - back)
        seek_to(container, stream, at)
        frames = container.decode(stream)
        first = next(frames, None)
        if first is None:
            if at <= 0:
                return
        elif frame_time(first, stream) <= target + SEEK_TOLERANCE or at <= 0:
            yield first
            yield from frames
            return
        back = max(1.0, 2 * back)


def frame_time(av_frame, stream) -> float:
    """Seconds from the start of the stream (pts minus the stream's start time)."""
    if av_frame.pts is None:
        return float(av_frame.time or 0.0)
    start = stream.start_time or 0
    return float((av_frame.pts - start) * stream.time_base)


def read_frames_at(
    path: str | os.PathLike,
    times: Sequence[float],
    *,
    size: int | tuple[int, int] | None = None,
    fmt: str = "rgb",
) -> list[np.ndarray]:
    """Frames nearest to each time in ``times`` (seconds; a time halfway between two frames
    gives the earlier), seeking to keyframes as needed.

    ``fmt`` is ``rgb``, ``bgr`` or ``gray``. Times are visited in ascending order on one open
    container: when the next target lies shortly ahead we decode forward instead of seeking.
    """
    if not len(times):
        return []
    order = np.argsort(times)
    result: list[np.ndarray | None] = [None] * len(times)
    with open_video(path) as (container, stream):
        fps = stream_fps(stream) or 30.0
        counted = counted_times(container)  # then one pass from the start, in ascending time
        decoder = None
        current = None  # last decoded (time, frame)
        gop, last_key = (
            2.0,
            None,
        )  # longest keyframe interval seen (s): seeking closer gains nothing
        for idx in order:
            target = float(times[idx])
            if counted and decoder is None:
                decoder, current = enumerate(container.decode(stream)), None
            elif not counted and (
                current is None or target < current[0] - 1e-6 or target - current[0] > gop
            ):
                decoder = enumerate(seek_decode(container, stream, target))
                current, last_key = None, None
            chosen = current
            try:
                for n, av_frame in decoder:
                    t = n / fps if counted else frame_time(av_frame, stream)
                    current = (t, av_frame)
                    if av_frame.key_frame:
                        if last_key is not None and t > last_key:
                            gop = max(gop, t - last_key)
                        last_key = t
                    if t >= target - 0.5 / fps:
                        # nearest of this frame and the previous one; on a tie the previous,
                        # the frame on screen at that time (mid-frame times stay in the shot)
                        if chosen is None or abs(t - target) < abs(chosen[0] - target) - 1e-9:
                            chosen = current
                        break
                    chosen = current
            except av.FFmpegError as exc:
                raise VideoError(f"decode failed: {reason(exc)}") from exc
            if chosen is None:
                raise VideoError(f"no frame at {target:.3f}s")
            frame = Frame(0, chosen[0], chosen[1], sample_aspect(stream))
            if fmt == "gray":
                img = frame.gray(size if isinstance(size, int) else None)
                if isinstance(size, tuple):
                    img = cv2.resize(img, size, interpolation=cv2.INTER_AREA)
            elif fmt == "bgr":
                img = frame.bgr(size if isinstance(size, int) else None)
                if isinstance(size, tuple):
                    img = cv2.resize(img, size, interpolation=cv2.INTER_AREA)
            else:
                img = frame.rgb(size)
            result[idx] = np.ascontiguousarray(img)
    return result  # type: ignore[return-value]
