"""The encode job of one shard: VAE latents and text embeddings of every kept clip.

For each clip with ``keep == True`` in ``selection.parquet``:

1. the prompt (:mod:`.prompts`): the caption stage's caption (``caption.json``, when that stage
   is on and has one), else the source's given caption, else the empty prompt;
   ``prompt_source`` says which (and ``caption_model`` / ``caption_revision`` which captioner);
2. the frames (:mod:`.sampling`) and the size (:mod:`.buckets`, after the black-border crop of
   ``technical.crop`` in ``scores.parquet``);
3. decoding and resizing in threads ahead of the VAE (:func:`clipsift.models.frames.prefetch`),
   batches of clips of one shape through the VAE (the batch halves on out-of-memory);
4. the text encoder(s) over the prompts of the encoded clips, after the VAE is released
   (:func:`.prompts.encode_texts`).

Writes into ``out_dir`` (the rule's ``latents/`` folder, swapped in atomically by the caller):
``{clip_id}.npy`` (latents ``[C, F', H', W']``), ``{clip_id}.text.npy`` + ``{clip_id}.text_mask.npy``
(+ ``.text_pooled.npy``, and ``.text_2*`` for a second text encoder), and ``{clip_id}.json``
describing all of it. Returns the ``latents.parquet`` table: one row per kept clip, with
``status`` ok, dropped (``reason`` too_short) or error (``reason`` decode_failed / encode_failed
and the ``error`` message). Failures are data: the shard finishes.

With a ``cache_dir`` (the rule gives ``{results}/cache/encode/{shard}/``, :mod:`.cache`) every
clip's latents and every prompt's embeddings are kept there as soon as they are made, so a killed
job's rerun encodes only what is missing (``latents.parquet`` column ``cached``).
"""

from __future__ import annotations

import json
import logging
import math
import os
import time
from collections import defaultdict
from pathlib import Path

import numpy as np
import pandas as pd

from ..config import with_defaults
from ..io.decode import VideoError
from ..io.files import file_identity, place
from ..models.batching import Batcher, is_oom
from ..models.device import free_memory, pick_dtype, resolve_device
from ..models.frames import prefetch
from ..split.clips import FrameTimes
from . import vae_class
from .base import to_model_input
from .buckets import clip_geometry, make_buckets
from .cache import EncodeCache
from .prompts import caption_model, encode_texts, resolve_prompt, store_as
from .sampling import plan_frames
from .video import read_clip

log = logging.getLogger(__name__)

TEXT_KEYS = {"text_encoder": "text", "text_encoder_2": "text_2"}

COLUMNS = [
    "clip_id", "video_id", "status", "reason", "error", "latent_path", "json_path",
    "text_path", "text_mask_path", "text_pooled_path",
    "text_2_path", "text_2_mask_path", "text_2_pooled_path",
    "latent_shape", "latent_dtype", "frames", "frames_requested", "fps", "sample_fps", "stride", "skip_start",
    "first_frame", "last_frame", "bucket", "bucket_ratio", "width", "height", "border_crop",
    "crop", "prompt", "prompt_source", "caption_model", "caption_revision", "n_tokens", "truncated", "vae", "vae_family",
    "vae_revision", "vae_resolved_revision", "sample", "normalization", "text_encoder",
    "text_encoder_revision", "source_path", "start_time", "end_time", "cached",
]  # fmt: skip


def border_crops(scores: pd.DataFrame | None) -> dict:
    """clip_id -> ``[x, y, w, h]`` from the technical scorer (absent when it did not run)."""
    if scores is None or "technical.crop" not in scores:
        return {}
    return {
        cid: list(c)
        for cid, c in zip(scores["clip_id"], scores["technical.crop"], strict=True)
        if c is not None and not (isinstance(c, float) and np.isnan(c))
    }


# ----------------------------------------------------------------------------- the job


