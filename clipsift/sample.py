"""Synthetic videos with known ground truth, for the demo (`make demo`) and for every test.

A video is a list of :class:`Segment` s (scenes). Each scene is a crop window moving rigidly over a
larger textured canvas, so its motion is known exactly; cuts, fades, flashes, burned-in text and
black bars are painted in with known frame indices and boxes. :func:`render_video` encodes H.264
(libx264, yuv420p, mp4) with PyAV and returns the ground truth; :func:`generate_sample` writes a
small set that exercises every pipeline stage plus ``ground_truth.json``. The scenes are painted
by :mod:`clipsift.painting`.

CLI: ``python -m clipsift.sample OUT_DIR [--size 1280x720] [--fps 30] [--seed 0]``

Conventions (all frame indices count decoded frames from 0; ranges are ``[start, end)`` unless
named ``[first, last]``):

- ``pan`` is the IMAGE motion in pixels per frame, what optical flow or phase correlation measures:
  content at ``(x, y)`` in frame ``t`` is at ``(x + dx, y + dy)`` in frame ``t + 1``. A camera
  panning right therefore has a negative ``dx``.
- Decoded pixels are deterministic for given arguments (seeded numpy, deterministic OpenCV calls,
  x264 capped at AVX2, see :mod:`clipsift.io.x264`); the bytes need not be.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import tempfile
import time
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np

from clipsift.io.atomic import atomic_path, write_json
from clipsift.io.x264 import x264_options
from clipsift.painting import Segment, all_frames, check_segment, text_layout

_TO_CODED = {90: cv2.ROTATE_90_CLOCKWISE, 180: cv2.ROTATE_180, 270: cv2.ROTATE_90_COUNTERCLOCKWISE}


def render_video(
    path: str | os.PathLike,
    segments: list[Segment],
    *,
    fps: float | Fraction = 30,
    size: tuple[int, int] = (640, 360),
    crf: int = 18,
    gop: int | None = None,
    rotation: int = 0,
    preset: str = "veryfast",
    times: list[float] | None = None,
    sar: tuple[int, int] | None = None,
    interlaced: bool = False,
) -> dict:
    """Encode ``segments`` to H.264 at ``path`` (written atomically); return ground truth. The
    container follows the suffix (.mp4, .mkv, .ts, .avi; .webm holds VP9).

    ``size`` is the DISPLAY size (width, height), even numbers. ``rotation`` (0/90/180/270,
    counter-clockwise, as PyAV's ``frame.rotation`` reads it back) stores a display matrix and
    encodes each frame turned the other way, so a player that applies the rotation shows exactly
    the rendered scenes. All ground-truth geometry (width, height, text boxes, pans, letterbox) is
    in display orientation; ``coded_width``/``coded_height`` give the stored frame size. ``gop``
    caps the keyframe interval (x264 still adds keyframes at cuts). ``fps`` may be a Fraction
    (e.g. ``Fraction(30000, 1001)``).

    Real footage: ``times`` gives every frame's presentation time in seconds (variable frame
    rate; millisecond precision, as phones write them); ``sar`` stores non-square pixels, e.g.
    ``(16, 11)``: the scenes are drawn at the display ``size`` and squeezed to the coded width
    ``round(width / sar)``, so a player that honours the SAR shows them as drawn.
    ``interlaced`` encodes fields (x264's interlaced mode) bottom field first, as DV and many
    camcorders do: the bottom field of frame i is frame i's picture and the top field the
    next frame's of the same scene (each field its own instant, so what moves is combed), in
    luma and in chroma rows; a player that deinterlaces shows frame i's picture. (FFmpeg's
    x264 wrapper takes the field order from each frame's flags, which PyAV cannot set: frames
    without the flag are coded bottom field first.)
    """
    w, h = size
    if w % 2 or h % 2:
        raise ValueError(f"size {w}x{h}: yuv420p needs even dimensions")
    rotation %= 360
    if rotation % 90:
        raise ValueError("rotation must be a multiple of 90")
    if not segments:
        raise ValueError("no segments")
    for seg in segments:
        check_segment(seg, w, h)
    rate = Fraction(fps).limit_denominator(1001)
    coded_w, coded_h = (h, w) if rotation in (90, 270) else (w, h)
    if sar:
        coded_w = int(round(coded_w * sar[1] / sar[0])) // 2 * 2
    n_total = sum(seg.frames for seg in segments)
    if interlaced and Path(path).suffix.lower() == ".webm":
        raise ValueError("VP9 (WebM) has no interlaced coding")
    if interlaced and coded_h % 4:
        raise ValueError(f"coded height {coded_h}: each 4:2:0 field needs an even height")
    if times is not None and len(times) != n_total:
        raise ValueError(f"{len(times)} times for {n_total} frames")

    with atomic_path(path) as tmp, av.open(os.fspath(tmp), "w") as container:
        webm = Path(path).suffix.lower() == ".webm"  # WebM holds VP8/VP9 only
        stream = _stream(container, webm, rate, (coded_w, coded_h), crf, preset, gop)
        if interlaced:
            opts = dict(stream.codec_context.options)
            opts["x264-params"] = ":".join(
                p for p in (opts.get("x264-params"), "interlaced=1") if p
            )
            stream.codec_context.options = opts
        if rotation:
            stream.set_display_rotation(rotation)
        if sar:
            stream.codec_context.sample_aspect_ratio = Fraction(*sar)
        if times is not None:  # millisecond timestamps, also in the encoder (60 fps and more)
            stream.time_base = stream.codec_context.time_base = Fraction(1, 1000)
        coded = _coded_i420(segments, size, rotation, sar, (coded_w, coded_h))
        for i, i420 in enumerate(_woven(coded, segments) if interlaced else coded):
            frame = av.VideoFrame.from_ndarray(i420, format="yuv420p")
            if times is None:
                frame.pts, frame.time_base = i, 1 / rate
            else:
                frame.pts, frame.time_base = round(times[i] * 1000), Fraction(1, 1000)
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))

    truth = _ground_truth(path, segments, rate, w, h, rotation, coded_w, coded_h)
    if times is not None:
        truth["times"] = [round(t * 1000) / 1000 for t in times]
    truth["sar"] = list(sar) if sar else [1, 1]
    return truth


def _coded_i420(segments, size, rotation, sar, coded):
    """Each frame as stored: turned to its coded orientation, squeezed by the SAR, and I420."""
    for img in all_frames(segments, *size):
        if rotation:
            img = cv2.rotate(img, _TO_CODED[rotation])
        if sar:
            img = cv2.resize(img, coded, interpolation=cv2.INTER_AREA)
        # OpenCV's I420 conversion is BT.601 limited range like swscale's default, and
        # ~20x faster than letting PyAV reformat rgb24 inside encode()
        yield cv2.cvtColor(img, cv2.COLOR_RGB2YUV_I420)


def _woven(frames, segments):
    """I420 frames with each frame's even rows (the top field, in luma and in each chroma plane)
    from the next frame of its scene; the last frame of a scene is whole."""
    last = set(np.cumsum([seg.frames for seg in segments]) - 1)
    prev = None
    for i, cur in enumerate(frames):
        if prev is not None:
            yield _weave(prev, cur) if i - 1 not in last else prev
        prev = cur
    if prev is not None:
        yield prev


def _weave(first: np.ndarray, second: np.ndarray) -> np.ndarray:
    """``first``'s odd rows (the bottom field) and ``second``'s even rows, plane by plane (I420
    buffers: the Y rows, then the U and V planes, each (h/2) x (w/2), packed after them)."""
    w = first.shape[1]
    h = first.shape[0] * 2 // 3
    out = first.copy()
    out[0:h:2] = second[0:h:2]
    flat, other = out.reshape(-1), second.reshape(-1)
    n = (h // 2) * (w // 2)
    for at in (h * w, h * w + n):
        c = flat[at : at + n].reshape(h // 2, w // 2)
        c[0::2] = other[at : at + n].reshape(h // 2, w // 2)[0::2]
    return out


def _stream(container, webm: bool, rate, coded: tuple[int, int], crf: int, preset: str, gop):
    """The video stream: VP9 in WebM, else x264 with the determinism cap (same bytes on every
    machine)."""
    stream = container.add_stream("libvpx-vp9" if webm else "libx264", rate=rate)
    ctx = stream.codec_context
    ctx.width, ctx.height, ctx.pix_fmt = *coded, "yuv420p"
    if webm:  # constant quality, fast; one thread keeps the bytes the same run to run
        ctx.options = {"crf": str(crf + 12), "b": "0", "deadline": "realtime",
                       "cpu-used": "8", "threads": "1"}  # fmt: skip
    else:
        ctx.options = x264_options(crf, preset, mbtree=True)
    if gop:
        ctx.gop_size = gop
    return stream


def _ground_truth(path, segments, rate, w, h, rotation, coded_w, coded_h) -> dict:
    cuts, fades, dissolves, wipes, whips, flash_frames, texts, segs = [], [], [], [], [], [], [], []
    start = 0
    for k, seg in enumerate(segments):
        end = start + seg.frames
        gradual = seg.fade_in or seg.dissolve or seg.wipe or seg.whip
        if k and not segments[k - 1].fade_out and not gradual:
            cuts.append(start)
        if seg.fade_in:
            fades.append([start, start + seg.fade_in - 1])
        if seg.fade_out:
            fades.append([end - seg.fade_out, end - 1])
        if seg.dissolve:
            dissolves.append([start, start + seg.dissolve - 1])
        if seg.wipe:
            wipes.append([start, start + seg.wipe - 1])
        if seg.whip:
            whips.append([start, start + seg.whip - 1])
        flash_frames += sorted(
            start + f + i for f in seg.flashes for i, g in enumerate(seg.flash_gain) if g > 0
        )
        if seg.text:
            box = text_layout(seg.text, w, h, tuple(seg.letterbox), seg.text_scale)["box"]
            texts.append({"start": start, "end": end, "text": seg.text, "box": box})
        dx, dy = (float(v) for v in seg.pan)
        segs.append(
            {
                "start": start,
                "end": end,
                "pan": [dx, dy],
                "speed_px_per_frame": math.hypot(dx, dy),
                "seed": seg.seed,
                "letterbox": list(seg.letterbox),
                "fade_in": seg.fade_in,
                "fade_out": seg.fade_out,
                "fade_color": seg.fade_color,
                "dissolve": seg.dissolve,
                "wipe": seg.wipe,
                "wipe_shape": seg.wipe_shape if seg.wipe else None,
                "whip": seg.whip,
                "text": seg.text,
                "texture": seg.texture,
                "noise": seg.noise,
                "rotate_deg_per_frame": seg.rotate,
            }
        )
        if seg.rotate:  # mean image speed of a rotation about the centre: omega x mean radius
            ys, xs = np.mgrid[0:h, 0:w]
            radius = float(np.hypot(xs + 0.5 - w / 2, ys + 0.5 - h / 2).mean())
            segs[-1]["speed_px_per_frame"] = math.radians(abs(seg.rotate)) * radius
        start = end
    return {
        "path": os.fspath(path),
        "fps": float(rate),
        "width": w,
        "height": h,
        "coded_width": coded_w,
        "coded_height": coded_h,
        "rotation": rotation,
        "n_frames": start,
        "duration": float(start / rate),
        "cuts": cuts,
        "fades": fades,
        "dissolves": dissolves,
        "wipes": wipes,
        "whips": whips,
        # [first, last] frames that belong to no clean scene (fades, dissolves, wipes, whips)
        "transitions": sorted(fades + dissolves + wipes + whips),
        "flash_frames": flash_frames,
        "text": texts,
        "segments": segs,
        "corrupt": False,
    }


def _transition_frames(truth: dict) -> np.ndarray:
    """True for every frame of a fade, dissolve, wipe or whip (older ground truth: fades only), plus one
    False past the end."""
    bad = np.zeros(truth["n_frames"] + 1, bool)
    for first, last in truth.get("transitions", truth["fades"]):
        bad[first : last + 1] = True
    return bad


def true_shots(truth: dict) -> list[tuple[int, int]]:
    """The clean shots ``[start, end)`` of a rendered video: frames between hard cuts that are
    not part of a fade, a dissolve, a wipe or a whip (what a perfect splitter keeps)."""
    n = truth["n_frames"]
    bad = _transition_frames(truth)
    edges = set(truth["cuts"])
    shots, start = [], None
    for i in range(n + 1):
        if start is not None and (i == n or bad[i] or i in edges):
            shots.append((start, i))
            start = None
        if i < n and not bad[i] and start is None:
            start = i
    return shots


def score_scenes(truth: dict, scenes: list[tuple[int, int]], min_frames: int = 1) -> dict:
    """How well ``scenes`` (``[start, end)`` frame ranges a splitter kept) match the truth:
    ``dirty``: scenes holding a transition frame or spanning a hard cut; ``boundary_error``: the
    largest distance (frames) between a true shot of at least ``min_frames`` and the scene that
    overlaps it most, at either end; ``missed``: such shots that no scene overlaps."""
    bad = _transition_frames(truth)
    dirty = sum(1 for a, b in scenes if bad[a:b].any() or any(a < c < b for c in truth["cuts"]))
    worst, missed = 0, 0
    for a, b in true_shots(truth):
        if b - a < min_frames:
            continue
        overlap = [(min(b, y) - max(a, x), x, y) for x, y in scenes if min(b, y) > max(a, x)]
        if not overlap:
            missed += 1
            continue
        _, x, y = max(overlap)
        worst = max(worst, abs(x - a), abs(y - b))
    return {"dirty": dirty, "boundary_error": worst, "missed": missed}


# ----------------------------------------------------------------------------- other formats


def write_lossless(
    dest: str | os.PathLike,
    frames,
    size: tuple[int, int],
    pix_fmt: str,
    codec: str = "libx264",
    **tags: int,
) -> None:
    """Encode ``frames`` (PyAV frames in ``pix_fmt``, 1/25 s apart) losslessly with ``codec``
    (libx264 or libx265) at ``dest``; ``tags`` are set on the encoder (``color_range``,
    ``colorspace``, ``color_primaries``, ``color_trc``: FFmpeg's codes), which writes them into
    the stream."""
    with av.open(os.fspath(dest), "w") as oc:
        s = oc.add_stream(codec, rate=25)
        (s.width, s.height), s.pix_fmt = size, pix_fmt
        s.options = {"qp": "0"} if codec == "libx264" else {"x265-params": "lossless=1:log-level=1"}
        for name, value in tags.items():
            setattr(s.codec_context, name, value)
        for i, frame in enumerate(frames):
            frame.pts, frame.time_base = i, Fraction(1, 25)
            for packet in s.encode(frame):
                oc.mux(packet)
        for packet in s.encode():
            oc.mux(packet)


def copy_as(
    src: str | os.PathLike,
    dest: str | os.PathLike,
    pix_fmt: str,
    codec: str = "libx264",
    *,
    full_range: bool = False,
    **tags: int,
) -> None:
    """The decoded frames of ``src`` (a limited-range yuv420p render) in ``pix_fmt``, losslessly
    (:func:`write_lossless`), as phones (10-bit HEVC), cameras (4:2:2) and screen recorders
    (4:4:4, full range) write them: every copy holds the same luma (8-bit copies exactly; deeper
    ones at about ``2 ** (bits - 8)`` times the level, FFmpeg's expansion). ``full_range`` (4:2:0
    formats): the planes rescaled to the full range of the bit depth and the stream flagged so.
    ``tags``: more encoder tags (``colorspace``, ``color_primaries``, ``color_trc``), which
    relabel the same samples (e.g. as HLG, to time what an HDR source costs)."""
    with av.open(os.fspath(src)) as ic:
        ctx = ic.streams.video[0].codec_context
        frames = (
            _full_range(f, pix_fmt) if full_range else f.reformat(format=pix_fmt)
            for f in ic.decode(video=0)
        )
        tags = tags | ({"color_range": 2} if full_range else {})  # JPEG
        write_lossless(dest, frames, (ctx.width, ctx.height), pix_fmt, codec, **tags)


def _full_range(frame: av.VideoFrame, pix_fmt: str) -> av.VideoFrame:
    """A limited-range yuv420p frame's planes mapped to the full range of ``pix_fmt`` (4:2:0):
    luma 16-235 and chroma 16-240 onto 0 .. 2**bits - 1 (levels outside them clip)."""
    top = 2 ** int(pix_fmt.split("p")[-1][:-2] or 8) - 1 if pix_fmt.endswith("le") else 255
    h = frame.height
    yuv = frame.to_ndarray().astype(np.float64)  # yuv420p: the Y rows, then U's and V's
    scaled = [(yuv[:h] - 16) * top / 219, (yuv[h:] - 128) * top / 224 + (top + 1) / 2]
    dtype = np.uint16 if top > 255 else np.uint8
    y, uv = (np.clip(np.rint(p), 0, top).astype(dtype) for p in scaled)
    out = av.VideoFrame(frame.width, h, pix_fmt)
    for plane, arr in zip(out.planes, (y, *uv.reshape(2, h // 2, -1)), strict=True):
        buf = np.zeros((plane.height, plane.line_size // arr.itemsize), dtype)
        buf[:, : arr.shape[1]] = arr
        plane.update(buf.tobytes())
    out.color_range = 2
    return out


# ----------------------------------------------------------------------------- corrupt input


def write_corrupt(path: str | os.PathLike, kind: str = "truncated", source=None) -> dict:
    """Write an unreadable ``.mp4``.

    - ``truncated``: the first 30 % of the bytes of ``source`` (default: a fresh 2 s render). A
      PyAV/FFmpeg mp4 keeps its index (moov atom) at the end, so nothing can be opened or decoded.
    - ``garbage``: 64 KiB of seeded random bytes.
    - ``empty``: 0 bytes.
    """
    if kind == "truncated":
        if source is None:
            with tempfile.TemporaryDirectory() as tmp:
                source = render_video(Path(tmp) / "source.mp4", [Segment(60, seed=99)])["path"]
                data = Path(source).read_bytes()
        else:
            data = Path(source).read_bytes()
        data = data[: int(len(data) * 0.3)]
    elif kind == "garbage":
        data = np.random.default_rng(0).integers(0, 256, 65536, dtype=np.uint8).tobytes()
    elif kind == "empty":
        data = b""
    else:
        raise ValueError(f"unknown corruption kind {kind!r}")
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)
    return {"path": os.fspath(path), "corrupt": True, "kind": kind, "bytes": len(data)}


# ----------------------------------------------------------------------------- sample set


def sample_plan(*, size=(640, 360), fps=30, seed=0) -> dict[str, list[Segment]]:
    """File name -> segments of the default sample set (~50 s of video in all).

    Lengths are in seconds times ``fps``; pans and bars scale with the frame so every size looks
    alike (at 640x360: pans 1.5/-0.75/4 px per frame, bars 44 px). Every scene has its own seed.
    """
    w, h = size

    def s(sec: float) -> int:
        return max(1, round(sec * fps))

    def px(v: float) -> float:
        return round(v * w / 640 * 4) / 4  # quarter pixels: exact in binary, so the GT is exact

    bars = round(44 * h / 360 / 2) * 2
    base = seed * 1000
    fade = s(2 / 3)
    return {
        "cuts.mp4": [
            Segment(s(3), seed=base + 1),
            Segment(s(3), seed=base + 2, pan=(px(1.5), 0)),
            Segment(s(3), seed=base + 3),
            Segment(s(3), seed=base + 4, pan=(px(-0.75), px(0.5))),
        ],
        "fade.mp4": [
            Segment(s(4), seed=base + 5, fade_out=fade),
            Segment(s(4), seed=base + 6, fade_in=fade),
        ],
        "flash.mp4": [Segment(s(6), seed=base + 7, flashes=(s(4 / 3), s(3), s(14 / 3)))],
        "text.mp4": [
            Segment(s(4), seed=base + 8, text="SALE ENDS FRIDAY"),
            Segment(s(4), seed=base + 9),
        ],
        "motion.mp4": [
            Segment(s(4), seed=base + 10),
            Segment(s(4), seed=base + 11, pan=(px(4), 0)),
        ],
        "letterbox.mp4": [Segment(s(5), seed=base + 12, pan=(px(1), 0), letterbox=(bars, 0))],
        "subdir/nested.mp4": [Segment(s(3), seed=base + 13)],
    }


def generate_sample(
    out_dir: str | os.PathLike, *, size=(640, 360), fps: float = 30, seed: int = 0
) -> dict:
    """Write the sample set and ``out_dir/ground_truth.json``; return that mapping.

    Keys and each entry's ``path`` are relative to ``out_dir`` (posix), so the folder can move.
    ``corrupt.mp4`` is the first 30 % of ``cuts.mp4``.
    """
    out = Path(out_dir)
    truth = {}
    for name, segments in sample_plan(size=size, fps=fps, seed=seed).items():
        gt = render_video(out / name, segments, fps=fps, size=size)
        truth[name] = {**gt, "path": name}
    truth["corrupt.mp4"] = {
        **write_corrupt(out / "corrupt.mp4", "truncated", source=out / "cuts.mp4"),
        "path": "corrupt.mp4",
    }
    write_json(out / "ground_truth.json", truth)
    return truth


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="python -m clipsift.sample", description=__doc__.split("\n")[0]
    )
    ap.add_argument("out_dir")
    ap.add_argument("--size", default="640x360", help="WIDTHxHEIGHT (default 640x360)")
    ap.add_argument("--fps", type=float, default=30)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    size = tuple(int(v) for v in args.size.lower().split("x"))
    t0 = time.perf_counter()
    truth = generate_sample(args.out_dir, size=size, fps=args.fps, seed=args.seed)
    for name, gt in truth.items():
        if gt.get("corrupt"):
            print(f"{name:20s} corrupt ({gt['kind']}, {gt['bytes']} bytes)")
            continue
        extra = [f"cuts {gt['cuts']}"] if gt["cuts"] else []
        extra += [f"fades {gt['fades']}"] if gt["fades"] else []
        extra += [f"flashes {gt['flash_frames']}"] if gt["flash_frames"] else []
        extra += [f"text {t['text']!r} {t['box']}" for t in gt["text"]]
        speeds = sorted({s["speed_px_per_frame"] for s in gt["segments"]})
        extra += [f"speeds {speeds}"] if any(speeds) else []
        bars = [s["letterbox"] for s in gt["segments"] if any(s["letterbox"])]
        extra += [f"letterbox {bars[0]}"] if bars else []
        dims = f"{gt['width']}x{gt['height']}"
        print(f"{name:20s} {dims} {gt['n_frames']} frames  " + "; ".join(extra))
    print(
        f"wrote {len(truth)} files + ground_truth.json to {args.out_dir} in {time.perf_counter() - t0:.1f}s"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
