"""`snakemake --profile slurm` on a cluster that keeps accounting (slurmdbd with MariaDB).

The same profile as on the cluster without accounting (test_slurm.py), as typed: there the
profile must ask ``squeue`` for job states, here ``sacct``, chosen by itself from
``scontrol show config``. A run of one shard's first stages completes, and slurmdbd's records
(``sacct``) have every job of the run as COMPLETED.
"""

from __future__ import annotations

import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
from helpers import commands, project_copy, user_env

sys.path.insert(0, str(Path(__file__).parent / "slurm"))
import cluster as slurm_cluster  # noqa: E402

pytestmark = [pytest.mark.slurm, pytest.mark.slow]


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    reason = slurm_cluster.unavailable_reason(accounting=True)
    if reason:
        pytest.skip(f"cannot run a SLURM cluster with accounting here: {reason}")
    c = slurm_cluster.SlurmCluster(tmp_path_factory.mktemp("slurm-acct"), accounting=True)
    try:
        c.start()
        yield c
    finally:
        c.stop()


def test_profile_picks_sacct_and_the_run_completes(cluster, sample_set, tmp_path):
    env = {**user_env(), "SLURM_CONF": cluster.env["SLURM_CONF"]}
    env["XDG_CONFIG_HOME"] = str(tmp_path / "user-config")
    pick = subprocess.run(
        [sys.executable, "-c", "from clipsift.slurm import status_command as s; print(s())"],
        env=env, capture_output=True, text=True, check=True,
    )  # fmt: skip
    assert pick.stdout.strip() == "sacct"

    project = project_copy(tmp_path / "clipsift", sample_set.dir)
    link, run = commands("A SLURM cluster")
    subprocess.run(["bash", "-c", link], cwd=project, env=env, check=True, capture_output=True)
    target = "results/shards/sample-00000/clips.parquet"
    res = subprocess.run(
        ["timeout", "-k", "10", "600", "bash", "-c", f"{run} {target}"],
        cwd=project, env=env, capture_output=True, text=True,
    )  # fmt: skip
    out = res.stdout + res.stderr
    assert res.returncode == 0, out[-6000:]
    assert (project / target).exists()
    ids = re.findall(r"has been submitted with SLURM jobid (\d+)", out)
    assert len(ids) == 3, out[-3000:]  # ingest, scan, split
    deadline = time.monotonic() + 120  # slurmdbd records a job a moment after it ends
    states = {}
    while time.monotonic() < deadline:
        states = {i: cluster.accounted_state(i) for i in ids}
        if all(states.values()):
            break
        time.sleep(1)
    assert set(states.values()) == {"COMPLETED"}, states
