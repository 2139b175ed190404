"""Issue 4 acceptance: learned scores (LAION aesthetic v2, aesthetic-predictor v2.5, CLIP-IQA)
and near-duplicate removal, on tiny random models saved the way the real ones are published,
through the real loading code and the real rules."""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd
import pytest
import torch
from fakes.tiny_clip import (
    fake_hub_repo,
    head_state_dict,
    save_head,
    save_tiny_clip,
    save_tiny_siglip,
)
from helpers import base_config, run_snakemake, shard_table

from clipsift.dedup import read_embeddings
from clipsift.sample import Segment, render_video, write_corrupt
from clipsift.scorers import ShardInputs, quality, run_scorer
from clipsift.scorers import aesthetic as aes

# ----------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """Tiny CLIP (vision + text + tokenizer + processor), tiny SigLIP vision, and both heads."""
    root = tmp_path_factory.mktemp("tiny_models")
    return {
        "clip": save_tiny_clip(root / "clip", seed=0),
        "siglip": save_tiny_siglip(root / "siglip", seed=1),
        "laion": save_head(root / "laion.pth", "aesthetic", 16, seed=2),
        "linear": save_head(root / "linear.pth", "aesthetic_linear", 16, seed=4),
        "v25": save_head(root / "v25.pth", "aesthetic_v2_5", 32, seed=3),
    }


def clip_row(clip_id, path, size, start=0.0, end=2.0, fps=10.0):
    return {
        "clip_id": clip_id, "video_id": clip_id.rsplit("_", 1)[0], "start_time": start,
        "end_time": end, "fps": fps, "width": size[0], "height": size[1],
        "source_path": str(path), "error": None, "split_reason": None,
    }  # fmt: skip


@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    """Four clips of three tiny videos (two clips from one video) as a shard's clips table."""
    root = tmp_path_factory.mktemp("learned_videos")
    render_video(
        root / "a.mp4", [Segment(15, seed=41), Segment(15, seed=42)], fps=10, size=(320, 180)
    )
    render_video(root / "b.mp4", [Segment(20, seed=43, pan=(1, 0))], fps=10, size=(256, 144))
    render_video(root / "c.mp4", [Segment(12, seed=44)], fps=10, size=(192, 108))
    rows = [
        clip_row("a_0000", root / "a.mp4", (320, 180), 0.0, 1.5),
        clip_row("a_0001", root / "a.mp4", (320, 180), 1.5, 3.0),
        clip_row("b_0000", root / "b.mp4", (256, 144), 0.0, 2.0),
        clip_row("c_0000", root / "c.mp4", (192, 108), 0.0, 1.2),
    ]
    return pd.DataFrame(rows), root


def model_cfg(kind, tiny, **over):
    if kind == "aesthetic":
        cfg = {"model": str(tiny["clip"]), "head_path": str(tiny["laion"])}
    elif kind == "aesthetic_linear":
        cfg = {"model": str(tiny["clip"]), "head_path": str(tiny["linear"])}
    elif kind == "aesthetic_v2_5":
        cfg = {"model": str(tiny["siglip"]), "head_path": str(tiny["v25"])}
    else:
        cfg = {"model": str(tiny["clip"])}
    return {"frames": 3, "batch_size": 5, "device": "cpu", **cfg, **over}


def score(kind, clips_df, cfg, emb_path=None):
    inputs = ShardInputs(
        clips_df, pd.DataFrame(), outputs={"embeddings": emb_path} if emb_path else {}
    )
    return run_scorer(kind, inputs, cfg)


# ----------------------------------------------------------------------------- heads


