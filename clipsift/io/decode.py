"""All video reading goes through this module (PyAV).

Why it looks the way it does (figures measured by bench/throughput.py, bench/results/):
- Frames are handed out as :class:`clipsift.io.frames.Frame` (planes, rotation and square pixels
  at the display aspect, resized with OpenCV).
- One decoding thread per process by default: threads raise wall-clock speed but cost CPU, and the
  pipeline gets its parallelism from running one job per core.
- Containers are always closed (context managers), since leaked containers are a known memory leak
  of video pipelines.
- Rotation from the display matrix is applied to every array we hand out; frame indices count
  decoded frames and times come from each frame's pts, so variable frame rate stays correct.
- Frames coded as fields are deinterlaced as they are decoded, one picture per frame
  (:mod:`clipsift.io.deinterlace`), so no reader sees combing.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from fractions import Fraction

import av
import cv2
import numpy as np
from av.stream import Disposition

from .deinterlace import progressive
from .frames import Frame
from .hdr import transfer_name

log = logging.getLogger(__name__)


class VideoError(Exception):
    """The video cannot be read; the message is the reason recorded in the tables."""


# ISO base media files (MP4, MOV): their index holds every fact read before decoding (times,
# frame count, duration, start time, container SAR), so FFmpeg's stream-info probe need not
# decode a frame to find them. Other containers differ without it (a Matroska stream's start time
# and any SAR stored only in the bitstream), so they keep the probe's decode.
_INDEXED_SUFFIXES = {".mp4", ".mov", ".m4v"}
_INDEXED_FORMAT = "mov,mp4"


def _open_input(path: str, quick: bool) -> av.container.InputContainer:
    """``av.open``; ``quick`` (an MP4 or MOV by name and by content): the stream-info probe skips
    its trial decode of the first frame, a keyframe that the caller decodes again anyway (about
    60 ms of CPU for a 1080p keyframe with film grain). The caller then reads the pixel format
    and the bitstream's SAR from decoded frames, never from the stream before decoding."""
    if quick and os.path.splitext(path)[1].lower() in _INDEXED_SUFFIXES:
        try:
            container = av.open(
                path, metadata_errors="ignore", stream_options=[{"skip_frame": "all"}] * 64
            )
        except ValueError:  # a format with no streams before the probe: not an MP4 after all
            container = None
        if container is not None:
            if container.format.name.startswith(_INDEXED_FORMAT):
                return container
            container.close()  # named .mp4 but not one: open it the usual way
    return av.open(path, metadata_errors="ignore")


@contextmanager
def open_video(
    path: str | os.PathLike,
    *,
    threads: int = 1,
    skip_loop_filter: str | None = None,
    export_mvs: bool = False,
    skip_frame: str | None = None,
    quick: bool = False,
) -> Iterator[tuple[av.container.InputContainer, av.video.stream.VideoStream]]:
    """Open ``path`` and yield ``(container, first video stream)``; always closes the container.

    ``quick``: an MP4 or MOV opens without FFmpeg decoding its first frame to probe it; for
    callers that decode, and read the pixel format and :func:`sample_aspect` only after their
    first decoded frame (until then the stream knows only the container's SAR).
    """
    try:
        container = _open_input(os.fspath(path), quick)
    except (av.FFmpegError, OSError, UnicodeDecodeError) as exc:
        raise VideoError(f"cannot open: {not_a_video(path) or reason(exc)}") from exc
    try:
        stream = main_video_stream(container)
        ctx = stream.codec_context
        if threads and threads > 1:
            ctx.thread_type = "AUTO"
            ctx.thread_count = threads
        else:
            ctx.thread_count = 1
        options = {}
        if skip_loop_filter and skip_loop_filter != "none":
            options["skip_loop_filter"] = _discard(skip_loop_filter)
        if export_mvs:
            options["flags2"] = "+export_mvs"
        if options:
            ctx.options = options
        if skip_frame:
            ctx.skip_frame = skip_frame  # e.g. "NONKEY" (keyframes only), "NONREF"
        yield container, stream
    finally:
        container.close()


