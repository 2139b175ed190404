"""Rejections as data (clipsift.reasons): what select writes, how it reads back, and the migration
of tables written before the ``rejections`` column."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow.parquet as pq

from clipsift import reasons
from clipsift.counts import stage_counts
from clipsift.io.atomic import write_parquet
from clipsift.selection import select, select_captions

SELECT = {
    "flash": {"max_flash_ratio": 0.0, "record_only": False},
    "ocr": {"max_text_area": 0.02, "max_text_frames": None, "reject_stable_text": True,
            "record_only": False},
    "thresholds": {"motion.rel_per_s": {"min": 0.015}, "technical.n": {"max": 12000}},
}  # fmt: skip


def table() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "clip_id": ["ok", "slow", "nan", "text", "broken", "short", "big"],
            "video_id": ["v"] * 7,
            "duration": [3.0] * 7,
            "error": [None, None, None, None, "cannot open: x.mp4", None, None],
            "split_reason": [None, None, None, None, None, "too_short", None],
            "flash.ratio": [0.0, 0.0, 0.0, 0.0, np.nan, np.nan, 0.0],
            "ocr.text_area_mean": [0.0, 0.0, 0.0, 0.05, np.nan, np.nan, 0.0],
            "ocr.stable_text": [False, False, False, True, None, None, False],
            "motion.rel_per_s": [0.5, 0.004, np.nan, 0.5, np.nan, np.nan, 0.5],
            "technical.n": [1, 1, 1, 1, np.nan, np.nan, 12345],
        }
    )


def test_select_writes_each_failed_test_as_a_record(tmp_path):
    sel = select(table(), SELECT)
    path = tmp_path / "selection.parquet"
    write_parquet(path, sel, reasons.TYPES)
    assert pq.read_schema(path).field("rejections").type == reasons.ARROW_TYPE
    back = pd.read_parquet(path)
    got = dict(zip(back["clip_id"], reasons.column_of(back), strict=True))
    assert got["ok"] == [] and bool(back.set_index("clip_id").loc["ok", "keep"])
    (slow,) = got["slow"]
    assert slow | {"text": None} == {
        "test": "motion.rel_per_s>=", "column": "motion.rel_per_s", "op": ">=", "bound": 0.015,
        "value": 0.004, "detail": None, "text": None,
    }  # fmt: skip
    assert slow["text"] == "motion.rel_per_s=0.004 < 0.015"
    (nan,) = got["nan"]
    assert (nan["test"], nan["value"], nan["text"]) == (
        "motion.rel_per_s>=", None, "motion.rel_per_s missing")  # fmt: skip
    assert [r["test"] for r in got["text"]] == ["text", "stable_text"]
    assert got["text"][1]["text"] == "stable_text" and got["text"][1]["value"] == 1.0
    assert got["broken"] == [reasons.error("cannot open: x.mp4")]
    assert [r["test"] for r in got["short"]] == ["too_short"]
    # the text rounds to 4 digits for people; the record keeps the value
    assert got["big"][0]["text"] == "technical.n=1.234e+04 > 12000"
    assert (got["big"][0]["value"], got["big"][0]["bound"]) == (12345, 12000)
    # the texts are the records' text, in order
    assert [list(r) for r in back["reasons"]] == [reasons.texts(rs) for rs in got.values()]


def test_a_missing_score_is_one_reason_whatever_its_bounds():
    """A min and a max on a score the clip lacks rejected it twice for the same missing value,
    and the funnel counted two rejections (tryout 15)."""
    cfg = SELECT | {"thresholds": {"motion.rel_per_s": {"min": 0.015, "max": 1.5}}}
    got = dict(zip(table()["clip_id"], select(table(), cfg)["reasons"], strict=True))
    assert list(got["nan"]) == ["motion.rel_per_s missing"]
    assert list(got["slow"]) == ["motion.rel_per_s=0.004 < 0.015"]


def test_caption_alignment_test_is_a_record():
    sel = select(table(), SELECT)
    caps = {"clips": {"ok": {"alignment": 0.1}}}
    out = select_captions(sel, caps, {"min_alignment": 0.2, "record_only": False})
    (r,) = reasons.column_of(out)[0]
    assert (r["test"], r["bound"], r["value"]) == ("caption.alignment>=", 0.2, 0.1)
    assert not out["keep"].any()


def test_counts_read_the_tests_not_the_text():
    sel = select(table(), SELECT)
    meta = table()[["clip_id", "video_id", "error", "split_reason"]].merge(sel, on="clip_id")
    # a text a reader cannot parse does not matter: only the records are read
    meta["reasons"] = [["?"] * len(r) for r in meta["reasons"]]
    cfg = {"select": SELECT, "filters": {"flash": {"enabled": True}, "ocr": {"enabled": True}}}
    counts = stage_counts(meta, [], cfg)
    assert counts["select"]["rejected_by"] == {
        "motion.rel_per_s>=": 2, "text": 1, "stable_text": 1, "error": 1, "too_short": 1,
        "technical.n<=": 1,
    }  # fmt: skip


def test_tables_without_rejections_are_read_from_their_texts():
    """Migration: a selection.parquet written before the column holds only ``reasons``."""
    old = pd.DataFrame(
        {
            "clip_id": ["a", "b", "c"],
            "keep": [False, False, True],
            "reasons": [
                ["motion.rel_per_s=0.004 < 0.015", "error: cannot open: x"],
                ["duplicate_of=v_0001", "flash.ratio missing"],
                [],
            ],
        }
    )
    got = reasons.column_of(old)
    assert [r["test"] for r in got[0]] == ["motion.rel_per_s>=", "error"]
    assert (got[0][0]["bound"], got[0][0]["value"]) == (0.015, 0.004)
    assert [r["test"] for r in got[1]] == ["duplicate", "flash.ratio missing"]
    assert got[1][0]["detail"] == "v_0001" and got[2] == []
    assert [reasons.texts(rs) for rs in got] == [list(r) for r in old["reasons"]]


def test_the_splits_duplicate_reason_reads_back_as_the_clip_it_repeats():
    """One writer and one reader of ``duplicate_of=<clip>`` (split, status and export share
    them): other reasons, nulls and NaN (a column parquet read as float) name nothing."""
    written = reasons.split_duplicate("v_0001_000")
    col = pd.Series([written, "too_short", None, np.nan, "duplicate_of"], index=[5, 6, 7, 8, 9])
    got = reasons.split_duplicates(col)
    assert got.index.tolist() == [5, 6, 7, 8, 9]
    assert got.notna().tolist() == [True, False, False, False, False]
    assert got[5] == "v_0001_000"
    assert reasons.split(written) == reasons.duplicate("v_0001_000")


def test_paths_in_rejections_are_published_as_the_config_gave_them(tmp_path):
    """An error's message names the video's path: in the dataset tables it is the config's path,
    in the records as in the texts, whatever the working folder or results path."""
    from clipsift.portable import path_roots, portable_table

    videos = tmp_path / "videos"
    msg = f"cannot open: [Errno 2] '{videos}/a.mp4'"
    sel = select(table().assign(error=[None, None, None, None, msg, None, None]), SELECT)
    roots = path_roots([{"type": "folder", "path": str(videos)}], str(tmp_path / "results"))
    roots = [(a, "sample/videos/" if a == f"{videos}/" else g) for a, g in roots]
    out = portable_table(sel, roots)
    (r,) = reasons.column_of(out)[4]
    assert r["detail"] == "cannot open: [Errno 2] 'sample/videos/a.mp4'"
    assert r["text"] == "error: " + r["detail"] == out["reasons"].iloc[4][0]
