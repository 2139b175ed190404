"""The export (clip files, metadata, WebDataset), provenance and dataset card: unit tests, then
real runs of the whole workflow (captions from a local fake API, latents from tiny models) in
two working directories: the dataset loads with ``datasets``, the card parses with
huggingface_hub, every path exists, secrets are nowhere, and the rebuild is identical.

The finished run (:func:`built_dataset`) is shared with test_report.py and test_publish.py.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import subprocess
import sys
import tarfile
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
from fakes.chat_server import FakeChatServer
from helpers import (
    SNAKEFILE,
    all_shards_table,
    base_config,
    count_frames,
    run_snakemake,
    snakemake_cli,
    write_config,
)

from clipsift import card as cardmod
from clipsift import export as ex
from clipsift import export_clips as xc
from clipsift import provenance as pv
from clipsift.counts import source_captions_of_several_scenes, stage_counts
from clipsift.io.decode import probe
from clipsift.sample import Segment, render_video, write_corrupt
from clipsift.split.clips import reencode
from clipsift.webdataset import write_webdataset

HF_SECRET = "hf_" + "TESTSECRET0123456789abcdefABCDEF"  # built: no token-shaped literal
API_SECRET = "sk-or-v1-" + "EXPORTTESTKEY0123456789abcdef"
DATASET = "results/dataset"


# ----------------------------------------------------------------------------- helpers


def sha(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def source_row(path: Path, video_id: str, **over) -> dict:
    info = probe(path)
    return {"video_id": video_id, "source": "t", "uri": str(path), "path": str(path),
            "caption": None, "hash": sha(path), "duplicate_of": None, **info, **over}  # fmt: skip


def clip_row(
    video_id: str, k: int, src: Path, a: int, b: int, fps=10.0, w=320, h=180, **over
) -> dict:
    return {"clip_id": f"{video_id}_{k:04d}", "video_id": video_id, "scene": k, "window": 0,
            "start_frame": a, "end_frame": b, "start_time": a / fps, "end_time": b / fps,
            "duration": (b - a) / fps, "n_frames": b - a, "fps": fps, "width": w, "height": h,
            "source_path": str(src), "path": str(src), "split_reason": None, "error": None,
            **over}  # fmt: skip


# ----------------------------------------------------------------------------- unit: clip files


def test_reencode_is_frame_accurate_and_downscaled(tiny_videos, tmp_path):
    out = tmp_path / "c.mp4"
    info = reencode(tiny_videos["a"], out, 2.0, 3.5, crf=23, max_height=90)
    assert (info["width"], info["height"], info["n_frames"]) == (160, 90, 15)
    assert count_frames(out) == 15 and probe(out)["height"] == 90
    # no downscale when it fits; the same call gives the same bytes (x264 determinism cap)
    a, b = tmp_path / "a.mp4", tmp_path / "b.mp4"
    for p in (a, b):
        assert reencode(tiny_videos["b"], p, 0.5, 2.5, max_height=720)["height"] == 180
    assert sha(a) == sha(b) and count_frames(a) == 20
    # the shorter side is what max_height bounds: portrait stays portrait
    port = render_video(
        tmp_path / "p.mp4", [Segment(12, seed=3)], fps=10, size=(96, 160), rotation=90
    )
    assert port["width"] == 96
    got = reencode(tmp_path / "p.mp4", tmp_path / "p2.mp4", 0, 1.2, max_height=48)
    assert (got["width"], got["height"]) == (48, 80)
    assert xc.target_width(1920, 1080, 720) == 1280 and xc.target_width(1080, 1920, 720) == 720
    assert xc.target_width(640, 360, 720) is None and xc.target_width(640, 360, None) is None


def test_export_shard_clips_links_encodes_caches_and_records_failures(tiny_videos, tmp_path):
    vids = tmp_path / "v"
    vids.mkdir()
    for k in ("a", "c"):
        shutil.copyfile(tiny_videos[k], vids / f"{k}.mp4")
    write_corrupt(vids / "bad.mp4", "truncated", source=vids / "a.mp4")
    split_clip = tmp_path / "split" / "a_0001.mp4"
    reencode(vids / "a.mp4", split_clip, 2.0, 4.0)  # a clip the split materialised
    clips = pd.DataFrame([
        clip_row("a", 0, vids / "a.mp4", 0, 20),  # part of a: encoded
        clip_row("a", 1, vids / "a.mp4", 20, 40, path=str(split_clip)),  # materialised: linked
        clip_row("c", 0, vids / "c.mp4", 0, 15),  # the whole of c: the source is linked
        clip_row("bad", 0, vids / "bad.mp4", 0, 20),  # broke after selection: an error row
        clip_row("c", 1, vids / "c.mp4", 0, 10),  # rejected: not written
    ])  # fmt: skip
    source = pd.DataFrame([source_row(vids / "a.mp4", "a"), source_row(vids / "c.mp4", "c"),
                           source_row(vids / "bad.mp4", "bad")])  # fmt: skip
    selection = pd.DataFrame({"clip_id": clips["clip_id"], "keep": [True, True, True, True, False]})
    dataset, cache = tmp_path / "dataset", tmp_path / "cache"
    cfg = {"max_height": 720, "crf": 20, "preset": "veryfast", "link": "hardlink"}

    def run(out: Path, **kw):
        return xc.export_shard_clips(
            clips, source, selection, out, final_dir=dataset / "clips" / "s", dataset_dir=dataset,
            cfg=kw.pop("cfg", cfg), materialize="reencode", cache_dir=cache, **kw,
        ).set_index("clip_id")  # fmt: skip

    out = dataset / "clips" / "s"
    idx = run(out)
    assert list(idx.index) == ["a_0000", "a_0001", "bad_0000", "c_0000"]  # kept, by clip id
    assert idx.loc["a_0000", "how"] == "encoded" and idx.loc["a_0001", "how"] == "split"
    # the whole source is the clip: copied, never linked (a source rewritten in place must not
    # change the dataset's file)
    assert idx.loc["c_0000", "how"] == "source"
    assert not os.path.samefile(out / "c_0000.mp4", vids / "c.mp4")
    before = (out / "c_0000.mp4").read_bytes()
    with open(vids / "c.mp4", "r+b") as fh:  # overwritten in place: same inode, new bytes
        fh.write(b"\0" * 64)
    assert (out / "c_0000.mp4").read_bytes() == before
    shutil.copyfile(tiny_videos["c"], vids / "c.mp4")
    assert os.path.samefile(out / "a_0001.mp4", split_clip)
    assert (
        idx.loc["bad_0000", "error"].startswith("export failed")
        and not (out / "bad_0000.mp4").exists()
    )
    ok = idx[idx["error"].isna()]
    assert set(ok["file"]) == {f"clips/s/{c}.mp4" for c in ok.index}
    for cid, row in ok.iterrows():
        f = dataset / row["file"]
        assert sha(f) == row["sha256"] and f.stat().st_size == row["bytes"]
        assert count_frames(f) == row["n_frames"] == clips.set_index("clip_id").loc[cid, "n_frames"]
    cached = list(cache.glob("a_0000.*.mp4"))
    assert len(cached) == 1 and os.path.samefile(cached[0], out / "a_0000.mp4")

    # a re-run (the rule re-runs when a threshold changes): nothing is encoded again
    shutil.rmtree(out)
    made = cached[0].stat().st_mtime_ns
    again = run(out)
    assert cached[0].stat().st_mtime_ns == made  # from the cache, not encoded again
    # the index says what each file is, not how this run got it: a rerun's tables are a fresh
    # build's, byte for byte (tryout 16: "cached" instead of "encoded" made them differ)
    assert again.equals(idx)
    # a smaller max_height: no source or split file fits, all are encoded; stale cache entries go
    shutil.rmtree(out)
    small = run(out, cfg=cfg | {"max_height": 90})
    assert set(small.loc[small["error"].isna(), "how"]) == {"encoded"}
    assert set(small.loc[small["error"].isna(), "height"]) == {90}
    assert not cached[0].exists() and len(list(cache.glob("*.mp4"))) == 3
    # cross-shard duplicates are not exported; copy instead of links
    shutil.rmtree(out)
    dups = pd.DataFrame(
        {"video_id": ["c"], "shard": ["s"], "duplicate_of": ["x"], "owner_shard": ["r"]}
    )
    copied = run(out, cfg=cfg | {"link": "copy"}, duplicates=dups)
    assert "c_0000" not in copied.index and copied.loc["a_0001", "how"] == "split"
    assert not os.path.samefile(out / "a_0001.mp4", split_clip)


def test_source_fits_only_plain_whole_h264_files(tiny_videos, tmp_path):
    c = tiny_videos["c"]
    src = source_row(c, "c")
    whole = clip_row("c", 0, c, 0, 15)
    assert xc.source_fits(whole, src, 720)
    assert not xc.source_fits(whole, src, 100)  # too big
    assert not xc.source_fits(clip_row("c", 0, c, 1, 15), src, 720)  # not the whole video
    assert not xc.source_fits(whole, src | {"rotation": 90}, 720)
    assert not xc.source_fits(whole, src | {"codec": "hevc"}, 720)
    titled = tmp_path / "t.mp4"
    import av

    with av.open(os.fspath(c)) as inp, av.open(os.fspath(titled), "w", format="mp4") as out:
        out.metadata["title"] = "my holiday at home"  # metadata we do not republish as it is
        s = out.add_stream_from_template(inp.streams.video[0])
        for pkt in inp.demux(inp.streams.video[0]):
            if pkt.dts is not None:
                pkt.stream = s
                out.mux(pkt)
    assert not xc.source_fits(clip_row("c", 0, titled, 0, 15), source_row(titled, "c"), 720)
    # a clock that starts at 1.5 s (a cut-out part of a recording): linked as it is, the file
    # showed 1.5 s of nothing before its first frame, and [start_time, end_time) missed them
    late = tmp_path / "late.mp4"
    with av.open(os.fspath(c)) as inp, av.open(os.fspath(late), "w", format="mp4") as out:
        s = out.add_stream_from_template(inp.streams.video[0])
        shift = round(1.5 / inp.streams.video[0].time_base)
        for pkt in inp.demux(inp.streams.video[0]):
            if pkt.dts is not None:
                pkt.pts, pkt.dts, pkt.stream = pkt.pts + shift, pkt.dts + shift, s
                out.mux(pkt)
    with av.open(os.fspath(late)) as check:
        assert float(next(check.decode(video=0)).time) == pytest.approx(1.5, abs=0.05)
    assert not xc.source_fits(clip_row("c", 0, late, 0, 15), source_row(late, "c"), 720)
    # without an edit list, B-frames' delay starts an MP4 two frames late: that still fits
    plain = tmp_path / "no-editlist.mp4"
    with (
        av.open(os.fspath(c)) as inp,
        av.open(os.fspath(plain), "w", format="mp4", options={"use_editlist": "0"}) as out,
    ):
        s = out.add_stream_from_template(inp.streams.video[0])
        for pkt in inp.demux(inp.streams.video[0]):
            if pkt.dts is not None:
                pkt.stream = s
                out.mux(pkt)
    with av.open(os.fspath(plain)) as check:
        rate = float(check.streams.video[0].average_rate)
        assert 0 < float(next(check.decode(video=0)).time) < 3 / rate
    assert xc.source_fits(clip_row("c", 0, plain, 0, 15), source_row(plain, "c"), 720)


def test_cross_shard_duplicates_first_shard_wins():
    def src(ids, hashes, dup=None):
        return pd.DataFrame(
            {"video_id": ids, "hash": hashes, "duplicate_of": dup or [None] * len(ids)}
        )

    got = ex.cross_shard_duplicates({
        "b-1": src(["x", "y"], ["h1", "h3"]),
        "a-0": src(["p", "q", "r"], ["h1", "h2", "h2"], [None, None, "q"]),  # r: inside its shard
        "c-2": src(["z", "e"], ["h2", None]),
    })  # fmt: skip
    assert got.to_dict("records") == [
        {"video_id": "x", "shard": "b-1", "duplicate_of": "p", "owner_shard": "a-0"},
        {"video_id": "z", "shard": "c-2", "duplicate_of": "q", "owner_shard": "a-0"},
    ]


# ----------------------------------------------------------------------------- unit: metadata


def write_shard(root: Path, shard: str, clips: pd.DataFrame, source: pd.DataFrame, keep, reasons):
    d = root / "shards" / shard
    d.mkdir(parents=True)
    clips.to_parquet(d / "clips.parquet")
    source.to_parquet(d / "source.parquet")
    pd.DataFrame({"clip_id": clips["clip_id"], "motion.rel": 0.01}).to_parquet(d / "scores.parquet")
    pd.DataFrame({"clip_id": clips["clip_id"], "keep": keep, "reasons": reasons,
                  "flash_verdict": None, "ocr_verdict": None}).to_parquet(d / "selection.parquet")  # fmt: skip
    return d


def test_build_metadata_joins_captions_latents_and_clip_files(tmp_path, caplog):
    v = tmp_path / "v.mp4"
    src0 = pd.DataFrame([{"video_id": "a", "source": "s", "uri": "a", "caption": "given a",
                          "hash": "h1", "codec": "h264", "rotation": 0, "duplicate_of": None},
                         {"video_id": "b", "source": "s", "uri": "b", "caption": None,
                          "hash": "h2", "codec": "h264", "rotation": 0, "duplicate_of": None}])  # fmt: skip
    src1 = pd.DataFrame([{"video_id": "c", "source": "s", "uri": "c", "caption": "given c",
                          "hash": "h2", "codec": "h264", "rotation": 0, "duplicate_of": None}])  # fmt: skip
    c0 = pd.DataFrame([clip_row("a", 0, v, 0, 20), clip_row("a", 1, v, 20, 40), clip_row("b", 0, v, 0, 30),
                       clip_row("b", 1, v, 30, 35, split_reason="too_short")])  # fmt: skip
    c1 = pd.DataFrame([clip_row("c", 0, v, 0, 30)])
    d0 = write_shard(
        tmp_path, "s-0", c0, src0, [True, True, True, False], [[], [], [], ["too_short"]]
    )
    d1 = write_shard(tmp_path, "s-1", c1, src1, [True], [[]])
    (d0 / "caption.json").write_text(json.dumps({"meta": {"model": "m"}, "clips": {
        "a_0000": {"clip_id": "a_0000", "caption": "A generated caption.", "captions": {
            "generated": "A generated caption.", "source": "given a"}, "model": "api",
            "model_id": None, "revision": "fake/vl@1", "error": None, "latency": 1.23, "cached": False},
        "a_0001": {"clip_id": "a_0001", "caption": None, "captions": {}, "error": "not captioned"},
    }}))  # fmt: skip
    (d1 / "caption.json").write_text(json.dumps({"meta": {}, "clips": {}}))
    lat_dir = d0 / "latents"
    lat_dir.mkdir()
    np.save(lat_dir / "a_0000.npy", np.zeros((2, 2)))
    pd.DataFrame([{"clip_id": "a_0000", "video_id": "a", "status": "ok", "latent_path": str(lat_dir / "a_0000.npy"),
                   "latent_shape": [2, 2], "bucket": "320x176", "frames": 17, "vae": "tiny",
                   "vae_resolved_revision": "local:1", "source_path": str(v), "fps": 10.0},
                  {"clip_id": "b_0000", "video_id": "b", "status": "error", "latent_path": None,
                   "latent_shape": None, "bucket": None, "frames": None, "vae": "tiny",
                   "vae_resolved_revision": "local:1", "source_path": str(v), "fps": 10.0}]
                 ).to_parquet(d0 / "latents.parquet")  # fmt: skip
    pd.DataFrame({"clip_id": [], "video_id": []}).to_parquet(d1 / "latents.parquet")
    dataset = tmp_path / "dataset"
    (dataset / "clips").mkdir(parents=True)

    def index(rows):
        return pd.DataFrame([{"clip_id": c, "video_id": c[0],
                              "file": None if err else f"clips/{c}.mp4", "how": "encoded",
                              "width": 320, "height": 180, "n_frames": 20, "fps": 10.0, "bytes": 1,
                              "sha256": "0", "error": err} for c, err in rows],
                            columns=xc.CLIP_INDEX_COLUMNS)  # fmt: skip

    index([("a_0000", None), ("a_0001", None), ("b_0000", "export failed: boom")]).to_parquet(
        dataset / "clips" / "s-0.parquet"
    )
    index([("c_0000", None)]).to_parquet(dataset / "clips" / "s-1.parquet")
    shards = ["s-0", "s-1"]

    def per(name):
        return [str(tmp_path / "shards" / s / name) for s in shards]

    inputs = SimpleNamespace(
        sources=per("source.parquet"), clips=per("clips.parquet"), scores=per("scores.parquet"),
        selection=per("selection.parquet"), flash=[], ocr=[], captions=per("caption.json"),
        latents=per("latents.parquet"), clip_files=[str(dataset / "clips" / f"{s}.parquet") for s in shards],
    )  # fmt: skip
    with caplog.at_level(logging.WARNING, logger="clipsift.export"):
        meta = ex.build_metadata(inputs, {"dedupe_across_shards": True}, dataset)
    # a_0001 trains on video a's caption, and a has two scenes: said; c (one scene) is not
    parts = source_captions_of_several_scenes(meta)
    assert list(meta.loc[parts, "clip_id"]) == ["a_0001"]
    assert "1 kept clip(s) of 1 video(s) train on their video's source caption" in caplog.text
    assert "(e.g. a_0001)" in caplog.text
    meta = meta.set_index("clip_id")
    assert list(meta.columns[:7]) == [
        "shard",
        "video_id",
        "keep",
        "reasons",
        "file",
        "caption",
        "caption_source",
    ]
    # captions: the stage's, else the source's
    assert meta.loc["a_0000", ["caption", "caption_source"]].tolist() == [
        "A generated caption.",
        "caption",
    ]
    assert meta.loc["a_0001", ["caption", "caption_source"]].tolist() == ["given a", "source"]
    assert meta.loc["a_0001", "caption.error"] == "not captioned"
    assert meta.loc["a_0000", "caption.revision"] == "fake/vl@1" and "caption.latency" not in meta
    assert pd.isna(meta.loc["b_0000", "caption"])
    # latents: relative to the dataset folder
    assert meta.loc["a_0000", "latents.latent_path"] == "../shards/s-0/latents/a_0000.npy"
    assert (dataset / meta.loc["a_0000", "latents.latent_path"]).is_file()
    assert (
        meta.loc["a_0000", "latents.status"] == "ok"
        and meta.loc["b_0000", "latents.status"] == "error"
    )
    # clip files: an export failure and a cross-shard duplicate (c has b's bytes) are not kept
    assert meta.loc["a_0000", "file"] == "clips/a_0000.mp4" and meta.loc["a_0000", "keep"]
    assert (
        not meta.loc["b_0000", "keep"]
        and meta.loc["b_0000", "reasons"][-1] == "export failed: boom"
    )
    assert not meta.loc["c_0000", "keep"] and list(meta.loc["c_0000", "reasons"]) == [
        "duplicate_of=b"
    ]
    assert pd.isna(meta.loc["c_0000", "file"]) and meta.loc["c_0000", "duplicate_of"] == "b"
    assert meta["n_frames"].dtype == "Int64"
    # the files
    out = {k: dataset / f for k, f in (("parquet", "metadata.parquet"), ("jsonl", "metadata.jsonl"),
                                       ("kept", "kept.parquet"), ("rejected", "rejected.parquet"))}  # fmt: skip
    ex.write_dataset(meta.reset_index(), out)
    kept = pd.read_parquet(out["kept"])
    assert sorted(kept["clip_id"]) == ["a_0000", "a_0001"] and kept["keep"].all()
    rej = pd.read_parquet(out["rejected"]).set_index("clip_id")
    assert sorted(rej.index) == ["b_0000", "b_0001", "c_0000"]
    assert list(rej.loc["b_0001", "reasons"]) == ["too_short"]
    lines = [json.loads(x) for x in out["jsonl"].read_text().splitlines()]
    assert [x["clip_id"] for x in lines] == list(meta.index) and lines[0]["n_frames"] == 20

    # provenance counts from the same tables
    cfg = base_config([{"name": "s", "type": "folder", "path": "."}])
    cfg = _validated(cfg)
    counts = stage_counts(meta.reset_index(), [src0, src1], cfg, {"s-0": 2, "s-1": 1})
    assert counts["plan"] == {"shards": 2, "videos": 3}
    assert counts["ingest"]["duplicates_across_shards"] == 1
    assert counts["split"] == {"clips": 5, "too_short": 1, "measurable": 4, "video_errors": 0}
    assert counts["kept"] == 2 and counts["captioned"] == 1 and counts["encoded"] == 1
    assert counts["with_source_caption"] == counts["source_caption_of_several_scenes"] == 1
    assert counts["select"]["rejected_by"] == {"duplicate": 1, "export_failed": 1, "too_short": 1}
    stages = {r["stage"]: r["count"] for r in counts["funnel"]}
    assert stages["clips"] == 5 and stages["long enough"] == 4 and stages["not duplicates"] == 3
    assert stages["exported"] == stages["kept"] == 2


def test_a_source_caption_counts_as_of_several_scenes_only_for_scenes_that_became_clips():
    """A video whose split left a short intro (too short for a clip) and one shot: its caption is
    the shot's. One with two shots long enough: its caption describes both."""
    meta = pd.DataFrame(
        {
            "video_id": ["x", "x", "y", "y", "z"],
            "scene": [0, 1, 0, 1, 0],
            "split_reason": ["too_short", None, None, None, None],
            "error": [None] * 5,
            "keep": [False, True, True, False, True],
            "caption_source": [None, "source", "source", None, "source"],
        }
    )
    assert list(source_captions_of_several_scenes(meta)) == [False, False, True, False, False]


