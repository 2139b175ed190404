"""DOVER (scorers.dover): the network against the authors' code, their view sampling, the fused
score, and the scorer on generated videos through the real loading code and the real rules.

tests/data/dover_reference.json was computed once with the authors' reference code
(github.com/VQAssessment/DOVER at commit f1ddc96215bc7fbcf8f315c65d47905f339c3419, dover.yml's
model): the state-dict key names, shapes and dtypes of their ``DOVER`` model, a hash of their
relative position index, their two score maps for seeded weights (``seeded_state_dict(..., 1234)``
of tests/fakes/tiny_dover.py) and a seeded input, and their views (``UnifiedFrameSampler`` +
``spatial_temporal_view_decomposition``, torchvision ``Resize`` without antialiasing as in their
pinned torchvision 0.14) of seeded videos, their random draws taken from
``numpy.random.default_rng([0, seed])`` in the order ``ClipViews`` draws them.
"""

from __future__ import annotations

import base64
import hashlib
import json
import math
from pathlib import Path

import av
import cv2
import numpy as np
import pandas as pd
import pytest
import torch
from fakes.tiny_dover import TINY, TINY_SAMPLING, dover_state_dict, save_dover, seeded_state_dict
from helpers import base_config, run_snakemake, shard_table

from clipsift.config import defaults, with_defaults
from clipsift.io.decode import iter_frames
from clipsift.sample import Segment, render_video, write_corrupt
from clipsift.scorers import REGISTRY, ShardInputs, dover, run_scorer
from clipsift.scorers.dover_net import DoverArch, DoverNet, arch_from_state_dict, build

REFERENCE = json.loads((Path(__file__).parent / "data" / "dover_reference.json").read_text())


def sigmoid(x):
    return 1 / (1 + math.exp(-x))


# ----------------------------------------------------------------------------- the network


def test_state_dict_has_the_published_keys_shapes_and_index():
    sd = DoverNet().state_dict()
    mine = [[k, list(v.shape), str(v.dtype).replace("torch.", "")] for k, v in sd.items()]
    assert mine == REFERENCE["keys"]  # 381 entries, in the authors' order
    idx = sd["technical_backbone.layers.0.blocks.0.attn.relative_position_index"]
    digest = hashlib.sha256(idx.numpy().astype("<i8").tobytes()).hexdigest()
    assert digest == REFERENCE["relative_position_index_sha256"]
    assert sum(v.numel() for v in sd.values()) > 5e7  # about 58 M values, as DOVER.pth


def test_sizes_are_read_back_from_the_state_dict():
    assert arch_from_state_dict(DoverNet().state_dict()) == DoverArch()
    assert arch_from_state_dict(DoverNet(TINY).state_dict()) == TINY
    sd = dover_state_dict(TINY, seed=3)
    net = build(sd)
    assert not net.training and net.arch == TINY
    broken = dict(sd)
    broken.pop("aesthetic_head.fc_last.bias")
    with pytest.raises(RuntimeError, match="published layout"):
        build(broken)
    with pytest.raises(RuntimeError, match="not a DOVER state dict"):
        build({"layers.0.weight": torch.zeros(2, 2)})


