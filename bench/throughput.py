"""CPU throughput of the clipsift analysis, relative to decoding alone, on the same videos.

Generates H.264 test videos (``clipsift.sample.render_video``: textured scenes with pans, hard cuts
and one burned-in subtitle) at 1280x720 and 1920x1080, 30 fps, and measures in one process:

- decode only: every frame through ``clipsift.io.decode.iter_frames``, touching nothing;
- ingest: probe + content hash (``clipsift.ingest.ingest_shard``);
- ingest + scan: ``clipsift.split.scan.scan_shard`` with the schema's default ``scan`` config;
- ingest + split: the above plus ``scenes_to_clips`` (what the split rule does);
- whole CPU analysis: ingest + split + flash per clip (from the scan's luma) + OCR on the first,
  middle and last frame of each clip (``read_frames_at`` at max side 640, ``OcrReader`` defaults)
  + per-clip motion and technical aggregation from the scan's samples;
- motion vectors: ``clipsift.scorers.motion.motion_vectors`` over each clip (the fast path), alone.

Everything runs single process, single thread: PyAV decodes with one thread (the reader's
default), ``cv2.setNumThreads(1)``, ONNX Runtime with one intra-op and one inter-op thread
(``OcrReader(threads=1)``, its default), and the BLAS/OpenMP thread variables set to 1 before
numpy is imported. CPU seconds are ``time.process_time()`` of this process (all its threads).

The scan breakdown re-runs the scan's per-frame loop for one resolution with a timer around each
component call (same functions, same order as ``scan_video``); the package is not modified.

    python bench/throughput.py --out bench/results/cpu-2core.md
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMEXPR_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import datetime as dt  # noqa: E402
import logging  # noqa: E402
import math  # noqa: E402
import platform  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from collections.abc import Callable  # noqa: E402
from contextlib import redirect_stderr  # noqa: E402
from io import StringIO  # noqa: E402
from pathlib import Path  # noqa: E402

import av  # noqa: E402
import cv2  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from clipsift.config import SCHEMA  # noqa: E402
from clipsift.filters.flash import flash_record  # noqa: E402
from clipsift.filters.ocr import OcrReader, ocr_record  # noqa: E402
from clipsift.ingest import ingest_shard, usable  # noqa: E402
from clipsift.io.decode import iter_frames, probe, read_frames_at  # noqa: E402
from clipsift.sample import Segment, render_video  # noqa: E402
from clipsift.scorers.motion import FlowMeter, aggregate_motion, motion_vectors  # noqa: E402
from clipsift.scorers.technical import (  # noqa: E402
    aggregate_technical,
    border_profile,
    find_borders,
    frame_technical,
)
from clipsift.split.clips import scenes_to_clips  # noqa: E402
from clipsift.split.detectors import make_detector  # noqa: E402
from clipsift.split.scan import merge_flash_cuts, scan_shard  # noqa: E402

cv2.setNumThreads(1)

VIDEO_EXT = {".mp4", ".mov", ".mkv", ".webm", ".avi", ".m4v"}
OCR_MAX_SIDE = 640


# ----------------------------------------------------------------------------- config, videos


def default_config() -> dict:
    """The schema's defaults, filled in by validating a minimal config."""
    from snakemake.utils import validate

    cfg = {"sources": [{"name": "bench", "type": "folder", "path": "."}]}
    with redirect_stderr(StringIO()):  # snakemake's note about the draft-07 validator
        validate(cfg, str(SCHEMA))
    return cfg


def plan(seconds: float, size: tuple[int, int], fps: int = 30) -> dict[str, list[Segment]]:
    """Two videos, ``seconds`` in all: scenes with pans (incl. one static) and hard cuts; the
    second has a burned-in subtitle over a pan in its first scene. Pans scale with the width."""
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
    }


def generate(folder: Path, sizes: list[tuple[int, int]], seconds: float) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for size in sizes:
        key = f"{size[0]}x{size[1]}"
        paths = []
        for name, segments in plan(seconds, size).items():
            path = folder / key / name
            path.parent.mkdir(parents=True, exist_ok=True)
            if not path.exists():
                t0 = time.perf_counter()
                render_video(path, segments, fps=30, size=size)
                log(f"rendered {path} in {time.perf_counter() - t0:.1f} s")
            paths.append(str(path))
        out[key] = paths
    return out


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