def _validated(cfg: dict) -> dict:
    from snakemake.utils import validate

    cfg = json.loads(json.dumps(cfg))
    validate(cfg, str(Path(ex.__file__).resolve().parent.parent / "config" / "schema.yaml"))
    return cfg


def test_webdataset_groups_by_bucket_and_frames_with_deterministic_tars(tmp_path):
    ds = tmp_path / "ds"
    rows = []
    for i, (w, h, n) in enumerate([(320, 180, 40), (320, 180, 20), (180, 320, 40), (320, 180, 70)]):
        f = ds / "clips" / f"v.{i}.mp4"
        f.parent.mkdir(parents=True, exist_ok=True)
        f.write_bytes(bytes([i]) * 10)
        rows.append({"clip_id": f"v.{i}", "keep": True, "file": f"clips/v.{i}.mp4", "n_frames": n,
                     "export.width": w, "export.height": h, "caption": f"cap {i}" if i else None})  # fmt: skip
    rows.append({"clip_id": "gone", "keep": False, "file": None, "n_frames": 40})
    meta = pd.DataFrame(rows)
    cfg = {"max_samples_per_tar": 1, "frame_buckets": [16, 32, 64]}
    index = write_webdataset(meta, ds, tmp_path / "w1", cfg)
    assert [(t["path"], t["clip_ids"]) for t in index] == [
        ("180x320_f32-00000.tar", ["v.2"]),
        ("320x180_f16-00000.tar", ["v.1"]),
        ("320x180_f32-00000.tar", ["v.0"]),
        ("320x180_f64-00000.tar", ["v.3"]),
    ]
    with tarfile.open(tmp_path / "w1" / "320x180_f32-00000.tar") as tf:
        assert tf.getnames() == ["v_0.mp4", "v_0.json"]  # no caption, no txt; no dot in the key
        assert json.loads(tf.extractfile("v_0.json").read())["clip_id"] == "v.0"
    with tarfile.open(tmp_path / "w1" / "320x180_f16-00000.tar") as tf:
        assert tf.extractfile("v_1.txt").read() == b"cap 1"
        assert tf.extractfile("v_1.mp4").read() == bytes([1]) * 10
    write_webdataset(meta, ds, tmp_path / "w2", cfg)
    for t in index:
        assert sha(tmp_path / "w1" / t["path"]) == sha(tmp_path / "w2" / t["path"])


