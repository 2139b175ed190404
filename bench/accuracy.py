"""Accuracy of the CPU analysis on a labelled set of generated videos, per scene-detector setting.

Renders (``clipsift.sample.render_video``) videos whose cuts, fades, dissolves, shot lengths,
text and motion are known, in MP4, MKV, WebM and MPEG-TS: dissolves of 0.3-2 s and fades through
black and white between moving shots at 24, 30 and 60 fps; shots of 5-10 frames between hard
cuts; a variable-frame-rate video with a cut at a rate switch and dropped frames; busy textless
textures (``clipsift.textures``); text from one-word signs to subtitles; still flat shots with
sensor noise; pans and rotations of known speed at 24, 30 and 60 fps; broadcast-style
interlaced fields in MPEG-TS (pans, a dissolve, a fade), which every reader deinterlaces; an
edit with a hard cut to a shot that fades out 2.5 s later, and a fade in 2.5 s before a cut; an
anamorphic video (SAR 64:45, PAL DVD's 16:9) with a hard cut and a dissolve; fast pans over
fine texture with hard cuts between them; dissolves between pans over fine texture; and
dissolves and a dip to black between shots that a subject crosses on its own; whip pans of 8, 4
and 2 frames between shots (the cut hidden in the blur). Each video has
one container; ``--containers all`` renders every video in MP4, MKV, WebM and MPEG-TS (WebM
less the interlaced and the anamorphic video, see :func:`in_every_container`).

For each detector setting it runs the scan and the split with the schema's defaults and prints:
- cut recall: rendered hard cuts with a scene boundary within one frame;
- dirty clips: kept clips that hold a fade, dissolve or whip frame or span a cut (should be 0);
- timing error: the largest distance (frames) between a true shot long enough to keep and the
  kept clip that overlaps it most, at either end (the split's windows of ``max_seconds`` are not
  counted: each shot's first and last clip are compared with its ends);
- CPU: the scan's CPU time over decoding alone, both measured in this run on the same videos.

With the default setting it also prints the OCR verdicts (textless clips rejected, clips with
text flagged, against ``select.ocr.max_text_area`` and ``max_text_frames``) and the motion
scores against the rendered speeds: relative error per fps (and of the interlaced pans), the
spread of one motion over 24/30/60 fps, and the still flat shots against the static bound
(``select.thresholds``' minimum on the motion column); and the kept clips exported as the
pipeline exports them: per video, clips whose file holds another number of frames than the
clip, the worst frame time against the source's, and the worst display aspect. Two tables of
their own follow: wipes (:func:`wipes_corpus`), which the finder does not model, and two of the
set's videos inside black bars (:func:`bars_corpus`: letterbox, pillarbox, windowbox).

    python bench/accuracy.py --out bench/results/accuracy.md
    python bench/accuracy.py --containers all --settings "adaptive + transitions (default)"
"""

# ruff: noqa: E402  (thread variables are set before numpy and OpenCV are imported)
from __future__ import annotations

import os

for _v in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_v, "1")

import argparse
import copy
import dataclasses
import shutil
import sys
import time
from contextlib import redirect_stderr
from io import StringIO
from pathlib import Path

import cv2
import numpy as np
import pandas as pd

from clipsift.config import SCHEMA
from clipsift.export_clips import export_shard_clips
from clipsift.filters.ocr import ocr_from_scan
from clipsift.ingest import ingest_shard
from clipsift.io.decode import iter_frames
from clipsift.sample import Segment, render_video, score_scenes
from clipsift.scorers import ShardInputs, run_scorer
from clipsift.split.clips import scenes_to_clips
from clipsift.split.scan import scan_shard
from clipsift.textures import KINDS

cv2.setNumThreads(1)


def default_config() -> dict:
    from snakemake.utils import validate

    cfg = {"sources": [{"name": "bench", "type": "folder", "path": "."}]}
    with redirect_stderr(StringIO()):
        validate(cfg, str(SCHEMA))
    return cfg


# ----------------------------------------------------------------------------- the labelled set


CONTAINERS = ("mp4", "mkv", "webm", "ts")


