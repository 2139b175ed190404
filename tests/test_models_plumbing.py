"""The model-stage plumbing (clipsift.models): GPU choice with per-device locks, dtype, pinned
loading of weights files, out-of-memory halving, and decoding ahead of the model."""

from __future__ import annotations

import multiprocessing as mp
import os
import queue
import signal
import time

import numpy as np
import pytest
import torch
from fakes.tiny_clip import fake_hub_repo, head_state_dict

from clipsift.models import device as dev
from clipsift.models import hub
from clipsift.models.batching import Batcher, is_oom
from clipsift.models.frames import decode_width, prefetch, uniform_times

# ----------------------------------------------------------------------------- GPU locks


def _hold_gpu(lock_dir, results, release, n_devices=3):
    """A GPU job: take a device among ``n_devices`` simulated ones, report it, hold it until the
    file ``release`` appears (a file, not an Event: a killed waiter would wedge an Event)."""
    idx = dev.acquire_gpu(n_devices, lock_dir, timeout=60, poll=0.02)
    results.put((os.getpid(), idx))
    deadline = time.monotonic() + 60
    while not os.path.exists(release) and time.monotonic() < deadline:
        time.sleep(0.02)


def _start(ctx, lock_dir, results, release, n_devices=3):
    p = ctx.Process(target=_hold_gpu, args=(lock_dir, results, str(release), n_devices))
    p.start()
    return p


def test_concurrent_jobs_get_distinct_gpus_and_a_fourth_waits(tmp_path):
    ctx = mp.get_context("fork")
    locks = tmp_path / "locks"
    results = ctx.Queue()
    release = [tmp_path / f"release{i}" for i in range(4)]
    procs = []
    try:
        procs = [_start(ctx, locks, results, release[i]) for i in range(3)]
        got = dict(results.get(timeout=20) for _ in range(3))  # pid -> device
        assert sorted(got.values()) == [0, 1, 2]
        procs.append(_start(ctx, locks, results, release[3]))
        with pytest.raises(queue.Empty):
            results.get(timeout=1.0)  # every device is taken: the fourth job waits
        by_device = {d: pid for pid, d in got.items()}
        holder = next(i for i, p in enumerate(procs[:3]) if p.pid == by_device[1])
        release[holder].touch()  # the job on device 1 ends (and with it, its lock)
        procs[holder].join(10)
        pid, idx = results.get(timeout=10)
        assert (pid, idx) == (procs[3].pid, 1)
        # a killed job frees its device too (the kernel drops the flock with the process)
        killed = next(i for i, p in enumerate(procs[:3]) if p.pid == by_device[2])
        os.kill(procs[killed].pid, signal.SIGKILL)
        procs[killed].join(10)
        assert dev.acquire_gpu(3, locks, timeout=10, poll=0.02) == 2
    finally:
        dev.release_gpus()
        for r in release:
            r.touch()
        for p in procs:
            p.join(10)
            if p.is_alive():
                p.kill()


def test_acquire_gpu_times_out_with_a_message(tmp_path):
    ctx = mp.get_context("fork")
    results = ctx.Queue()
    p = _start(ctx, tmp_path / "locks", results, tmp_path / "release", n_devices=1)
    try:
        results.get(timeout=20)
        with pytest.raises(TimeoutError, match="no free GPU among 1"):
            dev.acquire_gpu(1, tmp_path / "locks", timeout=0.3, poll=0.05)
    finally:
        (tmp_path / "release").touch()
        p.join(10)


def test_resolve_device_on_cpu_and_with_simulated_gpus(tmp_path, monkeypatch):
    if not torch.cuda.is_available():
        assert dev.resolve_device("auto", lock_dir=tmp_path) == "cpu"
        with pytest.raises(RuntimeError, match="CUDA is not available"):
            dev.resolve_device("cuda")
    assert dev.resolve_device("cpu") == "cpu"
    assert dev.pick_dtype("cpu") == torch.float32
    assert dev.pick_dtype("cpu", "bfloat16") == torch.bfloat16
    # three GPUs on a local machine: the job locks one and makes it current
    current = []
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 3)
    monkeypatch.setattr(torch.cuda, "set_device", current.append)
    monkeypatch.delenv("SLURM_JOB_ID", raising=False)
    try:
        assert dev.resolve_device("auto", lock_dir=tmp_path) == "cuda:0"
        assert dev.resolve_device("auto", lock_dir=tmp_path) == "cuda:1"  # 0 is held
        assert current == [0, 1]
        assert (tmp_path / "gpu0.lock").read_text().strip() == str(os.getpid())
    finally:
        dev.release_gpus()
    # under SLURM the scheduler's CUDA_VISIBLE_DEVICES decides: no lock
    monkeypatch.setenv("SLURM_JOB_ID", "1")
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "5")
    assert dev.resolve_device("auto", lock_dir=tmp_path / "slurm") == "cuda:0"
    assert not (tmp_path / "slurm").exists()


# ----------------------------------------------------------------------------- OOM


class FlakyModel:
    """A model wrapper whose first call runs out of memory (like a too-large first batch)."""

    def __init__(self, fail_calls=1, exc=None):
        torch.manual_seed(0)
        self.lin = torch.nn.Linear(8, 3)
        self.calls = []
        self.fail_calls = fail_calls
        self.exc = exc or torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2 GiB")

    def __call__(self, chunk):
        self.calls.append(len(chunk))
        if len(self.calls) <= self.fail_calls:
            raise self.exc
        with torch.inference_mode():
            return list(self.lin(torch.stack(list(chunk))).numpy())


