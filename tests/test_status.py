"""`clipsift status` on a results folder caught mid-run (written here, no pipeline run needed).

Three shards: ``s0`` is through select, ``s1`` through split, ``s2`` has only a temporary file
(a job writing its output) and a Snakemake incomplete marker (the job is running).
The real pipeline's outputs are read by status in tests/test_kill_restart.py, mid-run too.
"""

from __future__ import annotations

import base64
import json
import os
import time
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest

from clipsift import reasons, runlock
from clipsift.cli import main as cli_main
from clipsift.reasons import summary
from clipsift.status import collect, error_reason
from clipsift.status_view import status_table

T0 = 1_700_000_000.0
BACK = "frame times go back at frame 60 (3.000 s, then 0.000 s): files joined without a remux"


def _parquet(path: Path, df: pd.DataFrame, mtime: float) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    df.to_parquet(path, index=False)
    os.utime(path, (mtime, mtime))


def _json(path: Path, obj, mtime: float) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj))
    os.utime(path, (mtime, mtime))


def _marker(workdir: Path, output: str) -> None:
    """Snakemake's incomplete marker of ``output`` (.snakemake/incomplete/<urlsafe b64>)."""
    name = base64.urlsafe_b64encode(output.encode()).decode()
    path = workdir / ".snakemake" / "incomplete" / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("")


@pytest.fixture
def midrun(tmp_path) -> Iterator[Path]:
    res = tmp_path / "results"
    shards = [
        {"name": "s0", "source": "v", "kind": "video", "items": 3},
        {"name": "s1", "source": "v", "kind": "video", "items": 2},
        {"name": "s2", "source": "v", "kind": "video", "items": 2},
    ]
    _json(res / "plan" / "shards.json", {"fingerprint": "x", "shards": shards}, T0)
    s0, s1, s2 = (res / "shards" / n for n in ("s0", "s1", "s2"))

    _parquet(
        s0 / "source.parquet",
        pd.DataFrame(
            {
                "video_id": ["a", "b", "c"],
                "duration": [10.0, 20.0, None],
                "error": [None, None, "cannot open: [Errno 1094995529] Invalid data: 'c.mp4'"],
            }
        ),
        T0,
    )
    _parquet(
        s1 / "source.parquet",
        pd.DataFrame({"video_id": ["d", "e"], "duration": [30.0, 40.0], "error": [None, None]}),
        T0 + 35,
    )
    for i, s in enumerate((s0, s1)):
        for name in ("frames", "samples"):
            _parquet(
                s / "scan" / f"{name}.parquet", pd.DataFrame({"x": [1, 2, 3][: 2 + i]}), T0 + 40 + i
            )
    _parquet(
        s0 / "scan" / "scenes.parquet", pd.DataFrame({"x": [1, 2]}), T0 + 40
    )  # no error column
    # s1: e's frame times went back (two files joined): an error row, no scene
    _parquet(
        s1 / "scan" / "scenes.parquet",
        pd.DataFrame({"video_id": ["d", "d", "d", "e"], "error": [None, None, None, BACK]}),
        T0 + 41,
    )
    # a video with an error is one row of the split's table, no clip; so is an exact duplicate
    clips0 = {"clip_id": ["a0", "a1", "b0", "c0"], "error": [None, None, None, "cannot open"]}
    _parquet(s0 / "clips.parquet", pd.DataFrame(clips0), T0 + 50)
    clips1 = {"clip_id": ["d0", "d1", "d2", "e0", "f0"], "error": [None, None, None, BACK, None],
              "split_reason": [None, None, None, None, "duplicate_of=d"]}  # fmt: skip
    _parquet(s1 / "clips.parquet", pd.DataFrame(clips1), T0 + 51)
    _json(s0 / "flash.json", {}, T0 + 60)
    _json(s0 / "ocr.json", {}, T0 + 61)
    _parquet(s0 / "scores.parquet", pd.DataFrame({"clip_id": ["a0", "a1", "b0", "c0"]}), T0 + 62)
    _parquet(
        s0 / "selection.parquet",
        pd.DataFrame(
            {
                "clip_id": ["a0", "a1", "b0", "c0"],
                "keep": [True, False, False, False],
                "reasons": [
                    [],
                    ["motion.rel=1.2e-07 < 0.0005"],
                    ["motion.rel=3e-07 < 0.0005", "ocr.text_area_mean=0.06 > 0.02"],
                    ["error: cannot open: [Errno 1094995529] Invalid data: 'c.mp4'"],
                ],
            }
        ),
        T0 + 70,
    )
    # outputs being written: temporary names only, never counted
    (s1 / ".selection.parquet.k2j4.parquet").write_bytes(b"PAR1 half a file")
    s2.mkdir(parents=True)
    (s2 / ".source.parquet.9x8y.parquet").write_bytes(b"PAR1 half")
    # Snakemake's markers: s2's ingest job and s1's flash job run now
    _marker(tmp_path, "results/shards/s2/source.parquet")
    _marker(tmp_path, "results/shards/s1/flash.json")
    # the run holds the results folder's lock, as a running Snakemake does
    runlock.acquire(res)
    yield tmp_path
    runlock.release(res)


