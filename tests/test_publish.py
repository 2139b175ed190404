"""Publishing the dataset through huggingface_hub's own upload code against a stand-in Hub on
127.0.0.1 (tests/fakes/hub_server.py): what is sent (files, paths in the repo, commits), resuming
after an interruption, the one-commit LFS path, and clear failures without a token or network.
"""

from __future__ import annotations

import json
import os
import socket
from pathlib import Path

import pytest
from fakes.hub_server import FakeHub
from helpers import run_snakemake

from clipsift import publish as pub

TOKEN = "hf_fake_write_token_0123456789abcdef"


@pytest.fixture
def hub(monkeypatch):
    """A running fake Hub, with huggingface_hub (this process) pointed at it and $HF_TOKEN set."""
    from huggingface_hub import constants

    with FakeHub(token=TOKEN) as srv:
        monkeypatch.setattr(constants, "ENDPOINT", srv.url)
        monkeypatch.setenv("HF_ENDPOINT", srv.url)
        monkeypatch.setenv("HF_TOKEN", TOKEN)
        monkeypatch.setenv("HF_HUB_DISABLE_PROGRESS_BARS", "1")
        yield srv


@pytest.fixture
def folder(tmp_path) -> Path:
    """A small dataset folder: a card, metadata, clips, a WebDataset tar, and hidden files that
    must not be uploaded."""
    d = tmp_path / "results" / "dataset"
    files = {
        "README.md": "---\nlicense: other\ntask_categories:\n- text-to-video\n---\n\n# Clips\n",
        "kept.parquet": b"PAR1" + os.urandom(3000) + b"PAR1",
        "metadata.jsonl": "".join(json.dumps({"clip_id": f"c{i}"}) + "\n" for i in range(50)),
        "provenance.json": json.dumps({"config_sha256": "0" * 64}),
        "clips/s-0/c0.mp4": os.urandom(20_000),
        "clips/s-0/c1.mp4": os.urandom(15_000),
        "clips/s-1/c2.mp4": os.urandom(25_000),
        "clips/s-0.parquet": os.urandom(2_000),
        "webdataset/320x180_f16-00000.tar": os.urandom(30_000),
        ".published.json": "{}",  # hidden: the upload record, never uploaded
        "clips/s-0/.snakemake_timestamp": "",
    }
    for name, data in files.items():
        p = d / name
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(data.encode() if isinstance(data, str) else data)
    return d


def local_files(folder: Path) -> dict[str, bytes]:
    return {
        p.relative_to(folder).as_posix(): p.read_bytes()
        for p in folder.rglob("*")
        if p.is_file() and not any(part.startswith(".") for part in p.relative_to(folder).parts)
    }


def test_upload_creates_a_private_repo_and_sends_every_file(hub, folder):
    record = pub.publish(folder, {"repo": "org/clips", "private": True, "concurrency": 3},
                         record_path=folder / ".published.json")  # fmt: skip
    assert hub.repos["dataset/org/clips"]["private"]
    assert hub.files("org/clips") == local_files(folder)  # exactly the files, byte for byte
    assert len(hub.commits) == 1 and hub.commits[0]["revision"] == "main"
    sent = {r["path"] for r in hub.requests}
    assert {"/api/repos/create", "/api/datasets/org/clips/preupload/main",
            "/api/datasets/org/clips/commit/main"} <= sent  # fmt: skip
    assert all(r["auth"] for r in hub.requests if r["method"] != "GET")  # the token was sent
    assert record["commit"] == hub.commits[-1]["oid"] and record["files"] == len(
        local_files(folder)
    )
    assert record["method"].startswith("upload_folder") and record["private"] is True
    assert os.environ[pub.XET_CONCURRENCY_ENV] == "3" or not pub.xet_available()
    saved = (folder / ".published.json").read_text()
    assert json.loads(saved)["repo"] == "org/clips" and TOKEN not in saved


