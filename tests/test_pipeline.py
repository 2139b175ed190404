"""The real workflow, run through Snakemake's Python API on small generated videos.

Each test has its own working directory (``tmp_path``); most runs target only
``results/dataset/metadata.parquet`` (everything but the calibration report).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from helpers import (
    SNAKEFILE,
    all_shards_table,
    base_config,
    clipsift_cli,
    count_frames,
    frame_times,
    gray_frames,
    keyframe_times,
    make_hub_cache,
    make_tar,
    make_zip,
    metadata,
    plan_shards,
    run_snakemake,
    shard_table,
    snakemake_cli,
    write_config,
)
from test_manifests import easyanimate_loader

from clipsift import cli, plan
from clipsift.sample import Segment, render_video
from clipsift.sources.base import slug_id

METADATA = ["results/dataset/metadata.parquet"]
SHARD_RULES = {"ingest", "scan", "split"}

pytestmark = pytest.mark.slow


def copy(src: Path, dest: Path) -> Path:
    dest.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(src, dest)
    return dest


def check_dataset(wd: Path) -> pd.DataFrame:
    """metadata.parquet and .jsonl exist and agree; returns the metadata."""
    meta = metadata(wd)
    lines = (wd / "results/dataset/metadata.jsonl").read_text().splitlines()
    assert len(lines) == len(meta) > 0
    assert [json.loads(line)["clip_id"] for line in lines] == list(meta["clip_id"])
    assert meta["clip_id"].is_unique
    # EasyAnimate's train file, read as its ImageVideoDataset reads it: the kept clip files
    easy = wd / "results/dataset/easyanimate.json"
    if easy.exists():
        kept = meta[meta["keep"].fillna(False).astype(bool) & meta["file"].notna()]
        got = easyanimate_loader(easy, wd / "results/dataset")
        assert [p for p, _ in got] == [wd / "results/dataset" / f for f in kept["file"]]
        assert all(p.is_file() for p, _ in got)
        assert [t for _, t in got] == [c if isinstance(c, str) else "" for c in kept["caption"]]
    return meta


def assert_error_everywhere(wd: Path, video_id: str, match: str) -> None:
    """A failed video is one row with its error in source.parquet, clips.parquet and metadata."""
    src = all_shards_table(wd, "source.parquet").set_index("video_id")
    assert match in src.loc[video_id, "error"]
    clips = all_shards_table(wd, "clips.parquet")
    rows = clips[clips["video_id"] == video_id]
    assert len(rows) == 1 and match in rows["error"].iloc[0]
    meta = metadata(wd)
    rows = meta[meta["video_id"] == video_id]
    assert len(rows) == 1 and not rows["keep"].iloc[0]
    assert rows["reasons"].iloc[0][0].startswith("error:")
    assert match in rows["reasons"].iloc[0][0]


# ----------------------------------------------------------------------------- folder, sample set


def test_folder_sample_set_end_to_end(tmp_path, sample_set, tiny_videos):
    """The sample set plus purpose-made videos through the whole workflow; then what re-runs."""
    extra = tmp_path / "extra"
    # one 25 s scene (> max_seconds), a 0.8 s scene before a cut (< min_seconds), a duplicate pair
    render_video(extra / "long.mp4", [Segment(250, seed=21, pan=(0.5, 0))], fps=10, size=(320, 180))
    render_video(
        extra / "short.mp4",
        [Segment(24, seed=22, pan=(1, 0)), Segment(90, seed=23, pan=(1, 0))],
        fps=30,
        size=(320, 180),
    )
    copy(tiny_videos["b"], extra / "dup_a.mp4")
    copy(tiny_videos["b"], extra / "dup_b.mp4")
    wd = tmp_path / "wd"
    cfg = base_config(
        [
            {"name": "sample", "type": "folder", "path": str(sample_set.dir)},
            {"name": "extra", "type": "folder", "path": str(extra)},
        ],
        shard_size=4,
        split={"min_seconds": 2.0, "max_seconds": 10.0},
    )
    run = run_snakemake(wd, cfg)  # default target: dataset and calibration report
    shards = {"sample-00000", "sample-00001", "extra-00000"}
    assert set(plan_shards(wd)) == shards
    assert {s["items"] for s in plan_shards(wd).values()} == {4}
    for rule in SHARD_RULES:
        assert run.shards(rule) == shards
    assert run.rules["export"] == 1
    meta = check_dataset(wd)

    source = all_shards_table(wd, "source.parquet")
    clips = all_shards_table(wd, "clips.parquet")
    scenes = all_shards_table(wd, "scan/scenes.parquet")
    in_sample = source[source["source"] == "sample"]
    vid = {  # sample file name -> video id
        Path(p).relative_to(sample_set.dir).as_posix(): v
        for p, v in zip(in_sample["path"], in_sample["video_id"], strict=True)
    }
    assert set(vid) == set(sample_set.truth)

    # hard cuts: start frames of consecutive clips of cuts.mp4 within one frame of the truth
    cut_clips = clips[clips["video_id"] == vid["cuts.mp4"]].sort_values("start_frame")
    detected = list(cut_clips["start_frame"].iloc[1:])
    truth = sample_set.truth["cuts.mp4"]["cuts"]
    assert len(detected) == len(truth) == 3
    assert all(abs(d - t) <= 1 for d, t in zip(detected, truth, strict=True)), detected
    # the scan finds the other hard cuts too, and no cut in flash, letterbox or nested videos
    for name in ["text.mp4", "motion.mp4", "flash.mp4", "letterbox.mp4", "subdir/nested.mp4"]:
        sc = scenes[scenes["video_id"] == vid[name]].sort_values("scene")
        starts = list(sc["start_frame"].iloc[1:])
        truth = sample_set.truth[name]["cuts"]
        assert len(starts) == len(truth), (name, starts, truth)
        assert all(abs(d - t) <= 1 for d, t in zip(starts, truth, strict=True)), (name, starts)
        assert sc["end_frame"].iloc[-1] == sample_set.truth[name]["n_frames"]

    # clip bounds
    ok = clips[clips["error"].isna() & clips["split_reason"].isna()]
    assert len(ok) > 10
    assert ok["duration"].between(2.0, 10.0 + 1e-9).all()
    kept = meta[meta["keep"]]
    assert len(kept) and kept["duration"].between(2.0, 10.0 + 1e-9).all()
    assert np.allclose(ok["duration"], ok["n_frames"] / ok["fps"])

    # the 25 s scene: three windows of one scene covering it
    long = clips[clips["video_id"] == "extra-long"].sort_values("start_frame")
    assert list(long["window"]) == [0, 1, 2] and long["scene"].nunique() == 1
    assert list(long["start_frame"]) == [0, 83, 167] and list(long["end_frame"]) == [83, 167, 250]
    assert long["split_reason"].isna().all() and (long["duration"] <= 10).all()

    # the 0.8 s scene is kept in the table with its reason
    short = clips[clips["video_id"] == "extra-short"].sort_values("start_frame")
    assert list(short["split_reason"].fillna("")) == ["too_short", ""]
    assert short["start_frame"].iloc[1] in (23, 24, 25)
    assert short["duration"].iloc[0] < 2.0
    too_short = meta[meta["split_reason"] == "too_short"]
    assert len(too_short) >= 1 and not too_short["keep"].any()
    assert all("too_short" in r for r in too_short["reasons"])

    # the corrupt file: one error row in every table, the run went on
    assert_error_everywhere(wd, vid["corrupt.mp4"], "cannot open")

    # exact duplicates: the second gets duplicate_of, is not split, and has one row everywhere
    src = source.set_index("video_id")
    assert pd.isna(src.loc["extra-dup_a", "duplicate_of"])
    assert src.loc["extra-dup_b", "duplicate_of"] == "extra-dup_a"
    assert src.loc["extra-dup_a", "hash"] == src.loc["extra-dup_b", "hash"]
    assert (clips["video_id"] == "extra-dup_a").sum() >= 1
    dup = clips[clips["video_id"] == "extra-dup_b"]
    assert len(dup) == 1 and dup["split_reason"].iloc[0] == "duplicate_of=extra-dup_a"
    row = meta[meta["video_id"] == "extra-dup_b"]
    assert len(row) == 1 and row["duplicate_of"].iloc[0] == "extra-dup_a"
    assert not row["keep"].iloc[0] and row["reasons"].iloc[0] == ["duplicate_of=extra-dup_a"]
    assert source["duplicate_of"].notna().sum() == 1

    # every job wrote its log
    assert (wd / "results/logs/export.log").exists()
    for rule in SHARD_RULES:
        assert {p.stem for p in (wd / "results/logs" / rule).glob("*.log")} == shards

    # a second run has nothing to do
    assert run_snakemake(wd, cfg, dryrun=True).jobs == []

    # a split parameter re-runs split and what follows, never ingest or scan
    cfg2 = {**cfg, "split": {**cfg["split"], "min_seconds": 2.5}}
    dry = run_snakemake(wd, cfg2, dryrun=True)
    assert dry.shards("split") == shards and dry.rules["export"] == 1
    assert not {"ingest", "scan"} & set(dry.rules), dry.rules

    # a scan parameter re-runs scan (and what follows), not ingest
    cfg3 = {**cfg, "scan": {**cfg["scan"], "flash_delta": 35.0}}
    dry = run_snakemake(wd, cfg3, dryrun=True)
    assert dry.shards("scan") == dry.shards("split") == shards and dry.rules["export"] == 1
    assert "ingest" not in dry.rules


# ----------------------------------------------------------------------------- list sources


def caption_table(meta: pd.DataFrame) -> dict[tuple[str, str], set]:
    """(source, video file name) -> set of source captions in the metadata."""
    out: dict[tuple[str, str], set] = {}
    for row in meta.itertuples():
        out.setdefault((row.source, Path(row.uri).name), set()).add(row.source_caption)
    return out


def test_metalist_formats(tmp_path, tiny_videos):
    lists = tmp_path / "wd" / "lists"
    for v in ("a", "b"):
        copy(tiny_videos[v], lists / "videos" / f"{v}.mp4")

    def cap(fmt, v):
        return f"{fmt} caption {v}"

    rows = {
        fmt: [{"clip": f"videos/{v}.mp4", "desc": cap(fmt, v), "n": i} for i, v in enumerate("ab")]
        for fmt in ("jsonl", "csv", "tsv")
    }
    (lists / "m.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows["jsonl"]))
    pd.DataFrame(rows["csv"]).to_csv(lists / "m.csv", index=False)
    pd.DataFrame(rows["tsv"]).to_csv(lists / "m.tsv", sep="\t", index=False)
    # json: an object holding one list, nested caption, given ids
    data = [
        {"media": f"videos/{v}.mp4", "info": {"caption": cap("json", v)}, "uid": f"uid {v}"}
        for v in "ab"
    ]
    (lists / "m.json").write_text(json.dumps({"version": 1, "rows": data}))
    pd.DataFrame(
        {"mp4": [str(lists / "videos/a.mp4"), "videos/b.mp4"],
         "meta": [{"caption": cap("parquet", v)} for v in "ab"]}
    ).to_parquet(lists / "m.parquet")  # fmt: skip

    custom = {"video_key": "clip", "caption_key": "desc"}
    sources = [
        {"name": "ml_jsonl", "type": "metalist", "path": "lists/m.jsonl", **custom},
        {"name": "ml_csv", "type": "metalist", "path": "lists/m.csv", **custom},
        {"name": "ml_tsv", "type": "metalist", "path": "lists/m.tsv", **custom},
        {"name": "ml_json", "type": "metalist", "path": "lists/m.json", "video_key": "media",
         "caption_key": "info.caption", "id_key": "uid"},
        {"name": "ml_parquet", "type": "metalist", "path": "lists/m.parquet", "format": "parquet",
         "video_key": "mp4", "caption_key": "meta.caption"},
    ]  # fmt: skip
    wd = tmp_path / "wd"
    cfg = base_config(sources, lean=True, split={"min_seconds": 0.5})
    run = run_snakemake(wd, cfg, targets=METADATA)
    names = {f"{s['name']}-00000" for s in sources}
    assert set(plan_shards(wd)) == names == run.shards("ingest")
    meta = check_dataset(wd)

    source = all_shards_table(wd, "source.parquet")
    assert source["error"].isna().all() and len(source) == 10
    captions = caption_table(meta)
    for s in sources:
        fmt = s["name"].removeprefix("ml_")
        for v in "ab":
            assert captions[(s["name"], f"{v}.mp4")] == {cap(fmt, v)}
    # given ids (id_key) make the video ids; other rows' scalar fields are kept in extra
    assert {"ml_json-" + slug_id("uid a"), "ml_json-" + slug_id("uid b")} <= set(meta["video_id"])
    jl = source[source["source"] == "ml_jsonl"].sort_values("uri")
    assert [json.loads(e) for e in jl["extra"]] == [{"n": 0}, {"n": 1}]
    # the same bytes under five sources: the export keeps the first shard's clips only
    kept_sources = set(meta.loc[meta["duplicate_of"].isna(), "source"])
    assert kept_sources == {sorted(s["name"] for s in sources)[0]}


def test_hunyuan_and_conversation(tmp_path, tiny_videos):
    wd = tmp_path / "wd"
    for v in ("a", "b"):
        copy(tiny_videos[v], wd / "data/videos" / f"{v}.mp4")
    hy = wd / "data/hy"
    for v in ("a", "b"):
        meta = {
            "video_id": f"hy {v}",
            "video_path": f"../../videos/{v}.mp4",
            "raw_caption": {"long caption": f"hy long {v}", "short caption": f"hy short {v}"},
            "resolution": {"height": 180, "width": 320},
        }
        (hy / "json").mkdir(parents=True, exist_ok=True)
        (hy / "json" / f"{v}.json").write_text(json.dumps(meta))
    (hy / "meta_file.list").write_text("# list\njson/a.json\n\njson/b.json\n")
    conv = [
        {
            "id": f"conv-{v}",
            "video": f"videos/{v}.mp4",
            "conversations": [
                {"from": "human", "value": "<video>\nDescribe the video."},
                {"from": "gpt", "value": f"conv caption {v}"},
            ],
        }
        for v in "ab"
    ]
    (wd / "data/conv.json").write_text(json.dumps(conv))
    sources = [
        {"name": "hy", "type": "hunyuan", "path": "data/hy/meta_file.list"},
        {"name": "conv", "type": "conversation", "path": "data/conv.json"},
    ]
    cfg = base_config(
        sources, lean=True, split={"min_seconds": 0.5}, export={"dedupe_across_shards": False}
    )
    run_snakemake(wd, cfg, targets=METADATA)
    meta = check_dataset(wd)
    captions = caption_table(meta)
    for v in "ab":
        assert captions[("hy", f"{v}.mp4")] == {f"hy long {v}"}
        assert captions[("conv", f"{v}.mp4")] == {f"conv caption {v}"}
    assert {"hy-" + slug_id("hy a"), "conv-conv-a"} <= set(meta["video_id"])
    assert meta["error"].isna().all() and meta["duplicate_of"].isna().all()


# ----------------------------------------------------------------------------- Hub archives


def test_hf_archives(tmp_path, tiny_videos, monkeypatch):
    a, b = (tiny_videos[v].read_bytes() for v in "ab")
    arch = tmp_path / "archives"
    arch.mkdir()
    files = {
        "000.tar": make_tar(
            arch / "000.tar",
            {"clips/a.mp4": a, "clips/a.txt": b"  tar caption a\n", "clips/b.mp4": b},
        ),
        "more/001.zip": make_zip(
            arch / "001.zip", {"b.mp4": b, "a.mp4": a, "b.json": b'{"caption": "zip b"}'}
        ),
        "evil.tar": make_tar(arch / "evil.tar", {"ok.mp4": a, "../../evil.mp4": b}),
    }
    cache = make_hub_cache(tmp_path / "hub", "org/clips", files)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.delenv("HF_TOKEN", raising=False)
    source = {
        "name": "hf",
        "type": "hf_archives",
        "repo": "org/clips",
        "shards": list(files),
        "cache_dir": str(cache),
        "keep_extracted": True,
    }
    wd = tmp_path / "wd"
    cfg = base_config(
        [source], lean=True, split={"min_seconds": 0.5}, export={"dedupe_across_shards": False}
    )
    run_snakemake(wd, cfg, targets=METADATA)

    zip_shard = f"hf-{slug_id('more/001')}"
    shards = plan_shards(wd)
    assert set(shards) == {"hf-000", zip_shard, "hf-evil"}
    assert all(s["items"] == 1 and s["kind"] == "archive" for s in shards.values())
    meta = check_dataset(wd)

    # members are the shard's videos, extracted under results/work/{shard}/extracted
    src = shard_table(wd, "hf-000", "source.parquet").set_index("video_id")
    assert list(src.index) == [f"hf-000-{slug_id('clips/a')}", f"hf-000-{slug_id('clips/b')}"]
    assert src["error"].isna().all()
    assert [c if isinstance(c, str) else None for c in src["caption"]] == ["tar caption a", None]
    extracted = wd / "results/work/hf-000/extracted"
    assert [Path(p) for p in src["path"]] == [extracted / "clips/a.mp4", extracted / "clips/b.mp4"]
    assert (extracted / "clips/a.mp4").read_bytes() == a
    assert src["uri"].iloc[0] == "hf://datasets/org/clips@main/000.tar#clips/a.mp4"
    zsrc = shard_table(wd, zip_shard, "source.parquet")
    assert zsrc["error"].isna().all() and len(zsrc) == 2
    by_uri = {r.uri: r.source_caption for r in meta.itertuples()}
    assert by_uri["hf://datasets/org/clips@main/000.tar#clips/a.mp4"] == "tar caption a"
    assert by_uri["hf://datasets/org/clips@main/more/001.zip#b.mp4"] == "zip b"
    assert not isinstance(by_uri["hf://datasets/org/clips@main/more/001.zip#a.mp4"], str)
    ok = meta[meta["shard"] != "hf-evil"]
    assert ok["error"].isna().all() and len(ok) >= 4

    # the archive with a '..' member is refused whole: an error row, nothing written anywhere
    assert_error_everywhere(wd, "hf-evil-archive", "'..' component")
    assert not list(tmp_path.rglob("evil.mp4"))
    assert not list(tmp_path.rglob("ok.mp4"))
    assert not (wd / "results/work/hf-evil/extracted").exists()

    # extracted files removed: a later stage extracts them again from the Hub cache
    shutil.rmtree(wd / "results/work")
    scenes_file = "results/shards/hf-000/scan/scenes.parquet"
    before = pd.read_parquet(wd / scenes_file)
    run = run_snakemake(wd, cfg, targets=[scenes_file], forcerun=["scan"])
    assert [(j.rule, j.shard) for j in run.jobs] == [("scan", "hf-000")]
    assert (extracted / "clips/a.mp4").read_bytes() == a
    after = pd.read_parquet(wd / scenes_file)
    assert after["error"].isna().all()
    pd.testing.assert_frame_equal(before, after)


# ----------------------------------------------------------------------------- shard plan


def plan_cli(wd: Path, monkeypatch) -> None:
    with monkeypatch.context() as m:
        m.chdir(wd)
        assert cli.main(["plan", "--config", "config/config.yaml"]) == 0


def test_an_archive_that_cannot_be_fetched_fails_its_job_and_is_fetched_next_run(
    tmp_path, tiny_videos, monkeypatch
):
    """An archive the Hub cannot give now (offline here; a network outage, a 5xx after the
    retries, a token without access) is not data about the archive: it was one error row, so
    the shard was done and no later run fetched it again (its videos lost for good). The ingest
    job fails with the reason, the other shards go on, and once the archive can be fetched the
    next run ingests it."""
    arch = tmp_path / "archives"
    arch.mkdir()
    files = {
        "000.tar": make_tar(arch / "000.tar", {"a.mp4": tiny_videos["a"].read_bytes()}),
        "001.tar": make_tar(arch / "001.tar", {"b.mp4": tiny_videos["b"].read_bytes()}),
    }
    cache = make_hub_cache(tmp_path / "hub", "org/clips", {"000.tar": files["000.tar"]})
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    source = {"name": "hf", "type": "hf_archives", "repo": "org/clips", "shards": list(files),
              "cache_dir": str(cache)}  # fmt: skip
    wd = tmp_path / "wd"
    cfg = base_config([source], lean=True)
    targets = [f"results/shards/hf-00{i}/source.parquet" for i in "01"]
    with pytest.raises(Exception):  # noqa: B017 - Snakemake raises its own error types
        run_snakemake(wd, cfg, targets=targets)
    assert (wd / targets[0]).exists() and not (wd / targets[1]).exists()
    log = (wd / "results/logs/ingest/hf-001.log").read_text()
    assert "001.tar in dataset repo org/clips@main: not in the local Hub cache" in log

    make_hub_cache(cache, "org/clips", {"001.tar": files["001.tar"]})  # reachable again
    res = run_snakemake(wd, cfg, targets=targets)
    assert [(j.rule, j.shard) for j in res.jobs] == [("ingest", "hf-001")]
    src = shard_table(wd, "hf-001", "source.parquet")
    assert list(src["video_id"]) == ["hf-001-b"] and src["error"].isna().all()


def test_a_shard_whose_videos_mostly_fail_stops_at_ingest(tmp_path, tiny_videos):
    """A dataset cloned without Git LFS: pointer files where the videos should be. Each was an
    error row ("cannot open: Invalid data"), and the run ended with rc 0 and a few clips. Past
    max_error_share of a shard's videos (at least 3 of them), the ingest job stops, naming the
    cause; raising max_error_share accepts the shard."""
    from test_decode import LFS_POINTER

    videos = tmp_path / "videos"
    (videos / "good").mkdir(parents=True)
    (videos / "lfs").mkdir()
    shutil.copy(tiny_videos["a"], videos / "good" / "a.mp4")
    shutil.copy(tiny_videos["b"], videos / "good" / "b.mp4")
    for i in range(3):
        (videos / "lfs" / f"p{i}.mp4").write_text(LFS_POINTER)

    def ingest(wd: Path, cfg: dict) -> list[str]:
        """Run the ingest of every shard of the plan; the shards."""
        run_snakemake(wd, cfg, dryrun=True)  # writes the plan
        shards = sorted(plan_shards(wd))
        run_snakemake(wd, cfg, targets=[f"results/shards/{s}/source.parquet" for s in shards])
        return shards

    # one shard holds a.mp4 and b.mp4 with two pointers (2 of 4 failed: at most half), the
    # other the third pointer alone (1 failed: under the 3 that count)
    cfg = base_config([{"name": "vid", "type": "folder", "path": str(videos)}], lean=True)
    wd = tmp_path / "wd"
    failed = [shard_table(wd, s, "source.parquet")["error"].notna().sum() for s in ingest(wd, cfg)]
    assert failed == [2, 1]

    for i in range(3, 6):
        (videos / "lfs" / f"p{i}.mp4").write_text(LFS_POINTER)
    cfg["shard_size"] = 8  # one shard: 6 of 8 failed
    wd = tmp_path / "wd8"
    with pytest.raises(Exception):  # noqa: B017 - Snakemake raises its own error types
        ingest(wd, cfg)
    (shard,) = plan_shards(wd)
    assert not (wd / f"results/shards/{shard}/source.parquet").exists()
    log = (wd / f"results/logs/ingest/{shard}.log").read_text()
    assert f"ingest of shard {shard}: 6 of 8 videos failed (75%, over max_error_share = 0.5)" in log
    assert "First errors: cannot open: a Git LFS pointer, not the video: fetch the files" in log
    # `clipsift status` says which job failed and why (a keep-going run scrolls it away)
    out = clipsift_cli(wd, "status").stdout
    assert "failed jobs (the last attempt of each" in out and f"logs/ingest/{shard}.log" in out
    assert f"      StageFailed: ingest of shard {shard}: 6 of 8 videos failed" in out
    cfg["max_error_share"] = 1.0
    ingest(wd, cfg)
    assert shard_table(wd, shard, "source.parquet")["error"].notna().sum() == 6
    assert "failed jobs" not in clipsift_cli(wd, "status").stdout  # the new attempt's log


def test_a_job_that_stopped_itself_is_not_redone_by_its_retries(tmp_path, tiny_videos):
    """The profile's retries (restart-times 2) are for jobs killed for memory or time. A job
    that stopped because most of its videos failed stopped the same way three times, redoing
    its work each time (under SLURM: two more jobs at 2x and 3x the memory). Its retries now
    fail at once with the first attempt's error; the next run tries it again."""
    from test_decode import LFS_POINTER

    wd = tmp_path / "wd"
    videos = wd / "videos"
    videos.mkdir(parents=True)
    shutil.copy(tiny_videos["a"], videos / "a.mp4")
    for i in range(3):
        (videos / f"p{i}.mp4").write_text(LFS_POINTER)
    write_config(wd, base_config([{"name": "vid", "type": "folder", "path": "videos"}], lean=True))
    r = snakemake_cli(wd, "--snakefile", SNAKEFILE, "--cores", "1", "--until", "ingest")
    out = r.stdout + r.stderr
    assert r.returncode != 0 and out.count("Error in rule ingest") == 3, out[-3000:]
    log = (wd / "results/logs/ingest/vid-00000.log").read_text()
    assert "NotRetried: an earlier attempt of this job in this run stopped with StageFailed: " \
        "ingest of shard vid-00000: 3 of 4 videos failed" in log, log  # fmt: skip
    # the last attempt wrote the first one's log back, then its own line, and redid nothing
    assert log.count("clipsift.failures.StageFailed: ingest") == 1, log
    assert log.count("job failed") == 2 and log.count("NotRetried: an earlier") == 1, log
    assert log.count("INFO clipsift.ingest: ingest: 4 videos, 3 errors") == 1, log
    status = clipsift_cli(wd, "status").stdout
    assert "NotRetried: an earlier attempt" in status and "3 of 4 videos failed" in status
    r = snakemake_cli(
        wd, "--snakefile", SNAKEFILE, "--cores", "1", "--until", "ingest",
        "--config", "max_error_share=1.0",
    )  # fmt: skip
    assert r.returncode == 0, (r.stdout + r.stderr)[-3000:]
    assert not list((wd / "results/logs").rglob("*.stopped.json"))


