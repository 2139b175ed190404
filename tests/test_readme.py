"""The README's command blocks, run as a user types them, from a fresh copy of the project.

Each block of the sections below is read from README.md and run line by line with bash in a
copy of the project (its tracked files, as a clone has them) holding the sample videos, with
the virtual environment's commands on PATH: `snakemake` there finds the Snakefile, the
config and the workflow profile by itself. The SLURM section's block runs in test_slurm.py.
"""

from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path

import pandas as pd
import pytest
from helpers import commands, project_copy, user_env, wait_for

pytestmark = pytest.mark.slow


def sh(workdir: Path, line: str, **kw) -> subprocess.CompletedProcess:
    res = subprocess.run(
        ["bash", "-c", line], cwd=workdir, env=user_env(), capture_output=True, text=True,
        timeout=900, **kw,
    )  # fmt: skip
    assert res.returncode == 0, f"$ {line}\n{(res.stdout + res.stderr)[-4000:]}"
    return res


def mtimes(results: Path, shard: str) -> dict[str, int]:
    folder = results / "shards" / shard
    return {str(p): p.stat().st_mtime_ns for p in folder.rglob("*") if p.is_file()}


@pytest.fixture
def project(tmp_path, sample_set) -> Path:
    return project_copy(tmp_path / "clipsift", sample_set.dir)


def test_run_it_on_your_own_videos(project):
    lines = commands("Run it on your own videos")
    assert lines[0] == "snakemake --cores all"
    outs = [sh(project, line) for line in lines]
    meta = pd.read_parquet(project / "results" / "dataset" / "metadata.parquet")
    assert meta["keep"].any() and (project / "results" / "dataset" / "provenance.json").exists()
    assert "Nothing to be done" in outs[1].stdout + outs[1].stderr  # the local profile: done
    assert "| scan | 2/2 |" in outs[2].stdout and "run: none active" in outs[2].stdout
    # a git pull or checkout that rewrites the scripts (same bytes, newer files) reruns nothing:
    # Snakemake's code trigger redid every scan (tryout 16)
    for script in (project / "scripts").glob("*.py"):
        os.utime(script)
    again = sh(project, "snakemake --cores all -n")
    assert "Nothing to be done" in again.stdout + again.stderr


def test_partial_reruns(project):
    results = project / "results"
    sh(project, "snakemake --cores all")
    dataset = results / "dataset" / "metadata.parquet"
    for line in commands("Partial reruns"):
        before = {s: mtimes(results, s) for s in ("sample-00000", "sample-00001")}
        made = dataset.stat().st_mtime_ns
        out = sh(project, line)
        after = {s: mtimes(results, s) for s in before}
        changed = {s for s in before if before[s] != after[s]}
        if "sample-00001" in line:  # the one-shard lines touch no other shard, nor the dataset
            assert "sample-00000" not in changed, line
            assert dataset.stat().st_mtime_ns == made, line
        if "--forcerun results/shards/sample-00001/scan" in line:
            scan = str(results / "shards" / "sample-00001" / "scan" / "scenes.parquet")
            assert after["sample-00001"][scan] != before["sample-00001"][scan], line
        if line.endswith("--forcerun scan"):
            assert changed == {"sample-00000", "sample-00001"}, line
        if line.endswith(" -n"):
            assert changed == set() and "Nothing to be done" in out.stdout + out.stderr, line


def test_after_a_crash(project):
    lines = commands("After a crash")
    first = subprocess.Popen(
        ["bash", "-c", lines[0]], cwd=project, env=user_env(), start_new_session=True,
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    results = project / "results"
    try:
        wait_for(lambda: list(results.glob("shards/*/scan/scenes.parquet")), first, "a scan")
    finally:
        os.killpg(first.pid, signal.SIGKILL)  # Snakemake and its jobs, as a crash does
        first.wait()
    assert not (results / "dataset" / "metadata.parquet").exists()
    outs = [sh(project, line) for line in lines]  # the same command again, then the status
    assert (results / "dataset" / "metadata.parquet").exists()
    assert "run: none active" in outs[-1].stdout, outs[-1].stdout
