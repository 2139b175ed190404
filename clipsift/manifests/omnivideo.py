"""OmniVideo's step-1 features: ``omnivideo/{id}_features.pkl`` per clip-prompt pair and
``omnivideo/features.txt``, the list its step 2 reads.

Written to what SAIS-FUXI/Omni-Video reads, checked at commit
adcee0a4a5b439ad3615f825298221b21177d4e3 (the training code is under
``previous_version/Omni-Video1/``):

- ``tools/data_prepare/vae_feature_extract.py``, ``extract_features`` (step 1, which this
  replaces): one pickle per pair, ``{"latent_feature": float32 tensor [16, F', H', W'] (Wan 2.1
  VAE, normalised per channel by its mean and std: what clipsift stores for ``wan2_1``),
  "prompt": str, "text_emb": [bf16 tensor [L, 4096]] (umT5-XXL, cut to the prompt's tokens),
  "video_path": str, "frame_num": int}``, named ``{video name}_features.pkl``.
- ``tools/data_prepare/ar_feature_extract.py`` (step 2, ``--data-file``): one pickle path per line,
  ``strip``-ped and opened as written (from its working directory); it adds
  ``vlm_last_hidden_states`` from the AR model and renames the keys (``latent_feature_tgt``,
  ``t5_emb``, ``video_path_tgt``).
- ``nets/omni/datasets/omnivideo_dataset_patched.py``, ``OmniVideoDataset``: the training list,
  one step-2 pickle path per line, opened as written.

Step 2 is not run by clipsift: its AR model (``Fr0zencr4nE/Cockatiel-13B``, a VILA/LLaVA model)
loads only through VILA's own ``llava`` package (``load_pretrained_model``), not through the
transformers classes clipsift uses (docs/encode.md).
"""

from __future__ import annotations

import pickle
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from . import Context

VAE = "wan2_1"  # OmniVideo 1 trains on Wan 2.1 (1.3B) latents
TEXT = "umt5"  # and umT5-XXL prompt embeddings


def requirements(encode: dict) -> list[str]:
    """What the ``encode`` section lacks for OmniVideo's features (empty when it fits)."""
    problems = []
    if (encode.get("vae") or {}).get("name") != VAE:
        problems.append(f"encode.vae.name must be {VAE} (OmniVideo trains on Wan 2.1 latents)")
    text = encode.get("text_encoder") or {}
    if text.get("enabled", True) is False or text.get("name") != TEXT:
        problems.append(f"encode.text_encoder must be an enabled {TEXT} (OmniVideo's umT5-XXL)")
    return problems


def pair(it: dict, video_path: str) -> dict:
    """One step-1 record with the types OmniVideo writes (torch tensors, bf16 text)."""
    import torch

    emb = np.load(it["text_path"])
    mask = np.load(it["text_mask_path"]) if isinstance(it.get("text_mask_path"), str) else None
    n = int(mask.sum()) if mask is not None else len(emb)
    return {
        "latent_feature": torch.from_numpy(np.load(it["latent_path"]).astype(np.float32)),
        "prompt": it["prompt"] or "",
        "text_emb": [torch.from_numpy(emb[:n].astype(np.float32)).to(torch.bfloat16)],
        "video_path": video_path,
        "frame_num": int(it["frames"]),
    }


def write(items: list[dict], ctx: Context) -> dict:
    folder = ctx.out_dir / "omnivideo"
    folder.mkdir(parents=True, exist_ok=True)
    lines, skipped = [], 0
    for it in items:
        if it.get("vae_family") not in (None, VAE) or not isinstance(it.get("text_path"), str):
            skipped += 1  # encoded by another VAE, or without a text encoder: not OmniVideo's
            continue
        name = f"{it['clip_id']}_features.pkl"
        with open(folder / name, "wb") as fh:
            pickle.dump(pair(it, ctx.cwd_ref(it["video_file"])), fh)
        lines.append(ctx.cwd_ref(ctx.final_of("omnivideo", name)))
    (folder / "features.txt").write_text("".join(f"{line}\n" for line in lines))
    if skipped:
        raise ValueError(
            f"omnivideo: {skipped} of {len(items)} clips were not encoded with {VAE} and a "
            f"{TEXT} text encoder"
        )
    return {"pairs": len(lines)}
