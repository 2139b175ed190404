"""The frames of a synthetic scene (clipsift.sample renders and encodes them).

A :class:`Segment` is a crop window moving rigidly over a larger textured canvas, so its motion is
known exactly; fades, dissolves, flashes, burned-in text and black bars are painted in with known
frame indices and boxes. Everything is seeded and uses deterministic OpenCV calls, so the pixels
of a segment depend on its arguments only.
"""

from __future__ import annotations

import colorsys
import functools
import math
from dataclasses import dataclass

import cv2
import numpy as np

FONT = cv2.FONT_HERSHEY_DUPLEX


@dataclass
class Segment:
    """One scene; consecutive segments meet at a hard cut unless a fade separates them."""

    frames: int  # length in frames
    seed: int = 0  # texture seed: other seed = other palette and texture (scene detectors fire)
    pan: tuple[float, float] = (0, 0)  # image motion (dx, dy) in pixels per frame, exact
    text: str | None = None  # burned-in subtitle-like line (white, black outline) on every frame
    flashes: tuple[int, ...] = ()  # offsets in the segment of single white flash frames
    # each flash frame and those after it, as shares of the way to white: (1.0,) one white frame,
    # (0.9, 0.5, 0.2) a flash that fades out (a camera flash, lightning), (0.6,) a frame
    # overexposed (an edit's flash cut)
    flash_gain: tuple[float, ...] = (1.0,)
    fade_in: int = 0  # frames fading in from ``fade_color`` at the start
    fade_out: int = 0  # frames fading out to ``fade_color`` at the end
    letterbox: tuple[int, int] = (0, 0)  # black bars: (top/bottom height, left/right width)
    fade_color: str = "black"  # "black" or "white": what the fades go through
    dissolve: int = 0  # first frames cross-fading from the previous scene (which keeps moving)
    wipe: int = 0  # first frames wiping in over the previous scene (which keeps moving)
    wipe_shape: str = "right"  # the edge of the wipe: "right" (a vertical edge moving right),
    #                            "down" (a horizontal one moving down) or "iris" (a growing circle)
    # first frames of a whip pan from the previous scene: it swings away over the first half
    # (still moving on its own), this scene swings in over the rest, at up to WHIP_SPEED of the
    # width per frame, each frame blurred along the swing; the cut hides in the blur
    whip: int = 0
    texture: str = "shapes"  # "shapes", "flat" (a smooth gradient: sky, wall) or a kind of
    #                          clipsift.textures (busy, textless: fractal, foliage, ...)
    noise: float = 0.0  # sensor noise: Gaussian sigma in levels, new on every frame
    rotate: float = 0.0  # image rotation about the frame centre, degrees per frame
    text_scale: float = 1.0  # size of ``text`` relative to the default subtitle size
    # a subject moving on its own across the scene (a walker over a slow pan): a disc of the
    # scene's accent colour, (radius as a share of the height, px per frame); it crosses the
    # frame back and forth and bobs up and down
    subject: tuple[float, float] = (0.0, 0.0)
    # frames each picture is shown, in turn: (2,) animation on twos, (3, 2) 24-fps film carried
    # at 60 fps (3:2 pulldown); the content moves ``pan`` (``rotate``) times their mean per
    # picture, so ``pan`` stays the speed per frame
    hold: tuple[int, ...] = (1,)


# ----------------------------------------------------------------------------- texture


def _noise(rng: np.random.Generator, h: int, w: int, cell: float) -> np.ndarray:
    """Smooth value noise with features about ``cell`` pixels wide, unit-ish variance."""
    cell = max(1.0, cell)
    gh, gw = int(h / cell) + 3, int(w / cell) + 3
    grid = rng.standard_normal((gh, gw)).astype(np.float32)
    if cell == 1.0:
        return grid[:h, :w]
    up = cv2.resize(grid, (round(gw * cell), round(gh * cell)), interpolation=cv2.INTER_CUBIC)
    return up[:h, :w]


