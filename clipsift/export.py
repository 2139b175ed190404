"""The dataset: the kept clips as video files, the metadata of every clip, WebDataset shards.

Two steps, two rules (``rules/export.smk``):

1. :mod:`clipsift.export_clips` (rule ``export_clips``, one job per shard): the kept clips as
   files, ``results/dataset/clips/{shard}/{clip_id}.mp4``, and a per-shard index.

2. :func:`build_metadata` and :func:`write_dataset` (rule ``export``, once): one row per clip
   with its source fields, every filter and score column, ``keep``, ``reasons`` and
   ``rejections``, the caption (caption stage, else the source's), the latents (encode stage)
   and ``file``, the exported
   clip's path relative to the dataset folder. ``metadata.parquet``/``.jsonl`` hold every clip,
   ``kept.parquet`` the kept ones (the dataset card's default config), ``rejected.parquet`` the
   rejected ones with their reasons. Optional: WebDataset tar shards of the kept clips
   (:mod:`clipsift.webdataset`).

Paths in the metadata written by the export (``file``, ``latents.*_path``) are relative to the
dataset folder, so it can move or be published; ``source_path`` and ``path`` stay where the
sources are.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

import numpy as np
import pandas as pd

from . import reasons
from .config import with_defaults
from .counts import clips_per_test, rejection_tests, source_captions_of_several_scenes
from .io.atomic import write_json, write_jsonl, write_parquet
from .portable import portable_table
from .selection import clip_table, filter_records, load_json

log = logging.getLogger(__name__)

SOURCE_FIELDS = [
    "video_id",
    "source",
    "uri",
    "caption",
    "hash",
    "codec",
    "rotation",
    "stream_start",
]

# columns of the latents table that the metadata already has from clips.parquet
_LATENT_SKIP = {"clip_id", "video_id", "source_path", "start_time", "end_time", "fps"}
# caption record fields that are not facts about the caption (timings, cache hits, raw text)
_CAPTION_SKIP = {"clip_id", "video_id", "caption", "captions", "raw", "frames", "tokens",
                 "latency", "cached", "rewrite"}  # fmt: skip
INT_COLUMNS = ["scene", "window", "start_frame", "end_frame", "n_frames", "width", "height"]
REJECTED_COLUMNS = [
    "shard", "clip_id", "video_id", "source", "uri", "start_time", "end_time", "duration",
    "reasons", "rejections", "error", "split_reason", "duplicate_of",
]  # fmt: skip


# ----------------------------------------------------------------------------- duplicates


def cross_shard_duplicates(sources: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """Videos whose exact bytes (content hash) appeared in an earlier shard (shards in sorted
    order, the order of every all-shard input): ``video_id, shard, duplicate_of, owner_shard``.

    Duplicates inside a shard are already marked by ingest (``duplicate_of``) and not split."""
    first: dict[str, tuple[str, str]] = {}
    rows = []
    for shard in sorted(sources):
        src = sources[shard]
        for vid, h, dup in zip(src["video_id"], src["hash"], src["duplicate_of"], strict=True):
            if not isinstance(h, str) or isinstance(dup, str):
                continue
            if h in first and first[h][1] != shard:
                rows.append({"video_id": vid, "shard": shard, "duplicate_of": first[h][0],
                             "owner_shard": first[h][1]})  # fmt: skip
            else:
                first.setdefault(h, (vid, shard))
    return pd.DataFrame(rows, columns=["video_id", "shard", "duplicate_of", "owner_shard"])


# ----------------------------------------------------------------------------- metadata


def shard_metadata(source, clips, scores, selection, records: dict) -> pd.DataFrame:
    """One shard's clips with their source fields, measurements (``records``: the filters'
    per-clip records, :func:`clipsift.selection.clip_table`) and selection."""
    table = clip_table(clips, scores, records).drop(
        columns=["video_id", "duration", "error", "split_reason"]
    )
    meta = clips.merge(
        # reindex: a source table ingested before a field was added lacks it
        source.reindex(columns=SOURCE_FIELDS).rename(columns={"caption": "source_caption"}),
        on="video_id",
        how="left",
    )
    meta = meta.merge(table, on="clip_id", how="left").merge(selection, on="clip_id", how="left")
    meta["reasons"] = meta["reasons"].map(lambda r: list(r) if r is not None else [])
    meta["rejections"] = reasons.column_of(meta)
    return meta


def _named(inputs, name: str) -> list:
    return list(getattr(inputs, name, None) or [])


def _by_shard(paths: list, *, stem: bool = False) -> dict[str, str]:
    """Per-shard files keyed by shard: ``shards/{shard}/x`` or, with ``stem``, ``{shard}.parquet``."""
    return {(Path(p).stem if stem else Path(p).parent.name): p for p in paths}


def caption_columns(doc: dict, clip_ids) -> pd.DataFrame:
    """The caption stage's records (caption.json) as ``caption.*`` columns, one row per clip."""
    recs = (doc or {}).get("clips", {})
    rows = []
    for cid in clip_ids:
        rec = recs.get(cid)
        row = {"clip_id": cid}
        if isinstance(rec, dict):
            row["caption.text"] = rec.get("caption")
            for k, v in rec.items():
                if k not in _CAPTION_SKIP and (v is None or isinstance(v, (str, int, float))):
                    row[f"caption.{k}"] = v
            for k, v in (rec.get("captions") or {}).items():
                if k != "source":  # the source's caption is source_caption
                    row[f"caption.{k}"] = v
            rw = rec.get("rewrite")
            if isinstance(rw, dict):
                row |= {f"caption.rewrite_{k}": rw.get(k) for k in ("model", "revision", "error")}
        rows.append(row)
    return pd.DataFrame(rows)


