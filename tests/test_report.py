"""The dataset report: funnel chart, histograms with thresholds, contact sheets of kept and
rejected clips, counts and job times; on small tables and on the finished build of
test_export.py."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from helpers import base_config
from snakemake.utils import validate

from clipsift import report as rp
from clipsift.config import SCHEMA
from clipsift.counts import stage_counts


def png_size(path: Path) -> tuple[int, int]:
    data = Path(path).read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", path
    return int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")


def small_build(videos: dict[str, Path]) -> tuple[pd.DataFrame, dict]:
    """Metadata of 6 clips over the tiny videos (2 kept, 4 rejected for 3 reasons) and its
    provenance record."""
    cfg = base_config([{"name": "t", "type": "folder", "path": "."}])
    validate(cfg, str(SCHEMA))

    def clip(cid, video, start, end, keep, reasons, rel, **over):
        return {"clip_id": cid, "video_id": cid.split("_")[0], "keep": keep, "reasons": reasons,
                "file": None, "caption": None, "source_path": str(video), "start_time": start,
                "end_time": end, "n_frames": None if np.isnan(end) else round((end - start) * 10), "error": None,
                "split_reason": None, "motion.rel": rel, "technical.luma_mean": 120.0,
                "duplicate_of": None, **over}  # fmt: skip

    a, b, c = videos["a"], videos["b"], videos["c"]
    meta = pd.DataFrame([
        clip("a_0000", a, 0.0, 2.0, False, ["motion.rel=0 < 0.0005"], 0.0),
        clip("a_0001", a, 2.0, 4.0, False, ["motion.rel=0 < 0.0005"], 0.0),
        clip("b_0000", b, 0.0, 3.0, True, [], 0.003, caption="A slow pan over a field."),
        clip("c_0000", c, 0.0, 1.5, False, ["too_short"], np.nan, split_reason="too_short"),
        clip("x_0000", "/nowhere.mp4", np.nan, np.nan, False, ["error: cannot open: x"], np.nan,
             error="cannot open: x"),
        clip("b2_0000", b, 0.5, 2.5, True, [], 0.004),
    ])  # fmt: skip
    counts = stage_counts(meta, [pd.DataFrame({"video_id": ["a", "b", "c", "x", "b2"],
                                                  "error": [None, None, None, "x", None],
                                                  "duplicate_of": None})], cfg, {"t-0": 5})  # fmt: skip
    prov = {"config": cfg, "counts": counts, "config_sha256": "c0ffee" * 10,
            "code": {"clipsift": "0.1.0", "git_describe": "abc1234"},
            "models": [{"stage": "caption", "id": "org/vlm", "revision": None, "resolved_revision": "1"}]}  # fmt: skip
    return meta, prov


def test_report_pictures_and_page(tiny_videos, tmp_path):
    meta, prov = small_build(tiny_videos)
    out = tmp_path / "report"
    figs = rp.write_report(meta, prov, out / "index.html", out / "figures",
                           cfg={"sample_clips": 4, "rejected_per_reason": 2, "frame_width": 160},
                           workdir=tmp_path)  # fmt: skip
    assert [Path(p).name for p in figs["funnel"]] == ["funnel.png"]
    assert [Path(p).name for p in figs["kept"]] == ["kept.png"]
    # one sheet per reason, biggest group first
    assert [Path(p).name for p in figs["rejected"]] == [
        "rejected_motion.rel.png", "rejected_error.png", "rejected_too_short.png"]  # fmt: skip
    assert {Path(p).name for p in figs["histograms"]} == {
        "motion.rel.png",
        "technical.luma_mean.png",
    }
    w, h = png_size(out / "figures" / "kept.png")
    assert w >= 600 and h >= 250  # two clips of three frames, readable
    for p in [*figs["funnel"], *figs["rejected"], *figs["histograms"]]:
        assert min(png_size(p)) >= 200
    html = (out / "index.html").read_text()
    for src in re.findall(r'src="([^"]+)"', html):
        assert (out / src).is_file(), src
    assert "Retention funnel" in html and "org/vlm" in html and "too_short" in html
    # the funnel: videos, clips, then what survives each test
    stages = [r["stage"] for r in prov["counts"]["funnel"]]
    assert stages[:4] == ["videos planned", "videos ingested", "unique videos", "clips"]
    assert stages[-1] == "kept" and "pass motion.rel>=" in stages


def test_evenly_and_timings(tmp_path):
    df = pd.DataFrame({"clip_id": [f"c{i:02d}" for i in range(10)][::-1]})
    assert list(rp.evenly(df, 3)["clip_id"]) == ["c00", "c04", "c09"]
    assert list(rp.evenly(df.head(2), 5)["clip_id"]) == ["c08", "c09"]
    meta = tmp_path / ".snakemake" / "metadata"
    meta.mkdir(parents=True)
    recs = [  # two outputs of one job (a record each), one job of another rule, an incomplete one
        {"rule": "scan", "log": ["logs/scan/s0.log"], "job_hash": 1, "starttime": 10.0, "endtime": 14.0},
        {"rule": "scan", "log": ["logs/scan/s0.log"], "job_hash": 1, "starttime": 10.1, "endtime": 15.0},
        {"rule": "scan", "log": ["logs/scan/s1.log"], "job_hash": 2, "starttime": 10.0, "endtime": 12.0},
        {"rule": "export", "log": ["logs/export.log"], "job_hash": 3, "starttime": 20.0, "endtime": 21.5},
        {"rule": "select", "log": [], "job_hash": 4, "starttime": 1.0, "endtime": 2.0, "incomplete": True},
    ]  # fmt: skip
    for i, r in enumerate(recs):
        (meta / f"r{i}").write_text(json.dumps(r))
    (meta / "junk").write_text("not json")
    t = rp.job_timings(tmp_path).set_index("rule")
    assert t.loc["scan", "jobs"] == 2 and t.loc["scan", "total_s"] == pytest.approx(7.0)
    assert t.loc["export", "longest_s"] == pytest.approx(1.5) and "select" not in t.index
    logs = tmp_path / "logs"
    (logs / "scan").mkdir(parents=True)
    (logs / "scan" / "s0.log").write_text("")
    (logs / "export.log").write_text("")
    no_records = rp.job_timings(tmp_path / "elsewhere", logs).set_index("rule")
    assert no_records["jobs"].to_dict() == {"export": 1, "scan": 1}


@pytest.mark.slow
def test_report_of_a_real_build(tmp_path_factory):
    """The report rule's page and pictures on the finished build of test_export.py."""
    from test_export import built_dataset

    wd = built_dataset(tmp_path_factory).wd
    page = wd / "results" / "report" / "index.html"
    html = page.read_text()
    srcs = re.findall(r'src="([^"]+)"', html)
    assert srcs and all((page.parent / s).is_file() for s in srcs)
    figs = wd / "results" / "report" / "figures"
    names = {p.name for p in figs.glob("*.png")}
    assert {"funnel.png", "kept.png", "rejected_error.png", "rejected_too_short.png",
            "rejected_duplicate.png", "rejected_motion.rel_per_s.png"} <= names  # fmt: skip
    assert (figs / "histograms" / "motion.rel_per_s.png").is_file()
    assert (
        "calibration/index.html" in html
        and (wd / "results/report/calibration/index.html").is_file()
    )
    timings = rp.job_timings(wd).set_index("rule")
    assert timings.loc["export_clips", "jobs"] == 2 and timings.loc["scan", "total_s"] > 0
    assert "<td>export_clips</td>" in html.split("Jobs and time per rule")[1]