# ----------------------------------------------------------------------------- unit: provenance, card


def test_models_and_seeds():
    scores = pd.DataFrame({"clip_id": ["a", "b"], "aesthetic.model": ["org/clip@abc", "org/clip@abc"],
                           "aesthetic.head": ["sha256:0123", None], "motion.rel": [0.1, 0.2]})  # fmt: skip
    cap = {"meta": {"provider": "local", "model": "qwen2_5_vl", "model_id": "Qwen/X",
                    "resolved_revision": "c0ffee", "rewrite": {"model_id": "Qwen/R", "resolved_revision": "beef"}},
           "clips": {"a": {"model": "api", "model_id": None, "revision": "served-model-7"}}}  # fmt: skip
    lat = pd.DataFrame({"vae": ["org/vae"], "vae_revision": ["main"], "vae_resolved_revision": ["1234"],
                        "text_encoder": ["org/t5"], "text_encoder_revision": ["5678"]})  # fmt: skip
    gen = pd.DataFrame({"extra": [json.dumps({"generate": {"model": "org/gen", "revision": "main",
                                                          "resolved_revision": "9abc"}})]})  # fmt: skip
    got = pv.collect_models(scores=[scores], captions=[cap], latents=[lat], sources=[gen])
    ids = {(m["stage"], m["id"], m["resolved_revision"]) for m in got}
    assert ids == {
        ("score.aesthetic", "org/clip", "abc"), ("score.aesthetic.head", "sha256:0123", None),
        ("caption", "Qwen/X", "c0ffee"), ("caption.rewrite", "Qwen/R", "beef"),
        ("caption", "api", "served-model-7"), ("encode.vae", "org/vae", "1234"),
        ("encode.text_encoder", "org/t5", "5678"), ("source.generate", "org/gen", "9abc"),
    }  # fmt: skip
    assert next(m for m in got if m["stage"] == "encode.vae")["revision"] == "main"
    cfg = {
        "caption": {"seed": 1, "rewrite": {"seed": 2}},
        "sources": [{"name": "g", "seed": 7}],
        "x": {"seed": True},
    }
    assert pv.seeds(cfg) == {"caption.rewrite.seed": 2, "caption.seed": 1, "sources[g].seed": 7}
    a, b = {"b": 1, "a": [1, {"d": 2, "c": 3}]}, {"a": [1, {"c": 3, "d": 2}], "b": 1}
    assert pv.config_hash(a) == pv.config_hash(b) != pv.config_hash({**a, "b": 2})


