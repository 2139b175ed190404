"""The dataset metadata: one row per clip with its source fields, every filter and score column,
``keep`` and ``reasons``."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from .io.atomic import write_jsonl, write_parquet
from .selection import clip_table, load_json

SOURCE_FIELDS = ["video_id", "source", "uri", "caption", "hash", "codec", "rotation"]


def shard_metadata(source, clips, scores, selection, flash: dict, ocr: dict) -> pd.DataFrame:
    table = clip_table(clips, scores, flash, ocr).drop(
        columns=["video_id", "duration", "error", "split_reason"]
    )
    meta = clips.merge(
        source[SOURCE_FIELDS].rename(columns={"caption": "source_caption"}),
        on="video_id",
        how="left",
    )
    meta = meta.merge(table, on="clip_id", how="left").merge(selection, on="clip_id", how="left")
    meta["reasons"] = meta["reasons"].map(lambda r: list(r) if r is not None else [])
    return meta


def build_metadata(inputs, cfg: dict) -> pd.DataFrame:
    """Every shard's clips joined with their source rows and measurements; duplicates across shards."""
    n = len(inputs.clips)
    flash = list(inputs.flash) or [None] * n
    ocr = list(inputs.ocr) or [None] * n
    frames = []
    for src, clips, scores, sel, fl, oc in zip(
        inputs.sources, inputs.clips, inputs.scores, inputs.selection, flash, ocr, strict=True
    ):
        meta = shard_metadata(
            pd.read_parquet(src), pd.read_parquet(clips), pd.read_parquet(scores), pd.read_parquet(sel),
            load_json(fl) if fl else {}, load_json(oc) if oc else {},
        )  # fmt: skip
        meta.insert(0, "shard", Path(clips).parent.name)
        frames.append(meta)
    meta = pd.concat(frames, ignore_index=True)
    meta["duplicate_of"] = None
    if cfg.get("dedupe_across_shards", True) and len(meta):
        # a video whose exact bytes appeared in an earlier shard is a duplicate of that video
        first = meta.dropna(subset=["hash"]).drop_duplicates("hash").set_index("hash")["video_id"]
        owner = meta["hash"].map(first)
        dup = owner.notna() & (owner != meta["video_id"])
        meta.loc[dup, "duplicate_of"] = owner[dup]
        for i in meta.index[dup]:
            meta.at[i, "reasons"] = [*meta.at[i, "reasons"], f"duplicate_of={owner[i]}"]
        meta.loc[dup, "keep"] = False
    return meta


def write_metadata(meta: pd.DataFrame, parquet_path, jsonl_path) -> None:
    write_parquet(parquet_path, meta)
    write_jsonl(jsonl_path, json.loads(meta.to_json(orient="records")))