def test_an_interrupted_upload_resumes_where_it_stopped(hub, folder, monkeypatch):
    """huggingface_hub 2.x commits a large folder in several commits; small batches (its byte
    budget per commit lowered) make several here. The third commit fails; running the same
    upload again commits only what is missing, and a third run commits nothing."""
    if not pub.xet_available():
        pytest.skip("the multi-commit upload of huggingface_hub 2.x needs hf_xet")
    import huggingface_hub._upload_pipeline as pipeline

    monkeypatch.setattr(pipeline, "REGULAR_CONTENT_BYTES_BUDGET", 30_000)
    hub.fail_commit_after = 2
    cfg = {"repo": "org/clips", "revision": "v1"}
    with pytest.raises(pub.PublishError, match="Run `snakemake publish` again to resume"):
        pub.publish(folder, cfg)
    first = [f["path"] for c in hub.commits for f in c["files"]]
    assert len(hub.commits) == 2 and 0 < len(first) < len(local_files(folder))
    pub.publish(folder, cfg)
    second = [f["path"] for c in hub.commits[2:] for f in c["files"]]
    assert not set(first) & set(second)  # nothing committed twice
    assert sorted(first + second) == sorted(local_files(folder))
    assert hub.files("org/clips", "v1") == local_files(folder)
    assert hub.files("org/clips", "main") == {}  # the branch was made from an empty main
    n = len(hub.commits)
    again = pub.publish(folder, cfg)
    assert len(hub.commits) == n and again["commit"] == hub.commits[-1]["oid"]


def test_without_hf_xet_one_commit_with_lfs_uploads(hub, folder, monkeypatch):
    """huggingface_hub's one-commit path (no hf_xet): binary files go through the LFS batch
    API and a PUT each; the commit names them by sha256."""
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_DISABLE_XET", True)
    hub.lfs_suffixes = (".mp4", ".parquet", ".tar")
    record = pub.publish(folder, {"repo": "org/clips"})
    assert record["method"] == "upload_folder (one commit)"
    (commit,) = hub.commits
    kinds = {f["path"]: f["kind"] for f in commit["files"]}
    assert kinds["clips/s-0/c0.mp4"] == "lfs" and kinds["README.md"] == "regular"
    puts = [r for r in hub.requests if r["method"] == "PUT"]
    assert len(puts) == sum(k == "lfs" for k in kinds.values()) == 6
    assert hub.files("org/clips") == local_files(folder)


def test_clear_failures_without_token_network_or_rights(hub, folder, monkeypatch):
    monkeypatch.delenv("HF_TOKEN")
    with pytest.raises(pub.PublishError, match=r"no Hugging Face token in \$HF_TOKEN"):
        pub.publish(folder, {"repo": "org/clips"})
    with pytest.raises(pub.PublishError, match="publish.repo"):
        pub.publish(folder, {"repo": None})
    assert not [r for r in hub.requests if r["path"] != "/api/agent-harnesses"]  # nothing sent
    monkeypatch.setenv("HF_TOKEN", "hf_wrong_token_0000")
    with pytest.raises(pub.PublishError, match="refused the token") as err:
        pub.publish(folder, {"repo": "org/clips"})
    assert "hf_wrong_token_0000" not in str(err.value)
    # no network: a port nobody listens on
    from huggingface_hub import constants

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{s.getsockname()[1]}"
    monkeypatch.setattr(constants, "ENDPOINT", dead)
    monkeypatch.setenv("HF_TOKEN", TOKEN)
    with pytest.raises(pub.PublishError, match="cannot reach the Hub"):
        pub.publish(folder, {"repo": "org/clips"})