def test_card_parses_with_huggingface_hub(tmp_path):
    from huggingface_hub import DatasetCard, DatasetCardData

    assert [cardmod.size_category(n) for n in (0, 999, 1000, 12_345, 2_000_000)] == [
        "n<1K", "n<1K", "1K<n<10K", "10K<n<100K", "1M<n<10M"]  # fmt: skip
    cfg = _validated(base_config([{"name": "s", "type": "folder", "path": "."}]))
    prov = {"config": cfg, "config_sha256": "ab" * 32, "code": {"clipsift": "0.1.0", "git_describe": "abc-dirty"},
            "models": [{"stage": "encode.vae", "id": "org/vae", "revision": "main", "resolved_revision": "123"}],
            "counts": {"kept": 1234, "split": {"clips": 2000}, "ingest": {"ok": 10},
                       "select": {"rejected_by": {"too_short": 766}},
                       "funnel": [{"stage": "clips", "unit": "clips", "count": 2000}]}}  # fmt: skip
    path = tmp_path / "README.md"
    card_cfg = {"license": "cc-by-4.0", "tags": ["robots"], "pretty_name": "Robot clips"}
    cardmod.write_card(path, prov, card_cfg, repo="org/robots", webdataset=True)
    card = DatasetCard.load(path)
    assert isinstance(card.data, DatasetCardData)
    data = card.data.to_dict()
    assert data["license"] == "cc-by-4.0" and data["task_categories"] == ["text-to-video"]
    assert data["size_categories"] == ["1K<n<10K"] and data["tags"] == [
        "video",
        "clipsift",
        "robots",
    ]
    assert [c["config_name"] for c in data["configs"]] == ["default", "all_clips", "rejected"]
    assert data["configs"][0]["data_files"] == [{"split": "train", "path": "kept.parquet"}]
    text = path.read_text()
    assert 'load_dataset("org/robots", split="train")' in text and "org/vae" in text
    assert "hf://datasets/org/robots/webdataset/*.tar" in text and "| too_short | 766 |" in text