def corpus(w: int, containers: str = "mixed") -> list[dict]:
    """Videos: name, segments, fps, optional frame times and SAR; pans are in px per second at
    the frame width ``w`` (scaled from 640). ``containers``: "mixed" gives each video one
    container (the set as recorded), "all" gives every video in MP4, MKV, WebM and MPEG-TS
    where the container can hold it (:func:`in_every_container`)."""
    k = w / 640
    out = []
    exts = list(CONTAINERS)
    for i, fps in enumerate((24, 30, 60)):
        s = lambda sec, fps=fps: max(1, round(sec * fps))  # noqa: E731
        v = lambda px_s, fps=fps: round(px_s * k / fps * 8) / 8  # noqa: E731
        segs = [
            Segment(s(3), seed=100 + i, pan=(v(60), 0)),
            Segment(s(3.3), seed=110 + i, pan=(0, v(30)), dissolve=s(0.3)),
            Segment(s(4), seed=120 + i, pan=(v(-45), 0), dissolve=s(1.0)),
            Segment(s(3), seed=130 + i, fade_out=s(0.5)),
            Segment(s(3.5), seed=140 + i, fade_in=s(0.5), pan=(v(90), v(30))),
            Segment(s(3), seed=150 + i, dissolve=s(0.5), rotate=10 / fps),
            Segment(s(3), seed=160 + i, fade_out=s(0.6), fade_color="white"),
            Segment(s(5), seed=170 + i, fade_in=s(0.4), fade_color="white"),
            Segment(s(5), seed=180 + i, dissolve=s(2.0)),
        ]
        out.append({"name": f"transitions_{fps}.{exts[i]}", "segments": segs, "fps": fps})
    fast = [Segment(75, seed=200)] + [Segment(n, seed=201 + j) for j, n in enumerate((5, 7, 10))]
    fast += [Segment(75, seed=210, pan=(1.0 * k, 0)), Segment(6, seed=211), Segment(75, seed=212)]
    out.append({"name": "fast_edits.ts", "segments": fast, "fps": 25})
    # variable frame rate: 30 fps, a cut where it drops to 10 fps, then 30 fps with dropped frames
    rng = np.random.default_rng(5)
    t = [i / 30 for i in range(90)] + [3 + i / 10 for i in range(30)]
    kept = sorted(rng.choice(np.arange(1, 120), size=90, replace=False))  # 30 of 120 dropped
    t += [6 + i / 30 for i in kept]
    vfr = [Segment(90, seed=220), Segment(30, seed=221, pan=(3 * k, 0)), Segment(90, seed=222)]
    out.append({"name": "vfr.mkv", "segments": vfr, "fps": 30, "times": t})
    textures = [Segment(75, seed=230 + j, texture=kind, noise=2.0, pan=(0.5 * k, 0))
                for j, kind in enumerate(KINDS)]  # fmt: skip
    out.append({"name": "textures.mp4", "segments": textures, "fps": 25})
    texts = [
        Segment(75, seed=240, text="OPEN", text_scale=1.6),
        Segment(75, seed=241, text="EXIT", text_scale=0.8, pan=(1.0 * k, 0)),
        Segment(75, seed=242, text="Where were you last night?"),
        Segment(75, seed=243, text="Breaking news: markets close higher", text_scale=0.6),
        Segment(75, seed=244, text="SALE 50%", texture="fabric"),
        Segment(75, seed=245, text="Chapter 3", texture="foliage", text_scale=1.2),
    ]
    out.append({"name": "text.webm", "segments": texts, "fps": 25})
    still = [Segment(75, seed=250 + j, texture="flat", noise=sigma) for j, sigma in
             enumerate((1.0, 2.5, 4.0))] + [Segment(75, seed=254, noise=3.0)]  # fmt: skip
    out.append({"name": "still.ts", "segments": still, "fps": 25})
    # broadcast: interlaced fields in MPEG-TS (every reader deinterlaces them), pans, a
    # dissolve and a fade through black
    broadcast = [
        Segment(75, seed=270, pan=(4.0 * k, 0)),
        Segment(75, seed=271, pan=(0, -3.0 * k), dissolve=12),
        Segment(60, seed=272, fade_out=12),
        Segment(75, seed=273, fade_in=12, pan=(-2.0 * k, 1.0 * k)),
    ]
    out.append({"name": "broadcast.ts", "segments": broadcast, "fps": 25, "interlaced": True})
    # an edit: a hard cut to a shot that fades out 2.5 s later, then a fade in to a shot that
    # is cut away from 2.5 s later (a window from before the first cut to the fade's dark end
    # once read as one blend and dropped the whole shot)
    edits = [
        Segment(75, seed=62, pan=(0, 0.6 * k)),
        Segment(75, seed=63, pan=(0.4 * k, 0), fade_out=12),
        Segment(75, seed=64, fade_in=12, pan=(0, 0.4 * k)),
        Segment(75, seed=65, pan=(-0.5 * k, 0)),
    ]
    out.append({"name": "edits.mkv", "segments": edits, "fps": 30})
    for i, fps in enumerate((24, 30, 60)):
        v = lambda px_s, fps=fps: px_s * k / fps  # noqa: E731
        segs = [
            Segment(round(3 * fps), seed=260, pan=(v(120), 0)),
            Segment(round(3 * fps), seed=261, pan=(v(-240), v(120))),
            Segment(round(3 * fps), seed=262, rotate=30 / fps),
            Segment(round(3 * fps), seed=263, pan=(0, v(40))),
        ]
        out.append({"name": f"motion_{fps}.{exts[i]}", "segments": segs, "fps": fps})
    # anamorphic: PAL DVD's 16:9 pixels (SAR 64:45), stored 0.70 times as wide as shown; a pan,
    # a hard cut, a 0.5-s dissolve
    anamorphic = [
        Segment(75, seed=280, pan=(2.0 * k, 0)),
        Segment(75, seed=281, pan=(0, 1.0 * k)),
        Segment(75, seed=282, dissolve=12, pan=(-1.5 * k, 0)),
    ]
    out.append({"name": "anamorphic.ts", "segments": anamorphic, "fps": 25, "sar": (64, 45)})
    # fast pans (180-300 px/s at 640 px) over fine texture, cut to one another: every frame's
    # content score is high, which hid cuts from PySceneDetect's ratio (scan.adaptive)
    pans = [(9.0, 0), (0, -7.5), (-10.0, 3.0), (6.0, 6.0)]
    fast_pans = [Segment(75, seed=290 + j, texture=kind, noise=2.0, pan=(dx * k, dy * k))
                 for j, (kind, (dx, dy)) in enumerate(zip(("fractal", "foliage", "stone",
                                                          "fabric"), pans, strict=True))]  # fmt: skip
    out.append({"name": "fast_pans.mkv", "segments": fast_pans, "fps": 30})
    # dissolves of 1 and 2 s between shots panning 70-90 px/s over fine texture: a finder
    # frame moved by a fraction of a pixel is blurred by the interpolation, the next is not, and
    # such dissolves stayed inside clips (a tryout: 18 of 18) until the fits smoothed the frames
    textured = [
        Segment(75, seed=300, texture="foliage", pan=(3.6 * k, 1.2 * k)),
        Segment(100, seed=301, texture="stone", pan=(-2.8 * k, 2.0 * k), dissolve=25),
        Segment(125, seed=302, texture="cellular", pan=(3.0 * k, -1.5 * k), dissolve=50),
        Segment(100, seed=303, texture="glass", pan=(-3.2 * k, 0), dissolve=25),
    ]
    out.append({"name": "textured_dissolves.mp4", "segments": textured, "fps": 25})
    # dissolves of 1 and 0.5 s between pans of 240-300 px/s (8-10 px a frame at 640) over
    # foliage and stone, and the same edit over a weave: each step of such a pan is a third of
    # the change between the shots on the finder's 64-px frames, and one clip held both shots
    # and the dissolve (a sweep at 320x180: 61 of 192 videos) until the finder read such pans
    # as a shot's own motion. The weave's threads, finer than the finder's pixels, leave a
    # moire that moves unlike the cloth (docs/clips.md)
    for name, textures in (
        ("fast_pan_dissolves.mkv", ("foliage", "stone", "foliage", "stone")),
        ("weave_pan_dissolves.mp4", ("fabric",) * 4),
    ):
        t1, t2, t3, t4 = textures
        fast_dissolves = [
            Segment(75, seed=360, texture=t1, pan=(10.0 * k, 0)),
            Segment(105, seed=361, texture=t2, pan=(-7.0 * k, 5.0 * k), dissolve=30),
            Segment(90, seed=362, texture=t3, pan=(0, -8.0 * k), dissolve=15),
            Segment(75, seed=363, texture=t4, pan=(6.0 * k, 6.0 * k)),
        ]
        out.append({"name": name, "segments": fast_dissolves, "fps": 30})
    # a subject (a disc 0.2-0.4 of the frame high) crossing each shot at 220-280 px/s over a
    # slow pan, with dissolves of 1 and 2 s and a dip to black: the subject is where neither
    # moved shot is, and the blend fit judged on every pixel missed such dissolves
    subjects = [
        Segment(75, seed=310, pan=(1.2 * k, 0.4 * k), subject=(0.2, 9.0 * k)),
        Segment(105, seed=311, pan=(-1.0 * k, 0.6 * k), subject=(0.15, 7.2 * k), dissolve=30),
        Segment(135, seed=312, pan=(0.8 * k, -0.5 * k), subject=(0.1, 9.0 * k), dissolve=60),
        Segment(90, seed=313, pan=(0, 0.8 * k), subject=(0.2, 7.5 * k), fade_out=15),
        Segment(90, seed=314, subject=(0.2, 9.0 * k), fade_in=15),
    ]
    out.append({"name": "subjects.mkv", "segments": subjects, "fps": 30})
    # whip pans: a shot swings away, blurred, another swings in (the cut hides in the blur),
    # over 8, 4 and 2 frames; every whip frame changed as much as the cut, and 5 of 7 such
    # edits in a tryout were no cut
    whips = [
        Segment(75, seed=320, pan=(1.0 * k, 0)),
        Segment(90, seed=321, pan=(1.0 * k, 0.3 * k), whip=8),
        Segment(80, seed=322, pan=(-0.8 * k, 0), texture="foliage", whip=4),
        Segment(75, seed=323, pan=(0, 0.6 * k), whip=2),
    ]
    out.append({"name": "whips.mp4", "segments": whips, "fps": 30})
    # animation: drawings held on threes and twos, and pictures held 2 and 3 frames in turn (24
    # fps carried at 60, 3:2 pulldown), panning; hard cuts, a dissolve and fades. PySceneDetect's
    # ratio cut a shot on threes at every drawing (scenes of 3 frames, too short to keep)
    animation = [
        Segment(72, seed=330, pan=(3.0 * k, 0), hold=(3,)),
        Segment(72, seed=331, pan=(0, 2.0 * k), hold=(3,)),
        Segment(72, seed=332, pan=(-2.0 * k, 0), hold=(2,), dissolve=12),
        Segment(72, seed=333, pan=(2.0 * k, 1.0 * k), hold=(2, 3)),
        Segment(72, seed=334, hold=(2, 3), fade_in=12, fade_out=12),
    ]
    out.append({"name": "animation.mkv", "segments": animation, "fps": 24})
    # animation panning fast (8 px a frame, a drawing's step of 16-24 px) on twos and threes,
    # a hard cut and dissolves of 0.5 and 0.8 s: each drawing stepped more than a quarter of a
    # dissolve's change, the shots' motion read as still, and clips spanned both dissolves
    held_pans = [
        Segment(60, seed=350, pan=(4.0 * k, 0), hold=(2,)),
        Segment(60, seed=351, pan=(0, -4.0 * k), hold=(2,), dissolve=12),
        Segment(60, seed=352, pan=(-4.0 * k, 0), hold=(3,)),
        Segment(60, seed=353, pan=(4.0 * k, 4.0 * k), hold=(3,), dissolve=20),
    ]
    out.append({"name": "held_pans.mkv", "segments": held_pans, "fps": 24})
    # hard cuts between fast pans on twos over foliage and over a weave (12 and 16 px a frame, a
    # drawing's step of 24-32 px): aligned, each change of drawing left 9-12 levels and the cuts
    # stood 3.2-4.0 times above it, so one clip held two shots, until both frames were smoothed
    for name, texture, px in (
        ("held_cuts.mp4", "foliage", 12.0),
        ("weave_cuts.mkv", "fabric", 16.0),
    ):
        held_cuts = [
            Segment(40, seed=900, pan=(px * k, 0), hold=(2,), texture=texture),
            Segment(40, seed=901, pan=(-px * k, px / 2 * k), hold=(2,), texture=texture),
            Segment(40, seed=902, pan=(0, -px * k), hold=(2,), texture=texture),
        ]
        out.append({"name": name, "segments": held_cuts, "fps": 15})
    # soft cuts: cuts made one frame of both shots (an editor's one-frame dissolve, a film
    # blended to another frame rate), over fast pans of foliage and of shapes; no window of the
    # finder held such a frame, and over foliage one clip held three shots
    soft_cuts = [
        Segment(72, seed=340, pan=(3.6 * k, 1.2 * k), texture="foliage", noise=1.5),
        Segment(72, seed=341, pan=(-2.4 * k, 1.8 * k), texture="foliage", noise=1.5, dissolve=1),
        Segment(72, seed=342, pan=(0, 2.4 * k), noise=1.5, dissolve=1),
        Segment(72, seed=343, pan=(3.0 * k, 0), noise=1.5, dissolve=1),
    ]
    out.append({"name": "soft_cuts.mp4", "segments": soft_cuts, "fps": 24})
    return out if containers == "mixed" else in_every_container(out)


