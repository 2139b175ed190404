"""Issue 3 acceptance: flash, OCR, motion and technical scores, selection and calibration, run
through the real Snakefile on generated videos whose content is known."""

from __future__ import annotations

import json
import math
import shutil

import pandas as pd
import pytest
from helpers import base_config, metadata, run_snakemake, shard_table

from clipsift.sample import Segment, render_video
from clipsift.selection import clip_table, select

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def sample_run(sample_set, tmp_path_factory):
    """The whole pipeline once over the default sample set (one shard per video)."""
    work = tmp_path_factory.mktemp("filters")
    cfg = base_config([{"name": "s", "type": "folder", "path": str(sample_set.dir)}], shard_size=1)
    run = run_snakemake(work, cfg)
    meta = metadata(work).set_index("clip_id")
    return work, cfg, run, meta


def clips_of(meta: pd.DataFrame, name: str) -> pd.DataFrame:
    return meta[meta["video_id"] == f"s-{name}"].sort_values("start_frame")


def test_flash_frames_found_and_cuts_and_fades_are_not_flashes(sample_run, sample_set):
    work, _, _, meta = sample_run
    truth = sample_set.truth["flash.mp4"]["flash_frames"]
    flash_clips = clips_of(meta, "flash")
    assert len(flash_clips) == 1, "flash frames must not split the scene"
    rec = json.loads(
        (work / "results/shards" / flash_clips["shard"].iloc[0] / "flash.json").read_text()
    )
    found = rec[flash_clips.index[0]]["flash_frames"]
    assert len(found) == len(truth)
    assert all(abs(f - t) <= 1 for f, t in zip(sorted(found), truth, strict=True))
    assert flash_clips["flash_verdict"].iloc[0] == "fail"
    assert any(r.startswith("flash.ratio") for r in flash_clips["reasons"].iloc[0])
    for name in ("cuts", "fade", "motion"):  # hard cuts and a fade through black: no flash
        assert (clips_of(meta, name)["flash.n"] == 0).all(), name


def test_burned_in_text_found_by_rapidocr_and_text_free_clips_pass(sample_run, sample_set):
    work, _, _, meta = sample_run
    text = sample_set.truth["text.mp4"]["text"][0]["text"]
    with_text, without = clips_of(meta, "text").index[:2]
    rec = json.loads(
        (work / "results/shards" / meta.loc[with_text, "shard"] / "ocr.json").read_text()
    )
    read = " ".join(b["text"] for f in rec[with_text]["frames"] for b in f["boxes"]).upper()
    assert text.split()[0].upper() in read
    assert rec[with_text]["text_area_mean"] > 0.02 and rec[with_text]["has_stable_text"]
    assert rec[without]["text_area_max"] == 0 and not any(
        f["boxes"] for f in rec[without]["frames"]
    )
    assert (
        meta.loc[with_text, "ocr_verdict"] == "fail" and meta.loc[without, "ocr_verdict"] == "pass"
    )
    for name in ("cuts", "motion", "letterbox"):
        assert (clips_of(meta, name)["ocr_verdict"] == "pass").all(), name


def test_pan_speed_within_ten_percent_and_static_scores_lower(sample_run, sample_set):
    _, _, _, meta = sample_run
    truth = sample_set.truth["motion.mp4"]["segments"]
    static, pan = clips_of(meta, "motion")["motion.px_per_s"]
    assert truth[0]["speed_px_per_frame"] == 0
    assert static < 3 < pan  # px per second
    assert pan == pytest.approx(truth[1]["speed_px_per_frame"] * 30, rel=0.10)
    assert static < pan
    static_row, pan_row = clips_of(meta, "motion").itertuples()
    assert any(r.startswith("motion.rel_per_s") for r in static_row.reasons)
    assert not any(r.startswith("motion.rel_per_s") for r in pan_row.reasons)


def test_letterbox_detected_with_the_right_crop(sample_run, sample_set):
    _, _, _, meta = sample_run
    bar, _ = sample_set.truth["letterbox.mp4"]["segments"][0]["letterbox"]
    row = clips_of(meta, "letterbox").iloc[0]
    assert list(row["technical.crop"]) == [0, bar, 640, 360 - 2 * bar]
    for name in ("cuts", "motion"):
        crops = clips_of(meta, name)["technical.crop"]
        assert all(list(c) == [0, 0, 640, 360] for c in crops), name


