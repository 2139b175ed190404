"""API captioning against a real HTTP server on 127.0.0.1 (tests/fakes/chat_server.py).

The server answers like an OpenAI-compatible chat-completions endpoint (or a file-upload one) and
can be told to answer 429 with Retry-After, 500, slowly, 401, or not at all. The client under
test is the real one (requests, threads, retries); nothing is mocked.
"""

from __future__ import annotations

import base64
import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest
from fakes.chat_server import FakeChatServer
from fakes.clips import (
    caption_config,
    caption_run_config,
    render_caption_videos,
    tables,
    vfr_caption_clip,
)
from helpers import plan_shards, run_snakemake, wait_for

from clipsift.captioners.api import ApiCaptioner, UploadCaptioner
from clipsift.captioners.http import AuthError, HttpClient, redact, retry_after_seconds
from clipsift.captioners.shard import caption_shard
from clipsift.io.decode import iter_frames
from clipsift.split.clips import materialize

KEY = (
    "sk-or-v1-" + "TESTKEY0123456789abcdef0123456789"
)  # built, so no token-shaped literal is committed


def api_config(server: FakeChatServer, **api) -> dict:
    base = {
        "base_url": server.url, "model": "fake/vl-model", "key_env": "CLIPSIFT_TEST_KEY",
        "backoff": 0.05, "backoff_max": 0.2, "timeout": 5, "frames": 2, "max_side": 64,
        "referer": "https://example.org/clipsift", "title": "clipsift-tests",
    }  # fmt: skip
    return caption_config(enabled=True, provider="api", api={**base, **api})


@pytest.fixture(scope="session")
def clip_videos(tmp_path_factory) -> dict[str, Path]:
    return render_caption_videos(tmp_path_factory.mktemp("caption_videos"))


@pytest.fixture
def key(monkeypatch):
    monkeypatch.setenv("CLIPSIFT_TEST_KEY", KEY)
    return KEY


@pytest.fixture
def server():
    with FakeChatServer() as srv:
        yield srv


def many_clips(videos, n: int):
    """``n`` kept decodable clips (the same 2 s range of video a, different ids)."""
    clips, source, _ = tables(videos)
    base = clips.iloc[0]
    clips = pd.DataFrame([{**base, "clip_id": f"c{i:02d}"} for i in range(n)])
    selection = pd.DataFrame({"clip_id": clips["clip_id"], "keep": True})
    return clips, source, selection


# ----------------------------------------------------------------------------- client


def test_retry_after_forms():
    assert retry_after_seconds("3") == 3.0
    assert retry_after_seconds("0.5") == 0.5
    assert retry_after_seconds(None) is None and retry_after_seconds("soon") is None
    when = time.strftime("%a, %d %b %Y %H:%M:%S GMT", time.gmtime(time.time() + 30))
    assert 25 <= retry_after_seconds(when) <= 31


def test_redact():
    assert KEY not in redact(f"Authorization: Bearer {KEY}", [KEY])
    assert "sk-abcdef123456" not in redact("key sk-abcdef123456 was wrong")


def test_request_carries_key_frames_and_headers(server, key, clip_videos):
    clips, source, selection = tables(clip_videos)
    out = caption_shard(clips, source, selection, api_config(server))
    assert out["meta"]["counts"] == {"kept": 4, "captioned": 4, "cached": 0, "errors": 1}
    rec = out["clips"]["a_0000"]
    assert rec["caption"] == "A red square moving across a grey background."  # cleaned
    assert rec["raw"].startswith("The video shows")
    assert rec["model"] == "fake/vl-model" and rec["revision"] == "fake/vl-model-2025-01-01"
    assert rec["tokens"] == {"prompt": 1234, "output": 17} and rec["frames"]["n"] == 2
    assert rec["captions"]["source"] == "A given caption."
    assert out["clips"]["bad_0000"]["error"].startswith("decode")
    assert server.count() == 3  # the undecodable clip sends nothing
    req = server.requests[0]
    h = {k.lower(): v for k, v in req["headers"].items()}
    assert h["authorization"] == f"Bearer {KEY}"
    assert h["http-referer"] == "https://example.org/clipsift" and h["x-title"] == "clipsift-tests"
    body = req["json"]
    assert body["model"] == "fake/vl-model" and body["max_tokens"] == 512 and body["seed"] == 0
    assert body["messages"][0]["role"] == "system"
    parts = body["messages"][1]["content"]
    assert parts[0]["type"] == "text"
    images = [p["image_url"]["url"] for p in parts[1:]]
    assert len(images) == 2 and all(u.startswith("data:image/jpeg;base64,") for u in images)
    img = cv2.imdecode(np.frombuffer(base64.b64decode(images[0].split(",", 1)[1]), np.uint8), 1)
    assert img.shape[:2] == (36, 64)  # max_side 64, aspect kept