def _palette(seed: int, rng: np.random.Generator) -> np.ndarray:
    """Six RGB colours around a seed-dependent hue, plus one complementary accent.

    Hues step by the golden ratio, so consecutive seeds are at least ~137 degrees apart and a hard
    cut between them changes hue, saturation and value at once (ContentDetector's HSV score).
    Values stay in 0.25..0.88 so scenes are never as dark as black bars nor as bright as a flash.
    """
    hue0 = (seed * 0.6180339887) % 1.0
    cols = []
    for i in range(7):
        hue = (hue0 + 0.5) % 1.0 if i == 6 else (hue0 + rng.uniform(-0.08, 0.08)) % 1.0
        sat, val = rng.uniform(0.3, 0.9), rng.uniform(0.25, 0.88)
        cols.append(colorsys.hsv_to_rgb(hue, sat, val))
    return np.asarray(cols, np.float32) * 255


def _texture(seed: int, h: int, w: int, scale: float) -> np.ndarray:
    """``h x w`` RGB uint8 canvas: hard-edged blobs, shapes and multi-scale shading.

    Posterised low-frequency noise gives large regions with curved hard edges (what scene
    detectors compare), random discs/boxes/lines give corners, and shading at 2-12 px scales gives
    the fine detail that DIS optical flow and phase correlation lock on to. ``scale`` is the frame
    height / 360, so other resolutions look the same, only sharper.
    """
    rng = np.random.default_rng(seed)
    pal = _palette(seed, rng)
    low = _noise(rng, h, w, 90 * scale) + 0.5 * _noise(rng, h, w, 28 * scale)
    levels = np.quantile(low, [0.2, 0.4, 0.6, 0.8])  # five equal-area regions
    img = pal[np.searchsorted(levels, low)]  # (h, w, 3) float32
    for _ in range(int(h * w / (5000 * scale * scale))):
        col = tuple(float(c) for c in pal[rng.integers(len(pal))] * rng.uniform(0.75, 1.15))
        x, y = int(rng.integers(w)), int(rng.integers(h))
        r = max(2, int(rng.integers(4, 36) * scale))
        kind = rng.integers(3)
        if kind == 0:
            cv2.circle(img, (x, y), r, col, -1, cv2.LINE_AA)
        elif kind == 1:
            x2, y2 = x + int(rng.integers(-2 * r, 2 * r)), y + int(rng.integers(-2 * r, 2 * r))
            cv2.rectangle(img, (x, y), (x2, y2), col, -1, cv2.LINE_AA)
        else:
            x2, y2 = x + int(rng.integers(-4 * r, 4 * r)), y + int(rng.integers(-4 * r, 4 * r))
            cv2.line(img, (x, y), (x2, y2), col, max(1, int(3 * scale)), cv2.LINE_AA)
    shade = (
        0.5 * _noise(rng, h, w, 12 * scale)
        + 0.35 * _noise(rng, h, w, 4 * scale)
        + 0.25 * _noise(rng, h, w, 2 * scale)
    )
    img *= (1.0 + 0.2 * shade)[..., None]
    return np.clip(img, 0, 255).astype(np.uint8)


# ----------------------------------------------------------------------------- text


@functools.lru_cache(maxsize=16)
def text_layout(text: str, w: int, h: int, letterbox: tuple[int, int], scale: float = 1.0) -> dict:
    """Bottom-centred subtitle inside the picture area, as alpha masks over its box.

    The black outline is a dilation of the text mask: OpenCV 5 draws the Hershey font names with a
    built-in TrueType face whose stroke barely grows with ``thickness``, so drawing the text twice
    (thick black, thin white) leaves no outline there. ``box`` (x, y, w, h) is the exact extent of
    the outlined text.
    """
    bar_v, bar_h = letterbox
    inner_w, inner_h = w - 2 * bar_h, h - 2 * bar_v
    fs = inner_h / 360 * 1.3 * scale  # ~25 px cap height at 360 p (scale 1): easy for OCR
    (tw, _), _ = cv2.getTextSize(text, FONT, fs, 1)
    fs = min(fs, fs * 0.85 * inner_w / tw)  # long lines shrink to fit
    thick = max(2, round(fs * 2))
    (tw, _), base = cv2.getTextSize(text, FONT, fs, thick)
    org = ((w - tw) // 2, h - bar_v - round(0.08 * inner_h) - base)  # baseline, left
    mask = np.zeros((h, w), np.uint8)
    cv2.putText(mask, text, org, FONT, fs, 255, thick, cv2.LINE_AA)
    r = max(2, round(fs * 2))
    ring = cv2.dilate(mask, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * r + 1, 2 * r + 1)))
    ring = cv2.GaussianBlur(ring, (3, 3), 0)  # anti-aliased outer edge
    ys, xs = np.nonzero(ring)
    x0, y0, x1, y1 = int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1
    crop = (slice(y0, y1), slice(x0, x1))
    return {
        "box": [x0, y0, x1 - x0, y1 - y0],
        "crop": crop,
        "text_a": (mask[crop].astype(np.float32) / 255)[..., None],
        "ring_a": (ring[crop].astype(np.float32) / 255)[..., None],
    }


