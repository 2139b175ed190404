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
from fakes import tiny_vae as tiny
from helpers import all_shards_table, base_config, count_frames, run_snakemake

from clipsift.manifests import write_manifests
from clipsift.sample import Segment, render_video, write_corrupt
from clipsift.sources.metalist import list_conversation, list_hunyuan

MANIFESTS = "results/dataset/manifests"


def hunyuan_i2v_loader(json_dir: Path, trainer_dir: Path, sample_n_frames: int, scaling_factor):
    """HunyuanVideo-I2V's reading steps (hyvideo/dataset/video_loader.py, VideoDataset, at
    e44c1d95): every file of the JSON folder opened as JSON (utf-8-sig); latent_shape[3] and
    [4]; np.load(npy_save_path) from the trainer's working directory; squeeze(0); the first
    (sample_n_frames - 1) // 4 + 1 latent frames; then train_utils.prepare_model_inputs'
    ``latents * vae.config.scaling_factor``. Returns video_id -> (prompt, model-ready latents)."""
    out = {}
    here = os.getcwd()
    os.chdir(trainer_dir)
    try:
        for name in os.listdir(json_dir):
            with open(f"{json_dir}/{name}", encoding="utf-8-sig") as fh:
                data = json.load(fh)
            shape = data.get("latent_shape")
            height, width = shape[3], shape[4]  # an IndexError on a 4-d shape
            latents = np.load(data.get("npy_save_path")).squeeze(0)
            assert latents.shape[-2:] == (height, width)
            n_lat = (sample_n_frames - 1) // 4 + 1
            assert latents.shape[1] >= n_lat, "the loader raises and skips the clip"
            latents = latents[:, :n_lat]
            out[data.get("video_id")] = (data.get("prompt"), latents * scaling_factor)
    finally:
        os.chdir(here)
    return out


def easyanimate_loader(meta: Path, data_root: Path) -> list[tuple[Path, str]]:
    """EasyAnimate's ImageVideoDataset (easyanimate/data/dataset_image_video.py, at c2a70d17):
    json.load of the list; os.path.join(train_data_dir, file_path); text; type (default image:
    only "video" entries are videos)."""
    rows = json.load(open(meta))  # noqa: SIM115
    out = []
    for row in rows:
        assert row.get("type", "image") == "video"
        out.append((Path(os.path.join(data_root, row["file_path"])), row["text"]))
    return out


def check_manifests(root: Path, n: int, *, absolute: bool = False, trainer_dir=None) -> dict:
    """Every manifest under ``root`` parses, lists ``n`` clips, and names existing files, read
    the way each trainer reads it. Returns clip_id -> prompt from the HunyuanVideo JSONs."""

    def resolve(p: str, base: Path) -> Path:
        assert os.path.isabs(p) == absolute, p
        return Path(p) if absolute else (base / p).resolve()

    trainer = Path(trainer_dir or root.parent)  # where the cwd-reading trainers run
    hy = (root / "hunyuan").resolve()
    lines = (hy / "meta_file.list").read_text().splitlines()
    assert len(lines) == n
    prompts = {}
    for line in lines:  # hyvae_extract: one JSON path per line, opened from its working directory
        jpath = resolve(line, trainer)
        doc = json.loads(jpath.read_text())
        for key in ("video_id", "latent_shape", "video_path", "prompt", "npy_save_path"):
            assert key in doc, key
        assert doc["raw_caption"]["long caption"] == doc["prompt"]
        npy = resolve(doc["npy_save_path"], trainer)
        assert npy.is_file() and npy.parent == hy and npy.name == f"{doc['video_id']}.npy"
        assert list(np.load(npy).shape) == doc["latent_shape"] and len(doc["latent_shape"]) == 5
        assert doc["latent_shape"][0] == 1
        assert resolve(doc["video_path"], trainer).is_file()
        for key in ("text_npy_path", "text_mask_npy_path"):
            if key in doc:
                assert resolve(doc[key], trainer).is_file()
        prompts[doc["video_id"]] = doc["prompt"]
    assert sorted(os.listdir(hy / "json_path")) == sorted(f"{c}.json" for c in prompts)
    conv = json.loads((root / "conversation.json").read_text())
    easy = json.loads((root / "easyanimate.json").read_text())
    assert len(conv) == len(easy) == n
    for c, e in zip(conv, easy, strict=True):
        assert resolve(c["video"], root).is_file() and c["video"] == e["file_path"]
        assert [t["from"] for t in c["conversations"]] == ["human", "gpt"]
        assert c["conversations"][1]["value"] == e["text"] == prompts[c["id"]]
    for path, text in easyanimate_loader(root / "easyanimate.json", root):
        assert path.is_file() and text in prompts.values()
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
                "vae_family": "hunyuan",
                "vae_resolved_revision": "local:0",
                "latent_dtype": "float32",
                "normalization": json.dumps({"kind": "scaling_factor", "scaling_factor": 0.5}),
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
    # HunyuanVideo-I2V's loader, run from the dataset folder: the latents it trains on are the
    # stage's normalised latents (scaled once, by the trainer), shaped [C, F', H', W']
    got = hunyuan_i2v_loader(out / "hunyuan" / "json_path", tmp_path / "dataset", 5, 0.5)
    for cid in prompts:
        stored = np.load(next(tmp_path.glob(f"shards/*/latents/{cid}.npy")))
        np.testing.assert_allclose(got[cid][1], stored[:, :2], rtol=1e-6)
        assert got[cid][0] == prompts[cid]
    # text embeddings are linked, not copied
    assert os.path.samefile(out / "hunyuan" / "v2_0000.text.npy", b[0]["text_path"][0])
    if paths == "relative":  # the dataset folder moves as a whole
        moved = tmp_path / "moved"
        shutil.copytree(tmp_path / "dataset", moved / "dataset")
        shutil.copytree(tmp_path / "clips", moved / "clips")
        check_manifests(moved / "dataset" / "manifests", 3)
    # the project's own readers take them back (base_dir: where HunyuanVideo's tools run)
    hy = list_hunyuan(
        {"name": "hy", "type": "hunyuan", "path": str(out / "hunyuan" / "meta_file.list"),
         "base_dir": str(tmp_path / "dataset")},
        tmp_path,
    )  # fmt: skip
    assert sorted(i.id for i in hy) == ["v1_0000", "v1_0001", "v2_0000"]
    assert all(Path(i.path).is_file() and i.caption.startswith("line one") for i in hy)
    conv = list_conversation(
        {"name": "c", "type": "conversation", "path": str(out / "conversation.json")}, tmp_path
    )
    assert all(Path(i.path).is_file() for i in conv) and len(conv) == 3