def in_every_container(videos: list[dict]) -> list[dict]:
    """Each video in every container of :data:`CONTAINERS` that can hold it as rendered: WebM
    (VP9) has no interlaced coding, and PyAV cannot write the display size that gives a WebM
    track its pixel aspect (Matroska's DisplayWidth comes from the stream's aspect, which PyAV
    leaves unset; H.264 carries it in its bitstream), so those stay out of WebM."""
    out = []
    for video in videos:
        stem = Path(video["name"]).stem
        for ext in CONTAINERS:
            if ext == "webm" and (video.get("interlaced") or video.get("sar")):
                continue
            out.append(video | {"name": f"{stem}.{ext}"})
    return out


def video_id(name: str) -> str:
    """The bench's id of a video file: its name, the dot made an underscore (``still_ts``), so
    one video in several containers has an id per container."""
    return name.replace(".", "_")


def wipes_corpus(w: int) -> list[dict]:
    """Wipes between moving shots at 24, 30 and 60 fps (outside issue 12's set, reported on
    their own): an edge moving right (0.5 s) and down (1 s), a short one (0.3 s), and an iris
    (a growing circle, 1 s and 0.5 s)."""
    k = w / 640
    out = []
    for i, fps in enumerate((24, 30, 60)):
        s = lambda sec, fps=fps: max(1, round(sec * fps))  # noqa: E731
        v = lambda px_s, fps=fps: round(px_s * k / fps * 8) / 8  # noqa: E731
        segs = [  # shots that stay longer than split.min_seconds (2 s) without their wipes
            Segment(s(3), seed=400 + i, pan=(v(60), 0)),
            Segment(s(3), seed=410 + i, pan=(0, v(30)), wipe=s(0.5)),
            Segment(s(3.5), seed=420 + i, pan=(v(-45), 0), wipe=s(1.0), wipe_shape="down"),
            Segment(s(3), seed=430 + i, pan=(v(30), v(15)), wipe=s(0.3)),
            Segment(s(3.5), seed=440 + i, wipe=s(1.0), wipe_shape="iris"),
            Segment(s(3), seed=450 + i, pan=(0, v(20)), wipe=s(0.5), wipe_shape="iris"),
        ]
        out.append(
            {"name": f"wipes_{fps}.{('mp4', 'mkv', 'webm')[i]}", "segments": segs, "fps": fps}
        )
    return out