def test_stages_counts_reasons_throughput_and_running_jobs(midrun):
    st = collect(midrun / "results", workdir=midrun)
    stages = {s.name: s for s in st.stages}
    assert list(stages) == ["ingest", "scan", "split", "flash", "ocr", "scores", "select"]
    done = {name: sorted(s.done) for name, s in stages.items()}
    assert done == {
        "ingest": ["s0", "s1"],
        "scan": ["s0", "s1"],
        "split": ["s0", "s1"],
        "flash": ["s0"],
        "ocr": ["s0"],
        "scores": ["s0"],
        "select": ["s0"],
    }
    ing = stages["ingest"]
    assert (ing.n_in, ing.n_out, ing.errors, ing.running) == (5, 4, 1, 1)
    assert ing.video_seconds == 100.0
    # s1's 70 video-seconds were done between the first (s0) and the last (s1) ingest output
    assert ing.rate == pytest.approx(70.0 / 35.0)
    assert stages["scan"].n_out == 2 + 3  # scenes
    assert stages["scan"].errors == 1  # a video ingested whose scan failed
    assert stages["scan"].rate is None  # outputs less than 10 s apart: no rate yet
    assert (stages["split"].n_in, stages["split"].n_out) == (4, 6)  # videos in, clips out
    assert stages["flash"].running == 1 and stages["flash"].n_in == 3  # c0: an error row
    assert (stages["select"].n_in, stages["select"].n_out) == (4, 1)
    assert (st.clips, st.kept, st.export_done) == (4, 1, None)
    assert st.video_errors == {
        "cannot open": 1,
        "frame times go back at frame N (N s, then N s)": 1,
    }
    assert st.rejections == {
        "motion.rel < 0.0005": 2,
        "ocr.text_area_mean > 0.02": 1,
        "error: cannot open": 1,
    }

    text = status_table(midrun / "results", workdir=midrun)
    assert "3 shard(s) planned, 7 item(s)" in text
    assert "| ingest | 2/3 | 1 | 5 items | 4 videos | 1 |" in text
    assert "| select | 1/3 |  | 4 clips | 1 kept |" in text
    assert "export: not yet" in text
    assert "      2  motion.rel < 0.0005" in text


def test_the_pace_is_the_latest_runs(midrun):
    """Over every run, the idle time between two runs counted as work: after a run, and one
    5 minutes later for 2 new videos, a 5-s shard read as 161 s a shard (a tryout). A run
    records its start; the pace is over the shards done since, from that start."""
    res = midrun / "results"
    runlock.mark_start(res)
    assert runlock.last_start(res) == pytest.approx(time.time(), abs=60)
    started = res / ".clipsift" / "run_started.json"
    started.write_text(json.dumps({"started": T0 + 21}))  # after s0's ingest, before s1's
    ingest = {s.name: s for s in collect(res, workdir=midrun).stages}["ingest"]
    assert ingest.rate == pytest.approx(70.0 / 14.0)  # s1's 70 video-s in 14 s (was 70 / 35)
    assert ingest.shard_seconds == pytest.approx(14.0)
    assert ingest.eta == pytest.approx(14.0)  # one shard left
    started.write_text(json.dumps({"started": T0 + 30}))  # under MIN_SPAN before s1: no pace
    assert {s.name: s for s in collect(res, workdir=midrun).stages}["ingest"].rate is None