def test_remove_intermediates_removes_extracted_archives_only(hub, folder):
    results = folder.parent
    for shard in ("a-0", "b-1"):
        (results / "work" / shard / "extracted").mkdir(parents=True)
        (results / "work" / shard / "extracted" / "v.mp4").write_bytes(b"x" * 100)
    (results / "shards" / "a-0").mkdir(parents=True)
    (results / "shards" / "a-0" / "clips.parquet").write_bytes(b"table")
    record = pub.publish(folder, {"repo": "org/clips", "remove_intermediates": True},
                         results=results, shards=["a-0", "b-1"])  # fmt: skip
    assert record["intermediates"]["bytes_freed"] == 200
    assert not (results / "work" / "a-0" / "extracted").exists()
    assert (results / "shards" / "a-0" / "clips.parquet").exists()  # rule outputs stay


@pytest.mark.slow
def test_publish_rule_through_snakemake(tmp_path_factory, monkeypatch):
    """`snakemake publish` on a finished build (test_export.py): without a token the job fails
    with the message; with one, the dataset folder lands in the repo, and the record says so."""
    from test_export import DATASET, built_dataset

    build = built_dataset(tmp_path_factory)
    wd = build.wd
    with FakeHub(token=TOKEN) as hub:
        monkeypatch.setenv("HF_ENDPOINT", hub.url)  # the job's own process reads it
        monkeypatch.setenv("HF_HUB_DISABLE_PROGRESS_BARS", "1")
        monkeypatch.delenv("HF_TOKEN", raising=False)
        with pytest.raises(Exception):  # noqa: B017 - Snakemake's own error for a failed job
            run_snakemake(wd, build.cfg, targets=["publish"])
        log = (wd / "results" / "logs" / "publish.log").read_text()
        assert "no Hugging Face token in $HF_TOKEN" in log
        assert not (wd / DATASET / ".published.json").exists()
        monkeypatch.setenv("HF_TOKEN", TOKEN)
        run = run_snakemake(wd, build.cfg, targets=["publish"])
        assert dict(run.rules) == {"publish": 1}
        record = json.loads((wd / DATASET / ".published.json").read_text())
        assert record["repo"] == "test-org/clips" and hub.repos["dataset/test-org/clips"]["private"]
        assert hub.files("test-org/clips") == local_files(wd / DATASET)
        assert "README.md" in hub.files("test-org/clips") and "provenance.json" in hub.files(
            "test-org/clips"
        )
        for p in (wd / "results").rglob("*"):
            if p.is_file():
                assert TOKEN.encode() not in p.read_bytes(), p


def test_clipsift_shards_lists_a_hub_datasets_archives(hub, tmp_path):
    """``clipsift shards REPO --out FILE`` (a real subprocess, huggingface_hub against the fake
    Hub) writes a shards_file that an hf_archives source reads back, pinned to the commit."""
    import subprocess
    import sys

    from clipsift.sources import list_archives

    files = ["README.md", "train/000.tar", "train/001.tar.gz", "train/002.zip",
             "train/meta.json", "test/000.tar"]  # fmt: skip
    hub.repos["dataset/org/clips"] = {
        "private": False,
        "branches": {"main": {"files": {f: {} for f in files}, "head": "ab" * 20}},
    }
    env = {**os.environ, "HF_ENDPOINT": hub.url, "HF_TOKEN": TOKEN}
    out = tmp_path / "shards.txt"
    r = subprocess.run(
        [sys.executable, "-m", "clipsift.cli", "shards", "org/clips", "--prefix", "train/",
         "--out", str(out)],
        env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert "3 archive(s)" in r.stdout and "ab" * 20 in r.stdout
    src = {"name": "hf", "type": "hf_archives", "repo": "org/clips", "shards_file": str(out)}
    assert list_archives(src, root=tmp_path) == [
        "train/000.tar",
        "train/001.tar.gz",
        "train/002.zip",
    ]
    r = subprocess.run(
        [sys.executable, "-m", "clipsift.cli", "shards", "org/clips", "--first", "1"],
        env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert r.stdout.splitlines()[1:] == ["test/000.tar"]
