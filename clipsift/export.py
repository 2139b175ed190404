"""The dataset metadata: one row per clip with its source fields and everything measured on it."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from .io.atomic import write_jsonl, write_parquet

SOURCE_FIELDS = [
    "video_id",
    "source",
    "uri",
    "caption",
    "hash",
    "codec",
    "rotation",
    "duplicate_of",
]


def build_metadata(inputs, cfg: dict) -> pd.DataFrame:
    """Join clips with their source rows across all shards; resolve duplicates across shards."""
    frames = []
    for src_path, clips_path in zip(inputs.sources, inputs.clips, strict=True):
        shard = Path(clips_path).parent.name
        src = pd.read_parquet(src_path)
        clips = pd.read_parquet(clips_path)
        clips.insert(0, "shard", shard)
        frames.append(
            clips.merge(
                src[SOURCE_FIELDS].rename(columns={"caption": "source_caption"}),
                on="video_id",
                how="left",
            )
        )
    meta = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
    if meta.empty:
        return meta.assign(keep=pd.Series(dtype=bool), reasons=pd.Series(dtype=object))

    # a video whose exact content appeared in an earlier shard is a duplicate of that video
    if cfg.get("dedupe_across_shards", True):
        first = meta.dropna(subset=["hash"]).drop_duplicates("hash").set_index("hash")["video_id"]
        owner = meta["hash"].map(first)
        dup = owner.notna() & (owner != meta["video_id"]) & meta["duplicate_of"].isna()
        meta.loc[dup, "duplicate_of"] = owner[dup]

    reasons = []
    for row in meta.itertuples():
        r = []
        if isinstance(row.error, str):
            r.append(f"error: {row.error}")
        if isinstance(row.split_reason, str):
            r.append(row.split_reason)
        if isinstance(row.duplicate_of, str):
            r.append(f"duplicate_of={row.duplicate_of}")
        reasons.append(r)
    meta["reasons"] = reasons
    meta["keep"] = [not r for r in reasons]
    return meta


def write_metadata(meta: pd.DataFrame, parquet_path, jsonl_path) -> None:
    write_parquet(parquet_path, meta)
    records = json.loads(meta.to_json(orient="records"))
    write_jsonl(jsonl_path, records)
