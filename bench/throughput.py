"""CPU throughput of the clipsift analysis, relative to decoding alone, on the same videos.

Generates H.264 test videos (``clipsift.sample.render_video``: textured scenes with pans, hard cuts,
a burned-in subtitle, busy textless textures and a one-word sign) at 1280x720 and 1920x1080, 30 fps. The rendered scenes are smooth and
compress to few bits, so they decode about 2.5 times faster than camera footage; ``--grain SIGMA``
(default 1.8 luma levels, 0 = off) therefore re-encodes every video with temporally varying Gaussian
grain (seeded), which brings the decoding cost to that of real footage. It then measures, in one
process:

- decode only, the baseline of every ratio: plain PyAV (``av.open``, one decoding thread, every
  frame, touching nothing); and the same through clipsift's reader ``clipsift.io.decode.iter_frames``
  (an MP4 opens without FFmpeg's trial decode of its first frame, so it is a little faster);
- ingest: probe + content hash (``clipsift.ingest.ingest_shard``);
- ingest + scan: ``clipsift.split.scan.scan_shard`` with the schema's ``scan`` defaults, without
  and with OCR in the pass (``filters.ocr.frames: scan``, the default);
- ingest + split: the scan with OCR plus ``scenes_to_clips`` (what the split rule does);
- whole CPU analysis, the pipeline's default path: ingest, the scan with OCR, split, then the
  stage functions with the schema defaults: ``ocr_from_scan`` (no decoding), ``flash_shard`` (the
  scan's luma), ``run_scorer("motion")`` and ``run_scorer("technical")`` (the scan's samples);
- the same with ``filters.ocr.frames: first_middle_last``: the scan without OCR, and ``ocr_shard``
  reading each clip's first, middle and last frame by seeking (``read_frames_at``);
- motion vectors: ``run_scorer("motion_vectors")`` over each clip (the fast path), alone.

It also counts the cuts the scan found in each video against the rendered cuts (the grain must not
make the scene detector fire).

Everything runs single process, single thread: PyAV decodes with one thread (the reader's
default), ``cv2.setNumThreads(1)``, ONNX Runtime with one intra-op and one inter-op thread
(``OcrReader(threads=1)``, its default), and the BLAS/OpenMP thread variables set to 1 before
numpy is imported. CPU seconds are ``time.process_time()`` of this process (all its threads).

The scan breakdown re-runs the scan's per-frame loop for one resolution with a timer around each
component call (same functions, same order as ``scan_video``, OCR included); ``--what-if``
measures cheaper alternatives not (yet) in the package. The package is never modified: where a
stage's inner calls are timed (``read_frames_at``, ``OcrReader``), module attributes are wrapped
while the bench runs.

    python bench/throughput.py --out bench/results/cpu-2core.md
"""

# ruff: noqa: E402  (thread variables are set before numpy and OpenCV are imported)
from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMEXPR_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse
import datetime as dt
import json
import logging
import math
import platform
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable
from contextlib import contextmanager, redirect_stderr
from dataclasses import dataclass
from io import StringIO
from pathlib import Path

import av
import cv2
import numpy as np
import pandas as pd

from clipsift.config import SCHEMA
from clipsift.filters.flash import decay_frames, flash_shard
from clipsift.filters.ocr import ocr_from_scan, ocr_shard
from clipsift.filters.ocr_reader import OcrReader
from clipsift.ingest import ingest_shard, usable
from clipsift.io.atomic import atomic_path
from clipsift.io.decode import iter_frames, probe
from clipsift.io.x264 import x264_options
from clipsift.sample import Segment, render_video
from clipsift.scorers import ShardInputs, run_scorer, usable_clips
from clipsift.scorers.motion import FlowMeter, motion_vectors
from clipsift.scorers.technical import border_profile, find_borders, frame_technical
from clipsift.split.clips import scenes_to_clips
from clipsift.split.detectors import make_detector
from clipsift.split.scan import (
    MIN_PAIR_INTERVAL,
    FlashEnds,
    OcrGrid,
    SampleGrid,
    _scene_bounds,
    flash_picture,
    scan_shard,
    transition_finder,
)
from clipsift.split.transitions import mean_chroma

cv2.setNumThreads(1)

VIDEO_EXT = {".mp4", ".mov", ".mkv", ".webm", ".avi", ".m4v"}
WHOLE = "**whole CPU analysis (default: OCR in the scan)**"
WHOLE_FML = "whole CPU analysis, OCR first_middle_last (seeking)"
CRF = 18  # libx264 veryfast, as render_video
# grain (luma levels) at which the generated videos decode at about the speed of the camera footage
# we measured on camera footage (~430 frames/CPU-s at 720p, 140-165 at 1080p); measured on
# 8-s videos, 2 loaded cores: 1.75 -> 493 / 178, 1.8 -> 429 / 157, 1.9 -> 374 / 150, 2.0 -> 360 / 141
GRAIN = 1.8
CUT_TOLERANCE = 2  # frames between a found cut and a rendered one that still match
TARGET = 0.75  # whole CPU analysis over decode-only speed, on noisy textured footage (issue 12)


# ----------------------------------------------------------------------------- config, videos


def default_config() -> dict:
    """The schema's defaults, filled in by validating a minimal config."""
    from snakemake.utils import validate

    cfg = {"sources": [{"name": "bench", "type": "folder", "path": "."}]}
    with redirect_stderr(StringIO()):  # snakemake's note about the draft-07 validator
        validate(cfg, str(SCHEMA))
    return cfg