@pytest.mark.slow
def test_full_size_network_matches_the_authors_outputs():
    ref = REFERENCE["network"]
    net = build(seeded_state_dict(DoverNet().state_dict(), ref["weights_seed"]))
    g = torch.Generator().manual_seed(ref["input_seed"])
    tech = torch.randn(ref["input_shape"], generator=g)
    aes = torch.randn(ref["input_shape"], generator=g)
    with torch.no_grad():
        t, a = net(tech, aes)
    assert list(t.shape) == ref["technical_shape"] and list(a.shape) == ref["aesthetic_shape"]
    np.testing.assert_allclose(t.flatten().numpy(), ref["technical"], rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(a.flatten().numpy(), ref["aesthetic"], rtol=1e-4, atol=1e-5)


# ----------------------------------------------------------------------------- views and fusion


@pytest.mark.parametrize(
    "case", REFERENCE["views"]["cases"], ids=lambda c: f"{c['width']}x{c['height']}"
)
def test_views_match_the_authors_sampling(case):
    """Random starts, fragments (the 14x20 video is upscaled first) and the resize."""
    cfg = with_defaults("scorers.dover", REFERENCE["views"]["sampling"])
    n, gen = case["frames"], torch.Generator().manual_seed(case["seed"])
    frames = torch.randint(
        0, 256, (n, case["height"], case["width"], 3), generator=gen, dtype=torch.uint8
    )
    views = dover.ClipViews(n, cfg, [0, case["seed"]])
    for k in range(n):
        views.add(k, frames[k].numpy())
    assert views.complete
    assert views.t_idx.tolist() == case["technical_indices"]
    assert views.a_idx.tolist() == case["aesthetic_indices"]
    for name, got in (("technical", views.technical()), ("aesthetic", views.aes)):
        want = np.frombuffer(base64.b64decode(case[name]), np.uint8).reshape(case[f"{name}_shape"])
        np.testing.assert_array_equal(got.numpy(), want)


def test_frame_sampling_wraps_short_clips_like_the_authors():
    rng = np.random.default_rng(0)
    # 3 parts of 32 frames 2 apart over 20 frames: parts start at 0, 6, 12, indices mod 20
    idx = dover.segment_indices(20, 3, 32, 2, rng)
    assert len(idx) == 96 and idx[:3].tolist() == [0, 2, 4] and idx[32] == 6
    assert idx[10] == 0 and idx.max() < 20
    # the aesthetic view of a clip under 32 frames repeats its first frame
    assert dover.segment_indices(31, 32, 1, 2, rng).tolist() == [0] * 32
    # long enough: one frame per part, at a random place inside it
    idx = dover.segment_indices(320, 32, 1, 2, rng)
    assert all(10 * i <= v < 10 * i + 8 for i, v in enumerate(idx))


def test_fused_score_is_fuse_results():
    """fuse_results of evaluate_a_set_of_videos.py: t = (tech - 0.1107) / 0.07355,
    a = (aes + 0.08285) / 0.03774, overall = sigmoid(0.6104 t + 0.3896 a)."""
    mid = dover.fuse(0.1107, -0.08285)
    assert mid == {"technical_norm": 0.5, "aesthetic_norm": 0.5, "score": 0.5}
    got = dover.fuse(0.2, 0.0)
    t, a = (0.2 - 0.1107) / 0.07355, 0.08285 / 0.03774
    assert got["score"] == pytest.approx(sigmoid(0.6104 * t + 0.3896 * a), abs=1e-12)
    assert got["technical_norm"] == pytest.approx(sigmoid(t))
    assert got["aesthetic_norm"] == pytest.approx(sigmoid(a))


def test_registered_as_a_gpu_scorer_with_the_release_weights():
    assert REGISTRY["dover"].device == "gpu"
    assert REGISTRY["dover"].target == "clipsift.scorers.dover:score_dover"
    assert defaults("scorers.dover")["weights"]["url"].endswith(
        "/releases/download/v0.1.0/DOVER.pth"
    )


# ----------------------------------------------------------------------------- scoring videos


def degrade(src: Path, dest: Path, *, sigma: float = 2.5, noise: float = 12.0) -> Path:
    """A blurred and noisy copy of ``src`` (same frames, size and rate)."""
    rng = np.random.default_rng(0)
    frames = [f.rgb() for f in iter_frames(src)]
    with av.open(str(src)) as c:
        rate = c.streams.video[0].average_rate
    with av.open(str(dest), "w") as out:
        stream = out.add_stream("libx264", rate=rate)
        stream.width, stream.height, stream.pix_fmt = (
            frames[0].shape[1],
            frames[0].shape[0],
            "yuv420p",
        )
        stream.options = {"crf": "18"}
        for rgb in frames:
            img = cv2.GaussianBlur(rgb, (0, 0), sigma).astype(np.float32)
            img = np.clip(img + rng.normal(0, noise, img.shape), 0, 255).astype(np.uint8)
            for packet in stream.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    return dest


def clip_row(clip_id, path, size, start, end, fps=10.0, n_frames=None):
    return {
        "clip_id": clip_id, "video_id": clip_id.rsplit("_", 1)[0], "start_time": start,
        "end_time": end, "fps": fps, "n_frames": n_frames or round((end - start) * fps),
        "width": size[0], "height": size[1], "source_path": str(path), "error": None,
        "split_reason": None,
    }  # fmt: skip


@pytest.fixture(scope="module")
def media(tmp_path_factory):
    root = tmp_path_factory.mktemp("dover")
    render_video(
        root / "a.mp4", [Segment(20, seed=61), Segment(20, seed=62, pan=(2, 0))], fps=10,
        size=(320, 180),
    )  # fmt: skip
    degrade(root / "a.mp4", root / "a_bad.mp4")
    write_corrupt(root / "bad.mp4", "truncated", source=root / "a.mp4")
    weights = save_dover(root / "DOVER.pth", TINY, seed=11)
    return root, weights


def score(df, cfg):
    return run_scorer("dover", ShardInputs(df, pd.DataFrame()), cfg).set_index("clip_id")


def tiny_cfg(weights, **over):
    return {"weights_path": str(weights), "device": "cpu", **TINY_SAMPLING, **over}


def test_scores_come_from_the_heads_and_the_fusion_formula(media):
    root, weights = media
    df = pd.DataFrame(
        [
            clip_row("a_0000", root / "a.mp4", (320, 180), 0.0, 2.0),
            clip_row("a_0001", root / "a.mp4", (320, 180), 2.0, 4.0),
            clip_row("abad_0000", root / "a_bad.mp4", (320, 180), 0.0, 2.0),
        ]
    )
    cfg = tiny_cfg(weights)
    out = score(df, cfg)
    assert out["error"].isna().all() and (out["n_frames"] == 20).all()
    for _, r in out.iterrows():
        t = (r["technical"] - 0.1107) / 0.07355
        a = (r["aesthetic"] + 0.08285) / 0.03774
        assert r["score"] == pytest.approx(sigmoid(0.6104 * t + 0.3896 * a), abs=1e-12)
        assert r["technical_norm"] == pytest.approx(sigmoid(t), abs=1e-12)
        assert r["aesthetic_norm"] == pytest.approx(sigmoid(a), abs=1e-12)
        assert 0 < r["score"] < 1
    sha = hashlib.sha256(weights.read_bytes()).hexdigest()
    assert (out["model"] == f"DOVER@sha256:{sha[:16]}").all()
    # the raw scores are the means of the heads' maps over the clip's views
    model = dover.load_model(cfg)
    clip = next(df.iloc[:1].itertuples(index=False))
    tech, aes, n = dover.clip_views(clip, with_defaults("scorers.dover", cfg))
    assert tuple(tech.shape) == (2, 3, 8, 56, 56) and tuple(aes.shape) == (1, 3, 8, 64, 64)
    with torch.no_grad():
        t_map, a_map = model.net(tech, aes)
    assert out.loc["a_0000", "technical"] == pytest.approx(float(t_map.mean()), abs=1e-6)
    assert out.loc["a_0000", "aesthetic"] == pytest.approx(float(a_map.mean()), abs=1e-6)
    # reproducible: a fresh load and run gives the same numbers
    pd.testing.assert_frame_equal(out, score(df, cfg))
    # the clip's own frames: its two scenes score differently, the degraded copy differs
    assert out.loc["a_0000", "score"] != out.loc["a_0001", "score"]
    for col in ("technical", "aesthetic"):
        assert abs(out.loc["a_0000", col] - out.loc["abad_0000", col]) > 1e-4


def test_short_clips_loop_their_frames_at_the_authors_sampling(media):
    """The default sampling (3 x 32 frames, 224 px; the 180 px frames are upscaled) on a clip
    of 5 frames: indices wrap around the clip, as the authors' sampler does."""
    root, weights = media
    df = pd.DataFrame([clip_row("a_0002", root / "a.mp4", (320, 180), 1.0, 1.5)])
    out = score(df, {"weights_path": str(weights), "device": "cpu"})
    assert out["error"].isna().all() and out.loc["a_0002", "n_frames"] == 5
    assert 0 < out.loc["a_0002", "score"] < 1


def test_a_wrong_frame_count_is_resampled_and_bad_clips_are_data(media, tmp_path):
    root, weights = media
    good = clip_row("a_0000", root / "a.mp4", (320, 180), 0.0, 2.0)
    df = pd.DataFrame(
        [
            {**good, "clip_id": "a_0009", "n_frames": 35},  # the table is wrong: 20 frames
            good,
            clip_row("bad_0000", root / "bad.mp4", (320, 180), 0.0, 2.0),
            clip_row("gone_0000", tmp_path / "missing.mp4", (320, 180), 0.0, 2.0),
        ]
    )
    out = score(df, tiny_cfg(weights))
    assert out.loc["a_0009", "n_frames"] == 20
    cols = ["technical", "aesthetic", "score"]
    # the same clip id draws the same samples: compare through a copy with the other id
    again = score(pd.DataFrame([{**good, "clip_id": "a_0009"}]), tiny_cfg(weights))
    pd.testing.assert_series_equal(out.loc["a_0009", cols], again.loc["a_0009", cols])
    for cid in ("bad_0000", "gone_0000"):
        assert out.loc[cid, "error"].startswith("frames: ") and np.isnan(out.loc[cid, "score"])
    assert out.loc[["a_0009", "a_0000"], "error"].isna().all()


def test_missing_weights_say_where_they_were_looked_for(tmp_path):
    with pytest.raises(RuntimeError, match="does not exist"):
        dover.load_model({"weights_path": str(tmp_path / "DOVER.pth")})


# ----------------------------------------------------------------------------- the pipeline


@pytest.mark.slow
def test_pipeline_scores_with_dover_and_selects_on_its_fused_score(media, tmp_path):
    root, weights = media
    vids = tmp_path / "videos"
    render_video(
        vids / "p.mp4", [Segment(20, seed=71), Segment(20, seed=72)], fps=10, size=(256, 144)
    )
    render_video(vids / "q.mp4", [Segment(25, seed=73, pan=(1, 1))], fps=10, size=(256, 144))
    render_video(vids / "r.mp4", [Segment(20, seed=74, noise=20)], fps=10, size=(256, 144))
    cfg = base_config(
        [{"name": "v", "type": "folder", "path": str(vids)}],
        split={"min_seconds": 1.0},
        filters={"ocr": {"enabled": False}, "flash": {"enabled": False}},
        scorers={
            "motion": {"enabled": False},
            "technical": {"enabled": False},
            "dover": {"enabled": True, **tiny_cfg(weights)},
        },
        select={"thresholds": {}},
    )
    first = run_snakemake(tmp_path, cfg)
    assert first.rules["score_gpu"] == 1
    (shard,) = first.shards("merge_scores")
    scores = shard_table(tmp_path, shard, "scores.parquet").set_index("clip_id")
    for col in ("score", "technical", "aesthetic", "technical_norm", "aesthetic_norm"):
        assert f"dover.{col}" in scores, col
    assert scores["dover.error"].isna().all() and len(scores) >= 4
    assert scores["dover.score"].between(0, 1).all()
    median = float(scores["dover.score"].median())
    assert (scores["dover.score"] < median).any() and (scores["dover.score"] >= median).any()
    cfg["select"] = {"thresholds": {"dover.score": {"min": median}}}
    second = run_snakemake(tmp_path, cfg)
    assert "score_gpu" not in second.rules and second.rules["select"] == 1
    sel = shard_table(tmp_path, shard, "selection.parquet").set_index("clip_id")
    for cid, value in scores["dover.score"].items():
        failed = any(r.startswith("dover.score=") for r in sel.loc[cid, "reasons"])
        assert failed == (value < median), (cid, value, median)
        if failed:
            assert not sel.loc[cid, "keep"]
