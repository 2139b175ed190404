"""Trainer manifests: every layout parses and points at files that exist; and the encode stage
end to end through the real rules (Snakemake API), with models loaded by Hub id and revision."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from helpers import all_shards_table, base_config, count_frames, run_snakemake

from clipsift.encoders import tiny
from clipsift.manifests import write_manifests
from clipsift.sample import Segment, render_video, write_corrupt
from clipsift.sources.metalist import list_conversation, list_hunyuan

MANIFESTS = "results/dataset/manifests"


def check_manifests(root: Path, n: int, *, absolute: bool = False) -> dict:
    """Every manifest under ``root`` parses, lists ``n`` clips, and names existing files.
    Returns clip_id -> prompt from the HunyuanVideo JSONs."""

    def resolve(p: str, base: Path) -> Path:
        assert os.path.isabs(p) == absolute, p
        return Path(p) if absolute else (base / p).resolve()

    hy = (root / "hunyuan").resolve()
    lines = (hy / "meta_file.list").read_text().splitlines()
    assert len(lines) == n
    prompts = {}
    for line in lines:
        jpath = resolve(line, hy)
        doc = json.loads(jpath.read_text())
        for key in ("video_id", "latent_shape", "video_path", "prompt", "npy_save_path"):
            assert key in doc, key
        assert doc["raw_caption"]["long caption"] == doc["prompt"]
        npy = resolve(doc["npy_save_path"], jpath.parent)
        assert npy.is_file() and npy.parent == hy and npy.name == f"{doc['video_id']}.npy"
        assert list(np.load(npy).shape) == doc["latent_shape"]
        assert resolve(doc["video_path"], jpath.parent).is_file()
        for key in ("text_npy_path", "text_mask_npy_path"):
            if key in doc:
                assert resolve(doc[key], jpath.parent).is_file()
        prompts[doc["video_id"]] = doc["prompt"]
    conv = json.loads((root / "conversation.json").read_text())
    easy = json.loads((root / "easyanimate.json").read_text())
    assert len(conv) == len(easy) == n
    for c, e in zip(conv, easy, strict=True):
        assert resolve(c["video"], root).is_file() and c["video"] == e["file_path"]
        assert [t["from"] for t in c["conversations"]] == ["human", "gpt"]
        assert c["conversations"][1]["value"] == e["text"] == prompts[c["id"]]
        assert e["type"] == "video"
    ptxt = (root / "prompts.txt").read_text().splitlines()
    vtxt = (root / "videos.txt").read_text().splitlines()
    assert len(ptxt) == len(vtxt) == n
    for p, v, c in zip(ptxt, vtxt, conv, strict=True):
        assert resolve(v, root).is_file() and v == c["video"]
        assert p == " ".join(prompts[c["id"]].split())
    return prompts


# ----------------------------------------------------------------------------- unit


def fake_shard(tmp: Path, shard: str, ids: list[str]) -> tuple[pd.DataFrame, pd.DataFrame]:
    lat_dir, clip_dir = tmp / "shards" / shard / "latents", tmp / "clips" / shard
    lat_dir.mkdir(parents=True)
    clip_dir.mkdir(parents=True)
    lat, files = [], []
    for i, cid in enumerate(ids):
        np.save(lat_dir / f"{cid}.npy", np.full((16, 2, 3, 4), i, np.float32))
        np.save(lat_dir / f"{cid}.text.npy", np.zeros((8, 4), np.float16))
        np.save(lat_dir / f"{cid}.text_mask.npy", np.ones(8, np.uint8))
        (clip_dir / f"{cid}.mp4").write_bytes(b"not really a video")
        status = "error" if cid.endswith("bad") else "ok"
        lat.append(
            {
                "clip_id": cid,
                "video_id": cid.split("_")[0],
                "status": status,
                "latent_path": str(lat_dir / f"{cid}.npy"),
                "text_path": str(lat_dir / f"{cid}.text.npy"),
                "text_mask_path": str(lat_dir / f"{cid}.text_mask.npy"),
                "text_pooled_path": None,
                "latent_shape": [16, 2, 3, 4],
                "prompt": f"line one of {cid}\nline two",
                "prompt_source": "source",
                "frames": 5,
                "sample_fps": 10.0,
                "height": 24,
                "width": 32,
                "bucket": "32x24",
                "vae": "tiny",
                "vae_resolved_revision": "local:0",
            }  # fmt: skip
        )
        files.append(
            {"clip_id": cid, "video_id": cid.split("_")[0],
             "file": os.path.relpath(clip_dir / f"{cid}.mp4", tmp / "dataset"),
             "how": "reencode", "error": None}
        )  # fmt: skip
    return pd.DataFrame(lat), pd.DataFrame(files)


@pytest.mark.parametrize("paths", ["relative", "absolute"])
def test_manifests_from_tables(tmp_path, paths):
    a = fake_shard(tmp_path, "s-0", ["v1_0000", "v1_0001", "v1_bad"])
    b = fake_shard(tmp_path, "s-1", ["v2_0000"])
    out = tmp_path / "dataset" / "manifests"
    counts = write_manifests([a[0], b[0]], [a[1], b[1]], out, {"paths": paths, "link": "hardlink"})
    assert counts == {"clips": 3}
    prompts = check_manifests(out, 3, absolute=paths == "absolute")
    assert set(prompts) == {"v1_0000", "v1_0001", "v2_0000"}  # the failed clip is left out
    # hard links: the manifest's latents are the stage's files
    assert os.path.samefile(out / "hunyuan" / "v2_0000.npy", b[0]["latent_path"][0])
    if paths == "relative":  # the dataset folder moves as a whole
        moved = tmp_path / "moved"
        shutil.copytree(tmp_path / "dataset", moved / "dataset")
        shutil.copytree(tmp_path / "clips", moved / "clips")
        check_manifests(moved / "dataset" / "manifests", 3)
    # the project's own readers take them back
    hy = list_hunyuan(
        {"name": "hy", "type": "hunyuan", "path": str(out / "hunyuan" / "meta_file.list")}, tmp_path
    )
    assert sorted(i.id for i in hy) == ["v1_0000", "v1_0001", "v2_0000"]
    assert all(Path(i.path).is_file() and i.caption.startswith("line one") for i in hy)
    conv = list_conversation(
        {"name": "c", "type": "conversation", "path": str(out / "conversation.json")}, tmp_path
    )
    assert all(Path(i.path).is_file() for i in conv) and len(conv) == 3


def test_manifests_with_nothing_encoded(tmp_path):
    out = tmp_path / "m"
    assert write_manifests([], [], out, {})["clips"] == 0
    check_manifests(out, 0)


def hub_repo(cache: Path, repo_id: str, folder: Path, commit: str) -> None:
    """``folder`` as Hub model repo ``repo_id`` at ``commit`` (= main) in a huggingface_hub cache."""
    root = cache / ("models--" + repo_id.replace("/", "--"))
    shutil.copytree(folder, root / "snapshots" / commit)
    (root / "refs").mkdir(parents=True, exist_ok=True)
    (root / "refs" / "main").write_text(commit)


@pytest.mark.slow
def test_encode_and_manifests_through_snakemake(tmp_path, monkeypatch):
    """ingest -> ... -> select -> encode -> export_clips -> manifests on generated videos, with a
    tiny HunyuanVideo VAE and T5 encoder loaded by repo id and pinned commit from a Hub cache.
    One source video breaks after selection: its clip gets an error at encode time, the shard
    finishes, and the manifests leave it out."""
    videos = tmp_path / "videos"
    # landscape with a hard cut (2 clips), portrait by rotation, pillarboxed 4:3 (square picture)
    render_video(
        videos / "land.mp4",
        [Segment(25, seed=1, pan=(1, 0)), Segment(25, seed=2)],
        fps=10,
        size=(160, 96),
    )
    render_video(
        videos / "port.mp4", [Segment(30, seed=3, pan=(0, 1))], fps=10, size=(96, 160), rotation=90
    )
    render_video(
        videos / "pillar.mp4",
        [Segment(30, seed=4, pan=(1, 1), letterbox=(0, 16))],
        fps=10,
        size=(128, 96),
    )
    render_video(videos / "gone.mp4", [Segment(25, seed=5)], fps=10, size=(96, 96))
    models, cache = tmp_path / "models", tmp_path / "hub"
    vae_commit, text_commit = "a" * 40, "b" * 40
    tiny.build_vae("hunyuan", models / "vae_repo")
    tiny.build_text_encoder("t5", models / "t5_repo", max_length=12)
    hub_repo(cache, "tiny-org/tiny-hunyuan", models / "vae_repo", vae_commit)
    hub_repo(cache, "tiny-org/tiny-t5", models / "t5_repo", text_commit)
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    encode = {
        "enabled": True,
        "device": "cpu",
        "batch_size": 2,
        "vae": {"name": "hunyuan", "model": "tiny-org/tiny-hunyuan", "revision": vae_commit, "subfolder": "vae", "dtype": "float32"},
        "frames": {"count": 10, "stride": 2, "skip_start": 1, "too_short": "drop"},
        "resolution": {"bucket": 64, "aspect_ratios": ["16:9", "9:16", "1:1"]},
        "text_encoder": {"name": "t5", "model": "tiny-org/tiny-t5", "revision": text_commit, "max_length": 12},
    }  # fmt: skip
    cfg = base_config(
        [{"name": "vids", "type": "folder", "path": str(videos)}],
        shard_size=4,  # one shard: fewer jobs, the same rules
        filters={"ocr": {"enabled": False}, "flash": {"enabled": False}},
        scorers={"motion": {"enabled": False}},  # technical stays: its crop is used
        select={"thresholds": {}},
        encode=encode,
    )
    wd = tmp_path / "wd"
    run = run_snakemake(wd, cfg, targets=["results/shards/vids-00000/selection.parquet"])
    assert "encode" not in run.rules
    sel = all_shards_table(wd, "selection.parquet")
    clips = all_shards_table(wd, "clips.parquet").set_index("clip_id")
    broken = clips.index[clips["video_id"] == "vids-gone"][0]
    # the video breaks after selection (a disk error, not an edit: the changed-source check,
    # which would stop the run and ask to re-ingest it, is off to let it reach the encode)
    write_corrupt(videos / "gone.mp4", "truncated", source=videos / "land.mp4")
    cfg["ingest"] = {"check_sources": False}
    run = run_snakemake(wd, cfg, targets=[MANIFESTS])
    assert run.rules["encode"] == run.rules["manifests"] == 1
    # the clip files: rule export_clips (rules/export.smk) when present, else dataset_clips
    assert run.rules["export_clips"] == 1

    lat = all_shards_table(wd, "latents.parquet").set_index("clip_id")
    assert set(lat.index) == set(sel.loc[sel["keep"], "clip_id"]) and len(lat) == 5
    bad = lat.loc[broken]
    assert bad["status"] == "error" and bad["reason"] == "decode_failed" and bad["error"]
    lat = lat.drop(index=broken)
    assert (lat["status"] == "ok").all()
    assert set(lat["vae_resolved_revision"]) == {vae_commit}
    assert set(lat["text_encoder_revision"]) == {text_commit}
    assert set(lat["frames"]) == {9} and set(lat["stride"]) == {2.0}
    ratio = lat.groupby("video_id")["bucket_ratio"].agg(set).to_dict()
    assert ratio == {"vids-land": {"16:9"}, "vids-port": {"9:16"}, "vids-pillar": {"1:1"}}
    pil = lat[lat["video_id"] == "vids-pillar"].iloc[0]
    assert pil["border_crop"]  # technical.crop from scores.parquet was applied
    for row in lat.to_dict("records"):
        shape = tuple(row["latent_shape"])
        assert shape == (16, 3, int(row["height"]) // 8, int(row["width"]) // 8)
        assert np.load(wd / row["latent_path"]).shape == shape
        doc = json.loads((wd / row["json_path"]).read_text())
        assert doc["vae"]["id"] == "tiny-org/tiny-hunyuan"
        assert doc["vae"]["normalization"] == {
            "kind": "scaling_factor", "formula": "z * scaling_factor", "scaling_factor": 0.476986,
        }  # fmt: skip
        assert doc["prompt_source"] == "empty"  # no caption stage, no source captions
    prompts = check_manifests(wd / MANIFESTS, 4)
    assert set(prompts) == set(lat.index) and broken not in prompts
    for cid in lat.index:  # frame-accurate clip files
        files = list((wd / "results/dataset/clips").glob(f"*/{cid}.mp4"))
        assert len(files) == 1 and count_frames(files[0]) == clips.loc[cid, "n_frames"]
    assert not list((wd / "results/dataset").rglob(f"{broken}*"))


def test_empty_prompts_are_said_or_stop(tmp_path, caplog):
    from clipsift.manifests import EmptyPrompts

    lat, files = fake_shard(tmp_path, "s-0", ["v1_0000", "v1_0001"])
    lat.loc[0, "prompt"] = ""  # no caption and no source caption
    with caplog.at_level("WARNING"):
        counts = write_manifests([lat], [files], tmp_path / "m1", {})
    assert counts == {"clips": 2, "empty_prompts": 1}
    assert "1 of 2 manifest entries have an empty prompt" in caplog.text
    with pytest.raises(EmptyPrompts, match="empty_prompts: allow"):
        write_manifests([lat], [files], tmp_path / "m2", {"empty_prompts": "error"})
    caplog.clear()
    assert write_manifests([lat], [files], tmp_path / "m3", {"empty_prompts": "allow"})
    assert "empty prompt" not in caplog.text