def test_frames_sent_are_timed_by_the_decoder(server, key, tmp_path):
    """In a shot whose rate drops from 30 to 10 fps after 2 s, the frames sent are spread over
    its time, and the record's frame times are the frames' own (``index / fps`` at the clip's
    average rate put them up to 1.3 s late)."""
    job, real = vfr_caption_clip(tmp_path)
    images, info = ApiCaptioner(api_config(server, frames=4)).frames(job)
    assert len(images) == info["n"] == 4
    even = np.linspace(0.0, real[-1], 4)  # 0, 1.63, 3.27, 4.9 s
    sent = [int(np.argmin(np.abs(np.asarray(real) - t))) for t in info["times"]]
    assert info["times"] == pytest.approx([real[i] for i in sent], abs=1e-3)
    assert np.abs(np.asarray(info["times"]) - even).max() <= 0.05 + 1e-3  # half a 10-fps frame
    assert sent[1] == 49  # 49 / 18 fps would say 2.72 s, not 1.63; by count it sent frame 30
    # the upload endpoint gets the clip as a file whose frames keep their times
    cfg = api_config(server)
    cfg["provider"] = "api_upload"
    clip = UploadCaptioner(cfg).clip_file(job, tmp_path)
    assert [f.time for f in iter_frames(clip)] == pytest.approx(real, abs=1e-3)


def test_text_only(server, key, clip_videos):
    clips, source, selection = tables(clip_videos)
    cfg = api_config(server, frames=0)
    cfg["prompts"]["user"] = "Improve this caption: {source_caption}"
    out = caption_shard(clips, source, selection, cfg)
    assert out["clips"]["a_0000"]["frames"]["n"] == 0
    msgs = [r["json"]["messages"][1]["content"] for r in server.requests]
    assert "Improve this caption: A given caption." in msgs
    assert all(isinstance(m, str) for m in msgs)  # plain text, no image parts


def test_retries_with_retry_after_and_backoff(server, key, clip_videos):
    clips, source, selection = many_clips(clip_videos, 1)
    server.script = ["429", "500", "503"]
    server.retry_after = "1"
    out = caption_shard(clips, source, selection, api_config(server))
    assert out["clips"]["c00"]["error"] is None
    assert server.count() == 4
    gaps = np.diff([r["t"] for r in server.requests])
    # Only lower bounds: a loaded machine makes every gap longer, never shorter.
    assert gaps[0] >= 0.95  # Retry-After: 1 honoured
    assert all(g >= 0.02 for g in gaps[1:])  # exponential backoff with jitter (0.05, 0.1)


def test_timeouts_are_retried(server, key, clip_videos):
    clips, source, selection = many_clips(clip_videos, 1)
    server.script = ["slow"]
    server.slow_seconds = 1.5
    out = caption_shard(clips, source, selection, api_config(server, timeout=0.5))
    assert out["clips"]["c00"]["error"] is None and server.count() == 2


def test_the_timeout_bounds_the_whole_answer(server, key, clip_videos):
    """A server that trickles its answer a byte every 0.2 s (about 10 s in all) never trips a
    per-read timeout; the request's deadline (timeout 1 s) abandons it and the retry answers."""
    clips, source, selection = many_clips(clip_videos, 1)
    server.script = ["trickle"]
    out = caption_shard(clips, source, selection, api_config(server, timeout=1.0))
    rec = out["clips"]["c00"]
    assert rec["error"] is None and rec["caption"] != "late" and server.count() == 2


def test_an_answer_of_another_shape_is_a_clip_error(server, key, clip_videos):
    clips, source, selection = many_clips(clip_videos, 2)
    server.script = ["list"]
    out = caption_shard(clips, source, selection, api_config(server, concurrency=1))
    assert out["clips"]["c00"]["error"].startswith("unexpected answer: ")
    assert out["clips"]["c01"]["error"] is None


