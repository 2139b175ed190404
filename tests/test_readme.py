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


def test_a_config_change_from_another_working_folder_is_not_silently_ignored(tmp_path, sample_set):
    """Snakemake keeps the settings each job ran with in the working folder's .snakemake/: run
    from a second checkout on the same results folder, a changed threshold gave "Nothing to be
    done" and a dataset that did not match its config or its provenance (tryout 16). Now such a
    run stops and says how to go on; forcing what the change affects then works from there."""
    first = project_copy(tmp_path / "first", sample_set.dir)
    second = project_copy(tmp_path / "second", sample_set.dir)
    results = tmp_path / "results"
    for project in (first, second):
        (project / "my.yaml").write_text(
            f"results: {results}\nsources: [{{name: sample, type: folder, "
            f"path: {first / 'sample' / 'videos'}}}]\n"
        )
    sh(first, "snakemake --cores all --configfile my.yaml")
    meta = pd.read_parquet(results / "dataset" / "metadata.parquet")
    moving = sorted(meta.loc[meta["keep"], "motion.rel_per_s"])
    assert len(moving) >= 2
    bound = (moving[0] + moving[1]) / 2  # rejects the slowest kept clip
    # the same config from the second folder: nothing to do, no complaint
    same = sh(second, "snakemake --cores all --configfile my.yaml -n")
    assert "Nothing to be done" in same.stdout + same.stderr
    # a stricter motion bound: stopped, naming the folder that built the results
    with open(second / "my.yaml", "a") as fh:
        fh.write(f"select: {{thresholds: {{motion.rel_per_s: {{min: {bound}, max: 1.5}}}}}}\n")
    res = subprocess.run(
        ["bash", "-c", "snakemake --cores all --configfile my.yaml"], cwd=second,
        env=user_env(), capture_output=True, text=True, timeout=900,
    )  # fmt: skip
    assert res.returncode != 0 and f"was built from {first}" in res.stdout + res.stderr
    assert pd.read_parquet(results / "dataset" / "metadata.parquet").equals(meta)
    # forcing the selection applies the change, and the next run from there has nothing to do;
    # the command is the one suggested, copied: it keeps the user's config file (it did not)
    (suggested,) = (
        line.split("#")[0].strip()
        for line in (res.stdout + res.stderr).splitlines()
        if line.endswith("# a select threshold")
    )
    assert suggested == "snakemake --cores all --configfile my.yaml --forcerun select"
    sh(second, suggested)
    now = pd.read_parquet(results / "dataset" / "metadata.parquet")
    assert now["keep"].sum() == len(moving) - 1
    assert not now.loc[now["keep"], "motion.rel_per_s"].lt(bound).any()
    again = sh(second, "snakemake --cores all --configfile my.yaml -n")
    assert "Nothing to be done" in again.stdout + again.stderr
    # that forced run left the second folder no record of the scan or split: a split change
    # from there stops too, rather than keeping the old clips (review)
    with open(second / "my.yaml", "a") as fh:
        fh.write("split: {min_seconds: 1.0}\n")
    res = subprocess.run(
        ["bash", "-c", "snakemake --cores all --configfile my.yaml -n"], cwd=second,
        env=user_env(), capture_output=True, text=True, timeout=900,
    )  # fmt: skip
    assert res.returncode != 0 and f"was built from {second}" in res.stdout + res.stderr
    # in the first folder, whose record the second one's build made stale, too
    res = subprocess.run(
        ["bash", "-c", "snakemake --cores all --configfile my.yaml -n"], cwd=first,
        env=user_env(), capture_output=True, text=True, timeout=900,
    )  # fmt: skip
    assert res.returncode != 0 and f"was built from {second}" in res.stdout + res.stderr