def test_thumbnails_stay_inside_a_clip_whose_last_frame_lasts_long(tmp_path):
    """A clip of 11 frames 0.1 s apart whose last frame lasts 0.6 s (a variable frame rate),
    then the next shot: 90 % of the clip's duration (1.44 s) lies nearer the next shot's first
    frame than the clip's last; the thumbnails are taken over first to last frame instead."""
    from clipsift.io.decode import read_frames_at
    from clipsift.sample import Segment, render_video

    times = [i / 10 for i in range(11)] + [1.6 + i / 10 for i in range(15)]
    video = tmp_path / "v.mp4"
    render_video(video, [Segment(11, seed=1), Segment(15, seed=2)], fps=10, size=(320, 180),
                 times=times)  # fmt: skip
    every = read_frames_at(video, times, size=96)
    row = {"clip_id": "a", "source_path": str(video), "start_time": 0.0, "last_time": 1.0,
           "end_time": 1.6}  # fmt: skip
    imgs, _ = rp.clip_frames(row, None, 96)
    diffs = [[np.abs(img.astype(int) - f.astype(int)).mean() for f in every] for img in imgs]
    assert [int(np.argmin(d)) for d in diffs] == [1, 5, 9]
    # a table without last_time: over the duration, as before (the last one is the next shot's)
    old, _ = rp.clip_frames(row | {"last_time": None}, None, 96)
    assert int(np.argmin([np.abs(old[2].astype(int) - f.astype(int)).mean() for f in every])) == 11


def test_histograms_of_values_equal_but_for_float_noise(tmp_path):
    """Clips cut to one length last 3.0 and 3.000000000000001 s: numpy found no finite bins for
    that range and the calibrate job (and the report) crashed on such a dataset."""
    from clipsift.calibration import histograms
    from clipsift.config import validate_config
    from clipsift.selection import with_filters

    table = pd.DataFrame(
        {"error": [None] * 4, "split_reason": [None] * 4, "duration": [3.0, 3.0 + 1e-15] * 2,
         "motion.rel_per_s": [0.05, 0.0, 0.05, 0.0], "motion.n_pairs": [6.0] * 4}
    )  # fmt: skip
    with pytest.raises(ValueError, match="Too many bins"):  # what numpy itself does
        np.histogram(table["duration"], bins=5)
    cfg = validate_config(base_config([{"name": "v", "type": "folder", "path": "."}]))
    paths = histograms(table, with_filters(cfg["select"], cfg["filters"]), tmp_path)
    assert {p.name for p in paths} >= {"duration.png", "motion.rel_per_s.png"}
    assert all(png_size(p)[0] > 0 for p in paths)