def plan(seconds: float, size: tuple[int, int], fps: int = 30) -> dict[str, list[Segment]]:
    """Three videos, about 1.36 x ``seconds`` in all: scenes with pans (incl. one static) and
    hard cuts; the second has a burned-in subtitle over a pan in its first scene; the third has
    busy textless textures (foliage, a fractal with a one-word sign, fabric). Pans scale with
    the width."""
    w = size[0]

    def px(v: float) -> tuple[float, float]:
        return round(v * w / 640 * 4) / 4

    def n(frac: float) -> int:
        return max(2 * fps + 1, round(frac * seconds * fps))

    return {
        "scenes.mp4": [
            Segment(n(0.14), seed=1, pan=(px(1.5), 0)),
            Segment(n(0.16), seed=2),
            Segment(n(0.10), seed=3, pan=(px(-3), px(1))),
            Segment(n(0.14), seed=4, pan=(px(4), 0)),
            Segment(n(0.12), seed=5, pan=(px(0.75), px(-0.5))),
        ],
        "text.mp4": [
            Segment(n(0.18), seed=6, pan=(px(1), 0), text="SALE ENDS FRIDAY"),
            Segment(n(0.16), seed=7, pan=(0, px(0.5))),
        ],
        # busy textless textures (what OCR must not read as text), one with a sign on it
        "textured.mp4": [
            Segment(n(0.12), seed=8, texture="foliage", pan=(px(1), 0)),
            Segment(n(0.12), seed=9, texture="fractal", text="EXIT", text_scale=1.4),
            Segment(n(0.12), seed=10, texture="fabric", pan=(0, px(0.5))),
        ],
    }


def truth_cuts(segments: list[Segment]) -> list[int]:
    """The frames where the rendered hard cuts start a scene (the plans have no fades)."""
    return [int(v) for v in np.cumsum([s.frames for s in segments])[:-1]]


def generate(
    folder: Path, sizes: list[tuple[int, int]], seconds: float, grain: float = 0.0, seed: int = 0
) -> tuple[dict[str, list[str]], dict[str, list[int]]]:
    """Render the plan at each size (with grain when ``grain`` > 0) into ``folder``, reusing the
    files already there; returns the paths by resolution and the rendered cuts by path."""
    out: dict[str, list[str]] = {}
    cuts: dict[str, list[int]] = {}
    for size in sizes:
        key = f"{size[0]}x{size[1]}"
        # the plan's cuts depend on ``seconds``: a file rendered for another length is another
        # video, so the length is in the folder's name (reused with other cuts, it read as 0 hits)
        clean_dir = folder / f"{key}-{seconds:g}s"
        sub = (
            clean_dir.with_name(f"{clean_dir.name}-grain{grain:g}-seed{seed}")
            if grain > 0
            else clean_dir
        )
        paths = []
        for k, (name, segments) in enumerate(plan(seconds, size).items()):
            path = sub / name
            path.parent.mkdir(parents=True, exist_ok=True)
            if not path.exists():
                t0 = time.perf_counter()
                if grain > 0:
                    clean = clean_dir / name
                    if not clean.exists():
                        render_video(clean, segments, fps=30, size=size, crf=CRF)
                    add_grain(clean, path, grain, seed=seed * 1000 + k)
                else:
                    render_video(path, segments, fps=30, size=size, crf=CRF)
                log(f"rendered {path} in {time.perf_counter() - t0:.1f} s")
            paths.append(str(path))
            cuts[str(path)] = truth_cuts(segments)
        out[key] = paths
    return out, cuts


def add_grain(src: Path, dst: Path, sigma: float, seed: int = 0, crf: int = CRF) -> None:
    """Re-encode ``src`` to ``dst`` with film grain: Gaussian noise of ``sigma`` luma levels, new
    on every frame (seeded: the same arguments give the same pixels), added to the Y plane of the
    decoded yuv420p frame; libx264 veryfast at ``crf``, yuv420p, same frame rate and timestamps.

    Camera footage carries sensor noise and grain that costs bits and therefore decoding time; the
    rendered scenes have none, so they decode about 2.5 times faster than real footage."""
    rng = np.random.default_rng(seed)
    with (
        av.open(os.fspath(src)) as inp,
        atomic_path(dst) as tmp,
        av.open(os.fspath(tmp), "w") as out,
    ):
        ist = inp.streams.video[0]
        w, h = ist.codec_context.width, ist.codec_context.height
        ost = out.add_stream("libx264", rate=ist.average_rate)
        ctx = ost.codec_context
        ctx.width, ctx.height, ctx.pix_fmt = w, h, "yuv420p"
        ctx.options = x264_options(crf, "veryfast", mbtree=True)
        noise = np.empty((h, w), np.float32)
        for i, frame in enumerate(inp.decode(ist)):
            yuv = frame.to_ndarray(format="yuv420p")  # Y rows, then U and V
            rng.standard_normal(out=noise, dtype=np.float32)
            noise *= sigma
            noise += yuv[:h]
            np.rint(noise, out=noise)
            yuv[:h] = np.clip(noise, 0, 255)
            grainy = av.VideoFrame.from_ndarray(yuv, format="yuv420p")
            grainy.pts, grainy.time_base = i, 1 / ist.average_rate
            out.mux(ost.encode(grainy))
        out.mux(ost.encode(None))


def existing(folder: Path) -> dict[str, list[str]]:
    """Every video under ``folder``, grouped by its display resolution."""
    out: dict[str, list[str]] = {}
    for path in sorted(p for p in folder.rglob("*") if p.suffix.lower() in VIDEO_EXT):
        info = probe(path)
        if info["error"]:
            log(f"skipping {path}: {info['error']}")
            continue
        out.setdefault(f"{info['width']}x{info['height']}", []).append(str(path))
    return dict(sorted(out.items(), key=lambda kv: math.prod(map(int, kv[0].split("x")))))


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


# ----------------------------------------------------------------------------- timing


@dataclass
class Cost:
    """CPU and wall seconds."""

    cpu: float = 0.0
    wall: float = 0.0

    def __add__(self, other: Cost) -> Cost:
        return Cost(self.cpu + other.cpu, self.wall + other.wall)

    def __sub__(self, other: Cost) -> Cost:
        return Cost(self.cpu - other.cpu, self.wall - other.wall)


