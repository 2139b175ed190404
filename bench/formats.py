"""The scan on one picture in every pixel format and range: the same measures, and the CPU each
costs, relative to decoding that same file alone.

Renders one H.264 video (``clipsift.sample.render_video``: pans, hard cuts, busy textures, a
burned-in sign; film grain so that it decodes like camera footage), then copies its decoded
frames losslessly (``clipsift.sample.copy_as``) into the layouts real footage comes in: 8-bit
4:2:0 (the render itself), 4:2:2 and 4:4:4 H.264, 10-bit H.264 and HEVC (phones), and full-range
8-bit H.264 and 10-bit HEVC, and 10-bit HEVC tagged HLG (the same samples, whose cuts and text
the scan reads alike, while its luma measures and ``Frame.rgb`` see the SDR picture they show,
``clipsift.io.hdr``); and renders the same scenes once more as interlaced fields in MPEG-TS
(broadcast), which every reader deinterlaces (``clipsift.io.deinterlace``). For each file it
prints, in one process and one thread:

- decode only: plain PyAV, one thread, every frame, touching nothing (``throughput.py``'s
  baseline and timer);
- the scan with OCR in the pass (``scan_video``, schema defaults): CPU, decode / scan, and the
  analysis's own cost, scan minus decode (the lossless copies are large and decode slowly, so
  the ratio moves with the file; what the pixel format changes is the analysis);
- the scan's measures: mean ``luma_mean`` and ``sharpness`` of the technical samples, the scenes
  found and the text read, which should be the same in every row (the interlaced row's
  sharpness is lower: a moving field holds half the rows; the HLG row's luma measures read
  the brighter, more contrasted picture those samples show as HLG);
- ``Frame.rgb()`` at full size, CPU per frame over the first frames (the picture captioners,
  scorers, encoders and exports get: for HDR, the tone mapping).

Each cost is the least of ``--repeat`` rounds, every file once per round.

    python bench/formats.py --out bench/results/formats-cpu.md
"""

# ruff: noqa: E402  (thread variables are set before numpy and OpenCV are imported)
from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse
import datetime as dt
import itertools
import json
import sys
import tempfile
from pathlib import Path

import av
import cv2
import numpy as np
from throughput import plain_decode, timed  # the same baseline and timer as throughput.py

from clipsift.config import validate_config
from clipsift.filters.ocr_reader import OcrReader
from clipsift.io.decode import iter_frames
from clipsift.sample import Segment, copy_as, render_video
from clipsift.split.scan import scan_video

# (row name, file name, pix_fmt, codec, full range, more encoder tags)
HLG_TAGS = {"colorspace": 9, "color_primaries": 9, "color_trc": 18}
FORMATS = [
    ("H.264 4:2:0 8-bit (the render)", "src.mp4", None, None, False, {}),
    ("H.264 4:2:2 8-bit", "h264-422.mkv", "yuv422p", "libx264", False, {}),
    ("H.264 4:4:4 8-bit", "h264-444.mp4", "yuv444p", "libx264", False, {}),
    ("H.264 4:2:0 10-bit", "h264-420-10.mkv", "yuv420p10le", "libx264", False, {}),
    ("HEVC 4:2:0 10-bit", "hevc-420-10.mp4", "yuv420p10le", "libx265", False, {}),
    ("H.264 4:2:0 8-bit, full range", "h264-420-full.mp4", "yuvj420p", "libx264", True, {}),
    ("HEVC 4:2:0 10-bit, full range", "hevc-420-10-full.mkv", "yuv420p10le", "libx265", True, {}),
    # the same samples tagged HLG: the same cuts and text; luma and rgb() as HLG shows them
    ("HEVC 4:2:0 10-bit, tagged HLG", "hevc-420-10-hlg.mkv", "yuv420p10le", "libx265", False,
     HLG_TAGS),
    # rendered again, as fields (not a lossless copy): the scan deinterlaces it
    ("H.264 4:2:0 8-bit, interlaced (MPEG-TS)", "interlaced.ts", None, "fields", False, {}),
]  # fmt: skip
RGB_FRAMES = 20  # frames whose full-size Frame.rgb() is timed per file