def main_video_stream(container) -> av.video.stream.VideoStream:
    """The video a viewer plays, among the video streams that are not an attached picture: the
    one with the largest picture, else FFmpeg's choice (``av_find_best_stream``: the one with the
    most frames and bits). Cover art is a one-picture "video" stream (an MP4's ``covr``, a
    Matroska image attachment) and may come first, as may a still or thumbnail track: taken as
    the video, it made a 1-picture clip source of a long film, or a "video" of an audio file
    with a cover. A file may also carry a small preview or proxy track first (a Matroska file
    states no bit rates, so FFmpeg takes the first): a 160x90 preview was taken for a 640x360
    film. A still (an image codec, a track of one frame, or one that lasts under half as long as
    FFmpeg's choice) is never preferred for its size."""
    video = [s for s in container.streams.video if not s.disposition & Disposition.attached_pic]
    if not video:
        if container.streams.video:
            raise VideoError("no video stream (only an attached picture, such as cover art)")
        raise VideoError("no video stream")
    best = container.streams.best("video")
    best = best if best in video else video[0]
    larger = [s for s in video if _pixels(s) > _pixels(best) and not _still(s, best)]
    return max(larger, key=_pixels) if larger else best


# codecs of single pictures, which files carry as still or thumbnail tracks
_STILL_CODECS = {"mjpeg", "png", "bmp", "gif", "webp", "tiff", "jpeg2000"}


def _pixels(stream) -> int:
    return (stream.codec_context.width or 0) * (stream.codec_context.height or 0)


def _still(stream, film) -> bool:
    """Whether ``stream`` is a still beside ``film``: Matroska and WebM count no frames, so a
    one-frame track shows in its duration (its DURATION tag)."""
    if stream.frames == 1 or stream.codec_context.name in _STILL_CODECS:
        return True
    seconds, film_seconds = _seconds(stream), _seconds(film)
    return seconds is not None and film_seconds is not None and seconds < 0.5 * film_seconds


def _seconds(stream) -> float | None:
    """The track's own length: its Matroska tag first (FFmpeg gave a one-frame track the
    file's 2 s as its duration), else the stream's."""
    tagged = tagged_duration(stream)
    if tagged is not None or not (stream.duration and stream.time_base):
        return tagged
    return float(stream.duration * stream.time_base)


def other_videos(container, stream) -> list[str]:
    """The picture sizes of the video streams besides ``stream`` (attached pictures left out),
    e.g. ``["160x90"]``: what :func:`probe` warns of."""
    return [
        f"{s.codec_context.width}x{s.codec_context.height}"
        for s in container.streams.video
        if s is not stream and not s.disposition & Disposition.attached_pic
    ]


# FFmpeg's AVDiscard levels, as its options name them: which frames skip the in-loop deblocking
# filter. "noref": only frames no other frame predicts from (most B-frames of H.264 and HEVC), so
# the blockier pixels never spread; about 6 % faster decoding on x264's default GOP. "all": every
# frame, 15-17 % faster, but the blocks spread through each GOP (sharpness read 7 % high at crf
# 18 and 38 % at crf 32): only for measures that never look at pixels, such as motion vectors.
LOOP_FILTER_SKIPS = ("none", "noref", "bidir", "nokey", "all")


def _discard(level: str) -> str:
    if level not in LOOP_FILTER_SKIPS:
        raise ValueError(f"skip_loop_filter {level!r}: one of {', '.join(LOOP_FILTER_SKIPS)}")
    return level


# What a file named as a video holds instead, told by how it begins: a dataset cloned without
# Git LFS has pointer files where its videos should be, and a failed download may save the
# server's error page (FFmpeg says only "Invalid data found when processing input").
_NOT_VIDEOS = (
    (b"version https://git-lfs.github.com/spec/",
     "a Git LFS pointer, not the video: fetch the files (git lfs pull)"),
    (b"<!doctype html", "an HTML page, not a video (a failed download?)"),
    (b"<html", "an HTML page, not a video (a failed download?)"),
    # an object store's answer to a failed request (S3, GCS: <Error><Code>AccessDenied...)
    (b"<?xml", "an XML document, not a video (a failed download?)"),
)  # fmt: skip


def not_a_video(path: str | os.PathLike) -> str | None:
    """Why the file at ``path`` is no video where its first bytes tell (:data:`_NOT_VIDEOS`)."""
    try:
        with open(path, "rb") as f:
            head = f.read(64).removeprefix(b"\xef\xbb\xbf").lstrip().lower()  # a UTF-8 BOM
    except OSError:
        return None
    return next((why for start, why in _NOT_VIDEOS if head.startswith(start)), None)