def test_exhausted_retries_are_data(server, key, clip_videos):
    clips, source, selection = many_clips(clip_videos, 3)
    server.script = ["500"] * 3  # the first clip's three attempts (concurrency 1)
    cfg = api_config(server, retries=2, concurrency=1)
    out = caption_shard(clips, source, selection, cfg, cache_path=None)
    errs = {cid: r["error"] for cid, r in out["clips"].items()}
    assert errs["c00"].startswith("HTTP 500") and "gave up after 3 attempts" in errs["c00"]
    assert errs["c01"] is None and errs["c02"] is None
    assert out["meta"]["counts"]["errors"] == 1


def test_other_client_errors_fail_the_clip_without_retry_or_key(server, key, clip_videos):
    clips, source, selection = many_clips(clip_videos, 2)
    server.script = ["400"]  # echoes the request headers, Authorization included
    out = caption_shard(clips, source, selection, api_config(server, concurrency=1))
    err = out["clips"]["c00"]["error"]
    assert err.startswith("HTTP 400") and "[redacted]" in err and KEY not in err
    assert server.count() == 2 and out["clips"]["c01"]["error"] is None


def test_concurrency_is_bounded(server, key, clip_videos):
    clips, source, selection = many_clips(clip_videos, 12)
    server.delay = 0.25
    out = caption_shard(clips, source, selection, api_config(server, concurrency=3))
    assert out["meta"]["counts"]["errors"] == 0 and server.count() == 12
    assert server.max_in_flight == 3


def test_401_stops_the_run(server, key, clip_videos, tmp_path):
    clips, source, selection = many_clips(clip_videos, 10)
    server.default = "401"
    cache = tmp_path / "c.jsonl"
    with pytest.raises(AuthError) as err:
        caption_shard(clips, source, selection, api_config(server, concurrency=2), cache_path=cache)
    msg = str(err.value)
    assert "HTTP 401" in msg and "$CLIPSIFT_TEST_KEY" in msg and KEY not in msg
    assert server.count() <= 3  # no retries, and the queued clips were not sent


def test_no_key_sends_no_authorization(server, monkeypatch, clip_videos):
    for name in ("CLIPSIFT_TEST_KEY", "OPENROUTER_API_KEY", "OPENAI_API_KEY"):
        monkeypatch.delenv(name, raising=False)
    clips, source, selection = many_clips(clip_videos, 1)
    caption_shard(clips, source, selection, api_config(server, key_env=None))
    assert "authorization" not in {k.lower() for k in server.requests[0]["headers"]}


def test_default_key_variables(monkeypatch):
    monkeypatch.delenv("OPENROUTER_API_KEY", raising=False)
    monkeypatch.setenv("OPENAI_API_KEY", "sk-openai-xyz123456")
    client = HttpClient({"key_env": None})
    assert client.key_env == "OPENAI_API_KEY"
    monkeypatch.setenv("OPENROUTER_API_KEY", "sk-or-abc123456")
    assert HttpClient({"key_env": None}).key_env == "OPENROUTER_API_KEY"


def test_upload_endpoint(server, key, clip_videos, tmp_path):
    import av

    clips, source, selection = many_clips(clip_videos, 2)
    cfg = api_config(server)
    cfg["provider"] = "api_upload"
    cfg["api"]["upload"] = {
        **cfg["api"]["upload"],
        "url": "/upload",
        "file_field": "video",
        "response_field": "result.text",
        "tokens_field": "result.tokens",
        "fields": {"prompt": "{prompt}", "lang": "en"},
    }
    out = caption_shard(clips, source, selection, cfg)
    rec = out["clips"]["c00"]
    assert rec["error"] is None and rec["caption"].startswith("A red square")
    assert rec["tokens"] == {"output": 17} and rec["frames"]["file_bytes"] > 1000
    req = server.requests[0]
    assert req["path"] == "/v1/upload"
    parts = req["parts"]
    assert parts["lang"]["data"] == b"en" and parts["model"]["data"] == b"fake/vl-model"
    assert parts["prompt"]["data"].decode() == cfg["prompts"]["user"]
    video = parts["video"]
    assert video["filename"] in ("c00.mp4", "c01.mp4") and video["content_type"] == "video/mp4"
    tmp = tmp_path / "uploaded.mp4"
    tmp.write_bytes(video["data"])
    with av.open(str(tmp)) as c:
        n = sum(1 for _ in c.decode(video=0))
    assert n == 20  # the clip's 2 s at 10 fps, frame-accurate
    h = {k.lower(): v for k, v in req["headers"].items()}
    assert h["authorization"] == f"Bearer {KEY}"


