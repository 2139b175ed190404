"""Local multi-GPU runs through Snakemake, with simulated devices.

``snakemake --profile profiles/local --resources gpu=N`` only counts GPUs; each GPU job takes a
free device itself (clipsift.models.device). Here a test-only workflow runs more ``gpu=1`` jobs
than devices, each one a real ``script:`` process that calls ``resolve_device`` with a stand-in
torch that reports N GPUs, holds its device for a moment and records it. Checked: Snakemake never runs
more than N at once, and jobs that overlap in time hold distinct devices.
(tests/test_models_plumbing.py tests ``acquire_gpu`` itself, with processes and no Snakemake.)
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import REPO

pytestmark = pytest.mark.slow

N_GPUS, N_JOBS = 2, 5

SNAKEFILE = """
rule all:
    input:
        expand("out/{i}.json", i=range(config["jobs"])),


rule gpu_job:
    output:
        "out/{i}.json",
    resources:
        gpu=1,
    script:
        "job.py"
"""

JOB = """
import time

launched = time.time()

import json, os, sys, types

from clipsift.models import device

# simulated devices: a stand-in torch module (importing the real one costs seconds per job)
n = snakemake.config["gpus"]
cuda = types.SimpleNamespace(
    is_available=lambda: True, device_count=lambda: n, set_device=lambda i: None
)
sys.modules["torch"] = types.SimpleNamespace(cuda=cuda)

dev = device.resolve_device("auto", lock_dir="results/.gpu_locks")
start = time.time()
time.sleep(1.5)  # "work" while holding the device
end = time.time()
with open(snakemake.output[0], "w") as fh:
    json.dump({"device": dev, "launched": launched, "start": start, "end": end}, fh)
"""


def test_n_gpu_jobs_at_once_get_n_distinct_devices(tmp_path):
    (tmp_path / "Snakefile").write_text(SNAKEFILE)
    (tmp_path / "job.py").write_text(JOB)
    env = {k: v for k, v in os.environ.items() if not k.startswith("SLURM_")}
    proc = subprocess.run(
        [
            *(sys.executable, "-m", "snakemake", "--profile", REPO / "profiles" / "local"),
            *("--cores", "8"),  # more cores than GPUs: the gpu resource is what limits
            *("--resources", f"gpu={N_GPUS}"),
            *("--config", f"gpus={N_GPUS}", f"jobs={N_JOBS}"),
        ],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    runs = [json.loads(p.read_text()) for p in sorted(Path(tmp_path, "out").glob("*.json"))]
    assert len(runs) == N_JOBS
    assert {r["device"] for r in runs} == {f"cuda:{i}" for i in range(N_GPUS)}

    overlaps = 0
    for r in runs:
        # Snakemake started at most N_GPUS gpu=1 jobs at once...
        alive = [o for o in runs if o["launched"] <= r["launched"] < o["end"]]
        assert len(alive) <= N_GPUS, alive
        # ...and the ones holding a device at the same time hold distinct ones
        holding = [o for o in runs if o["start"] <= r["start"] < o["end"]]
        assert len({o["device"] for o in holding}) == len(holding), holding
        overlaps += len(holding) > 1
    assert overlaps, "no two GPU jobs ran at the same time: nothing was tested"