def timed(fn: Callable):
    """``(fn(), Cost)``."""
    c0, w0 = time.process_time(), time.perf_counter()
    result = fn()
    return result, Cost(time.process_time() - c0, time.perf_counter() - w0)


class Inner:
    """What the wrapped inner calls of one run cost: ``cost["read"]`` (``read_frames_at``),
    ``cost["infer"]`` (``OcrReader.read``), ``cost["load"]`` (OCR model load plus the first
    call's excess over the median of the next four: ONNX Runtime's warm-up); ``decoded``: the
    frames ``read_frames_at`` decoded."""

    def __init__(self):
        self.cost: defaultdict[str, Cost] = defaultdict(Cost)
        self.decoded = 0


class Best:
    """Each stage's run with the least CPU over the rounds, the OCR model load and warm-up taken
    out (``ocr_shard`` and ``scan_shard`` load it once per shard job; a real shard holds
    hundreds of videos). The bench runs every stage once per round rather than one stage
    several times in a row, so that a slow spell of a shared machine (decoding alone has read
    25 % slower from one run to the next) falls on all stages alike and leaves the ratios be."""

    def __init__(self):
        self.runs: dict[str, tuple] = {}

    def run(self, name: str, fn: Callable, *args):
        """Run ``fn(*args)`` once; return its result (stages of one round feed the next)."""
        inner = Inner()
        with instrumented(inner):
            res, cost = timed(lambda: fn(*args))
        cost -= inner.cost["load"]
        if name not in self.runs or cost.cpu < self.runs[name][1].cpu:
            self.runs[name] = (res, cost, inner)
        return res

    def __getitem__(self, name: str) -> tuple:
        """``(result, Cost, Inner)`` of the stage's least-CPU run."""
        return self.runs[name]


@contextmanager
def instrumented(inner: Inner):
    """Time ``read_frames_at`` and ``OcrReader`` wherever the stages call them, and count the
    frames ``read_frames_at`` decodes, by wrapping module attributes while the block runs."""
    import clipsift.filters.ocr as ocr_mod
    import clipsift.filters.ocr_reader as reader_mod
    import clipsift.io.decode as decode_mod

    read0, reader0, open0 = decode_mod.read_frames_at, ocr_mod.OcrReader, decode_mod.open_video

    class Counted:
        """A container whose ``decode`` counts the frames it yields."""

        def __init__(self, container):
            self._container = container

        def __getattr__(self, name):
            return getattr(self._container, name)

        def decode(self, *args, **kwargs):
            for frame in self._container.decode(*args, **kwargs):
                inner.decoded += 1
                yield frame

    @contextmanager
    def counting_open(*args, **kwargs):
        with open0(*args, **kwargs) as (container, stream):
            yield Counted(container), stream

    def read(*args, **kwargs):
        decode_mod.open_video = counting_open
        try:
            res, cost = timed(lambda: read0(*args, **kwargs))
        finally:
            decode_mod.open_video = open0
        inner.cost["read"] += cost
        return res

    class Reader(reader0):
        def __init__(self, *args, **kwargs):
            _, cost = timed(lambda: super(Reader, self).__init__(*args, **kwargs))
            inner.cost["load"] += cost
            self.calls: list[float] = []

        def read(self, image_bgr):
            res, cost = timed(lambda: super(Reader, self).read(image_bgr))
            inner.cost["infer"] += cost
            self.calls.append(cost.cpu)
            if len(self.calls) == 5:
                x = max(0.0, self.calls[0] - float(np.median(self.calls[1:])))
                extra = Cost(x, x)
                inner.cost["load"] += extra
                inner.cost["infer"] -= extra
            return res

    # ocr_shard reads the name from filters.ocr, the scan from filters.ocr_reader
    decode_mod.read_frames_at, ocr_mod.OcrReader, reader_mod.OcrReader = read, Reader, Reader
    try:
        yield
    finally:
        decode_mod.read_frames_at, ocr_mod.OcrReader, reader_mod.OcrReader = read0, reader0, reader0


# ----------------------------------------------------------------------------- stages


def plain_decode(paths: list[str]) -> int:
    """Decoding alone as a PyAV user writes it (the baseline of every ratio): ``av.open``, one
    decoding thread, every frame, nothing done with them."""
    n = 0
    for path in paths:
        with av.open(os.fspath(path)) as container:
            stream = container.streams.video[0]
            stream.codec_context.thread_count = 1
            n += sum(1 for _ in container.decode(stream))
    return n


def decode_only(paths: list[str], **kwargs) -> int:
    """Every frame through clipsift's reader (an MP4 opens without FFmpeg's trial decode)."""
    return sum(1 for path in paths for _ in iter_frames(path, **kwargs))


def scan_decode(paths: list[str], skip: str) -> int:
    """Every frame as the scan decodes it (``scan.skip_loop_filter``)."""
    return decode_only(paths, skip_loop_filter=skip)


def items_of(paths: list[str]) -> pd.DataFrame:
    return pd.DataFrame(
        [
            {"source": "bench", "video_id": f"v{i}", "uri": p, "path": p, "caption": None}
            for i, p in enumerate(paths)
        ]
    )


def analyse(source: pd.DataFrame, scan: tuple, cfg: dict, mode: str) -> tuple[dict, dict]:
    """The pipeline's stages after the scan with the schema defaults and ``filters.ocr.frames:
    mode``: split (virtual clips), OCR records (``ocr_from_scan`` for ``scan``, else
    ``ocr_shard``), flash, the motion and technical scorers. Returns outputs and Costs."""
    scenes, frames, samples, ocr_rows = scan
    ocr_cfg = cfg["filters"]["ocr"] | {"frames": mode}
    costs: dict[str, Cost] = {}

    def run(name: str, fn: Callable):
        res, costs[name] = timed(fn)
        return res

    clips = run("split", lambda: scenes_to_clips(scenes, source, cfg["split"], frames))
    out = {"clips": clips}
    if mode == "scan":
        out["ocr"] = run("ocr", lambda: ocr_from_scan(clips, ocr_rows, ocr_cfg))
    else:
        out["ocr"] = run("ocr", lambda: ocr_shard(clips, ocr_cfg))
    out["flash"] = run(
        "flash", lambda: flash_shard(clips, frames, cfg["filters"]["flash"], samples)
    )
    inputs = scorer_inputs(clips, source, samples)
    for name in ("motion", "technical"):
        out[name] = run(name, lambda n=name: run_scorer(n, inputs, cfg["scorers"][n]))
    return out, costs


