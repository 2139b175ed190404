"""CPU speed of the learned scorers and of the near-duplicate pass.

Renders H.264 clips with ``clipsift.sample.render_video`` (640x360, 2 s at 30 fps) and runs each
learned scorer's real scoring loop on them (``score_clips``: frames sampled and decoded ahead of
the model in threads, the image processor, batched forward passes, heads, embeddings):

- tiny models: random CLIP / SigLIP with hidden size 32 (``tests/fakes/tiny_clip.py``), saved with
  ``save_pretrained`` and loaded through the scorers' own loading code; this is mostly the cost of
  decoding and preprocessing, the floor of every scorer;
- real sizes: the published architectures with random weights, built from their configs
  (CLIP ViT-L/14 vision tower + LAION head, SigLIP so400m-patch14-384 + v2.5 head, CLIP
  ViT-B/32 with its text tower for CLIP-IQA), on fewer clips.

Then ``clipsift.dedup.near_duplicates`` on random 768-d float16 embeddings, the measured rate of
similarities per second, and what it means at a million clips.

No GPU was available where the recorded results were measured; the GPU column of the report is
not measured.

    python bench/learned_scores.py --out bench/results/learned-scores-cpu.md
"""

from __future__ import annotations

import argparse
import datetime as dt
import logging
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))  # tiny model builders

from fakes.tiny_clip import REAL_SIZES, save_head, save_tiny_clip, save_tiny_siglip  # noqa: E402

from clipsift.dedup import DedupStats, near_duplicates  # noqa: E402
from clipsift.sample import Segment, render_video  # noqa: E402
from clipsift.scorers import aesthetic as aes  # noqa: E402
from clipsift.scorers import quality  # noqa: E402


def render_clips(root: Path, n: int, size=(640, 360), fps=30, seconds=2.0) -> pd.DataFrame:
    rows = []
    for i in range(n):
        path = root / f"v{i}.mp4"
        if not path.exists():
            render_video(
                path,
                [Segment(int(seconds * fps), seed=100 + i, pan=(1.0, 0.5))],
                fps=fps,
                size=size,
            )
        rows.append(
            {
                "clip_id": f"v{i}_0000", "video_id": f"v{i}", "start_time": 0.0,
                "end_time": seconds, "fps": float(fps), "width": size[0], "height": size[1],
                "source_path": str(path),
            }
        )  # fmt: skip
    return pd.DataFrame(rows)


def timed(fn, *args, **kw):
    t0 = time.perf_counter()
    out = fn(*args, **kw)
    return out, time.perf_counter() - t0


def n_params(module) -> int:
    return sum(p.numel() for p in module.parameters())


def real_size_models():
    """The published architectures with random weights (no download)."""
    from fakes.tiny_clip import clip_tokenizer
    from transformers import (
        CLIPConfig,
        CLIPImageProcessor,
        CLIPModel,
        CLIPVisionConfig,
        CLIPVisionModelWithProjection,
        SiglipImageProcessor,
        SiglipVisionConfig,
        SiglipVisionModel,
    )

    torch.manual_seed(0)
    vit_l = CLIPVisionModelWithProjection(CLIPVisionConfig(**REAL_SIZES["clip_vit_l14_vision"]))
    laion = aes.AestheticModel(
        "aesthetic",
        vit_l,
        CLIPImageProcessor(),  # the defaults are openai/clip-vit-large-patch14's: 224, crop 224
        aes.LaionAestheticHead(768),
        record={"id": "random:clip-vit-large-patch14", "resolved_revision": "-"},
    )
    so400m = SiglipVisionModel(SiglipVisionConfig(**REAL_SIZES["siglip_so400m_vision"]))
    v25 = aes.AestheticModel(
        "aesthetic_v2_5",
        so400m,
        SiglipImageProcessor(size={"height": 384, "width": 384}),
        aes.AestheticV25Head(1152),
        record={"id": "random:siglip-so400m-patch14-384", "resolved_revision": "-"},
    )
    b32 = REAL_SIZES["clip_vit_b32"]
    tok = clip_tokenizer()
    text = {
        **b32["text"],
        "vocab_size": 49408,  # the real vocabulary size (the offline tokenizer uses ids < 518)
        "projection_dim": b32["projection_dim"],
        "bos_token_id": tok.bos_token_id,
        "eos_token_id": tok.eos_token_id,
        "pad_token_id": tok.pad_token_id,
    }
    vision = {**b32["vision"], "projection_dim": b32["projection_dim"]}
    clip = CLIPModel(
        CLIPConfig(text_config=text, vision_config=vision, projection_dim=b32["projection_dim"])
    )
    iqa = quality.ClipIqaModel(
        clip,
        CLIPImageProcessor(),
        tok,
        quality.PROMPTS,
        record={"id": "random:clip-vit-base-patch32", "resolved_revision": "-"},
    )
    return {
        "aesthetic": (laion, n_params(vit_l) + n_params(laion.head)),
        "aesthetic_v2_5": (v25, n_params(so400m) + n_params(v25.head)),
        "clip_iqa": (iqa, n_params(clip)),
    }


def score_fn(kind):
    return quality.score_clips if kind == "clip_iqa" else aes.score_clips