def reason(exc: BaseException) -> str:
    """First line of an error, short enough for a table cell."""
    msg = str(exc).strip() or type(exc).__name__
    return msg.splitlines()[0][:300]


def sample_aspect(stream) -> float:
    """The stream's sample (pixel) aspect ratio as a float; 1.0 when unset or invalid: the
    container's, else the bitstream's (after a quick open, known once a frame is decoded)."""
    return aspect_value(stream.sample_aspect_ratio or stream.codec_context.sample_aspect_ratio)


# Containers that state no pixel aspect of their own: the bitstream's is the one, and it can
# change mid-stream (a broadcast's 16:9 anamorphic SD, then square-pixel HD).
BITSTREAM_ASPECT = frozenset({"mpegts", "mpeg", "mpegvideo", "h264", "hevc"})


def frame_aspect(follow: bool, stream, av_frame, known: float) -> float:
    """The pixel aspect of ``av_frame``: ``known`` (the stream's, as read at its first frame),
    except where ``follow`` (a container of :data:`BITSTREAM_ASPECT`): there the decoder's
    current aspect applies to a frame of the decoder's current size. PyAV hands out no aspect
    per frame, and the decoder's runs a frame or two ahead of the frames it returns at a change
    (they keep ``known``, the last frame's)."""
    if not follow:
        return known
    ctx = stream.codec_context
    if (ctx.width, ctx.height) != (av_frame.width, av_frame.height):
        return known
    return aspect_value(ctx.sample_aspect_ratio)


def aspect_value(sar) -> float:
    """A sample aspect ratio as a float; 1.0 when unset or out of bounds."""
    try:
        value = float(sar) if sar else 1.0
    except (TypeError, ZeroDivisionError):
        return 1.0
    return value if 0.1 < value < 10 else 1.0


def stream_fps(stream) -> float:
    """The stream's rate from its header: its average rate, unless that is over ``MAX_FPS``
    where FFmpeg's guess from the first frames' times is not; else that guess; a rate over
    ``MAX_FPS`` only where it is not the time base's tick rate; 0.0 for none. A stream with no
    frame duration in its header (a WebM from a browser's MediaRecorder) was guessed at its
    time base's tick rate, 1000 fps, and an MPEG-TS whose picture starts after FFmpeg's probe
    window at 90000 (tryout 15); a header can also state 1000 over frames 33 ms apart. The
    rate a video is sampled by is probed from its packets where the header gives none
    (:func:`frames_fps`)."""
    avg = float(stream.average_rate or 0)
    guess = float(stream.guessed_rate or stream.base_rate or 0)
    tick = 1 / float(stream.time_base) if stream.time_base else 0.0
    if 0 < avg <= MAX_FPS:
        return avg
    if 0 < guess <= MAX_FPS:
        return guess
    # over MAX_FPS both: a high-speed camera's 480 fps, unless it is only the clock's tick
    for rate in (avg, guess):
        if rate > 0 and abs(rate - tick) > 1e-6 * rate:
            return rate
    return 0.0


# above this a rate is looked at twice (a rate over the fastest footage of the bench's corpus,
# 240 fps, is most often a container's clock, not its frames)
MAX_FPS = 240
# packets whose times give a stream's rate where its header states none (:func:`frames_fps`)
RATE_PACKETS = 48
# packets read on where a Matroska file's first ones contradict its stated frame duration (about
# a minute of video: a slow start is outnumbered, and a long file is not read to its end)
WHOLE_PACKETS = 4000