def scorer_inputs(clips: pd.DataFrame, source: pd.DataFrame, samples: pd.DataFrame) -> ShardInputs:
    """``ShardInputs`` holding the scan's samples in memory (the rule reads them from parquet)."""
    inputs = ShardInputs(clips, source, None)
    inputs.__dict__["samples"] = samples  # fills the cached property
    return inputs


def mv_pass(clips: pd.DataFrame, source: pd.DataFrame, cfg: dict) -> pd.DataFrame:
    """The ``motion_vectors`` scorer over every usable clip."""
    inputs = scorer_inputs(clips, source, pd.DataFrame())
    return run_scorer("motion_vectors", inputs, cfg["scorers"]["motion_vectors"])


class TimedReader:
    """An OcrReader that adds up the CPU of its reads (the breakdown's OCR inference)."""

    def __init__(self, reader: OcrReader):
        self.reader, self.cpu, self.calls = reader, 0.0, 0

    def read(self, img):
        boxes, cost = timed(lambda: self.reader.read(img))
        self.cpu += cost.cpu
        self.calls += 1
        return boxes


def ocr_reader(ocr_cfg: dict, max_side: int | None = None, **overrides) -> OcrReader:
    """A reader as ``scan_shard`` builds it, warmed up."""
    reader = OcrReader.from_config(ocr_cfg, max_side=max_side or ocr_cfg["max_side"], **overrides)
    reader.read(np.zeros((270, 480, 3), np.uint8))
    return reader


def measure(paths: list[str], cfg: dict, r: int) -> tuple[list, dict, dict]:
    """Throughput rows ``(stage, video-s, Cost, decode-only Cost)``, the parts of the whole
    analysis (default and first_middle_last) and facts for one resolution's videos, from ``r``
    rounds of every stage."""
    ocr_cfg = cfg["filters"]["ocr"]
    best = Best()
    for _ in range(r):
        best.run("decode", plain_decode, paths)
        best.run("reader", decode_only, paths)
        best.run("reader scan", scan_decode, paths, cfg["scan"]["skip_loop_filter"])
        source = best.run("ingest", lambda: ingest_shard(items_of(paths)))
        ok = usable(source)
        scan0 = best.run("scan", scan_shard, ok, cfg["scan"])
        scan1 = best.run("scan+ocr", scan_shard, ok, cfg["scan"], ocr_cfg)
        out1, _ = best.run("whole", analyse, source, scan1, cfg, "scan")
        best.run("whole fml", analyse, source, scan0, cfg, "first_middle_last")
        best.run("mv", mv_pass, out1["clips"], source, cfg)
    n_frames, dec, _ = best["decode"]
    _, reader, _ = best["reader"]
    _, reader_scan, _ = best["reader scan"]
    source, ing, _ = best["ingest"]
    video_s = float(usable(source)["duration"].sum())
    _, plain, _ = best["scan"]
    scan1, with_ocr, in_scan = best["scan+ocr"]
    (out1, post1), whole1, _ = best["whole"]
    (out0, post0), whole0, read = best["whole fml"]
    clips = out1["clips"]
    mvs, mv, _ = best["mv"]
    rows = [
        (name, video_s, cost, dec)
        for name, cost in [
            ("decode only", dec),
            ("decode only, clipsift's reader (iter_frames)", reader),
            (
                "decode only, as the scan decodes (skip_loop_filter "
                f"{cfg['scan']['skip_loop_filter']})",
                reader_scan,
            ),
            ("ingest (probe + hash)", ing),
            ("ingest + scan, no OCR", ing + plain),
            ("ingest + scan with OCR (default)", ing + with_ocr),
            ("ingest + split (scan with OCR + clips)", ing + with_ocr + post1["split"]),
            (WHOLE, ing + with_ocr + whole1),
            (WHOLE_FML, ing + plain + whole0),
            ("motion_vectors scorer, all clips (alone)", mv),
        ]
    ]
    ocr_rest = post0["ocr"] - read.cost["load"] - read.cost["read"] - read.cost["infer"]
    parts = {
        "ingest": (ing, ing),
        "scan: decode, small frames, detector, luma, flow, technical (default: + OCR frames "
        f"at {ocr_cfg['max_side']} px)": (with_ocr - in_scan.cost["infer"], plain),
        "OCR inference (OcrReader.read)": (in_scan.cost["infer"], read.cost["infer"]),
        "OCR frame reading (read_frames_at)": (Cost(), read.cost["read"]),
        "OCR records (ocr_from_scan / rest of ocr_shard)": (post1["ocr"], ocr_rest),
        "split, flash, motion and technical scorers": tuple(
            sum((p[k] for k in ("split", "flash", "motion", "technical")), Cost())
            for p in (post1, post0)
        ),
        "(OCR model load and warm-up, once per shard job: not in the rows)": (
            in_scan.cost["load"],
            read.cost["load"],
        ),
    }
    ok_ocr = [v for v in out1["ocr"].values() if not v.get("error")]
    scenes = scan1[0]
    found = {
        p: sorted(
            int(f)
            for f in scenes.loc[
                (scenes["video_id"] == f"v{i}") & (scenes["scene"] > 0), "start_frame"
            ]
        )
        for i, p in enumerate(paths)
    }
    facts = {
        "videos": len(paths),
        "frames": n_frames,
        "decode_fps": n_frames / max(dec.cpu, 1e-9),
        "seconds": video_s,
        "scenes": int(scan1[0]["scene"].notna().sum()),
        "clips": len(usable_clips(clips)),
        "ocr_scan": len(scan1[3]),
        "ocr_fml": sum(len(v["frames"]) for v in out0["ocr"].values() if not v.get("error")),
        "decoded_fml": read.decoded,
        "ocr_text": sum(1 for v in ok_ocr if v["text_area_mean"] > 0),
        "mv_frames": int(mvs["n_frames"].fillna(0).sum()) if "n_frames" in mvs else 0,
        "cuts": found,
    }
    return rows, parts, facts


