"""The UniMatch/GMFlow motion scorer: the network against the authors' code (key layout and a
golden output), the HF video filter seed's frame sampling and units, failures as data, and a
pipeline run, on tiny networks saved the way UniMatch publishes its checkpoints
(``{"model": state_dict}``) and loaded through the scorer's own loading code."""

from __future__ import annotations

import json
from pathlib import Path

import av
import numpy as np
import pandas as pd
import pytest
import torch
import torch.nn.functional as F
import yaml
from helpers import base_config, render_lumas, run_snakemake, shard_table

from clipsift.config import defaults
from clipsift.io.decode import frames_by_index
from clipsift.models import hub
from clipsift.sample import Segment, render_video, write_corrupt
from clipsift.scorers import REGISTRY, ShardInputs, run_scorer
from clipsift.scorers import unimatch as um
from clipsift.scorers.gmflow_net import GMFlow, sizes_of

DEFAULTS = defaults("scorers.unimatch")

DATA = Path(__file__).parent / "data"
REPO = Path(__file__).parent.parent
# computed once with the authors' reference code (github.com/autonomousvision/unimatch at
# commit 943a99006950ab6c84ea72a72beb147fdd03c19a, the commit the seed pins): the state-dict
# keys and shapes of UniMatch(num_scales=1, feature_channels=128, upsample_factor=8, num_head=1,
# ffn_dim_expansion=4, num_transformer_layers=6, reg_refine=False, task="flow"), and its flow
# for seeded_weights()/seeded_pair() below
KEYS = DATA / "unimatch_gmflow_scale1_keys.json"
GOLDEN = DATA / "unimatch_gmflow_golden.npz"
TINY = {"feature_channels": 16, "num_transformer_layers": 2, "ffn_dim_expansion": 2}
TINY_DIMS = (8, 12, 16)
SIZE = [64, 112]  # a small inference size (multiples of 16), fast on a CPU


def seeded_weights(shapes: dict, seed: int) -> dict:
    """Deterministic weights for a key -> shape layout (numpy's frozen RandomState stream):
    weights ~ N(0, 1/fan_in), biases ~ N(0, 0.1^2), LayerNorm scales ~ 1 + N(0, 0.1^2)."""
    rs = np.random.RandomState(seed)
    out = {}
    for key, shape in shapes.items():
        x = rs.standard_normal(shape).astype(np.float32)
        if len(shape) >= 2:
            x = x / np.sqrt(np.prod(shape[1:]))
        elif ".norm" in key and key.endswith("weight"):
            x = 1 + 0.1 * x
        else:
            x = 0.1 * x
        out[key] = torch.from_numpy(x)
    return out


def seeded_pair(h: int, w: int, seed: int = 7) -> tuple[torch.Tensor, torch.Tensor]:
    """Two RGB batches (0-255) of 2 images: random texture, and it moved by (2, 3) px plus noise."""
    rs = np.random.RandomState(seed)
    a = rs.uniform(0, 255, (2, 3, h, w)).astype(np.float32)
    b = np.roll(a, (2, 3), axis=(2, 3)) * 0.9 + rs.uniform(0, 20, a.shape).astype(np.float32)
    return torch.from_numpy(a), torch.from_numpy(b)


def tiny_state_dict(seed: int = 0) -> dict:
    torch.manual_seed(seed)
    return GMFlow(**TINY, encoder_dims=TINY_DIMS).state_dict()


def save_checkpoint(path: Path, sd: dict) -> Path:
    """Saved as UniMatch's release files are: ``torch.save({"model": state_dict})``."""
    torch.save({"model": sd}, path)
    return path


# ----------------------------------------------------------------------------- the network


def test_the_key_layout_is_the_published_checkpoints():
    published = json.loads(KEYS.read_text())
    mine = {k: list(v.shape) for k, v in GMFlow().state_dict().items()}
    assert list(mine) == list(published)  # same keys, same order
    assert mine == published  # same shapes
    assert sum(int(np.prod(s)) for s in published.values()) == 4_680_288  # "4.7 M" in MODEL_ZOO
    assert sizes_of(GMFlow().state_dict()) == {
        "feature_channels": 128,
        "num_transformer_layers": 6,
        "ffn_dim_expansion": 4,
        "upsample_factor": 8,
        "encoder_dims": (64, 96, 128),
    }