def test_heads_have_the_published_key_layouts():
    lin = ["0", "2", "4", "6", "7"]
    assert aes.expected_keys("aesthetic") == [
        f"layers.{i}.{p}" for i in lin for p in ("weight", "bias")
    ]
    lin = ["0", "2", "4", "6", "8"]
    assert aes.expected_keys("aesthetic_v2_5") == [
        f"scoring_head.{i}.{p}" for i in lin for p in ("weight", "bias")
    ]
    # LAION-Aesthetics V1 (sa_0_4_vit_l_14_linear.pth): one nn.Linear(768, 1), loaded as its
    # README's get_aesthetic_model loads it (m.load_state_dict(torch.load(path)))
    assert aes.expected_keys("aesthetic_linear") == ["weight", "bias"]
    published = torch.nn.Linear(768, 1).state_dict()
    head = aes.build_head("aesthetic_linear", published)
    assert tuple(head.weight.shape) == (1, 768)
    x = torch.nn.functional.normalize(torch.randn(3, 768), dim=-1)
    with torch.no_grad():
        ref = torch.nn.Linear(768, 1)
        ref.load_state_dict(published)
        assert torch.equal(head(x), ref(x))
    with pytest.raises(RuntimeError, match="expected the keys"):
        aes.build_head("aesthetic_linear", aes.HEADS["aesthetic"](768).state_dict())
    # the real sizes: 768-1024-128-64-16-1 and 1152-1024-128-64-16-1
    for kind, dim in (("aesthetic", 768), ("aesthetic_v2_5", 1152)):
        head = aes.build_head(kind, aes.HEADS[kind](dim).state_dict())
        shapes = [tuple(v.shape) for k, v in head.state_dict().items() if k.endswith("weight")]
        assert shapes == [(1024, dim), (128, 1024), (64, 128), (16, 64), (1, 16)]


def test_head_loading_is_strict_and_accepts_a_bare_sequential():
    sd = head_state_dict("aesthetic", 16)
    bare = {k.removeprefix("layers."): v for k, v in sd.items()}
    x = torch.nn.functional.normalize(torch.randn(4, 16), dim=-1)
    with torch.no_grad():
        assert torch.equal(aes.build_head("aesthetic", sd)(x), aes.build_head("aesthetic", bare)(x))
        out = aes.build_head("aesthetic", sd)(x)
    assert ((out > 3.4) & (out < 7.6)).all()  # the test head maps unit vectors to 5.5 +- 2
    with pytest.raises(RuntimeError, match="expected the keys"):
        aes.build_head("aesthetic_v2_5", sd)  # a v2 file given to v2.5
    broken = dict(sd)
    broken.pop("layers.7.bias")
    with pytest.raises(RuntimeError, match="does not match the published layout"):
        aes.build_head("aesthetic", broken)


def test_head_and_model_sizes_must_agree(tiny, tmp_path):
    wide = save_head(tmp_path / "wide.pth", "aesthetic", 32)
    with pytest.raises(RuntimeError, match="16-d embeddings but the head takes 32"):
        aes.load_model("aesthetic", {"model": str(tiny["clip"]), "head_path": str(wide)})


# ----------------------------------------------------------------------------- scores


@pytest.mark.parametrize("kind", ["aesthetic", "aesthetic_linear", "aesthetic_v2_5"])
def test_aesthetic_scores_shape_range_embeddings_and_determinism(kind, tiny, clips, tmp_path):
    df, _ = clips
    cfg = model_cfg(kind, tiny)
    first = score(kind, df, cfg, tmp_path / "e1.npy")
    again = score(kind, df, cfg, tmp_path / "e2.npy")  # a fresh load and run
    pd.testing.assert_frame_equal(first, again)
    assert list(first["clip_id"]) == list(df["clip_id"]) and first["error"].isna().all()
    assert first["score"].between(1, 10).all()  # the heads' 1-10 scale (test head: 5.5 +- 2)
    assert (first["score_min"] <= first["score"]).all() and (
        first["score"] <= first["score_max"]
    ).all()
    np.testing.assert_allclose(first["score"], first["score_mean"])  # reduce: mean
    assert (first["n_frames"] == 3).all()
    assert (
        first["model"]
        .str.startswith(f"{tiny['siglip' if kind == 'aesthetic_v2_5' else 'clip']}@local:")
        .all()
    )
    assert first["head"].str.startswith("sha256:").all()
    ids, emb = read_embeddings(tmp_path / "e1.npy")
    assert list(ids) == list(df["clip_id"])
    assert emb.shape == (4, 32 if kind == "aesthetic_v2_5" else 16) and emb.dtype == np.float16
    np.testing.assert_allclose(np.linalg.norm(emb.astype(np.float32), axis=1), 1, atol=2e-3)
    np.testing.assert_array_equal(emb, read_embeddings(tmp_path / "e2.npy")[1])
    worst = score(kind, df, {**cfg, "reduce": "min", "frames": 2})
    np.testing.assert_allclose(worst["score"], worst["score_min"])
    assert (worst["n_frames"] == 2).all()