def test_a_killed_run_shows_what_it_left(midrun):
    """No run holds the lock: the incomplete markers are jobs cut short, not running."""
    res = midrun / "results"
    runlock.release(res)
    text = status_table(res, workdir=midrun)
    assert "| ingest | 2/3 |  |" in text and "run: none active" in text
    assert "2 job(s) were cut short" in text and "same snakemake command redoes them" in text
    (midrun / ".snakemake" / "locks").mkdir(parents=True)
    (midrun / ".snakemake" / "locks" / "0.input.lock").write_text("x")
    assert "snakemake --unlock" in status_table(res, workdir=midrun)
    runlock.acquire(res)
    assert "run: active (pid" in status_table(res, workdir=midrun)


def test_jobs_of_another_results_folder_are_not_counted(midrun):
    """One working folder, two configs with their own results folders: the other folder's
    incomplete jobs were counted as this one's, cut short or running (a tryout)."""
    res = midrun / "results"
    runlock.release(res)
    before = status_table(res, workdir=midrun)
    for other in ("other/shards/s0/source.parquet", str(midrun / "other/shards/s1/scan/frames.parquet"),
                  "other/dataset/metadata.parquet", "results2/shards/s2/clips.parquet"):  # fmt: skip
        _marker(midrun, other)
    assert status_table(res, workdir=midrun) == before
    assert "2 job(s) were cut short" in before


def test_export_done_and_the_cli(midrun, monkeypatch, capsys):
    res = midrun / "results"
    _parquet(res / "dataset" / "metadata.parquet", pd.DataFrame({"clip_id": ["a0"]}), T0 + 90)
    monkeypatch.chdir(midrun)  # the incomplete markers are read from the working folder
    assert cli_main(["status", "--results", "results"]) == 0
    out = capsys.readouterr().out
    assert "export: done at" in out and "| ingest | 2/3 | 1 |" in out


def test_the_status_counts_the_dataset_and_the_clips_its_export_failed(midrun, monkeypatch, capsys):
    """Selection's kept count overstated the dataset where a clip's export failed (a tryout's
    status said 33 kept; the dataset held 32): the export line says what the dataset holds."""
    res = midrun / "results"
    failed = reasons.export_failed("decode error: no frame at 4.2 s")
    meta = pd.DataFrame({
        "clip_id": ["a0", "a1", "a2", "a3", "a4", "b0", "c0"],
        "keep": [True, False, True, False, False, False, False],
        "export.error": [None, failed["detail"], None, None, "decode error", None, None],
        # a4: a duplicate of another shard's video, whose export failed too, is counted as the
        # duplicate it is; b0: a duplicate within its shard, never judged by select; c0: a
        # clip of another shard's video that select rejected (review: counted)
        "rejections": [[], [failed], [], [], [reasons.duplicate("x0")], [reasons.duplicate("a")],
                       [reasons.split("too_short"), reasons.duplicate("x1")]],
        "split_reason": [None, None, None, None, None, "duplicate_of=a", None],
    })  # fmt: skip
    _parquet(res / "dataset" / "metadata.parquet", meta, T0 + 90)
    st = collect(res, workdir=midrun)
    assert (st.exported, st.export_failed, st.export_duplicates) == (2, 1, 1)
    monkeypatch.chdir(midrun)
    assert cli_main(["status", "--results", "results"]) == 0
    out = capsys.readouterr().out
    assert "2 clips in the dataset; 1 kept clips failed to export" in out
    assert "; 1 clips left out as duplicates of other shards' videos" in out
    # a dataset without the columns (written by hand): its rows, no failures
    _parquet(res / "dataset" / "metadata.parquet", meta[["clip_id"]], T0 + 90)
    hand = collect(res, workdir=midrun)
    assert (hand.exported, hand.export_failed, hand.export_duplicates) == (7, 0, 0)


