"""WebDataset tar shards of the kept clips (``export.webdataset``), grouped by resolution bucket
and frame count, so that a trainer's loader reads batches of one shape; ``index.json`` lists
every tar with its clip ids."""

from __future__ import annotations

import io
import json
import logging
import os
import tarfile
from pathlib import Path

import pandas as pd

from .config import with_defaults
from .export import json_records
from .export_clips import int_or_none
from .io.atomic import atomic_path, write_json

log = logging.getLogger(__name__)


def frame_bucket(n: int, buckets: list[int]) -> int:
    """The largest bucket a clip of ``n`` frames can fill (0 below the smallest)."""
    fit = [b for b in sorted(buckets) if b <= n]
    return fit[-1] if fit else 0


def webdataset_groups(kept: pd.DataFrame, cfg: dict) -> dict[str, pd.DataFrame]:
    """Kept clips with a file, grouped by resolution bucket and frame count: the latents' bucket
    and frame count where the encode stage ran, else the exported size and a frame bucket."""
    kept = kept[kept["file"].notna()]
    buckets = with_defaults("export.webdataset", cfg)["frame_buckets"]
    res, frames = [], []
    for row in kept.to_dict("records"):
        lat_ok = row.get("latents.status") == "ok" and isinstance(row.get("latents.bucket"), str)
        if lat_ok:
            res.append(row["latents.bucket"])
            frames.append(int(row["latents.frames"]))
        else:
            w = int_or_none(row.get("export.width")) or int_or_none(row.get("width"))
            h = int_or_none(row.get("export.height")) or int_or_none(row.get("height"))
            res.append(f"{w}x{h}")
            frames.append(frame_bucket(int_or_none(row.get("n_frames")) or 0, buckets))
    keys = [f"{r}_f{f}" for r, f in zip(res, frames, strict=True)]
    kept = kept.assign(_group=keys)
    return {k: g.drop(columns="_group").sort_values("clip_id") for k, g in kept.groupby("_group")}


def sample_key(clip_id: str) -> str:
    """WebDataset keys end at the first dot of a member name: dots become underscores."""
    return clip_id.replace(".", "_").replace("/", "_")


def _tar_add(tf: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size, info.mtime, info.mode = len(data), 0, 0o644
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    tf.addfile(info, io.BytesIO(data))


def write_webdataset(
    meta: pd.DataFrame, dataset_dir: str | os.PathLike, out_dir: str | os.PathLike, cfg: dict
) -> list[dict]:
    """Tar shards ``{resolution}_f{frames}-{i:05d}.tar`` of the kept clips in ``out_dir``; each
    sample is ``{key}.mp4``, ``{key}.json`` (its metadata row) and ``{key}.txt`` (the caption,
    when there is one). Deterministic bytes (sorted samples, zero mtimes). Writes and returns
    the index (``index.json``)."""
    cfg = with_defaults("export.webdataset", cfg)
    out_dir, dataset_dir = Path(out_dir), Path(dataset_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    per_tar = cfg["max_samples_per_tar"]
    kept = meta[meta["keep"].fillna(False).astype(bool)]
    index = []
    for group, rows in sorted(webdataset_groups(kept, cfg).items()):
        recs = json_records(rows)
        for t, start in enumerate(range(0, len(recs), per_tar)):
            name = f"{group}-{t:05d}.tar"
            chunk = recs[start : start + per_tar]
            with (
                atomic_path(out_dir / name) as tmp,
                tarfile.open(tmp, "w", format=tarfile.GNU_FORMAT) as tf,
            ):
                for rec in chunk:
                    key = sample_key(rec["clip_id"])
                    _tar_add(tf, f"{key}.mp4", (dataset_dir / rec["file"]).read_bytes())
                    _tar_add(tf, f"{key}.json", json.dumps(rec, sort_keys=True).encode())
                    if isinstance(rec.get("caption"), str) and rec["caption"]:
                        _tar_add(tf, f"{key}.txt", rec["caption"].encode())
            res, frames = group.rsplit("_f", 1)
            index.append({"path": name, "group": group, "resolution": res,
                          "frames": int(frames), "samples": len(chunk),
                          "clip_ids": [r["clip_id"] for r in chunk]})  # fmt: skip
    write_json(out_dir / "index.json", {"tars": index})
    return index