def test_manifests_for_a_trainer_elsewhere(tmp_path):
    """trainer_dir: the HunyuanVideo paths are relative to where its trainer runs; the
    root-joined lists stay relative to their own folder."""
    lat, files = fake_shard(tmp_path, "s-0", ["v1_0000"])
    out = tmp_path / "dataset" / "manifests"
    trainer = tmp_path / "code" / "HunyuanVideo-I2V"
    trainer.mkdir(parents=True)
    write_manifests([lat], [files], out, {"trainer_dir": str(trainer)})
    check_manifests(out, 1, trainer_dir=trainer)
    doc = json.loads((out / "hunyuan" / "json_path" / "v1_0000.json").read_text())
    assert doc["npy_save_path"] == "../../dataset/manifests/hunyuan/v1_0000.npy"
    assert set(hunyuan_i2v_loader(out / "hunyuan" / "json_path", trainer, 5, 0.5)) == {"v1_0000"}


def omnivideo_loaders(list_file: Path, trainer_dir: Path) -> dict:
    """OmniVideo's reading steps (previous_version/Omni-Video1 at adcee0a4): step 2
    (tools/data_prepare/ar_feature_extract.py) strips each line of its --data-file and
    pickle.loads it from its working directory, reads prompt, video_path, latent_feature,
    text_emb, frame_num, and renames them as the training loader
    (nets/omni/datasets/omnivideo_dataset_patched.py, OmniVideoDataset) reads them
    (t5_emb unwrapped from its one-element list into text_emb). Returns name -> sample."""
    import pickle

    import torch

    out = {}
    here = os.getcwd()
    os.chdir(trainer_dir)
    try:
        for line in open(list_file):  # noqa: SIM115
            path = line.strip(" \t\n")
            data = pickle.load(open(path, mode="rb"))  # noqa: SIM115
            saved = {"video_path_tgt": data["video_path"], "prompt": data["prompt"],
                     "latent_feature_tgt": data["latent_feature"], "t5_emb": data["text_emb"],
                     "frame_num": data["frame_num"]}  # fmt: skip
            assert os.path.isfile(saved["video_path_tgt"])
            emb = saved.pop("t5_emb")
            saved["text_emb"] = emb[0] if isinstance(emb, list) and len(emb) == 1 else emb
            assert isinstance(saved["latent_feature_tgt"], torch.Tensor)
            assert saved["latent_feature_tgt"].dtype == torch.float32
            assert saved["text_emb"].dtype == torch.bfloat16 and saved["text_emb"].ndim == 2
            out[os.path.splitext(os.path.basename(path))[0]] = saved
    finally:
        os.chdir(here)
    return out