class Cost:
    """CPU and wall seconds, addable."""

    def __init__(self, cpu: float = 0.0, wall: float = 0.0):
        self.cpu, self.wall = cpu, wall

    def __add__(self, other: Cost) -> Cost:
        return Cost(self.cpu + other.cpu, self.wall + other.wall)


def timed(fn: Callable, repeat: int = 1):
    """``(result, Cost)`` of the run with the least CPU time among ``repeat`` runs."""
    best, result = None, None
    for _ in range(repeat):
        c0, w0 = time.process_time(), time.perf_counter()
        result = fn()
        cost = Cost(time.process_time() - c0, time.perf_counter() - w0)
        if best is None or cost.cpu < best.cpu:
            best = cost
    return result, best


# ----------------------------------------------------------------------------- stages


def decode_only(paths: list[str]) -> int:
    n = 0
    for path in paths:
        for _ in iter_frames(path):
            n += 1
    return n


def items_of(paths: list[str]) -> pd.DataFrame:
    return pd.DataFrame(
        [
            {"source": "bench", "video_id": f"v{i}", "uri": p, "path": p, "caption": None}
            for i, p in enumerate(paths)
        ]
    )


def ocr_width(width: int, height: int) -> int:
    """Decoded width that gives a longest side of ``OCR_MAX_SIDE`` (even, never upscaled)."""
    if max(width, height) <= OCR_MAX_SIDE:
        return width
    return max(2, round(OCR_MAX_SIDE * width / max(width, height)) // 2 * 2)


def analyse(
    source: pd.DataFrame,
    scenes: pd.DataFrame,
    frames: pd.DataFrame,
    samples: pd.DataFrame,
    cfg: dict,
    reader: OcrReader,
) -> tuple[pd.DataFrame, dict[str, Cost]]:
    """Everything after the scan, per clip; returns the clip records and the cost of each part."""
    costs = {k: Cost() for k in ("split", "flash", "ocr_read", "ocr", "aggregate")}

    def run(part: str, fn: Callable):
        res, cost = timed(fn)
        costs[part] += cost
        return res

    clips = run("split", lambda: scenes_to_clips(scenes, source, cfg["split"]))
    good = clips[clips["error"].isna() & clips["split_reason"].isna()]
    records = []
    for video_id, vclips in good.groupby("video_id", sort=False):
        info = source.set_index("video_id").loc[video_id]
        fps, w, h = float(info["fps"]), int(info["width"]), int(info["height"])
        vframes = frames[frames["video_id"] == video_id]
        vsamples = samples[samples["video_id"] == video_id]
        luma = vframes["luma"].to_numpy(np.float64)
        index = vframes["frame"].to_numpy(np.int64)
        sample_frame = vsamples["frame"].to_numpy(np.int64)

        # OCR frames of every clip of this video in one ascending pass (read_frames_at sorts)
        bounds = list(zip(vclips["start_frame"].astype(int), vclips["end_frame"].astype(int)))
        numbers = [[a, a + (b - a) // 2, b - 1] for a, b in bounds]
        times = [k / fps for ks in numbers for k in ks]
        width = ocr_width(w, h)
        images = run(
            "ocr_read", lambda t=times, wd=width, p=info["path"]: read_frames_at(p, t, size=wd, fmt="bgr")
        )
        for j, (clip, (a, b)) in enumerate(zip(vclips.to_dict("records"), bounds, strict=True)):
            rec = {"clip_id": clip["clip_id"]}

            def flash(a=a, b=b):
                sel = (index >= a) & (index < b)
                return flash_record(luma[sel], index[sel])

            rec["flash"] = run("flash", flash)["verdict"]
            ocr = run(
                "ocr",
                lambda j=j: ocr_record(images[3 * j : 3 * j + 3], numbers[j], reader),
            )
            rec["ocr"] = ocr["verdict"]
            rec["text_area"] = ocr["text_area_mean"]

            def aggregate(a=a, b=b):
                sel = vsamples[(sample_frame >= a) & (sample_frame < b)]
                pairs = sel[(sel["frame"] + 1 < b) & sel["mag"].notna()]
                scale = float(sel["scale"].iloc[0]) if len(sel) else 1.0
                motion = aggregate_motion(
                    pairs[["mag", "grid"]].to_dict("records"),
                    scale=scale,
                    diagonal=math.hypot(w, h),
                    fps=fps,
                )
                tech = aggregate_technical(sel.to_dict("records"))
                borders = {c: int(sel[c].min()) for c in ("border_top", "border_bottom")}
                return motion | tech | borders

            rec |= run("aggregate", aggregate)
            records.append(rec)
    return pd.DataFrame(records), costs


def mv_pass(clips: pd.DataFrame) -> list[dict]:
    good = clips[clips["error"].isna() & clips["split_reason"].isna()]
    return [
        motion_vectors(c["source_path"], c["start_time"], c["end_time"])
        for c in good.to_dict("records")
    ]


# ----------------------------------------------------------------------------- scan breakdown


def scan_breakdown(path: str, fps: float, cfg: dict) -> tuple[dict[str, float], dict[str, int]]:
    """CPU seconds of each component of ``scan_video``'s loop, called in the same order."""
    clock = time.process_time
    t = dict.fromkeys(
        ("decode", "analysis", "detector", "luma", "flow", "technical", "finish", "loop"), 0.0
    )
    counts = {"frames": 0, "samples": 0, "pairs": 0}
    start = clock()
    width = cfg["analysis_width"]
    detector = make_detector(cfg, fps)
    meter = FlowMeter(method=cfg["flow"], preset=cfg["flow_preset"])
    every = max(1, round(fps / cfg["sample_fps"]))
    lumas, pending, prev_gray = [], None, None
    it = iter_frames(path)
    while True:
        c0 = clock()
        fr = next(it, None)
        c1 = clock()
        t["decode"] += c1 - c0
        if fr is None:
            break
        gray, bgr = fr.analysis(width)
        c2 = clock()
        detector.push(fr.index, bgr)
        c3 = clock()
        lumas.append(float(gray.mean()))
        c4 = clock()
        t["analysis"] += c2 - c1
        t["detector"] += c3 - c2
        t["luma"] += c4 - c3
        if pending is not None:
            pending.update(meter.measure(prev_gray, gray))
            pending = None
            counts["pairs"] += 1
        c5 = clock()
        t["flow"] += c5 - c4
        if fr.index % every == 0:
            luma = fr.luma()
            rec = frame_technical(luma)
            rows, cols = border_profile(luma)
            rec.update(find_borders([rows], [cols]))
            pending = rec
            counts["samples"] += 1
        t["technical"] += clock() - c5
        prev_gray = gray
        counts["frames"] += 1
    c0 = clock()
    bounds = detector.finish(counts["frames"])
    if cfg["merge_flash_cuts"]:
        merge_flash_cuts(bounds, np.asarray(lumas), cfg["flash_delta"])
    t["finish"] = clock() - c0
    t["loop"] = clock() - start - sum(t.values())
    return t, counts


def technical_split(path: str, fps: float, cfg: dict) -> dict[str, float]:
    """CPU seconds of the technical sample's parts (full-size luma), on the scan's sample frames."""
    every = max(1, round(fps / cfg["sample_fps"]))
    t = dict.fromkeys(("frame_technical", "border_profile + find_borders"), 0.0)
    for fr in iter_frames(path):
        if fr.index % every:
            continue
        luma = fr.luma()
        c0 = time.process_time()
        frame_technical(luma)
        c1 = time.process_time()
        rows, cols = border_profile(luma)
        find_borders([rows], [cols])
        c2 = time.process_time()
        t["frame_technical"] += c1 - c0
        t["border_profile + find_borders"] += c2 - c1
    return t


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
    ap.add_argument("--repeat", type=int, default=1, help="runs per row; the least CPU counts")
    ap.add_argument(
        "--breakdown", default="largest", help="resolution of the scan breakdown (WxH/largest/none)"
    )
    ap.add_argument("--out", type=Path, help="also write the markdown report here")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    t_start = time.perf_counter()

    cfg = default_config()
    sizes = [tuple(int(v) for v in s.lower().split("x")) for s in args.sizes.split(",") if s]
    tmp = None
    if args.videos:
        videos = existing(args.videos)
    else:
        folder = args.keep
        if folder is None:
            tmp = tempfile.TemporaryDirectory(prefix="clipsift-bench-")
            folder = Path(tmp.name)
        videos = generate(folder, sizes, args.seconds)
    if not videos:
        log("no videos")
        return 1

    # one-off costs, outside every row: model load, first inference, detector import
    _, load = timed(lambda: OcrReader())
    reader = _
    first_img = np.zeros((360, 640, 3), np.uint8)
    _, first = timed(lambda: reader.read(first_img))
    make_detector(cfg["scan"], 30.0)
    for paths in videos.values():  # page cache and lazy imports
        for p in paths:
            Path(p).read_bytes()
            motion_vectors(p, 0.0, 0.5)
        decode_only(paths[:1])

    rows, parts, facts = [], {}, {}
    for key, paths in videos.items():
        log(f"{key}: {len(paths)} video(s)")
        n_frames, dec = timed(lambda p=paths: decode_only(p), args.repeat)
        source, ing = timed(lambda p=paths: ingest_shard(items_of(p)), args.repeat)
        video_s = float(usable(source)["duration"].sum())
        (scenes, frames, samples), scan = timed(
            lambda s=source: scan_shard(usable(s), cfg["scan"]), args.repeat
        )
        records, post = analyse(source, scenes, frames, samples, cfg, reader)
        clips = scenes_to_clips(scenes, source, cfg["split"])
        mvs, mv = timed(lambda c=clips: mv_pass(c), args.repeat)
        split = post["split"]
        whole = ing + scan + Cost(
            sum(c.cpu for c in post.values()), sum(c.wall for c in post.values())
        )
        stages = [
            ("decode only", dec),
            ("ingest (probe + hash)", ing),
            ("ingest + scan", ing + scan),
            ("ingest + split (scan + clips)", ing + scan + split),
            ("whole CPU analysis", whole),
            ("motion vectors, all clips (alone)", mv),
        ]
        for name, cost in stages:
            rows.append((key, name, video_s, cost, dec))
        parts[key] = (post, whole)
        n_ok = len(records)
        facts[key] = {
            "videos": len(paths),
            "frames": n_frames,
            "seconds": video_s,
            "scenes": int(scenes["scene"].notna().sum()),
            "clips": n_ok,
            "ocr_frames": 3 * n_ok,
            "ocr_fail": int((records["ocr"] == "fail").sum()) if n_ok else 0,
            "mv_frames": sum(m["n_frames"] for m in mvs),
        }

    breakdown = None
    if args.breakdown != "none" and videos:
        key = max(videos, key=lambda k: math.prod(map(int, k.split("x"))))
        key = key if args.breakdown == "largest" else args.breakdown
        if key in videos:
            total: dict[str, float] = {}
            counts: dict[str, int] = {}
            tech: dict[str, float] = {}
            for p in videos[key]:
                fps = probe(p)["fps"]
                t, c = scan_breakdown(p, fps, cfg["scan"])
                for k, v in t.items():
                    total[k] = total.get(k, 0.0) + v
                for k, v in c.items():
                    counts[k] = counts.get(k, 0) + v
                for k, v in technical_split(p, fps, cfg["scan"]).items():
                    tech[k] = tech.get(k, 0.0) + v
            breakdown = (key, total, counts, tech)

    report = render(rows, parts, facts, breakdown, cfg, load, first, args, time.perf_counter() - t_start)
    print(report)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(report)
        log(f"wrote {args.out}")
    if tmp is not None:
        tmp.cleanup()
    return 0


def render(rows, parts, facts, breakdown, cfg, load, first, args, elapsed) -> str:
    out = [
        "# clipsift CPU throughput",
        "",
        f"- date: {dt.date.today().isoformat()}",
        f"- machine: {machine()}",
        f"- software: {versions()}",
        "- one process, one thread: PyAV decoding thread_count 1, cv2.setNumThreads(1), ONNX "
        "Runtime 1 intra-op + 1 inter-op thread, OMP/BLAS threads 1",
        f"- scan config: schema defaults (detector {cfg['scan']['detector']}, analysis width "
        f"{cfg['scan']['analysis_width']}, flow {cfg['scan']['flow']} {cfg['scan']['flow_preset']} "
        f"at {cfg['scan']['sample_fps']} samples/s, luma every {cfg['scan']['luma_stride']} frame); "
        f"split min {cfg['split']['min_seconds']} s / max {cfg['split']['max_seconds']} s",
        f"- OCR: OcrReader defaults, first/middle/last frame of each clip at max side {OCR_MAX_SIDE}; "
        f"one-off model load {fmt(load.cpu)} CPU-s and first call {fmt(first.cpu)} CPU-s, "
        "outside every row",
        f"- runs per row: {args.repeat} (least CPU counts); bench wall time {elapsed:.0f} s",
        "",
        "Videos (libx264 veryfast, crf 18, 30 fps, scenes with pans and hard cuts, one burned-in "
        "subtitle):",
        "",
        "| resolution | videos | frames | video-s | scenes | clips | OCR frames (fail) | MV frames |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for key, f in facts.items():
        out.append(
            f"| {key} | {f['videos']} | {f['frames']} | {fmt(f['seconds'], 1)} | {f['scenes']} | "
            f"{f['clips']} | {f['ocr_frames']} ({f['ocr_fail']} clips fail) | {f['mv_frames']} |"
        )
    out += [
        "",
        "## Throughput",
        "",
        "| resolution | stage | video-s | CPU-s | wall-s | video-s per CPU-s | vs decode only |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for key, name, video_s, cost, dec in rows:
        speed = video_s / max(cost.cpu, 1e-9)
        ratio = dec.cpu / max(cost.cpu, 1e-9)
        out.append(
            f"| {key} | {name} | {fmt(video_s, 1)} | {fmt(cost.cpu)} | {fmt(cost.wall)} | "
            f"{fmt(speed)} | {fmt(ratio)} |"
        )
    out += [
        "",
        "\"vs decode only\" is (decode-only CPU-s) / (this row's CPU-s): the fraction of decode-only "
        "speed this stage reaches. Each row is cumulative except ingest alone and motion vectors.",
        "",
        "## Targets",
        "",
    ]
    by = {(k, n): (c, d) for k, n, _, c, d in rows}
    for key in facts:
        split_c, dec = by[(key, "ingest + split (scan + clips)")]
        whole_c, _ = by[(key, "whole CPU analysis")]
        r_split, r_whole = dec.cpu / split_c.cpu, dec.cpu / whole_c.cpu
        verdict = "met" if r_whole >= 0.5 else "NOT met"
        out.append(
            f"- {key}: ingest + split at {r_split:.2f} of decode-only speed; whole CPU analysis at "
            f"{r_whole:.2f} (target >= 0.5: {verdict})"
        )
    out += [
        "",
        "## Where the whole CPU analysis goes",
        "",
        "| resolution | part | CPU-s | share of whole |",
        "| --- | --- | ---: | ---: |",
    ]
    for key in facts:
        post, whole = parts[key]
        ing, _ = by[(key, "ingest (probe + hash)")]
        scan_c, _ = by[(key, "ingest + scan")]
        items = [
            ("ingest", ing.cpu),
            ("scan", scan_c.cpu - ing.cpu),
            ("split to clips", post["split"].cpu),
            ("flash per clip", post["flash"].cpu),
            ("OCR frame reading (read_frames_at)", post["ocr_read"].cpu),
            ("OCR inference (ocr_record)", post["ocr"].cpu),
            ("motion + technical aggregation", post["aggregate"].cpu),
        ]
        for name, cpu in items:
            out.append(f"| {key} | {name} | {fmt(cpu)} | {cpu / whole.cpu:.1%} |")
    if breakdown:
        key, t, counts, tech = breakdown
        total = sum(t.values())
        names = {
            "decode": "decode (iter_frames)",
            "analysis": f"small frames (Frame.analysis, {cfg['scan']['analysis_width']} px gray + BGR)",
            "detector": f"scene detector ({cfg['scan']['detector']}) push",
            "luma": "mean luma",
            "flow": f"optical flow ({cfg['scan']['flow']} {cfg['scan']['flow_preset']})",
            "technical": "technical (full-size luma: frame_technical + border_profile + find_borders)",
            "finish": "detector finish + merge_flash_cuts",
            "loop": "loop and bookkeeping",
        }
        per = {"flow": counts["pairs"], "technical": counts["samples"]}
        out += [
            "",
            f"## Scan breakdown, {key} ({counts['frames']} frames, {counts['samples']} samples, "
            f"{counts['pairs']} flow pairs)",
            "",
            "| component | CPU-s | share | ms per call | calls |",
            "| --- | ---: | ---: | ---: | ---: |",
        ]
        for k, v in t.items():
            n = per.get(k, counts["frames"] if k not in ("finish", "loop") else 0)
            per_call = fmt(1000 * v / n, 3) if n else ""
            out.append(f"| {names[k]} | {fmt(v)} | {v / total:.1%} | {per_call} | {n or ''} |")
        out.append(f"| total | {fmt(total)} | 100% | | |")
        out += [
            "",
            "Technical sample, split (same sample frames, timed separately):",
            "",
            "| part | CPU-s | ms per sample |",
            "| --- | ---: | ---: |",
        ]
        for k, v in tech.items():
            out.append(f"| {k} | {fmt(v, 3)} | {fmt(1000 * v / max(counts['samples'], 1), 3)} |")
    return "\n".join(out) + "\n"


if __name__ == "__main__":
    sys.exit(main())
