"""Ingest one shard: fetch archive members if needed, probe and hash every video.

Output: one row per source video in ``source.parquet``. Unreadable videos are rows with an
``error``; exact duplicates (same content hash) within the shard get ``duplicate_of`` and are
skipped by later stages (duplicates across shards are resolved by the export, which sees all).
"""

from __future__ import annotations

import json
import logging
import os
import time
from pathlib import Path

import pandas as pd

from .failures import MIN_FAILED_VIDEOS, VIDEO_CAUSES, check_error_share
from .io.decode import probe
from .io.hashing import file_digest
from .io.hdr import HDR_TRANSFERS
from .sources import SourceError, SourceUnavailable, fetch_archive

log = logging.getLogger(__name__)

SOURCE_COLUMNS = [
    "video_id", "source", "uri", "path", "caption", "extra", "size", "hash", "duplicate_of",
    "duration", "fps", "n_frames", "width", "height", "rotation", "sar", "codec", "pix_fmt", "bit_rate",
    "interlaced", "transfer", "stream_start", "error", "mtime_ns",
]  # fmt: skip


def content_hash(path: str | os.PathLike, algo: str = "blake2b") -> str:
    """A video's content hash (``ingest.hash``): duplicates and the changed-source check."""
    return file_digest(path, algo)


def extracted_dir(results: str | Path, shard: str) -> Path:
    """Where an archive shard's members are extracted (not a rule output: removable at any time)."""
    return Path(results) / "work" / shard / "extracted"


def shard_items(
    plan_items: pd.DataFrame, source_cfg: dict, shard: str, results: str | Path
) -> pd.DataFrame:
    """The shard's videos; archive rows are downloaded and expanded into their members."""
    rows = []
    for row in plan_items.to_dict("records"):
        if row["kind"] != "archive":
            rows.append({**row, "video_id": f"{row['source']}-{row['id']}"})
            continue
        try:
            members = fetch_archive(source_cfg, row["archive"], extracted_dir(results, shard))
        except SourceUnavailable:
            raise  # not the archive's fault: the job fails, and a retry or the next run fetches it
        except SourceError as exc:
            # the archive itself is unusable (unsafe, a bomb, not an archive): one error row
            rows.append({**row, "video_id": f"{shard}-archive", "error": str(exc)})
            continue
        for it in members:
            rows.append(
                {
                    "source": row["source"],
                    "video_id": f"{shard}-{it.id}",
                    "uri": it.uri,
                    "path": it.path,
                    "caption": it.caption,
                    "extra": json.dumps(it.extra, sort_keys=True, default=str),
                }
            )
    return pd.DataFrame(rows)


def ingest_shard(items: pd.DataFrame, *, hash_algo: str = "blake2b") -> pd.DataFrame:
    """Probe and hash each video; never raises for a bad video."""
    out = []
    seen: dict[str, str] = {}
    t0 = time.monotonic()
    for i, row in enumerate(items.to_dict("records")):
        rec = {c: row.get(c) for c in SOURCE_COLUMNS}
        rec["rotation"] = 0
        if not isinstance(rec.get("error"), str):  # pandas reads a missing error back as NaN
            rec["error"] = None
            path = rec["path"]
            if not path or not os.path.exists(path):
                rec["error"] = "missing file"
            else:
                st = os.stat(path)
                # size and mtime as ingested: a later change of the file is noticed
                # (clipsift.sources.changes); never published (machine-specific)
                rec["size"], rec["mtime_ns"] = st.st_size, st.st_mtime_ns
                rec["hash"] = content_hash(path, hash_algo)
                if rec["hash"] in seen:
                    rec["duplicate_of"] = seen[rec["hash"]]
                else:
                    seen[rec["hash"]] = rec["video_id"]
                rec.update(probe(path))
        out.append(rec)
        if (i + 1) % 50 == 0:
            log.info("ingest: %d/%d videos (%.1f s)", i + 1, len(items), time.monotonic() - t0)
    df = pd.DataFrame(out, columns=SOURCE_COLUMNS)
    n_err = int(df["error"].notna().sum())
    log.info(
        "ingest: %d videos, %d errors, %d duplicates",
        len(df),
        n_err,
        int(df["duplicate_of"].notna().sum()),
    )
    hdr = df[df["transfer"].isin(list(HDR_TRANSFERS))]
    if len(hdr):
        # a lossy conversion the dataset's users should know about (clipsift.io.hdr)
        log.warning(
            "ingest: %d HDR video(s) (%s), e.g. %s: tone-mapped to SDR BT.709 for captions, "
            "scorers, latents and clip files, and their luma measures (technical.*, flash) read "
            "at SDR levels (source.parquet: transfer)",
            len(hdr), ", ".join(sorted({HDR_TRANSFERS[t] for t in hdr["transfer"]})),
            hdr["video_id"].iloc[0],
        )  # fmt: skip
    return df


def check_probed(items: pd.DataFrame, table: pd.DataFrame, shard: str, max_share: float) -> None:
    """Stop the ingest job (:class:`clipsift.failures.StageFailed`) when more than ``max_share``
    of the videos it probed, and at least :data:`~clipsift.failures.MIN_FAILED_VIDEOS`, cannot
    be read (``table``: :func:`ingest_shard` of ``items``, one row per item, in order). An item
    that came with an error (a refused archive, a failed generation) was judged by the stage
    that made it, and is not ingest's to count."""
    given = items["error"] if "error" in items else pd.Series(None, index=items.index)
    check_error_share(
        "ingest",
        shard,
        table["error"][[not isinstance(e, str) for e in given]],
        max_share,
        unit="videos",
        causes=VIDEO_CAUSES,
        min_failed=MIN_FAILED_VIDEOS,
    )


# The source options that the per-shard rules read: an archive source's, which (re)fetch and
# extract its members (fetch_archive). Everything else about a source (its path, columns,
# shard_size, ...) acts through the plan, whose shard files change only when their items do.
FETCH_KEYS = ("name", "type", "repo", "revision", "repo_type", "token_env", "retries", "cache_dir",
              "max_member_mb", "max_extracted_mb", "max_ratio", "extensions", "caption_key")  # fmt: skip


def fetch_params(source_cfg: dict) -> dict:
    """The ``source`` param of the per-shard rules from ingest to export: the keys of
    ``source_cfg`` they read (the type; for an archive source, :data:`FETCH_KEYS`), so editing
    any other option of a source re-runs none of its shards."""
    if source_cfg.get("type") != "hf_archives":
        return {"type": source_cfg.get("type")}
    return {k: source_cfg[k] for k in FETCH_KEYS if k in source_cfg}


def usable(source: pd.DataFrame) -> pd.DataFrame:
    """Videos later stages decode: no error, not a duplicate."""
    return source[source["error"].isna() & source["duplicate_of"].isna()]


def localize(
    source: pd.DataFrame, source_cfg: dict, results: str | Path, shard: str
) -> pd.DataFrame:
    """Make sure archive members are on disk again (re-extracted from the Hub cache if removed)."""
    if source_cfg.get("type") != "hf_archives":
        return source
    ok = source["error"].isna()
    missing = source.loc[ok, "path"].dropna().map(lambda p: not os.path.exists(p))
    if missing.any():
        archives = {json.loads(e).get("archive") for e in source.loc[ok, "extra"].dropna()}
        for archive in sorted(a for a in archives if a):
            log.info("re-extracting %s (extracted files were removed)", archive)
            fetch_archive(source_cfg, archive, extracted_dir(results, shard))
    return source