def bench_tiny(root: Path, clips: pd.DataFrame, frames: int) -> list[dict]:
    models = root / "models"
    clip = save_tiny_clip(models / "clip")
    sig = save_tiny_siglip(models / "siglip")
    cfgs = {
        "aesthetic": {
            "model": str(clip),
            "head_path": str(save_head(models / "l.pth", "aesthetic", 16)),
        },
        "aesthetic_v2_5": {
            "model": str(sig),
            "head_path": str(save_head(models / "v.pth", "aesthetic_v2_5", 32)),
        },
        "clip_iqa": {"model": str(clip)},
    }
    rows = []
    for kind, cfg in cfgs.items():
        cfg = {**cfg, "frames": frames, "batch_size": 32}
        if kind == "clip_iqa":
            model, load_s = timed(quality.load_model, cfg)
        else:
            model, load_s = timed(aes.load_model, kind, cfg)
        score_fn(kind)(clips.iloc[:2], model, cfg)  # warm-up
        _, secs = timed(score_fn(kind), clips, model, cfg)
        rows.append(
            row(kind, "tiny (hidden 32)", n_params_of(model), len(clips), frames, secs, load_s)
        )
    return rows


def n_params_of(model) -> int:
    if isinstance(model, quality.ClipIqaModel):
        return n_params(model.model)
    return n_params(model.vision) + n_params(model.head)


def bench_real(clips: pd.DataFrame, frames: int) -> list[dict]:
    rows = []
    for kind, (model, params) in real_size_models().items():
        cfg = {"frames": frames, "batch_size": 8}
        score_fn(kind)(clips.iloc[:1], model, {**cfg, "frames": 1})  # warm-up
        _, secs = timed(score_fn(kind), clips, model, cfg)
        rows.append(row(kind, "real size, random weights", params, len(clips), frames, secs, None))
        del model
    return rows


def row(kind, size, params, n, frames, secs, load_s) -> dict:
    return {
        "scorer": kind,
        "model": size,
        "params (M)": round(params / 1e6, 1),
        "clips": n,
        "frames/clip": frames,
        "seconds": round(secs, 2),
        "clips/s": round(n / secs, 3),
        "s/frame": round(secs / (n * frames), 3),
        "load (s)": round(load_s, 2) if load_s is not None else "",
    }


def bench_dedup(n: int, dim: int, block: int) -> dict:
    rng = np.random.default_rng(0)
    emb = rng.standard_normal((n, dim)).astype(np.float32)
    emb[n // 2 :: 7] = emb[: len(emb[n // 2 :: 7])] + 0.05 * rng.standard_normal(
        (len(emb[n // 2 :: 7]), dim)
    )
    emb /= np.linalg.norm(emb, axis=1, keepdims=True)
    ids = np.array([f"c{i:07d}" for i in range(n)])
    stats = DedupStats()
    near_duplicates(
        ids, emb.astype(np.float16), rng.random(n), threshold=0.95, block_size=block, stats=stats
    )
    rate = stats.pairs_per_second
    return {
        "clips": n,
        "dim": dim,
        "block": block,
        "seconds": round(stats.seconds, 2),
        "duplicates": stats.n_duplicates,
        "similarities/s": f"{rate:.3g}",
        "1M clips (h, extrapolated)": round(1e12 / 2 / rate / 3600, 1),
    }


def markdown(df: pd.DataFrame) -> str:
    cols = list(df.columns)
    lines = ["| " + " | ".join(cols) + " |", "| " + " | ".join("---" for _ in cols) + " |"]
    for r in df.itertuples(index=False):
        lines.append("| " + " | ".join(str(v) for v in r) + " |")
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--tiny-clips", type=int, default=16)
    ap.add_argument("--real-clips", type=int, default=2)
    ap.add_argument("--frames", type=int, default=4)
    ap.add_argument("--dedup", type=int, default=20000, help="clips in the dedup measurement")
    ap.add_argument("--no-real", action="store_true", help="skip the real-size models")
    ap.add_argument("--out", type=Path, help="write the markdown report here")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    logging.getLogger("transformers").setLevel(logging.ERROR)
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        clips = render_clips(root / "videos", max(args.tiny_clips, args.real_clips))
        rows = bench_tiny(root, clips.iloc[: args.tiny_clips], args.frames)
        print(markdown(pd.DataFrame(rows)), file=sys.stderr)
        if not args.no_real:
            rows += bench_real(clips.iloc[: args.real_clips], args.frames)
    table = markdown(pd.DataFrame(rows))
    dd = pd.DataFrame([bench_dedup(args.dedup, 768, 4096)])
    report = "\n".join(
        [
            "# Learned scorers and near-duplicate pass on the CPU",
            "",
            f"{dt.date.today()}, {platform.machine()}, {os.cpu_count()} CPUs, torch "
            f"{torch.__version__} ({torch.get_num_threads()} threads), no GPU. Clips: 640x360 "
            "H.264, 2 s at 30 fps; `frames/clip` frames each (uniform). Times include decoding, "
            "preprocessing, the forward passes and the heads (`score_clips`), not model loading "
            "(`load` column, tiny models only). Load average (1 min) at the start "
            f"{load_before:.1f}, at the end {os.getloadavg()[0]:.1f}: other processes shared "
            "the CPUs, so these are upper bounds on the time.",
            "",
            table,
            "",
            "## Near-duplicate pass (`clipsift.dedup.near_duplicates`, exact, float32 on the CPU)",
            "",
            markdown(dd),
            "",
        ]
    )
    print(report)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