def test_ingest_counts_only_the_errors_it_found(tmp_path, tiny_videos):
    """Items that come with an error (a refused archive, a failed generation) were judged by the
    stage that made them (generate stops when every item fails): ingest's share of failed
    videos counts the videos it probed itself."""
    from clipsift.failures import StageFailed
    from clipsift.ingest import check_probed, ingest_shard

    gone = [{"video_id": f"g-gone{i}", "path": str(tmp_path / f"{i}.mp4"), "error": None}
            for i in range(3)]  # fmt: skip
    items = pd.DataFrame(
        [{"video_id": f"g-{i}", "path": None, "error": "generate: out of memory"} for i in range(3)]
        + [{"video_id": "g-ok", "path": str(tiny_videos["a"]), "error": None}]
    )
    table = ingest_shard(items)
    assert list(table["error"].notna()) == [True, True, True, False]
    check_probed(items, table, "g", 0.5)  # 0 of 1 probed failed (3 of 4 rows have an error)
    # three missing files that ingest found itself: 3 of 4 probed videos failed
    probed = pd.DataFrame(gone + [items.iloc[3].to_dict()])
    with pytest.raises(StageFailed, match=r"ingest of shard g: 3 of 4 videos failed"):
        check_probed(probed, ingest_shard(probed), "g", 0.5)


