"""Busy, textless test textures: images that make an OCR detector see glyphs where there is no text.

Every generator is a pure function of ``(seed, height, width)``: seeded numpy and deterministic
OpenCV drawing, RGB uint8 ``(height, width, 3)``. Feature sizes scale with the image height
(``height / 360``) times a per-seed factor, so a seed looks alike at any resolution and the set
spans fine to coarse detail. Each takes under 50 ms at 640x360 on one core (5-40 ms measured).

Kinds (``KINDS``):

- ``fractal``: a zoomed Julia set, smooth escape-time colouring through a cyclic colour map.
- ``foliage``: a few thousand small leaves (ellipses with dark rims and veins) and twigs, lit by
  low-frequency shading.
- ``fabric``: a woven cloth (plain, twill or basket weave) of fine threads, plaid colour bands,
  draped by a smooth displacement.
- ``cellular``: a cellular automaton scaled up (an elementary rule such as 30 or 110, or the Game
  of Life after some generations).
- ``glass``: a glass jar in front of bokeh: refraction of a blurred background, bright vertical
  and curved specular highlights, rim lines.
- ``stone``: Voronoi pebbles and cracks (crack junctions form Y, T and K shapes).
"""

from __future__ import annotations

import colorsys
from collections.abc import Callable

import cv2
import numpy as np

KINDS: tuple[str, ...] = ("fractal", "foliage", "fabric", "cellular", "glass", "stone")


def busy_texture(kind: str, seed: int, height: int, width: int) -> np.ndarray:
    """A busy textless RGB uint8 image ``(height, width, 3)`` of ``kind`` (one of ``KINDS``)."""
    try:
        make = _MAKERS[kind]
    except KeyError:
        raise ValueError(f"unknown texture kind {kind!r}; one of {', '.join(KINDS)}") from None
    if height < 8 or width < 8:
        raise ValueError(f"texture size {width}x{height} is too small (at least 8x8)")
    # the kind is part of the seed, so two kinds with one seed do not share random draws
    rng = np.random.default_rng([int(seed), KINDS.index(kind)])
    img = make(rng, int(height), int(width), height / 360 * rng.uniform(0.7, 1.5))
    return np.ascontiguousarray(np.clip(img, 0, 255).astype(np.uint8))


# ----------------------------------------------------------------------------- helpers


def _noise(rng: np.random.Generator, h: int, w: int, cell: float) -> np.ndarray:
    """Smooth value noise (float32, about unit variance) with features about ``cell`` px wide."""
    cell = max(1.0, cell)
    gh, gw = int(h / cell) + 3, int(w / cell) + 3
    grid = rng.standard_normal((gh, gw)).astype(np.float32)
    up = cv2.resize(grid, (round(gw * cell), round(gh * cell)), interpolation=cv2.INTER_CUBIC)
    return up[:h, :w]


def _hsv(h: float, s: float, v: float) -> np.ndarray:
    return np.asarray(colorsys.hsv_to_rgb(h % 1.0, s, v), np.float32) * 255


def _hsv_many(h: np.ndarray, s: np.ndarray, v: np.ndarray) -> np.ndarray:
    """``_hsv`` of many colours at once, (n, 3) float32: colorsys's arithmetic, vectorised."""
    h = np.mod(h, 1.0)
    i = (h * 6.0).astype(int)
    f = h * 6.0 - i
    p, q, t = v * (1.0 - s), v * (1.0 - s * f), v * (1.0 - s * (1.0 - f))
    sector = i % 6
    r = np.choose(sector, [v, q, p, p, t, v])
    g = np.choose(sector, [t, v, v, q, p, p])
    b = np.choose(sector, [p, p, t, v, v, q])
    return np.stack([r, g, b], axis=-1).astype(np.float32) * 255


# ----------------------------------------------------------------------------- kinds


# c values of Julia sets with much detail (dendrites, spirals, rabbits)
_JULIA_C = (
    complex(-0.8, 0.156),
    complex(0.285, 0.01),
    complex(-0.4, 0.6),
    complex(-0.70176, -0.3842),
    complex(0.355, 0.355),
    complex(-0.835, -0.2321),
    complex(-0.123, 0.745),
    complex(0.37, 0.1),
)