# ----------------------------------------------------------------------------- scan breakdown


def scan_breakdown(path: str, fps: float, cfg: dict, reader: OcrReader):
    """CPU seconds of each component of ``scan_video``'s loop (OCR in the pass), called in the
    same order; returns the times and counts of frames, samples, flow pairs, OCR frames."""
    clock = time.process_time
    scan_cfg, ocr_cfg = cfg["scan"], cfg["filters"]["ocr"]
    t = dict.fromkeys(
        (
            "decode", "analysis", "detector", "transitions", "luma", "flow",
            "technical", "ocr_frame", "ocr", "finish", "loop",
        ),
        0.0,
    )  # fmt: skip
    counts = {"frames": 0, "samples": 0, "pairs": 0, "ocr": 0}
    start = clock()
    width = scan_cfg["analysis_width"]
    detector = make_detector(scan_cfg, fps)
    meter = FlowMeter(method=scan_cfg["flow"], preset=scan_cfg["flow_preset"])
    sampled = SampleGrid(max(1, round(fps / scan_cfg["sample_fps"])), scan_cfg["skip_loop_filter"])
    lumas, waiting = [], []  # samples waiting for their flow pair (MIN_PAIR_INTERVAL on)
    timed = TimedReader(reader)
    grid = OcrGrid(
        "v", timed, ocr_cfg["every_seconds"], ocr_cfg["quiet_every_seconds"], ocr_cfg["max_side"]
    )
    blends = transition_finder(scan_cfg, fps)
    flash_ends = FlashEnds(scan_cfg["flash_delta"], decay_frames(fps) + 1)
    it = iter_frames(path, skip_loop_filter=sampled.skip)
    while True:
        c0 = clock()
        fr = next(it, None)
        c1 = clock()
        t["decode"] += c1 - c0
        if fr is None:
            break
        gray, small = fr.analysis(width, min(scan_cfg["detector_width"], width), quick=True)
        c2b = clock()
        detector.push(fr.index, small)
        c3 = clock()
        if blends is not None:
            blends.push(fr.index, gray, None, mean_chroma(small))
        c3b = clock()
        lumas.append(cv2.mean(gray)[0])
        flash_ends.push(fr.index, gray, lumas[-1], *flash_picture(blends))
        c4 = clock()
        t["analysis"] += c2b - c1
        t["detector"] += c3 - c2b
        t["transitions"] += c3b - c3
        t["luma"] += c4 - c3b
        while waiting and fr.time - waiting[0][0] >= MIN_PAIR_INTERVAL:
            meter.measure(waiting.pop(0)[1], gray)
            counts["pairs"] += 1
        c5 = clock()
        t["flow"] += c5 - c4
        if sampled.take(fr):
            luma = fr.luma()
            rows, cols = border_profile(luma)
            bars = find_borders([rows], [cols])
            frame_technical(luma, crop=bars["crop"])
            waiting.append((fr.time, gray))
            counts["samples"] += 1
        c6 = clock()
        t["technical"] += c6 - c5
        read0 = timed.cpu
        grid.push(fr)  # the scan's OCR grid: frames made (Frame.bgr) and read (timed)
        t["ocr"] += timed.cpu - read0
        t["ocr_frame"] += clock() - c6 - (timed.cpu - read0)
        counts["frames"] += 1
    counts["ocr"] = timed.calls
    c0 = clock()
    _scene_bounds(detector.finish(counts["frames"]), lumas, blends, scan_cfg, fps, flash_ends.alike)
    t["finish"] = clock() - c0
    t["loop"] = clock() - start - sum(t.values())
    return t, counts


# ----------------------------------------------------------------------------- what-if


