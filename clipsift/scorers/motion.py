"""Motion scores: dense optical flow on small gray frames, or H.264 motion vectors.

Optical flow (``FlowMeter``) is counted only where the first frame has texture (the structure
tensor's smaller eigenvalue above what the frame's own noise gives, ``texture_mask``): on flat
areas with sensor noise every solver returns flow that is noise it fitted, and on a straight edge
only the motion across it is visible. Measured on this machine (one OpenCV thread, 320x180, a
generated textured pan or rotation, noise sigma 4, mean of 11 pairs; "raw" counts every pixel as
before, the figures without it are the default texture-masked measure):

| true px/frame | DIS ultrafast | DIS fast | DIS medium | Farneback (0.5,3,15,3,5,1.2) |
| --- | --- | --- | --- | --- |
| 1.5 | +1.5 % | +5.3 % | +0.4 % | +0.0 % |
| 4.5 / 8.5 / 13.3 | within 0.2 % | within 0.9 % | within 0.4 % | within 0.3 % |
| 20 / 31.6 | +0.5 / -37 % | +0.5 / -32 % | +0.4 / -13 % | -53 / -79 % |
| rotation 0.25 / 1 / 3 deg/frame | -3 / -4 / -3 % | +5 / -3 / -3 % | +8 / -1 / -1 % | +2 / -2 / -2 % |
| still, textured | 0.05 px | 0.05 px | 0.05 px | 0.08 px |
| still, flat grey / sky / wall | 0 (raw 5.7 / 4.4 / 1.8 px) | 0 (raw 5.7 / 4.0 / 1.4) | 0 (raw 6.3 / 5.0 / 1.3) | 0 (raw 0.14 / 0.14 / 0.15) |
| time per pair, raw (the mask adds 0.5) | 0.5-0.6 ms | 1.1-1.6 ms | 5.4 ms | 9.6 ms |

Times are the best of several runs on a shared 2-core machine (up to 50 % more under load),
before the sums moved to float64 numpy (:func:`cell_sums`, reproducible bits; a few ms more per
pair on a loaded machine, still small next to decoding). The
texture mask costs about 0.5 ms per pair (the noise estimate, a blur and
``cv2.cornerMinEigenVal``), so the default measure takes 1.1 ms instead of 0.6: nothing next to
decoding (about 200 ms per 1080p video-second, for 2 pairs). Pans keep every pixel, so their
figures did not change. Through H.264 and the scan (flat frames with noise sigma 2-4 at 640x360 and
1280x720, crf 18 and 23), the raw flow read up to 0.56 frame diagonals per second (above the
default static bound of 0.015, so such shots were kept); the masked measure reads 0 on 23 of 24 and
0.007 on the last. On a textured disc turning 0.5 deg/frame in a flat noisy field the raw flow read
2.7x the true speed; the mask reads 0.77x (the disc's rim turns along itself: no visible motion).
DIS reads sub-pixel steps of finely textured content 5-11 % high (pans of 0.15-1.2 px per analysis
frame), for every preset.

Scores are per second of real time: each pair's displacement over its interval (the scan's
``dt``, from the decoder's timestamps). A pair spans at least a 30-fps frame
(:data:`clipsift.split.scan.MIN_PAIR_INTERVAL`): above 30 fps it skips frames, since DIS's
sub-pixel excess grows as the step shrinks (paired with the very next frame, a 40 px/s pan at
640x360 read +15-17 % at 60 fps against +5-6 % at 30). Where pictures repeat (animation on
twos, 3:2 pulldown) a pair spans two new pictures over their own time
(:class:`clipsift.split.scan.Pictures`). Generated H.264 pans along (0.8, 0.6)
at 640x360 read, at 24 / 30 / 60 fps: 25 px/s +7.6 / +4.4 / +4.6 %, 60 px/s +1.9 / +2.3 / +2.4 %,
200 px/s -0.3 / -0.6 / +0.4 %; at 1280x720 (the same speeds in frame widths) +6.0 / +7.6 / +7.0,
+2.4 / +2.1 / +2.2 and -0.2 / -0.0 / +1.4 % (a per-frame score falls 2.5x from 24 to 60 fps).
Default: DIS ``ultrafast``, within 2 % on pans of 1.5-20 px per frame and the fastest.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import av
import cv2
import numpy as np
from av.video.frame import PictureType

from clipsift.config import with_defaults
from clipsift.io.decode import (
    BITSTREAM_ASPECT,
    VideoError,
    frame_aspect,
    frame_time,
    open_video,
    reason,
    sample_aspect,
    seek_decode,
    stream_fps,
)

DIS_PRESETS = {
    "ultrafast": cv2.DISOPTICAL_FLOW_PRESET_ULTRAFAST,
    "fast": cv2.DISOPTICAL_FLOW_PRESET_FAST,
    "medium": cv2.DISOPTICAL_FLOW_PRESET_MEDIUM,
}

# Immerkaer's noise operator: zero on any plane, N(0, 36 sigma^2) on white noise of sigma
_NOISE_KERNEL = np.float32([[1, -2, 1], [-2, 4, -2], [1, -2, 1]])
TEXTURE_BLUR = 1.5  # Gaussian sigma (px) before the structure tensor: keeps texture, not noise
TEXTURE_BLOCK = 7  # structure-tensor window (px)
# smallest eigenvalue over noise variance that counts as texture: on white noise (after the blur)
# 99.99 % of pixels stay under 0.065 sigma^2 and none was seen over 0.09
TEXTURE_MIN_EIG = 0.15
MIN_NOISE = 1.0  # noise floor (8-bit levels): clean frames still need some texture
MIN_TEXTURED = 0.01  # share of textured pixels below which a frame (or grid cell) shows no motion
# larger eigenvalue over noise variance that makes an edge (a frame with no 2-D texture is
# measured across its edges): a smooth sky's gradient reads up to 1.6, strong stripes 230
EDGE_MIN_EIG = 10.0


def _edges(n: int, parts: int) -> np.ndarray:
    return np.arange(parts) * n // parts


def cell_sums(a: np.ndarray, rows: int, cols: int) -> np.ndarray:
    """Sums of the float64 ``a`` over a ``rows`` x ``cols`` grid of cells, in a fixed order (so
    the same video scanned twice stores the same samples)."""
    h, w = a.shape
    by_row = np.add.reduceat(a, _edges(h, rows), axis=0)
    return np.add.reduceat(by_row, _edges(w, cols), axis=1)


def cell_sizes(shape: tuple[int, int], rows: int, cols: int) -> np.ndarray:
    """Pixels per cell of :func:`cell_sums`."""
    h, w = shape[:2]
    return np.outer(np.diff([*_edges(h, rows), h]), np.diff([*_edges(w, cols), w]))


class FlowMeter:
    """Optical-flow speed between two small uint8 gray frames of the same size, where it can be
    measured.

    Motion is measured only on textured pixels of the first frame (``texture_mask``): flat or
    noisy areas (sky, a wall, a dark room) and straight edges (the aperture problem) carry no
    evidence of motion, and there the flow is noise the solver fitted. A frame with under
    ``MIN_TEXTURED`` of its pixels textured is measured across its edges instead (the flow's
    component along each edge pixel's gradient, which the aperture problem leaves measurable:
    a pan over stripes, a fence or blinds, read 0 and was rejected as static), and with no
    edges either measures 0: no evidence of motion is a still shot.
    """

    def __init__(
        self,
        method: str = "dis",
        preset: str = "ultrafast",
        grid: tuple[int, int] = (4, 4),
        mask: bool = True,
    ):
        if method == "dis":
            self._dis = cv2.DISOpticalFlow_create(DIS_PRESETS[preset])
        elif method != "farneback":
            raise ValueError(f"unknown flow method {method!r}")
        self.method = method
        self.grid = grid  # (rows, columns)
        self.mask = mask  # False: every pixel counts (the raw flow, for comparisons)

    def flow(self, prev_gray: np.ndarray, gray: np.ndarray) -> np.ndarray:
        if self.method == "dis":
            return self._dis.calc(prev_gray, gray, None)
        # the usual Farneback settings (pyramid 0.5 x 3 levels, window 15), also used by peers
        return cv2.calcOpticalFlowFarneback(prev_gray, gray, None, 0.5, 3, 15, 3, 5, 1.2, 0)

    @staticmethod
    def texture_mask(gray: np.ndarray) -> np.ndarray:
        """Pixels whose motion can be measured: the smaller eigenvalue of the structure tensor
        (``cv2.cornerMinEigenVal`` on the lightly blurred frame) above what the frame's own noise
        gives. The noise level comes from the frame (the median of Immerkaer's operator, exact on
        flat areas, high on fine texture: a safe side), so heavy grain raises the bar with it."""
        smooth = cv2.GaussianBlur(gray.astype(np.float32), (0, 0), TEXTURE_BLUR)
        eig = cv2.cornerMinEigenVal(smooth, TEXTURE_BLOCK, 3)
        return eig > TEXTURE_MIN_EIG * _noise_var(gray)

    @staticmethod
    def edge_normals(gray: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Edge pixels (the structure tensor's larger eigenvalue over ``EDGE_MIN_EIG`` times the
        noise variance) and the unit normal of each pixel's edge (its gradient's direction,
        ``(h, w, 2)``), for frames without 2-D texture."""
        smooth = cv2.GaussianBlur(gray.astype(np.float32), (0, 0), TEXTURE_BLUR)
        ev = cv2.cornerEigenValsAndVecs(smooth, TEXTURE_BLOCK, 3)
        return ev[..., 0] > EDGE_MIN_EIG * _noise_var(gray), ev[..., 2:4].astype(np.float64)

    def measure(self, prev_gray: np.ndarray, gray: np.ndarray) -> dict:
        """``mag``: mean flow magnitude in pixels of the given frames over the textured pixels
        (under ``MIN_TEXTURED`` of them: the flow across the edge pixels, 0 with no edges
        either); ``grid``: the same per cell (row-major,
        ``grid`` rows x columns; NaN for a cell without texture); ``dx``, ``dy``: mean flow (a
        pan's direction); ``textured``: the share of textured pixels."""
        f = self.flow(prev_gray, gray).astype(np.float64)
        # numpy in float64 from here: OpenCV's float32 SIMD paths (magnitude, resize, sumElems)
        # gave results that differed in the last bits with the arrays' memory alignment
        fx, fy = f[..., 0], f[..., 1]
        mag = np.hypot(fx, fy)
        rows, cols = self.grid
        if not self.mask:
            mags = cell_sums(mag, rows, cols)
            return {
                "mag": float(mags.sum()) / mag.size,
                "grid": [float(v) for v in (mags / cell_sizes(mag.shape, rows, cols)).ravel()],
                "dx": float(cell_sums(fx, rows, cols).sum()) / mag.size,
                "dy": float(cell_sums(fy, rows, cols).sum()) / mag.size,
                "textured": 1.0,
            }
        keep = self.texture_mask(prev_gray).astype(np.float64)
        keeps = cell_sums(keep, rows, cols)
        n = float(keeps.sum())
        share = n / keep.size
        if share < MIN_TEXTURED:
            edges, normal = self.edge_normals(prev_gray)
            if edges.mean() < MIN_TEXTURED:
                nan = [float("nan")] * (rows * cols)
                return {"mag": 0.0, "grid": nan, "dx": 0.0, "dy": 0.0, "textured": share}
            # across the edges only: the flow's part along each pixel's normal
            along = fx * normal[..., 0] + fy * normal[..., 1]
            keep = edges.astype(np.float64)
            keeps, n = cell_sums(keep, rows, cols), float(keep.sum())
            mag, fx, fy = np.abs(along), along * normal[..., 0], along * normal[..., 1]
        moving = cell_sums(mag * keep, rows, cols)
        # per cell: the mean over its textured pixels, where enough of them are textured
        with np.errstate(invalid="ignore", divide="ignore"):
            textured = keeps / cell_sizes(keep.shape, rows, cols) >= MIN_TEXTURED
            cells = np.where(textured, moving / keeps, np.nan)
        return {
            "mag": float(moving.sum()) / n,
            "grid": [float(v) for v in cells.ravel()],
            "dx": float(cell_sums(fx * keep, rows, cols).sum()) / n,
            "dy": float(cell_sums(fy * keep, rows, cols).sum()) / n,
            "textured": share,
        }