def latent_columns(lat: pd.DataFrame, dataset_dir: str | os.PathLike) -> pd.DataFrame:
    """latents.parquet as ``latents.*`` columns; file paths relative to ``dataset_dir``."""
    base = os.path.abspath(dataset_dir)
    out = lat[[c for c in lat.columns if c not in _LATENT_SKIP or c == "clip_id"]].copy()
    for col in out.columns:
        if col.endswith("_path"):
            out[col] = out[col].map(
                lambda p: (
                    Path(os.path.relpath(os.path.abspath(p), base)).as_posix()
                    if isinstance(p, str) and p
                    else None
                )
            )
    return out.rename(columns={c: f"latents.{c}" for c in out.columns if c != "clip_id"})


def build_metadata(
    inputs,
    cfg: dict,
    dataset_dir: str | os.PathLike | None = None,
    roots: list[tuple[str, str]] = (),
) -> pd.DataFrame:
    """Every shard's clips joined with their source rows and measurements; duplicates across
    shards; with the optional inputs ``captions`` (caption.json), ``latents`` (latents.parquet)
    and ``clip_files`` (the export_clips indexes), also the captions, latents and ``file``.
    ``roots``: :func:`clipsift.portable.path_roots`, for paths as the config gave them."""
    cfg = with_defaults("export", cfg)
    dataset_dir = Path(dataset_dir or "results/dataset")
    files = _by_shard(_named(inputs, "clip_files"), stem=True)
    meta, sources = _joined_shards(inputs, dataset_dir, files)
    for col in INT_COLUMNS:  # integers, also where a failed video leaves them empty
        if col in meta:
            meta[col] = pd.to_numeric(meta[col], errors="coerce").round().astype("Int64")
    _mark_duplicates(meta, sources, cfg["dedupe_across_shards"])
    if files:
        _mark_export_failures(meta)
    elif "file" not in meta:
        meta["file"] = None
    meta = _training_caption(meta)
    front = ["shard", "clip_id", "video_id", "keep", "reasons", "file", "caption", "caption_source",
             "rejections"]  # fmt: skip
    meta = meta[front + [c for c in meta.columns if c not in front]]
    return portable_table(meta, list(roots)) if roots else meta