def what_if(paths: list[str], cfg: dict, repeat: int) -> list[tuple]:
    """Rows ``(part, now, now CPU-s, alternative, alternative CPU-s, note)`` for cheaper ways to
    do what the scan does, measured on the same videos (package functions unchanged)."""
    scan_cfg, ocr_cfg = cfg["scan"], cfg["filters"]["ocr"]
    width, side0 = scan_cfg["analysis_width"], ocr_cfg["max_side"]
    dw = min(scan_cfg["detector_width"], width)
    # the scan's OCR grid as configured, every grid frame (quiet_every_seconds null), and the
    # configured grid at max_side 320, and the configured grid with the other OCR graphs
    # (lean_graph flipped)
    q = ocr_cfg["quiet_every_seconds"]
    lean = ocr_cfg["lean_graph"]
    now, small = ocr_reader(ocr_cfg, side0), ocr_reader(ocr_cfg, 320)
    other = ocr_reader(ocr_cfg, side0, lean_graph=not lean)
    # name: (quiet_every_seconds, max_side, reader)
    grids = {"ocr now": (q, side0, now), "ocr full": (None, side0, now),
             "ocr 320": (q, 320, small), "ocr graphs": (q, side0, other)}  # fmt: skip
    clock = time.process_time
    rng = np.random.default_rng(0)
    t: defaultdict[str, float] = defaultdict(float)
    cuts: dict[str, list] = {"det": [], "small": []}
    texts: dict[str, set] = {k: set() for k in grids}
    n_ocr: dict[str, int] = dict.fromkeys(grids, 0)
    boxes: dict[str, list] = {k: [] for k in grids}
    for path in paths:
        fps = probe(path)["fps"] or 30.0
        det, small = make_detector(scan_cfg, fps), make_detector(scan_cfg, fps)
        ocr = {
            k: OcrGrid("v", reader, ocr_cfg["every_seconds"], quiet, side)
            for k, (quiet, side, reader) in grids.items()
        }
        n = 0
        for fr in iter_frames(path):
            # the first call after the decode costs more (cold caches), and frame types repeat
            # with the index (B-frames, OCR grid frames): a seeded random order spreads that
            for which in rng.permutation(["small", "det"]):
                c0 = clock()
                if which == "small":
                    small.push(fr.index, fr.analysis(width, dw, quick=True)[1])
                else:
                    det.push(fr.index, fr.analysis(width, quick=True)[1])
                t[which] += clock() - c0
            for k in rng.permutation(list(ocr)):
                c0 = clock()
                ocr[k].push(fr)
                t[k] += clock() - c0
            n += 1
        for k, grid in ocr.items():
            rows = grid.rows()
            n_ocr[k] += len(rows)
            texts[k] |= {b["text"] for r in rows for b in json.loads(r["boxes"])}
            boxes[k] += [(r["frame"], [b["box"] for b in json.loads(r["boxes"])]) for r in rows]
        cuts["det"].append(det.finish(n))
        cuts["small"].append(small.finish(n))
    skip = scan_cfg["skip_loop_filter"]
    best = Best()
    for _ in range(repeat):
        for level in dict.fromkeys((skip, "none", "all")):
            best.run(level, lambda level=level: decode_only(paths, skip_loop_filter=level))
    dec, full, slf = best[skip][1], best["none"][1], best["all"][1]
    same = "same" if cuts["det"] == cuts["small"] else "DIFFERENT"
    return [
        (
            "scene detector input",
            f"{dw} px BGR (detector_width; Frame.analysis included)",
            t["small"],
            f"{width} px BGR (as before detector_width; Frame.analysis included)",
            t["det"],
            f"cuts {same}"
            + ("; a negative saving: the alternative costs more" if t["det"] > t["small"] else ""),
        ),
        (
            "scan decode",
            f"iter_frames(skip_loop_filter={skip!r})",
            dec.cpu,
            "every frame deblocked ('none')",
            full.cpu,
            "as a player decodes"
            + ("; a negative saving: the alternative costs more" if full.cpu > dec.cpu else ""),
        ),
        (
            "scan decode",
            f"iter_frames(skip_loop_filter={skip!r})",
            dec.cpu,
            "no frame deblocked ('all')",
            slf.cpu,
            "the blocks spread through each GOP: biases sharpness (7-38 % high), not cuts or luma",
        ),
        (
            "OCR grid in the scan",
            f"quiet_every_seconds {q}: {n_ocr['ocr now']} frames {sorted(texts['ocr now'])}",
            t["ocr now"],
            f"every grid frame (null): {n_ocr['ocr full']} frames {sorted(texts['ocr full'])}",
            t["ocr full"],
            "OcrGrid.push timed (Frame.bgr + OcrReader.read); texts found in brackets",
        ),
        (
            "OCR frame size",
            f"max_side {side0}: {sorted(texts['ocr now'])}",
            t["ocr now"],
            f"max_side 320: {n_ocr['ocr 320']} frames {sorted(texts['ocr 320'])}",
            t["ocr 320"],
            "same grid (quiet_every_seconds as configured); texts found in brackets",
        ),
        (
            "OCR graphs",
            f"lean_graph {lean}: {sorted(texts['ocr now'])}",
            t["ocr now"],
            f"lean_graph {not lean}: {n_ocr['ocr graphs']} frames {sorted(texts['ocr graphs'])}",
            t["ocr graphs"],
            "same grid and size; the models as shipped or folded (clipsift.filters.ocr_graph); "
            + ("boxes identical" if boxes["ocr now"] == boxes["ocr graphs"] else "BOXES DIFFER"),
        ),
    ]


# ----------------------------------------------------------------------------- report


def fmt(x: float, digits: int = 2) -> str:
    return f"{x:,.{digits}f}"


def versions() -> str:
    import onnxruntime
    import rapidocr_onnxruntime
    import scenedetect

    ocr_v = getattr(rapidocr_onnxruntime, "__version__", None)
    if ocr_v is None:
        from importlib.metadata import version

        ocr_v = version("rapidocr_onnxruntime")
    return (
        f"Python {platform.python_version()}, PyAV {av.__version__} (FFmpeg "
        f"{'.'.join(map(str, av.library_versions['libavcodec']))} libavcodec), "
        f"OpenCV {cv2.__version__}, "
        f"ONNX Runtime {onnxruntime.__version__}, RapidOCR {ocr_v}, "
        f"PySceneDetect {scenedetect.__version__}, numpy {np.__version__}"
    )


