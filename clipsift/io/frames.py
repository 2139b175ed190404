"""A decoded frame as arrays: planes, rotation and square pixels at the display aspect.

Small analysis frames come from the decoded Y (and U/V) planes resized with OpenCV, which costs
about a sixth of PyAV's own scaler at 1080p (bench/throughput.py, bench/results/).

Luma is the coded Y plane on the scale of 8-bit limited-range video (black 16, white 235),
whatever the chroma subsampling (4:2:0, 4:2:2, 4:4:4), bit depth (10-bit HEVC from phones,
4:2:2 10-bit from cameras) or range: a 10-bit sample is rounded to its 8-bit level, and a
full-range source (``yuvj*`` or flagged full range, as some phones, webcams and screen
recorders write) is mapped from 0-255 onto 16-235, so thresholds such as
``technical.luma_mean`` mean the same for every source; an HDR frame's luma (PQ, HLG) is read
at the levels of its SDR picture (:meth:`Frame.sdr_levels`). (Through FFmpeg's gray conversion,
which the other formats took before, limited range was stretched to 0-255: a scene at level 24
in 8-bit 4:2:0 read 9 in 10 bits or 4:2:2, under the default minimum of 20, one at 230 read
249, over the maximum of 235, and sharpness 36 % higher.) Colour at small sizes is converted
from 8-bit limited-range planes, with the matrix the frame is tagged with (BT.709, BT.2020) or
BT.601 (:func:`yuv420_to_bgr`), so a full-range frame's planes are mapped to limited range
first (unmapped, its blacks were crushed and its whites clipped).
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass

import av
import cv2
import numpy as np

from .hdr import hdr_transfer, sdr_luma_table, to_sdr

# planar YUV formats read plane by plane: any chroma subsampling, 8 to 16 bits per sample
_PLANAR_YUV = re.compile(r"yuvj?(?:420|422|444|440|411|410)p(?:(\d+)(le|be))?")
_U8, _U16LE, _U16BE = np.dtype(np.uint8), np.dtype("<u2"), np.dtype(">u2")
AVCOL_RANGE_JPEG = 2  # FFmpeg's AVColorRange for full range
# FFmpeg's AVColorSpace codes with a YUV matrix other than BT.601: their luma weights (Kr, Kb)
_MATRICES = {1: (0.2126, 0.0722), 9: (0.2627, 0.0593), 10: (0.2627, 0.0593)}  # BT.709, BT.2020


@dataclass
class Frame:
    """One decoded frame: its index among decoded frames, its time in seconds, the PyAV frame,
    and the stream's sample aspect ratio (non-square pixels: display width = coded width x sar).

    Pictures (``bgr``, ``rgb``, ``analysis``, ``gray(width)``) are what a viewer sees: rotation
    applied and square pixels at the display aspect, at :meth:`display_size` when unsized (a
    model, a crop in display pixels or a VAE given the coded pixels of a 720x576 frame with
    16:11 pixels saw it squeezed by 31 %). ``luma()`` and ``gray()`` keep the coded pixels
    (rotated), for measures on the full-resolution plane."""

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
        """Full-size Y plane at 8 bits, limited range (a view where possible), rotation applied;
        an HDR frame's at the levels of its SDR picture (:meth:`sdr_levels`)."""
        f = self.av_frame
        bits = yuv_bits(f)
        # other layouts come as FFmpeg's gray, which is full range
        full = bits is None or full_range(f)
        return self.sdr_levels(_rotate(to_8bit(_plane(f, 0), bits or 8, full=full), self.rotation))

    @property
    def sdr_table(self) -> np.ndarray | None:
        """For an HDR frame, the 256 8-bit limited-range luma levels of its SDR picture by coded
        level (:func:`clipsift.io.hdr.sdr_luma_table`: PQ codes SDR white at about 144, HLG at
        181); None for any other."""
        transfer = hdr_transfer(self.av_frame)
        return None if transfer is None else sdr_luma_table(transfer)

    def sdr_levels(self, luma: np.ndarray) -> np.ndarray:
        """8-bit limited-range ``luma`` of this frame as its SDR picture has it (an HDR frame's
        through :attr:`sdr_table`, any other as it is). For luma measures and their thresholds;
        not for what compares frames by their coded signal (cuts, blends, flow)."""
        table = self.sdr_table
        return luma if table is None else cv2.LUT(luma, table)

    def gray(self, width: int | None = None) -> np.ndarray:
        """Y plane resized to ``width`` (aspect kept), rotation applied."""
        y = self.luma()
        return y if width is None else resize_to_width(y, width, self._sar())

    def bgr(self, size: int | tuple[int, int] | None = None) -> np.ndarray:
        """BGR image ``size`` wide (None: :meth:`display_size`; a ``(width, height)`` sets the
        shape: one resize from the coded pixels), resized before the colour conversion where it
        can be (cheap path)."""
        if isinstance(size, int) and yuv_bits(self.av_frame) is not None:
            return self.analysis(size)[1]
        img = _rotate(self.av_frame.to_ndarray(format="bgr24"), self.rotation)
        if isinstance(size, tuple):
            return cv2.resize(img, size, interpolation=cv2.INTER_AREA)
        return self._square(img, size)

    def _square(self, img: np.ndarray, width: int | None) -> np.ndarray:
        """The rotated coded ``img`` with square pixels: ``width`` wide, or at
        :meth:`display_size` (as it is where the pixels are square)."""
        if width is not None:
            return resize_to_width(img, width, self._sar())
        size = self.display_size()
        if size == (img.shape[1], img.shape[0]):
            return img
        shrinks = size[0] * size[1] < img.shape[0] * img.shape[1]
        return cv2.resize(img, size, interpolation=cv2.INTER_AREA if shrinks else cv2.INTER_LINEAR)

    def analysis(
        self, width: int, bgr_width: int | None = None, *, quick: bool = False
    ) -> tuple[np.ndarray, np.ndarray]:
        """Small gray frame of display width ``width`` and BGR frame of display width
        ``bgr_width`` (default: ``width``), from one resize of each plane: the scan's detector
        needs colour at half the size of the gray frames, and the colour conversion of a 4:2:0
        frame costs in proportion to its pixels. ``quick``: the last resize step below 2x is
        bilinear (:func:`shrink`), for the scan's per-frame frames; not for OCR."""
        last = cv2.INTER_LINEAR if quick else cv2.INTER_AREA
        f = self.av_frame
        bgr_width = bgr_width or width
        bits = yuv_bits(f)
        if bits is None:
            img = _rotate(f.to_ndarray(format="bgr24"), self.rotation)
            bgr = resize_to_width(img, width, self._sar())
            gray = to_8bit(cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY), 8, full=True)
            return gray, (
                bgr if bgr_width == width else resize_to_width(img, bgr_width, self._sar())
            )
        full = full_range(f)
        y = _plane(f, 0)
        h0, w0 = y.shape
        w, h = _even_size(w0, h0, width, self.rotation, self.sar)
        # the plane itself at its own size; samples are resized, then put on the 8-bit scale
        gray = np.ascontiguousarray(to_8bit(shrink(y, (w, h), last), bits, full=full))
        bw, bh = _even_size(w0, h0, bgr_width, self.rotation, self.sar)
        # the planes resized separately to 4:2:0 at the small size, then one colour conversion
        if (bw, bh) == (w, h):
            yb = gray
        elif bw <= w:
            yb = shrink(gray, (bw, bh), last)  # already on the 8-bit scale
        else:
            yb = to_8bit(shrink(y, (bw, bh), last), bits, full=full)
        u, v = (
            to_8bit(shrink(_plane(f, i), (bw // 2, bh // 2), last), bits, full=full, chroma=True)
            for i in (1, 2)
        )
        bgr = yuv420_to_bgr(yb, u, v, f.colorspace)
        return _rotate(gray, self.rotation), _rotate(bgr, self.rotation)

    def rgb(self, size: int | tuple[int, int] | None = None) -> np.ndarray:
        """RGB image; ``size`` is a width (aspect kept) or ``(width, height)``. HDR frames (PQ,
        HLG) come tone-mapped to SDR BT.709 (:mod:`clipsift.io.hdr`): this is the picture
        models, scorers and clip files get."""
        transfer = hdr_transfer(self.av_frame)
        if transfer is not None:
            return self._sdr_rgb(size, transfer)
        return cv2.cvtColor(self.bgr(size), cv2.COLOR_BGR2RGB)

    def _sdr_rgb(self, size, transfer: int) -> np.ndarray:
        """An HDR frame as SDR RGB: converted at 16 bits with its own matrix and range by
        FFmpeg, resized (fewer pixels to tone-map), then tone-mapped."""
        img = _rotate(self.av_frame.to_ndarray(format="rgb48le"), self.rotation)
        if isinstance(size, tuple):
            img = cv2.resize(img, size, interpolation=cv2.INTER_AREA)
        else:
            img = self._square(img, size)
        return to_sdr(img, transfer, int(self.av_frame.color_primaries or 0))


def yuv_bits(frame: av.VideoFrame) -> int | None:
    """Bits per sample of a planar YUV frame (8 for yuv420p, 10 for yuv422p10le, ...); None for
    any other layout (RGB, semi-planar, palette, gray), which goes through FFmpeg's converter."""
    return _bits_of(frame.format.name)


@functools.cache
def _bits_of(pix_fmt: str) -> int | None:
    m = _PLANAR_YUV.fullmatch(pix_fmt)
    return None if m is None else int(m.group(1) or 8)


def yuv420_to_bgr(y: np.ndarray, u: np.ndarray, v: np.ndarray, colorspace: int) -> np.ndarray:
    """8-bit limited-range 4:2:0 planes as BGR, with the matrix the frame is tagged with
    (FFmpeg's ``AVColorSpace``): BT.709 or BT.2020 where tagged so, else BT.601, as FFmpeg
    converts an untagged frame. OpenCV's conversion knows BT.601 only: a BT.709 red read 233."""
    bh, bw = y.shape
    k = _MATRICES.get(colorspace)
    if k is None:
        i420 = np.empty((bh * 3 // 2, bw), np.uint8)
        i420[:bh] = y
        i420.reshape(-1)[bh * bw :] = np.concatenate([u.ravel(), v.ravel()])  # any even h
        return cv2.cvtColor(i420, cv2.COLOR_YUV2BGR_I420)
    uv = (cv2.resize(c, (bw, bh), interpolation=cv2.INTER_LINEAR) for c in (u, v))
    return cv2.transform(cv2.merge([y, *uv]), _bgr_from_yuv(*k))


@functools.cache
def _bgr_from_yuv(kr: float, kb: float) -> np.ndarray:
    """The affine map (3x4: B, G, R rows from Y, U, V and 1) of limited-range YUV with luma
    weights ``kr`` and ``kb`` to full-range BGR."""
    kg = 1 - kr - kb
    ys, cs = 255 / 219, 255 / 224
    m = np.array(
        [
            [ys, 2 * (1 - kb) * cs, 0],
            [ys, -2 * (1 - kb) * kb / kg * cs, -2 * (1 - kr) * kr / kg * cs],
            [ys, 0, 2 * (1 - kr) * cs],
        ]
    )
    offset = -(m[:, 0] * 16 + (m[:, 1] + m[:, 2]) * 128)
    return np.hstack([m, offset[:, None]]).astype(np.float32)


def full_range(frame: av.VideoFrame) -> bool:
    """Whether the frame's samples span the full range (JPEG levels), not 16-235 (MPEG)."""
    return frame.format.name.startswith("yuvj") or frame.color_range == AVCOL_RANGE_JPEG


def to_8bit(img: np.ndarray, bits: int, *, full: bool = False, chroma: bool = False) -> np.ndarray:
    """Samples of ``bits`` bits as uint8 on the scale of 8-bit limited-range video, rounded: a
    limited-range sample keeps its level (a 10-bit 64, black, is 16); a ``full`` range one is
    mapped from 0 .. 2**bits - 1 onto 16-235 (luma) or 16-240 about 128 (``chroma``)."""
    if not full:
        return img if bits == 8 else cv2.convertScaleAbs(img, alpha=2.0 ** (8 - bits))
    k = (224 if chroma else 219) / 255
    beta = 128 * (1 - k) if chroma else 16
    return cv2.convertScaleAbs(img, alpha=255 / (2**bits - 1) * k, beta=beta)


def _plane(frame: av.VideoFrame, i: int) -> np.ndarray:
    """Plane ``i`` of a planar YUV frame as stored (uint8, or uint16 above 8 bits); plane 0 of
    another layout as FFmpeg's 8-bit gray."""
    bits = yuv_bits(frame)
    if bits is None:
        if i == 0:
            return frame.to_ndarray(format="gray")
        raise ValueError(f"chroma planes only for planar YUV input, not {frame.format.name}")
    plane = frame.planes[i]
    dtype = _U8 if bits == 8 else _U16LE if frame.format.name.endswith("le") else _U16BE
    buf = np.frombuffer(plane, dtype)
    return buf.reshape(-1, plane.line_size // dtype.itemsize)[: plane.height, : plane.width]


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


def shrink(img: np.ndarray, size: tuple[int, int], last: int = cv2.INTER_AREA) -> np.ndarray:
    """Downscale to ``size`` (w, h): exact halvings with INTER_LINEAR (a 2x2 mean), then one
    ``last`` step for what is left. A 1080p luma plane to 320 px, one thread, on the bench's
    frames: one INTER_AREA resize 0.84 ms, halvings then INTER_AREA 0.56 ms, halvings then
    INTER_LINEAR 0.34 ms (INTER_AREA's generic path for the last 1.5x costs as much as the
    halvings). At a factor under 2 the bilinear taps still reach every source pixel, but keep
    less fine detail than INTER_AREA, which OCR needs (a one-word sign was lost at 720p): so
    ``last`` is INTER_LINEAR only for the scan's per-frame frames."""
    w, h = size
    while img.shape[1] >= 2 * w and img.shape[0] >= 2 * h:
        img = cv2.resize(
            img, (img.shape[1] // 2, img.shape[0] // 2), interpolation=cv2.INTER_LINEAR
        )
    if img.shape[1] == w and img.shape[0] == h:
        return img
    if img.shape[1] < w or img.shape[0] < h:  # an upscale on one axis (odd aspect or SAR)
        return cv2.resize(img, (w, h), interpolation=cv2.INTER_AREA)
    return cv2.resize(img, (w, h), interpolation=last)


def resize_to_width(img: np.ndarray, width: int, sar: float = 1.0) -> np.ndarray:
    """``img`` (pixels ``sar`` times as wide as high) at ``width``, square pixels."""
    h0, w0 = img.shape[:2]
    if w0 == width and sar == 1.0:
        return img
    h = max(1, int(round(h0 * width / (w0 * sar))))
    interp = cv2.INTER_AREA if width < w0 else cv2.INTER_LINEAR
    return cv2.resize(img, (width, h), interpolation=interp)