def _escape(x: np.ndarray, y: np.ndarray, c: complex, n_iter: int) -> np.ndarray:
    """Smooth escape-time count of z -> z^2 + c from z = x + iy (``n_iter`` where it stays)."""
    count = np.full(x.shape, n_iter, np.float32)
    flat = count.ravel()
    z = (x + 1j * y).astype(np.complex64).ravel()
    idx = np.arange(z.size)
    c64 = np.complex64(c)
    for i in range(n_iter):
        np.multiply(z, z, out=z)
        np.add(z, c64, out=z)
        if i % 4 == 3 or i == n_iter - 1:  # drop escaped points every 4th step
            r2 = z.real * z.real + z.imag * z.imag  # |z| <= 4 + 4**(2**3): no overflow
            out = r2 > 16.0
            if out.any():
                # smooth (continuous) escape count: no banding steps
                flat[idx[out]] = i + 1 - np.log2(np.log2(r2[out]) / 2)
                keep = ~out
                z, idx = z[keep], idx[keep]
                if not idx.size:
                    break
    return count


def _fractal(rng: np.random.Generator, h: int, w: int, scale: float) -> np.ndarray:
    c = _JULIA_C[rng.integers(len(_JULIA_C))] + complex(*rng.normal(0, 0.004, 2))
    # centre on the set's boundary: a coarse look for points that escape late but escape
    gy, gx = np.mgrid[-1.2:1.2:48j, -1.6:1.6:64j].astype(np.float32)
    coarse = _escape(gx, gy, c, 40)
    edge = np.flatnonzero((coarse > 6) & (coarse < 40))
    pick = edge[rng.integers(edge.size)] if edge.size else coarse.size // 2
    cx, cy = float(gx.flat[pick]), float(gy.flat[pick])
    zoom = np.exp(rng.uniform(np.log(2), np.log(30)))  # visible height is 2.4 / zoom
    angle = rng.uniform(0, 2 * np.pi)
    # at most 640x360 points are iterated; larger images are upscaled (still busy at 720p)
    f = min(1.0, np.sqrt(640 * 360 / (h * w)))
    ch, cw = max(8, round(h * f)), max(8, round(w * f))
    step = 2.4 / zoom / ch
    ys, xs = np.mgrid[0:ch, 0:cw].astype(np.float32)
    u, v = (xs - cw / 2) * step, (ys - ch / 2) * step
    ca, sa = np.float32(np.cos(angle)), np.float32(np.sin(angle))
    count = _escape(cx + ca * u - sa * v, cy + sa * u + ca * v, c, 40)
    if (ch, cw) != (h, w):
        count = cv2.resize(count, (w, h), interpolation=cv2.INTER_LINEAR)
    t = count * np.float32(rng.uniform(0.25, 0.7))
    phase = rng.uniform(0, 1, 3).astype(np.float32)
    img = np.cos(np.float32(2 * np.pi) * (t[..., None] + phase))
    if rng.uniform() < 0.5:  # hard-edged bands: thin bright filaments along the set
        img = np.tanh(img * np.float32(rng.uniform(3, 12)))
    img = 0.5 + 0.5 * img
    img[count >= 40] = rng.uniform(0, 0.3)
    return img * 255