def _burn_text(img: np.ndarray, layout: dict) -> None:
    """Black outline, then white text, alpha-blended in place over the text box."""
    crop = layout["crop"]
    part = img[crop].astype(np.float32) * (1 - layout["ring_a"])
    img[crop] = part * (1 - layout["text_a"]) + 255 * layout["text_a"] + 0.5


# ----------------------------------------------------------------------------- frames


def all_frames(segments: list[Segment], w: int, h: int):
    """Every RGB frame of the video in order. A scene with ``dissolve = d`` starts with d frames
    that blend the previous scene (still moving) into it: frame k of the d shows
    ``(1 - a) * previous + a * this`` with ``a = (k + 1) / (d + 1)``. One with ``wipe = d``
    starts with d frames that show it inside a region covering the share ``a`` of the frame
    (:func:`wipe_mask`) and the previous scene (still moving) outside."""
    tail: list[np.ndarray] = []  # the previous scene's frames past its end, for a dissolve
    for k, seg in enumerate(segments):
        nxt = segments[k + 1] if k + 1 < len(segments) else None
        extra = (nxt.dissolve or nxt.wipe or nxt.whip) if nxt else 0
        frames = segment_frames(seg, w, h, extra)
        for t in range(seg.frames):
            img = next(frames)
            if t < len(tail):
                a = (t + 1) / (len(tail) + 1)
                if seg.whip:
                    img = whip_frame(tail[t] if t < seg.whip // 2 else img, t, seg.whip, w)
                elif seg.wipe:
                    img = np.where(wipe_mask(seg.wipe_shape, a, w, h)[..., None], img, tail[t])
                else:
                    img = cv2.addWeighted(tail[t], 1.0 - a, img, a, 0.0)
            yield img
        tail = list(frames)


WIPE_SHAPES = ("right", "down", "iris")
WHIP_SPEED = 0.22  # a whip's fastest frame moves by this share of the width (140 px at 640)


def whip_frame(img: np.ndarray, t: int, d: int, w: int) -> np.ndarray:
    """Frame ``t`` of a ``d``-frame whip pan: over the first half the old scene's frame ``img``
    swings away, faster each frame, over the rest the new one swings in, slower each frame to
    where it rests; shifted (reflected at the edges) and blurred along the swing by as many
    pixels as it moves in the frame."""
    half, rest = d // 2, d - d // 2
    peak = WHIP_SPEED * w
    if t < half:
        speeds = [peak * (k + 1) / half for k in range(half)]
        v, shift = speeds[t], sum(speeds[: t + 1])
    else:
        speeds = [peak * (rest - j) / rest for j in range(rest)]
        v, shift = speeds[t - half], -sum(speeds[t - half + 1 :])
    mat = np.float32([[1, 0, -shift], [0, 1, 0]])
    out = cv2.warpAffine(img, mat, (img.shape[1], img.shape[0]), borderMode=cv2.BORDER_REFLECT101)
    k = max(1, round(v))
    return cv2.blur(out, (k, 1)) if k > 1 else out


def wipe_mask(shape: str, a: float, w: int, h: int) -> np.ndarray:
    """Where a wipe ``a`` of the way through (0-1) shows the new scene: the left ``a`` of the
    width ("right"), the top ``a`` of the height ("down"), or a circle about the centre whose
    radius is ``a`` of the half diagonal ("iris": it covers the corners at the end)."""
    if shape == "right":
        return np.broadcast_to(np.arange(w) < a * w, (h, w))
    if shape == "down":
        return np.broadcast_to((np.arange(h) < a * h)[:, None], (h, w))
    ys, xs = np.mgrid[0:h, 0:w]
    return np.hypot(xs + 0.5 - w / 2, ys + 0.5 - h / 2) < a * math.hypot(w / 2, h / 2)


def check_segment(seg: Segment, w: int, h: int) -> None:
    if seg.frames < 1:
        raise ValueError("a segment needs at least one frame")
    if seg.fade_in + seg.fade_out + seg.dissolve + seg.wipe + seg.whip > seg.frames:
        raise ValueError("fade_in + fade_out + dissolve + wipe + whip longer than the segment")
    if sum(bool(v) for v in (seg.dissolve, seg.wipe, seg.whip)) > 1:
        raise ValueError("a segment starts with one of a dissolve, a wipe or a whip")
    if seg.whip == 1:
        raise ValueError("a whip swings out and in: at least 2 frames")
    if seg.wipe_shape not in WIPE_SHAPES:
        raise ValueError(f"wipe_shape {seg.wipe_shape!r}: one of {', '.join(WIPE_SHAPES)}")
    if seg.fade_color not in ("black", "white"):
        raise ValueError(f"fade_color {seg.fade_color!r}: black or white")
    if seg.rotate and any(seg.pan):
        raise ValueError("a segment either pans or rotates")
    if any(not 0 <= f <= seg.frames - len(seg.flash_gain) for f in seg.flashes):
        raise ValueError(f"flashes {seg.flashes} (each {len(seg.flash_gain)} frames) run outside "
                         f"0..{seg.frames - 1}")  # fmt: skip
    if not seg.flash_gain or not all(0 <= g <= 1 for g in seg.flash_gain):
        raise ValueError(f"flash_gain {seg.flash_gain}: shares of the way to white, 0..1")
    if not seg.hold or min(seg.hold) < 1:
        raise ValueError(f"hold {seg.hold}: frames per picture, each at least 1")
    if tuple(seg.hold) != (1,) and seg.noise:
        raise ValueError("held pictures with sensor noise are not rendered (the grain would move)")
    if not 0 <= seg.subject[0] < 0.5:
        raise ValueError(f"subject radius {seg.subject[0]}: a share of the height under 0.5")
    if 2 * seg.letterbox[0] >= h or 2 * seg.letterbox[1] >= w:
        raise ValueError(f"letterbox {seg.letterbox} covers the whole {w}x{h} frame")


def _canvas(seg: Segment, h: int, w: int) -> np.ndarray:
    """The scene's RGB canvas: shapes (default), a flat gradient, or a busy textless texture."""
    if seg.texture == "shapes":
        return _texture(seg.seed, h, w, h / 360)
    if seg.texture == "flat":
        # a sky or a wall: a smooth vertical gradient between two colours of the seed's hue
        rng = np.random.default_rng(seg.seed)
        top, bottom = _palette(seg.seed, rng)[:2]
        ramp = np.linspace(0.0, 1.0, h, dtype=np.float32)[:, None, None]
        img = top * (1 - ramp) + bottom * ramp
        return np.broadcast_to(img, (h, w, 3)).round().astype(np.uint8).copy()
    from clipsift.textures import busy_texture

    return busy_texture(seg.texture, seg.seed, h, w)


def _content_times(hold, frames: int) -> list[float]:
    """For each frame, the time (in frames) of the content its picture shows: picture ``j`` is
    shown ``hold[j % len(hold)]`` frames and shows the content at ``j * mean(hold)``."""
    step = sum(hold) / len(hold)
    out: list[float] = []
    j = 0
    while len(out) < frames:
        out += [min(j * step, frames - 1.0)] * int(hold[j % len(hold)])
        j += 1
    return out[:frames]


def _subject(seg: Segment, w: int, h: int):
    """``draw(img, t)``, which paints the scene's subject at frame ``t``, or None without one."""
    share, speed = (float(v) for v in seg.subject)
    if not share:
        return None
    r = max(2, round(share * h))
    span = max(1.0, w - 2.0 * r)
    colour = tuple(float(c) for c in _palette(seg.seed, np.random.default_rng(seg.seed))[6])

    def draw(img: np.ndarray, t: int) -> None:
        x = (t * speed) % (2 * span)
        x = r + (x if x <= span else 2 * span - x)  # back and forth, never a jump
        y = h / 2 + h / 8 * math.sin(0.07 * t)
        # 4 bits of sub-pixel position: the disc moves smoothly, as a filmed one does
        centre = (round(x * 16), round(y * 16))
        cv2.circle(img, centre, r * 16, colour, -1, cv2.LINE_AA, shift=4)

    return draw


def segment_frames(seg: Segment, w: int, h: int, extra: int = 0):
    """Yield the segment's RGB frames (display orientation), then ``extra`` more frames of its
    motion (the part a dissolve into the next scene blends away)."""
    n = seg.frames
    dx, dy = (float(v) for v in seg.pan)
    m = 3  # margin so cubic interpolation never reads outside the canvas
    last = n + extra - 1
    if seg.rotate:  # room for every angle: a square canvas of the frame's diagonal
        side = math.ceil(math.hypot(w, h)) + 2 * m
        cw = ch = side
    else:
        cw = w + 2 * m + math.ceil(abs(dx) * last)
        ch = h + 2 * m + math.ceil(abs(dy) * last)
    canvas = _canvas(seg, ch, cw)
    # content moves by +pan, so the crop window moves by -pan: start where the window ends inside
    x0, y0 = m + max(dx, 0.0) * last, m + max(dy, 0.0) * last
    bar_v, bar_h = seg.letterbox
    layout = text_layout(seg.text, w, h, tuple(seg.letterbox), seg.text_scale) if seg.text else None
    # frame offset -> share of the way to white
    flashes = {f + i: g for f in seg.flashes for i, g in enumerate(seg.flash_gain) if g > 0}
    fill = 255.0 if seg.fade_color == "white" else 0.0
    noise = np.random.default_rng(seg.seed + 7919) if seg.noise else None
    subject = _subject(seg, w, h)
    shown = _content_times(seg.hold, n + extra)
    for t in range(n + extra):
        ox, oy = x0 - shown[t] * dx, y0 - shown[t] * dy
        if seg.rotate:
            # the canvas centre stays at the frame centre; content turns by rotate deg per frame
            mat = cv2.getRotationMatrix2D((cw / 2, ch / 2), seg.rotate * shown[t], 1.0)
            mat[:, 2] += (w / 2 - cw / 2, h / 2 - ch / 2)
            img = cv2.warpAffine(canvas, mat, (w, h), flags=cv2.INTER_CUBIC)
        elif ox.is_integer() and oy.is_integer():
            # exact copy: static scenes are bit-identical frames before encoding
            img = canvas[int(oy) : int(oy) + h, int(ox) : int(ox) + w].copy()
        else:
            # sub-pixel shift; WARP_INVERSE_MAP: dst(x, y) = canvas(x + ox, y + oy)
            mat = np.float32([[1, 0, ox], [0, 1, oy]])
            img = cv2.warpAffine(canvas, mat, (w, h), flags=cv2.INTER_CUBIC | cv2.WARP_INVERSE_MAP)
        if subject:
            subject(img, shown[t])
        if layout:
            _burn_text(img, layout)
        if noise is not None:
            grain = noise.normal(0.0, seg.noise, img.shape).astype(np.float32)
            img = np.clip(img + grain, 0, 255).astype(np.uint8)
        # a fade-in starts at the fade colour, a fade-out ends at it (two such frames in a dip)
        gain = 1.0
        if t < seg.fade_in:
            gain = t / seg.fade_in
        elif n - seg.fade_out <= t < n:
            gain = (n - 1 - t) / seg.fade_out
        if gain < 1.0:
            img = cv2.addWeighted(img, gain, np.full_like(img, int(fill)), 1.0 - gain, 0.0)
        if flashes.get(t, 0.0) >= 1.0:
            img[:] = 255  # Y = 235 after the limited-range conversion; bars are repainted below
        elif t in flashes:
            img = cv2.addWeighted(img, 1.0 - flashes[t], np.full_like(img, 255), flashes[t], 0.0)
        if bar_v:
            img[:bar_v] = 0
            img[h - bar_v :] = 0
        if bar_h:
            img[:, :bar_h] = 0
            img[:, w - bar_h :] = 0
        yield img