def test_the_cli_reads_the_config_files_of_the_run_as_snakemake_merges_them(midrun):
    """``snakemake --configfile my.yaml`` merges my.yaml over config/config.yaml; clipsift's
    ``--config my.yaml`` read my.yaml alone ("'sources' is a required property" for a file of
    overrides). It now layers them as snakemake does; a config mistake is a message, not a
    traceback, and the results folder may come as an argument."""
    from helpers import clipsift_cli, write_config

    project, res = midrun / "project", midrun / "results"
    source = {"name": "a", "type": "folder", "path": "videos"}
    write_config(project, {"results": "elsewhere", "sources": [source]})
    (project / "my.yaml").write_text(f"results: {res}\n")
    for args in (["--config", "my.yaml"], [str(res)]):
        run = clipsift_cli(project, "status", *args)
        assert run.returncode == 0, run.stderr
        assert f"{res}: 3 shard(s) planned" in run.stdout and "| ingest | 2/3 |" in run.stdout
    run = clipsift_cli(project, "status", "--config", "my.yaml", "--config", "typo.yaml")
    assert run.returncode == 2 and "Traceback" not in run.stderr
    assert "cannot read the config typo.yaml" in run.stderr
    (project / "typo.yaml").write_text("shard_sise: 4\n")
    run = clipsift_cli(project, "status", "--config", "my.yaml", "--config", "typo.yaml")
    assert run.returncode == 2 and "did you mean 'shard_size'?" in run.stderr
    run = clipsift_cli(midrun, "status")  # not the project folder: no config/config.yaml
    assert run.returncode == 2 and "no config: config/config.yaml is not here" in run.stderr


def test_unreadable_or_vanished_files_count_as_not_done(midrun):
    res = midrun / "results"
    (res / "shards" / "s1" / "clips.parquet").write_bytes(b"not parquet")
    (res / "shards" / "s0" / "scores.parquet").unlink()  # deleted before a re-run
    stages = {s.name: s for s in collect(res, workdir=midrun).stages}
    assert sorted(stages["split"].done) == ["s0"]
    assert sorted(stages["scores"].done) == []


def test_no_plan_yet_and_optional_stages(tmp_path, midrun):
    assert "no shard plan" in status_table(tmp_path / "nothing")
    cfg = {"filters": {"ocr": {"enabled": False}}, "caption": {"enabled": True}}
    names = [s.name for s in collect(midrun / "results", workdir=midrun, config=cfg).stages]
    # ocr is off but s0 has its output from an earlier run: still shown; caption is on
    assert "ocr" in names and "caption" in names and "encode" not in names


def test_reason_keys():
    assert error_reason("missing file") == "missing file"
    assert (
        error_reason(BACK)
        == error_reason(BACK.replace("60", "7"))
        == ("frame times go back at frame N (N s, then N s)")
    )
    assert summary(reasons.split("duplicate_of=v-x_0001")) == "duplicate"
    assert summary(reasons.split("too_short")) == "too_short"
    low = reasons.failed("technical.luma_mean>=", "technical.luma_mean", ">=", 20, 12.5)
    assert summary(low) == "technical.luma_mean < 20"
    assert (
        summary(reasons.failed("motion.rel>=", "motion.rel", ">=", 1, None)) == "motion.rel missing"
    )
    assert summary(reasons.error("cannot open: [Errno 2] x.mp4")) == "error: cannot open"


def test_pace_and_eta(midrun):
    st = collect(midrun / "results", workdir=midrun)
    ing = {s.name: s for s in st.stages}["ingest"]
    # 2 of 3 shards done 35 s apart: 35 s a shard, one shard to go
    assert ing.shard_seconds == pytest.approx(35.0) and ing.eta == pytest.approx(35.0)
    text = status_table(midrun / "results", workdir=midrun)
    assert "| 2 | 35 | 0m35s |" in text and "disk: " in text and "GB free" in text