def test_rewrite_through_the_api(server, key, clip_videos, tmp_path):
    clips, source, selection = many_clips(clip_videos, 2)
    cfg = api_config(server)
    cfg["rewrite"] = {**cfg["rewrite"], "enabled": True, "provider": "api",
                      "api": {"model": "fake/text-model"}}  # fmt: skip
    out = caption_shard(clips, source, selection, cfg, cache_path=tmp_path / "c.jsonl")
    rw = out["clips"]["c00"]["rewrite"]
    assert rw["error"] is None and rw["model"] == "fake/text-model"
    assert out["clips"]["c00"]["caption"] == rw["caption"]
    texts = [r for r in server.requests if r["json"]["model"] == "fake/text-model"]
    assert len(texts) == 2 and all(
        isinstance(r["json"]["messages"][-1]["content"], str) for r in texts
    )
    assert "Caption: A red square" in texts[0]["json"]["messages"][-1]["content"]
    n = server.count()
    caption_shard(clips, source, selection, cfg, cache_path=tmp_path / "c.jsonl")
    assert server.count() == n  # captions and rewrites from the cache


# ----------------------------------------------------------------------------- interrupted run

WORKER = """
import json, sys
import pandas as pd
from clipsift.captioners.shard import caption_shard

args = json.loads(sys.argv[1])
clips, source, selection = (pd.read_json(args[k], orient="records") for k in ("clips", "source", "selection"))
caption_shard(clips, source, selection, args["cfg"], cache_path=args["cache"])
print("finished")
"""


