"""OCR's reading size: readable text found and textless pictures flagged, per ``max_side``.

Renders stills at 640x360, 1280x720 and 1920x1080 (OpenCV's text face, over the scene texture of
``clipsift.painting`` and the busy textless textures of ``clipsift.textures``), with sensor noise
and JPEG compression, and reads each through ``OcrReader`` at every ``max_side`` given, resized
as the scan resizes its OCR frames (display aspect, area interpolation). The overlays are the
kinds footage carries and a dataset must not keep:

- ``subtitle``: white, black outline, cap height 4 % of the frame;
- ``subtitle_a50``: white at 50 % opacity, no outline, 5 %;
- ``watermark_a35``: a corner handle, white at 35 % opacity, 4 %;
- ``datestamp``: a camcorder's orange date and time, no outline, 3.5 %;
- ``lower_third``: a name on a dark translucent bar, 2.8 % (small, but readable at 720p up);
- ``sign``: a black word on a light plate somewhere in the picture, 3.5 %.

"Found": a text-like box (``OcrReader``'s ``text_like``) in the picture. Textless pictures: the
same backgrounds with nothing drawn; "flagged": any text-like box. CPU milliseconds per picture
are this process's (one ONNX Runtime thread, one OpenCV thread).

    python bench/ocr_sizes.py --sides 480 560 640 --out bench/results/ocr-sizes.md
"""

# ruff: noqa: E402  (thread variables are set before numpy and OpenCV are imported)
from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse
import datetime as dt
import platform
import sys
import time

import cv2
import numpy as np

from clipsift.filters.ocr import ocr_size
from clipsift.filters.ocr_reader import OcrReader
from clipsift.painting import FONT, _texture
from clipsift.textures import KINDS, busy_texture

SIZES = ((640, 360), (1280, 720), (1920, 1080))
WORDS = ("Harbour at dawn", "We never thought", "Breaking news tonight", "Maria Lopez",
         "Summer market", "Chapter two begins")  # fmt: skip
HANDLES = ("@travelwithkai", "@city.lens", "@northtrails")
SIGNS = ("EXIT", "OPEN", "HOTEL", "PARKING")
OVERLAYS = ("subtitle", "subtitle_a50", "watermark_a35", "datestamp", "lower_third", "sign")


def background(k: int, w: int, h: int) -> np.ndarray:
    """The ``k``-th background: the scene texture, then each busy kind in turn (BGR uint8)."""
    kinds = ("scene", *KINDS)
    kind, seed = kinds[k % len(kinds)], 500 + k
    if kind == "scene":
        return _texture(seed, h, w, h / 360)
    return busy_texture(kind, seed, h, w)


def _mask(text: str, w: int, h: int, cap: float, org) -> tuple[np.ndarray, tuple]:
    """An anti-aliased text mask with a cap height of ``cap`` x h; ``org(tw, th)`` places it."""
    scale = cap * h / 22.0  # OpenCV's face: cap height about 22 px at scale 1
    thick = max(1, round(scale * 1.6))
    (tw, th), base = cv2.getTextSize(text, FONT, scale, thick)
    x, y = org(tw, th)
    m = np.zeros((h, w), np.uint8)
    cv2.putText(m, text, (x, y), FONT, scale, 255, thick, cv2.LINE_AA)
    return m, (x, y - th, tw, th + base)


def _blend(img, mask, colour, alpha: float) -> None:
    a = mask.astype(np.float32)[..., None] / 255 * alpha
    img[:] = img * (1 - a) + np.float32(colour) * a + 0.5


def overlay(img: np.ndarray, kind: str, rng: np.random.Generator) -> np.ndarray:
    """``img`` (BGR) with one overlay of ``kind`` drawn on a copy."""
    out = img.astype(np.float32)
    h, w = img.shape[:2]
    word = WORDS[rng.integers(len(WORDS))]
    if kind in ("subtitle", "subtitle_a50"):
        cap = 0.04 if kind == "subtitle" else 0.05
        m, _ = _mask(word, w, h, cap, lambda tw, th: ((w - tw) // 2, int(h * 0.9)))
        if kind == "subtitle":
            r = max(2, round(cap * h / 8))
            ring = cv2.dilate(m, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * r + 1,) * 2))
            _blend(out, ring, (0, 0, 0), 1.0)
            _blend(out, m, (255, 255, 255), 1.0)
        else:
            _blend(out, m, (255, 255, 255), 0.5)
    elif kind == "watermark_a35":
        handle = HANDLES[rng.integers(len(HANDLES))]
        m, _ = _mask(handle, w, h, 0.04, lambda tw, th: (w - tw - int(0.04 * w), int(0.1 * h)))
        _blend(out, m, (255, 255, 255), 0.35)
    elif kind == "datestamp":
        stamp = f"JUL {rng.integers(1, 29)} 20{rng.integers(10, 24)}  {rng.integers(10, 24)}:{rng.integers(10, 60)}"
        m, _ = _mask(stamp, w, h, 0.035, lambda tw, th: (w - tw - int(0.05 * w), int(0.92 * h)))
        _blend(out, m, (40, 150, 255), 1.0)  # orange (BGR)
    elif kind == "lower_third":
        m, (x, y, tw, th) = _mask(word, w, h, 0.028, lambda tw, th: (int(0.08 * w), int(0.86 * h)))
        bar = np.zeros((h, w), np.uint8)
        pad = int(0.012 * h)
        bar[y - pad : y + th + pad, x - 2 * pad : x + tw + 2 * pad] = 255
        _blend(out, bar, (30, 20, 20), 0.7)
        _blend(out, m, (255, 255, 255), 1.0)
    elif kind == "sign":
        sign = SIGNS[rng.integers(len(SIGNS))]
        px, py = rng.uniform(0.1, 0.6), rng.uniform(0.15, 0.7)
        m, (x, y, tw, th) = _mask(sign, w, h, 0.035, lambda tw, th: (int(px * w), int(py * h)))
        plate = np.zeros((h, w), np.uint8)
        pad = int(0.015 * h)
        plate[y - pad : y + th + pad, x - pad : x + tw + pad] = 255
        _blend(out, plate, (225, 230, 235), 1.0)
        _blend(out, m, (20, 20, 20), 1.0)
    else:
        raise ValueError(kind)
    return out.astype(np.uint8)


