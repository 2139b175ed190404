"""The SLURM profile against a real SLURM 22.05 cluster started on this machine (tests/slurm).

A run of the pipeline on generated videos, up to the dataset metadata, through
``snakemake --profile profiles/slurm`` (the plugin submits every job with sbatch), and beside
it, on the same cluster, a run whose job fails. Checked from slurmctld's own job records
(``scontrol show job``, kept for MinJobAge = 300 s):
- every job was a SLURM job, named after the run and commented with its rule and shard;
- the jobs whose rule declares ``gpu=1`` (with ``filters.ocr.gpu``: the OCR, in the scan's
  decode pass by default) asked SLURM for a GPU (``--gpus=1``), and no other job did;
- the profile's per-rule memory and time reached sbatch;
- a failed job is reported as failed, with its SLURM id, and the run ends instead of waiting.

The cluster has no accounting, so the profile runs with ``--slurm-status-command squeue`` (the
documented option for such clusters); status checks start after 2 s instead of 20.

Skipped only where SLURM cannot run: not root and no SLURM binaries. In CI (root, apt) it runs.
"""

from __future__ import annotations

import re
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pytest
from helpers import REPO, SNAKEFILE, base_config, write_config

sys.path.insert(0, str(Path(__file__).parent / "slurm"))
import cluster as slurm_cluster  # noqa: E402

pytestmark = [pytest.mark.slurm, pytest.mark.slow]

RUN_TIMEOUT = 420  # s, for the whole run; a hang ends here (timeout -k: SIGKILL 10 s later)


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
    """A ``snakemake --profile profiles/slurm`` process started in ``workdir``."""

    workdir: Path
    proc: subprocess.Popen
    t0: float
    log: Path
    elapsed: float = 0.0
    out: str = ""

    def wait(self) -> Run:
        self.proc.wait()
        self.elapsed = time.monotonic() - self.t0
        self.out = self.log.read_text()
        return self

    @property
    def run_id(self) -> str:
        return re.search(r"SLURM run ID: (\S+)", self.out).group(1)


def snakemake_slurm(cluster, workdir: Path, *args: str, timeout: int = RUN_TIMEOUT) -> Run:
    """Start ``snakemake --profile profiles/slurm`` in ``workdir``, under ``timeout -k``."""
    opts = {
        "--snakefile": SNAKEFILE,
        "--profile": REPO / "profiles" / "slurm",
        "--configfile": "config/config.yaml",
        # no slurmdbd on the test cluster: job states come from squeue (see the profile)
        "--slurm-status-command": "squeue",
        # the first status check after 2 s instead of 20
        "--slurm-init-seconds-before-status-checks": 2,
        "--seconds-between-status-checks": 2,
        "--jobs": 4,
    }
    cmd = ["timeout", "-k", "10", str(timeout), sys.executable, "-m", "snakemake"]
    cmd += [str(x) for kv in opts.items() for x in kv] + list(args)
    log = workdir / "snakemake.log"
    with open(log, "w") as fh:
        proc = subprocess.Popen(cmd, cwd=workdir, env=cluster.env, stdout=fh, stderr=fh)
    return Run(workdir, proc, time.monotonic(), log)


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


