"""Caption one shard: the kept clips of ``selection.parquet`` -> the records of ``caption.json``.

Steps, each resumable through the cache (``cache.py``):
1. captions from the configured captioner (local VLM, chat-completions API or upload API);
2. clean-up of the raw text (boilerplate openings, unfinished last sentence);
3. optional LLM rewrite;
4. optional CLIP alignment score.

Captions the source gave (``source.parquet`` ``caption``) are kept beside the generated ones.
Failures of single clips are data (``error`` in the record, the shard finishes); a refused API
key or a model that cannot be loaded stops the job.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from types import SimpleNamespace

import pandas as pd

from ..config import with_defaults
from ..models.device import free_memory
from ..split.clips import FrameTimes
from . import make_captioner
from .base import ClipJob, stable_hash
from .cache import CaptionCache, cache_key
from .cleanup import clean_caption

log = logging.getLogger(__name__)

IDENTITY_KEYS = ("provider", "model", "model_id", "base_url", "resolved_revision")


def _str(value) -> str | None:
    return value if isinstance(value, str) and value.strip() else None


def kept_jobs(
    clips: pd.DataFrame,
    source: pd.DataFrame,
    selection: pd.DataFrame,
    frames: pd.DataFrame | None = None,
) -> list[ClipJob]:
    """The clips ``select`` kept, in ``clips.parquet`` order, with the source's caption.
    ``frames``: the scan's per-frame table, which gives a variable-rate clip its frames' times
    (frames are then sampled by time)."""
    keep = set(selection.loc[selection["keep"].fillna(False).astype(bool), "clip_id"])
    given = dict(zip(source["video_id"], source["caption"], strict=True))
    timeline = FrameTimes(frames)
    jobs = []
    for row in clips.to_dict("records"):
        if row["clip_id"] not in keep:
            continue
        times = timeline.of(SimpleNamespace(**row))
        jobs.append(
            ClipJob(
                clip_id=row["clip_id"],
                video_id=row["video_id"],
                source_path=row["source_path"],
                start=float(row["start_time"]),
                end=float(row["end_time"]),
                fps=float(row["fps"]),
                n_frames=int(row["n_frames"]),
                width=int(row["width"]),
                height=int(row["height"]),
                path=_str(row.get("path")),
                source_caption=_str(given.get(row["video_id"])),
                frame_rate_mode=_str(row.get("frame_rate_mode")),
                times=None if times is None else tuple(times.tolist()),
            )
        )
    return jobs


class Progress:
    def __init__(self, what: str, total: int, every: float = 30.0):
        self.what, self.total, self.every = what, total, every
        self.done = self.errors = 0
        self.t0 = self.last = time.monotonic()

    def tick(self, error: bool) -> None:
        self.done += 1
        self.errors += bool(error)
        now = time.monotonic()
        if now - self.last >= self.every or self.done == self.total:
            self.last = now
            rate = self.done / max(now - self.t0, 1e-9)
            log.info(
                "%s: %d/%d clips (%d errors), %.2f clips/s",
                self.what,
                self.done,
                self.total,
                self.errors,
                rate,
            )


def _free(obj) -> None:
    for attr in ("model", "processor", "image_processor", "tokenizer"):
        if hasattr(obj, attr):
            setattr(obj, attr, None)
    free_memory()


def caption_shard(
    clips: pd.DataFrame,
    source: pd.DataFrame,
    selection: pd.DataFrame,
    cfg: dict,
    *,
    cache_path=None,
    shard: str | None = None,
    device: str = "cpu",
    device_for: Callable[[str], str] | None = None,
    frames: pd.DataFrame | None = None,
) -> dict:
    """``caption.json`` for one shard (``{"meta": ..., "clips": {clip_id: record}}``).

    ``device`` is the captioner's device; ``device_for(pref)`` resolves the rewrite and alignment
    models' ``device`` settings (default: the captioner's device). ``frames``: the scan's
    per-frame table (``scan/frames.parquet``), for variable-rate clips (:func:`kept_jobs`).
    """
    cfg = with_defaults("caption", cfg)
    device_for = device_for or (lambda pref: device if pref in ("auto", "", None) else pref)
    jobs = kept_jobs(clips, source, selection, frames)
    captioner = make_captioner(cfg, device=device)
    ph = captioner.prompt_hash()
    sh = stable_hash(captioner.settings())
    counts = {"kept": len(jobs), "captioned": 0, "cached": 0, "errors": 0}

    with CaptionCache(cache_path) as cache:
        results, ident, inputs_path = _caption(captioner, jobs, cache, ph, sh, counts)
        records = _records(jobs, results, ident, ph, sh, cfg["cleanup"])
        counts["errors"] = sum(1 for r in records.values() if r["error"])
        if counts["errors"]:
            log.warning("caption: %d of %d clips have no caption", counts["errors"], len(jobs))
        rewrite_meta, align_meta = _later_steps(records, jobs, cfg, cache, device_for)

    meta = {
        "stage": "caption",
        "shard": shard,
        **{k: v for k, v in ident.items()},
        "prompt_hash": ph,
        "settings_hash": sh,
        "prompts": {"system": captioner.system, "user": captioner.user},
        "settings": captioner.settings(),
        "inputs_path": inputs_path,
        "cleanup": cfg["cleanup"],
        "rewrite": rewrite_meta,
        "alignment": align_meta,
        "counts": counts,
    }
    return {"meta": meta, "clips": records}


def _key(kind: str, clip_id: str, ident: dict, ph: str, sh: str, **extra) -> str:
    """The cache key of a captioner's or rewriter's answer for one clip."""
    parts = {k: ident.get(k) for k in IDENTITY_KEYS}
    return cache_key(kind, clip_id, model=parts, prompt=ph, settings=sh, **extra)


def _caption_key(
    job: ClipJob, ident: dict, ph: str, sh: str, timed: bool = False, sampled: bool = False
) -> str:
    """A clip's caption key. A variable-rate clip's key names what changed the model's input
    since: ``timed`` (the captioner writes its frames' times into the prompt, ``prompt_times``:
    Qwen3-VL, SmolVLM2), the decoded times (2026-12-05, once ``index / fps``); ``sampled`` (it
    reads frames, :func:`~clipsift.captioners.base.sample_frames`; the upload captioner sends
    the clip's file), frames spread over the clip's time (later on 2026-12-05, once over its frames).
    Their captions are made again; a constant-rate clip's key is as it was."""
    extra = {}
    if job.frame_rate_mode == "variable":
        extra |= {"timing": "decoded"} if timed else {}
        extra |= {"frames": "by_time"} if sampled and job.times is not None else {}
    return _key("caption", job.clip_id, ident, ph, sh, **extra)


def _caption(captioner, jobs: list[ClipJob], cache: CaptionCache, ph: str, sh: str, counts: dict):
    """``(results, ident, inputs_path)``: the answers by clip id, from the cache, then from the
    captioner for the rest (loaded only then: ``inputs_path`` is None when nothing ran)."""
    results: dict[str, dict] = {}
    ident = captioner.identity()
    timed = bool(getattr(captioner, "prompt_times", False))
    sampled = bool(captioner.samples_frames)
    todo = _from_cache(cache, jobs, (ident, ph, sh, timed, sampled), results)
    counts["cached"] = len(jobs) - len(todo)
    log.info(
        "caption: %d kept clips, %d from the cache, %d to caption with %s",
        len(jobs),
        counts["cached"],
        len(todo),
        ident["model_id"] if "model_id" in ident else ident["model"],
    )
    if not todo:
        return results, ident, None
    captioner.load()
    inputs_path = captioner.inputs_path
    new_ident = captioner.identity()
    if new_ident != ident:  # the revision resolved to a commit only once loaded
        ident = new_ident
        todo = _from_cache(cache, todo, (ident, ph, sh, timed, sampled), results)
        counts["cached"] = len(jobs) - len(todo)
    progress = Progress("caption", len(todo))

    def on_result(job: ClipJob, result) -> None:
        rec = result.to_dict()
        if result.error is None:
            cache.put(_caption_key(job, ident, ph, sh, timed, sampled), "caption", job.clip_id, rec)
        results[job.clip_id] = {**rec, "cached": False}
        progress.tick(result.error is not None)

    captioner.caption(todo, on_result)
    counts["captioned"] = len(todo)
    _free(captioner)
    return results, ident, inputs_path


def _from_cache(cache, pending: list[ClipJob], key: tuple, results: dict) -> list[ClipJob]:
    """The jobs of ``pending`` the cache has no caption for (``key``: the rest of
    :func:`_caption_key`'s arguments); the hits go to ``results``."""
    todo = []
    for job in pending:
        hit = cache.get(_caption_key(job, *key))
        if hit is None:
            todo.append(job)
        else:
            results[job.clip_id] = {**hit, "cached": True}
    return todo


def _later_steps(records: dict, jobs: list[ClipJob], cfg: dict, cache, device_for) -> tuple:
    """The optional rewrite and alignment of the records; their metas (None when off)."""
    rewrite_meta = None
    if cfg["rewrite"]["enabled"]:
        rewrite_meta = _rewrite(records, cfg, cache, device_for)
    align_meta = None
    if cfg["alignment"]["enabled"]:
        by_id = {j.clip_id: j for j in jobs}
        align_meta = _align(records, by_id, cfg, cache, device_for)
    return rewrite_meta, align_meta


def _records(jobs, results, ident, ph, sh, cleanup: dict) -> dict[str, dict]:
    on = cleanup["enabled"]
    out = {}
    for job in jobs:
        res = results.get(job.clip_id) or {"error": "not captioned"}
        raw = res.get("caption")
        text = (
            clean_caption(
                raw,
                strip_boilerplate=cleanup["strip_boilerplate"],
                drop_unfinished=cleanup["drop_unfinished"],
            )
            if on
            else raw
        )
        error = res.get("error")
        if error is None and not text:
            error = "empty caption"
        captions = {}
        if text and not error:
            captions["generated"] = text
        if job.source_caption:
            captions["source"] = job.source_caption
        out[job.clip_id] = {
            "clip_id": job.clip_id,
            "video_id": job.video_id,
            "caption": text if not error else None,
            "captions": captions,
            "raw": raw,
            "model": ident.get("model"),
            "model_id": ident.get("model_id"),
            "revision": res.get("revision") or ident.get("resolved_revision"),
            "prompt_hash": ph,
            "settings_hash": sh,
            "frames": res.get("frames") or {},
            "tokens": res.get("tokens") or {},
            "latency": res.get("latency"),
            "error": error,
            "cached": bool(res.get("cached")),
        }
    return out


def _rewrite(records: dict, cfg: dict, cache: CaptionCache, device_for) -> dict:
    """The optional LLM rewrite of the generated captions, into the records; its meta."""
    from .rewrite import make_rewriter

    rcfg = cfg["rewrite"]
    rewriter = make_rewriter(cfg, device=device_for(rcfg["device"]))
    ph, sh = rewriter.prompt_hash(), stable_hash(rewriter.settings())
    items = [(cid, r["captions"]["generated"]) for cid, r in records.items() if r["caption"]]
    done, ident = _rewrite_texts(rewriter, items, cache, ph, sh)
    _store_rewrites(records, done, ident, ph, cfg["cleanup"])
    return {**{k: ident.get(k) for k in IDENTITY_KEYS if ident.get(k)}, "prompt_hash": ph}


def _rewrite_texts(rewriter, items: list, cache: CaptionCache, ph: str, sh: str):
    """``(done, ident)``: the rewrites of ``items`` (``(clip_id, caption)``) by clip id, from the
    cache, then from the rewriter for the rest (loaded only then), and the rewriter's identity."""
    ident = rewriter.identity()

    def key(clip_id, text, ident):
        return _key("rewrite", clip_id, ident, ph, sh, text=stable_hash(text))

    done: dict[str, dict] = {}
    todo = []
    for cid, text in items:
        hit = cache.get(key(cid, text, ident))
        if hit is None:
            todo.append((cid, text))
        else:
            done[cid] = {**hit, "cached": True}
    if todo:
        rewriter.load()
        ident = rewriter.identity()
        texts = dict(todo)
        progress = Progress("rewrite", len(todo))

        def on_result(clip_id, result):
            rec = result.to_dict()
            if result.error is None:
                cache.put(key(clip_id, texts[clip_id], ident), "rewrite", clip_id, rec)
            done[clip_id] = {**rec, "cached": False}
            progress.tick(result.error is not None)

        rewriter.rewrite(todo, on_result)
        _free(rewriter)
    return done, ident


def _store_rewrites(records: dict, done: dict, ident: dict, ph: str, cleanup: dict) -> None:
    """Each rewrite, cleaned up, into its record; one that is not empty becomes the caption."""
    for cid, res in done.items():
        text = clean_caption(
            res.get("caption"),
            strip_boilerplate=cleanup["enabled"] and cleanup["strip_boilerplate"],
            drop_unfinished=cleanup["enabled"] and cleanup["drop_unfinished"],
        )
        error = res.get("error") or (None if text else "empty rewrite")
        rec = records[cid]
        rec["rewrite"] = {
            "caption": text if not error else None,
            "model": ident.get("model"),
            "revision": res.get("revision") or ident.get("resolved_revision"),
            "prompt_hash": ph,
            "tokens": res.get("tokens") or {},
            "latency": res.get("latency"),
            "error": error,
            "cached": bool(res.get("cached")),
        }
        if not error:
            rec["captions"]["rewrite"] = text
            rec["caption"] = text


def _align(records: dict, by_id: dict, cfg: dict, cache: CaptionCache, device_for) -> dict:
    from .alignment import make_aligner, passes

    acfg = cfg["alignment"]
    aligner = make_aligner(acfg, device=device_for(acfg["device"]))
    sh = stable_hash(aligner.settings())
    ident = aligner.identity()
    threshold = acfg.get("threshold")

    def key(clip_id, text, ident):
        # a variable-rate clip's frames are spread over its time since late 2026-12-05
        timed = {"frames": "by_time"} if by_id[clip_id].times is not None else {}
        return cache_key(
            "alignment", clip_id, model=ident["model"], revision=ident["resolved_revision"],
            settings=sh, text=stable_hash(text), **timed,
        )  # fmt: skip

    todo, scores = [], {}
    for cid, rec in records.items():
        if not rec["caption"]:
            rec["alignment"] = rec["alignment_pass"] = None
            continue
        hit = cache.get(key(cid, rec["caption"], ident))
        if hit is None:
            todo.append((by_id[cid], rec["caption"]))
        else:
            scores[cid] = (hit["score"], None)
    if todo:
        aligner.load()
        ident = aligner.identity()
        texts = {job.clip_id: text for job, text in todo}
        progress = Progress("alignment", len(todo))

        def on_result(clip_id, score, error):
            if error is None:
                cache.put(
                    key(clip_id, texts[clip_id], ident), "alignment", clip_id, {"score": score}
                )
            scores[clip_id] = (score, error)
            progress.tick(error is not None)

        aligner.score_all(todo, on_result)
        _free(aligner)
    for cid, (score, error) in scores.items():
        records[cid]["alignment"] = score
        records[cid]["alignment_pass"] = passes(score, threshold)
        if error:
            records[cid]["alignment_error"] = error
    extra = {k: v for k, v in ident.items() if k not in ("model", "revision", "resolved_revision")}
    return {
        **extra,  # what else names the model (kind, weights sha256, tokenizer)
        "model": ident["model"],
        "revision": ident["resolved_revision"],
        "frames": int(aligner.settings().get("frames", acfg["frames"])),
        "threshold": threshold,
    }