def _foliage(rng: np.random.Generator, h: int, w: int, scale: float) -> np.ndarray:
    hue = rng.uniform(0.2, 0.38)  # yellow-green to green
    img = np.empty((h, w, 3), np.float32)
    img[:] = _hsv(hue, 0.7, 0.18)
    img *= (1 + 0.5 * _noise(rng, h, w, 40 * scale))[..., None]
    n_twigs = int(h * w / (9000 * scale * scale))
    for _ in range(n_twigs):
        x, y = rng.uniform(0, w), rng.uniform(0, h)
        a, length = rng.uniform(0, np.pi), rng.uniform(20, 90) * scale
        p2 = (int(x + length * np.cos(a)), int(y + length * np.sin(a)))
        col = tuple(float(v) for v in _hsv(0.08, 0.5, rng.uniform(0.15, 0.4)))
        cv2.line(img, (int(x), int(y)), p2, col, max(1, round(2 * scale)), cv2.LINE_AA)
    n_leaves = int(h * w / (110 * scale * scale))
    xs, ys = rng.uniform(0, w, n_leaves), rng.uniform(0, h, n_leaves)
    lens = rng.uniform(4, 14, n_leaves) * scale
    widths = lens * rng.uniform(0.3, 0.6, n_leaves)
    angles = rng.uniform(0, 180, n_leaves)
    hues = hue + rng.normal(0, 0.04, n_leaves)
    vals = rng.uniform(0.25, 0.95, n_leaves)
    sats = rng.uniform(0.4, 0.9, n_leaves)
    # colours of all leaves at once, as plain lists (the per-leaf Python work is the cost here)
    rgb = _hsv_many(hues, sats, vals)
    cols, rims, ribs = rgb.tolist(), (rgb * 0.45).tolist(), (rgb * 1.25).tolist()
    centres = np.stack([xs, ys], axis=-1).astype(int).tolist()
    axes = np.maximum(1, np.stack([lens, widths], axis=-1).astype(int)).tolist()
    rad = np.deg2rad(angles)
    ribs_d = np.stack([lens * np.cos(rad), lens * np.sin(rad)], axis=-1).astype(int).tolist()
    has_rib = (lens > 7 * scale).tolist()
    angles = angles.tolist()
    for i in range(n_leaves):
        (cx, cy), ax = centres[i], axes[i]
        cv2.ellipse(img, (cx, cy), ax, angles[i], 0, 360, cols[i], -1)
        cv2.ellipse(img, (cx, cy), ax, angles[i], 0, 360, rims[i], 1, cv2.LINE_AA)
        if has_rib[i]:  # midrib
            dx, dy = ribs_d[i]
            cv2.line(img, (cx - dx, cy - dy), (cx + dx, cy + dy), ribs[i], 1, cv2.LINE_AA)
    img *= (1 + 0.35 * _noise(rng, h, w, 70 * scale))[..., None]
    return img