def test_killed_run_resumes_with_only_the_missing_clips(server, key, clip_videos, tmp_path):
    """The server hangs after 4 answers; the job is killed; the rerun asks only for the rest."""
    clips, source, selection = many_clips(clip_videos, 10)
    paths = {}
    for k, df in {"clips": clips, "source": source, "selection": selection}.items():
        paths[k] = str(tmp_path / f"{k}.json")
        df.to_json(paths[k], orient="records")
    cache = tmp_path / "cache.jsonl"
    cfg = api_config(server, concurrency=2, timeout=60)
    server.hang_after = 4
    proc = subprocess.Popen(
        [sys.executable, "-c", WORKER, json.dumps({**paths, "cfg": cfg, "cache": str(cache)})],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        wait_for(
            lambda: cache.exists() and len(cache.read_text().splitlines()) >= 4,
            proc,
            "4 cached captions",
            log=lambda: proc.stderr.read().decode()[-2000:],
        )
        time.sleep(0.2)  # the job is stuck on the hanging requests
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.wait(timeout=30)
    assert b"finished" not in proc.stdout.read()
    assert len(cache.read_text().splitlines()) == 4
    server.release()  # let the hanging handlers go, then serve normally
    time.sleep(0.1)
    server.hang_after = None
    before = server.count()
    out = caption_shard(clips, source, selection, cfg, cache_path=cache)
    assert server.count() - before == 6
    assert out["meta"]["counts"] == {"kept": 10, "captioned": 6, "cached": 4, "errors": 0}


# ----------------------------------------------------------------------------- the rule


def _rule_config(server, clip_videos, wd: Path, **api) -> dict:
    (wd / "lists").mkdir(parents=True, exist_ok=True)
    (wd / "lists" / "videos.jsonl").write_text(
        json.dumps({"video": str(clip_videos["a"]), "caption": "Two scenes."}) + "\n"
    )
    return caption_run_config(api_config(server, **api))


def _assert_no_key(wd: Path) -> int:
    files = [p for p in wd.rglob("*") if p.is_file()]
    for p in files:
        assert KEY.encode() not in p.read_bytes(), p
    return len(files)


@pytest.mark.slow
def test_caption_rule_with_api_keeps_the_key_out(server, key, clip_videos, tmp_path):
    """Through the real rule: captions from the API; then a 401 stops the job with a message
    naming the variable. The key is in no file of the working directory (results, logs,
    .snakemake metadata), though every request carried it."""
    wd = tmp_path / "wd"
    cfg = _rule_config(server, clip_videos, wd)
    run_snakemake(wd, cfg, dryrun=True)
    (shard,) = plan_shards(wd)
    target = f"results/shards/{shard}/caption.json"
    run_snakemake(wd, cfg, targets=[target])
    data = json.loads((wd / target).read_text())
    assert data["clips"] and all(r["error"] is None for r in data["clips"].values())
    assert data["meta"]["base_url"] == server.url and "key" not in json.dumps(data["meta"]).lower()
    assert all(r["headers"].get("Authorization") == f"Bearer {KEY}" for r in server.requests)

    server.default = "401"
    cfg["caption"]["api"]["model"] = "fake/other-model"  # new params: the rule runs again
    with pytest.raises(Exception):  # noqa: B017 - Snakemake raises its own error types
        run_snakemake(wd, cfg, targets=[target])
    assert not (wd / target).exists()
    log = (wd / f"results/logs/caption/{shard}.log").read_text()
    assert "HTTP 401" in log and "$CLIPSIFT_TEST_KEY" in log and "Traceback" not in log
    assert _assert_no_key(wd) > 10


@pytest.mark.slow
def test_a_caption_job_whose_requests_all_fail_stops(server, key, clip_videos, tmp_path):
    """Every request answered 500: not a shard of empty captions that exits 0, but a failed
    job that says how many failed and why; accepted as it is with max_error_share: 1."""
    wd = tmp_path / "wd"
    cfg = _rule_config(server, clip_videos, wd, retries=0)
    server.default = "500"
    run_snakemake(wd, cfg, dryrun=True)
    (shard,) = plan_shards(wd)
    target = f"results/shards/{shard}/caption.json"
    with pytest.raises(Exception):  # noqa: B017 - Snakemake raises its own error types
        run_snakemake(wd, cfg, targets=[target])
    assert not (wd / target).exists()
    log = (wd / f"results/logs/caption/{shard}.log").read_text()
    assert f"caption of shard {shard}:" in log and "clips failed" in log and "HTTP 500" in log
    cfg["max_error_share"] = 1.0
    run_snakemake(wd, cfg, targets=[target])
    data = json.loads((wd / target).read_text())
    assert data["clips"] and all(r["error"] for r in data["clips"].values())


def test_error_share_bound():
    from clipsift.failures import StageFailed, check_error_share

    check_error_share("x", "s", [None, "boom"], 0.5)  # half: allowed
    check_error_share("x", "s", [], 0.5)  # nothing tried
    with pytest.raises(StageFailed, match=r"2 of 3 clips failed \(67%.*First errors: a; b"):
        check_error_share("x", "s", ["a", None, "b"], 0.5)
    # ingest counts a shard's failed videos from 3 (a last shard may hold one corrupt video)
    check_error_share("ingest", "s", ["bad", "bad"], 0.5, unit="videos", min_failed=3)
    with pytest.raises(StageFailed, match=r"3 of 4 videos failed \(75%.*First errors: bad\. "):
        check_error_share("ingest", "s", ["bad"] * 3 + [None], 0.5, unit="videos", min_failed=3)


@pytest.mark.parametrize("cut, frames", [("reencode", 20), ("copy", 25)])
def test_upload_sends_a_split_copy_only_where_it_holds_just_the_clip(
    server, key, clip_videos, tmp_path, cut, frames
):
    """``split.materialize: copy`` starts a clip file at the keyframe before the clip (here 5
    frames early, in real footage often in the shot before). With ``cut: reencode`` the upload
    captioner sends the clip cut frame-accurately from its source instead; with ``cut: copy``
    (keyframe cuts accepted) it sends the split's file."""
    import av

    clips, source, _ = tables(clip_videos)
    row = {**clips.iloc[2], "clip_id": "b_mid", "start_time": 0.5, "end_time": 2.5, "n_frames": 20}
    made = materialize(pd.DataFrame([row]), tmp_path / "clips",
                       {"materialize": "copy", "crf": 23, "preset": "veryfast"})  # fmt: skip
    copy = made["path"].iloc[0]
    assert copy != str(clip_videos["b"])

    def frames_of(path) -> int:
        with av.open(str(path)) as c:
            return sum(1 for _ in c.decode(video=0))

    assert frames_of(copy) == 25  # from the keyframe at 0 s
    cfg = api_config(server)
    cfg["provider"] = "api_upload"
    cfg["api"]["upload"] = {**cfg["api"]["upload"], "url": "/upload", "file_field": "video",
                            "response_field": "result.text", "cut": cut}  # fmt: skip
    selection = pd.DataFrame({"clip_id": ["b_mid"], "keep": [True]})
    out = caption_shard(made, source, selection, cfg)
    assert out["clips"]["b_mid"]["error"] is None
    sent = tmp_path / "sent.mp4"
    sent.write_bytes(server.requests[0]["parts"]["video"]["data"])
    assert frames_of(sent) == frames