def render(folder: Path, size: tuple[int, int], videos) -> dict[str, dict]:
    folder.mkdir(parents=True, exist_ok=True)
    truth = {}
    for video in videos:
        path = folder / video["name"]
        truth[video["name"]] = render_video(
            path,
            video["segments"],
            fps=video["fps"],
            size=size,
            times=video.get("times"),
            interlaced=video.get("interlaced", False),
            sar=video.get("sar"),
        ) | {"name": video["name"], "stem": Path(video["name"]).stem}
    return truth


# ----------------------------------------------------------------------------- measuring


def ingested(paths: list[str]) -> pd.DataFrame:
    """``source.parquet`` of ``paths``, video ids from their names."""
    items = [{"source": "bench", "video_id": video_id(Path(p).name), "uri": p, "path": p,
              "caption": None} for p in paths]  # fmt: skip
    return ingest_shard(pd.DataFrame(items))


def cpu(fn):
    t0 = time.process_time()
    out = fn()
    return out, time.process_time() - t0


def kept_clips(clips: pd.DataFrame) -> pd.DataFrame:
    return clips[clips["split_reason"].isna() & clips["error"].isna()]


def boundary_scores(truth: dict, clips: pd.DataFrame, min_frames: int) -> dict:
    """Dirty clips, the worst shot end and missed shots (``score_scenes``), and cut recall."""
    spans = list(zip(clips["start_frame"].astype(int), clips["end_frame"].astype(int), strict=True))
    # a scene's windows (the split cuts long shots into windows of max_seconds) are one span
    scenes = [
        (int(g["start_frame"].min()), int(g["end_frame"].max())) for _, g in clips.groupby("scene")
    ]
    whole = score_scenes(truth, scenes, min_frames)
    edges = {a for a, _ in scenes} | {b for _, b in scenes}
    found = sum(1 for c in truth["cuts"] if any(abs(c - x) <= 1 for x in edges))
    return {"dirty": score_scenes(truth, spans)["dirty"], "error": whole["boundary_error"],
            "missed": whole["missed"], "cuts": len(truth["cuts"]), "cuts_found": found}  # fmt: skip


