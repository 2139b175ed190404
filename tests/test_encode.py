"""The encode stage on tiny random models of every family, loaded through the real code.

Every VAE family and text encoder is built from a tiny config, saved with ``save_pretrained``
and loaded back with ``from_pretrained(folder, subfolder=...)`` by the stage itself
(``tests/fakes/tiny_vae.py``). Clips are generated videos (landscape, portrait by rotation
metadata, square, letterboxed). Assertions are on shapes, frame choice, buckets, files,
normalisation against diffusers run directly, determinism and failures as data.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest
from fakes import tiny_vae as tiny
from helpers import render_lumas

from clipsift.encoders import VAES, text_encoder_class, vae_class
from clipsift.encoders.base import clip_seed, denormalize, to_model_input, valid_count
from clipsift.encoders.buckets import (
    Bucket,
    clip_geometry,
    make_buckets,
    nearest_bucket,
    picture_rect,
)
from clipsift.encoders.prompts import resolve_prompt
from clipsift.encoders.sampling import plan_frames
from clipsift.encoders.stage import FrameTimes, run_encode
from clipsift.encoders.text import clean_prompt
from clipsift.encoders.video import read_clip
from clipsift.sample import Segment, render_video, write_corrupt

# channels, spatial, temporal compression, size multiple (spatial x transformer patch)
EXPECTED = {
    "wan2_1": (16, 8, 4, 16),
    "wan2_2": (48, 16, 4, 32),
    "hunyuan": (16, 8, 4, 16),
    "cogvideox": (16, 8, 4, 16),
    "ltx": (128, 32, 8, 32),
}
RATIOS = ["16:9", "9:16", "1:1"]


# ----------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def videos(tmp_path_factory):
    """10 fps, 3 s: landscape 160x96, portrait 96x160 (stored 160x96, rotation 90), square
    96x96, pillarboxed 128x96 (picture 96x96), and a truncated file."""
    d = tmp_path_factory.mktemp("enc_videos")
    out = {}
    specs = {
        "land": dict(size=(160, 96)),
        "port": dict(size=(96, 160), rotation=90),
        "square": dict(size=(96, 96)),
        "pillar": dict(size=(128, 96), letterbox=(0, 16)),
    }
    for i, (name, spec) in enumerate(specs.items()):
        seg = Segment(30, seed=40 + i, pan=(1.0, 0.5), letterbox=spec.pop("letterbox", (0, 0)))
        render_video(d / f"{name}.mp4", [seg], fps=10, **spec)
        out[name] = d / f"{name}.mp4"
    write_corrupt(d / "broken.mp4", "truncated", source=out["land"])
    out["broken"] = d / "broken.mp4"
    return out


DISPLAY = {"land": (160, 96), "port": (96, 160), "square": (96, 96), "pillar": (128, 96)}


def clip_row(name, path, start=0, end=30, fps=10.0, size=None):
    w, h = size or DISPLAY.get(name, (160, 96))
    return {
        "clip_id": f"{name}_0000", "video_id": name, "start_frame": start, "end_frame": end,
        "start_time": start / fps, "end_time": end / fps, "fps": fps, "width": w, "height": h,
        "source_path": str(path), "path": str(path), "error": None, "split_reason": None,
    }  # fmt: skip


def tables(videos, names, *, captions=None, extra_rows=()):
    rows = [clip_row(n, videos[n]) for n in names] + list(extra_rows)
    clips = pd.DataFrame(rows)
    source = pd.DataFrame(
        {"video_id": clips["video_id"], "caption": [f"a {v} video" for v in clips["video_id"]]}
    )
    selection = pd.DataFrame({"clip_id": clips["clip_id"], "keep": True})
    return clips, source, selection


def encode_cfg(vae: dict, text: dict | None = None, **over) -> dict:
    cfg = {
        "device": "cpu",
        "batch_size": 2,
        "decode_workers": 2,
        "prefetch": 4,
        "vae": {"dtype": "float32", "sample": "mean", "seed": 0} | vae,
        "frames": {"count": 9, "stride": 1, "too_short": "drop", "min_count": 5},
        "resolution": {"bucket": 64, "aspect_ratios": RATIOS},
        "text_encoder": (text or {}) | {"enabled": text is not None},
    }
    for k, v in over.items():
        cfg[k] = cfg[k] | v if isinstance(v, dict) and isinstance(cfg.get(k), dict) else v
    return cfg


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    """Tiny VAEs of every family and a tiny UMT5 text encoder, saved like Hub repos."""
    root = tmp_path_factory.mktemp("enc_models")
    vaes = {name: tiny.build_vae(name, root / name) for name in VAES}
    text = tiny.build_text_encoder("umt5", root / "umt5", max_length=16)
    return {"vae": vaes, "text": text, "root": root}


# ----------------------------------------------------------------------------- frame sampling


def test_valid_counts():
    assert [valid_count(n, 4) for n in (0, 1, 4, 5, 80, 81, 82, 129, 130)] == [
        0, 1, 1, 5, 77, 81, 81, 129, 129,
    ]  # fmt: skip
    assert [valid_count(n, 8) for n in (8, 9, 120, 121, 128)] == [1, 9, 113, 121, 121]


def test_plan_stride_skip_and_counts():
    cfg = {"count": 80, "stride": 2, "skip_start": 3}
    p = plan_frames(100, 400, 30.0, cfg, 4)
    assert p.ok and p.count == 77 and p.requested == 77  # 80 made valid for 4n+1
    assert p.indices[0] == 103 and np.all(np.diff(p.indices) == 2)
    assert p.fps == 15.0
    # LTX: 8n+1
    assert plan_frames(0, 400, 30.0, {"count": 129}, 8).count == 129
    assert plan_frames(0, 400, 30.0, {"count": 128}, 8).count == 121


def test_plan_stride_by_fps_and_target_fps():
    rules = {"count": 9, "stride": 1, "stride_by_fps": [{"min_fps": 50, "stride": 2}]}
    assert plan_frames(0, 100, 60.0, rules, 4).step == 2  # HunyuanVideo: stride 2 at >= 50 fps
    assert plan_frames(0, 100, 50.0, rules, 4).step == 2
    assert plan_frames(0, 100, 30.0, rules, 4).step == 1
    # target fps: nearest source frames at 16 fps from 30 fps (steps of 1.875)
    p = plan_frames(0, 300, 30.0, {"count": 81, "target_fps": 16}, 4)
    assert p.count == 81 and p.fps == pytest.approx(16.0)
    want = [math.floor(k * 30 / 16 + 0.5) for k in range(81)]
    assert p.indices == want
    # never faster than the source
    assert plan_frames(0, 300, 10.0, {"count": 9, "target_fps": 16}, 4).step == 1


def test_plan_too_short_drop_or_shorten():
    drop = plan_frames(0, 30, 10.0, {"count": 81, "too_short": "drop"}, 4)
    assert not drop.ok and drop.reason.startswith("too_short") and drop.count == 0
    short = plan_frames(0, 30, 10.0, {"count": 81, "too_short": "shorten", "min_count": 5}, 4)
    assert short.ok and short.count == 29 and short.requested == 81
    # shorter than min_count: dropped even when shortening
    tiny_ = plan_frames(0, 6, 10.0, {"count": 81, "too_short": "shorten", "min_count": 9}, 4)
    assert not tiny_.ok and "min_count" in tiny_.reason
    # count null: the longest valid count
    assert plan_frames(0, 30, 10.0, {"count": None}, 8).count == 25
    # centred span
    c = plan_frames(0, 21, 10.0, {"count": 9, "position": "center"}, 4)
    assert c.indices == list(range(6, 15))


# ----------------------------------------------------------------------------- buckets


def test_plan_by_time_on_a_variable_frame_rate():
    """A shot at 30 fps for 2 s, then 10 fps for 4 s: taken at its average 16.7 fps with
    target_fps 10 (a step of 1.67), frames are 0.1 s apart in both parts, counted from their
    times; at a constant rate, times give the frames that counting gives."""
    times = np.array([i / 30 for i in range(60)] + [2.0 + i / 10 for i in range(40)])
    fps = 100 / 6.0
    cfg = {"count": None, "target_fps": 10, "stride": 1}
    p = plan_frames(0, 100, fps, cfg, 4, times)
    assert p.count == 57 and p.fps == pytest.approx(10.0)
    assert np.allclose(np.diff(times[p.indices]), 0.1, atol=1e-6)
    by_count = plan_frames(0, 100, fps, cfg, 4)
    gaps = np.diff(times[by_count.indices])
    assert gaps.min() < 0.07 and gaps.max() > 0.15  # 0.6 times the speed, then 1.8 times
    # the source slower than the rate taken: its frames repeat, as a constant-rate copy has them
    # (never above the clip's average rate: target_fps 20 takes 16.7 fps, a step of 1)
    slow = plan_frames(0, 100, fps, {"count": 9, "target_fps": 20, "skip_start": 55}, 4, times)
    assert slow.step == 1 and slow.fps == pytest.approx(fps)
    wanted = times[55] + np.arange(9) / fps
    assert np.abs(times[slow.indices] - wanted).max() <= 0.05 + 1e-9  # the nearest frames
    assert slow.indices == [55, 57, 59, 60, 61, 61, 62, 63, 63]  # 30 fps, then 10 from 2.0 s
    cfr = np.arange(300) / 30.0
    for over in ({"count": 81, "target_fps": 16}, {"count": 33, "stride": 2, "skip_start": 3},
                 {"count": 9, "position": "center", "target_fps": 16}):  # fmt: skip
        by_time = plan_frames(0, 300, 30.0, over, 4, cfr)
        assert by_time.indices == plan_frames(0, 300, 30.0, over, 4).indices, over
    with pytest.raises(ValueError, match="frame times"):
        plan_frames(0, 100, fps, cfg, 4, times[:50])


def test_a_variable_rate_clip_is_encoded_by_time(models, tmp_path):
    """The shot above, through the pipeline's ingest, scan and split, then run_encode with the
    scan's frame table: the latents' frames are 0.1 s apart in both parts of the shot."""
    from clipsift.config import with_defaults
    from clipsift.ingest import ingest_shard
    from clipsift.split.clips import scenes_to_clips
    from clipsift.split.scan import scan_shard

    times = [i / 30 for i in range(60)] + [2.0 + i / 10 for i in range(40)]
    path = tmp_path / "drop.mp4"
    render_video(path, [Segment(100, seed=47, pan=(1.0, 0.5))], fps=30, size=(160, 96),
                 times=times)  # fmt: skip
    items = pd.DataFrame([{"source": "s", "video_id": "v", "uri": str(path), "path": str(path),
                           "caption": "a shot"}])  # fmt: skip
    source = ingest_shard(items)
    scenes, frames, _, _ = scan_shard(source, with_defaults("scan", None))
    clips = scenes_to_clips(scenes, source, with_defaults("split", None), frames)
    assert len(clips) == 1 and clips["frame_rate_mode"].iloc[0] == "variable"
    selection = pd.DataFrame({"clip_id": clips["clip_id"], "keep": True})
    cfg = encode_cfg(models["vae"]["wan2_1"], frames={"count": 41, "target_fps": 10})
    table = run_encode(clips, source, selection, None, None, cfg, tmp_path / "out", frames=frames)
    row = table.iloc[0]
    assert row["status"] == "ok" and row["frames"] == 41, row["error"]
    doc = json.loads((tmp_path / "out" / f"{row['clip_id']}.json").read_text())
    taken = np.asarray(times)[doc["frames"]["indices"]]
    assert np.allclose(np.diff(taken), 0.1, atol=2e-3) and doc["frames"]["fps"] == 10
    # a sparser table (scan.luma_stride 4): the frames between, and after its last row, get
    # their times from their neighbours and the clip's last_time (not the last row's time)
    sparse = frames[frames["frame"] % 4 == 0]
    assert FrameTimes(sparse).of(clips.iloc[0]) == pytest.approx(times, abs=1e-3)
    # a clip table from before last_time: past the last row, the clip's own pace
    older = FrameTimes(sparse).of(clips.drop(columns="last_time").iloc[0])
    assert older[:97] == pytest.approx(times[:97], abs=1e-3) and (np.diff(older) > 0).all()
    # without the frame table (an older caller), frames are counted as before
    run_encode(clips, source, selection, None, None, cfg, tmp_path / "old")
    doc = json.loads((tmp_path / "old" / f"{row['clip_id']}.json").read_text())
    assert np.diff(np.asarray(times)[doc["frames"]["indices"]]).max() > 0.15


def test_buckets_from_bucket_size():
    ratios = ["16:9", "9:16", "4:3", "3:4", "1:1"]
    b720 = {b.name: b.label for b in make_buckets({"bucket": 960, "aspect_ratios": ratios}, 16)}
    assert b720["16:9"] == "1280x720" and b720["9:16"] == "720x1280" and b720["1:1"] == "960x960"
    for size, m in ((960, 16), (720, 16), (480, 16), (960, 32), (64, 32)):
        for b in make_buckets({"bucket": size, "aspect_ratios": ratios}, m):
            assert b.width % m == 0 and b.height % m == 0
            if size >= 480:  # coarse multiples of tiny buckets can miss the area by more
                assert abs(math.log(b.width * b.height / size**2)) < 0.05
    fixed = make_buckets({"size": [480, 832], "bucket": 480, "aspect_ratios": ratios}, 16)
    assert [b.label for b in fixed] == ["832x480"]
    listed = make_buckets({"buckets": [[480, 832], [832, 480]], "bucket": 1}, 16)
    assert [b.label for b in listed] == ["832x480", "480x832"]


def test_nearest_bucket_portrait_landscape_square():
    buckets = make_buckets({"bucket": 480, "aspect_ratios": ["16:9", "9:16", "1:1"]}, 16)
    assert nearest_bucket(1920, 1080, buckets).name == "16:9"
    assert nearest_bucket(1080, 1920, buckets).name == "9:16"
    assert nearest_bucket(500, 480, buckets).name == "1:1"
    # in log ratio, 5:4 is nearer 1:1 and 3:2 nearer 16:9
    assert nearest_bucket(600, 480, buckets).name == "1:1"
    assert nearest_bucket(720, 480, buckets).name == "16:9"


def test_border_crop_then_centre_crop():
    buckets = [Bucket(64, 64, "1:1"), Bucket(80, 48, "16:9")]
    # pillarboxed 128x96 with a 96x96 picture: the border crop makes it square
    g = clip_geometry(128, 96, [16, 0, 96, 96], buckets)
    assert g.border_crop and g.bucket.name == "1:1" and g.rect == (16, 0, 96, 96)
    # without it the whole 4:3 frame is nearer 80x48, bars and all
    g2 = clip_geometry(128, 96, [16, 0, 96, 96], buckets, use_crop=False)
    assert not g2.border_crop and g2.bucket.name == "16:9" and g2.rect == (0, 9, 128, 77)
    # 1920x800 letterboxed inside 1920x1080 goes to the wide bucket, cropped to its ratio
    g3 = clip_geometry(1920, 1080, [0, 140, 1920, 800], buckets)
    assert g3.bucket.name == "16:9"
    x, y, w, h = g3.rect
    assert y == 140 and h == 800 and abs(w / h - 80 / 48) < 0.01 and x == (1920 - w) // 2
    # a crop outside the frame is ignored
    assert picture_rect(100, 100, [0, 0, 200, 50]) == ((0, 0, 100, 100), False)


# ----------------------------------------------------------------------------- decoding


def test_read_clip_takes_the_planned_frames(tmp_path):
    """Frame i of a lossless video has luma 20 + 5 i: the decoded clip names its frames."""
    lumas = [20 + 5 * i for i in range(40)]
    path = render_lumas(tmp_path / "ramp.mp4", lumas, fps=25, size=(64, 48), gop=8)
    expected_rgb = np.clip(np.round((np.array(lumas) - 16) * 255 / 219), 0, 255)
    for cfg in ({"count": 9, "stride": 3, "skip_start": 2}, {"count": 9, "target_fps": 10}):
        plan = plan_frames(5, 40, 25.0, cfg, 4)
        frames = read_clip(str(path), plan.indices, (0, 0.0), (0, 0, 64, 48), (32, 16))
        assert frames.shape == (9, 16, 32, 3)
        got = [int(np.argmin(np.abs(expected_rgb - f.mean()))) for f in frames]
        assert got == plan.indices


def test_read_clip_crops_and_resizes_exactly(videos):
    """The crop and one area resize of the full-size RGB frame, nothing else."""
    import av
    import cv2

    rect, size = (24, 8, 112, 80), (28, 20)
    got = read_clip(str(videos["land"]), [3, 4], (0, 0.0), rect, size)
    with av.open(str(videos["land"])) as c:
        full = [f.to_ndarray(format="rgb24") for f in c.decode(video=0)][3:5]
    x, y, w, h = rect
    want = [cv2.resize(f[y : y + h, x : x + w], size, interpolation=cv2.INTER_AREA) for f in full]
    np.testing.assert_array_equal(got, np.stack(want))


def test_read_clip_crops_display_pixels_of_an_anamorphic_frame(tmp_path):
    """The rect is in display pixels (the clip's width and height, technical.crop): on a
    720x576 frame with 16:11 pixels (a 4:3 picture between bars, PAL widescreen) it was cut from
    the coded pixels, so the VAE got bar, lost the picture's left side and a squeezed rest."""
    from clipsift.sample import Segment, render_video

    seg = Segment(6, seed=11, letterbox=(0, 128))  # 4:3 picture in a 1024x576 display
    rect, size = (128, 0, 768, 576), (96, 72)
    got = {}
    for name, sar in (("square", None), ("sar", (16, 11))):
        path = tmp_path / f"{name}.mp4"
        render_video(path, [seg], fps=25, size=(1024, 576), sar=sar)
        got[name] = read_clip(str(path), [2, 3], (0, 0.0), rect, size).astype(int)
    assert got["sar"].shape == (2, 72, 96, 3)
    # the bars are left out: no black column at either side (the coded crop ended in bar)
    assert got["sar"][:, :, 0].mean() > 40 and got["sar"][:, :, -1].mean() > 40
    assert np.abs(got["sar"] - got["square"]).mean() < 4


def test_read_clip_past_the_end_is_an_error(tmp_path, videos):
    from clipsift.io.decode import VideoError

    with pytest.raises(VideoError):
        read_clip(str(videos["land"]), list(range(25, 40)), (0, 0.0), (0, 0, 160, 96), (80, 48))


# ----------------------------------------------------------------------------- prompts


def test_prompt_resolution_order():
    caps = {"a_0000": {"caption": "from the captioner"}, "b_0000": {"caption": "  "}}
    src = {"a": "given a", "b": "given b", "c": None}
    assert resolve_prompt("a_0000", "a", caps, src) == ("from the captioner", "caption")
    assert resolve_prompt("b_0000", "b", caps, src) == ("given b", "source")
    assert resolve_prompt("c_0000", "c", caps, src) == ("", "empty")
    assert resolve_prompt("a_0000", "a", None, src) == ("given a", "source")
    assert clean_prompt("  a &amp;\n b ") == "a & b"


# ----------------------------------------------------------------------------- every VAE family


def reference_latents(name: str, vae_cfg: dict, frames: np.ndarray, raw: bool = False):
    """diffusers run directly: the posterior mean, normalised as the family's pipeline does
    (and, with ``raw``, also as the VAE gives it)."""
    import diffusers
    import torch

    cls = getattr(diffusers, tiny.VAE_CONFIGS[name][0])
    model = cls.from_pretrained(vae_cfg["model"], subfolder="vae").eval()
    with torch.no_grad():
        z = model.encode(to_model_input(frames)[None]).latent_dist.mode().float()
    unscaled = z[0].numpy().copy()
    c = model.config
    if name in ("wan2_1", "wan2_2"):
        mean = torch.tensor(c.latents_mean).view(1, -1, 1, 1, 1)
        z = (z - mean) / torch.tensor(c.latents_std).view(1, -1, 1, 1, 1)
    elif name == "ltx":
        z = (z - model.latents_mean.view(1, -1, 1, 1, 1)) * c.scaling_factor
        z = z / model.latents_std.view(1, -1, 1, 1, 1)
    else:
        z = z * c.scaling_factor
    return (z[0].numpy(), unscaled) if raw else z[0].numpy()


@pytest.mark.parametrize("name", sorted(VAES))
def test_every_vae_family(name, models, videos, tmp_path):
    channels, spatial, temporal, multiple = EXPECTED[name]
    clips, source, selection = tables(
        videos,
        ["land", "port", "square"],
        extra_rows=[clip_row("broken", videos["broken"])],
    )
    selection.loc[len(selection)] = {"clip_id": "unkept_0000", "keep": False}
    vae_cfg = models["vae"][name]
    cfg = encode_cfg(vae_cfg, models["text"])
    out = tmp_path / "latents"
    table = run_encode(clips, source, selection, None, None, cfg, out).set_index("clip_id")

    assert "unkept_0000" not in table.index  # only kept clips are encoded
    bad = table.loc["broken_0000"]
    assert bad["status"] == "error" and bad["reason"] == "decode_failed" and bad["error"]

    want_bucket = {"land": "16:9", "port": "9:16", "square": "1:1"}
    for v, ratio in want_bucket.items():
        row = table.loc[f"{v}_0000"]
        assert row["status"] == "ok", row["error"]
        w, h = int(row["width"]), int(row["height"])
        assert row["bucket_ratio"] == ratio and w % multiple == 0 and h % multiple == 0
        assert (w > h) == (v == "land") and (h > w) == (v == "port")
        n = int(row["frames"])
        assert n == valid_count(9, temporal) and (n - 1) % temporal == 0
        shape = (channels, (n - 1) // temporal + 1, h // spatial, w // spatial)
        lat = np.load(out / f"{v}_0000.npy")
        assert lat.shape == shape and tuple(row["latent_shape"]) == shape
        assert lat.dtype == np.float32 and np.isfinite(lat).all()
        emb = np.load(out / f"{v}_0000.text.npy")
        mask = np.load(out / f"{v}_0000.text_mask.npy")
        assert emb.shape == (16, 32) and mask.shape == (16,) and mask.sum() == row["n_tokens"]
        assert not emb[mask == 0].any()  # zeros past the prompt
        doc = json.loads((out / f"{v}_0000.json").read_text())
        assert doc["clip_id"] == f"{v}_0000" and doc["video_id"] == v
        assert doc["latent_shape"] == list(shape) and doc["prompt"] == f"a {v} video"
        assert doc["prompt_source"] == "source" and doc["frames"]["count"] == n
        assert doc["vae"]["class"] == tiny.VAE_CONFIGS[name][0]
        assert doc["vae"]["resolved_revision"].startswith("local:")
        assert doc["vae"]["normalization"]["kind"] in ("per_channel_mean_std", "scaling_factor")
        assert doc["bucket"]["width"] == w and doc["text"]["text"]["n_tokens"] == row["n_tokens"]

    # the stored latents are the family's normalised posterior mean, as diffusers computes it
    row = table.loc["land_0000"]
    frames = read_clip(
        str(videos["land"]),
        json.loads((out / "land_0000.json").read_text())["frames"]["indices"],
        (0, 0.0),
        tuple(row["crop"]),
        (int(row["width"]), int(row["height"])),
    )
    ref, raw = reference_latents(name, vae_cfg, frames, raw=True)
    stored = np.load(out / "land_0000.npy")
    np.testing.assert_allclose(stored, ref, rtol=1e-4, atol=1e-4)
    # and back to the VAE's own latents, for trainers that normalise on load
    norm = json.loads(row["normalization"])
    np.testing.assert_allclose(denormalize(stored, norm), raw, rtol=1e-4, atol=1e-4)


def test_tiling_keeps_the_latent_grid(models):
    """Tiled encoding (tiles smaller than the frame, a stride that is not a multiple of the
    compression) gives the untiled grid for every family; a wrong grid is refused."""
    import torch

    for name in VAES:
        cfg = models["vae"][name] | {"tiling": True, "tile_size": 64, "tile_stride": 48}
        vae = vae_class(name).load(cfg, "cpu", torch.float32)
        n = vae.temporal + 1  # two latent frames
        x = torch.rand(1, 3, n, 64, 96) * 2 - 1  # wider than a tile
        z = vae.encode(x, ["c"])
        vae.check_shape(z, n, 64, 96)
        with pytest.raises(ValueError, match="latent shape"):
            vae.check_shape(z[:, :, :, :-1], n, 64, 96)


def test_loaded_geometry_matches_the_family(models):
    for name, (_, spatial, temporal, _) in EXPECTED.items():
        vae = vae_class(name).load(models["vae"][name] | {"dtype": "float32"}, "cpu", None)
        assert (vae.channels, vae.spatial, vae.temporal, vae.multiple()) == EXPECTED[name]
        assert vae.latent_shape(81, 480, 832)[1:] == (
            (81 - 1) // temporal + 1,
            480 // spatial,
            832 // spatial,
        )


# ----------------------------------------------------------------------------- determinism


def test_deterministic_mean_and_seeded_sample(models, videos, tmp_path):
    clips, source, selection = tables(videos, ["land", "square"])
    vae = models["vae"]["hunyuan"]

    frames = {"count": 5, "stride": 1, "too_short": "drop"}  # 2 latent frames: fast

    def run(tag, **vae_over):
        cfg = encode_cfg(vae | vae_over, None, frames=frames)
        out = tmp_path / tag
        run_encode(clips, source, selection, None, None, cfg, out)
        return {c: np.load(out / f"{c}.npy") for c in clips["clip_id"]}

    mean1, mean2 = run("m1"), run("m2")
    s1, s2 = run("s1", sample="sample", seed=7), run("s2", sample="sample", seed=7)
    s3 = run("s3", sample="sample", seed=8)
    for c in clips["clip_id"]:
        np.testing.assert_array_equal(mean1[c], mean2[c])
        np.testing.assert_array_equal(s1[c], s2[c])
        assert not np.array_equal(s1[c], mean1[c]) and not np.array_equal(s1[c], s3[c])
    # the noise belongs to the clip, not to its batch: batch size 1 gives the same latents
    cfg = encode_cfg(vae | {"sample": "sample", "seed": 7}, None, batch_size=1, frames=frames)
    run_encode(clips, source, selection, None, None, cfg, tmp_path / "b1")
    for c in clips["clip_id"]:
        np.testing.assert_allclose(np.load(tmp_path / "b1" / f"{c}.npy"), s1[c], atol=1e-5)
    assert clip_seed(7, "a") == clip_seed(7, "a") != clip_seed(7, "b")


# ----------------------------------------------------------------------------- stage options


def test_crop_captions_short_clips_and_options(models, videos, tmp_path):
    """Border crop from scores.parquet, caption.json over source captions, too_short drop and
    shorten, fixed size, stride and skip, tiling and slicing, float16 storage."""
    short = clip_row("square", videos["square"], start=0, end=6) | {"clip_id": "short_0000"}
    clips, source, selection = tables(videos, ["pillar", "land"], extra_rows=[short])
    scores = pd.DataFrame(
        {"clip_id": ["pillar_0000", "land_0000"], "technical.crop": [[16, 0, 96, 96], None]}
    )
    captions = {  # the caption stage's caption.json
        "meta": {"model": "x"},
        "clips": {
            "pillar_0000": {"caption": "captioned", "model": "x", "revision": "r1"},
            "land_0000": {"caption": None, "error": "empty caption", "model": "x"},
        },
    }
    vae = models["vae"]["cogvideox"] | {"tiling": True, "tile_size": 32, "tile_stride": 24}
    cfg = encode_cfg(
        vae | {"slicing": True, "store_dtype": "float16"},
        models["text"],
        frames={"count": 9, "stride": 2, "skip_start": 3, "too_short": "drop"},
    )
    out = tmp_path / "a"
    t = run_encode(clips, source, selection, scores, captions, cfg, out).set_index("clip_id")
    p = t.loc["pillar_0000"]
    assert p["border_crop"] and p["bucket_ratio"] == "1:1" and list(p["crop"]) == [16, 0, 96, 96]
    assert p["prompt"] == "captioned" and p["prompt_source"] == "caption"
    assert p["caption_model"] == "x" and p["caption_revision"] == "r1"
    assert t.loc["land_0000", "prompt_source"] == "source"  # the captioner failed on it
    assert pd.isna(t.loc["land_0000", "caption_model"])
    assert not t.loc["land_0000", "border_crop"]
    assert t.loc["short_0000", "status"] == "dropped"
    assert t.loc["short_0000", "reason"] == "too_short"
    assert p["first_frame"] == 3 and p["stride"] == 2 and p["last_frame"] == 3 + 8 * 2
    assert np.load(out / "pillar_0000.npy").dtype == np.float16
    assert not (out / "short_0000.npy").exists()

    # shorten: the short clip is encoded at its longest valid count; fixed size for all
    cfg2 = encode_cfg(
        models["vae"]["hunyuan"],
        None,
        frames={"count": 9, "too_short": "shorten", "min_count": 5},
        resolution={"size": [48, 96], "bucket": 64, "aspect_ratios": RATIOS},
    )
    t2 = run_encode(clips, source, selection, scores, None, cfg2, tmp_path / "b")
    t2 = t2.set_index("clip_id")
    assert t2.loc["short_0000", "status"] == "ok" and t2.loc["short_0000", "frames"] == 5
    assert set(t2["bucket"]) == {"96x48"}
    assert tuple(t2.loc["short_0000", "latent_shape"]) == (16, 2, 6, 12)
    assert t2["text_path"].isna().all()  # text encoder off


def test_every_text_encoder(tmp_path):
    from clipsift.encoders import text_encoder_class

    long = " ".join(["red cat"] * 40)
    for name in ("t5", "umt5", "clip", "llama"):
        cfg = tiny.build_text_encoder(name, tmp_path / name, max_length=12)
        enc = text_encoder_class(name).load(cfg, "cpu", None)
        out = enc.encode(["a red cat runs", "", long])
        again = enc.encode(["a red cat runs"])
        for rec in out:
            assert rec["embeds"].shape == (12, 32) and rec["mask"].shape == (12,)
            assert not rec["embeds"][rec["mask"] == 0].any()
            assert ("pooled" in rec) == (name == "clip")
        assert out[2]["truncated"] and not out[0]["truncated"] and out[2]["mask"].all()
        assert out[0]["n_tokens"] < 12
        np.testing.assert_array_equal(again[0]["embeds"], out[0]["embeds"])
        assert enc.describe()["class"] in (
            "T5EncoderModel",
            "UMT5EncoderModel",
            "CLIPTextModel",
            "LlamaModel",
        )


# ----------------------------------------------------------------------------- resume

ENCODE_WORKER = """
import json, sys, time
import pandas as pd
from clipsift.encoders.base import VideoVAE
from clipsift.encoders.stage import run_encode

real = VideoVAE.encode
def encode(self, videos, clip_ids):  # slow enough for the test to kill the job halfway
    time.sleep(0.5)
    return real(self, videos, clip_ids)
VideoVAE.encode = encode

a = json.loads(sys.argv[1])
clips, source, selection = (pd.read_json(a[k], orient="records") for k in ("clips", "source", "selection"))
run_encode(clips, source, selection, None, None, a["cfg"], a["out"], cache_dir=a["cache"])
print("finished")
"""


def test_killed_encode_resumes_with_only_the_missing_clips(models, videos, tmp_path, monkeypatch):
    """The job is killed after two clips' latents are cached; the rerun encodes only the others,
    with latents equal to an uninterrupted run's; a third run loads no model at all."""
    import subprocess
    import sys

    from helpers import wait_for

    from clipsift.encoders.base import VideoVAE

    base, source, _ = tables(videos, ["land", "port", "square", "pillar"])
    clips = pd.concat(
        [base.assign(clip_id=lambda d, k=k: d["clip_id"] + f"_{k}") for k in range(2)],
        ignore_index=True,
    )  # 8 kept clips
    selection = pd.DataFrame({"clip_id": clips["clip_id"], "keep": True})
    cfg = encode_cfg(models["vae"]["wan2_1"], models["text"], batch_size=1)
    paths = {}
    for k, df in {"clips": clips, "source": source, "selection": selection}.items():
        paths[k] = str(tmp_path / f"{k}.json")
        df.to_json(paths[k], orient="records")
    cache = tmp_path / "cache"
    args = {**paths, "cfg": cfg, "out": str(tmp_path / "killed"), "cache": str(cache)}
    proc = subprocess.Popen(
        [sys.executable, "-c", ENCODE_WORKER, json.dumps(args)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        wait_for(
            lambda: len([p for p in cache.glob("*.npy") if not p.name.startswith(".")]) >= 2,
            proc,
            "2 cached latents",
            log=lambda: proc.stderr.read().decode()[-2000:],
        )
        proc.kill()
    finally:
        proc.wait(timeout=30)
    assert b"finished" not in proc.stdout.read()
    finished = [p for p in cache.glob("*.npy") if not p.name.startswith(".")]  # not temporaries
    done = {p.name.split(".")[0] for p in finished}
    assert 2 <= len(done) < 8
    for p in finished:  # no half-written file under a final name
        np.load(p)

    calls, loads = [], []
    real_encode, real_load = VideoVAE.encode, text_encoder_class("umt5").load

    def counting(self, x, clip_ids):
        calls.extend(clip_ids)
        return real_encode(self, x, clip_ids)

    def counting_load(*a, **k):
        loads.append(1)
        return real_load(*a, **k)

    monkeypatch.setattr(VideoVAE, "encode", counting)
    monkeypatch.setattr(text_encoder_class("umt5"), "load", counting_load)
    out = tmp_path / "resumed"
    t = run_encode(clips, source, selection, None, None, cfg, out, cache_dir=cache)
    assert sorted(calls) == sorted(set(clips["clip_id"]) - done)
    assert not list(cache.glob(".*"))  # what the kill left half-written is gone
    assert set(t.loc[t["cached"], "clip_id"]) == done
    assert (t["status"] == "ok").all()
    run_encode(clips, source, selection, None, None, cfg, tmp_path / "fresh")
    for cid in clips["clip_id"]:
        np.testing.assert_array_equal(
            np.load(out / f"{cid}.npy"), np.load(tmp_path / "fresh" / f"{cid}.npy")
        )
        np.testing.assert_array_equal(
            np.load(out / f"{cid}.text.npy"), np.load(tmp_path / "fresh" / f"{cid}.text.npy")
        )
    # everything cached: the VAE encodes nothing and the text encoder is not loaded
    calls.clear()
    loads.clear()
    again = run_encode(
        clips, source, selection, None, None, cfg, tmp_path / "third", cache_dir=cache
    )
    assert calls == [] and loads == [] and again["cached"].all()
    pd.testing.assert_frame_equal(
        again.drop(columns=["latent_path", "json_path", "text_path", "text_mask_path"]),
        t.drop(columns=["latent_path", "json_path", "text_path", "text_mask_path"]).assign(
            cached=True
        ),
    )
    # another frame count is another key: encoded again, not taken from the cache
    cfg4 = encode_cfg(
        models["vae"]["wan2_1"],
        None,
        batch_size=1,
        frames={"count": 5, "stride": 1, "too_short": "drop"},
    )
    run_encode(clips, source, selection, None, None, cfg4, tmp_path / "fourth", cache_dir=cache)
    assert sorted(calls) == sorted(clips["clip_id"])


# ----------------------------------------------------------------------------- presets


@pytest.mark.parametrize(
    "preset, family, count, sizes",
    [
        ("wan2_1-480p", "wan2_1", 81, {"832x480", "480x832", "624x624"}),
        ("omnivideo", "wan2_1", 81, {"832x480", "480x832"}),
        ("hunyuan-720p", "hunyuan", 129, {"1280x720", "720x1280", "960x960"}),
        ("ltx-video", "ltx", 121, {"704x512", "512x704", "608x608"}),
    ],
)
def test_presets_validate_and_fit_their_vae(preset, family, count, sizes):
    import yaml
    from snakemake.utils import update_config, validate

    from clipsift.config import SCHEMA

    config = {"sources": [{"name": "s", "type": "folder", "path": "videos"}]}
    update_config(
        config, yaml.safe_load((SCHEMA.parent / "presets" / f"{preset}.yaml").read_text())
    )
    validate(config, str(SCHEMA))
    enc = config["encode"]
    assert enc["enabled"] and enc["vae"]["name"] == family and enc["vae"]["subfolder"] == "vae"
    for section in ("vae", "text_encoder"):
        rev = enc[section]["revision"]
        assert len(rev) == 40 and int(rev, 16) >= 0  # a pinned commit
    _, spatial, temporal, multiple = EXPECTED[family]
    assert enc["frames"]["count"] == valid_count(enc["frames"]["count"], temporal) == count
    buckets = make_buckets(enc["resolution"], multiple)
    assert sizes <= {b.label for b in buckets}
    assert all(b.width % multiple == 0 and b.height % multiple == 0 for b in buckets)
    from clipsift.manifests import check_config

    check_config(config)  # the manifests it asks for fit its models


def test_latents_of_non_square_pixels_are_not_taken_from_an_older_cache():
    """Latents of a source with non-square pixels were cut from its coded pixels before
    2026-12-06 under the same cache key: such a source is known by a new name now, so they are
    made again; square-pixel sources keep theirs."""
    import pandas as pd

    from clipsift.encoders.stage import _source_ids

    source = pd.DataFrame(
        {"video_id": ["a", "b", "c"], "hash": ["h1", "h2", "h3"], "path": ["", "", ""],
         "sar": [1.0, 16 / 11, float("nan")]}
    )  # fmt: skip
    ids = _source_ids(source)
    assert ids["a"] == "h1" and ids["c"] == "h3"
    assert ids["b"] != "h2" and ids["b"].startswith("h2")
