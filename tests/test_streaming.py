"""Streaming shards with bounded disk (docs/scaling.md, Streaming), through the snakemake command as a
user types it, against a stand-in Hub on 127.0.0.1 (tests/fakes/hub_server.py) that serves the
archives for download and takes the uploads.

Six archive shards, window 2: the disk used by downloads and extracted members (the Hub cache
plus results/work) is sampled during the run and never exceeds two shards' worth, while the
whole is three times that; the download of a shard starts only after the shard two places
earlier was released; each shard is committed on its own as it finishes; the run is killed
after two shards are released, and the same command completes it and leaves nothing behind.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import threading
import time
from pathlib import Path

import pandas as pd
import pytest
from fakes.hub_server import FakeHub
from helpers import base_config, make_tar, wait_for, write_config
from test_kill_restart import snakemake_cmd

from clipsift.status_view import status_table

pytestmark = pytest.mark.slow

TOKEN = "hf_fake_write_token_0123456789abcdef"
REPO_IN, REPO_OUT = "org/raw-clips", "test-org/stream"
SHARDS = [f"hf-{k:03d}" for k in range(6)]
WINDOW = 2


def tree_bytes(*roots: Path) -> int:
    """Bytes of the regular files under ``roots`` (links not followed, vanishing files skipped)."""
    total = 0
    for root in roots:
        for dirpath, _, names in os.walk(root):
            for n in names:
                try:
                    st = os.lstat(os.path.join(dirpath, n))
                except FileNotFoundError:
                    continue
                if not os.path.islink(os.path.join(dirpath, n)):
                    total += st.st_size
    return total


class DiskSampler(threading.Thread):
    def __init__(self, *roots: Path):
        super().__init__(daemon=True)
        self.roots, self.peak, self.samples = roots, 0, 0
        self._halt = threading.Event()

    def run(self):
        while not self._halt.is_set():
            self.peak = max(self.peak, tree_bytes(*self.roots))
            self.samples += 1
            time.sleep(0.01)

    def stop(self):
        self._halt.set()
        self.join()


@pytest.fixture
def archives(tmp_path, tiny_videos) -> dict[str, bytes]:
    """Six tars of two videos each (and a caption), distinct bytes per archive."""
    out = {}
    a, b = (tiny_videos[v].read_bytes() for v in "ab")
    for k in range(6):
        path = make_tar(
            tmp_path / f"{k:03d}.tar",
            {"a.mp4": a, "b.mp4": b, "a.txt": f"shard {k} caption".encode()},
        )
        out[f"{k:03d}.tar"] = path.read_bytes()
    return out


def test_streaming_shards_with_bounded_disk_and_a_kill(tmp_path, archives):
    shard_bytes = max(2 * len(data) for data in archives.values())  # archive + its members
    bound = WINDOW * shard_bytes
    assert sum(2 * len(d) for d in archives.values()) >= 3 * bound  # the disk holds a third

    cache, wd = tmp_path / "hub-cache", tmp_path / "run"
    source = {"name": "hf", "type": "hf_archives", "repo": REPO_IN, "shards": sorted(archives),
              "cache_dir": str(cache)}  # fmt: skip
    cfg = base_config(
        [source], lean=True, split={"min_seconds": 0.5}, select={"thresholds": {}},
        export={"dedupe_across_shards": False},
        streaming={"enabled": True, "window": WINDOW},
        publish={"repo": REPO_OUT, "private": True},
    )  # fmt: skip
    write_config(wd, cfg)
    results = wd / "results"
    with FakeHub(token=TOKEN) as hub:
        hub.add_repo(REPO_IN, archives)
        env = {**os.environ, "HF_ENDPOINT": hub.url, "HF_TOKEN": TOKEN,
               "HF_HUB_DISABLE_PROGRESS_BARS": "1"}  # fmt: skip
        env.pop("HF_HUB_OFFLINE", None)
        sampler = DiskSampler(cache, results / "work")
        sampler.start()
        try:
            # the first run, killed (Snakemake and its jobs) once two shards are released
            log1 = open(wd / "run1.log", "w")  # noqa: SIM115
            proc = subprocess.Popen(
                snakemake_cmd(), cwd=wd, env=env, stdout=log1, stderr=subprocess.STDOUT,
                start_new_session=True,
            )  # fmt: skip
            try:
                wait_for(
                    lambda: len(list(results.glob("shards/*/released.json"))) >= 2,
                    proc,
                    "two released shards",
                    log=lambda: (wd / "run1.log").read_text()[-3000:],
                )
            finally:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
                log1.close()
            released_before = sorted(p.parent.name for p in results.glob("shards/*/released.json"))
            assert 2 <= len(released_before) < len(SHARDS)
            text = status_table(results, workdir=wd, config=cfg)
            assert "| upload |" in text and "| release |" in text, text

            # the same command again completes the dataset
            second = subprocess.run(
                ["timeout", "-k", "10", "900", *snakemake_cmd()],
                cwd=wd, env=env, capture_output=True, text=True,
            )  # fmt: skip
            (wd / "run2.log").write_text(second.stdout + second.stderr)
            assert second.returncode == 0, (second.stdout + second.stderr)[-4000:]
        finally:
            sampler.stop()

        # never more than the window's worth of downloads and members on disk
        assert sampler.samples > 50 and 0 < sampler.peak <= bound, (sampler.peak, bound)
        # ... because a shard's download waited for the release WINDOW shards earlier
        for k in range(WINDOW, len(SHARDS)):
            ingested = (results / "shards" / SHARDS[k] / "source.parquet").stat().st_mtime
            released = (results / "shards" / SHARDS[k - WINDOW] / "released.json").stat().st_mtime
            assert ingested >= released, SHARDS[k]
        # nothing left behind: no members, no hidden half-extractions, no downloads
        assert tree_bytes(results / "work") == 0 and not list((results / "work").rglob(".*"))
        assert tree_bytes(cache) < 10_000  # refs and locks only
        # every archive was downloaded, none more than once before and once after the kill
        got = [p.rsplit("/", 1)[-1] for p in hub.downloads()]
        assert set(got) == set(archives) and max(got.count(a) for a in archives) <= 2
        assert all(got.count(f"{s.removeprefix('hf-')}.tar") == 1 for s in released_before)

        # one commit per shard, then the card and tables; the repo holds every kept clip
        summaries = [c["summary"] for c in hub.commits]
        assert {f"clipsift: shard {s}" for s in SHARDS} <= set(summaries)
        files = hub.files(REPO_OUT)
        for s in SHARDS:
            meta = [
                json.loads(x) for x in files[f"shards/{s}/metadata.jsonl"].decode().splitlines()
            ]
            kept = [m for m in meta if m["keep"]]
            assert kept and all(m["shard"] == s for m in meta)
            index = pd.read_parquet(results / "dataset" / "clips" / f"{s}.parquet")
            assert {m["file"] for m in kept} == set(index["file"])
            for f in index["file"]:
                assert files[f] == (results / "dataset" / f).read_bytes()
        assert "README.md" in files and "provenance.json" in files
        rec = json.loads((results / "shards" / SHARDS[0] / "upload.json").read_text())
        assert rec["repo"] == REPO_OUT and rec["files"] >= 2


def test_streaming_config_is_checked_at_parse_time():
    from clipsift.streaming import StreamingConfigError, check_config, window_dependency

    ok = {"streaming": {"enabled": True, "upload": True}, "publish": {"repo": "me/clips"},
          "export": {"dedupe_across_shards": False, "clips": True}}  # fmt: skip
    check_config(ok)
    check_config({"streaming": {"enabled": False}})  # off: nothing to check
    for change, message in [
        ({"export": {"dedupe_across_shards": True}}, "export.dedupe_across_shards must be false"),
        ({"near_duplicates": {"enabled": True}}, "near_duplicates.enabled must be false"),
        ({"publish": {"repo": None}}, "streaming.upload needs publish.repo"),
    ]:
        with pytest.raises(StreamingConfigError, match=message):
            check_config(ok | change)
    assert [window_dependency(SHARDS, s, 2) for s in SHARDS] == [None, None, *SHARDS[:4]]
