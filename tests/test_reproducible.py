"""Builds that depend only on the config, the inputs and the lock (docs/reproducible.md).

Through the command line, as a user runs it (so the workflow profile applies):
- two builds of the sample, from two working folders, with ``--cores 1`` and ``--cores 2`` and
  a relative and an absolute results path, give the same bytes for every dataset file (but the
  declared timestamp fields); the local-vs-SLURM comparison is in test_slurm.py;
- a source overwritten in place stops the next run with its name and the command that accepts
  it; after ``clipsift accept-changes`` the rerun re-ingests that shard and the dataset's file,
  hash and size describe the new content; a ``touch`` that kept the bytes is not a change;
- a second run on a results folder that a run holds stops at once, from any working folder.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from helpers import (
    SNAKEFILE,
    base_config,
    clipsift_cli,
    dataset_digests,
    snakemake_cli,
    write_config,
)

from clipsift import runlock

pytestmark = pytest.mark.slow


def sample_workdir(root: Path, sample_set, results: str, **over) -> Path:
    """A working folder with its own copy of the sample videos and a config naming them as the
    demo does (``sample/videos``, relative)."""
    root.mkdir(parents=True)
    shutil.copytree(sample_set.dir, root / "sample" / "videos")
    cfg = base_config([{"name": "sample", "type": "folder", "path": "sample/videos"}], **over)
    cfg["results"] = results
    cfg["export"] = {"clips": True}
    write_config(root, cfg)
    return root


def test_same_bytes_whatever_cores_folder_and_results_path(tmp_path, sample_set):
    a = sample_workdir(tmp_path / "a", sample_set, "results")
    other = tmp_path / "elsewhere" / "out"
    b = sample_workdir(tmp_path / "b", sample_set, str(other))
    ra = snakemake_cli(a, "--snakefile", SNAKEFILE, "--cores", "1")
    assert ra.returncode == 0, ra.stderr[-4000:]
    rb = snakemake_cli(b, "--snakefile", SNAKEFILE, "--cores", "2")
    assert rb.returncode == 0, rb.stderr[-4000:]

    da, db = dataset_digests(a / "results" / "dataset"), dataset_digests(other / "dataset")
    assert any(name.endswith(".mp4") for name in da), sorted(da)  # clip files were built
    assert da.keys() == db.keys()
    assert {k for k in da if da[k] != db[k]} == set()

    # nothing of either machine's folders is published
    for path in (a / "results" / "dataset").rglob("*"):
        if path.suffix in (".json", ".jsonl", ".md", ".parquet"):
            data = path.read_bytes()
            assert str(tmp_path).encode() not in data, path
    prov = json.loads((a / "results" / "dataset" / "provenance.json").read_text())
    assert "results" not in prov["config"]
    assert prov["lock"]["file"] in ("requirements/cpu.lock.txt", "requirements/cuda.lock.txt")
    meta = pd.read_parquet(a / "results" / "dataset" / "metadata.parquet")
    assert meta["uri"].str.startswith("sample/videos/").all(), meta["uri"].tolist()


def test_a_changed_source_is_noticed_and_rebuilt(tmp_path, sample_set):
    w = sample_workdir(tmp_path / "w", sample_set, "results", shard_size=2)
    r = snakemake_cli(w, "--snakefile", SNAKEFILE, "--cores", "2")
    assert r.returncode == 0, r.stderr[-4000:]
    meta = pd.read_parquet(w / "results" / "dataset" / "metadata.parquet")
    target = w / "sample" / "videos" / "motion.mp4"
    old = meta[meta["video_id"] == "sample-motion"].iloc[0]

    # a touch that keeps the bytes: not a change
    os.utime(target)
    r = snakemake_cli(w, "--snakefile", SNAKEFILE, "--cores", "2", "-n")
    assert r.returncode == 0, r.stderr[-4000:]
    assert "Nothing to be done" in r.stdout + r.stderr

    # overwritten in place with another video (same inode, new bytes)
    with open(target, "r+b") as fh:
        fh.truncate(0)
        fh.write((sample_set.dir / "cuts.mp4").read_bytes())
    for args in ((), ("-n",)):  # a dry run says it too
        r = snakemake_cli(w, "--snakefile", SNAKEFILE, "--cores", "2", *args)
        out = r.stdout + r.stderr
        assert r.returncode != 0, out[-3000:]
        assert "motion.mp4 (size changed" in out and "clipsift accept-changes" in out, out[-3000:]

    r = clipsift_cli(w, "accept-changes")
    assert r.returncode == 0 and "1 shard(s)" in r.stdout, r.stdout + r.stderr
    r = snakemake_cli(w, "--snakefile", SNAKEFILE, "--cores", "2")
    assert r.returncode == 0, r.stderr[-4000:]
    new = pd.read_parquet(w / "results" / "dataset" / "metadata.parquet")
    src = pd.concat(
        pd.read_parquet(p) for p in sorted((w / "results" / "shards").glob("*/source.parquet"))
    ).set_index("video_id")
    row = src.loc["sample-motion"]
    assert row["size"] == target.stat().st_size and row["hash"] != old["hash"]
    mine = new[new["video_id"] == "sample-motion"]
    assert (mine["hash"] == row["hash"]).all()
    # the motion video now holds the cuts video: its clips follow the new content
    assert len(mine) != 1 or mine.iloc[0]["n_frames"] != old["n_frames"]
    for f in mine["file"].dropna():
        # every exported file of that video matches the metadata's sha256
        meta_sha = mine.loc[mine["file"] == f, "export.sha256"].iloc[0]
        assert hashlib.sha256((w / "results" / "dataset" / f).read_bytes()).hexdigest() == meta_sha


def test_one_run_per_results_folder(tmp_path, sample_set):
    results = tmp_path / "shared-results"
    a = sample_workdir(tmp_path / "a", sample_set, str(results))
    b = sample_workdir(tmp_path / "b", sample_set, str(results))
    # a process holding the lock, as a running Snakemake does
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            f"from clipsift import runlock; runlock.acquire({str(results)!r});"
            "import time; print('held', flush=True); time.sleep(600)",
        ],  # fmt: skip
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "held"
        assert runlock.holder(results)["pid"] == holder.pid
        r = snakemake_cli(b, "--snakefile", SNAKEFILE, "--cores", "1")
        assert r.returncode != 0
        assert "is in use by another run" in r.stderr and str(holder.pid) in r.stderr, r.stderr
        assert not (results / "shards").exists()  # it stopped before any job
        st = clipsift_cli(a, "status")
        assert f"run: active (pid {holder.pid}" in st.stdout, st.stdout
        # a dry run needs no lock
        assert snakemake_cli(b, "--snakefile", SNAKEFILE, "-n").returncode == 0
    finally:
        holder.kill()
        holder.wait()
    # killed: the kernel dropped the lock, nothing to unlock
    assert runlock.holder(results) is None
    r = snakemake_cli(a, "--snakefile", SNAKEFILE, "--cores", "2")
    assert r.returncode == 0, r.stderr[-4000:]
    assert "run: none active" in clipsift_cli(a, "status").stdout


def test_a_gone_source_is_listed_and_dropped_on_request(tmp_path, sample_set):
    """A deleted source file stays in the dataset (sources are often removed once processed),
    but every run says so, and ``accept-changes --gone`` drops its clips (a takedown). Before,
    nothing said so, and whether its clips left depended on another file of its shard changing
    (tryout 16)."""
    w = sample_workdir(tmp_path / "w", sample_set, "results", shard_size=2)
    r = snakemake_cli(w, "--snakefile", SNAKEFILE, "--cores", "2")
    assert r.returncode == 0, r.stderr[-4000:]
    meta = pd.read_parquet(w / "results" / "dataset" / "metadata.parquet")
    assert meta.loc[meta["video_id"] == "sample-motion", "keep"].any()
    # a new mtime on the same bytes is no change, for status as for the run
    flash = w / "sample" / "videos" / "flash.mp4"
    st = flash.stat()
    os.utime(flash, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    assert "sources that differ" not in clipsift_cli(w, "status").stdout
    (w / "sample" / "videos" / "motion.mp4").unlink()
    r = snakemake_cli(w, "--snakefile", SNAKEFILE, "--cores", "2")
    out = r.stdout + r.stderr
    assert r.returncode == 0 and "Nothing to be done" in out, out[-3000:]
    assert "1 ingested source file(s) are gone" in out and "motion.mp4" in out, out[-3000:]
    assert "clipsift accept-changes --gone" in out, out[-3000:]
    status = clipsift_cli(w, "status").stdout  # status says so too (tryout 16: it did not)
    assert "sources that differ from what was ingested" in status, status
    assert "1  gone" in status and "accept-changes --gone --results" in status, status
    assert "sources that differ" not in clipsift_cli(w, "status", "--no-sources").stdout
    r = clipsift_cli(w, "accept-changes")
    assert r.returncode == 0 and "no ingested source changed" in r.stdout, r.stdout + r.stderr
    r = clipsift_cli(w, "accept-changes", "--gone")
    assert r.returncode == 0 and "1 shard(s)" in r.stdout, r.stdout + r.stderr
    r = snakemake_cli(w, "--snakefile", SNAKEFILE, "--cores", "2")
    out = r.stdout + r.stderr
    assert r.returncode == 0 and "are gone" not in out, out[-3000:]
    assert "sources that differ" not in clipsift_cli(w, "status").stdout
    new = pd.read_parquet(w / "results" / "dataset" / "metadata.parquet")
    motion = new[new["video_id"] == "sample-motion"]
    assert not motion["keep"].any() and motion["error"].notna().all()
    others = meta[(meta["video_id"] != "sample-motion") & meta["keep"]]["clip_id"]
    assert set(others) == set(new.loc[new["keep"], "clip_id"])
    assert not list((w / "results" / "dataset" / "clips").glob("*/sample-motion*"))

    # the whole source folder missing (not mounted) is no takedown: said apart, never dropped
    videos = w / "sample" / "videos"
    videos.rename(w / "unmounted")
    for mount_point in (False, True):  # the folder gone, then left empty (review)
        if mount_point:
            videos.mkdir()
        r = snakemake_cli(w, "--snakefile", SNAKEFILE, "--cores", "2", "-n")
        out = r.stdout + r.stderr
        assert r.returncode == 0 and "in folders that are missing or empty" in out, out[-3000:]
        assert "accept-changes --gone --results" not in out, out[-3000:]
        status = clipsift_cli(w, "status").stdout
        assert "in folders missing or empty" in status and "--gone --results" not in status
        r = clipsift_cli(w, "accept-changes", "--gone")
        assert "no ingested source changed" in r.stdout, r.stdout + r.stderr
    videos.rmdir()
    (w / "unmounted").rename(videos)
    # the file taken down comes back: a change, as a replaced file is (review: never noticed)
    shutil.copyfile(sample_set.dir / "motion.mp4", videos / "motion.mp4")
    r = snakemake_cli(w, "--snakefile", SNAKEFILE, "--cores", "2", "-n")
    out = r.stdout + r.stderr
    assert r.returncode != 0 and "motion.mp4 (back since ingest" in out, out[-3000:]
    status = clipsift_cli(w, "status").stdout
    assert "1  back since ingest" in status and "the next run stops until" in status, status
    assert clipsift_cli(w, "accept-changes").returncode == 0
    r = snakemake_cli(w, "--snakefile", SNAKEFILE, "--cores", "2")
    assert r.returncode == 0, r.stderr[-4000:]
    back = pd.read_parquet(w / "results" / "dataset" / "metadata.parquet")
    assert set(back.loc[back["keep"], "clip_id"]) == set(meta.loc[meta["keep"], "clip_id"])


def run_with_the_folder_away(w: Path, tiny_videos, until: str):
    """Two videos of source ``vid`` in ``w/videos``, built ``--until`` a rule; then the folder
    moved to ``w/away`` (an unmounted or lost mount) and a full run: ``(w, videos, result)``."""
    videos = w / "videos"
    videos.mkdir(parents=True)
    for name in ("a", "b"):
        shutil.copy(tiny_videos[name], videos / f"{name}.mp4")
    cfg = base_config([{"name": "vid", "type": "folder", "path": "videos"}], lean=True)
    cfg["split"]["min_seconds"] = 1.0
    write_config(w, cfg)
    r = snakemake_cli(w, "--snakefile", SNAKEFILE, "--cores", "2", "--until", until)
    assert r.returncode == 0, r.stderr[-4000:]
    videos.rename(w / "away")
    return w, videos, snakemake_cli(w, "--snakefile", SNAKEFILE, "--cores", "2")


def test_a_source_folder_missing_at_the_scan_stops_it_and_is_scanned_once_back(
    tmp_path, tiny_videos
):
    """A source folder that is not there when its shard is scanned (not mounted, moved away)
    fails the scan job with the files named; it used to record each video as an error row, so
    every later run, the folder back, ended in "no clip kept" (a tryout) until a forced scan."""
    w, videos, r = run_with_the_folder_away(tmp_path / "w", tiny_videos, "ingest")
    out = r.stdout + r.stderr
    assert r.returncode != 0 and "Error in rule scan" in out, out[-3000:]
    assert not (w / "results" / "shards" / "vid-00000" / "scan").exists()
    text = (w / "results" / "logs" / "scan" / "vid-00000.log").read_text()
    assert "2 of 2 source file(s) of this shard are not there now" in text, text[-2000:]
    assert str(videos / "a.mp4") in text, text[-2000:]
    assert "`clipsift accept-changes --gone --results results`" in text, text[-2000:]
    assert "`clipsift plan --drop vid`" in text, text[-2000:]
    (w / "away").rename(videos)
    r = snakemake_cli(w, "--snakefile", SNAKEFILE, "--cores", "2")
    assert r.returncode == 0, r.stderr[-4000:]
    meta = pd.read_parquet(w / "results" / "dataset" / "metadata.parquet")
    assert meta["error"].isna().all(), meta[["video_id", "error"]]
    assert set(meta["video_id"]) == {"vid-a", "vid-b"} and meta["keep"].any()


def test_a_source_folder_lost_after_the_scan_stops_the_export_and_is_read_once_back(
    tmp_path, tiny_videos
):
    """A mount that drops between the scan and a later stage that reads source files (here the
    export of virtual clips): the stage stops with the files named and writes nothing, where it
    used to record every clip as an export failure that no later run retried."""
    w, videos, r = run_with_the_folder_away(tmp_path / "w", tiny_videos, "select")
    out = r.stdout + r.stderr
    assert r.returncode != 0 and "Error in rule export_clips" in out, out[-3000:]
    assert not (w / "results" / "dataset" / "clips" / "vid-00000.parquet").exists()
    text = (w / "results" / "logs" / "export_clips" / "vid-00000.log").read_text()
    assert "source file(s) of the clips that export failed on are not there now" in text, text
    assert f"{videos}/" in text and "`clipsift plan --drop vid`" in text, text[-2000:]
    (w / "away").rename(videos)
    r = snakemake_cli(w, "--snakefile", SNAKEFILE, "--cores", "2")
    assert r.returncode == 0, r.stderr[-4000:]
    index = pd.read_parquet(w / "results" / "dataset" / "clips" / "vid-00000.parquet")
    assert len(index) and index["error"].isna().all(), index[["clip_id", "error"]]


def test_only_clips_a_stage_could_read_point_at_a_missing_source(tmp_path):
    """A clip that had failed before the stage (an error, a split reason) is no cause to stop;
    a materialized clip is, since the stages read frames from its source by index (review: an
    exemption for split clip files left the drop-out unfixed for copy and reencode)."""
    from clipsift.failures import check_failed_sources
    from clipsift.sources import SourceUnavailable

    gone = str(tmp_path / "gone.mp4")
    source = pd.DataFrame({"video_id": ["v", "u"], "path": [gone, gone], "source": ["s", "s"]})
    clips = pd.DataFrame(
        {
            "clip_id": ["v_0", "v_1", "u_0"],
            "video_id": ["v", "v", "u"],
            "source_path": [gone, gone, gone],
            "path": [str(tmp_path / "v_0.mp4"), gone, gone],
            "error": [None, "cannot open", None],
            "split_reason": [None, None, "too_short"],
        }
    )
    check_failed_sources("encode", clips, ["v_1", "u_0"], source)
    check_failed_sources("encode", clips, [], source)
    with pytest.raises(SourceUnavailable, match=r"1 of 1 source file\(s\) of the clips that"):
        check_failed_sources("encode", clips, ["v_0", "v_1", "u_0"], source, "results")


def test_a_shard_with_no_usable_video_is_scanned_to_empty_tables():
    """The reachability check on a shard whose every video failed at ingest: no rows to check
    (a boolean list over no rows selected columns, and every such scan job failed)."""
    from clipsift.config import validate_config
    from clipsift.split.scan import scan_shard

    cfg = validate_config({"sources": [{"name": "a", "type": "folder", "path": "."}]})
    empty = pd.DataFrame(columns=["video_id", "path", "fps", "duration", "source"])
    scenes, frames, samples, texts = scan_shard(empty, cfg["scan"], None, results="results")
    assert scenes.empty and frames.empty and samples.empty and texts.empty