@pytest.mark.parametrize("which", ["scale1", "small"])
def test_flow_equals_the_authors_code_on_seeded_weights(which):
    """``scale1``: the published architecture at 48x64; ``small``: feature_channels 32, 3
    transformer blocks (a shifted one in the middle), ffn 2, at 32x48 - its sizes read back
    from the state dict."""
    golden = np.load(GOLDEN)
    shapes = json.loads(str(golden[f"{which}_shapes"]))
    model = GMFlow.from_state_dict(seeded_weights(shapes, seed=1))
    a, b = seeded_pair(*golden[f"{which}_size"])
    with torch.no_grad():
        flow = model(a, b).numpy()
    ref = golden[f"{which}_flow"]
    assert flow.shape == ref.shape
    assert np.abs(ref).max() > 1  # a real flow field, not zeros
    np.testing.assert_allclose(flow, ref, rtol=1e-4, atol=2e-3)


def test_input_sides_must_be_multiples_of_16_and_the_padding_is_unimatchs():
    model = GMFlow.from_state_dict(tiny_state_dict())
    with pytest.raises(ValueError, match="multiples of 16"):
        model(torch.zeros(1, 3, 40, 64), torch.zeros(1, 3, 40, 64))
    # InputPadder(padding_factor=16), "sintel" mode: half each side, the odd pixel after
    assert um.pad_amounts(320, 576) == (0, 0, 0, 0)
    assert um.pad_amounts(60, 100) == (6, 6, 2, 2)
    assert um.pad_amounts(70, 90) == (3, 3, 5, 5)
    x = um.prepare([np.zeros((20, 30, 3), np.uint8)] * 2, (60, 100))
    assert tuple(x.shape) == (1, 2, 3, 64, 112)


def test_checkpoints_load_strictly_from_the_published_layout(tmp_path):
    sd = tiny_state_dict()
    extra = tmp_path / "with_optimizer.pth"  # a training checkpoint: model, optimizer, step
    torch.save({"model": sd, "optimizer": {"state": {}}, "step": 7, "epoch": 1}, extra)
    model, record = um.load_model({"weights_path": str(extra)})
    assert record["path"] == str(extra) and len(record["sha256"]) == 64
    assert sizes_of(model.state_dict())["feature_channels"] == 16
    with pytest.raises(RuntimeError, match="not a UniMatch flow checkpoint"):
        torch.save({"state_dict": {"x": torch.zeros(1)}}, tmp_path / "other.pth")
        um.load_model({"weights_path": str(tmp_path / "other.pth")})
    broken = dict(sd)
    broken.pop("upsampler.0.bias")
    with pytest.raises(RuntimeError, match="Missing key"):
        um.load_model({"weights_path": str(save_checkpoint(tmp_path / "b.pth", broken))})


def test_the_defaults_name_the_published_file_pinned_by_sha256():
    assert DEFAULTS["weights"]["url"] == (
        "https://s3.eu-central-1.amazonaws.com/avg-projects/unimatch/pretrained/"
        "gmflow-scale1-mixdata-train320x576-4c3a6e9a.pth"
    )  # MODEL_ZOO.md, GMFlow-scale1-mixdata
    sha = DEFAULTS["weights"]["sha256"]
    assert len(sha) == 64 and sha.startswith("4c3a6e9a")  # the name's suffix (torch.hub rule)
    # the seed's sampling (the defaults are config/schema.yaml's: test_config_checks)
    assert (DEFAULTS["pairs"], DEFAULTS["size"]) == (3, [320, 576])
    assert DEFAULTS["enabled"] is False
    assert REGISTRY["unimatch"].device == "gpu"


def test_the_preset_validates_and_records_the_seeds_threshold():
    from snakemake.utils import update_config

    from clipsift.config import validate_config

    config = {"sources": [{"name": "s", "type": "folder", "path": "videos"}]}
    preset = yaml.safe_load((REPO / "config" / "presets" / "scores-unimatch.yaml").read_text())
    update_config(config, preset)
    validate_config(config)
    u = config["scorers"]["unimatch"]
    assert u["enabled"] and u["pairs"] == 3 and u["size"] == [320, 576]
    assert u["weights"] == DEFAULTS["weights"]
    assert u["weights_path"] is None
    t = config["select"]["thresholds"]
    assert t["unimatch.score"] == {"min": 87.0, "record_only": True}
    assert (t["motion.rel_per_s"]["min"], t["motion.rel_per_s"]["max"]) == (0.015, 1.5)