def camera(img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Sensor noise (sigma 2 levels) and JPEG at quality 80: what a decoded frame looks like."""
    noisy = np.clip(img + rng.normal(0, 2.0, img.shape), 0, 255).astype(np.uint8)
    ok, buf = cv2.imencode(".jpg", noisy, [cv2.IMWRITE_JPEG_QUALITY, 80])
    assert ok
    return cv2.imdecode(buf, cv2.IMREAD_COLOR)


def pictures(n_text: int, n_plain: int):
    """``(kind, size, image)``: ``n_text`` of each overlay and ``n_plain`` textless per size."""
    rng = np.random.default_rng(0)
    for w, h in SIZES:
        for k in range(n_plain):
            yield "textless", (w, h), camera(background(k, w, h), rng)
        for kind in OVERLAYS:
            for k in range(n_text):
                bg = background(1000 + k, w, h)
                yield kind, (w, h), camera(overlay(bg, kind, rng), rng)


def measure(images, side: int) -> dict:
    reader = OcrReader(max_side=side)
    reader.read(np.zeros((64, 64, 3), np.uint8))  # warm-up
    found: dict = {}
    cpu: dict = {"textless": [], "text": []}
    for kind, (w, h), img in images:
        sw, sh = ocr_size(w, h, side)
        small = (
            cv2.resize(img, (sw, sh), interpolation=cv2.INTER_AREA) if (sw, sh) != (w, h) else img
        )
        t = time.process_time()
        boxes = reader.read(small)
        cpu["textless" if kind == "textless" else "text"].append(time.process_time() - t)
        hit = any(b["text_like"] for b in boxes)
        found.setdefault((kind, h), []).append(hit)
    return {"found": found, "ms": {k: 1000 * float(np.mean(v)) for k, v in cpu.items()}}


def report(results: dict, n_text: int, n_plain: int) -> str:
    sides = list(results)
    lines = [
        "# OCR reading size: readable text found, textless pictures flagged",
        "",
        f"- date: {dt.date.today().isoformat()}",
        f"- machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores; "
        "one ONNX Runtime thread, one OpenCV thread",
        f"- pictures: {n_text} of each overlay and {n_plain} textless ones at each of "
        + ", ".join(f"{w}x{h}" for w, h in SIZES)
        + " (bench/ocr_sizes.py)",
        "",
        "| overlay | height | " + " | ".join(f"max_side {s}" for s in sides) + " |",
        "| --- | --- | " + " | ".join("---:" for _ in sides) + " |",
    ]
    for kind in (*OVERLAYS, "textless"):
        for _, h in SIZES:
            cells = []
            for s in sides:
                hits = results[s]["found"][(kind, h)]
                cells.append(f"{sum(hits)}/{len(hits)}")
            lines.append(f"| {kind}{' (flagged)' if kind == 'textless' else ''} | {h}p | "
                         + " | ".join(cells) + " |")  # fmt: skip
    lines.append("| **readable text found, all** | | " + " | ".join(
        f"**{100 * np.mean([x for (k, _), v in results[s]['found'].items() if k != 'textless' for x in v]):.1f} %**"
        for s in sides) + " |")  # fmt: skip
    for what in ("textless", "text"):
        lines.append(f"| CPU ms per picture, {what} | | "
                     + " | ".join(f"{results[s]['ms'][what]:.1f}" for s in sides) + " |")  # fmt: skip
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--sides", type=int, nargs="+", default=[480, 560, 640])
    p.add_argument("--text", type=int, default=10, help="pictures of each overlay per size")
    p.add_argument("--plain", type=int, default=28, help="textless pictures per size")
    p.add_argument("--out", help="also write the table to this file")
    args = p.parse_args(argv)
    cv2.setNumThreads(1)
    images = list(pictures(args.text, args.plain))
    results = {}
    for side in args.sides:
        results[side] = measure(images, side)
        print(f"max_side {side}: done", file=sys.stderr, flush=True)
    table = report(results, args.text, args.plain)
    print(table)
    if args.out:
        with open(args.out, "w") as f:
            f.write(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