SETTINGS = {
    "adaptive + transitions (default)": {},
    "adaptive, cuts only": {"transitions": {"enabled": False}},
    "content + transitions": {"detector": "content"},
    "content, cuts only": {"detector": "content", "transitions": {"enabled": False}},
    "transnetv2": {"detector": "transnetv2", "transitions": {"enabled": False}},
    "transnetv2 + transitions": {"detector": "transnetv2"},
}


def with_setting(cfg: dict, change: dict) -> dict:
    cfg = copy.deepcopy(cfg)
    for key, value in change.items():
        if isinstance(value, dict):
            cfg["scan"][key] |= value
        else:
            cfg["scan"][key] = value
    return cfg


# black bars at 640x360 (scaled with the size): a 2.67:1 picture letterboxed in 16:9 (a third
# of the frame bars; 2.39:1 takes a quarter), a 4:3 picture pillarboxed, and both
BARS = {"letterbox": (60, 0), "pillarbox": (0, 80), "windowbox": (40, 60)}


def bars_corpus(w: int) -> list[dict]:
    """Two videos of the set, ``transitions_30`` (fades, dissolves of 0.3-2 s) and ``subjects``
    (dissolves under a subject crossing the shot), inside each of :data:`BARS`: the bars fit any
    blend and any motion exactly, and the finder compares the picture inside them
    (``PictureBox``). Reported on their own, as the wipes are."""
    k = w / 640
    plans = {v["name"]: v for v in corpus(w)}
    out = []
    for label, (bar_v, bar_h) in BARS.items():
        box = (round(bar_v * k), round(bar_h * k))
        for name in ("transitions_30.mkv", "subjects.mkv"):
            v = plans[name]
            segs = [dataclasses.replace(seg, letterbox=box) for seg in v["segments"]]
            out.append({"name": f"{label}_{name}", "segments": segs, "fps": v["fps"]})
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--work", default="/tmp/clipsift-accuracy", help="where the videos go")
    p.add_argument("--size", default="640x360")
    p.add_argument("--out", help="also write the tables (markdown) here")
    p.add_argument("--settings", nargs="*", help="names of SETTINGS to run (default: all)")
    p.add_argument("--containers", choices=("mixed", "all"), default="mixed",
                   help="mixed: one container per video (as recorded); all: every video in "
                   "MP4, MKV, WebM and MPEG-TS (4 times the work)")  # fmt: skip
    args = p.parse_args(argv)
    size = tuple(int(v) for v in args.size.split("x"))
    work = Path(args.work)
    print(f"rendering the labelled set at {args.size} into {work} ...", file=sys.stderr)
    truth = render(work / "videos", size, corpus(size[0], args.containers))
    paths = [str(work / "videos" / name) for name in truth]
    source = ingested(paths)
    by_id = {video_id(t["name"]): t for t in truth.values()}
    base = default_config()
    _, decode_cpu = cpu(lambda: [sum(1 for _ in iter_frames(p)) for p in paths])
    lines = [
        f"# Accuracy of the CPU analysis ({args.size}, {len(paths)} videos, "
        f"{sum(t['n_frames'] for t in truth.values())} frames)",
        "",
        "| detector setting | cut recall | dirty clips | timing error (frames) | missed shots"
        " | scan CPU / decode CPU |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    default_out, default_videos = None, {}
    for name, change in SETTINGS.items():
        if args.settings and name not in args.settings:
            continue
        cfg = with_setting(base, change)
        ocr = cfg["filters"]["ocr"]  # in every setting: the CPU ratios compare like with like
        print(f"scanning: {name} ...", file=sys.stderr)
        (scenes, frames, samples, texts), scan_cpu = cpu(
            lambda cfg=cfg, ocr=ocr: scan_shard(source, cfg["scan"], ocr)
        )
        clips = scenes_to_clips(scenes, source, cfg["split"], frames)
        total = {"dirty": 0, "error": 0, "missed": 0, "cuts": 0, "cuts_found": 0}
        per_video = {}
        for vid, group in kept_clips(clips).groupby("video_id"):
            t = by_id[vid]
            sc = boundary_scores(t, group, round(cfg["split"]["min_seconds"] * t["fps"]) + 2)
            per_video[t["name"]] = (t["fps"], sc)
            for key in total:
                total[key] = max(total[key], sc[key]) if key == "error" else total[key] + sc[key]
        lines.append(
            f"| {name} | {total['cuts_found']}/{total['cuts']} | {total['dirty']} | "
            f"{total['error']} | {total['missed']} | {scan_cpu / decode_cpu:.2f} |"
        )
        if not change:
            default_out = (cfg, clips, samples, texts, scan_cpu)
            default_videos = per_video
    if default_out:
        lines += ["", *video_table(default_videos), "", *ocr_and_motion(default_out, source, by_id)]
        lines += ["", *export_table(default_out[1], source, by_id, work)]
        lines += ["", *wipes_table(work, size, default_out[0])]
        lines += ["", *bars_table(work, size, default_out[0])]
    text = "\n".join(lines) + "\n"
    print(text)
    if args.out:
        Path(args.out).write_text(text)
    return 0


def scanned_set(folder: Path, size: tuple[int, int], videos, cfg: dict):
    """Render ``videos`` into ``folder``, scan and split them with ``cfg`` (no OCR), and yield
    per video its name, truth, kept clips and :func:`boundary_scores`."""
    print(f"scanning: {folder.name} ...", file=sys.stderr)
    truth = render(folder, size, videos)
    source = ingested([str(folder / n) for n in truth])
    scenes, frames, *_ = scan_shard(source, cfg["scan"], None)
    clips = kept_clips(scenes_to_clips(scenes, source, cfg["split"], frames))
    for name, t in truth.items():
        group = clips[clips["video_id"] == video_id(name)]
        yield (
            name,
            t,
            group,
            boundary_scores(t, group, round(cfg["split"]["min_seconds"] * t["fps"]) + 2),
        )


def wipes_table(work: Path, size: tuple[int, int], cfg: dict) -> list[str]:
    """The default setting on :func:`wipes_corpus`: per video, and per wipe its frames and the
    frames of it that kept clips hold. The finder models no wipe (docs/clips.md says why): this
    table measures what that leaves in the clips."""
    lines = [
        "| wipes (default setting) | fps | dirty clips | timing error (frames) | missed shots "
        "| wipe frames in kept clips |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for name, t, group, sc in scanned_set(work / "wipes", size, wipes_corpus(size[0]), cfg):
        spans = list(
            zip(group["start_frame"].astype(int), group["end_frame"].astype(int), strict=True)
        )
        held = []
        for (first, last), seg in zip(
            t["wipes"], [s for s in t["segments"] if s["wipe"]], strict=True
        ):
            n = sum(1 for f in range(first, last + 1) if any(a <= f < b for a, b in spans))
            held.append(f"{seg['wipe_shape']} {last - first + 1}: {n}")
        lines.append(f"| {name} | {t['fps']:g} | {sc['dirty']} | {sc['error']} | {sc['missed']} "
                     f"| {', '.join(held)} |")  # fmt: skip
    return lines


def bars_table(work: Path, size: tuple[int, int], cfg: dict) -> list[str]:
    """The default setting on :func:`bars_corpus`: per video, as the main table."""
    lines = [
        "| black bars (default setting) | fps | cuts found | dirty clips | timing error (frames) "
        "| missed shots |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for name, t, _, sc in scanned_set(work / "bars", size, bars_corpus(size[0]), cfg):
        lines.append(f"| {name} | {t['fps']:g} | {sc['cuts_found']}/{sc['cuts']} | {sc['dirty']} "
                     f"| {sc['error']} | {sc['missed']} |")  # fmt: skip
    return lines


def export_table(clips: pd.DataFrame, source: pd.DataFrame, by_id: dict, work: Path) -> list[str]:
    """The default setting's kept clips written as the pipeline's export writes them
    (:func:`clipsift.export_clips.export_shard_clips`, its default settings): per video, the
    clips whose file holds another number of frames than the clip, the largest distance (s)
    between a file's frame times and the source's (from the clip's first frame), and the
    largest error of a file's display aspect (width over height as shown, after its pixel
    aspect) against the rendered picture's."""
    print("exporting the kept clips ...", file=sys.stderr)
    kept = kept_clips(clips)
    out = work / "export"
    shutil.rmtree(out, ignore_errors=True)
    index = export_shard_clips(
        kept, source, pd.DataFrame({"clip_id": kept["clip_id"], "keep": True}), out,
        final_dir=out, dataset_dir=out, cfg={},
    )  # fmt: skip
    times = {p: [f.time for f in iter_frames(p)] for p in source["path"]}
    rows: dict[str, dict] = {}
    for clip, exported in zip(
        kept.sort_values("clip_id").itertuples(), index.itertuples(), strict=True
    ):
        t = by_id[clip.video_id]
        row = rows.setdefault(t["name"], {"clips": 0, "frames": 0, "time": 0.0, "aspect": 0.0,
                                          "errors": 0})  # fmt: skip
        row["clips"] += 1
        if exported.error is not None:
            row["errors"] += 1
            continue
        got = list(iter_frames(out / exported.file))
        src = times[clip.source_path]
        want = [x - src[clip.start_frame] for x in src[clip.start_frame : clip.end_frame]]
        row["frames"] += len(got) != len(want)
        if len(got) == len(want):
            gap = max(abs(f.time - x) for f, x in zip(got, want, strict=True))
            row["time"] = max(row["time"], gap)
        shown = got[0].display_size()
        aspect = (shown[0] / shown[1]) / (t["width"] / t["height"]) - 1
        row["aspect"] = max(row["aspect"], abs(aspect))
    lines = [
        "| export (default settings) | clips | export errors | clips with other frame counts "
        "| worst frame time (ms) | worst display aspect error |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for name, r in sorted(rows.items()):
        lines.append(f"| {name} | {r['clips']} | {r['errors']} | {r['frames']} "
                     f"| {1000 * r['time']:.1f} | {100 * r['aspect']:.2f} % |")  # fmt: skip
    return lines


def video_table(per_video: dict) -> list[str]:
    """The default setting's boundary scores per video (the first table keeps the worst)."""
    lines = [
        "| video (default setting) | fps | cuts found | dirty clips | timing error (frames) |",
        "| --- | --- | --- | --- | --- |",
    ]
    for name, (fps, sc) in sorted(per_video.items()):
        lines.append(
            f"| {name} | {fps} | {sc['cuts_found']}/{sc['cuts']} | {sc['dirty']} | {sc['error']} |"
        )
    return lines


def ocr_and_motion(default_out, source, by_id) -> list[str]:
    cfg, clips, samples, texts, _ = default_out
    kept = kept_clips(clips)
    ocr = ocr_from_scan(kept, texts, cfg["filters"]["ocr"])
    limit, frames_limit = (cfg["select"]["ocr"][k] for k in ("max_text_area", "max_text_frames"))
    textless_rejected = with_text = flagged = textless = 0
    for clip in kept.itertuples():
        rec = ocr[clip.clip_id]
        rejected = (rec.get("text_area_mean") or 0) > limit or (
            frames_limit is not None and (rec.get("text_frame_ratio") or 0) > frames_limit
        )
        has_text = any(
            t["start"] < clip.end_frame and clip.start_frame < t["end"]
            for t in by_id[clip.video_id]["text"]
        )
        if has_text:
            with_text += 1
            flagged += rejected
        else:
            textless += 1
            textless_rejected += rejected
    lines = [
        "| OCR (default settings) | clips | rejected |",
        "| --- | --- | --- |",
        f"| textless clips (textures, flat, motion, transitions) | {textless} | {textless_rejected} |",
        f"| clips with text (signs, subtitles) | {with_text} | {flagged} |",
        "",
    ]
    inputs = ShardInputs(kept, source, None)
    inputs.__dict__["samples"] = samples
    motion = run_scorer("motion", inputs, cfg["scorers"]["motion"]).set_index("clip_id")
    bound = cfg["select"]["thresholds"].get("motion.rel_per_s", {}).get("min")
    lines += [
        "| motion (default settings) | fps | true px/s | measured px/s | error |",
        "| --- | --- | --- | --- | --- |",
    ]
    by_motion: dict[int, list[float]] = {}
    for clip in kept.itertuples():
        t = by_id[clip.video_id]
        fields = t["stem"] == "broadcast"
        if not (t["stem"].startswith("motion_") or fields):
            continue
        seg = next(s for s in t["segments"] if s["start"] <= clip.start_frame < s["end"])
        true = seg["speed_px_per_frame"] * t["fps"]
        if not true:
            continue
        got = float(motion.loc[clip.clip_id, "px_per_s"])
        if not fields:  # the same motion at 24, 30 and 60 fps (in every container)
            by_motion.setdefault(seg["seed"], []).append(got / true)
        kind = "rotation" if seg["rotate_deg_per_frame"] else "pan"
        lines.append(
            f"| seed {seg['seed']} ({kind}{', interlaced' if fields else ''}, "
            f"{Path(t['name']).suffix[1:]}) "
            f"| {t['fps']:g} | {true:.1f} | {got:.1f} | {100 * (got / true - 1):+.1f} % |"
        )
    spread = max((max(v) / min(v) - 1) * 100 for v in by_motion.values())
    lines += ["", f"Largest spread of one motion over 24/30/60 fps: {spread:.1f} %.", ""]
    still = [c for c in kept.itertuples() if by_id[c.video_id]["stem"] == "still"]
    values = [float(motion.loc[c.clip_id, "rel_per_s"]) for c in still]
    lines.append(
        f"Still flat shots with noise: motion.rel_per_s {', '.join(f'{v:.4f}' for v in values)}"
        f" against the static bound {bound}: {sum(v < bound for v in values)}/{len(values)} below."
    )
    return lines


if __name__ == "__main__":
    sys.exit(main())