def machine() -> str:
    model = platform.processor() or ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        import torch

        gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no GPU"
    except Exception:  # torch missing or broken: GPUs are irrelevant here
        gpu = "no GPU"
    return f"{model or 'unknown CPU'}, {os.cpu_count()} cores, {gpu}"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seconds", type=float, default=24.0, help="video-seconds per resolution")
    ap.add_argument(
        "--sizes", default="1280x720,1920x1080", help="resolutions to generate (WxH,...)"
    )
    ap.add_argument("--videos", type=Path, help="use the videos in DIR (grouped by resolution)")
    ap.add_argument("--keep", type=Path, help="generate into DIR (reused when present)")
    ap.add_argument(
        "--grain",
        type=float,
        default=GRAIN,
        metavar="SIGMA",
        help="film grain on the generated videos: Gaussian noise of SIGMA luma levels, new on "
        f"every frame, re-encoded at crf {CRF}; {GRAIN:g} decodes about as fast as real footage, "
        "0 = off (never added to --videos)",
    )
    ap.add_argument("--seed", type=int, default=0, help="seed of the grain")
    ap.add_argument(
        "--repeat",
        type=int,
        default=3,
        help="rounds of every stage, one run of each per round; the least CPU counts",
    )
    ap.add_argument(
        "--breakdown", default="largest", help="resolution of the scan breakdown (WxH/largest/none)"
    )
    ap.add_argument(
        "--what-if",
        action="store_true",
        help="also measure cheaper alternatives to parts of the scan (about a minute more)",
    )
    ap.add_argument("--out", type=Path, help="also write the markdown report here")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    t_start = time.perf_counter()

    cfg = default_config()
    ocr_cfg = cfg["filters"]["ocr"]
    sizes = [tuple(int(v) for v in s.lower().split("x")) for s in args.sizes.split(",") if s]
    tmp = None
    truth: dict[str, list[int]] = {}
    if args.videos:
        videos = existing(args.videos)
        args.grain = 0.0  # your own videos are measured as they are
    else:
        folder = args.keep
        if folder is None:
            tmp = tempfile.TemporaryDirectory(prefix="clipsift-bench-")
            folder = Path(tmp.name)
        videos, truth = generate(folder, sizes, args.seconds, args.grain, args.seed)
    if not videos:
        log("no videos")
        return 1

    # one-off costs, outside every row: model load, first inference, detector import
    reader, load = timed(lambda: OcrReader.from_config(ocr_cfg))
    _, first = timed(lambda: reader.read(np.zeros((270, 480, 3), np.uint8)))
    make_detector(cfg["scan"], 30.0)
    for paths in videos.values():  # page cache and lazy imports
        for p in paths:
            Path(p).read_bytes()
            motion_vectors(p, 0.0, 0.5)
        decode_only(paths[:1])
        plain_decode(paths[:1])

    rows, parts, facts = [], {}, {}
    for key, paths in videos.items():
        log(f"{key}: {len(paths)} video(s)")
        key_rows, parts[key], facts[key] = measure(paths, cfg, args.repeat)
        rows += [(key, *row) for row in key_rows]

    breakdown = None
    if args.breakdown != "none":
        key = max(videos, key=lambda k: math.prod(map(int, k.split("x"))))
        key = key if args.breakdown == "largest" else args.breakdown
        if key in videos:
            total: defaultdict[str, float] = defaultdict(float)
            counts: defaultdict[str, int] = defaultdict(int)
            reader = ocr_reader(ocr_cfg)
            for p in videos[key]:
                t, c = scan_breakdown(p, probe(p)["fps"] or 30.0, cfg, reader)
                for k, v in t.items():
                    total[k] += v
                for k, v in c.items():
                    counts[k] += v
            breakdown = (key, total, counts)

    what = {}
    if args.what_if:
        for key, paths in videos.items():
            log(f"{key}: what-if")
            what[key] = what_if(paths, cfg, args.repeat)

    report = render(
        rows,
        parts,
        facts,
        truth,
        breakdown,
        what,
        cfg,
        load,
        first,
        args,
        time.perf_counter() - t_start,
    )
    print(report)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(report)
        log(f"wrote {args.out}")
    if tmp is not None:
        tmp.cleanup()
    return 0


