"""The text side of the encode job: the prompt of each kept clip, and the text embeddings of the
encoded clips (after the VAE is released), written next to their latents."""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path

import numpy as np

from ..models.batching import Batcher
from ..models.device import free_memory, pick_dtype
from . import text_encoder_class
from .cache import model_identity

log = logging.getLogger(__name__)


def _text(value) -> str | None:
    return value.strip() if isinstance(value, str) and value.strip() else None


def resolve_prompt(clip_id: str, video_id: str, captions: dict | None, source_caps: dict):
    """``(prompt, source)``: the caption stage's, else the source's, else ``("", "empty")``."""
    if captions is not None:
        entry = captions.get(clip_id)
        cap = _text(entry.get("caption")) if isinstance(entry, dict) else _text(entry)
        if cap is not None:
            return cap, "caption"
    cap = _text(source_caps.get(video_id))
    if cap is not None:
        return cap, "source"
    return "", "empty"


def caption_model(captions: dict | None, clip_id: str, prompt_source: str) -> dict:
    """The captioning model and revision of a caption-stage prompt (None otherwise)."""
    entry = (captions or {}).get(clip_id) if prompt_source == "caption" else None
    entry = entry if isinstance(entry, dict) else {}
    return {"caption_model": entry.get("model"), "caption_revision": entry.get("revision")}


def store_as(arr: np.ndarray, dtype: str) -> tuple[np.ndarray, str]:
    """Cast to the storage dtype; float16 that would overflow stays float32 (and says so)."""
    if dtype == "float16":
        if np.isfinite(arr).all() and np.abs(arr).max(initial=0) < 65000:
            return arr.astype(np.float16), "float16"
        return arr.astype(np.float32), "float32"
    return arr.astype(np.float32), "float32"


def encode_texts(tcfg, tkey, device, ok, rows, out_dir: Path, final_dir: Path, cache) -> dict:
    """Embed the prompts of the encoded clips (each distinct prompt once; those in the resume
    cache not at all) and write them: ``{clip_id}.{tkey}.npy``, ``_mask`` and ``_pooled``, their
    paths in the clips' ``rows``. Returns the encoder's description."""
    settings = tcfg | {"_model": model_identity({"id": tcfg.get("model"),
                                                 "subfolder": tcfg.get("subfolder")})}  # fmt: skip
    prompts = sorted({rows[c]["prompt"] for c in ok})
    keys = {p: cache.text_key(settings, p) for p in prompts}
    by_prompt = {p: r for p in prompts if (r := cache.text(keys[p])) is not None}
    info = cache.encoder_info(cache.encoder_key(settings))
    missing = [p for p in prompts if p not in by_prompt]
    if missing or info is None:
        enc = text_encoder_class(tcfg["name"]).load(tcfg, device, pick_dtype(device, tcfg["dtype"]))
        info = enc.describe()
        cache.save_encoder_info(cache.encoder_key(settings), info)
        batcher = Batcher(tcfg["batch_size"])
        t0 = time.perf_counter()
        for prompt, res in zip(missing, batcher.map(enc.encode, missing), strict=True):
            by_prompt[prompt] = res
            cache.save_text(keys[prompt], res)
        log.info(
            "text encoder %s (%s): %d prompts in %.1f s (%d from the resume cache)",
            info["id"], info["class"], len(missing), time.perf_counter() - t0,
            len(prompts) - len(missing),
        )  # fmt: skip
        del enc
        free_memory()
    else:
        log.info("text encoder %s: all %d prompts from the resume cache", info["id"], len(prompts))
    cache.hits["text"] += len(prompts) - len(missing)
    store = tcfg["store_dtype"]
    for cid in ok:
        res = by_prompt[rows[cid]["prompt"]]
        emb, dtype = store_as(res["embeds"], store)
        np.save(out_dir / f"{cid}.{tkey}.npy", emb)
        np.save(out_dir / f"{cid}.{tkey}_mask.npy", res["mask"])
        row = rows[cid]
        row[f"{tkey}_path"] = os.fspath(final_dir / f"{cid}.{tkey}.npy")
        row[f"{tkey}_mask_path"] = os.fspath(final_dir / f"{cid}.{tkey}_mask.npy")
        if "pooled" in res:
            pooled, _ = store_as(res["pooled"], store)
            np.save(out_dir / f"{cid}.{tkey}_pooled.npy", pooled)
            row[f"{tkey}_pooled_path"] = os.fspath(final_dir / f"{cid}.{tkey}_pooled.npy")
        row.setdefault("_text", {})[tkey] = {
            "shape": list(emb.shape),
            "dtype": dtype,
            "n_tokens": res["n_tokens"],
            "truncated": res["truncated"],
        }
        if tkey == "text":
            row |= {
                "n_tokens": res["n_tokens"],
                "truncated": res["truncated"],
                "text_encoder": info["id"],
                "text_encoder_revision": info["resolved_revision"],
            }
    return info