def test_corrupt_video_has_an_error_in_every_table(sample_run):
    work, cfg, _, meta = sample_run
    row = clips_of(meta, "corrupt").iloc[0]
    clip, shard = clips_of(meta, "corrupt").index[0], row["shard"]
    assert not row["keep"] and row["reasons"][0].startswith("error:")
    assert shard_table(work, shard, "source.parquet")["error"].notna().all()
    assert shard_table(work, shard, "clips.parquet")["error"].notna().all()
    for name in ("flash.json", "ocr.json"):
        assert json.loads((work / "results/shards" / shard / name).read_text())[clip]["error"]
    for scorer in ("motion", "technical"):
        scores = shard_table(work, shard, f"scores/{scorer}.parquet")
        assert scores.set_index("clip_id").loc[clip, "error"].startswith("not scored")
    sel = shard_table(work, shard, "selection.parquet").set_index("clip_id")
    assert not sel.loc[clip, "keep"] and sel.loc[clip, "reasons"][0].startswith("error:")


def test_scores_merged_with_prefixes_and_every_reason_listed(sample_run):
    work, _, _, meta = sample_run
    for col in (
        "motion.px_per_s",
        "motion.rel_per_s",
        "technical.sharpness_mean",
        "technical.luma_mean",
        "ocr.text_area_mean",
        "flash.ratio",
    ):
        assert col in meta.columns, col
    # the subtitle clip is static too: both reasons, not just the first
    reasons = clips_of(meta, "text")["reasons"].iloc[0]
    assert any(r.startswith("ocr.text_area_mean") for r in reasons)
    assert any(r.startswith("motion.rel_per_s") for r in reasons)


def test_calibration_report(sample_run):
    work, _, _, meta = sample_run
    cal = work / "results/report/calibration"
    q = pd.read_csv(cal / "quantiles.csv").set_index("score")
    assert {"motion.rel_per_s", "technical.sharpness_mean", "ocr.text_area_mean"} <= set(q.index)
    measurable = meta["error"].isna() & meta["split_reason"].isna()
    assert q.loc["motion.rel_per_s", "count"] == measurable.sum()
    assert (cal / "histograms" / "motion.rel_per_s.png").stat().st_size > 1000
    retention = pd.read_csv(cal / "retention.csv")
    final = retention.iloc[-1]["cascade"]
    assert final == pytest.approx(meta.loc[measurable, "keep"].mean())
    whatif = pd.read_csv(cal / "whatif.csv")
    cur = whatif[
        (whatif["column"] == "motion.rel_per_s") & (whatif["op"] == ">=") & whatif["current"]
    ]
    assert len(cur) == 1 and cur["retention_overall"].iloc[0] == pytest.approx(final)
    # a looser bound never keeps fewer clips
    ge = whatif[(whatif["column"] == "motion.rel_per_s") & (whatif["op"] == ">=")].sort_values(
        "bound"
    )
    assert ge["retention_alone"].is_monotonic_decreasing
    assert "<img" in (cal / "index.html").read_text()


def test_changing_a_threshold_reruns_selection_and_no_scorer(sample_run, tmp_path):
    work, cfg, _, _ = sample_run
    copy = tmp_path / "w"
    shutil.copytree(work, copy, symlinks=True)
    assert run_snakemake(copy, cfg, dryrun=True).jobs == []
    changed = base_config(
        cfg["sources"], shard_size=1, select={"thresholds": {"motion.rel_per_s": {"min": 0.03}}}
    )
    rules = run_snakemake(copy, changed, dryrun=True).rules
    measuring = {
        "ingest",
        "scan",
        "split",
        "flash",
        "ocr",
        "score_cpu",
        "score_gpu",
        "merge_scores",
    }
    assert not measuring & set(rules), rules
    assert {"select", "calibrate", "export"} <= set(rules), rules
    assert rules["select"] == len(list((copy / "results/shards").iterdir()))

    # what counts as text is decided again from the scan's OCR rows: no second decode
    stricter = base_config(cfg["sources"], shard_size=1, filters={"ocr": {"min_chars": 3}})
    rules = run_snakemake(copy, stricter, dryrun=True).rules
    assert "ocr" in rules and not {"ingest", "scan", "split"} & set(rules), rules
    # a detector option changes the rows themselves: the scan runs again
    wider = base_config(cfg["sources"], shard_size=1, filters={"ocr": {"width_scale": 1.0}})
    assert "scan" in run_snakemake(copy, wider, dryrun=True).rules