def frames_fps(container, stream) -> float:
    """The rate to sample a video by: the average its header states, where one of at most
    ``MAX_FPS`` is stated; else the rate of its packets (the typical step between the sorted
    times of the next ``RATE_PACKETS``, read on from where the container is), where it states
    none or one over 1.5 times theirs; else :func:`stream_fps`. The scan samples and the
    transition finder sizes its windows by this rate: at a guessed 1000 fps a recording got one
    motion sample (its clips were rejected as missing scores) and windows too long for its
    fades and dissolves, which stayed inside clips. A stated average is kept however its first
    frames come: a screen recording at 5 fps for 12 s, then 60, averages 29 fps, and its first
    packets' 5 fps sized the finder's windows for 60-fps fades 12 times too short.

    Matroska and WebM state no average, only a frame duration (``DefaultDuration``) that the
    muxer was told: where the first packets' rate is more than 1.5 times off it either way,
    the rate of the next ``WHOLE_PACKETS`` is taken where that is too (a file stating 24 fps
    over frames 1/60 s apart got windows 2.5 times too short, and two dissolves stayed inside
    one clip)."""
    stated = float(stream.average_rate or 0)
    claimed = "matroska" in container.format.name and 0 < stated <= MAX_FPS
    if 0 < stated <= MAX_FPS and not claimed:
        return stated
    times = _packet_times(container, stream, RATE_PACKETS)
    measured = _steps_rate(times, stream)
    if claimed:
        if not measured or not _off(stated, measured):
            return stated
        whole = _steps_rate(times + _packet_times(container, stream, WHOLE_PACKETS), stream)
        return whole if whole and _off(stated, whole) else stated
    if measured and (not stated or stated > 1.5 * measured):
        return measured
    return stated or stream_fps(stream)


def _off(stated: float, measured: float) -> bool:
    return stated > 1.5 * measured or measured > 1.5 * stated


def _packet_times(container, stream, limit: int) -> list[int]:
    """The times (pts, else dts) of the stream's next ``limit`` packets."""
    times = []
    try:
        for packet in container.demux(stream):
            t = packet.pts if packet.pts is not None else packet.dts
            if t is not None:
                times.append(t)
            if len(times) >= limit:
                break
    except av.FFmpegError:
        pass
    return times


def _steps_rate(times: list[int], stream) -> float:
    """The rate of the typical step between the sorted ``times``: the mean of the steps within
    a tenth of the median either way (a millisecond clock's 16 and 17 ms steps are 60 fps,
    their median 58.8; a dropped frame's double step is left out); 0.0 under 3 steps."""
    steps = np.diff(np.unique(np.asarray(times, np.int64))).astype(np.float64)
    if len(steps) < 3 or not stream.time_base:
        return 0.0
    mid = float(np.median(steps))
    # a tick either way at least (a millisecond clock's 8 and 9 ms steps are 120 fps); the
    # median itself where no step is near it (steps of two lengths in equal numbers)
    near = steps[np.abs(steps - mid) <= max(0.1 * mid, 1.0)]
    return 1.0 / ((float(near.mean()) if len(near) else mid) * float(stream.time_base))


