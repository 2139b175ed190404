"""Seconds per generated clip on the CPU, per generator family, with tiny random pipelines.

No GPU and no model hub: each family's pipeline is built from the tiny configs of
``tests/fakes/tiny_pipelines.py`` (real classes, tiny widths and depths), saved, and run by the real
stage (``clipsift.generators.stage.generate_shard``: loading with ``from_pretrained``, the
pipeline call, uint8 conversion, libx264 writing, the per-video record) on a few prompts. Each
family runs in a fresh process, so ``ru_maxrss`` is that family's peak.

Per family:

- ``s/clip``: the pipeline calls of one item (``latency_s`` of its record; for FLUX -> SVD the
  first frame and the video), mean over the prompts, loading excluded;
- ``write s``: libx264 writing of one clip;
- ``load s``: ``from_pretrained`` and ``.to(device)``;
- ``peak RSS``: ``resource.getrusage(RUSAGE_SELF).ru_maxrss`` at the end.

Tiny weights measure the stage's own cost and the plumbing, not a real model: the published
checkpoints (1 to 12 B parameters) need a GPU, where a clip takes minutes.

    python bench/generate.py --out bench/results/generate-cpu.md   # about 10 min on 2 loaded cores
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import multiprocessing as mp
import os
import platform
import resource
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))  # tiny model builders

PROMPTS = [
    "a red car drives through a city street at night",
    "a dog runs across green grass in slow motion",
    "a bird flies over blue water, the camera pans",
    "a person walks in the snow, wide shot",
]

# family -> (generator, source overrides); t2i+i2v: FLUX first frames animated by SVD
CASES = {
    "cogvideox (t2v)": ("cogvideox", {}),
    "wan (t2v)": ("wan", {}),
    "svd (i2v)": ("svd", {"image_key": "image"}),
    "sd3 (t2i)": ("sd3", {}),
    "flux (t2i)": ("flux", {}),
    "flux -> svd (t2i+i2v)": ("flux", {"t2i_as": "first_frame", "i2v": {"generator": "svd"}}),
}


def _run(case: str, args, root: Path, queue) -> None:
    import importlib.util

    import numpy as np
    import pandas as pd
    import torch
    from fakes import tiny_pipelines as tiny
    from PIL import Image

    from clipsift.generators.stage import generate_shard
    from clipsift.plan import ITEM_COLUMNS
    from clipsift.sources import list_items

    torch.set_num_threads(args.threads)
    name, over = CASES[case]
    if name == "wan" and importlib.util.find_spec("accelerate") is None:
        queue.put({"case": case, "skipped": "needs accelerate (not installed)"})
        return
    work = root / name.replace(" ", "_")
    work.mkdir(parents=True, exist_ok=True)
    model = tiny.build(name, work / "model") if not (work / "model").exists() else work / "model"
    over = json.loads(json.dumps(over))
    if "i2v" in over:
        svd = root / "svd" / "model"
        if not svd.exists():
            tiny.build("svd", svd)
        over["i2v"].update(model=str(svd), steps=args.steps, frames=args.frames)
    image = work / "first.png"
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 255, (args.height, args.width, 3), dtype=np.uint8)).save(image)
    rows = [{"prompt": p, "image": str(image)} for p in PROMPTS[: args.prompts]]
    (work / "prompts.jsonl").write_text("\n".join(json.dumps(r) for r in rows))
    source = {
        "name": name,
        "type": "generate",
        "path": str(work / "prompts.jsonl"),
        "generator": name,
        "model": str(model),
        "steps": args.steps,
        "width": args.width,
        "height": args.height,
        "frames": args.frames,
        "device": "cpu",
        **over,
    }
    items = list_items(source, root=work)
    plan = pd.DataFrame(
        [
            {**it.to_row(), "source": name, "extra": json.dumps(it.extra)}
            | {"kind": "prompt", "archive": None}
            for it in items
        ]
    )[ITEM_COLUMNS]
    folders = [Path(model)] + ([Path(over["i2v"]["model"])] if "i2v" in over else [])
    params = sum(  # the denoisers (for FLUX -> SVD both)
        p.numel()
        for folder in folders
        for comp in ("transformer", "unet")
        if (folder / comp).exists()
        for p in _module(folder / comp).parameters()
    )
    t0 = time.perf_counter()
    out = generate_shard(plan, source, out_dir=work / "out", cache_dir=work / "cache")
    wall = time.perf_counter() - t0
    recs = [json.loads(e)["generate"] for e in out["extra"]]
    queue.put(
        {
            "case": case,
            "params_m": params / 1e6,
            "clips": len(recs),
            "frames": recs[0]["frames"],
            "size": f"{recs[0]['width']}x{recs[0]['height']}",
            "s_per_clip": sum(r["latency_s"] for r in recs) / len(recs),
            "write_s": sum(r["write_s"] for r in recs) / len(recs),
            "load_s": out.attrs["timing"]["load_s"],
            "wall_s": wall,
            "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        }
    )


def _module(folder: Path):
    import diffusers

    cfg = json.loads((folder / "config.json").read_text())
    return getattr(diffusers, cfg["_class_name"]).from_pretrained(folder)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--out", type=Path)
    ap.add_argument("--prompts", type=int, default=3)
    ap.add_argument("--steps", type=int, default=4)
    ap.add_argument("--frames", type=int, default=17)
    ap.add_argument("--width", type=int, default=96)
    ap.add_argument("--height", type=int, default=64)
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--cases", default=",".join(CASES))
    args = ap.parse_args()

    import importlib.util

    import diffusers
    import torch

    load_before = os.getloadavg()
    accel = importlib.util.find_spec("accelerate")
    results = []
    ctx = mp.get_context("spawn")
    with tempfile.TemporaryDirectory(prefix="bench-generate-") as tmp:
        for case in args.cases.split(","):
            queue = ctx.Queue()
            proc = ctx.Process(target=_run, args=(case, args, Path(tmp), queue))
            proc.start()
            proc.join()
            res = queue.get() if not queue.empty() else {"case": case, "skipped": "failed"}
            print(res, file=sys.stderr)
            results.append(res)
    load_after = os.getloadavg()

    lines = [
        "# Generate stage on the CPU (tiny random pipelines)",
        "",
        f"Run {dt.date.today()} with `python bench/generate.py`. No GPU was lent for this task: "
        "every figure is CPU-only, with tiny random weights. The published checkpoints (1 to 14 B "
        "parameters) need a GPU; their seconds per clip are not measured here.",
        "",
        f"- machine: {platform.machine()}, {os.cpu_count()} CPUs, Python "
        f"{platform.python_version()}, torch {torch.__version__} ({args.threads} threads), "
        f"diffusers {diffusers.__version__}"
        + (f", accelerate from {Path(accel.origin).parent.parent}" if accel else ""),
        f"- per family: {args.prompts} prompts, {args.steps} steps, {args.width}x{args.height}, "
        f"{args.frames} frames requested (made valid per family; images are one frame), "
        "fp32, the real stage (`generate_shard`), each family in a fresh process",
        "- s/clip: the pipeline calls of one item (first frame + video for FLUX -> SVD), mean "
        "over the prompts, loading excluded; write s: libx264 writing; load s: from_pretrained",
        "- load average before / after: "
        + " ".join(f"{x:.1f}" for x in load_before)
        + " / "
        + " ".join(f"{x:.1f}" for x in load_after)
        + " (other jobs shared these CPUs: treat the figures as rough)",
        "",
        "| family | denoiser params | frames | size | s/clip | write s | load s | peak RSS MB |",
        "| --- | ---: | ---: | --- | ---: | ---: | ---: | ---: |",
    ]
    for r in results:
        if "skipped" in r:
            lines.append(f"| {r['case']} | skipped: {r['skipped']} | | | | | | |")
            continue
        lines.append(
            f"| {r['case']} | {r['params_m']:.2f} M | {r['frames']} | {r['size']} | "
            f"{r['s_per_clip']:.2f} | {r['write_s']:.3f} | {r['load_s']:.2f} | {r['rss_mb']:.0f} |"
        )
    lines += [
        "",
        "Tiny weights measure the stage's own cost (loading, the diffusers call path, uint8 "
        "conversion, writing, records) and the plumbing, not a real model: the denoiser of a "
        "real checkpoint is 10^3 to 10^5 times larger and runs tens of steps at 480p-720p.",
    ]
    text = "\n".join(lines) + "\n"
    print(text)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text)


if __name__ == "__main__":
    main()