# ----------------------------------------------------------------------------- end to end


@dataclass
class Build:
    wd: Path
    cfg: dict
    videos: Path


_BUILDS: dict[str, Build] = {}


def _build_config(videos: Path, extra: Path, server_url: str) -> dict:
    """Lean (no OCR, flash or technical scorer: fewer jobs), captions from the fake API."""
    return base_config(
        [{"name": "vid", "type": "folder", "path": str(videos)},
         {"name": "more", "type": "folder", "path": str(extra)}],
        lean=True,
        shard_size=6,
        select={"thresholds": {"motion.rel_per_s": {"min": 0.015, "max": 1.5}}},
        caption={"enabled": True, "provider": "api",
                 "api": {"base_url": server_url, "model": "fake/vl-model", "key_env": "CLIPSIFT_EXPORT_KEY",
                         "frames": 2, "max_side": 64, "backoff": 0.05, "timeout": 10}},
        export={"max_height": 120, "webdataset": {"enabled": True, "max_samples_per_tar": 2}},
        report={"sample_clips": 4, "rejected_per_reason": 3},
        publish={"repo": "test-org/clips"},
    )  # fmt: skip


_SERVER: list[FakeChatServer] = []


def chat_server() -> FakeChatServer:
    """One caption API for every build of the session (its URL is part of the config)."""
    if not _SERVER:
        _SERVER.append(FakeChatServer().__enter__())
    return _SERVER[0]


