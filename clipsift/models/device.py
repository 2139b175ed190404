"""Which device a model job uses.

- ``device: auto`` takes CUDA when present, else the CPU; ``cpu``/``cuda``/``cuda:N`` force it.
- Under SLURM (or any scheduler that sets ``CUDA_VISIBLE_DEVICES`` for the job) the visible
  devices are the job's: we use the first and take no lock.
- On a local machine with several GPUs, Snakemake only counts ``gpu`` resources and does not say
  which GPU a job gets, so each GPU job takes a free device itself: it holds an exclusive
  ``flock`` on ``{lock_dir}/gpu{i}.lock`` for as long as the process lives. The kernel drops the
  lock when the process dies, so a killed job never leaves a device taken.
"""

from __future__ import annotations

import fcntl
import logging
import os
import time
from pathlib import Path

log = logging.getLogger(__name__)

_held: list = []  # lock files held by this process (kept open on purpose)


def free_memory() -> None:
    """Give memory back after a model is dropped (the caller drops its references first): the
    garbage collector, then CUDA's cached blocks."""
    import gc

    gc.collect()
    try:
        import torch
    except ImportError:
        return
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def scheduler_assigned() -> bool:
    return bool(os.environ.get("SLURM_JOB_ID")) and "CUDA_VISIBLE_DEVICES" in os.environ


def acquire_gpu(
    n_devices: int, lock_dir: str | os.PathLike, *, timeout: float = 3600.0, poll: float = 0.2
) -> int:
    """Lock a free device index in ``range(n_devices)``; waits up to ``timeout`` seconds."""
    lock_dir = Path(lock_dir)
    lock_dir.mkdir(parents=True, exist_ok=True)
    deadline = time.monotonic() + timeout
    while True:
        for i in range(n_devices):
            fh = open(lock_dir / f"gpu{i}.lock", "a+")  # noqa: SIM115 - held for the process lifetime
            try:
                fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                fh.close()
                continue
            fh.seek(0)
            fh.truncate()
            fh.write(f"{os.getpid()}\n")
            fh.flush()
            _held.append(fh)
            return i
        if time.monotonic() > deadline:
            raise TimeoutError(
                f"no free GPU among {n_devices} after {timeout:.0f} s (locks in {lock_dir})"
            )
        time.sleep(poll)


def release_gpus() -> None:
    while _held:
        _held.pop().close()


def resolve_device(pref: str = "auto", *, lock_dir: str | os.PathLike | None = None) -> str:
    """The torch device string for this job (see the module docstring)."""
    import torch

    if pref not in ("auto", "cuda") and pref != "":
        return pref
    if not torch.cuda.is_available():
        if pref == "cuda":
            raise RuntimeError("device: cuda was asked for but CUDA is not available")
        return "cpu"
    n = torch.cuda.device_count()
    if n == 1 or scheduler_assigned() or lock_dir is None:
        return "cuda:0"
    idx = acquire_gpu(n, lock_dir)
    log.info("took GPU %d of %d (lock in %s)", idx, n, lock_dir)
    # make it the current device too, so that code which allocates on "cuda" (no index) lands on
    # the locked device and not on GPU 0, where another job runs
    torch.cuda.set_device(idx)
    return f"cuda:{idx}"


def pick_dtype(device: str, pref: str = "auto"):
    """bf16 on GPUs that support it, else fp16 on GPU; fp32 on the CPU (unless set)."""
    import torch

    if pref != "auto":
        return getattr(torch, pref)
    if device.startswith("cuda"):
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return torch.float32