def test_record_only_keeps_the_clip_and_records_the_verdict():
    clips = pd.DataFrame(
        {
            "clip_id": ["a", "b"],
            "video_id": ["v", "v"],
            "duration": [3.0, 3.0],
            "error": [None, None],
            "split_reason": [None, None],
        }
    )
    flash = {"a": {"flash_ratio": 0.1, "n_flash": 3}, "b": {"flash_ratio": 0.0, "n_flash": 0}}
    ocr = {
        "a": {"text_area_mean": 0.5, "text_area_max": 0.5, "text_frame_ratio": 1.0},
        "b": {"text_area_mean": 0.0, "text_area_max": 0.0, "text_frame_ratio": 0.0},
    }
    scores = pd.DataFrame({"clip_id": ["a", "b"], "motion.rel_per_s": [0.0, 0.3]})
    table = clip_table(clips, scores, {"flash": flash, "ocr": ocr})
    cfg = {
        "flash": {"max_flash_ratio": 0.0, "record_only": True},
        "ocr": {"max_text_area": 0.02, "max_text_frames": 0.5, "reject_stable_text": False,
                "record_only": False},
        "thresholds": {"motion.rel_per_s": {"min": 0.03, "max": None}},
    }  # fmt: skip
    sel = select(table, cfg).set_index("clip_id")
    assert sel.loc["a", "flash_verdict"] == "fail" and sel.loc["a", "ocr_verdict"] == "fail"
    assert sel.loc["a", "reasons"] == [
        "ocr.text_area_mean=0.5 > 0.02", "ocr.text_frame_ratio=1 > 0.5", "motion.rel_per_s=0 < 0.03"
    ]  # fmt: skip
    assert sel.loc["b", "keep"] and sel.loc["b", "reasons"] == []
    cfg["flash"]["record_only"] = False
    assert select(table, cfg).set_index("clip_id").loc["a", "reasons"][0] == "flash.ratio=0.1 > 0"


def test_motion_vectors_scorer_measures_a_pan(tmp_path):
    videos = tmp_path / "v"
    render_video(videos / "pan.mp4", [Segment(60, seed=3, pan=(3.0, 0))], fps=30, size=(320, 180))
    render_video(videos / "still.mp4", [Segment(60, seed=4)], fps=30, size=(320, 180))
    cfg = base_config(
        [{"name": "m", "type": "folder", "path": str(videos)}],
        scorers={"motion_vectors": {"enabled": True}},
        filters={"ocr": {"enabled": False}},
    )
    run_snakemake(tmp_path / "w", cfg)
    meta = metadata(tmp_path / "w").set_index("video_id")
    assert meta.loc["m-pan", "motion_vectors.px"] == pytest.approx(3.0, rel=0.25)
    assert meta.loc["m-pan", "motion_vectors.px_per_s"] == pytest.approx(90.0, rel=0.25)
    assert meta.loc["m-pan", "motion_vectors.rel_per_s"] == pytest.approx(
        meta.loc["m-pan", "motion_vectors.px_per_s"] / math.hypot(320, 180)
    )
    assert meta.loc["m-still", "motion_vectors.px"] < 0.3
    assert meta.loc["m-still", "motion_vectors.px_per_s"] < 9
    assert "ocr.text_area_mean" in meta and meta["ocr_verdict"].isna().all()


def test_calibration_sample_mode_then_full_run_reuses_the_sample(tiny_videos, tmp_path):
    videos = tmp_path / "v"
    videos.mkdir()
    for p in tiny_videos.values():
        shutil.copy(p, videos / p.name)
    src = [{"name": "t", "type": "folder", "path": str(videos)}]
    work = tmp_path / "w"
    sampled = base_config(
        src, shard_size=1, calibrate={"sample_size": 2}, split={"min_seconds": 1.0}
    )
    run_snakemake(work, sampled)
    first = {
        p.parent.name: p.stat().st_mtime_ns
        for p in (work / "results/shards").glob("*/scores.parquet")
    }
    assert len(first) == 2
    full = base_config(src, shard_size=1, calibrate={"sample_size": 0}, split={"min_seconds": 1.0})
    run = run_snakemake(work, full)
    assert run.shards("scan") == {"t-00002"}
    after = {
        p.parent.name: p.stat().st_mtime_ns
        for p in (work / "results/shards").glob("*/scores.parquet")
    }
    assert {k: after[k] for k in first} == first
    assert len(after) == 3
