"""Whole-video mode (split.mode: whole) and its preset, which reproduces HunyuanVideo's latent
extraction (hyvideo/hyvae_extract at Tencent/HunyuanVideo-I2V e44c1d95): one latent per listed
video, frames from its start with stride 2 at 50 fps or more, a shorter video at its longest
4n+1 count, buckets from its crop-size list, files named by the video id that its training
loader reads."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import yaml
from fakes import tiny_vae as tiny
from helpers import all_shards_table, base_config, run_snakemake
from test_manifests import hunyuan_i2v_loader

from clipsift.config import SCHEMA
from clipsift.encoders.buckets import grid_buckets, make_buckets, nearest_bucket
from clipsift.encoders.sampling import plan_frames
from clipsift.sample import Segment, render_video

PRESET = SCHEMA.parent / "presets" / "hunyuan-i2v-whole.yaml"


def preset() -> dict:
    return yaml.safe_load(PRESET.read_text())


def test_preset_is_the_tools_defaults():
    from snakemake.utils import validate

    cfg = preset()
    validate(cfg | {"sources": [{"name": "s", "type": "hunyuan", "path": "m.list"}]}, str(SCHEMA))
    enc = cfg["encode"]
    assert cfg["split"]["mode"] == "whole" and enc["frames"]["count"] == 129
    assert enc["resolution"]["bucket"] == 480 and enc["resolution"]["grid_max_ratio"] == 4.0
    assert enc["manifests"]["formats"] == ["hunyuan"] and enc["vae"]["store_dtype"] == "float16"


@pytest.mark.parametrize("fps", [24.0, 30.0, 49.9, 50.0, 60.0])
def test_frames_as_the_tool_takes_them(fps):
    """For every length: the tool's count (``L - (L - 1) % (4 * stride)`` frames read with
    ``range(0, n, stride)``, or ``sample_n_frames * stride`` when the video is long enough)
    and indices, from the preset's frames section."""
    frames = preset()["encode"]["frames"]
    stride = 2 if int(fps) >= 50 else 1
    for length in range(1, 400, 7):
        plan = plan_frames(0, length, fps, frames, 4)
        n = 129 * stride if length >= 129 * stride else length - (length - 1) % (4 * stride)
        assert plan.indices == list(range(0, n, stride)), (length, fps)


def test_crop_size_list():
    """HunyuanVideo's crop-size list at 480 on the 16-px grid: for each width in cells (from
    the widest), the heights from the last one reached up to the most cells that fit, within
    4:1; a clip takes the nearest ratio by plain difference."""
    buckets = grid_buckets(480, 16, 4.0)
    cells = (480 // 16) ** 2
    want = []
    for wp in range(cells, 0, -1):
        for hp in range(max(1, cells // (wp + 1)), cells // wp + 1):
            if max(wp, hp) / min(wp, hp) <= 4.0:
                want.append((wp * 16, hp * 16))
    assert [(b.width, b.height) for b in buckets] == want
    assert (480, 480) in want and all(w * h <= 480 * 480 for w, h in want)
    assert make_buckets({"bucket": 480, "grid_max_ratio": 4.0}, 16) == buckets
    for w, h in [(1280, 720), (720, 1280), (704, 576), (1920, 800)]:
        got = nearest_bucket(w, h, buckets)
        assert got == min(buckets, key=lambda b: abs(b.width / b.height - w / h))


@pytest.mark.slow
def test_meta_file_list_to_hunyuan_latents(tmp_path, monkeypatch):
    """The preset (with a tiny VAE, a small bucket and 17 frames) on a meta_file.list of two
    videos: a 60 fps video with a hard cut inside stays one clip, encoded from its first frame
    at stride 2; a 30 fps portrait video gives its longest 4n+1 count; the outputs are
    {video_id}.npy + json_path/{video_id}.json, one per listed video, which HunyuanVideo-I2V's
    training loader reads from the dataset folder."""
    videos = tmp_path / "videos"
    render_video(
        videos / "cut60.mp4", [Segment(40, seed=1, pan=(1, 0)), Segment(40, seed=2)], fps=60,
        size=(160, 96),
    )  # fmt: skip
    render_video(videos / "port30.mp4", [Segment(14, seed=3, pan=(0, 1))], fps=30, size=(96, 160))
    meta = tmp_path / "meta"
    (meta / "json").mkdir(parents=True)
    lines = []
    for name in ("cut60", "port30"):
        doc = {
            "video_path": str(videos / f"{name}.mp4"),
            "raw_caption": {"long caption": f"{name} caption"},
        }
        (meta / "json" / f"{name}.json").write_text(json.dumps(doc))
        lines.append(f"json/{name}.json")
    (meta / "meta_file.list").write_text("\n".join(lines) + "\n")

    models = tmp_path / "models"
    vae = tiny.build_vae("hunyuan", models / "vae")
    cfg = preset()
    cfg["encode"]["vae"] |= vae | {"dtype": "float32"}
    cfg["encode"]["frames"]["count"] = 17
    cfg["encode"]["resolution"]["bucket"] = 64
    cfg["encode"]["device"] = "cpu"
    cfg = base_config(
        [{"name": "hy", "type": "hunyuan", "path": str(meta / "meta_file.list")}],
        **{k: v for k, v in cfg.items() if k != "split"},
        split=base_config([])["split"] | cfg["split"],
    )
    wd = tmp_path / "wd"
    run_snakemake(wd, cfg, targets=["results/dataset/manifests"])

    clips = all_shards_table(wd, "clips.parquet").set_index("clip_id")
    assert sorted(clips.index) == ["hy-cut60", "hy-port30"]  # one clip per video, its id
    assert list(clips["start_frame"]) == [0, 0] and clips.loc["hy-cut60", "end_frame"] == 80
    lat = all_shards_table(wd, "latents.parquet").set_index("clip_id")
    assert (lat["status"] == "ok").all()
    a, b = lat.loc["hy-cut60"], lat.loc["hy-port30"]
    assert (
        a["stride"] == 2 and a["first_frame"] == 0 and a["last_frame"] == 32 and a["frames"] == 17
    )
    assert b["stride"] == 1 and b["frames"] == 13  # 14 frames: 14 - 13 % 4
    buckets = grid_buckets(64, 16, 4.0)
    assert a["bucket"] == nearest_bucket(160, 96, buckets).label
    assert b["bucket"] == nearest_bucket(96, 160, buckets).label

    hy = wd / "results/dataset/manifests/hunyuan"
    assert sorted(p.name for p in (hy / "json_path").iterdir()) == [
        "hy-cut60.json",
        "hy-port30.json",
    ]
    assert sorted(p.name for p in hy.glob("*.npy")) == ["hy-cut60.npy", "hy-port30.npy"]
    sf = json.loads((Path(vae["model"]) / vae["subfolder"] / "config.json").read_text())[
        "scaling_factor"
    ]
    got = hunyuan_i2v_loader(hy / "json_path", wd / "results/dataset", 13, sf)
    assert {k: v[0] for k, v in got.items()} == {
        "hy-cut60": "cut60 caption",
        "hy-port30": "port30 caption",
    }
    for cid, (_, z) in got.items():
        stored = np.load(wd / lat.loc[cid, "latent_path"])
        assert stored.dtype == np.float16
        n_lat = (13 - 1) // 4 + 1
        np.testing.assert_allclose(z, stored[:, :n_lat].astype(np.float32), rtol=2e-3, atol=2e-3)