def test_pipeline_on_slurm_gpu_requests_and_a_failing_job(cluster, tiny_videos, tmp_path):
    cfg = base_config(
        [{"name": "vid", "type": "folder", "path": str(Path(tiny_videos["a"]).parent)}],
        shard_size=4,  # one shard: the run's length is its depth (levels of jobs), not its width
        # OCR may use a GPU: its rule declares gpu=1 (and falls back to the CPU here)
        filters={"ocr": {"gpu": True}},
    )
    good, failing = tmp_path / "run", tmp_path / "failing"
    for w in (good, failing):
        write_config(w, cfg)

    # A run whose job fails on the node: a shard whose item list is unreadable. The plan is
    # made first and only its shards.json is read at parse time, so the run starts and submits
    # the ingest job, which fails. One retry instead of the profile's two keeps the test short;
    # the retry asks for twice the memory. It runs beside the good run, on the same cluster.
    plan = [sys.executable, "-m", "clipsift.cli", "plan", "--config", "config/config.yaml"]
    subprocess.run(plan, cwd=failing, check=True, capture_output=True)
    bad = sorted((failing / "results" / "plan" / "shards").glob("*.parquet"))[0]
    bad.write_bytes(b"not a parquet file")
    target = f"results/shards/{bad.stem}/source.parquet"
    fail = snakemake_slurm(cluster, failing, target, "--retries", "1", timeout=240)

    # The pipeline up to the dataset's metadata and the calibration report: every stage of a
    # shard, and jobs that read every shard. The finishing rules after them (provenance, card,
    # report) only add levels to the DAG (each at least 14 s of status polling).
    targets = ["results/dataset/metadata.parquet", "results/report/calibration"]
    run = snakemake_slurm(cluster, good, *targets).wait()
    fail.wait()

    # ------------------------------------------------------------ 1. the pipeline
    assert run.proc.returncode == 0, run.out[-6000:]
    meta = pd.read_parquet(good / "results" / "dataset" / "metadata.parquet")
    assert set(meta["video_id"]) >= {"vid-a", "vid-b"}, meta["video_id"]

    jobs = run_jobs(cluster, run.run_id)
    by_rule: dict[str, list[dict]] = {}
    for j in jobs:
        by_rule.setdefault(rule_of(j), []).append(j)
    submitted = len(re.findall(r"has been submitted with SLURM jobid", run.out))
    assert len(jobs) == submitted > 0
    # every stage ran on the cluster
    stages = {"ingest", "scan", "split", "flash", "ocr", "score_cpu", "merge_scores", "select"}
    assert set(by_rule) >= stages | {"calibrate", "export"}
    assert {j["JobState"] for j in jobs} == {"COMPLETED"}
    assert len(by_rule["ingest"]) == 1 and len(by_rule["score_cpu"]) == 2  # (shard, scorer)

    # GPU requests: exactly the jobs that Snakemake gave gpu=1 asked SLURM for a GPU
    gpu_of = gpu_slurm_jobs(run.out)
    assert set(gpu_of) == {j["JobId"] for j in jobs}, gpu_of
    asked = {
        j["JobId"]: "gpu:1" in j.get("TresPerJob", "") + j.get("TresPerNode", "") for j in jobs
    }
    assert asked == gpu_of
    gpu_rules = {rule_of(j) for j in jobs if asked[j["JobId"]]}
    assert gpu_rules and gpu_rules <= {"scan", "ocr"}, gpu_rules  # where the OCR runs
    assert not all(asked.values())
    # the profile's per-rule sizes reached sbatch (attempt 1)
    mem = {rule: {j["MinMemoryNode"] for j in js} for rule, js in by_rule.items()}
    assert mem["scan"] == {"4000M"} and mem["export"] == {"16000M"}
    assert mem["ingest"] == {"2000M"}
    assert {j["TimeLimit"] for j in by_rule["scan"]} == {"06:00:00"}

    # ------------------------------------------------------------ 2. the job that failed
    assert fail.proc.returncode not in (0, 124, 137), fail.out[-4000:]  # failed, not timed out
    failed = sorted(run_jobs(cluster, fail.run_id), key=lambda j: int(j["JobId"]))
    assert [rule_of(j) for j in failed] == ["ingest", "ingest"]  # attempt 1 and 2
    assert [j["JobState"] for j in failed] == ["FAILED", "FAILED"]
    assert [j["MinMemoryNode"] for j in failed] == ["2000M", "4000M"]  # mem_mb=2000*attempt
    assert "Error in rule ingest" in fail.out
    assert f"SLURM-job '{failed[-1]['JobId']}' failed" in fail.out
    log = (failing / "results" / "logs" / "ingest" / f"{bad.stem}.log").read_text()
    assert "ArrowInvalid" in log
    assert not (failing / target).exists()  # a failed job leaves no output