def _fabric(rng: np.random.Generator, h: int, w: int, scale: float) -> np.ndarray:
    period = max(2.0, rng.uniform(3, 7) * scale)  # thread spacing, px
    weave = rng.integers(3)  # plain, twill, basket
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
    # drape: a smooth displacement field folds the cloth
    amp = rng.uniform(2, 10) * scale
    xs += amp * _noise(rng, h, w, 120 * scale)
    ys += amp * _noise(rng, h, w, 120 * scale)
    i, j = np.floor(ys / period), np.floor(xs / period)
    fy, fx = ys / period - i, xs / period - j
    if weave == 0:
        warp_up = (i + j) % 2 == 0
    elif weave == 1:
        warp_up = ((j - i) % 4) < 2
    else:
        warp_up = ((i // 2 + j // 2) % 2) == 0
    # tartan sett: colour bands of random widths along warp (x) and weft (y)
    n_cols = int(rng.integers(2, 5))
    base = rng.uniform(0, 1)
    pal = np.stack(
        [_hsv(base + rng.uniform(-0.15, 0.15), rng.uniform(0.3, 0.9), rng.uniform(0.2, 0.9))
         for _ in range(n_cols)]
    )  # fmt: skip
    edges = np.cumsum(rng.integers(2, 12, 24) * period)
    cols = rng.integers(n_cols, size=24)
    sett = int(edges[-1])
    lut = cols[np.searchsorted(edges, np.arange(sett), side="right").clip(0, 23)]
    # the thread on top at each pixel: its colour and its rounded cross-section shading
    colour = np.where(warp_up, lut[xs.astype(np.int32) % sett], lut[ys.astype(np.int32) % sett])
    across = np.where(warp_up, fx, fy)
    img = pal[colour] * (0.55 + 0.45 * np.sin(np.pi * across))[..., None]
    img *= (1 + 0.25 * _noise(rng, h, w, 60 * scale))[..., None]
    return img


_RULES = (30, 45, 73, 86, 89, 90, 105, 110, 150)


def _cellular(rng: np.random.Generator, h: int, w: int, scale: float) -> np.ndarray:
    life = rng.uniform() < 0.4
    # the Game of Life leaves sparse still lifes and gliders, glyph-like at large cells
    cell = max(1, round(rng.uniform(2, 10 if life else 5) * scale))
    rows, cols = -(-h // cell), -(-w // cell)
    if life:  # the Game of Life after some generations
        grid = (rng.uniform(size=(rows, cols)) < 0.35).astype(np.uint8)
        kernel = np.ones((3, 3), np.float32)
        kernel[1, 1] = 0
        for _ in range(int(rng.integers(8, 80))):
            n = cv2.filter2D(grid.astype(np.float32), -1, kernel, borderType=cv2.BORDER_CONSTANT)
            grid = ((n == 3) | ((grid == 1) & (n == 2))).astype(np.uint8)
        field = grid.astype(np.float32)
    else:  # an elementary rule, one row per generation
        rule = _RULES[rng.integers(len(_RULES))]
        table = np.array([(rule >> k) & 1 for k in range(8)], np.uint8)
        row = (rng.uniform(size=cols) < rng.uniform(0.02, 0.5)).astype(np.uint8)
        skip = int(rng.integers(0, 60))  # start after a few generations
        field = np.empty((rows, cols), np.float32)
        for r in range(-skip, rows):
            if r >= 0:
                field[r] = row
            code = (np.roll(row, 1) << 2) | (row << 1) | np.roll(row, -1)
            row = table[code]
    on = _hsv(rng.uniform(), rng.uniform(0.3, 0.9), rng.uniform(0.6, 1.0))
    off = _hsv(rng.uniform(), rng.uniform(0.2, 0.8), rng.uniform(0.05, 0.4))
    # colour by the count of live neighbours too: fewer flat areas
    near = cv2.blur(field, (3, 3))
    img = off + (on - off) * (0.6 * field + 0.4 * near)[..., None]
    big = cv2.resize(img, (cols * cell, rows * cell), interpolation=cv2.INTER_NEAREST)
    return big[:h, :w]


def _glass(rng: np.random.Generator, h: int, w: int, scale: float) -> np.ndarray:
    # background: warm or cool bokeh on a dark gradient
    hue = rng.uniform()
    bg = np.empty((h, w, 3), np.float32)
    bg[:] = _hsv(hue, 0.5, 0.25)
    bg *= (1 + 0.6 * _noise(rng, h, w, 80 * scale))[..., None]
    for _ in range(int(h * w / (2500 * scale * scale))):
        r = int(rng.uniform(6, 30) * scale)
        col = tuple(float(v) for v in _hsv(hue + rng.normal(0, 0.1), 0.6, rng.uniform(0.3, 1)))
        cv2.circle(bg, (int(rng.uniform(0, w)), int(rng.uniform(0, h))), r, col, -1, cv2.LINE_AA)
    k = max(1, int(4 * scale)) * 2 + 1
    bg = cv2.GaussianBlur(bg, (k, k), 0)
    img = bg.copy()
    # one or two jars: vertical cylinders refracting the background (x mirrored and magnified)
    for _ in range(int(rng.integers(1, 3))):
        jw = rng.uniform(0.25, 0.5) * w
        x0 = rng.uniform(-0.1 * w, w - 0.8 * jw)
        top, bottom = rng.uniform(0.02, 0.3) * h, rng.uniform(0.75, 1.05) * h
        squeeze = rng.uniform(0.3, 0.8)
        tint = _hsv(hue + 0.5 * rng.uniform(), 0.2, 1.0) / 255
        # only the jar's rows and columns: top < y < bottom, |u| < 1
        r0, r1 = int(np.floor(top)) + 1, min(h, int(np.ceil(bottom)))
        c0, c1 = max(0, int(np.floor(x0))), min(w, int(np.ceil(x0 + jw)) + 1)
        if r1 > r0 and c1 > c0:
            ys, xs = np.mgrid[r0:r1, c0:c1].astype(np.float32)
            u = (xs - x0) / jw * 2 - 1  # -1..1 across the jar
            bend = np.arcsin(np.clip(u, -1, 1)) / (np.pi / 2)  # refraction: edges compress
            src_x = (x0 + jw / 2 - bend * jw * squeeze).astype(np.float32)
            src_y = (ys + 8 * scale * np.sin(u * 3)).astype(np.float32)
            seen = cv2.remap(bg, src_x, src_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
            part = img[r0:r1, c0:c1]
            part[:] = np.where((np.abs(u) < 1)[..., None], seen * tint * 0.9, part)
        # specular highlights: bright vertical streaks and elliptic arcs at the rim
        for _ in range(int(rng.integers(2, 6))):
            hx = int(x0 + jw * rng.uniform(0.08, 0.92))
            hw = max(1, int(rng.uniform(1, 6) * scale))
            y1 = int(top + rng.uniform(0.02, 0.3) * (bottom - top))
            y2 = int(bottom - rng.uniform(0.05, 0.4) * (bottom - top))
            cv2.line(img, (hx, y1), (hx, y2), (255.0, 255.0, 250.0), hw, cv2.LINE_AA)
        cx, ax = int(x0 + jw / 2), int(jw / 2)
        ay = max(2, int(0.08 * jw))
        for yy in (top, bottom):
            rim = max(1, round(rng.uniform(1, 4) * scale))
            cv2.ellipse(img, (cx, int(yy)), (ax, ay), 0, 0, 360, (230.0, 235.0, 240.0), rim)
        # glints: bold bright arcs, the shapes an OCR detector mistakes for C, J, n or O
        for _ in range(int(rng.integers(2, 8))):
            gx, gy = int(x0 + jw * rng.uniform(0.1, 0.9)), int(rng.uniform(top, bottom))
            a0, sweep = rng.uniform(0, 360), rng.uniform(60, 300)
            axes = (int(rng.uniform(6, 45) * scale), int(rng.uniform(6, 45) * scale))
            thick = max(1, round(rng.uniform(2, 8) * scale))
            v = float(rng.uniform(200, 255))
            cv2.ellipse(img, (gx, gy), axes, rng.uniform(0, 180), a0, a0 + sweep, (v, v, v), thick,
                        cv2.LINE_AA)  # fmt: skip
    return img


def _stone(rng: np.random.Generator, h: int, w: int, scale: float) -> np.ndarray:
    size = rng.uniform(10, 28) * scale  # mean pebble diameter
    n = max(4, int(h * w / (size * size)))
    seeds = np.full((h, w), 255, np.uint8)
    px = rng.integers(0, w, n)
    py = rng.integers(0, h, n)
    seeds[py, px] = 0
    _, labels = cv2.distanceTransformWithLabels(
        seeds, cv2.DIST_L2, 3, labelType=cv2.DIST_LABEL_PIXEL
    )
    hue = rng.uniform()
    pal = np.stack(
        [_hsv(hue + rng.normal(0, 0.06), rng.uniform(0.05, 0.5), rng.uniform(0.3, 0.9))
         for _ in range(n + 1)]
    )  # fmt: skip
    img = pal[labels]
    # cracks where the label changes; grains inside the pebbles
    crack = np.zeros((h, w), np.uint8)
    crack[:, 1:] |= (labels[:, 1:] != labels[:, :-1]).astype(np.uint8)
    crack[1:, :] |= (labels[1:, :] != labels[:-1, :]).astype(np.uint8)
    k = max(1, round(rng.uniform(0.5, 2) * scale))
    if k > 1:
        crack = cv2.dilate(crack, np.ones((k, k), np.uint8))
    dark = rng.uniform(0.05, 0.35)
    img = np.where(crack[..., None] > 0, img * dark, img)
    img *= (1 + 0.25 * _noise(rng, h, w, 3 * scale) + 0.3 * _noise(rng, h, w, 50 * scale))[
        ..., None
    ]
    return img


_MAKERS: dict[str, Callable[[np.random.Generator, int, int, float], np.ndarray]] = {
    "fractal": _fractal,
    "foliage": _foliage,
    "fabric": _fabric,
    "cellular": _cellular,
    "glass": _glass,
    "stone": _stone,
}
