"""SLURM: the documented commands (docs/scaling.md) against a real SLURM 22.05 cluster started on this machine.

1. The "A SLURM cluster" block of docs/scaling.md, as typed, in a fresh copy of the project holding the
   sample: ``clipsift slurm-profile`` links the profile into the user's config folder (a
   private ``XDG_CONFIG_HOME``), then ``snakemake --profile slurm`` builds the whole dataset.
   The user's one config edit: the OCR may use a GPU (``filters.ocr.gpu``). The cluster has no
   accounting, so the profile must pick ``squeue`` for job states by itself (``sacct`` exists
   and fails: with it the run would never end). Checked from slurmctld's job records
   (``scontrol show job``, kept for MinJobAge = 300 s):
   - every job was a SLURM job, named after the run and commented with its rule and shard;
   - the jobs whose rule declares ``gpu=1`` (the scan, where the OCR runs) asked SLURM for a GPU
     (``--gpus=1``), and no other job did;
   - the workflow profile's per-rule memory and time reached sbatch;
   - the dataset has the same bytes as a local ``--cores 2`` build of the same config and inputs
     in another folder, with another results path (all but the declared timestamp fields).
2. A site's own ``slurm`` profile that names only the executor, partition and account (and its
   polling): its jobs get clipsift's per-rule memory and retries from profiles/default. A job
   that fails on the node is retried with more memory (attempt 1, 2, 3), reported as failed
   with its SLURM id, and the run ends instead of waiting. It runs beside run 1.

Skipped only where SLURM cannot run: not root and no SLURM binaries. In CI (root, apt) it runs.
"""

from __future__ import annotations

import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pytest
import yaml
from helpers import REPO, commands, dataset_digests, project_copy, user_env

sys.path.insert(0, str(Path(__file__).parent / "slurm"))
import cluster as slurm_cluster  # noqa: E402

pytestmark = [pytest.mark.slurm, pytest.mark.slow]

RUN_TIMEOUT = 900  # s, for the whole run; a hang ends here (timeout -k: SIGKILL 10 s later)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    reason = slurm_cluster.unavailable_reason()
    if reason:
        pytest.skip(f"cannot run a SLURM cluster here: {reason}")
    c = slurm_cluster.SlurmCluster(tmp_path_factory.mktemp("slurm"))
    try:
        c.start()
        yield c
    finally:
        c.stop()


@dataclass
class Run:
    """A command started in ``workdir`` (see ``user_run``), its output in ``log``."""

    workdir: Path
    proc: subprocess.Popen
    log: Path
    out: str = ""

    def wait(self) -> Run:
        self.proc.wait()
        self.out = self.log.read_text()
        return self

    @property
    def run_id(self) -> str:
        return re.search(r"SLURM run ID: (\S+)", self.out).group(1)


def run_jobs(cluster, run_id: str) -> list[dict]:
    return [j for j in cluster.jobs() if j.get("JobName") == run_id]


def rule_of(job: dict) -> str:
    """The executor's comment is ``rule_{rule}`` or ``rule_{rule}_wildcards_{values}``."""
    return re.sub(r"_wildcards_.*$", "", job["Comment"].strip()).removeprefix("rule_")


def gpu_slurm_jobs(out: str) -> dict[str, bool]:
    """SLURM job id -> whether Snakemake gave the job a gpu resource, from Snakemake's output:
    each job block (``rule X:`` ... ``jobid: N`` ... ``resources: ..., gpu=1``), then
    ``Job N has been submitted with SLURM jobid M``."""
    gpu_of = {}
    for block in re.split(r"\n(?=\[)", out):  # a job block starts with a [timestamp] line
        jobid = re.search(r"^\s+jobid: (\d+)$", block, re.M)
        res = re.search(r"^\s+resources: (.*)$", block, re.M)
        if jobid and res:
            gpu_of[jobid[1]] = bool(re.search(r"\bgpu=[1-9]", res[1]))
    submitted = re.findall(r"Job (\d+) has been submitted with SLURM jobid (\d+)", out)
    return {slurm: gpu_of[job] for job, slurm in submitted}


SITE_PROFILE = """\
executor: slurm
jobs: 4
default-resources:
  slurm_partition: debug
  slurm_account: site-account
slurm-status-command: squeue            # this site keeps no accounting
slurm-init-seconds-before-status-checks: 2
seconds-between-status-checks: 2
"""


def user_run(cluster, workdir: Path, line: str, xdg: Path, timeout: int) -> Run:
    """``line`` with bash in ``workdir``, as a user of the cluster types it, under timeout."""
    env = {**user_env(), "SLURM_CONF": cluster.env["SLURM_CONF"], "XDG_CONFIG_HOME": str(xdg)}
    log = workdir / f"{len(list(workdir.glob('cmd*.log')))}.cmd.log"
    with open(log, "w") as fh:
        proc = subprocess.Popen(
            ["timeout", "-k", "10", str(timeout), "bash", "-c", line],
            cwd=workdir, env=env, stdout=fh, stderr=fh,
        )  # fmt: skip
    return Run(workdir, proc, log)