def run_encode(
    clips: pd.DataFrame,
    source: pd.DataFrame,
    selection: pd.DataFrame,
    scores: pd.DataFrame | None,
    captions: dict | None,
    cfg: dict,
    out_dir: str | os.PathLike,
    *,
    final_dir: str | os.PathLike | None = None,
    lock_dir: str | os.PathLike | None = None,
    cache_dir: str | os.PathLike | None = None,
    frames: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """Encode the kept clips of a shard (see the module docstring); ``cfg`` is the ``encode``
    section. Files go to ``out_dir``; paths recorded point into ``final_dir`` (where the caller
    renames ``out_dir`` to; default ``out_dir``); ``cache_dir`` keeps what was made for a rerun.
    ``frames`` is the scan's per-frame table (``video_id``, ``frame``, ``time``): the frames of
    a variable-rate clip are taken by their times (:func:`plan_frames`); without it, by count."""
    cfg = with_defaults("encode", cfg)
    cache = EncodeCache(cache_dir)
    out_dir = Path(out_dir)
    final_dir = Path(final_dir or out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    if isinstance(captions, dict) and isinstance(captions.get("clips"), dict):
        captions = captions["clips"]  # caption.json: {"meta": ..., "clips": {clip_id: record}}
    kept = set(selection.loc[selection["keep"].astype(bool), "clip_id"])
    todo = clips[clips["clip_id"].isin(kept)].sort_values("clip_id").reset_index(drop=True)
    source_caps = (
        dict(zip(source["video_id"], source["caption"], strict=True)) if "caption" in source else {}
    )
    crops = border_crops(scores)
    source_ids = _source_ids(source)
    log.info("%d kept clips to encode", len(todo))
    if not len(todo):
        return pd.DataFrame(columns=COLUMNS)

    timing: dict[str, float] = {}
    t0 = time.perf_counter()
    device = resolve_device(cfg["device"], lock_dir=lock_dir)
    vae, vinfo, buckets = _load_vae(cfg, device)
    timing["vae_load_s"] = time.perf_counter() - t0

    rows: dict[str, dict] = {}
    jobs = []
    timeline = FrameTimes(frames)
    for clip in todo.itertuples(index=False):
        rows[clip.clip_id], job = _clip_job(
            clip, cfg, vae, vinfo, buckets, crops, captions, source_caps, source_ids, cache,
            timeline.of(clip),
        )  # fmt: skip
        jobs += [job] if job else []

    todo_jobs = [job for job in jobs if not _from_cache(cache, job, rows, out_dir, final_dir)]
    if len(todo_jobs) < len(jobs):
        log.info("%d of %d clips' latents from the resume cache", len(jobs) - len(todo_jobs),
                 len(jobs))  # fmt: skip
    timing |= _encode_latents(vae, todo_jobs, rows, cfg, out_dir, final_dir, cache)
    del vae
    free_memory()

    t0 = time.perf_counter()
    _texts_and_records(cfg, device, rows, jobs, vinfo, out_dir, final_dir, cache)
    timing["text_s"] = time.perf_counter() - t0
    table = pd.DataFrame([rows[c] for c in sorted(rows)], columns=COLUMNS)
    table.attrs["timing"] = timing  # for benchmarks; not part of the stored table
    counts = table["status"].value_counts().to_dict()
    log.info("done: %s", ", ".join(f"{k} {v}" for k, v in sorted(counts.items())))
    return table


def _texts_and_records(cfg, device, rows, jobs, vinfo, out_dir: Path, final_dir: Path, cache):
    """The text embeddings of the encoded clips (each enabled text encoder), then each clip's
    ``{clip_id}.json``."""
    ok = [cid for cid, r in rows.items() if r["status"] == "ok"]
    text_info = {}
    for key, tkey in TEXT_KEYS.items():
        tcfg = cfg[key]
        if ok and tcfg["enabled"]:
            text_info[tkey] = encode_texts(tcfg, tkey, device, ok, rows, out_dir, final_dir, cache)
    geometry = {clip.clip_id: (plan, geo) for clip, plan, geo, _ in jobs}
    for cid in ok:
        _write_json(rows[cid], vinfo, text_info, geometry[cid], out_dir, final_dir)


def _source_ids(source: pd.DataFrame) -> dict[str, str]:
    """video_id -> what the resume cache knows a source by: its content hash, else its file's
    identity. A source with non-square pixels is known by a new name since the crop was cut
    from its display pixels (2026-12-06; from the coded ones before, with the same key): its
    cached latents are made again, not linked."""
    n = len(source)
    ids = {}
    for vid, h, path, sar in zip(
        source["video_id"],
        source["hash"] if "hash" in source else [None] * n,
        source["path"] if "path" in source else [""] * n,
        source["sar"] if "sar" in source else [1.0] * n,
        strict=True,
    ):
        ident = h if isinstance(h, str) and h else file_identity(path)
        square = not isinstance(sar, (int, float)) or not math.isfinite(sar) or sar == 1.0
        ids[vid] = ident if square else f"{ident}|display-pixels"
    return ids


def _load_vae(cfg: dict, device: str):
    """``(vae, its description, the resolution buckets)``: the buckets' sides are multiples of
    what the VAE (and its transformer's patch) needs."""
    vcfg, rcfg = cfg["vae"], cfg["resolution"]
    vae = vae_class(vcfg["name"]).load(vcfg, device, pick_dtype(device, vcfg["dtype"]))
    vinfo = vae.describe()
    log.info(
        "VAE %s (%s, revision %s) on %s: x%d spatial, x%d temporal, %d channels",
        vinfo["id"], vinfo["class"], vinfo["resolved_revision"], device,
        vae.spatial, vae.temporal, vae.channels,
    )  # fmt: skip
    multiple = vae.multiple(rcfg.get("multiple"))
    buckets = make_buckets(rcfg, multiple)
    log.info("buckets (multiple of %d): %s", multiple, ", ".join(b.label for b in buckets))
    return vae, vinfo, buckets


def _clip_job(
    clip, cfg, vae, vinfo, buckets, crops, captions, source_caps, source_ids, cache, times=None
):
    """``(row, job)`` of one kept clip: its ``latents.parquet`` row (prompt, frames, bucket,
    VAE) and the job that encodes it, ``(clip, plan, geometry, cache key)``; no job when the
    clip is too short for the frame plan. ``times``: its frames' times (a variable rate)."""
    vcfg, rcfg = cfg["vae"], cfg["resolution"]
    prompt, psrc = resolve_prompt(clip.clip_id, clip.video_id, captions, source_caps)
    fps = float(clip.fps)
    plan = plan_frames(clip.start_frame, clip.end_frame, fps, cfg["frames"], vae.temporal, times)
    geo = clip_geometry(
        int(clip.width),
        int(clip.height),
        crops.get(clip.clip_id),
        buckets,
        use_crop=rcfg["use_border_crop"],
    )
    row = {
        "clip_id": clip.clip_id, "video_id": clip.video_id, "status": "ok", "reason": None,
        "error": None, "frames": plan.count or None, "frames_requested": plan.requested,
        "fps": fps, "sample_fps": plan.fps, "stride": plan.step,
        "skip_start": cfg["frames"]["skip_start"],
        "first_frame": plan.indices[0] if plan.indices else None,
        "last_frame": plan.indices[-1] if plan.indices else None,
        "bucket": geo.bucket.label, "bucket_ratio": geo.bucket.name,
        "width": geo.bucket.width, "height": geo.bucket.height,
        "border_crop": geo.border_crop, "crop": list(geo.rect), "prompt": prompt,
        "prompt_source": psrc, **caption_model(captions, clip.clip_id, psrc),
        "vae": vinfo["id"], "vae_family": vinfo["family"],
        "vae_revision": vinfo["revision"], "vae_resolved_revision": vinfo["resolved_revision"],
        "sample": vinfo["sample"], "normalization": json.dumps(vinfo["normalization"]),
        "source_path": clip.source_path, "start_time": float(clip.start_time),
        "end_time": float(clip.end_time), "cached": False,
    }  # fmt: skip
    if not plan.ok:
        return row | {"status": "dropped", "reason": "too_short", "error": plan.reason}, None
    key = cache.latent_key(
        vinfo,
        vcfg["store_dtype"],
        source_ids.get(clip.video_id) or file_identity(clip.source_path),
        plan.indices,
        geo.rect,
        (geo.bucket.width, geo.bucket.height),
    )
    return row, (clip, plan, geo, key)


def _latent_fields(arr, clip_id: str, final_dir: Path, dtype: str) -> dict:
    return {
        "latent_shape": list(arr.shape),
        "latent_path": os.fspath(final_dir / f"{clip_id}.npy"),
        "latent_dtype": dtype,
    }


def _from_cache(cache: EncodeCache, job, rows, out_dir: Path, final_dir: Path) -> bool:
    """Link a clip's cached latents into the output; False when they are not in the cache."""
    clip, _, _, key = job
    path = cache.latent_path(clip.clip_id, key)
    if path is None:
        return False
    try:
        arr = np.load(path, mmap_mode="r")
    except (OSError, ValueError) as exc:
        log.warning("%s: unreadable cached latents (%s); encoding again", clip.clip_id, exc)
        return False
    place(path, out_dir / f"{clip.clip_id}.npy", "hardlink")
    rows[clip.clip_id] |= _latent_fields(arr, clip.clip_id, final_dir, str(arr.dtype))
    rows[clip.clip_id]["cached"] = True
    cache.hits["latents"] += 1
    return True


def _encode_latents(vae, jobs, rows, cfg, out_dir: Path, final_dir: Path, cache) -> dict:
    """Decode ahead in threads, batch clips of one shape, encode, write ``{clip_id}.npy``.
    Returns timings: the whole loop, the VAE's share, and the time spent waiting for frames.
    (One function on purpose: ``decode``, ``run`` and ``flush`` share the pending batches, the
    batcher and the timings of one decode-ahead loop.)"""
    store = cfg["vae"]["store_dtype"]
    batcher = Batcher(cfg["batch_size"])
    pending: dict[tuple, list] = defaultdict(list)
    stats = {"wait": 0.0, "model": 0.0, "clips": 0}

    def decode(job):
        clip, plan, geo, _ = job
        try:
            return read_clip(
                clip.source_path,
                plan.indices,
                (int(clip.start_frame), float(clip.start_time)),
                geo.rect,
                (geo.bucket.width, geo.bucket.height),
            )
        except VideoError:
            raise
        except Exception as exc:  # noqa: BLE001 - any failure to read a clip is the clip's
            raise VideoError(f"decode failed: {type(exc).__name__}: {exc}") from exc

    def run(batch):
        import torch

        t0 = time.perf_counter()
        x = torch.stack([to_model_input(frames) for _, frames in batch])
        z = vae.encode(x, [job[0].clip_id for job, _ in batch])
        vae.check_shape(z, *x.shape[2:])
        stats["model"] += time.perf_counter() - t0
        return list(z)

    def flush(key):
        batch = pending.pop(key)
        try:
            latents = batcher.map(run, batch)
        except Exception as exc:
            if is_oom(exc) or "CUDA error" in str(exc):
                raise  # the machine's problem, not the clips'
            log.warning("encode failed for %d clips: %s", len(batch), exc)
            for (clip, *_), _ in batch:
                rows[clip.clip_id] |= {
                    "status": "error",
                    "reason": "encode_failed",
                    "error": f"encode failed: {type(exc).__name__}: {exc}",
                }
            return
        for ((clip, _, _, key), _), z in zip(batch, latents, strict=True):
            arr, dtype = store_as(z, store)
            kept = cache.save_latent(clip.clip_id, key, arr)  # at once: a kill keeps it
            if kept is not None:
                place(kept, out_dir / f"{clip.clip_id}.npy", "hardlink")
            else:
                np.save(out_dir / f"{clip.clip_id}.npy", arr)
            rows[clip.clip_id] |= _latent_fields(arr, clip.clip_id, final_dir, dtype)
            stats["clips"] += 1

    t_start = time.perf_counter()
    t_wait = time.perf_counter()
    for job, frames in prefetch(decode, jobs, workers=cfg["decode_workers"], ahead=cfg["prefetch"]):
        stats["wait"] += time.perf_counter() - t_wait
        clip = job[0]
        if isinstance(frames, Exception):
            log.warning("%s: %s", clip.clip_id, frames)
            rows[clip.clip_id] |= {
                "status": "error",
                "reason": "decode_failed",
                "error": str(frames),
            }
        else:
            key = (frames.shape,)
            pending[key].append((job, frames))
            if len(pending[key]) >= batcher.batch_size:
                flush(key)
        t_wait = time.perf_counter()
    for key in list(pending):
        flush(key)
    total = time.perf_counter() - t_start
    if stats["clips"]:
        log.info(
            "VAE: %d clips in %.1f s (%.2f clips/s); model %.1f s, waiting for frames %.1f s",
            stats["clips"], total, stats["clips"] / total, stats["model"], stats["wait"],
        )  # fmt: skip
    return {"vae_loop_s": total, "vae_model_s": stats["model"], "frame_wait_s": stats["wait"]}


def _write_json(row, vinfo, text_info, plan_geo, out_dir: Path, final_dir: Path) -> None:
    """``{clip_id}.json``: everything a trainer or an auditor needs about one encoded clip."""
    plan, geo = plan_geo
    cid = row["clip_id"]
    text = {}
    for tkey, info in text_info.items():
        text[tkey] = {
            "path": row.get(f"{tkey}_path"),
            "mask_path": row.get(f"{tkey}_mask_path"),
            "pooled_path": row.get(f"{tkey}_pooled_path"),
            **row.get("_text", {}).get(tkey, {}),
            "encoder": info,
        }
    doc = {
        "clip_id": cid,
        "video_id": row["video_id"],
        "latent_shape": row["latent_shape"],
        "latent_dtype": row.get("latent_dtype"),
        "npy_path": row["latent_path"],
        "video_path": row["source_path"],
        "start_time": row["start_time"],
        "end_time": row["end_time"],
        "prompt": row["prompt"],
        "prompt_source": row["prompt_source"],
        "caption_model": row.get("caption_model"),
        "caption_revision": row.get("caption_revision"),
        "frames": {
            "count": row["frames"],
            "requested": row["frames_requested"],
            "indices": plan.indices,
            "source_fps": row["fps"],
            "fps": row["sample_fps"],
            "stride": row["stride"],
            "skip_start": row["skip_start"],
        },
        "bucket": {
            "width": row["width"],
            "height": row["height"],
            "ratio": row["bucket_ratio"],
            "source_rect": list(geo.rect),
            "border_crop": row["border_crop"],
            "picture": list(geo.picture),
            "scale": geo.scale,
        },
        "vae": vinfo,
        "text": text,
    }
    row["json_path"] = os.fspath(final_dir / f"{cid}.json")
    (out_dir / f"{cid}.json").write_text(json.dumps(doc, indent=1) + "\n")
    row.pop("_text", None)