def render(rows, parts, facts, truth, breakdown, what, cfg, load, first, args, elapsed) -> str:
    scan, ocr = cfg["scan"], cfg["filters"]["ocr"]
    out = [
        "# clipsift CPU throughput",
        "",
        f"- date: {dt.date.today().isoformat()}",
        f"- machine: {machine()}",
        f"- software: {versions()}",
        "- one process, one thread: PyAV decoding thread_count 1, cv2.setNumThreads(1), ONNX "
        "Runtime 1 intra-op + 1 inter-op thread, OMP/BLAS threads 1",
        f"- scan config: schema defaults (detector {scan['detector']} at "
        f"{scan['detector_width']} px, analysis width {scan['analysis_width']}, flow {scan['flow']} {scan['flow_preset']} at "
        f"{scan['sample_fps']} samples/s, luma every {scan['luma_stride']} frame, "
        f"skip_loop_filter {scan['skip_loop_filter']}); split min "
        f"{cfg['split']['min_seconds']} s / max {cfg['split']['max_seconds']} s",
        f"- OCR: schema defaults (frames {ocr['frames']}: one frame every {ocr['every_seconds']} s "
        f"inside the scan, one every {ocr['quiet_every_seconds']} s while none has a box, max side {ocr['max_side']}, RapidOCR); the first_middle_last rows read "
        "each clip's first, middle and last frame with read_frames_at, same max side",
        "- stages after the scan are the pipeline's own functions: scenes_to_clips, "
        "ocr_from_scan (or ocr_shard), flash_shard, run_scorer('motion'), "
        "run_scorer('technical'); the motion_vectors scorer runs alone",
        f"- OCR model: load {fmt(load.cpu)} CPU-s and first call {fmt(first.cpu)} CPU-s in a "
        "warm-up; scan_shard and ocr_shard build their reader once per shard job: that load and "
        "the first call's warm-up are left out of the rows (a real shard holds hundreds of videos)",
        f"- runs per row: {args.repeat}, in rounds of every stage (least CPU counts); bench wall "
        f"time {elapsed:.0f} s",
        "",
        (
            f"Videos (from {args.videos}):"
            if args.videos
            else f"Videos (rendered: libx264 veryfast, crf {CRF}, 30 fps, scenes with pans and hard "
            "cuts, one burned-in subtitle; "
            + (
                f"film grain sigma {args.grain:g} luma levels, new on every frame, seed "
                f"{args.seed}, re-encoded at crf {CRF} veryfast"
                if args.grain > 0
                else "no grain: these decode about 2.5 times faster than real footage"
            )
            + "):"
        ),
        "",
        "| resolution | videos | frames | video-s | decoded frames per CPU-s | scenes | clips | "
        "OCR frames (scan) | OCR frames (first_middle_last): decoded | clips with text | "
        "MV frames |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for key, f in facts.items():
        out.append(
            f"| {key} | {f['videos']} | {f['frames']} | {fmt(f['seconds'], 1)} | "
            f"{fmt(f['decode_fps'], 0)} | {f['scenes']} | {f['clips']} | {f['ocr_scan']} | "
            f"{f['ocr_fml']}: {f['decoded_fml']} | {f['ocr_text']} | {f['mv_frames']} |"
        )
    out += [
        "",
        "## Cuts found by the scan (with OCR, default config)"
        + (f" vs rendered, match within {CUT_TOLERANCE} frames" if truth else ""),
        "",
        "| resolution | video | rendered cuts | found | matched | false | missed | found at frames |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | --- |",
    ]
    for key, f in facts.items():
        for path, found in f["cuts"].items():
            cells = ["", "", "", ""]
            if path in truth:
                true = truth[path]
                hit = [c for c in found if any(abs(c - t) <= CUT_TOLERANCE for t in true)]
                missed = [t for t in true if all(abs(c - t) > CUT_TOLERANCE for c in found)]
                cells = [
                    str(len(true)),
                    str(len(hit)),
                    str(len(found) - len(hit)),
                    str(len(missed)),
                ]
            out.append(
                f"| {key} | {Path(path).name} | {cells[0]} | {len(found)} | {cells[1]} | "
                f"{cells[2]} | {cells[3]} | {', '.join(map(str, found))} |"
            )
    out += [
        "",
        "## Throughput",
        "",
        "| resolution | stage | video-s | CPU-s | wall-s | video-s per CPU-s | vs decode only |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for key, name, video_s, cost, dec in rows:
        out.append(
            f"| {key} | {name} | {fmt(video_s, 1)} | {fmt(cost.cpu)} | {fmt(cost.wall)} | "
            f"{fmt(video_s / max(cost.cpu, 1e-9))} | {fmt(dec.cpu / max(cost.cpu, 1e-9))} |"
        )
    out += [
        "",
        '"vs decode only" is (decode-only CPU-s) / (this row\'s CPU-s): the fraction of decode-only '
        "speed this stage reaches. Rows are cumulative except ingest alone and motion vectors.",
        "",
        "## Targets",
        "",
    ]
    by = {(k, n): (c, d) for k, n, _, c, d in rows}
    for key in facts:
        dec = by[(key, "decode only")][0].cpu
        r = {n: dec / c.cpu for (k, n), (c, _) in by.items() if k == key}
        whole = r[WHOLE]
        out.append(
            f"- {key}: whole CPU analysis (default) at {whole:.2f} of decode-only speed (target "
            f">= {TARGET}: {'met' if whole >= TARGET else 'NOT met'}); ingest + split at "
            f"{r['ingest + split (scan with OCR + clips)']:.2f}; with first_middle_last OCR "
            f"{r[WHOLE_FML]:.2f}"
        )
    out += [
        "",
        "## Where the whole CPU analysis goes",
        "",
        "| resolution | part | default (OCR in the scan): CPU-s | share | first_middle_last: "
        "CPU-s | share |",
        "| --- | --- | ---: | ---: | ---: | ---: |",
    ]
    for key in facts:
        totals = [by[(key, n)][0].cpu for n in (WHOLE, WHOLE_FML)]
        for name, costs in parts[key].items():
            cells = [
                f"{fmt(c.cpu)} | {'' if name.startswith('(') else f'{c.cpu / tot:.1%}'}"
                for c, tot in zip(costs, totals, strict=True)
            ]
            out.append(f"| {key} | {name} | {' | '.join(cells)} |")
    if breakdown:
        key, t, counts = breakdown
        total = sum(t.values())
        names = {
            "decode": "decode (iter_frames)",
            "analysis": f"small frames (Frame.analysis: {scan['analysis_width']} px gray, "
            f"{scan['detector_width']} px BGR)",
            "detector": f"scene detector ({scan['detector']}) push",
            "transitions": "transition finder (fades, dissolves) push",
            "luma": "mean luma (cv2.mean)",
            "flow": f"optical flow ({scan['flow']} {scan['flow_preset']})",
            "technical": "technical (full-size luma: border_profile once, frame_technical)",
            "ocr_frame": f"OCR frames (OcrGrid.push less its reads: Frame.bgr at max side {ocr['max_side']})",
            "ocr": f"OCR inference (OcrReader.read, max side {ocr['max_side']})",
            "finish": "detector finish + flash cuts merged or cut off + transitions cut out",
            "loop": "loop and bookkeeping",
        }
        per = {
            "flow": counts["pairs"],
            "technical": counts["samples"],
            "ocr_frame": counts["ocr"],
            "ocr": counts["ocr"],
            "finish": 0,
            "loop": 0,
        }
        out += [
            "",
            f"## Scan breakdown, {key} ({counts['frames']} frames, {counts['samples']} samples, "
            f"{counts['pairs']} flow pairs, {counts['ocr']} OCR frames)",
            "",
            "| component | CPU-s | share | ms per call | calls |",
            "| --- | ---: | ---: | ---: | ---: |",
        ]
        for k, v in t.items():
            n = per.get(k, counts["frames"])
            per_call = fmt(1000 * v / n, 3) if n else ""
            out.append(f"| {names[k]} | {fmt(v)} | {v / total:.1%} | {per_call} | {n or ''} |")
        out.append(f"| total | {fmt(total)} | 100% | | |")
    if what:
        out += [
            "",
            "## What if (cheaper alternatives, same videos, package unchanged)",
            "",
            "| resolution | part | now | CPU-s | alternative | CPU-s | saved | note |",
            "| --- | --- | --- | ---: | --- | ---: | ---: | --- |",
        ]
        for key, items in what.items():
            for part, now, c_now, alt, c_alt, note in items:
                out.append(
                    f"| {key} | {part} | {now} | {fmt(c_now)} | {alt} | {fmt(c_alt)} | "
                    f"{fmt(c_now - c_alt)} | {note} |"
                )
    return "\n".join(out) + "\n"


if __name__ == "__main__":
    sys.exit(main())