def probe(path: str | os.PathLike) -> dict:
    """Container facts plus one decoded frame (to prove the video decodes and read its rotation,
    pixel format, whether it is interlaced, and its transfer characteristic).

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
        "interlaced": None,
        "transfer": None,
        "stream_start": None,
        "error": None,
    }
    try:
        if os.path.getsize(path) == 0:
            raise VideoError("empty file")
        with open_video(path, quick=True) as (container, stream):
            ctx = stream.codec_context
            if others := other_videos(container, stream):
                log.warning("%s: %d video streams; reading stream %d (%dx%d), not %s", path,
                            len(others) + 1, stream.index, ctx.width, ctx.height,
                            ", ".join(others))  # fmt: skip
            out["codec"] = ctx.name
            out["bit_rate"] = int(container.bit_rate or ctx.bit_rate or 0) or None
            first = None
            for frame in container.decode(stream):
                first = frame
                break
            if first is None:
                raise VideoError("no decodable frame")
            stated = float(stream.average_rate or 0)
            fps = frames_fps(container, stream)
            header = stated or float(stream.guessed_rate or 0)
            if fps and not 0.95 < header / fps < 1.05:  # the header's rate was no rate to use
                said = f"states {stated:.3f} fps" if stated else "states no frame rate"
                log.warning("%s: the stream %s, its frames come at %.3f fps: sampled at that",
                            path, said, fps)  # fmt: skip
            out["fps"] = fps or None
            out["pix_fmt"] = first.format.name
            # fields (broadcast, DV, camcorders): every reader deinterlaces them (deinterlace.py)
            out["interlaced"] = bool(first.interlaced_frame)
            out["transfer"] = transfer_name(first.color_trc)
            rotation = int(first.rotation or 0) % 360
            out["rotation"] = rotation
            # the presentation time frame times count from (frame_time): a reader that seeks by
            # the source's own timestamps adds it (an MP4 whose sound starts first, 0.5 s)
            base = stream.time_base or 0
            out["stream_start"] = float((stream.start_time or 0) * base)
            sar = sample_aspect(stream)
            out["sar"] = sar
            # what a viewer sees: rotation applied, non-square pixels at the display aspect
            out["width"], out["height"] = Frame(0, 0.0, first, sar).display_size()
            duration = video_duration(container, stream, path, fps)
            n = stream.frames or (round(duration * fps) if duration and fps else None)
            out["n_frames"] = int(n) if n else None
            if duration is None and n and fps:
                duration = n / fps
            out["duration"] = duration
            if not duration or duration <= 0:
                raise VideoError(no_duration(container))
    except VideoError as exc:
        out["error"] = str(exc)
    except (av.FFmpegError, OSError, ValueError) as exc:
        out["error"] = f"probe failed: {reason(exc)}"
    return out


# FFmpeg's demuxers of bare codec streams that give no frame times (a bare MPEG-2 or MPEG-4
# Part 2 stream, AV1 in OBU or IVF has them)
ELEMENTARY = {"h264": "H.264", "hevc": "HEVC"}


def no_duration(container) -> str:
    """The error of a video without a duration; a bare elementary stream (``.h264``, ``.hevc``:
    what a camera module or an encoder writes without a container) has no frame times at all,
    and remuxing it is the fix."""
    name = ELEMENTARY.get(container.format.name)
    if name is None:
        return "zero duration"
    return (
        f"zero duration: a bare {name} elementary stream has no frame times; remux it into MP4 "
        "or MKV (e.g. ffmpeg -framerate <fps> -i <file> -c copy out.mp4)"
    )


def video_duration(container, stream, path, fps: float) -> float | None:
    """Seconds of the picture: the stream's own duration, else its Matroska tag, else the
    container's when the picture is its only stream, else the span of its packets (for a file
    that counts no frames), else the container's. The container's is its longest stream's: an
    MKV's sound may run on past the picture (17 s stated for an 11-s video)."""
    if stream.duration and stream.time_base:
        return float(stream.duration * stream.time_base)
    tagged = tagged_duration(stream)
    if tagged is not None:
        return tagged
    whole = container.duration / av.time_base if container.duration else None
    if whole is not None and len(container.streams) == 1:
        return whole
    span = None if stream.frames else packet_span(path, fps)
    return span if span is not None else whole


def tagged_duration(stream) -> float | None:
    """Seconds from a Matroska or WebM track's first frame to its end, from its ``DURATION``
    tag (``HH:MM:SS.fraction``, written by FFmpeg and mkvmerge; ``DURATION-eng`` where the tag
    has a language): Matroska states no duration per track otherwise. The tag is the track's end
    time, so its start is taken off. None when the tag is missing or malformed."""
    tags = stream.metadata
    text = tags.get("DURATION") or next(
        (v for k, v in tags.items() if k.upper().startswith("DURATION-")), ""
    )
    m = _DURATION_TAG.fullmatch(str(text).strip())
    if m is None:
        return None
    seconds = int(m.group(1)) * 3600 + int(m.group(2)) * 60 + float(m.group(3))
    if stream.start_time and stream.time_base:
        seconds -= max(0.0, float(stream.start_time * stream.time_base))
    return seconds if seconds > 0 else None


_DURATION_TAG = re.compile(r"(\d+):(\d{2}):(\d{2}(?:\.\d*)?)")


def packet_span(path: str | os.PathLike, fps: float) -> float | None:
    """Seconds from the first frame's time to the end of the last, from the video's packets read
    without decoding them, for a file whose header states no duration: a WebM or Matroska file
    written as it was recorded (browsers' MediaRecorder, live recordings) has none, and was an
    error row ("zero duration"). Reading the packets costs about what the content hash costs,
    which reads the whole file too. None when no packet has a time."""
    with av.open(os.fspath(path), metadata_errors="ignore") as container:
        stream = main_video_stream(container)
        last = None  # (pts, duration) of the packet shown last
        for packet in container.demux(stream):
            if packet.pts is not None and (last is None or packet.pts > last[0]):
                last = (packet.pts, packet.duration)
    if last is None:
        return None
    end = (last[0] - (stream.start_time or 0)) * stream.time_base
    # a block's duration is often left out (its frame lasts until the next one): one frame
    tail = last[1] * stream.time_base if last[1] else (1 / fps if fps else 0)
    return float(end + tail)