def make_inputs(base: Path) -> tuple[Path, Path]:
    """Two sources: six videos (two scenes with motion, a pan, a 1.5 s scene, a static shot, a
    rotated portrait pan, a corrupt file) and a copy of the pan."""
    videos, extra = base / "vids", base / "more"
    size = (320, 180)
    render_video(videos / "a.mp4", [Segment(20, seed=11, pan=(1, 0)), Segment(20, seed=12, pan=(0.5, 0.5))],
                 fps=10, size=size)  # fmt: skip
    render_video(videos / "b.mp4", [Segment(30, seed=13, pan=(1, 0))], fps=10, size=size)
    render_video(videos / "c.mp4", [Segment(15, seed=14, pan=(1, 0))], fps=10, size=size)
    render_video(videos / "d.mp4", [Segment(25, seed=15)], fps=10, size=size)
    render_video(
        videos / "port.mp4", [Segment(30, seed=16, pan=(0, 1))], fps=10, size=(96, 160), rotation=90
    )
    write_corrupt(videos / "broken.mp4", "truncated", source=videos / "a.mp4")
    extra.mkdir(parents=True)
    shutil.copyfile(videos / "b.mp4", extra / "b_again.mp4")  # the same bytes, in another shard
    return videos, extra


DATASET_FILES = [f"{DATASET}/{f}" for f in ("metadata.parquet", "provenance.json", "README.md")]


def built_dataset(tmp_path_factory, name: str = "first") -> Build:
    """The workflow on tiny videos, once per session per name; HF_TOKEN and the caption API
    key hold secrets during the run. The first build runs the default target (dataset and
    reports); later ones ("again") reuse its videos and build the dataset only."""
    if name in _BUILDS:
        return _BUILDS[name]
    root = tmp_path_factory.mktemp("built")
    first = _BUILDS.get("first")
    base = first.videos if first else root / "inputs"
    videos, extra = (base / "vids", base / "more") if first else make_inputs(base)
    wd = root / "wd"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("HF_TOKEN", HF_SECRET)
        mp.setenv("CLIPSIFT_EXPORT_KEY", API_SECRET)
        mp.setenv("HF_HUB_OFFLINE", "1")
        cfg = _build_config(videos, extra, chat_server().url)
        run = run_snakemake(wd, cfg, targets=DATASET_FILES if first else None)
        assert run.rules["export_clips"] == 2 and run.rules["export"] == 1
    _BUILDS[name] = Build(wd, cfg, base)
    return _BUILDS[name]


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> Build:
    return built_dataset(tmp_path_factory)


def load_datasets(folder: Path, cache: Path):
    datasets = pytest.importorskip("datasets", reason="pip install datasets (loads the export)")
    os.environ.setdefault("HF_DATASETS_CACHE", str(cache))
    kept = datasets.load_dataset(str(folder), split="train", cache_dir=str(cache))
    every = datasets.load_dataset(str(folder), "all_clips", split="train", cache_dir=str(cache))
    jsonl = datasets.load_dataset("json", data_files=str(folder / "metadata.jsonl"), split="train",
                                  cache_dir=str(cache))  # fmt: skip
    tars = datasets.load_dataset("webdataset", data_files={"train": str(folder / "webdataset" / "*.tar")},
                                 split="train", cache_dir=str(cache))  # fmt: skip
    return kept, every, jsonl, tars.cast_column("mp4", datasets.Video(decode=False))