def _joined_shards(inputs, dataset_dir: Path, files: dict) -> tuple[pd.DataFrame, dict]:
    """Every shard's :func:`shard_metadata` with its captions, latents and clip files joined
    on, concatenated; and the source tables by shard."""
    records = filter_records(inputs, len(inputs.clips))
    captions = _by_shard(_named(inputs, "captions"))
    latents = _by_shard(_named(inputs, "latents"))
    frames, sources = [], {}
    for src, clips, scores, sel, recs in zip(
        inputs.sources, inputs.clips, inputs.scores, inputs.selection, records, strict=True
    ):
        shard = Path(clips).parent.name
        sources[shard] = pd.read_parquet(src)
        meta = shard_metadata(
            sources[shard], pd.read_parquet(clips), pd.read_parquet(scores), pd.read_parquet(sel),
            recs,
        )  # fmt: skip
        meta.insert(0, "shard", shard)
        if shard in captions:
            meta = meta.merge(
                caption_columns(load_json(captions[shard]), meta["clip_id"]),
                on="clip_id",
                how="left",
            )
        if shard in latents:
            lat = latent_columns(pd.read_parquet(latents[shard]), dataset_dir)
            meta = meta.merge(lat, on="clip_id", how="left")
        if shard in files:
            idx = pd.read_parquet(files[shard])
            idx = idx[["clip_id", "file", "how", "width", "height", "bytes", "sha256", "error"]]
            for col in ("width", "height", "bytes"):
                idx[col] = idx[col].astype("Int64")
            meta = meta.merge(
                idx.rename(columns={c: f"export.{c}" for c in idx.columns if c not in ("clip_id", "file")}),
                on="clip_id", how="left",
            )  # fmt: skip
        frames.append(meta)
    return pd.concat(frames, ignore_index=True), sources


def _mark_duplicates(meta: pd.DataFrame, sources: dict, across_shards: bool) -> None:
    """``duplicate_of`` of every clip: within a shard from the split, across shards (with
    ``across_shards``) from the content hashes, where the clip is also rejected."""
    meta["duplicate_of"] = None
    if not len(meta):
        return
    of = reasons.split_duplicates(meta["split_reason"])
    within = of.notna()
    meta.loc[within, "duplicate_of"] = of[within]
    if across_shards:
        # a video whose exact bytes appeared in an earlier shard is a duplicate of that video
        dups = cross_shard_duplicates(sources).set_index("video_id")["duplicate_of"]
        owner = meta["video_id"].map(dups)
        dup = owner.notna()
        meta.loc[dup, "duplicate_of"] = owner[dup]
        for i in meta.index[dup]:
            _reject(meta, i, reasons.duplicate(owner[i]))
        meta.loc[dup, "keep"] = False


def _mark_export_failures(meta: pd.DataFrame) -> None:
    """A kept clip without its file is rejected (``export_failed``); ``file`` only on kept clips."""
    if "export.error" not in meta:  # no shard had a kept clip
        meta["export.error"], meta["file"] = None, None
    missing = meta["file"].isna() & meta["export.error"].isna()
    meta.loc[missing, "export.error"] = "export failed: no clip file"
    failed = meta["keep"].fillna(False).astype(bool) & meta["export.error"].notna()
    for i in meta.index[failed]:
        _reject(meta, i, reasons.export_failed(meta.at[i, "export.error"]))
    meta.loc[failed, "keep"] = False
    meta.loc[~failed & missing, "export.error"] = None
    meta.loc[~meta["keep"].fillna(False).astype(bool), "file"] = None


def _training_caption(meta: pd.DataFrame) -> pd.DataFrame:
    """``caption``, the text a trainer uses: the caption stage's, else the one the source gave
    (``caption_source`` says which)."""
    generated = (
        meta["caption.text"] if "caption.text" in meta else pd.Series(None, index=meta.index)
    )
    has_gen = generated.map(lambda v: isinstance(v, str) and bool(v.strip()))
    has_src = meta["source_caption"].map(lambda v: isinstance(v, str) and bool(v.strip()))
    meta["caption"] = np.where(has_gen, generated, np.where(has_src, meta["source_caption"], None))
    meta["caption_source"] = np.where(has_gen, "caption", np.where(has_src, "source", None))
    parts = source_captions_of_several_scenes(meta)
    if parts.any():
        log.warning(
            "export: %d kept clip(s) of %d video(s) train on their video's source caption, though "
            "the video was cut into several scenes: the caption may describe other shots (e.g. "
            "%s). Caption the clips (caption.enabled), or keep one-shot videos whole "
            "(split.mode: whole)",
            int(parts.sum()), meta.loc[parts, "video_id"].nunique(), meta.loc[parts, "clip_id"].iloc[0],
        )  # fmt: skip
    return meta.drop(columns=[c for c in ("caption.text",) if c in meta])