SEEK_TOLERANCE = 1e-4  # s: times are the decoder's own, so a frame "at" a time matches closely
# s: Matroska's and WebM's rounding of frame times (milliseconds: a 60-fps video's frames come
# 16 and 17 ms apart)
TIMESTAMP_ROUNDING = 1e-3


def iter_frames(
    path: str | os.PathLike,
    *,
    start: float | None = None,
    end: float | None = None,
    threads: int = 1,
    skip_loop_filter: str | None = None,
    errors: list[str] | None = None,
    lead: float = 0.0,
) -> Iterator[Frame]:
    """Decode frames in order, from the first frame at or after ``start`` (seconds) up to ``end``
    (exclusive), by the frames' own timestamps. ``lead``: also the frames up to that many
    seconds before ``start`` that decoding from the seek (to the keyframe at or before
    ``start``) passes anyway.

    Indices count decoded frames from the start of the video when ``start`` is None; after a seek
    they are estimated from the time and the average frame rate (times are exact).

    ``skip_loop_filter``: frames decoded without the deblocking filter, an AVDiscard level of
    :data:`LOOP_FILTER_SKIPS` (None or "none": every frame filtered, as a player shows it).

    ``errors``: a list to tolerate damaged data: a packet the decoder refuses is skipped and its
    error appended, and decoding goes on with the next one (a 4 KB corruption in the middle of
    a video cost 16 of 180 frames, not the 136 after it). The scan decodes so, and a clip's
    export must too: its frames are those the scan decoded (a file cut short by an interrupted
    download lost its last clip when the export stopped at the damage). Without it, the first
    decode error raises :class:`VideoError`.
    """
    with open_video(path, threads=threads, skip_loop_filter=skip_loop_filter, quick=True) as (
        container,
        stream,
    ):
        fps = stream_fps(stream) or 30.0
        sar = None  # read once the first frame is decoded (a quick open), then per frame
        follow = container.format.name in BITSTREAM_ASPECT
        counted = counted_times(container, stream)
        seek = start and not counted
        if seek:
            frames = seek_decode(container, stream, start, errors)
        elif errors is not None:
            frames = tolerant_decode(container, stream, errors)
        else:
            frames = container.decode(stream)
        frames = progressive(frames, stream.time_base)
        base = None  # after a seek: the estimated index of the first frame decoded
        try:
            for n, av_frame in enumerate(frames):
                t = n / fps if counted else frame_time(av_frame, stream)
                if start is not None and t < start - lead - SEEK_TOLERANCE:
                    continue
                if end is not None and t >= end - SEEK_TOLERANCE:
                    break
                if seek and base is None:
                    base = int(round(t * fps)) - n
                sar = frame_aspect(follow, stream, av_frame, sar or sample_aspect(stream))
                yield Frame(base + n if seek else n, t, av_frame, sar)
        except av.FFmpegError as exc:
            raise VideoError(f"decode failed: {reason(exc)}") from exc


def frames_by_index(
    path: str | os.PathLike,
    indices: Sequence[int],
    first: tuple[int, float],
    *,
    convert: Callable[[Frame], object] = lambda frame: frame,
    threads: int = 1,
) -> Iterator[tuple[int, object]]:
    """The frames numbered ``indices`` (ascending, repeats allowed), exactly, on any frame rate:
    ``first`` is a frame the scan numbered, ``(index, presentation time)`` (a clip's
    ``start_frame`` and ``start_time``), at or before every wanted frame. Decoding starts at that
    frame's time (the frame nearest it) and counts frames from there; ``index / fps`` would miss
    on variable frame rate (a clip after a 30 -> 5 fps drop was looked for past its video's end).

    Yields ``(k, convert(frame))`` for each ``indices[k]`` in order (a repeated index yields the
    same converted value again, converted once); raises :class:`VideoError` when the video ends
    first. Damaged packets are skipped, as the scan that numbered the frames skipped them."""
    base, t0 = int(first[0]), float(first[1])
    if any(b < a for a, b in zip(indices, indices[1:], strict=False)) or (
        len(indices) and indices[0] < base
    ):
        raise ValueError(f"indices must be ascending from {base}")
    k = 0
    decoded = iter_frames(path, start=t0, lead=LEAD, threads=threads, errors=[])
    for n, fr in enumerate(_from_nearest(decoded, t0)):
        if k < len(indices) and indices[k] == base + n:
            value = convert(Frame(base + n, fr.time, fr.av_frame, fr.sar))
        while k < len(indices) and indices[k] == base + n:
            yield k, value
            k += 1
        if k == len(indices):
            return
    if k < len(indices):
        raise VideoError(f"clip ended after {k} of {len(indices)} frames")