# ----------------------------------------------------------------------------- the scorer


def clip_row(clip_id, path, size, start=0.0, end=2.0, fps=10.0, frames=None):
    row = {
        "clip_id": clip_id, "video_id": clip_id.rsplit("_", 1)[0], "start_time": start,
        "end_time": end, "fps": fps, "width": size[0], "height": size[1],
        "source_path": str(path), "error": None, "split_reason": None,
    }  # fmt: skip
    if frames is not None:
        row["start_frame"], row["end_frame"] = frames
    return row


@pytest.fixture(scope="module")
def videos(tmp_path_factory):
    root = tmp_path_factory.mktemp("unimatch_videos")
    render_video(root / "pan.mp4", [Segment(30, seed=51, pan=(3, 1))], fps=10, size=(256, 144))
    render_video(root / "still.mp4", [Segment(12, seed=52)], fps=10, size=(224, 128))
    weights = save_checkpoint(root / "tiny.pth", tiny_state_dict(seed=3))
    return root, weights


def decoded_rgb(path: Path) -> list[np.ndarray]:
    with av.open(str(path)) as c:
        return [f.to_ndarray(format="rgb24") for f in c.decode(video=0)]


def test_the_seeds_frame_pairs():
    # pipeline/models.py _sample_frame_pairs: stride n // (num_pairs + 1), frames i and i + 1
    assert um.pair_starts(1, 3) == []
    assert um.pair_starts(2, 3) == [0]
    assert um.pair_starts(3, 3) == [0, 1]
    assert um.pair_starts(4, 3) == [0, 1, 2]
    assert um.pair_starts(9, 3) == [0, 2, 4]
    assert um.pair_starts(100, 3) == [0, 25, 50]
    assert um.pair_starts(100, 1) == [0]
    assert um.pair_starts(100, 4) == [0, 20, 40, 60]


def test_pairs_are_exactly_those_frames(tmp_path):
    video = render_lumas(tmp_path / "count.mp4", [8 * i for i in range(30)], fps=10, gop=30)
    clip = pd.DataFrame([clip_row("v_0000", video, (64, 48), 0.7, 2.7, frames=(7, 27))])
    clip = next(clip.itertuples())
    assert um.pair_offsets(clip, 3) == [0, 1, 5, 6, 10, 11]  # 20 frames: stride 5
    frames = [f for _, f in frames_by_index(video, um.pair_offsets(clip, 3), (0, 0.7))]
    lumas = [int(round(f.luma().mean() / 8)) for f in frames]
    assert lumas == [7, 8, 12, 13, 17, 18]