def test_clip_iqa_pairs_are_the_softmax_of_clips_own_logits(tiny, clips, tmp_path):
    df, root = clips
    cfg = model_cfg("clip_iqa", tiny)
    first = score("clip_iqa", df, cfg, tmp_path / "e.npy")
    pd.testing.assert_frame_equal(first, score("clip_iqa", df, cfg))
    cols = list(quality.PROMPTS)
    assert cols == ["quality", "sharp", "clean", "bright", "colorful", "contrast"]
    vals = first[cols].to_numpy()
    assert ((vals > 0) & (vals < 1)).all() and first["error"].isna().all()
    # one frame by hand: CLIPModel's own logits_per_image over each pair, softmaxed
    model = quality.load_model(cfg)
    from clipsift.io.decode import read_frames_at

    frame = read_frames_at(root / "b.mp4", [1.0])[0]
    pixels = model.preprocess([frame])
    texts = [t for pair in quality.PROMPTS.values() for t in pair]
    tok = __import__("transformers").AutoTokenizer.from_pretrained(tiny["clip"])(
        texts, padding=True, return_tensors="pt"
    )
    with torch.no_grad():
        logits = model.model(pixel_values=pixels, **tok).logits_per_image[0]
    ref = logits.view(-1, 2).softmax(-1)[:, 0].numpy()
    np.testing.assert_allclose(model.forward(pixels)[0, : len(cols)], ref, rtol=1e-5, atol=1e-6)
    custom = score("clip_iqa", df.iloc[:1], {**cfg, "prompts": {"sunny": ["Sunny.", "Rainy."]}})
    assert "sunny" in custom and "quality" not in custom


def test_undecodable_clips_get_an_error_and_the_shard_finishes(tiny, clips, tmp_path):
    df, root = clips
    write_corrupt(tmp_path / "bad.mp4", "truncated", source=root / "b.mp4")
    bad = pd.DataFrame(
        [
            clip_row("bad_0000", tmp_path / "bad.mp4", (256, 144)),
            clip_row("gone_0000", tmp_path / "missing.mp4", (256, 144)),
        ]
    )
    mixed = pd.concat([df.iloc[:2], bad, df.iloc[2:]], ignore_index=True)
    out = score("aesthetic", mixed, model_cfg("aesthetic", tiny), tmp_path / "e.npy").set_index(
        "clip_id"
    )
    assert out.loc["bad_0000", "error"].startswith("frames: ")
    assert out.loc["gone_0000", "error"].startswith("frames: ")
    assert np.isnan(out.loc[["bad_0000", "gone_0000"], "score"]).all()
    good = out.drop(["bad_0000", "gone_0000"])
    assert good["error"].isna().all() and good["score"].notna().all()
    assert set(read_embeddings(tmp_path / "e.npy")[0]) == set(good.index)


class OomOnce:
    """Wraps a vision tower: its first call raises CUDA's out-of-memory error."""

    def __init__(self, module):
        self.module, self.calls = module, []

    def __call__(self, **kw):
        self.calls.append(len(kw["pixel_values"]))
        if len(self.calls) == 1:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 GiB")
        return self.module(**kw)