def file_state(paths) -> dict:
    return {p.name: (p.read_bytes(), p.stat().st_mtime_ns) for p in paths}


def test_shard_plan_is_stable(tmp_path, tiny_videos, monkeypatch):
    wd = tmp_path / "wd"
    videos = wd / "videos"
    for i, v in enumerate("abc"):
        copy(tiny_videos[v], videos / f"v{i}.mp4")
    cfg = base_config(
        [{"name": "f", "type": "folder", "path": "videos"}],
        lean=True,
        shard_size=2,
        split={"min_seconds": 0.5},
    )
    write_config(wd, cfg)
    plan_cli(wd, monkeypatch)
    assert {k: s["items"] for k, s in plan_shards(wd).items()} == {"f-00000": 2, "f-00001": 1}
    pdir = wd / "results/plan"

    # the video of the second shard disappears after planning; parsing never lists the folder
    (videos / "v2.mp4").unlink()
    plan_files = [pdir / "shards.json", *sorted((pdir / "shards").glob("*.parquet"))]
    planned = file_state(plan_files)

    def boom(*a, **k):
        raise AssertionError("the Snakefile listed the sources")

    with monkeypatch.context() as m:
        m.setattr(plan, "list_items", boom)
        m.setattr(plan, "list_archives", boom)
        run = run_snakemake(wd, cfg, targets=METADATA)
    assert run.shards("ingest") == {"f-00000", "f-00001"}
    assert file_state(plan_files) == planned
    assert_error_everywhere(wd, "f-v2", "missing file")
    meta = check_dataset(wd)
    assert set(meta["video_id"]) == {"f-v0", "f-v1", "f-v2"}

    # a new video goes to a new shard; existing shard files are not touched
    copy(tiny_videos["a"], videos / "v3.mp4")
    copy(tiny_videos["c"], videos / "v2.mp4")  # back again: it is still planned in f-00001
    old_shards = [p for p in plan_files if p.suffix == ".parquet"]
    before = file_state(old_shards)
    plan_cli(wd, monkeypatch)
    assert {k: s["items"] for k, s in plan_shards(wd).items()} == {
        "f-00000": 2,
        "f-00001": 1,
        "f-00002": 1,
    }
    assert file_state(old_shards) == before
    assert list(pd.read_parquet(pdir / "shards/f-00002.parquet")["id"]) == ["v3"]

    # the video back in f-00001, ingested as missing, stops the run as a changed file does
    # (it was never noticed: review); accepted, its shard is ingested again
    with pytest.raises(Exception, match=r"v2.mp4 \(back since ingest; shard f-00001\)"):
        run_snakemake(wd, cfg, targets=METADATA, dryrun=True)
    from clipsift.sources.changes import accept_changes

    assert accept_changes(wd / "results") == (["f-00001"], [])
    # only the new shard's jobs, that one's and the jobs over all shards are scheduled
    dry = run_snakemake(wd, cfg, targets=METADATA, dryrun=True)
    # every stage that measures runs for those shards only; export_clips re-runs per shard
    # because the cross-shard duplicate table changed, and only re-links cached clip files
    new = {"f-00001", "f-00002"}
    assert {j.shard for j in dry.jobs if j.shard and j.rule != "export_clips"} == new
    assert dry.shards("ingest") == dry.shards("scan") == dry.shards("split") == new
    assert dry.rules["export"] == 1