@pytest.mark.slow
def test_export_end_to_end(built):
    wd, ds = built.wd, built.wd / DATASET
    meta = pd.read_parquet(ds / "metadata.parquet")
    kept = meta[meta["keep"]]
    assert sorted(kept["clip_id"]) == [
        "more-b_again_0000", "vid-a_0000", "vid-a_0001", "vid-port_0000"]  # fmt: skip
    assert sorted(meta.loc[~meta["keep"], "clip_id"]) == [
        "vid-b_0000", "vid-broken_0000", "vid-c_0000", "vid-d_0000"]  # fmt: skip
    # the card parses with huggingface_hub's card API
    from huggingface_hub import DatasetCard

    card = DatasetCard.load(ds / "README.md")
    assert card.data.task_categories == ["text-to-video"] and card.data.size_categories == ["n<1K"]
    assert card.data.license == "other" and 'load_dataset("test-org/clips"' in card.text

    # every path in the metadata exists (relative ones from the dataset folder)
    for row in meta.to_dict("records"):
        assert Path(row["source_path"]).exists()
        if isinstance(row["file"], str):
            assert not os.path.isabs(row["file"]) and (ds / row["file"]).is_file()
    # kept clips: written once, frame-accurate, at most 120p, captioned (the API's caption)
    files = sorted(p.relative_to(ds).as_posix() for p in (ds / "clips").rglob("*.mp4"))
    assert files == sorted(kept["file"])
    for row in kept.to_dict("records"):
        f, info = ds / row["file"], probe(ds / row["file"])
        assert count_frames(f) == row["n_frames"] and min(info["width"], info["height"]) <= 120
        assert row["caption_source"] == "caption" and row["caption"].startswith("A red square")
    port = probe(ds / kept.set_index("clip_id").loc["vid-port_0000", "file"])  # rotation applied
    assert (port["width"], port["height"], port["rotation"]) == (96, 160, 0)
    assert set(kept["export.how"]) == {"encoded"}
    # rejected clips are listed with their reasons, not written
    rej = pd.read_parquet(ds / "rejected.parquet")
    assert set(rej["clip_id"]) == set(meta.loc[~meta["keep"], "clip_id"])
    assert all(len(r) for r in rej["reasons"])
    keys = {r["test"] for rs in rej["rejections"] for r in rs}
    assert keys == {"error", "duplicate", "too_short", "motion.rel_per_s>="}
    assert [[r["text"] for r in rs] for rs in rej["rejections"]] == [
        list(r) for r in rej["reasons"]
    ]
    dup = meta[meta["duplicate_of"].notna()]
    assert set(dup["video_id"]) == {"vid-b"} and set(dup["duplicate_of"]) == {"more-b_again"}
    assert not list((ds / "clips").rglob("vid-b_*"))

    # provenance
    prov = json.loads((ds / "provenance.json").read_text())
    assert (
        prov["config_sha256"] == pv.config_hash(prov["config"]) and "publish" not in prov["config"]
    )
    assert prov["code"]["clipsift"] and prov["packages"]["snakemake"] and prov["packages"]["av"]
    # the model asked for and, per caption, the model the API says answered
    assert [(m["stage"], m["id"], m["resolved_revision"]) for m in prov["models"]] == [
        ("caption", "fake/vl-model", "fake/vl-model"),
        ("caption", "fake/vl-model", "fake/vl-model-2025-01-01"),
    ]
    assert prov["seeds"]["caption.seed"] == 0 and "encode.vae.seed" in prov["seeds"]
    c = prov["counts"]
    assert c["plan"] == {"shards": 2, "videos": 7}
    assert c["ingest"] == {"videos": 7, "ok": 6, "errors": 1, "duplicates_in_shard": 0,
                           "duplicates_across_shards": 1}  # fmt: skip
    assert c["kept"] == len(kept) == c["exported"] == c["captioned"] == 4
    assert c["select"]["rejected_by"] == {
        "duplicate": 1,
        "error": 1,
        "motion.rel_per_s>=": 1,
        "too_short": 1,
    }
    assert prov["files"]["metadata.parquet"]["sha256"] == sha(ds / "metadata.parquet")

    # secrets: the token and the API key were set during the run and are in no file
    n = 0
    for p in (wd / "results").rglob("*"):
        if p.is_file():
            data = p.read_bytes()
            assert HF_SECRET.encode() not in data and API_SECRET.encode() not in data, p
            n += 1
    assert n > 50

    # publish is never part of the default target; the manifests (encode on) use these clips
    assert "publish" not in run_snakemake(wd, built.cfg, dryrun=True).rules
    with_encode = {**built.cfg, "encode": {"enabled": True, "device": "cpu"}}
    try:
        dry = run_snakemake(wd, with_encode, targets=[f"{DATASET}/manifests"], dryrun=True)
    finally:
        write_config(wd, built.cfg)
    assert dict(dry.rules) == {"encode": 2, "manifests": 1}

    # snakemake --report: the report outputs are in it
    res = subprocess.run(
        [str(Path(sys.executable).parent / "snakemake"), "--snakefile", str(SNAKEFILE), "--cores", "1",
         "--report", "report.html"], cwd=wd, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert res.returncode == 0, res.stderr[-3000:]
    html = (wd / "report.html").read_text(errors="replace")
    assert "Dataset report" in html and "provenance.json" in html and "funnel" in html


@pytest.mark.slow
def test_dataset_loads_with_datasets(built, tmp_path):
    """load_dataset on the folder honours the card's configs (default: the kept clips); the
    jsonl and the WebDataset tars load too."""
    ds = built.wd / DATASET
    meta = pd.read_parquet(ds / "metadata.parquet")
    kept = meta[meta["keep"]]
    k, every, jsonl, tars = load_datasets(ds, tmp_path / "hf")
    assert sorted(k["clip_id"]) == sorted(kept["clip_id"]) and all(k["keep"])
    assert all((ds / f).is_file() for f in k["file"])
    assert every.num_rows == jsonl.num_rows == len(meta)
    assert sorted(j["clip_id"] for j in tars["json"]) == sorted(kept["clip_id"])
    assert all(len(v["bytes"]) > 100 for v in tars["mp4"])


# columns measured by OpenCV's DIS optical flow in the scan: not bit-reproducible (a static shot
# measured 2.2e-08 px in one run and 7e-13 px more in the next), equal to 1e-9 relative
FLOAT_NOISE = ("motion.",)


@pytest.mark.slow
def test_rebuild_in_another_workdir_is_identical(built, tmp_path_factory):
    """The same config on the same videos, in a fresh working directory: the same selection,
    metadata (every column bit for bit except the optical-flow scores, equal to 1e-9), clip
    files, tars' videos, card and provenance (less its time and the metadata files' hashes)."""
    again = built_dataset(tmp_path_factory, name="again")
    a, b = built.wd / DATASET, again.wd / DATASET
    assert a != b
    pd.testing.assert_frame_equal(
        all_shards_table(built.wd, "selection.parquet"),
        all_shards_table(again.wd, "selection.parquet"),
    )
    meta_a, meta_b = (
        pd.read_parquet(a / "metadata.parquet"),
        pd.read_parquet(b / "metadata.parquet"),
    )
    # no column holds a wall-clock time or a path into the working directory (the source paths
    # are the same videos; the clips' times are the videos' own), so nothing is dropped
    assert not [
        c
        for c in meta_a.columns
        if "time" in c and c not in ("start_time", "end_time", "last_time")
    ]
    noisy = [c for c in meta_a.columns if c.startswith(FLOAT_NOISE)]
    pd.testing.assert_frame_equal(
        meta_a.drop(columns=noisy), meta_b.drop(columns=noisy), check_exact=True
    )
    pd.testing.assert_frame_equal(meta_a[noisy], meta_b[noisy], check_exact=False, rtol=1e-9)

    # the code version is recorded (git describe): other commits to this checkout between the
    # two builds change it, and nothing else
    def card(p: Path) -> list[str]:
        return [x for x in p.read_text().splitlines() if not x.startswith("- code: clipsift")]

    assert card(a / "README.md") == card(b / "README.md")
    for sub in ("clips", "webdataset"):
        fa = sorted(
            p.relative_to(a) for p in (a / sub).rglob("*") if p.is_file() and p.name[0] != "."
        )
        fb = sorted(
            p.relative_to(b) for p in (b / sub).rglob("*") if p.is_file() and p.name[0] != "."
        )
        assert fa == fb
        for f in fa:
            if f.suffix == ".tar":
                with tarfile.open(a / f) as ta, tarfile.open(b / f) as tb:
                    assert ta.getnames() == tb.getnames()
                    for m in ta.getnames():
                        if not m.endswith(".json"):
                            assert ta.extractfile(m).read() == tb.extractfile(m).read(), m
            elif f.suffix != ".parquet":
                assert sha(a / f) == sha(b / f), f
    pa = json.loads((a / "provenance.json").read_text())
    pb = json.loads((b / "provenance.json").read_text())
    assert pa["created"] and sorted(pa["files"]) == sorted(pb["files"])
    assert pa["code"]["clipsift"] == pb["code"]["clipsift"]
    skip = ("files", "code")
    assert {k: v for k, v in pv.without_volatile(pa).items() if k not in skip} == {
        k: v for k, v in pv.without_volatile(pb).items() if k not in skip
    }


def test_manifests_point_at_the_exported_clips(tiny_videos, tmp_path):
    """The trainer manifests (clipsift/manifests/, rule manifests) read export_clips' index:
    their video paths are the exported clip files, and every path in them exists."""
    from clipsift.manifests import write_manifests

    v = tiny_videos["a"]
    clips = pd.DataFrame([clip_row("a", 0, v, 0, 20), clip_row("a", 1, v, 20, 40)])
    source = pd.DataFrame([source_row(v, "a")])
    selection = pd.DataFrame({"clip_id": clips["clip_id"], "keep": True})
    ds = tmp_path / "results" / "dataset"
    index = xc.export_shard_clips(clips, source, selection, ds / "clips" / "s", final_dir=ds / "clips" / "s",
                                  dataset_dir=ds, cfg={"max_height": 720})  # fmt: skip
    lat_dir = tmp_path / "results" / "shards" / "s" / "latents"
    lat_dir.mkdir(parents=True)
    lat = []
    for cid in clips["clip_id"]:
        np.save(lat_dir / f"{cid}.npy", np.zeros((4, 2, 3, 3), np.float32))
        lat.append({"clip_id": cid, "video_id": "a", "status": "ok", "latent_path": str(lat_dir / f"{cid}.npy"),
                    "latent_shape": [4, 2, 3, 3], "prompt": "p", "prompt_source": "empty", "frames": 5,
                    "sample_fps": 10.0, "height": 24, "width": 24, "bucket": "24x24", "vae": "v",
                    "vae_resolved_revision": "r"})  # fmt: skip
    man = ds / "manifests"
    assert write_manifests([pd.DataFrame(lat)], [index], man, {"paths": "relative"})["clips"] == 2
    conv = json.loads((man / "conversation.json").read_text())
    for c in conv:
        assert os.path.samefile(man / c["video"], ds / "clips" / "s" / f"{c['id']}.mp4")
    # HunyuanVideo's paths are opened from its trainer's working directory: the dataset folder
    for line in (man / "hunyuan" / "meta_file.list").read_text().splitlines():
        doc = json.loads((ds / line).read_text())
        assert (ds / doc["video_path"]).is_file()
        assert (ds / doc["npy_save_path"]).is_file()


def test_easyanimate_train_file_says_or_stops_on_empty_prompts(caplog):
    """EasyAnimate's entries for the kept clips with files; a clip without any caption is
    counted in the log, stops the export (error), or passes (allow)."""
    from clipsift.manifests import EmptyPrompts

    kept = pd.DataFrame(
        {"file": ["clips/s/a.mp4", "clips/s/b.mp4", None], "caption": ["a cat", None, "x"],
         "export.width": [64, 32, None], "export.height": [48, 32, None]}
    )  # fmt: skip
    with caplog.at_level("WARNING"):
        entries = ex.easyanimate_train_file(kept, {})
    assert entries == [
        {"file_path": "clips/s/a.mp4", "text": "a cat", "type": "video", "width": 64, "height": 48},
        {"file_path": "clips/s/b.mp4", "text": "", "type": "video", "width": 32, "height": 32},
    ]
    assert "1 of 2 easyanimate.json entries have an empty prompt" in caplog.text
    with pytest.raises(EmptyPrompts, match="export.easyanimate.empty_prompts: allow"):
        ex.easyanimate_train_file(kept, {"empty_prompts": "error"})
    assert len(ex.easyanimate_train_file(kept, {"empty_prompts": "allow"})) == 2


@pytest.mark.slow
def test_a_run_that_keeps_no_clip_stops_and_says_why(tiny_videos, tmp_path):
    """Thresholds that no clip passes (here a motion minimum far above any pan) ended in rc 0 and
    an empty kept.parquet. The export now stops with each reason's count, as a user runs it;
    ``export.allow_empty`` writes the empty dataset."""
    src = [{"name": "v", "type": "folder", "path": str(tiny_videos["a"].parent)}]
    strict = {"thresholds": {"motion.rel_per_s": {"min": 100.0}}}
    write_config(tmp_path, base_config(src, lean=True, select=strict))
    r = snakemake_cli(tmp_path, "--snakefile", SNAKEFILE, "--cores", "2")
    assert r.returncode != 0
    # a, b and c: three clips long enough and one too short (c, 1.5 s), from three videos
    said = "no clip kept: 4 clips of 3 videos, clips rejected by each test: motion.rel_per_s>=: 3, "
    assert said + "too_short: 1" in r.stderr, r.stderr[-3000:]
    assert "export.allow_empty" in r.stderr
    dataset = tmp_path / "results" / "dataset"
    assert not (dataset / "kept.parquet").exists()

    write_config(tmp_path, base_config(src, lean=True, select=strict, export={"allow_empty": True}))
    r = snakemake_cli(tmp_path, "--snakefile", SNAKEFILE, "--cores", "2")
    assert r.returncode == 0, r.stderr[-3000:]
    assert len(pd.read_parquet(dataset / "kept.parquet")) == 0
    assert len(pd.read_parquet(dataset / "rejected.parquet")) == 4