def test_scores_are_the_networks_flow_on_the_seeds_frames(videos):
    """Decoded here with PyAV, resized and run on the model independently of the scorer."""
    root, weights = videos
    cfg = {"weights_path": str(weights), "device": "cpu", "size": SIZE, "batch_size": 4}
    df = pd.DataFrame(
        [
            clip_row("pan_0000", root / "pan.mp4", (256, 144), 0.5, 2.5, frames=(5, 25)),
            clip_row("pan_0001", root / "pan.mp4", (256, 144), 2.5, 3.0, frames=(25, 30)),
            clip_row("still_0000", root / "still.mp4", (224, 128), 0.0, 1.2),
        ]
    )
    out = run_scorer("unimatch", ShardInputs(df, pd.DataFrame()), cfg).set_index("clip_id")
    assert out["error"].isna().all() and (out["n_pairs"] == [3, 3, 3]).all()
    assert (out["weights"] == f"sha256:{hub.file_sha256(weights)[:16]}").all()
    model = GMFlow.from_state_dict(torch.load(weights, weights_only=True)["model"]).eval()
    for cid, name, first, n in [("pan_0000", "pan", 5, 20), ("pan_0001", "pan", 25, 5),
                                ("still_0000", "still", 0, 12)]:  # fmt: skip
        frames = decoded_rgb(root / f"{name}.mp4")
        h, w = frames[0].shape[:2]
        lengths, source = [], []
        for s in [0, n // 4, 2 * n // 4]:
            pair = [frames[first + s], frames[first + s + 1]]
            x = torch.from_numpy(np.stack(pair)).permute(0, 3, 1, 2).float()
            x = F.interpolate(x, size=SIZE, mode="bilinear", align_corners=True)
            with torch.no_grad():
                flow = model(x[:1], x[1:])[0]
            lengths.append(float(torch.sqrt(flow[0] ** 2 + flow[1] ** 2).mean()))
            u, v = flow[0] * w / SIZE[1], flow[1] * h / SIZE[0]
            source.append(float(torch.sqrt(u**2 + v**2).mean()))
        row = out.loc[cid]
        np.testing.assert_allclose(row["score"], np.mean(lengths), rtol=1e-5)
        np.testing.assert_allclose(row["px_per_s"], np.mean(source) * 10, rtol=1e-5)
        np.testing.assert_allclose(row["rel_per_s"], row["px_per_s"] / np.hypot(w, h), rtol=1e-9)
    # the same scores in another batching, and in bfloat16 features close to them
    again = run_scorer("unimatch", ShardInputs(df, pd.DataFrame()), {**cfg, "batch_size": 1})
    pd.testing.assert_frame_equal(again.set_index("clip_id"), out, rtol=1e-5)
    half = run_scorer("unimatch", ShardInputs(df, pd.DataFrame()), {**cfg, "dtype": "bfloat16"})
    np.testing.assert_allclose(half["score"], out["score"], rtol=0.25)


class ConstantFlow(GMFlow):
    """A network whose flow is (3, 4) px everywhere: the units are then known exactly."""

    def forward(self, img0, img1, *, feature_dtype=None):
        flow = torch.tensor([3.0, 4.0]).view(1, 2, 1, 1)
        return flow.expand(len(img0), 2, *img0.shape[-2:]).clone()


def test_units_per_frame_per_second_and_per_diagonal(videos):
    root, _ = videos
    model = ConstantFlow(**TINY, encoder_dims=TINY_DIMS)
    df = pd.DataFrame(
        [
            clip_row("pan_0000", root / "pan.mp4", (256, 144)),
            clip_row("still_0000", root / "still.mp4", (224, 128), 0.0, 1.2, fps=10.0),
        ]
    )
    out = um.score_clips(df, model, {"size": SIZE}).set_index("clip_id")
    np.testing.assert_allclose(out["score"], 5.0, rtol=1e-6)  # px per frame at 64x112
    # source px: x scaled by 256/112, y by 144/64, then 10 frames per second
    px = np.hypot(3 * 256 / 112, 4 * 144 / 64) * 10
    np.testing.assert_allclose(out.loc["pan_0000", "px_per_s"], px, rtol=1e-6)
    np.testing.assert_allclose(out.loc["pan_0000", "rel_per_s"], px / np.hypot(256, 144))
    # a source with the inference size's aspect (224x128 ~ 112x64): rel = score * fps / diagonal
    np.testing.assert_allclose(
        out.loc["still_0000", "rel_per_s"], 5.0 * 10 / np.hypot(*SIZE), rtol=1e-6
    )


def test_per_second_uses_each_pairs_real_time_gap(tmp_path):
    """Variable frame rate: 8 frames 0.1 s apart, then 8 frames 0.025 s apart (clip average 16
    fps). Pairs start at frames 0, 4 and 8 (16 // 4 = 4): gaps 0.1, 0.1 and 0.025 s. A
    constant flow of 5 px per pair is then 50, 50 and 200 px/s, not 5 x 16 = 80."""
    times = [i / 10 for i in range(8)] + [0.8 + i / 40 for i in range(8)]
    path = tmp_path / "vfr.mp4"
    render_video(path, [Segment(16, seed=53)], fps=10, size=(112, 64), times=times)
    clip = clip_row("v_0000", path, (112, 64), 0.0, 0.975, fps=16.0, frames=(0, 16))
    model = ConstantFlow(**TINY, encoder_dims=TINY_DIMS)
    out = um.score_clips(pd.DataFrame([clip]), model, {"size": SIZE}).iloc[0]
    assert out["error"] is None and out["n_pairs"] == 3
    np.testing.assert_allclose(out["score"], 5.0, rtol=1e-6)
    np.testing.assert_allclose(out["px_per_s"], (50 + 50 + 200) / 3, rtol=1e-6)


def test_clips_that_cannot_be_scored_get_an_error(videos, tmp_path):
    root, weights = videos
    write_corrupt(tmp_path / "bad.mp4", "truncated", source=root / "pan.mp4")
    df = pd.DataFrame(
        [
            clip_row("pan_0000", root / "pan.mp4", (256, 144)),
            clip_row("bad_0000", tmp_path / "bad.mp4", (256, 144)),
            clip_row("gone_0000", tmp_path / "missing.mp4", (256, 144)),
            clip_row("one_0000", root / "still.mp4", (224, 128), 0.0, 0.1, frames=(0, 1)),
            clip_row("still_0000", root / "still.mp4", (224, 128), 0.0, 1.2),
        ]
    )
    cfg = {"weights_path": str(weights), "device": "cpu", "size": SIZE}
    out = run_scorer("unimatch", ShardInputs(df, pd.DataFrame()), cfg).set_index("clip_id")
    assert list(out.index) == list(df["clip_id"])
    assert out.loc["bad_0000", "error"].startswith("frames: ")
    assert out.loc["gone_0000", "error"].startswith("frames: ")
    assert out.loc["one_0000", "error"] == "unimatch: 1 frame(s), a pair needs 2"
    assert out.loc[["bad_0000", "gone_0000", "one_0000"], "score"].isna().all()
    good = out.loc[["pan_0000", "still_0000"]]
    assert good["error"].isna().all() and (good["score"] > 0).all()


# ----------------------------------------------------------------------------- the pipeline


@pytest.mark.slow
def test_pipeline_scores_and_selects_on_unimatch_score(videos, tmp_path_factory):
    """The real workflow with the scorer enabled from a local weights file; a threshold on
    ``unimatch.score`` at the median re-runs selection only."""
    _, weights = videos
    work = tmp_path_factory.mktemp("unimatch_pipeline")
    vids = work / "videos"
    render_video(vids / "a.mp4", [Segment(25, seed=61, pan=(2, 0))], fps=10, size=(256, 144))
    render_video(vids / "b.mp4", [Segment(25, seed=62, pan=(0, 1))], fps=10, size=(256, 144))
    render_video(vids / "c.mp4", [Segment(25, seed=63)], fps=10, size=(192, 108))
    write_corrupt(vids / "d.mp4", "truncated", source=vids / "c.mp4")
    cfg = base_config(
        [{"name": "v", "type": "folder", "path": str(vids)}],
        lean=True,
        split={"min_seconds": 1.0},
        scorers={
            "motion": {"enabled": False},
            "technical": {"enabled": False},
            "unimatch": {
                "enabled": True,
                "weights_path": str(weights),
                "size": SIZE,
                "device": "cpu",
            },
        },
        select={"thresholds": {"unimatch.score": {"min": 0.0}}},
    )
    first = run_snakemake(work, cfg)
    assert first.rules["score_gpu"] == 1
    shard = next(iter(first.shards("merge_scores")))
    scores = shard_table(work, shard, "scores.parquet").set_index("clip_id")
    clips = shard_table(work, shard, "clips.parquet")
    usable = clips[clips["error"].isna() & clips["split_reason"].isna()]["clip_id"]
    assert len(usable) >= 3
    s = scores.loc[usable]
    assert s["unimatch.error"].isna().all() and (s["unimatch.n_pairs"] == 3).all()
    assert (s["unimatch.score"] > 0).all() and (s["unimatch.rel_per_s"] > 0).all()
    assert scores.drop(usable)["unimatch.error"].str.startswith("not scored").all()
    median = float(s["unimatch.score"].median())
    cfg2 = {**cfg, "select": {"thresholds": {"unimatch.score": {"min": median}}}}
    second = run_snakemake(work, cfg2)
    assert "score_gpu" not in second.rules and second.rules["select"] == 1
    sel = shard_table(work, shard, "selection.parquet").set_index("clip_id")
    assert (s["unimatch.score"] < median).any() and (s["unimatch.score"] >= median).any()
    for cid, value in s["unimatch.score"].items():
        failed = any(r.startswith("unimatch.score=") for r in sel.loc[cid, "reasons"])
        assert failed == (value < median), (cid, value, median)