def test_readme_block_and_a_site_profile(cluster, sample_set, tmp_path):
    # -------------------------------------------- 2. a site profile; its job fails (started first)
    failing = project_copy(tmp_path / "failing", sample_set.dir)
    site_xdg = tmp_path / "site-config"
    (site_xdg / "snakemake" / "slurm").mkdir(parents=True)
    (site_xdg / "snakemake" / "slurm" / "config.yaml").write_text(SITE_PROFILE)
    # A shard whose item list is unreadable: the plan is made first and only its shards.json is
    # read at parse time, so the run starts and submits the ingest job, which fails.
    plan = [sys.executable, "-m", "clipsift.cli", "plan", "--config", "config/config.yaml"]
    subprocess.run(plan, cwd=failing, check=True, capture_output=True)
    bad = sorted((failing / "results" / "plan" / "shards").glob("*.parquet"))[0]
    bad.write_bytes(b"not a parquet file")
    target = f"results/shards/{bad.stem}/source.parquet"
    fail = user_run(cluster, failing, f"snakemake --profile slurm {target}", site_xdg, 420)

    # -------------------------------------------- 1. the documented block, as typed
    project = project_copy(tmp_path / "clipsift", sample_set.dir)
    cfg = yaml.safe_load((project / "config" / "config.yaml").read_text())
    cfg["filters"] = {"ocr": {"gpu": True}}  # the OCR (in the scan) may use a GPU
    (project / "config" / "config.yaml").write_text(yaml.safe_dump(cfg))
    xdg = tmp_path / "user-config"
    lines = commands("A SLURM cluster")
    assert lines == ["clipsift slurm-profile", "snakemake --profile slurm"], lines
    link = user_run(cluster, project, lines[0], xdg, 60).wait()
    assert link.proc.returncode == 0 and "linked" in link.out, link.out
    assert (xdg / "snakemake" / "slurm").resolve() == (REPO / "profiles" / "slurm").resolve()
    run = user_run(cluster, project, lines[1], xdg, RUN_TIMEOUT).wait()
    fail.wait()
    # what the profile picked for job states: squeue, since this cluster keeps no accounting
    pick = subprocess.run(
        [sys.executable, "-c", "from clipsift.slurm import status_command as s; print(s())"],
        env=cluster.env, capture_output=True, text=True, check=True,
    )  # fmt: skip
    assert pick.stdout.strip() == "squeue"

    assert run.proc.returncode == 0, run.out[-6000:]
    meta = pd.read_parquet(project / "results" / "dataset" / "metadata.parquet")
    assert meta["keep"].any()
    jobs = run_jobs(cluster, run.run_id)
    by_rule: dict[str, list[dict]] = {}
    for j in jobs:
        by_rule.setdefault(rule_of(j), []).append(j)
    submitted = len(re.findall(r"has been submitted with SLURM jobid", run.out))
    assert len(jobs) == submitted > 0
    stages = {"ingest", "scan", "split", "flash", "ocr", "score_cpu", "merge_scores", "select"}
    assert set(by_rule) >= stages | {"calibrate", "export", "provenance", "card", "report"}
    assert {j["JobState"] for j in jobs} == {"COMPLETED"}
    # GPU requests: exactly the jobs that Snakemake gave gpu=1 asked SLURM for a GPU
    gpu_of = gpu_slurm_jobs(run.out)
    assert set(gpu_of) == {j["JobId"] for j in jobs}, gpu_of
    asked = {
        j["JobId"]: "gpu:1" in j.get("TresPerJob", "") + j.get("TresPerNode", "") for j in jobs
    }
    assert asked == gpu_of
    gpu_rules = {rule_of(j) for j in jobs if asked[j["JobId"]]}
    assert gpu_rules == {"scan"}, gpu_rules  # where the OCR runs
    # the workflow profile's per-rule sizes reached sbatch (attempt 1)
    mem = {rule: {j["MinMemoryNode"] for j in js} for rule, js in by_rule.items()}
    assert mem["scan"] == {"4000M"} and mem["export"] == {"16000M"}
    assert mem["ingest"] == {"2000M"} and mem["card"] == {"2000M"}
    assert {j["TimeLimit"] for j in by_rule["scan"]} == {"06:00:00"}

    # the same bytes as a local build elsewhere, with another results path
    local = project_copy(tmp_path / "local", sample_set.dir)
    cfg["results"] = str(tmp_path / "local-results")
    (local / "config" / "config.yaml").write_text(yaml.safe_dump(cfg))
    res = subprocess.run(
        ["snakemake", "--cores", "2"], cwd=local, env=user_env(), capture_output=True, text=True
    )
    assert res.returncode == 0, res.stderr[-4000:]
    slurm_files = dataset_digests(project / "results" / "dataset")
    local_files = dataset_digests(tmp_path / "local-results" / "dataset")
    assert slurm_files.keys() == local_files.keys()
    assert {k for k in slurm_files if slurm_files[k] != local_files[k]} == set()

    # ------------------------------------------------------------ 2. the job that failed
    assert fail.proc.returncode not in (0, 124, 137), fail.out[-4000:]  # failed, not timed out
    failed = sorted(run_jobs(cluster, fail.run_id), key=lambda j: int(j["JobId"]))
    assert [rule_of(j) for j in failed] == ["ingest"] * 3  # restart-times: 2 (profiles/default)
    assert [j["JobState"] for j in failed] == ["FAILED"] * 3
    assert [j["MinMemoryNode"] for j in failed] == ["2000M", "4000M", "6000M"]  # 2000*attempt
    assert {j["Partition"].split()[0] for j in failed} == {"debug"}  # the site default resources
    assert "Error in rule ingest" in fail.out
    assert f"SLURM-job '{failed[-1]['JobId']}' failed" in fail.out
    log = (failing / "results" / "logs" / "ingest" / f"{bad.stem}.log").read_text()
    assert "ArrowInvalid" in log
    assert not (failing / target).exists()  # a failed job leaves no output