def test_omnivideo_features(tmp_path):
    """Step-1 pickles of Wan 2.1 latents and umT5 embeddings, read as OmniVideo's step 2 and
    its training loader read them; a config that cannot make them stops at parse time."""
    from clipsift.manifests import ManifestConfigError, check_config

    lat, files = fake_shard(tmp_path, "s-0", ["v1_0000", "v1_0001"])
    lat["vae_family"] = "wan2_1"
    lat["frames"] = 5
    for path in lat["text_mask_path"]:
        np.save(path, np.array([1, 1, 1, 0, 0, 0, 0, 0], np.uint8))  # 3 tokens
    out = tmp_path / "dataset" / "manifests"
    counts = write_manifests([lat], [files], out, {"formats": ["omnivideo"]})
    assert counts == {"clips": 2, "omnivideo.pairs": 2}
    assert sorted(p.name for p in out.iterdir()) == ["omnivideo"]
    got = omnivideo_loaders(out / "omnivideo" / "features.txt", tmp_path / "dataset")
    assert set(got) == {"v1_0000_features", "v1_0001_features"}
    for cid, row in lat.set_index("clip_id").iterrows():
        sample = got[f"{cid}_features"]
        np.testing.assert_array_equal(
            sample["latent_feature_tgt"].numpy(), np.load(row["latent_path"])
        )
        assert tuple(sample["text_emb"].shape) == (3, 4)  # cut to the prompt's tokens
        assert sample["prompt"] == row["prompt"] and sample["frame_num"] == 5

    ok = {"encode": {"enabled": True, "vae": {"name": "wan2_1"},
                     "text_encoder": {"name": "umt5", "enabled": True},
                     "manifests": {"formats": ["omnivideo", "text"]}}}  # fmt: skip
    check_config(ok)
    bad = json.loads(json.dumps(ok))
    bad["encode"]["vae"]["name"] = "hunyuan"
    with pytest.raises(ManifestConfigError, match="encode.vae.name must be wan2_1"):
        check_config(bad)


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
    # HunyuanVideo-I2V's loader from the dataset folder, scaling by the VAE's own config
    vae_cfg = json.loads((models / "vae_repo" / "vae" / "config.json").read_text())
    got = hunyuan_i2v_loader(
        wd / MANIFESTS / "hunyuan" / "json_path",
        wd / "results/dataset",
        9,
        vae_cfg["scaling_factor"],
    )
    assert set(got) == set(lat.index)
    for cid, (_, z) in got.items():
        np.testing.assert_allclose(
            z, np.load(wd / lat.loc[cid, "latent_path"]), rtol=1e-5, atol=1e-6
        )

    # Wan 2.1 + umT5 with OmniVideo's features: encode and manifests run again, nothing before
    tiny.build_vae("wan2_1", models / "wan_repo")
    tiny.build_text_encoder("umt5", models / "umt5_repo", max_length=12)
    cfg["encode"] |= {
        "vae": {"name": "wan2_1", "model": str(models / "wan_repo"), "subfolder": "vae", "dtype": "float32"},
        "text_encoder": {"name": "umt5", "model": str(models / "umt5_repo"), "max_length": 12},
        "manifests": {"formats": ["omnivideo", "hunyuan"]},
    }  # fmt: skip
    run = run_snakemake(wd, cfg, targets=[MANIFESTS])
    assert set(run.rules) == {"encode", "manifests"}, run.rules
    samples = omnivideo_loaders(
        wd / MANIFESTS / "omnivideo" / "features.txt", wd / "results/dataset"
    )
    lat = all_shards_table(wd, "latents.parquet").set_index("clip_id")
    assert set(samples) == {f"{c}_features" for c in lat.index[lat["status"] == "ok"]}
    for cid in lat.index[lat["status"] == "ok"]:
        feat = samples[f"{cid}_features"]["latent_feature_tgt"].numpy()
        np.testing.assert_array_equal(feat, np.load(wd / lat.loc[cid, "latent_path"]))


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


def test_the_hunyuan_manifest_says_how_its_family_normalises_the_latents():
    """The manifest's latents are the VAE's own; its note said "multiplies by the VAE's
    scaling_factor" for a Wan VAE too, which has none (tryout 17)."""
    from clipsift.manifests.hunyuan import latents_note

    assert "scaling_factor" in latents_note({"kind": "scaling_factor", "scaling_factor": 0.476})
    wan = {"kind": "per_channel_mean_std", "latents_mean": [0.0], "latents_std": [1.0]}
    assert "latents_mean" in latents_note(json.dumps(wan))
    assert "scaling_factor" not in latents_note(wan)
    assert latents_note(None) == "as the VAE gives them"