# ----------------------------------------------------------------------------- materialize


@pytest.fixture(scope="module")
def cut_video(tmp_path_factory) -> Path:
    """10 fps, 320x180: a 2.5 s scene, a cut, a 6.5 s fast pan; a keyframe at most every 12."""
    path = tmp_path_factory.mktemp("mat") / "m.mp4"
    segs = [Segment(25, seed=31, pan=(3, 1)), Segment(65, seed=32, pan=(4, 0))]
    render_video(path, segs, fps=10, size=(320, 180), gop=12)
    return path


def best_match(frame: np.ndarray, frames: np.ndarray) -> int:
    return int(np.argmin(np.abs(frames - frame).mean(axis=(1, 2))))


def test_materialize_reencode_then_copy(tmp_path, cut_video):
    wd = tmp_path / "wd"
    copy(cut_video, wd / "videos/m.mp4")
    cfg = base_config(
        [{"name": "f", "type": "folder", "path": "videos"}],
        lean=True,
        split={"min_seconds": 1.0, "max_seconds": 3.0, "materialize": "reencode"},
    )
    run_snakemake(wd, cfg, targets=METADATA)
    source = wd / "videos/m.mp4"
    src_frames = gray_frames(source)
    times = np.array(frame_times(source))
    clips = shard_table(wd, "f-00000", "clips.parquet")
    ok = clips[clips["error"].isna() & clips["split_reason"].isna()]
    # scene 1 and three windows of the 6.5 s scene
    assert list(ok["start_frame"]) == [0, 25, 47, 68] and list(ok["end_frame"]) == [25, 47, 68, 90]
    clip_dir = wd / "results/shards/f-00000/clips"
    for row in ok.itertuples():
        path = Path(row.path)
        assert path == clip_dir / f"{row.clip_id}.mp4"
        frames = gray_frames(path)
        assert len(frames) == row.n_frames  # frame-exact
        assert best_match(frames[0], src_frames) == row.start_frame
        assert best_match(frames[-1], src_frames) == row.end_frame - 1

    # copy: only split (and what follows) re-runs; clips start at the keyframe at or before
    cfg["split"]["materialize"] = "copy"
    run = run_snakemake(wd, cfg, targets=METADATA)
    assert run.shards("split") == {"f-00000"} and not {"ingest", "scan"} & set(run.rules)
    keyframes = keyframe_times(source)
    clips = shard_table(wd, "f-00000", "clips.parquet")
    ok = clips[clips["error"].isna() & clips["split_reason"].isna()]
    assert len(ok) == 4
    mid_gop = 0
    for row in ok.itertuples():
        start = max(k for k in keyframes if k <= row.start_time + 1e-6)
        first = int(np.argmin(np.abs(times - start)))
        mid_gop += first != row.start_frame
        frames = gray_frames(Path(row.path))
        assert count_frames(Path(row.path)) == len(frames)
        idx = [best_match(f, src_frames) for f in frames]
        assert idx[0] == first  # keyframe-aligned start
        assert idx == list(range(first, first + len(idx)))  # consecutive source frames
        # ends near the clip end (exact frame coverage: test_stream_copy_covers_the_range)
        assert abs(idx[-1] - (row.end_frame - 1)) <= 3
    assert mid_gop >= 1  # at least one window starts between keyframes


def test_stream_copy_covers_the_range(tmp_path, cut_video):
    from clipsift.split.clips import stream_copy

    src_frames = gray_frames(cut_video)
    times = np.array(frame_times(cut_video))
    keyframes = keyframe_times(cut_video)
    for a, b in [(25, 47), (47, 68), (68, 90), (0, 25), (30, 31)]:
        start, end = times[a], times[b] if b < len(times) else times[-1] + 0.1
        stream_copy(str(cut_video), tmp_path / "c.mp4", start, end)
        frames = gray_frames(tmp_path / "c.mp4")
        idx = [best_match(f, src_frames) for f in frames]
        first = int(np.argmin(np.abs(times - max(k for k in keyframes if k <= start + 1e-6))))
        assert idx[0] == first
        assert set(range(first, b)) <= set(idx), (a, b, idx)  # every frame of the range
        assert max(idx) < b + 3  # at most a few frames past the end (reference frames)