def _noise_var(gray: np.ndarray) -> float:
    """The frame's noise variance (8-bit levels squared): the median of Immerkaer's operator,
    exact on flat areas, high on fine texture (a safe side), at least ``MIN_NOISE``."""
    # every other pixel each way is plenty for a median, at a seventh of the cost
    resp = cv2.filter2D(gray, cv2.CV_16S, _NOISE_KERNEL)[1:-1:2, 1:-1:2]
    sigma = max(MIN_NOISE, float(np.median(np.abs(resp))) / (0.6745 * 6))
    return sigma * sigma


def _pair_dt(sample: dict, fps: float) -> float:
    """The pair's interval in seconds: the scan's ``dt``, else (older scans) one frame."""
    dt = sample.get("dt")
    if dt is None or not np.isfinite(dt) or dt <= 0:
        return 1.0 / fps
    return float(dt)


def aggregate_motion(samples: Sequence[dict], *, scale: float, diagonal: float, fps: float) -> dict:
    """Per-clip motion per SECOND from ``FlowMeter.measure`` records of frame pairs (the scan's
    samples, each with the first frame at least a 30-fps frame later).

    Each pair's displacement is divided by its real interval (``dt`` from the decoder's
    timestamps; 1 / ``fps`` where a record has none), so the same motion scores the same at any
    frame rate, also a variable one. ``scale`` = source width / analysis width brings pixels back
    to the source; ``diagonal`` is the source diagonal in pixels, so ``motion_rel_per_s`` (frame
    diagonals per second) is the same at any resolution. ``motion_min_region_per_s`` is the
    weakest textured grid cell averaged over the pairs (a still region: a static shot with one
    moving part scores low there); 0 when no cell had texture. ``motion_textured`` is the mean
    share of pixels with measurable texture (low: flat content, whose motion reads as 0, or
    stripes, measured across their edges).
    """
    if not samples:
        return dict.fromkeys(
            ("motion_px_per_s", "motion_rel_per_s", "motion_min_region_per_s", "motion_textured")
        ) | {"n_pairs": 0}
    rate = np.array([scale / _pair_dt(s, fps) for s in samples])  # source px per s, per pixel
    px_per_s = float(np.mean(np.array([s["mag"] for s in samples]) * rate))
    cells = np.array([s["grid"] for s in samples], dtype=np.float64) * rate[:, None]
    seen = ~np.isnan(cells).all(axis=0)
    weakest = float(np.nanmean(cells[:, seen], axis=0).min()) if seen.any() else 0.0
    textured = [s.get("textured") for s in samples]
    textured = [t for t in textured if t is not None and np.isfinite(t)]
    return {
        "motion_px_per_s": px_per_s,
        "motion_rel_per_s": px_per_s / diagonal,
        "motion_min_region_per_s": weakest,
        "motion_textured": float(np.mean(textured)) if textured else None,
        "n_pairs": len(samples),
    }