# s before a frame looked for by time that are kept: the frame nearest that time is then among
# them even when the time lies a little after it (the seek itself still goes to the keyframe at
# or before the time, which is at or before that frame: a keyframe nearer would be the frame)
LEAD = 0.5


def _from_nearest(frames: Iterator[Frame], t0: float) -> Iterator[Frame]:
    """``frames`` from the one nearest ``t0`` on (halfway, the earlier): a time interpolated by
    the split (``scan.luma_stride`` > 1) or rounded by a container (Matroska keeps milliseconds)
    can lie a little after its frame's own, and the first frame at or after it would be the
    next one, which shifts every frame counted from it."""
    prev = None
    for fr in frames:
        if fr.time < t0 - SEEK_TOLERANCE:
            prev = fr
            continue
        if prev is not None and _earlier_is_nearer(prev.time, fr.time, t0):
            yield prev
        yield fr
        yield from frames
        return


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


def counted_times(container, stream) -> bool:
    """Whether frame times must come from counting decoded frames: AVI with B-frames (MPEG-4
    Part 2 from DivX and old cameras, H.264) states decode times only, and its decoded frames
    carry them reordered, a frame slot late; such a file is decoded from its start, never
    seeked. In an AVI without B-frames (MJPEG from webcams and capture cards, MPEG-4 without
    them, DV, H.264) each frame's decode timestamp is its slot, skipped slots included
    (:func:`frame_time`): counted, a capture that dropped every 10th frame had every time after
    its first drop early (a 7.97-s shot read 7.2 s and was exported to play 10 % fast)."""
    return _avi(container) and bool(stream.codec_context.has_b_frames)


def _avi(container) -> bool:
    return container is not None and container.format.name == "avi"


def seek_to(container, stream, at: float) -> None:
    """Seek to the keyframe at or before ``at`` seconds from the stream's start (to the file's
    start for 0). Callers check where it landed."""
    try:
        if at <= 0 and stream is not _default_stream(container) and _indexed(container):
            # FFmpeg seeks by its default stream, the first video track: a one-picture track
            # before the film (a Matroska file's cover, not marked as attached) put the film's
            # first keyframe behind the seek, and a stream copy of the first clip held one frame
            # of the next shot (tryout 15). By the film's own index instead, where the container
            # has one (in MPEG-TS such a seek lands late: the plain seek to 0 below)
            container.seek(stream.start_time or 0, stream=stream, backward=True)
        elif at <= 0:
            # to 0 (a seek to the first pts lands late in MPEG-TS), or where times start below
            # 0, a second before the start (an MPEG-TS recording in which the 33-bit clock wraps
            # is read with times below 0 up to the wrap, and a seek to 0 went past the wrap).
            # Only there: AVI and FLV refuse a seek before their first index entry
            start = container.start_time or 0
            container.seek(start - av.time_base if start < 0 else 0)
        else:
            pts = int(Fraction(at).limit_denominator(10**6) / stream.time_base)
            container.seek((stream.start_time or 0) + pts, stream=stream, backward=True)
    except av.FFmpegError as exc:
        raise VideoError(f"seek failed: {reason(exc)}") from exc


def _indexed(container) -> bool:
    """Whether the container has an index that seeks land on exactly (Matroska, WebM, MP4,
    MOV), unlike MPEG-TS and program streams, which FFmpeg seeks by bytes and timestamps."""
    name = container.format.name
    return "matroska" in name or "mp4" in name or "mov" in name


def _default_stream(container):
    """The stream FFmpeg seeks by when given none: the first video stream that is no attached
    picture (``av_find_default_stream_index``)."""
    return next(
        (s for s in container.streams.video if not s.disposition & Disposition.attached_pic),
        None,
    )


