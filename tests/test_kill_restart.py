"""Kill a run and start it again (docs/scaling.md, "After a crash").

``snakemake --profile profiles/local`` runs in its own process group; as soon as one shard's scan
is done, the whole group gets SIGKILL (Snakemake and the jobs it runs: a crash, a lost node, a
killed login shell). Then the same command again, and nothing else (docs/scaling.md, "After a crash"):
no ``--unlock`` (clipsift's results lock dies with the process; Snakemake's own is off in the
workflow profile) and no ``--rerun-incomplete`` on the command line (the profile sets it). Checked:
- the second run completes the dataset;
- no partial file was taken for an output: every output under its final name reads back, and
  outputs Snakemake had marked incomplete at the kill were made again;
- nothing finished before the kill was computed again (mtimes unchanged);
- ``clipsift status`` reads the killed run (done shards, interrupted jobs).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from helpers import REPO, SNAKEFILE, base_config, wait_for, write_config

from clipsift.status import collect
from clipsift.status_view import status_table

pytestmark = pytest.mark.slow


def snakemake_cmd(*extra: str) -> list[str]:
    opts = {
        "--snakefile": SNAKEFILE,
        "--profile": REPO / "profiles" / "local",
        "--configfile": "config/config.yaml",
        "--cores": 2,
        "--scheduler": "greedy",
    }
    cmd = [sys.executable, "-m", "snakemake"]
    return cmd + [str(x) for kv in opts.items() for x in kv] + list(extra)


def outputs(results: Path) -> dict[str, float]:
    """Final-named files under results/shards (temporary names start with a dot) -> mtime."""
    return {
        str(p.relative_to(results)): p.stat().st_mtime_ns
        for p in (results / "shards").rglob("*")
        if p.is_file() and not p.name.startswith(".")
    }


def incomplete(workdir: Path) -> set[str]:
    """Outputs Snakemake marked as being written (relative to the workdir)."""
    import base64

    root = workdir / ".snakemake" / "incomplete"
    out = set()
    for m in root.rglob("*") if root.is_dir() else []:
        if m.is_file():
            b64 = "".join(p.removeprefix("@") for p in m.relative_to(root).parts)
            out.add(base64.urlsafe_b64decode(b64).decode())
    return out


def test_kill_mid_run_and_restart(tiny_videos, tmp_path):
    videos = tmp_path / "videos"
    videos.mkdir()
    for name in ("a", "b"):
        shutil.copy(tiny_videos[name], videos / f"{name}.mp4")
    workdir = tmp_path / "run"
    write_config(
        workdir, base_config([{"name": "vid", "type": "folder", "path": str(videos)}], shard_size=1)
    )
    results = workdir / "results"

    log1 = open(workdir / "run1.log", "w")  # noqa: SIM115
    proc = subprocess.Popen(
        snakemake_cmd(), cwd=workdir, stdout=log1, stderr=subprocess.STDOUT, start_new_session=True
    )
    try:
        # a scan whose job Snakemake has seen finish (its incomplete marker is gone)
        wait_for(
            lambda: [
                p
                for p in (results / "shards").glob("*/scan/samples.parquet")
                if str(p.relative_to(workdir)) not in incomplete(workdir)
            ],
            proc,
            "a finished scan",
            log=lambda: (workdir / "run1.log").read_text()[-3000:],
        )
    finally:
        os.killpg(proc.pid, signal.SIGKILL)  # Snakemake and every job it started
        proc.wait()
        log1.close()
    assert proc.returncode == -signal.SIGKILL

    before = outputs(results)
    marked = {str(Path(p).relative_to("results")) for p in incomplete(workdir)}
    finished = {p: t for p, t in before.items() if p not in marked}
    scanned = [p for p in finished if p.endswith("scan/samples.parquet")]
    assert scanned, before
    assert not (results / "dataset" / "metadata.parquet").exists()

    # the status of the killed run: what is done, and the jobs that were cut short
    st = collect(results, workdir=workdir)
    stages = {s.name: s for s in st.stages}
    assert len(stages["scan"].done) >= 1 and len(stages["ingest"].done) >= 1
    text = status_table(results, workdir=workdir)
    assert "| scan |" in text and "run: none active" in text, text
    if marked:
        assert "were cut short" in text and "same snakemake command redoes them" in text, text

    # the same command again: no lock to clear
    second = subprocess.run(
        ["timeout", "-k", "10", "300", *snakemake_cmd()],
        cwd=workdir,
        capture_output=True,
        text=True,
    )
    (workdir / "run2.log").write_text(second.stdout + second.stderr)
    assert second.returncode == 0, (second.stdout + second.stderr)[-4000:]

    after = outputs(results)
    # nothing finished before the kill was made again
    changed = sorted(p for p, t in finished.items() if after.get(p) != t)
    assert not changed, changed
    # outputs cut short were made again, and every output is whole
    for p in marked:
        assert (results / p).exists(), p
    for p in after:
        path = results / p
        if p.endswith(".parquet"):
            pd.read_parquet(path)
        elif p.endswith(".json"):
            json.loads(path.read_text())
    meta = pd.read_parquet(results / "dataset" / "metadata.parquet")
    assert set(meta["video_id"]) == {"vid-a", "vid-b"}
    assert len(collect(results, workdir=workdir).stages[0].done) == 2