def _reject(meta: pd.DataFrame, i, rejection: dict) -> None:
    meta.at[i, "rejections"] = [*meta.at[i, "rejections"], rejection]
    meta.at[i, "reasons"] = [*meta.at[i, "reasons"], rejection["text"]]


def rejected_table(meta: pd.DataFrame) -> pd.DataFrame:
    rej = meta[~meta["keep"].fillna(False).astype(bool)]
    return rej[[c for c in REJECTED_COLUMNS if c in rej.columns]].reset_index(drop=True)


def json_records(df: pd.DataFrame) -> list[dict]:
    return json.loads(df.to_json(orient="records"))


def write_metadata(meta: pd.DataFrame, parquet_path, jsonl_path) -> None:
    write_parquet(parquet_path, meta, reasons.TYPES)
    write_jsonl(jsonl_path, json_records(meta))


class EmptyDataset(RuntimeError):
    pass


def check_kept(meta: pd.DataFrame, allow_empty: bool = False) -> None:
    """A dataset without a kept clip is a run that made nothing, however green: stop, with why
    each clip went (``export.allow_empty`` publishes it anyway). Thresholds from another
    source's calibration, a column that every clip lacks, sources that all fail to decode: each
    used to end in rc 0 and an empty ``kept.parquet``."""
    if allow_empty or meta["keep"].fillna(False).astype(bool).any():
        return
    why = clips_per_test(rejection_tests(meta))
    counted = ", ".join(f"{t}: {n}" for t, n in sorted(why.items(), key=lambda kv: -kv[1]))
    errors = meta["error"].dropna() if "error" in meta else pd.Series([], dtype=object)
    first = f"; first error: {errors.iloc[0]}" if len(errors) else ""
    clips, videos = len(meta), meta["video_id"].nunique()
    raise EmptyDataset(
        f"no clip kept: {clips} clip{'s' * (clips != 1)} of {videos} video{'s' * (videos != 1)}, "
        "clips rejected by each test: "
        f"{counted or 'nothing recorded'} (a clip counts under each of its reasons){first}. "
        "Check the sources and the select thresholds (results/shards/*/selection.parquet has "
        "every clip's reasons; clipsift status shows the funnel), or set export.allow_empty: "
        "true to write an empty dataset."
    )


def write_dataset(meta: pd.DataFrame, out: dict, easyanimate: dict | None = None) -> None:
    """``out``: parquet, jsonl (every clip), kept (parquet), rejected (parquet), and
    easyanimate (json, optional: ``easyanimate`` is the ``export.easyanimate`` section)."""
    write_metadata(meta, out["parquet"], out["jsonl"])
    kept = meta[meta["keep"].fillna(False).astype(bool)].reset_index(drop=True)
    write_parquet(out["kept"], kept, reasons.TYPES)
    write_parquet(out["rejected"], rejected_table(meta), reasons.TYPES)
    if out.get("easyanimate"):
        write_json(out["easyanimate"], easyanimate_train_file(kept, easyanimate or {}))


def easyanimate_train_file(kept: pd.DataFrame, cfg: dict) -> list[dict]:
    """EasyAnimate's train file (:mod:`clipsift.manifests.lists` says what its loader reads)
    over the kept clips that have a file: ``file_path`` relative to the dataset folder (its
    ``--train_data_dir``), the clip's caption (the caption stage's, else the source's)."""
    from .manifests import check_empty_prompts
    from .manifests.lists import easyanimate_entry

    rows = kept[kept["file"].notna()] if "file" in kept else kept.iloc[:0]
    entries = [
        easyanimate_entry(
            r["file"], r["caption"] if isinstance(r["caption"], str) else "",
            r.get("export.width"), r.get("export.height"),
        )
        for r in rows.to_dict("records")
    ]  # fmt: skip
    empty = sum(1 for e in entries if not e["text"].strip())
    if empty:
        check_empty_prompts(
            empty, len(entries), with_defaults("export.easyanimate", cfg)["empty_prompts"],
            where="easyanimate.json", option="export.easyanimate.empty_prompts",
        )  # fmt: skip
    return entries
