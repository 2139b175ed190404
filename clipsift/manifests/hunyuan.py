"""The HunyuanVideo-I2V training layout: ``hunyuan/{id}.npy``, ``hunyuan/json_path/{id}.json``,
``hunyuan/meta_file.list``.

Written to what Tencent/HunyuanVideo-I2V reads, checked at commit
e44c1d95da8f6e9ec2586290c6b24b009dcf9d4f:

- ``hyvideo/dataset/video_loader.py``, ``VideoDataset.__init__``: ``os.listdir`` of the
  ``--data-jsons-path`` folder, every file opened as JSON (``utf-8-sig``), so ``json_path/`` holds
  nothing else; keys ``video_id``, ``latent_shape``, ``prompt``, ``npy_save_path``;
  ``latent_shape[3]`` and ``[4]`` are the latent height and width: the shape is 5-d,
  ``[1, C, F', H', W']``.
- ``VideoDataset.get_batch``: ``np.load(npy_save_path)`` as written (from the trainer's working
  directory, no root joined), ``.squeeze(0)``, then ``[:, :sample_n_latent]`` with
  ``sample_n_latent = (sample_n_frames - 1) // 4 + 1``: the file is ``[1, C, F', H', W']``.
- ``hyvideo/utils/train_utils.py``, ``prepare_model_inputs``: a cached latent is multiplied by
  ``vae.config.scaling_factor`` on load ("vae cache is not multiplied by scaling_factor"): the
  file holds the VAE's own latents, NOT the normalised ones clipsift stores per shard, so this
  writer divides them back (:func:`clipsift.encoders.base.denormalize`) instead of linking.
- ``hyvideo/hyvae_extract/run.py`` (the tool that makes this layout from a ``meta_file.list``):
  one JSON path per line, opened as written; each JSON's ``video_path`` and
  ``raw_caption["long caption"]``; the same five keys written, latents saved as ``z[None]``.

Text embeddings are computed by that trainer from ``prompt``; clipsift's are linked beside the
latents (``{id}.text.npy`` ...) and named in the JSON for other readers.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

import numpy as np

from ..encoders.base import denormalize
from ..io.files import place

if TYPE_CHECKING:
    from . import Context

TEXT_FILES = (
    ("text_path", "text"),
    ("text_mask_path", "text_mask"),
    ("text_pooled_path", "text_pooled"),
    ("text_2_path", "text_2"),
    ("text_2_mask_path", "text_2_mask"),
    ("text_2_pooled_path", "text_2_pooled"),
)


def trainer_latents(path, normalization: dict | str | None, dtype: str | None) -> np.ndarray:
    """``[1, C, F', H', W']`` latents as the VAE gives them, in the stored dtype."""
    z = np.load(path)
    norm = json.loads(normalization) if isinstance(normalization, str) else normalization
    raw = denormalize(z, norm or {"kind": "none"})
    return raw.astype(dtype or z.dtype)[None]


def latents_note(normalization: dict | str | None) -> str:
    """What the manifest's latents are, by how the VAE's family normalises them (a Wan VAE has
    no scaling factor: per-channel mean and std)."""
    norm = json.loads(normalization) if isinstance(normalization, str) else normalization or {}
    kind = norm.get("kind")
    if kind == "scaling_factor":
        return "unscaled: the trainer multiplies by the VAE's scaling_factor"
    if kind == "per_channel_mean_std":
        scaled = (
            " and multiplies by its scaling_factor" if norm.get("scaling_factor", 1) != 1 else ""
        )
        return (
            "unnormalised: the trainer subtracts the VAE's latents_mean, divides by its "
            f"latents_std{scaled}"
        )
    return "as the VAE gives them"


def write(items: list[dict], ctx: Context) -> dict:
    hy = ctx.out_dir / "hunyuan"
    (hy / "json_path").mkdir(parents=True, exist_ok=True)
    lines = []
    for it in items:
        cid, prompt = it["clip_id"], it["prompt"] or ""
        z = trainer_latents(it["latent_path"], it.get("normalization"), it.get("latent_dtype"))
        np.save(hy / f"{cid}.npy", z)
        text_files = {}
        for col, suffix in TEXT_FILES:
            if isinstance(it.get(col), str):
                place(it[col], hy / f"{cid}.{suffix}.npy", ctx.link)
                text_files[f"{suffix}_npy_path"] = ctx.cwd_ref(
                    ctx.final_of("hunyuan", f"{cid}.{suffix}.npy")
                )
        doc = {
            "video_id": cid,
            "clip_id": cid,
            "source_video_id": it["video_id"],
            "latent_shape": [int(v) for v in z.shape],
            "video_path": ctx.cwd_ref(it["video_file"]),
            "prompt": prompt,
            "raw_caption": {"long caption": prompt},
            "prompt_source": it["prompt_source"],
            "npy_save_path": ctx.cwd_ref(ctx.final_of("hunyuan", f"{cid}.npy")),
            **text_files,
            "num_frames": int(it["frames"]),
            "fps": float(it["sample_fps"]),
            "height": int(it["height"]),
            "width": int(it["width"]),
            "bucket": it["bucket"],
            "vae": it["vae"],
            "vae_revision": it["vae_resolved_revision"],
            "latents": latents_note(it.get("normalization")),
        }
        (hy / "json_path" / f"{cid}.json").write_text(json.dumps(doc, indent=1) + "\n")
        lines.append(ctx.cwd_ref(ctx.final_of("hunyuan", "json_path", f"{cid}.json")))
    (hy / "meta_file.list").write_text("".join(f"{line}\n" for line in lines))
    return {}