def test_oom_on_first_batch_halves_and_results_are_complete_and_identical():
    items = list(torch.randn(21, 8, generator=torch.Generator().manual_seed(1)))
    ref = Batcher(8).map(FlakyModel(fail_calls=0), items)
    flaky = FlakyModel(fail_calls=1)
    b = Batcher(8)
    out = b.map(flaky, items)
    assert b.batch_size == 4 and b.n_oom == 1
    assert flaky.calls[:2] == [8, 4]  # the same items again, in halves
    assert sum(flaky.calls[1:]) == len(items)
    assert len(out) == len(ref) == 21
    np.testing.assert_allclose(np.stack(out), np.stack(ref), rtol=1e-6, atol=1e-6)
    # twice in a row: halves twice
    b2 = Batcher(8)
    b2.map(FlakyModel(fail_calls=2), items)
    assert b2.batch_size == 2


def test_other_errors_and_oom_at_batch_size_one_propagate():
    items = list(torch.randn(4, 8))
    with pytest.raises(ValueError):
        Batcher(4).map(FlakyModel(exc=ValueError("bad input")), items)
    with pytest.raises(torch.cuda.OutOfMemoryError):
        Batcher(1).map(FlakyModel(), items)
    assert is_oom(RuntimeError("CUDA error: out of memory"))
    assert not is_oom(RuntimeError("shape mismatch"))


# ----------------------------------------------------------------------------- frames


def test_prefetch_keeps_order_and_yields_failures_as_data():
    def work(i):
        time.sleep(0.01 * (i % 3))
        if i == 4:
            raise ValueError("cannot decode")
        return i * i

    out = list(prefetch(work, range(10), workers=3, ahead=4))
    assert [i for i, _ in out] == list(range(10))
    assert isinstance(out[4][1], ValueError)
    assert [r for i, r in out if i != 4] == [i * i for i in range(10) if i != 4]


def test_uniform_times_and_decode_width():
    ts = uniform_times(1.0, 3.0, 10.0, 4)
    assert ts[0] == pytest.approx(1.05) and ts[-1] == pytest.approx(2.95) and len(ts) == 4
    assert decode_width(1920, 1080, 224) == 400  # short side 224 (399 rounded up to even)
    assert decode_width(1080, 1920, 384) == 384  # portrait: the width is the short side
    assert decode_width(320, 180, 224) is None  # never upscale
    assert decode_width(None, 180, 224) is None
    assert decode_width(1920, 1080, None) is None


# ----------------------------------------------------------------------------- weights files


def test_fetch_file_local_hub_cache_and_url(tmp_path, monkeypatch):
    import huggingface_hub.constants as hfc

    sd = head_state_dict("aesthetic", 16)
    local = tmp_path / "head.pth"
    torch.save(sd, local)
    path, rec = hub.fetch_file(str(local))
    assert path == local and rec["sha256"] == hub.file_sha256(local)
    assert set(hub.load_state_dict(path)) == set(sd)

    # a Hub file, resolved offline from the cache exactly as after a download
    cache = tmp_path / "hub"
    commit = fake_hub_repo(cache, "org/heads", local, commit="a" * 40)
    monkeypatch.setattr(hfc, "HF_HUB_CACHE", str(cache))
    monkeypatch.setattr(hfc, "HF_HUB_OFFLINE", True)
    path, rec = hub.fetch_file({"repo": "org/heads", "filename": "head.pth", "revision": "main"})
    assert rec["resolved_revision"] == commit and rec["revision"] == "main"
    assert rec["sha256"] == hub.file_sha256(local)
    with pytest.raises(RuntimeError, match="cannot download 'missing.pth' from 'org/heads'"):
        hub.fetch_file({"repo": "org/heads", "filename": "missing.pth", "revision": "main"})

    # a URL (file:// here), cached under torch.hub's folder, with its sha256 checked
    old = torch.hub.get_dir()
    torch.hub.set_dir(str(tmp_path / "torchhub"))
    try:
        path, rec = hub.fetch_file({"url": local.as_uri(), "sha256": hub.file_sha256(local)})
        assert path.is_file() and str(path).startswith(str(tmp_path / "torchhub"))
        with pytest.raises(RuntimeError, match="is not the pinned"):
            hub.fetch_file({"url": local.as_uri(), "sha256": "0" * 64})
    finally:
        torch.hub.set_dir(old)
    with pytest.raises(RuntimeError, match="does not exist"):
        hub.fetch_file(str(tmp_path / "nope.pth"))


class NotATensor:
    pass


def test_load_state_dict_never_unpickles_objects(tmp_path):
    bad = tmp_path / "bad.pth"
    torch.save({"w": torch.zeros(2), "obj": NotATensor()}, bad)
    with pytest.raises(RuntimeError, match="weights_only=True"):
        hub.load_state_dict(bad)
    wrapped = tmp_path / "ckpt.pth"
    torch.save({"state_dict": {"w": torch.ones(2)}, "epoch": 3}, wrapped)
    assert list(hub.load_state_dict(wrapped)) == ["w"]
    from safetensors.torch import save_file

    st = tmp_path / "h.safetensors"
    save_file({"w": torch.ones(3)}, st)
    assert hub.load_state_dict(st)["w"].shape == (3,)