def seek_decode(
    container, stream, target: float, errors: list[str] | None = None
) -> Iterator[av.VideoFrame]:
    """Frames decoded from a seek before ``target`` (seconds from the stream's start), verified:
    a seek must land at or before the target, or frames at the target would be lost (MPEG-TS
    and AVI seek by byte estimates, and land late). While the first frame comes after the
    target, seek again further back (1, 2, 4... s), down to the start of the stream.
    ``errors``: damaged packets skipped (:func:`tolerant_decode`)."""
    back, mark = 0.0, len(errors) if errors is not None else 0
    while True:
        if errors is not None:
            del errors[mark:]  # a seek further back decodes those packets again
        at = max(0.0, target - back)
        seek_to(container, stream, at)
        frames = (
            container.decode(stream)
            if errors is None
            else tolerant_decode(container, stream, errors)
        )
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
    """Seconds from the start of the stream (pts minus the stream's start time). In an AVI
    without B-frames (:func:`counted_times` has the others), the frame's decode timestamp: its
    slot, a dropped frame's slot left empty. FFmpeg gives H.264 in AVI a pts one slot late."""
    ts = av_frame.pts
    if av_frame.dts is not None and slot_clock(stream):
        ts = av_frame.dts
    if ts is None:
        return float(av_frame.time or 0.0)
    start = stream.start_time or 0
    return float((ts - start) * stream.time_base)


def slot_clock(stream) -> bool:
    """Whether a stream times its frames by decode timestamps (AVI without B-frames)."""
    return _avi(getattr(stream, "container", None)) and not stream.codec_context.has_b_frames


def _earlier_is_nearer(earlier: float, later: float, target: float) -> bool:
    """Whether the earlier of two frame times is the nearer ``target``; on a tie it is, the frame
    on screen at that time (mid-frame times stay in the shot)."""
    return abs(later - target) >= abs(earlier - target) - 1e-9


def _nearer(a, b, target: float):
    """Of two decoded ``(time, frame)``, ``a`` before ``b`` (or None), the one nearer ``target``."""
    return a if a is not None and _earlier_is_nearer(a[0], b[0], target) else b


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
    Damaged packets are skipped, as the scan skipped them.
    """
    if not len(times):
        return []
    order = np.argsort(times)
    result: list[np.ndarray | None] = [None] * len(times)
    with open_video(path, quick=True) as (container, stream):
        fps = stream_fps(stream) or 30.0
        # counted: one pass from the start, in ascending time
        counted = counted_times(container, stream)
        follow = container.format.name in BITSTREAM_ASPECT
        decoder = None
        damaged: list[str] = []
        current = before = None  # the last two decoded (time, frame), in order
        # the longest keyframe interval seen (s): seeking closer than that gains nothing
        gop, last_key = 2.0, None
        for idx in order:
            target = float(times[idx])
            behind = current is not None and target < (before or current)[0] - 1e-6
            if counted and decoder is None:
                decoded = tolerant_decode(container, stream, damaged)
                decoder = enumerate(progressive(decoded, stream.time_base))
            elif not counted and (current is None or behind or target - current[0] > gop):
                decoded = seek_decode(container, stream, target, damaged)
                decoder = enumerate(progressive(decoded, stream.time_base))
                current, before, last_key = None, None, None
            if current is not None and current[0] >= target - SEEK_TOLERANCE:
                chosen = _nearer(before, current, target)  # decoded already (a repeated time)
            else:
                chosen = current
                try:
                    for n, av_frame in decoder:
                        t = n / fps if counted else frame_time(av_frame, stream)
                        before, current = current, (t, av_frame)
                        if av_frame.key_frame:
                            if last_key is not None and t > last_key:
                                gop = max(gop, t - last_key)
                            last_key = t
                        # the first frame at or after the target, against the one before it
                        # (stopping half an average frame early missed the frame at the target
                        # where frames come faster than the average)
                        if t >= target - SEEK_TOLERANCE:
                            chosen = _nearer(chosen, current, target)
                            break
                        chosen = current
                except av.FFmpegError as exc:
                    raise VideoError(f"decode failed: {reason(exc)}") from exc
            if chosen is None:
                raise VideoError(f"no frame at {target:.3f}s")
            sar = frame_aspect(follow, stream, chosen[1], sample_aspect(stream))
            frame = Frame(0, chosen[0], chosen[1], sar)
            if fmt == "gray":
                img = frame.gray(size if isinstance(size, int) else None)
                if isinstance(size, tuple):
                    img = cv2.resize(img, size, interpolation=cv2.INTER_AREA)
            elif fmt == "bgr":
                img = frame.bgr(size)
            else:
                img = frame.rgb(size)
            result[idx] = np.ascontiguousarray(img)
    return result  # type: ignore[return-value]
