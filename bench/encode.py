"""CPU throughput and peak memory of the encode stage, per VAE family, with tiny random weights.

No GPU and no model hub: each family's VAE is built from the tiny config of
``tests/fakes/tiny_vae.py`` (real compression ratios, tiny widths) and saved, then the real stage
(``clipsift.encoders.stage.run_encode``: frame planning, decoding + crop + resize in threads ahead
of the VAE, batching, normalisation, writing) loads and runs it on generated clips. The text
encoder is off (it is measured separately, once, with a tiny UMT5). With ``--real`` the VAEs are
built at their published sizes instead (random weights; slow on a CPU).

Per family, in a fresh process (so that ``ru_maxrss`` is that family's peak):

- ``stage``: ``run_encode`` wall time, split (``table.attrs["timing"]``) into loading the VAE,
  the encode loop (clips/s is counted over this loop), the VAE's compute inside it, and the time
  the loop waited for decoded frames;
- ``decode alone``: the same frames read with ``read_clip``, one clip after another, one thread;
- ``peak RSS``: ``resource.getrusage(RUSAGE_SELF).ru_maxrss`` at the end, and its growth over
  the process after imports (torch and PyAV allocate outside Python, so tracemalloc would miss
  them).

If decoding overlaps the VAE, the loop waits for frames much less than decoding alone takes.

    python bench/encode.py --out bench/results/encode-cpu.md
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

REAL_CONFIGS = {  # the published architectures (diffusers defaults, and Wan 2.2 TI2V-5B's config)
    "wan2_1": {},
    "wan2_2": dict(
        base_dim=160,
        decoder_base_dim=256,
        z_dim=48,
        dim_mult=[1, 2, 4, 4],
        is_residual=True,
        in_channels=12,
        out_channels=12,
        patch_size=2,
        scale_factor_spatial=16,
        latents_mean=[0.0] * 48,
        latents_std=[1.0] * 48,
    ),
    "hunyuan": {},
    "cogvideox": {},
    "ltx": {},
}


def maxrss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def make_clips(root: Path, n: int, size: tuple[int, int], fps: int, seconds: float):
    """``n`` clips, one per generated video, landscape, portrait and square in turn."""
    import pandas as pd

    from clipsift.sample import Segment, render_video

    w, h = size
    shapes = [(w, h), (h, w), (h, h)]
    rows = []
    for i in range(n):
        sw, sh = shapes[i % 3]
        path = root / f"v{i}.mp4"
        frames = int(seconds * fps)
        render_video(path, [Segment(frames, seed=i, pan=(1.0, 0.5))], fps=fps, size=(sw, sh))
        rows.append(
            {
                "clip_id": f"v{i}_0000",
                "video_id": f"v{i}",
                "start_frame": 0,
                "end_frame": frames,
                "start_time": 0.0,
                "end_time": seconds,
                "fps": float(fps),
                "width": sw,
                "height": sh,
                "source_path": str(path),
                "path": str(path),
                "error": None,
                "split_reason": None,
            }  # fmt: skip
        )
    clips = pd.DataFrame(rows)
    source = pd.DataFrame({"video_id": clips["video_id"], "caption": "a generated video"})
    selection = pd.DataFrame({"clip_id": clips["clip_id"], "keep": True})
    return clips, source, selection


def build(name: str, root: Path, real: bool) -> dict:
    from fakes import tiny_vae as tiny

    if not real:
        return tiny.build_vae(name, root)
    import diffusers
    import torch

    torch.manual_seed(0)
    cls = getattr(diffusers, tiny.VAE_CONFIGS[name][0])
    cls(**REAL_CONFIGS[name]).save_pretrained(root / "vae")
    return {"name": name, "model": str(root), "revision": None, "subfolder": "vae"}


def run_family(name: str, args: dict, queue) -> None:
    """One family in this (fresh) process; puts a result dict on ``queue``."""
    import logging

    import numpy as np
    import torch

    from clipsift.encoders import vae_class
    from clipsift.encoders.buckets import clip_geometry, make_buckets
    from clipsift.encoders.sampling import plan_frames
    from clipsift.encoders.stage import run_encode
    from clipsift.encoders.video import read_clip

    logging.basicConfig(level=logging.WARNING)
    rss0 = maxrss_mb()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        clips, source, selection = make_clips(
            tmp, args["clips"], tuple(args["size"]), args["fps"], args["seconds"]
        )
        vae_cfg = build(name, tmp / "model", args["real"]) | {"dtype": "float32"}
        cfg = {
            "device": "cpu",
            "batch_size": args["batch_size"],
            "decode_workers": args["workers"],
            "prefetch": 4,
            "vae": vae_cfg,
            "frames": {"count": args["frames"], "stride": 1, "too_short": "drop"},
            "resolution": {"bucket": args["bucket"], "aspect_ratios": ["16:9", "9:16", "1:1"]},
            "text_encoder": {"enabled": False},
        }
        t0 = time.perf_counter()
        table = run_encode(clips, source, selection, None, None, cfg, tmp / "out")
        stage = time.perf_counter() - t0
        ok = table[table["status"] == "ok"]
        rss_stage = maxrss_mb()

        timing = table.attrs["timing"]

        # decoding alone, for comparison: the same frames, one clip after another, one thread
        vae = vae_class(name).load(vae_cfg, "cpu", torch.float32)
        buckets = make_buckets(cfg["resolution"], vae.multiple())
        t_dec = time.perf_counter()
        for clip in clips.itertuples():
            plan = plan_frames(
                clip.start_frame, clip.end_frame, clip.fps, cfg["frames"], vae.temporal
            )
            geo = clip_geometry(clip.width, clip.height, None, buckets)
            read_clip(
                clip.source_path,
                plan.indices,
                (clip.start_frame, clip.start_time),
                geo.rect,
                (geo.bucket.width, geo.bucket.height),
            )
        decode = time.perf_counter() - t_dec
        params = sum(p.numel() for p in vae.model.parameters())
    queue.put(
        {
            "family": name,
            "params": int(params),
            "clips": int(len(ok)),
            "latent_shapes": sorted({tuple(int(v) for v in s) for s in ok["latent_shape"]}),
            "buckets": sorted(set(ok["bucket"])),
            "frames": int(ok["frames"].iloc[0]) if len(ok) else None,
            "stage_s": stage,
            "clips_per_s": len(ok) / timing["vae_loop_s"] if len(ok) else None,
            "decode_alone_s": decode,
            **timing,
            "rss_after_imports_mb": rss0,
            "peak_rss_stage_mb": rss_stage,
            "peak_rss_mb": maxrss_mb(),
            "torch_threads": torch.get_num_threads(),
            "numpy": np.__version__,
        }
    )


def text_bench(args: dict) -> dict:
    import torch
    from fakes import tiny_vae as tiny

    from clipsift.encoders.text import UMT5

    with tempfile.TemporaryDirectory() as tmp:
        cfg = tiny.build_text_encoder("umt5", Path(tmp), max_length=64)
        enc = UMT5.load(cfg, "cpu", torch.float32)
        prompts = [f"a red car drives over a bridge at night, shot {i}" for i in range(64)]
        t0 = time.perf_counter()
        for i in range(0, len(prompts), 8):
            enc.encode(prompts[i : i + 8])
        dt_ = time.perf_counter() - t0
    return {"prompts": len(prompts), "seconds": dt_, "prompts_per_s": len(prompts) / dt_}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--families", default="wan2_1,wan2_2,hunyuan,cogvideox,ltx")
    ap.add_argument("--clips", type=int, default=6)
    ap.add_argument("--size", default="640x360", help="landscape source size; portrait/square too")
    ap.add_argument("--fps", type=int, default=30)
    ap.add_argument("--seconds", type=float, default=2.0)
    ap.add_argument("--frames", type=int, default=17, help="frames per clip (made valid)")
    ap.add_argument("--bucket", type=int, default=128, help="bucket size (sqrt of the area)")
    ap.add_argument("--batch-size", type=int, default=1)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--real", action="store_true", help="published VAE sizes (slow)")
    ap.add_argument("--out", help="markdown file to write")
    a = ap.parse_args(argv)
    w, h = (int(v) for v in a.size.split("x"))
    args = vars(a) | {"size": (w, h)}
    args["load_before"] = " ".join(f"{v:.1f}" for v in os.getloadavg())
    ctx = mp.get_context("spawn")
    results = []
    for name in a.families.split(","):
        queue = ctx.Queue()
        proc = ctx.Process(target=run_family, args=(name, args, queue))
        proc.start()
        res = queue.get()
        proc.join()
        results.append(res)
        print(json.dumps(res), flush=True)
    text = text_bench(args)
    args["load_after"] = " ".join(f"{v:.1f}" for v in os.getloadavg())
    print(json.dumps({"text": text}), flush=True)
    md = render(results, text, args)
    print(md)
    if a.out:
        Path(a.out).parent.mkdir(parents=True, exist_ok=True)
        Path(a.out).write_text(md)
    return 0


def render(results, text, args) -> str:
    import diffusers
    import torch

    kind = "published sizes, random weights" if args["real"] else "tiny random weights"
    lines = [
        f"# Encode stage on the CPU ({kind})",
        "",
        f"Run {dt.date.today().isoformat()} with `python bench/encode.py"
        + (" --real" if args["real"] else "")
        + "`. No GPU was lent for this task: every figure is CPU-only; GPU throughput is not "
        "measured here.",
        "",
        f"- machine: {platform.machine()}, {os.cpu_count()} CPUs, Python "
        f"{platform.python_version()}, torch {torch.__version__} "
        f"({results[0]['torch_threads']} threads), diffusers {diffusers.__version__}",
        f"- clips: {args['clips']} generated H.264 videos ({args['size'][0]}x{args['size'][1]} "
        f"landscape, then portrait and square), {args['fps']} fps, {args['seconds']:g} s each; "
        f"{args['frames']} frames requested (made valid per VAE), bucket {args['bucket']} "
        "(16:9, 9:16, 1:1)",
        f"- stage: `run_encode`, batch size {args['batch_size']}, {args['workers']} decode "
        "threads ahead of the VAE, text encoder off; each family in a fresh process",
        "- clips/s: over the encode loop (decode ahead + VAE + writing), after the VAE is "
        "loaded; load: loading the VAE; compute: the VAE's forward passes; wait: the loop "
        "waiting for decoded frames; decode alone: the same frames read one clip after another, "
        "one thread, for comparison",
        "- peak RSS: `ru_maxrss` of the family's process (Python, torch and the decoder); "
        "'+' is its growth over the process after imports",
        f"- load average before / after: {args['load_before']} / {args['load_after']} (other "
        "jobs shared these 2 CPUs: treat the figures as rough)",
        "",
        "| VAE | params | frames | latent shapes | clips/s | stage s | load s | compute s "
        "| wait s | decode alone s | peak RSS MB |",
        "| --- | ---: | ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in results:
        shapes = ", ".join("x".join(map(str, s)) for s in r["latent_shapes"])
        lines.append(
            f"| {r['family']} | {r['params'] / 1e6:.2f} M | {r['frames']} | {shapes} | "
            f"{r['clips_per_s']:.2f} | {r['stage_s']:.2f} | {r['vae_load_s']:.2f} | "
            f"{r['vae_model_s']:.2f} | {r['frame_wait_s']:.2f} | {r['decode_alone_s']:.2f} | "
            f"{r['peak_rss_mb']:.0f} (+{r['peak_rss_mb'] - r['rss_after_imports_mb']:.0f}) |"
        )
    lines += [
        "",
        f"Text encoder (tiny UMT5, 64 tokens, batches of 8): {text['prompts_per_s']:.0f} prompts/s.",
        "",
        "Tiny weights measure the stage's own cost (decoding, resizing, batching, writing) and "
        "the plumbing, not a real VAE: the published VAEs take tens of seconds per clip on a "
        "CPU (models-offline notes: about 40 s for 17 frames at 128x96 for the Wan 2.1 VAE), so "
        "real runs need a GPU.",
        "",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
