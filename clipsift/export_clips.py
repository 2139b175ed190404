"""The kept clips of a shard as video files (rule ``export_clips``, one job per shard).

Every clip that ``select`` kept (less the videos that are exact duplicates of a video in an
earlier shard) becomes ``results/dataset/clips/{shard}/{clip_id}.mp4``, plus a small per-shard
index ``results/dataset/clips/{shard}.parquet`` (:data:`CLIP_INDEX_COLUMNS`; the trainer
manifests read it too). Clips are written once, frame-accurately, in the cheapest way that gives the
same frames:

- a clip file the split already made with ``materialize: reencode`` (frame-accurate) and
  that fits ``max_height`` is hard-linked (or copied);
- a clip that is a whole source video, already an H.264 yuv420p mp4 that fits, unrotated,
  with no other stream and no metadata beyond the encoder's, is hard-linked (or copied);
- anything else is decoded over ``[start, end)`` and encoded with libx264 (the method of
  :func:`clipsift.split.clips.reencode`, plus the downscale to ``max_height`` and the x264
  determinism cap of :mod:`clipsift.sample`), into ``results/cache/export/{shard}/`` first and
  linked from there. Snakemake deletes a job's outputs before it runs again, so the cache is
  what makes a changed threshold cheap: the re-run re-links the clips already encoded and
  encodes only the newly kept ones. The cache may be deleted at any time.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

import av
import numpy as np
import pandas as pd

from .config import with_defaults
from .io.atomic import write_json
from .io.decode import VideoError, open_video, sample_aspect, stream_fps
from .io.files import file_identity, place
from .io.hashing import file_digest, json_digest
from .io.hdr import HDR_TRANSFERS, hdr_transfer
from .split.clips import reencode, same_rate, target_width

log = logging.getLogger(__name__)

CLIP_INDEX_COLUMNS = [
    "clip_id", "video_id", "file", "how", "width", "height", "n_frames", "fps",
    "bytes", "sha256", "error",
]  # fmt: skip
# container/stream metadata an encoder writes by itself; anything else (titles, locations,
# device names) stops a source file from being republished as it is
_PLAIN_METADATA = {"major_brand", "minor_version", "compatible_brands", "encoder",
                   "creation_time", "handler_name", "vendor_id", "language", "duration"}  # fmt: skip


def int_or_none(v) -> int | None:
    try:
        return None if v is None or (isinstance(v, float) and np.isnan(v)) else int(v)
    except (TypeError, ValueError):
        return None


def source_fits(clip: dict, src: dict, max_height: int | None) -> bool:
    """Whether the source file itself is the exported clip: the whole video, an H.264 yuv420p
    mp4 with even sides that fit ``max_height``, no rotation, square pixels, progressive and
    SDR (an interlaced one is exported deinterlaced, an HDR one tone-mapped), its first frame
    at time 0 (up to 3 frames late), only the video stream, and no container or stream
    metadata beyond what an encoder writes."""
    n_src, w, h = (
        int_or_none(src.get("n_frames")),
        int_or_none(clip.get("width")),
        int_or_none(clip.get("height")),
    )
    path = src.get("path")
    if not (isinstance(path, str) and Path(path).suffix.lower() in (".mp4", ".m4v")):
        return False
    if n_src is None or w is None or h is None or int_or_none(clip.get("start_frame")) != 0:
        return False
    if (int_or_none(clip.get("end_frame")) or 0) < n_src or w % 2 or h % 2:
        return False
    if src.get("codec") != "h264" or src.get("pix_fmt") != "yuv420p":
        return False
    if int_or_none(src.get("rotation")) or target_width(w, h, max_height) is not None:
        return False
    try:
        with open_video(path) as (container, stream):
            if len(container.streams) != 1 or sample_aspect(stream) != 1.0:
                return False
            keys = set(container.metadata) | set(stream.metadata)
            # the first frame, not the source table: tables ingested before the column
            first = next(container.decode(stream), None)
            if first is None or first.interlaced_frame or hdr_transfer(first) is not None:
                return False
            if first.time is None or abs(first.time) > max(1e-3, 3 / (stream_fps(stream) or 30)):
                # a clock that starts late (1.5 s): players show that long a blank lead-in, and
                # a reader of [start_time, end_time) from the file finds the frames late (an MP4
                # without an edit list starts its B-frames' delay late, 2 frames: that fits)
                return False
    except (VideoError, av.FFmpegError, OSError):
        return False
    return keys <= _PLAIN_METADATA


def _key(obj) -> str:
    return json_digest(obj, ascii_only=True)


def encode_settings(cfg: dict) -> dict:
    """What the bytes of an encoded clip depend on (besides the clip). ``method`` counts changes
    to how frames are encoded (3: the source's colour matrix and tags, 8-bit levels of every
    format and range), so a cache from before is dropped, not mixed in."""
    return {"max_height": cfg["max_height"], "crf": cfg["crf"], "preset": cfg["preset"],
            "method": 3}  # fmt: skip


def kept_clips(
    clips: pd.DataFrame, selection: pd.DataFrame, duplicates: pd.DataFrame | None = None
) -> pd.DataFrame:
    """The clips ``select`` kept, less those of cross-shard duplicate videos, by clip id."""
    keep = set(selection.loc[selection["keep"].fillna(False).astype(bool), "clip_id"])
    out = clips[clips["clip_id"].isin(keep)]
    if duplicates is not None and len(duplicates):
        out = out[~out["video_id"].isin(set(duplicates["video_id"]))]
    return out.sort_values("clip_id")


def _open_cache(cache_dir, skey: str) -> Path | None:
    """The encode cache, less the clips encoded with other settings (never used again)."""
    if not cache_dir:
        return None
    cache = Path(cache_dir)
    cache.mkdir(parents=True, exist_ok=True)
    for stale in cache.glob("*.mp4"):
        if stale.name.split(".")[-3:-2] != [skey]:
            stale.unlink()
    return cache


def _encoded(clip: dict, src: dict, settings: dict, skey: str, where: Path, cache: bool):
    """``(file, info, how)``: the clip cut from its source and encoded into ``where``; with
    ``cache`` (``where`` is the cache), found there (``how`` "cached") when it holds it, else
    kept there with its info. The file's name holds the settings' key and the clip's (source
    bytes, frames and times)."""
    key = {
        "source": src.get("hash") or file_identity(clip["source_path"]),
        **{k: clip[k] for k in ("start_frame", "end_frame", "start_time", "end_time")},
    }
    if src.get("interlaced") == 1:  # True (numpy's too); None or NaN in older source tables
        key["fields"] = "bwdif"  # deinterlaced since: a clip cached combed is not used
    if src.get("transfer") in HDR_TRANSFERS:
        key["hdr"] = "sdr-bt709"  # tone-mapped since
    variable = clip.get("frame_rate_mode") == "variable"
    if variable:
        # each frame at its own time, without B-frames (was the stream's average rate)
        key["timing"] = "source, no B-frames"
    fps = float(clip.get("fps") or "nan")
    if not variable and fps > 0 and not same_rate(float(src.get("fps") or 0), fps):
        key["rate"] = round(fps, 6)  # the frames' own, not the stream's stated (with_rate)
    ckey = _key(key)[:12]
    cached = where / f"{clip['clip_id']}.{skey}.{ckey}.mp4"
    info_path = cached.with_suffix(".json")
    if cache and cached.exists() and info_path.exists():
        return cached, json.loads(info_path.read_text()), "cached"
    info = reencode(
        clip["source_path"], cached, float(clip["start_time"]), float(clip["end_time"]),
        crf=settings["crf"], preset=settings["preset"], max_height=settings["max_height"],
        variable=variable, fps=fps,
    )  # fmt: skip
    info["sha256"] = file_digest(cached)
    if cache:
        write_json(info_path, info)
    return cached, info, "encoded"


def _placed(clip, src, dest: Path, row, materialize, link, settings, skey, cache):
    """Write one kept clip to ``dest`` the cheapest way that gives its frames; returns the
    index fields that this decides (``how``, and the size when the file is not the clip's
    own) and how the file got there, for the log.

    ``how`` says what the file is: ``encoded`` (cut and encoded by the export), ``split`` (the
    split's frame-accurate file) or ``source`` (the source file's bytes). How it was placed
    (from the export cache or encoded in this run; a hard link, reflink or copy) is no part of
    the published tables: it made a rerun after a threshold change, or after a kill, give
    other ``metadata.jsonl`` bytes than a fresh build of the same config (tryout 16)."""
    max_height = settings["max_height"]
    mat = clip.get("path")
    if (
        materialize == "reencode"
        and isinstance(mat, str)
        and mat != clip["source_path"]
        and os.path.exists(mat)
        and target_width(row["width"], row["height"], max_height) is None
    ):
        # the split's frame-accurate clip file (even sides, as reencode writes them)
        via = place(mat, dest, link)
        return {"how": "split", "width": row["width"] // 2 * 2,
                "height": row["height"] // 2 * 2}, f"split-{via}"  # fmt: skip
    if source_fits(clip, src, max_height):
        # a copy (a reflink where the file system can), never a hard link: a source
        # overwritten in place would change the dataset's file with it
        return {"how": "source"}, f"source-{place(clip['source_path'], dest, 'copy')}"
    cached, info, via = _encoded(clip, src, settings, skey, cache or dest.parent, cache is not None)
    if cache is None:
        os.replace(cached, dest)
    else:
        place(cached, dest, "hardlink" if link == "hardlink" else "copy")
    fields = {k: info.get(k) for k in ("width", "height", "n_frames", "sha256")}
    return {"how": "encoded", **fields}, via


def export_shard_clips(
    clips: pd.DataFrame,
    source: pd.DataFrame,
    selection: pd.DataFrame,
    out_dir: str | os.PathLike,
    *,
    final_dir: str | os.PathLike,
    dataset_dir: str | os.PathLike,
    cfg: dict,
    materialize: str = "virtual",
    cache_dir: str | os.PathLike | None = None,
    duplicates: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """The kept clips of one shard as files in ``out_dir`` (the caller swaps it into
    ``final_dir``); ``cfg`` is the ``export`` section. Returns the index
    (:data:`CLIP_INDEX_COLUMNS`): ``file`` is the clip file under ``final_dir``, relative to
    ``dataset_dir`` (a published table names no path of this machine); a clip that cannot be
    written has an ``error`` and no file (failures are data)."""
    cfg = with_defaults("export", cfg)
    out_dir, final_dir = Path(out_dir), Path(final_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    link = cfg["link"]
    settings = encode_settings(cfg)
    skey = _key(settings)[:8]
    cache = _open_cache(cache_dir, skey)
    sources = source.set_index("video_id").to_dict("index")
    rows, counts = [], {}
    for clip in kept_clips(clips, selection, duplicates).to_dict("records"):
        name = f"{clip['clip_id']}.mp4"
        dest = out_dir / name
        src = sources.get(clip["video_id"], {}) | {"path": clip["source_path"]}
        row = {"clip_id": clip["clip_id"], "video_id": clip["video_id"], "fps": clip["fps"],
               "width": int_or_none(clip["width"]), "height": int_or_none(clip["height"]),
               "n_frames": int_or_none(clip["n_frames"])}  # fmt: skip
        try:
            fields, via = _placed(clip, src, dest, row, materialize, link, settings, skey, cache)
            row |= fields
            row |= {
                "file": Path(os.path.relpath(final_dir / name, dataset_dir)).as_posix(),
                "bytes": dest.stat().st_size,
                "sha256": row.get("sha256") or file_digest(dest),  # an encoded clip's is known
                "error": None,
            }
        except (VideoError, av.FFmpegError, OSError, ValueError) as exc:
            log.warning("%s: %s", clip["clip_id"], exc)
            dest.unlink(missing_ok=True)
            row |= {"how": None, "file": None, "error": f"export failed: {exc}"}
            via = "failed"
        counts[via] = counts.get(via, 0) + 1
        rows.append(row)
    if cache is not None:  # json sidecars of clips that left the cache
        for info in cache.glob("*.json"):
            if not info.with_suffix(".mp4").exists():
                info.unlink()
    log.info("%d clip files: %s", len(rows), counts)
    return pd.DataFrame(rows, columns=CLIP_INDEX_COLUMNS)