MV_COLUMNS = ("mv_px", "mv_rel", "mv_min_region", "mv_min_region_rel", "mv_px_per_s",
              "mv_rel_per_s", "mv_min_region_per_s")  # fmt: skip


def motion_vectors(
    path: str | os.PathLike,
    start: float,
    end: float,
    *,
    sample_fps: float = 2.0,
    patch: int = 256,
) -> dict:
    """Motion from the H.264 (or other codec's) motion vectors, without any pixel work.

    Reads the first P frame in each 1/``sample_fps`` slot of [start, end). Only P frames are used:
    FFmpeg's ``source`` field is a direction (-1 past / +1 future), never a distance, and with
    B-frames the reference distance varies (x264 defaults: P frames 2-4 frames from their
    reference, B frames 1-3 depending on the B-pyramid). A P frame's reference is the previous I
    or P frame in display order, so its distance is known; measured on generated pans encoded by
    libx264 at presets ultrafast..slow with and without B-frames, this is within 0.3 % of the
    truth (using |source| as the distance overestimated 2-4x on P frames). Multi-reference P
    frames may point further back; assumed rare.

    Returns ``mv_px`` (area-weighted mean magnitude of inter blocks, display px per frame:
    non-square pixels are counted at their width), ``mv_rel`` = mv_px / (W + H), display W (the
    NeMo convention), ``mv_min_region`` (the weakest square of ``patch`` display pixels, mean
    over frames, px per frame) and ``mv_min_region_rel``, ``n_frames``;
    and per second of real time, each frame's vectors over the time from its reference frame to
    it (the decoder's timestamps, so also right at a variable frame rate): ``mv_px_per_s``,
    ``mv_rel_per_s`` (frame diagonals per second, the unit of ``motion.rel_per_s``) and
    ``mv_min_region_per_s``. The per-frame values halve from 30 to 60 fps; these do not.
    Intra blocks carry no vector and are left out. Streams without exported vectors give None:
    all-intra ones and, in FFmpeg, HEVC and VP9 (checked; H.264, MPEG-2 and MPEG-4 part 2 work),
    so the scan needs optical flow as the general path.
    """
    per_frame: list[float] = []
    per_second: list[float] = []
    patch_sum = patch_sum_s = patch_n = None
    width = height = 0
    sar = None
    # Vectors need neither the loop filter nor the non-reference (B) frames: skipping both cut
    # decoding of a 720p x264 video from 0.25 to 0.11 CPU-s per 300 frames (export_mvs itself
    # costs nothing).
    with open_video(
        path, export_mvs=True, skip_loop_filter="all", skip_frame="NONREF", quick=True
    ) as (
        container,
        stream,
    ):
        fps = stream_fps(stream) or 30.0
        follow = container.format.name in BITSTREAM_ASPECT
        # a verified seek, by time from the stream's start: this one went to ``start`` as a
        # pts, a stream that starts at 1.4 s (MPEG-TS) was read from 1.4 s too early, and one
        # whose clock wraps from -5.7 s on, 5.7 s too late; an MPEG-TS seek may land late
        frames = seek_decode(container, stream, start) if start > 0 else container.decode(stream)
        anchor_t = None  # time of the last I or P frame
        next_t = start
        try:
            for frame in frames:
                t = frame_time(frame, stream)
                if t >= end - 1e-6:
                    break
                # a vector's x is in coded pixels, sar of them wide: the frame's own aspect, which
                # MPEG-TS may change mid-stream (followed frame by frame, as iter_frames does)
                sar = frame_aspect(follow, stream, frame, sar or sample_aspect(stream))
                ptype = int(frame.pict_type)
                if ptype == PictureType.P and anchor_t is not None and t >= next_t - 1e-6:
                    side = frame.side_data.get("MOTION_VECTORS")
                    if side is not None:
                        width, height = frame.width, frame.height
                        if patch_sum is None:  # patches of patch x patch display pixels
                            patch_w = max(1, round(patch / sar))
                            nx, ny = -(-width // patch_w), -(-height // patch)
                            patch_sum, patch_sum_s, patch_n = np.zeros((3, nx * ny))
                        gap = t - anchor_t  # seconds from the reference frame to this one
                        dist = max(1.0, round(gap * fps))
                        per_s = dist / gap if gap > 0 else fps  # px per frame -> px per second
                        mean, cells = _frame_vectors(
                            side.to_ndarray(), dist, (patch_w, patch), nx, ny, sar
                        )
                        if mean is not None:
                            per_frame.append(mean)
                            per_second.append(mean * per_s)
                            seen = ~np.isnan(cells)
                            patch_sum[seen] += cells[seen]
                            patch_sum_s[seen] += cells[seen] * per_s
                            patch_n[seen] += 1
                        next_t = (
                            start + (np.floor((t - start) * sample_fps + 1e-6) + 1) / sample_fps
                        )
                if ptype in (PictureType.I, PictureType.P):
                    anchor_t = t
        except av.FFmpegError as exc:
            raise VideoError(f"decode failed: {reason(exc)}") from exc
    if not per_frame:
        return dict.fromkeys(MV_COLUMNS) | {"n_frames": 0}
    mv_px, px_per_s = float(np.mean(per_frame)), float(np.mean(per_second))
    width = width * sar  # the display width: relative units are the same for any pixel shape
    seen = patch_n > 0
    weakest = float((patch_sum[seen] / patch_n[seen]).min())
    return {
        "mv_px": mv_px,
        "mv_rel": mv_px / (width + height),
        "mv_min_region": weakest,
        "mv_min_region_rel": weakest / (width + height),
        "mv_px_per_s": px_per_s,
        "mv_rel_per_s": px_per_s / float(np.hypot(width, height)),
        "mv_min_region_per_s": float((patch_sum_s[seen] / patch_n[seen]).min()),
        "n_frames": len(per_frame),
    }


def _frame_vectors(mv: np.ndarray, dist: float, patch, nx: int, ny: int, sar: float):
    """Area-weighted mean magnitude per frame and per patch (NaN where a patch has no vector), in
    display pixels (``sar``: the width of a coded pixel); ``patch`` is ``(width, height)`` in
    coded pixels."""
    pw, ph = patch
    mv = mv[mv["source"] < 0]  # P frames only predict from the past; be explicit
    if not len(mv):
        return None, None
    mag = np.hypot(mv["motion_x"] * sar, mv["motion_y"]) / mv["motion_scale"] / dist
    area = mv["w"].astype(np.float64) * mv["h"]
    # dst_x/dst_y is the block centre in the current frame
    px = np.clip(mv["dst_x"] // pw, 0, nx - 1)
    py = np.clip(mv["dst_y"] // ph, 0, ny - 1)
    idx = py.astype(np.int64) * nx + px
    wsum = np.bincount(idx, weights=area, minlength=nx * ny)
    msum = np.bincount(idx, weights=mag * area, minlength=nx * ny)
    with np.errstate(invalid="ignore", divide="ignore"):
        cells = msum / wsum
    return float(msum.sum() / wsum.sum()), cells


# --------------------------------------------------------------------------- registered scorers


def score_motion(clips, inputs, cfg: dict):
    """Optical-flow motion per clip from the scan's samples (no decoding here)."""
    import pandas as pd

    from . import clip_samples

    samples = inputs.samples
    by_video = dict(tuple(samples.groupby("video_id"))) if len(samples) else {}
    rows = []
    for clip in clips.itertuples():
        s = clip_samples(by_video, samples, clip)
        # the pair (the sample and its pair_frame; f + 1 in scans from before it) must lie inside
        # the clip, and the sample must have a flow measurement
        if "mag" in s:
            pair = s["pair_frame"] if "pair_frame" in s else s["frame"] + 1
            s = s[(pair < clip.end_frame).fillna(False).astype(bool) & s["mag"].notna()]
        else:
            s = s.iloc[:0]
        # a video of one frame has no flow pair at all, so no "mag" column; scans from before
        # the per-second units have no "dt" (one frame is assumed) nor "textured"
        cols = [c for c in ("mag", "grid", "dt", "textured") if c in s]
        recs = [{**r, "grid": list(r["grid"])} for r in s[cols].to_dict("records")]
        scale = float(s["scale"].iloc[0]) if len(s) else 1.0
        diag = float(np.hypot(clip.width, clip.height))
        rec = aggregate_motion(recs, scale=scale, diagonal=diag, fps=float(clip.fps))
        # merged as motion.{px_per_s, rel_per_s, min_region_per_s, textured, n_pairs}
        rows.append(
            {"clip_id": clip.clip_id, **{k.removeprefix("motion_"): v for k, v in rec.items()}}
        )
    return pd.DataFrame(rows)


def score_motion_vectors(clips, inputs, cfg: dict):
    """Codec motion vectors per clip (the fast option: no optical flow, no pixel conversion)."""
    import pandas as pd

    sample_fps = with_defaults("scorers.motion_vectors", cfg)["sample_fps"]
    rows = []
    for clip in clips.itertuples():
        try:
            rec = motion_vectors(
                clip.source_path,
                clip.start_time,
                clip.end_time,
                sample_fps=sample_fps,
            )
            rows.append(
                {
                    "clip_id": clip.clip_id,
                    **{k.removeprefix("mv_"): v for k, v in rec.items()},
                    "error": None,
                }
            )
        except VideoError as exc:
            rows.append({"clip_id": clip.clip_id, "error": str(exc)})
    return pd.DataFrame(rows)