@pytest.mark.slow
def test_watch_follows_a_live_run(tmp_path, tiny_videos):
    """``clipsift status --watch --until-done`` beside a real run: blocks while it runs, and it
    stops by itself once the run has ended."""
    import subprocess
    import sys

    from helpers import SNAKEFILE, base_config, write_config

    src = [{"name": "v", "type": "folder", "path": str(tiny_videos["a"].parent)}]
    write_config(tmp_path, base_config(src, lean=True, shard_size=1))
    run = subprocess.Popen(
        [sys.executable, "-m", "snakemake", "--snakefile", str(SNAKEFILE), "--cores", "1"],
        cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        watch = subprocess.run(
            [sys.executable, "-m", "clipsift.cli", "status", "--watch", "--interval", "1",
             "--until-done"],
            cwd=tmp_path, capture_output=True, text=True, timeout=600,
        )  # fmt: skip
    finally:
        run.wait(timeout=600)
    assert run.returncode == 0 and watch.returncode == 0, watch.stderr
    blocks = [b for b in watch.stdout.split("--- ") if b.strip()]
    assert len(blocks) >= 2
    assert any("run: active (pid" in b for b in blocks[:-1])
    last = blocks[-1]
    assert "run: none active" in last and "export: done at" in last and "| ingest | 3/3 |" in last


def test_failed_jobs_come_from_their_logs(midrun):
    """A job's log that ends its last attempt with rule_logging's marker and a traceback is a
    failed job, with the first line of the last exception (chained ones included); a log of a
    job that ran fine, or one still running, is not."""
    from clipsift.status import failed_jobs

    logs = midrun / "results" / "logs"
    (logs / "scan").mkdir(parents=True)
    (logs / "scan" / "s0.log").write_text("2026-12-05 10:00:00,000 INFO clipsift.scan: done\n")
    (logs / "score" / "dover").mkdir(parents=True)
    (logs / "score" / "dover" / "s1.log").write_text(
        "2026-12-05 10:00:00,000 INFO clipsift.score_gpu: loading\n"
        "2026-12-05 10:00:01,000 ERROR clipsift.score_gpu: job failed\n"
        "Traceback (most recent call last):\n"
        '  File "x.py", line 1, in <module>\n'
        "OSError: no file named model.safetensors\n"
        "\n"
        "The above exception was the direct cause of the following exception:\n"
        "\n"
        "Traceback (most recent call last):\n"
        '  File "y.py", line 2, in <module>\n'
        "    raise LoadError(...)\n"
        "clipsift.generators.stage.LoadError: cannot load dover: no weights\n"
        "  second line of the message\n"
    )
    (logs / "export.log").write_text(
        "2026-12-05 10:00:02,000 ERROR clipsift.export: job failed\nTraceback (most recent "
        'call last):\n  File "z.py", line 3, in <module>\nclipsift.export.EmptyDataset: no '
        "clip kept: 4 clips of 3 videos\n"
    )
    # an error longer than the tail that is read first; an exception group
    (logs / "caption").mkdir()
    (logs / "caption" / "s0.log").write_text(
        "2026-12-05 10:00:03,000 ERROR clipsift.caption: job failed\nTraceback (most recent "
        'call last):\n  File "c.py", line 4, in <module>\nclipsift.failures.StageFailed: '
        + "x" * 20_000
        + "\n"
    )
    (logs / "caption" / "s1.log").write_text(
        "2026-12-05 10:00:04,000 ERROR clipsift.caption: job failed\n"
        "  + Exception Group Traceback (most recent call last):\n"
        '  |   File "d.py", line 6, in <module>\n'
        "  | ExceptionGroup: two (2 sub-exceptions)\n"
        "  +-+---------------- 1 ----------------\n"
        "    | ValueError: a\n"
        "    +------------------------------------\n"
    )
    for k, name in enumerate(
        ("export.log", "score/dover/s1.log", "caption/s0.log", "caption/s1.log")
    ):
        os.utime(logs / name, (T0 + 500 - k, T0 + 500 - k))
    got = [(f.log, f.error) for f in failed_jobs(midrun / "results")]
    assert got == [
        ("logs/export.log", "EmptyDataset: no clip kept: 4 clips of 3 videos"),
        ("logs/score/dover/s1.log", "LoadError: cannot load dover: no weights"),
        ("logs/caption/s0.log", "StageFailed: " + "x" * (400 - len("StageFailed: "))),
        ("logs/caption/s1.log", "ExceptionGroup: two (2 sub-exceptions)"),
    ]
    text = status_table(midrun / "results", workdir=midrun)
    assert "failed jobs" in text and "      LoadError: cannot load dover: no weights" in text