def test_out_of_memory_on_the_first_batch_halves_it_and_scores_are_identical(tiny, clips, caplog):
    df, _ = clips
    cfg = model_cfg("aesthetic", tiny, batch_size=8, frames=4)  # 16 frames: batches of 8
    model = aes.load_model("aesthetic", cfg)
    ref = aes.score_clips(df, model, cfg)
    model.vision = OomOnce(model.vision)
    with caplog.at_level(logging.INFO):
        got = aes.score_clips(df, model, cfg)
    assert model.vision.calls[:2] == [8, 4]  # the failed batch, retried in halves
    assert sum(model.vision.calls[1:]) == 16
    assert "out of memory: batch size now 4" in caplog.text
    assert "batch size 4, 1 OOM" in caplog.text
    pd.testing.assert_frame_equal(got, ref, check_exact=False, rtol=1e-5)


# ----------------------------------------------------------------------------- the pipeline


@pytest.fixture(scope="module")
def pipeline(tiny, tmp_path_factory):
    """The real workflow with the three learned scorers and near-duplicate removal, on five
    videos in three shards of two: ``a_orig`` and its re-encode ``c_copy`` (smaller, crf 38)
    land in different shards, and a corrupt video makes a shard without a usable clip. The LAION scorer loads its model by Hub id and commit and its head by
    repo/filename/revision from an offline Hub cache; the others from local folders and files."""
    work = tmp_path_factory.mktemp("learned_pipeline")
    vids = work / "videos"
    pan = Segment(20, seed=31, pan=(1.5, 0))
    render_video(vids / "a_orig.mp4", [pan], fps=10, size=(320, 180), crf=18)
    render_video(vids / "b_other.mp4", [Segment(20, seed=32, pan=(0, 1))], fps=10, size=(320, 180))
    render_video(vids / "c_copy.mp4", [pan], fps=10, size=(224, 126), crf=38)
    render_video(vids / "d_other.mp4", [Segment(25, seed=34)], fps=10, size=(256, 144))
    write_corrupt(vids / "e_corrupt.mp4", "truncated", source=vids / "d_other.mp4")  # own shard
    cache = work / "hub"
    commit = fake_hub_repo(cache, "test-org/tiny-clip", tiny["clip"], commit="c" * 40)
    fake_hub_repo(cache, "test-org/tiny-head", tiny["laion"], commit="d" * 40)
    cfg = base_config(
        [{"name": "v", "type": "folder", "path": str(vids)}],
        shard_size=2,
        split={"min_seconds": 1.0},
        filters={"ocr": {"enabled": False}, "flash": {"enabled": False}},
        scorers={
            "motion": {"enabled": False},  # fewer jobs: only the learned scorers
            "technical": {"enabled": False},
            "aesthetic": {
                "enabled": True,
                "model": "test-org/tiny-clip",
                "revision": commit,
                "head": {"repo": "test-org/tiny-head", "filename": "laion.pth", "revision": "main"},
                "frames": 3,
                "batch_size": 4,
            },
            "aesthetic_v2_5": {
                "enabled": True,
                "model": str(tiny["siglip"]),
                "head_path": str(tiny["v25"]),
                "reduce": "min",
            },
            "clip_iqa": {"enabled": True, "model": str(tiny["clip"])},
        },
        near_duplicates={"enabled": True, "embeddings": "aesthetic", "threshold": 0.98},
        select={"thresholds": {}},
    )
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("HF_HUB_OFFLINE", "1")
        mp.setenv("HF_HUB_CACHE", str(cache))
        first = run_snakemake(work, cfg)
        scores = {
            s: shard_table(work, s, "scores.parquet") for s in sorted(first.shards("merge_scores"))
        }
        # a threshold on a learned score re-runs selection only
        all_scores = pd.concat(scores.values(), ignore_index=True)
        median = float(all_scores["aesthetic.score"].median())
        cfg2 = {**cfg, "select": {"thresholds": {"aesthetic.score": {"min": median}}}}
        second = run_snakemake(work, cfg2)
    return {
        "work": work, "commit": commit, "scores": scores, "median": median,
        "runs": (first, second),
    }  # fmt: skip