def render(folder: Path, size: tuple[int, int], seconds: float) -> dict[str, Path]:
    n = max(10, round(seconds * 25 / 4))
    segments = [
        Segment(n, seed=1, pan=(3, 0), noise=1.8),
        Segment(n, seed=2, texture="foliage", pan=(0, 1), noise=1.8),
        Segment(n, seed=3, text="EXIT", text_scale=1.4, noise=1.8),
        Segment(n, seed=4, texture="fabric", pan=(-2, 1), noise=1.8),
    ]
    src = folder / "src.mp4"
    render_video(src, segments, fps=25, size=size)
    paths = {}
    for name, file, pix_fmt, codec, full, tags in FORMATS:
        if codec == "fields":
            render_video(folder / file, segments, fps=25, size=size, interlaced=True)
        elif pix_fmt is not None:
            copy_as(src, folder / file, pix_fmt, codec, full_range=full, **tags)
        paths[name] = folder / file
    return paths


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--size", default="1280x720")
    p.add_argument("--seconds", type=float, default=8.0, help="length of the rendered video")
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--out", help="also write the table (markdown) here")
    args = p.parse_args(argv)
    size = tuple(int(v) for v in args.size.split("x"))
    cv2.setNumThreads(1)
    cfg = validate_config({"sources": [{"name": "s", "type": "folder", "path": "."}]})
    ocr_cfg = cfg["filters"]["ocr"]
    reader = OcrReader.from_config(ocr_cfg)
    ocr = (reader, ocr_cfg["every_seconds"], ocr_cfg["quiet_every_seconds"], ocr_cfg["max_side"])
    with tempfile.TemporaryDirectory() as tmp:
        print(f"rendering {args.size}, {args.seconds} s, and its copies ...", file=sys.stderr)
        paths = render(Path(tmp), size, args.seconds)
        reader.read(np.zeros((270, 480, 3), np.uint8))  # the first call's warm-up
        costs = {name: [float("inf")] * 3 for name in paths}
        results = {}
        for _ in range(args.repeat):  # rounds: every file once per round
            for name, path in paths.items():
                n, dec = timed(lambda path=path: plain_decode([path]))
                out, scan = timed(
                    lambda path=path: scan_video(str(path), "v", 25.0, cfg["scan"], ocr)
                )
                frames = list(itertools.islice(iter_frames(path), RGB_FRAMES))
                _, rgb = timed(lambda frames=frames: [f.rgb() for f in frames])
                now = (dec.cpu, scan.cpu, rgb.cpu / len(frames))
                costs[name] = [min(c, t) for c, t in zip(costs[name], now, strict=True)]
                results[name] = (n, out)
        lines = [
            f"# The scan in every pixel format ({args.size}, {args.seconds:g} s at 25 fps, "
            f"least of {args.repeat} rounds)",
            "",
            f"- date: {dt.date.today()}; PyAV {av.__version__}, OpenCV {cv2.__version__}; one "
            "thread",
            "",
            "| file | frames | decode only CPU-s | scan with OCR CPU-s | decode / scan "
            "| scan - decode | luma_mean | sharpness | scenes | text read | rgb() ms/frame |",
            "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- | --- | ---: |",
        ]
        for name, (n, (scenes, _, samples, texts)) in results.items():
            dec, scan, rgb = costs[name]
            words = sorted(
                {b["text"] for r in texts for b in json.loads(r["boxes"]) if b["text_like"]}
            )
            bounds = ", ".join(f"{s['start_frame']}-{s['end_frame']}" for s in scenes)
            lines.append(
                f"| {name} | {n} | {dec:.2f} | {scan:.2f} | {dec / scan:.2f} | {scan - dec:.2f} | "
                f"{np.mean([s['luma_mean'] for s in samples]):.2f} | "
                f"{np.mean([s['sharpness'] for s in samples]):.1f} | {bounds} | "
                f"{', '.join(words) or '-'} | {1000 * rgb:.1f} |"
            )
    text = "\n".join(lines) + "\n"
    print(text)
    if args.out:
        Path(args.out).write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
