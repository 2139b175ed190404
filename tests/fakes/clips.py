"""Shared by the caption tests: generated clips, the shard tables over them, the config."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from clipsift.config import SCHEMA
from clipsift.sample import Segment, render_video, write_corrupt


def caption_config(**over) -> dict:
    """The ``caption`` section with the schema's defaults, then ``over`` (nested dicts merged)."""
    from snakemake.utils import validate

    cfg = {"sources": [{"name": "x", "type": "folder", "path": "."}], "caption": {}}
    validate(cfg, str(SCHEMA))
    out = cfg["caption"]
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = {**out[key], **value}
        else:
            out[key] = value
    return out


def render_caption_videos(out: Path) -> dict[str, Path]:
    """160x90 at 10 fps: ``a`` has scenes of 2 s and 3 s, ``b`` one of 2.5 s; ``bad`` is corrupt."""
    render_video(out / "a.mp4", [Segment(20, seed=1), Segment(30, seed=2)], fps=10, size=(160, 90))
    render_video(out / "b.mp4", [Segment(25, seed=3, pan=(1.0, 0))], fps=10, size=(160, 90))
    write_corrupt(out / "bad.mp4", "truncated", source=out / "b.mp4")
    return {"a": out / "a.mp4", "b": out / "b.mp4", "bad": out / "bad.mp4"}


def vfr_caption_clip(out: Path):
    """One 5-s shot whose frame rate drops from 30 to 10 fps halfway through it (2 s, then 3 s:
    a phone in low light), made into a clip by the pipeline's ingest, scan and split, as the
    caption job ``kept_jobs`` builds from those tables (with the scan's frame times), and its
    frames' decoded times in seconds from the clip's start."""
    from clipsift.captioners.shard import kept_jobs
    from clipsift.config import with_defaults
    from clipsift.ingest import ingest_shard
    from clipsift.io.decode import iter_frames
    from clipsift.split.clips import scenes_to_clips
    from clipsift.split.scan import scan_shard

    path = out / "drop.mp4"
    times = [i / 30 for i in range(60)] + [2.0 + i / 10 for i in range(30)]
    render_video(path, [Segment(90, seed=32, pan=(1.0, 0))], fps=30, size=(160, 90),
                 times=times)  # fmt: skip
    items = pd.DataFrame([{"source": "s", "video_id": "v", "uri": str(path), "path": str(path),
                           "caption": None}])  # fmt: skip
    source = ingest_shard(items)
    scenes, frames, _, _ = scan_shard(source, with_defaults("scan", None))
    clips = scenes_to_clips(scenes, source, with_defaults("split", None), frames)
    (clip,) = clips.itertuples()
    (job,) = kept_jobs(clips, source, pd.DataFrame({"clip_id": clips["clip_id"], "keep": True}),
                       frames)  # fmt: skip
    decoded = [f.time for f in iter_frames(path)]
    return job, [t - job.start for t in decoded[clip.start_frame : clip.end_frame]]


def tables(videos: dict[str, Path]):
    """clips / source / selection tables of a shard: 4 kept clips (one undecodable), 1 rejected."""

    def clip(cid, vid, start, end, path):
        return {
            "clip_id": cid, "video_id": vid, "source_path": str(path), "path": str(path),
            "start_time": start, "end_time": end, "fps": 10.0, "n_frames": round((end - start) * 10),
            "width": 160, "height": 90, "split_reason": None, "error": None,
        }  # fmt: skip

    clips = pd.DataFrame(
        [
            clip("a_0000", "a", 0.0, 2.0, videos["a"]),
            clip("a_0001", "a", 2.0, 5.0, videos["a"]),
            clip("b_0000", "b", 0.0, 2.5, videos["b"]),
            clip("b_0001", "b", 0.0, 1.0, videos["b"]),  # rejected by select
            clip("bad_0000", "bad", 0.0, 2.0, videos["bad"]),
        ]
    )
    source = pd.DataFrame(
        {"video_id": ["a", "b", "bad"], "caption": ["A given caption.", None, None]}
    )
    selection = pd.DataFrame({"clip_id": clips["clip_id"], "keep": [True, True, True, False, True]})
    return clips, source, selection


def caption_run_config(caption: dict) -> dict:
    """A workflow config over ``lists/videos.jsonl`` of the working folder: one shard, no OCR,
    every clip kept, the ``caption`` section given."""
    return {
        "results": "results",
        "shard_size": 4,
        "sources": [{"name": "m", "type": "metalist", "path": "lists/videos.jsonl"}],
        "split": {"min_seconds": 1.0, "max_seconds": 10.0},
        "filters": {"ocr": {"enabled": False}},
        "select": {"thresholds": {}, "flash": {"record_only": True}},
        "caption": caption,
    }