@pytest.mark.slow
def test_pipeline_writes_learned_scores_and_embeddings(pipeline):
    work, scores = pipeline["work"], pipeline["scores"]
    first = pipeline["runs"][0]
    assert first.rules["score_gpu"] == 9 and first.rules["near_duplicates"] == 1
    assert len(scores) == 3
    for shard, df in scores.items():
        clips = shard_table(work, shard, "clips.parquet")
        usable = clips[clips["error"].isna() & clips["split_reason"].isna()]
        if not len(usable):  # the corrupt video's shard: error rows and empty embeddings
            assert df["aesthetic.error"].str.startswith("not scored").all() and len(df) == 1
            for name in ("aesthetic", "aesthetic_v2_5", "clip_iqa"):
                path = work / "results/shards" / shard / f"embeddings/{name}.npy"
                assert len(read_embeddings(path)[0]) == 0
            continue
        s = df.set_index("clip_id").loc[usable["clip_id"]]
        for name in ("aesthetic", "aesthetic_v2_5", "clip_iqa"):
            assert s[f"{name}.error"].isna().all(), name
            ids, emb = read_embeddings(work / "results/shards" / shard / f"embeddings/{name}.npy")
            assert sorted(ids) == sorted(usable["clip_id"])
        assert s["aesthetic.score"].between(1, 10).all()
        assert (s["aesthetic.n_frames"] == 3).all()
        assert (s["aesthetic.model"] == f"test-org/tiny-clip@{pipeline['commit']}").all()
        np.testing.assert_allclose(s["aesthetic_v2_5.score"], s["aesthetic_v2_5.score_min"])
        assert s["aesthetic_v2_5.score"].between(1, 10).all()
        for col in quality.PROMPTS:
            assert s[f"clip_iqa.{col}"].between(0, 1).all()


@pytest.mark.slow
def test_pipeline_removes_the_reencoded_copy_across_shards(pipeline):
    work = pipeline["work"]
    dups = pd.read_parquet(work / "results/dedup/near_duplicates.parquet")
    assert len(dups) == 1, dups
    pair = {dups["clip_id"].iloc[0], dups["duplicate_of"].iloc[0]}
    assert {c.split("_")[0] for c in pair} == {"v-a", "v-c"}
    assert dups["similarity"].iloc[0] >= 0.98
    dup, kept = dups["clip_id"].iloc[0], dups["duplicate_of"].iloc[0]
    sel = pd.concat(
        [shard_table(work, s, "selection.parquet") for s in pipeline["scores"]], ignore_index=True
    ).set_index("clip_id")
    assert f"duplicate_of={kept}" in list(sel.loc[dup, "reasons"]) and not sel.loc[dup, "keep"]
    assert not any(r.startswith("duplicate_of") for r in sel.loc[kept, "reasons"])
    a = pd.concat(pipeline["scores"].values()).set_index("clip_id")["aesthetic.score"]
    assert a[kept] >= a[dup]  # keep_best_by: aesthetic.score
    shards = {s for s, df in pipeline["scores"].items() if set(df["clip_id"]) & pair}
    assert len(shards) == 2  # found across shards


@pytest.mark.slow
def test_a_threshold_on_a_learned_score_selects_without_rescoring(pipeline):
    work, median = pipeline["work"], pipeline["median"]
    _, second = pipeline["runs"]
    assert "score_gpu" not in second.rules and second.rules["select"] == 3
    sel = pd.concat(
        [shard_table(work, s, "selection.parquet") for s in pipeline["scores"]], ignore_index=True
    ).set_index("clip_id")
    a = pd.concat(pipeline["scores"].values()).set_index("clip_id")["aesthetic.score"].dropna()
    low, high = a[a < median].index, a[a >= median].index
    assert len(low) and len(high)
    for c in low:
        assert any(r.startswith("aesthetic.score=") for r in sel.loc[c, "reasons"])
        assert not sel.loc[c, "keep"]
    for c in high:
        assert not any(r.startswith("aesthetic.score") for r in sel.loc[c, "reasons"])
    for shard, before in pipeline["scores"].items():  # the stored scores were not touched
        pd.testing.assert_frame_equal(shard_table(work, shard, "scores.parquet"), before)
