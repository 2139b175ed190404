"""Local captioners: tiny random VLMs of four families, saved and loaded like Hub checkpoints.

The models are built from tiny configs and saved with ``save_pretrained`` (model, byte-level BPE
tokenizer, image processor, video processor config, chat template); the tests then run the real
loading, input building and ``generate`` code on generated 160x90 clips. Random weights write
random text: the tests check plumbing, shapes, records and determinism, never caption quality.
"""

from __future__ import annotations

import json
import math
import re
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from fakes.clips import (
    caption_config,
    caption_run_config,
    render_caption_videos,
    tables,
    vfr_caption_clip,
)
from fakes.tiny_vlm import BUILDERS, tiny_causal_lm, tiny_clip
from helpers import plan_shards, run_snakemake, wait_for

from clipsift.captioners import REGISTRY, family
from clipsift.captioners.base import ClipJob, sample_frames
from clipsift.captioners.cache import CaptionCache
from clipsift.captioners.cleanup import clean_caption
from clipsift.captioners.local import torchvision_available
from clipsift.captioners.shard import caption_shard, kept_jobs

FAMILIES = sorted(REGISTRY)
NO_TORCHVISION = (
    "torchvision is not installed: transformers' video processors (the official path) cannot be "
    "built here, so there is nothing to compare the images path with; it runs wherever "
    "torchvision imports (GPU machines)"
)


@pytest.fixture(scope="session")
def tiny_models(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("tiny_models")
    out = {name: build(root / name) for name, build in BUILDERS.items()}
    out["lm"] = tiny_causal_lm(root / "lm")
    out["clip"] = tiny_clip(root / "clip")
    return out


@pytest.fixture(scope="session")
def clip_videos(tmp_path_factory) -> dict[str, Path]:
    return render_caption_videos(tmp_path_factory.mktemp("caption_videos"))


def local_config(tiny_models, name: str, **over) -> dict:
    base = {
        "enabled": True, "provider": "local", "model": name, "model_id": str(tiny_models[name]),
        "revision": None, "device": "cpu", "max_new_tokens": 8, "batch_size": 2, "max_side": 160,
        "max_frames": 6,
    }  # fmt: skip
    return caption_config(**{**base, **over})


def items_for(cap, videos, which=("a_0000", "a_0001")):
    clips, source, selection = tables(videos)
    jobs = {j.clip_id: j for j in kept_jobs(clips, source, selection)}
    out = []
    for cid in which:
        plan = cap.plan(jobs[cid])
        out.append((jobs[cid], plan, cap.decode(jobs[cid], plan)))
    return out


# ----------------------------------------------------------------------------- units


@pytest.mark.parametrize(
    ("raw", "clean"),
    [
        ("The video shows a dog running on a beach.", "A dog running on a beach."),
        ("In this video, a man walks.", "A man walks."),
        ("In the video we see two cars.", "Two cars."),
        ("This clip depicts a sunset over the sea.", "A sunset over the sea."),
        ("The footage captures a busy street at night.", "A busy street at night."),
        ("This clip is a timelapse of clouds.", "A timelapse of clouds."),
        ("Sure! Here is a detailed caption: The video shows a cat.", "A cat."),
        ("  A red ball   bounces.\n", "A red ball bounces."),
        ("A video game character jumps.", "A video game character jumps."),
        ("A dog runs across a wide green field. It jumps", "A dog runs across a wide green field."),
        (
            "A dog runs. It jumps over a fence and then it",
            "A dog runs. It jumps over a fence and then it",
        ),
    ],
)
def test_cleanup(raw, clean):
    assert clean_caption(raw) == clean


def test_cleanup_keeps_raw_when_off():
    assert clean_caption("The video shows x", strip_boilerplate=False) == "The video shows x"
    assert clean_caption(None) is None


def test_sample_frames_counts_and_indices():
    job = ClipJob("c", "v", "x.mp4", 1.0, 4.0, 10.0, 30, 160, 90)
    plan = sample_frames(job, rate=2.0, max_frames=16)
    assert len(plan.indices) == 6 and plan.indices[0] == 0 and plan.indices[-1] == 29
    # times point into the indexed frame (a quarter frame in)
    assert all(
        abs(t - (1.0 + (i + 0.25) / 10)) < 1e-9
        for t, i in zip(plan.times, plan.indices, strict=True)
    )
    assert len(sample_frames(job, 2.0, 5, multiple=2).indices) == 4  # even, within max_frames
    short = ClipJob("c", "v", "x.mp4", 0.0, 0.3, 10.0, 3, 160, 90)
    assert len(sample_frames(short, 2.0, 16, multiple=2).indices) == 2  # at least one pair


def test_a_variable_rate_clip_is_sampled_evenly_over_its_time():
    """2 s at 30 fps, then 3 s at 10 fps: eight frames lie within one 10-fps frame of an even
    spread over the clip's time (spread over its 90 frames, six of the eight fell in the first
    2 s and the largest gap was 1.2 s); a constant-rate clip's frames are as they were."""
    from dataclasses import replace

    times = [1.0 + i / 30 for i in range(60)] + [3.0 + i / 10 for i in range(30)]
    job = ClipJob("c", "v", "x.mp4", 1.0, 6.0, 18.0, 90, 160, 90, frame_rate_mode="variable",
                  times=tuple(times))  # fmt: skip
    plan = sample_frames(job, rate=1e9, max_frames=8)
    even = np.linspace(times[0], times[-1], 8)
    assert plan.times == [times[i] for i in plan.indices]
    assert np.abs(np.asarray(plan.times) - even).max() <= 0.1 / 2 + 1e-9
    assert sum(t < 3.0 for t in plan.times) == 3
    # the processor's frame places give each frame's time as index / fps, to half a frame
    places = plan.positions(job)
    assert np.abs(np.asarray(places) / 18.0 - (np.asarray(plan.times) - 1.0)).max() <= 0.5 / 18
    # without the frame times (a scan that recorded none), and at a constant rate: by count
    constant = sample_frames(replace(job, times=None), rate=1e9, max_frames=8)
    assert constant.indices == np.linspace(0, 89, 8).round().astype(int).tolist()
    assert constant.positions(replace(job, frame_rate_mode="constant")) == constant.indices


def test_a_variable_rate_clips_cached_caption_is_not_reused():
    """Captions of variable-rate clips whose model input changed are made again: prompts that
    state the frames' times (Qwen3-VL, SmolVLM2) now give the decoded times, and frames are
    now spread over the clip's time where the scan gave them (not for the upload captioner,
    which sends the file). Constant-rate clips keep their keys."""
    from dataclasses import replace

    from clipsift.captioners.shard import _caption_key

    job = ClipJob("c", "v", "x.mp4", 1.0, 4.0, 10.0, 30, 160, 90)
    vfr = replace(job, frame_rate_mode="variable")
    timed = replace(vfr, times=tuple(1.0 + i / 10 for i in range(30)))
    ident = {"provider": "local", "model": "qwen3_vl", "model_id": "m", "revision": "r"}
    key = _caption_key(job, ident, "p", "s", True, True)
    assert (
        _caption_key(replace(job, frame_rate_mode="constant"), ident, "p", "s", True, True) == key
    )
    assert _caption_key(vfr, ident, "p", "s", True, True) != key
    # a captioner that states no times (Qwen2.5-VL, the API's images) keeps its captions where
    # the frames are sampled as before (no frame times), and makes them again where not
    assert _caption_key(vfr, ident, "p", "s", False, True) == key
    assert _caption_key(timed, ident, "p", "s", False, True) != key
    assert _caption_key(timed, ident, "p", "s", False, False) == key  # the upload captioner
    from clipsift.captioners.api import ApiCaptioner, UploadCaptioner

    assert ApiCaptioner.samples_frames and not UploadCaptioner.samples_frames
    timed = {name for name in FAMILIES if family(name).prompt_times}
    assert timed == {"qwen3_vl", "smolvlm2"}
    clips, source, selection = tables({"a": "a.mp4", "b": "b.mp4", "bad": "bad.mp4"})
    clips["frame_rate_mode"] = "variable"
    assert {j.frame_rate_mode for j in kept_jobs(clips, source, selection)} == {"variable"}


def test_size_rules_match_transformers():
    """Our copies of the Qwen resize rules give what transformers' own functions give."""
    from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import smart_resize as ref2
    from transformers.models.qwen3_vl.video_processing_qwen3_vl import smart_resize as ref3

    from clipsift.captioners.qwen2_5_vl import smart_resize
    from clipsift.captioners.qwen3_vl import smart_resize_video

    rng = np.random.default_rng(0)
    for h, w in rng.integers(20, 2000, size=(200, 2)):
        assert smart_resize(h, w, 28, 3136, 200704) == ref2(h, w, 28, 3136, 200704)
        n = int(rng.integers(2, 40))
        got = smart_resize_video(n, h, w, 2, 32, 4096, 32 * 32 * 768)
        assert got == ref3(n, h, w, 2, 32, 4096, 32 * 32 * 768)


def test_number_words():
    from clipsift.captioners.smolvlm2 import number_words

    expected = {1: "one", 8: "eight", 16: "sixteen", 21: "twenty-one", 64: "sixty-four"}
    assert {n: number_words(n) for n in expected} == expected


def test_cache_skips_a_line_cut_short(tmp_path):
    path = tmp_path / "c.jsonl"
    with CaptionCache(path) as cache:
        cache.put("k1", "caption", "a", {"caption": "one"})
    with open(path, "a") as fh:
        fh.write('{"key": "k2", "kind": "caption", "record": {"capt')  # killed mid-write
    with CaptionCache(path) as cache:
        assert cache.get("k1") == {"caption": "one"} and cache.get("k2") is None
        cache.put("k3", "caption", "b", {"caption": "three"})
    assert CaptionCache(path).get("k3") == {"caption": "three"}


def test_caption_tests_of_the_selection():
    from clipsift.selection import select_captions

    sel = pd.DataFrame({"clip_id": ["a", "b", "c", "d"], "keep": [True, True, True, False],
                        "reasons": [[], [], [], ["motion.rel_per_s missing"]]})  # fmt: skip
    caps = {"clips": {"a": {"alignment": 0.30}, "b": {"alignment": 0.10}, "c": {"alignment": None}}}
    out = select_captions(sel, caps, {"min_alignment": 0.2}).set_index("clip_id")
    assert list(out["keep"]) == [True, False, False, False]
    assert out.loc["b", "reasons"] == ["caption.alignment=0.1 < 0.2"]
    assert out.loc["c", "reasons"] == ["caption.alignment missing"]
    assert out.loc["d", "reasons"] == ["motion.rel_per_s missing"]  # not judged again
    rec = select_captions(sel, caps, {"min_alignment": 0.2, "record_only": True})
    assert list(rec["keep"]) == list(sel["keep"]) and rec["caption_alignment"].iloc[0] == 0.30


def test_gpu_resource():
    from clipsift.captioners import gpus_needed

    assert gpus_needed({"provider": "local", "device": "auto"}) == 1
    assert gpus_needed({"provider": "local", "device": "cpu"}) == 0
    assert gpus_needed({"provider": "api", "device": "auto"}) == 0
    api_align = {"provider": "api", "alignment": {"enabled": True, "device": "auto"}}
    assert gpus_needed(api_align) == 1
    assert gpus_needed({**api_align, "alignment": {"enabled": True, "device": "cpu"}}) == 0


def test_no_kept_clips_loads_nothing(clip_videos):
    clips, source, selection = tables(clip_videos)
    selection["keep"] = False
    cfg = caption_config(enabled=True, model_id="/nonexistent/model", revision=None)
    out = caption_shard(clips, source, selection, cfg)
    assert out["clips"] == {} and out["meta"]["inputs_path"] is None
    assert out["meta"]["counts"] == {"kept": 0, "captioned": 0, "cached": 0, "errors": 0}


# ----------------------------------------------------------------------------- model inputs


@pytest.mark.parametrize("name", FAMILIES)
def test_images_path_builds_what_the_model_expects(name, tiny_models, clip_videos):
    """The torchvision-free path: token counts and grid shapes agree with the image processor's
    image path and the model's config, and the model accepts the inputs."""
    import torch

    # LLaVA-OneVision, LLaVA-NeXT-Video and SmolVLM2 batch clips of one frame count
    max_frames = 4 if name in ("llava_onevision", "llava_next_video", "smolvlm2") else 6
    cap = family(name)(
        local_config(tiny_models, name, video_inputs="images", max_frames=max_frames)
    )
    cap.load()
    assert cap.inputs_path == "images"
    items = items_for(cap, clip_videos)
    texts = [cap.render(job) for job, _, _ in items]
    inputs = cap.build_inputs(texts, [v for _, _, v in items])
    ids = inputs["input_ids"]
    cfg = cap.model.config
    ip = cap.image_processor

    if name in ("qwen2_vl", "qwen2_5_vl", "qwen3_vl"):
        P, T, M = cap.patch, cap.temporal, cap.merge
        rows = 0
        for i, (_, plan, video) in enumerate(items):
            n = len(video.frames)
            assert n % T == 0 and tuple(video.frames.shape[1:3][::-1]) == plan.size
            # the image path of one frame gives the spatial grid
            img = ip(
                images=[video.frames[0]], do_resize=False, patch_size=P, merge_size=M,
                temporal_patch_size=T, image_mean=cap.video_cfg["image_mean"],
                image_std=cap.video_cfg["image_std"], return_tensors="np",
            )  # fmt: skip
            _, gh, gw = (int(x) for x in img["image_grid_thw"][0])
            grid = inputs["video_grid_thw"][i].tolist()
            assert grid == [math.ceil(n / T), gh, gw]
            assert int((ids[i] == cfg.video_token_id).sum()) == grid[0] * gh * gw // M**2
            # first temporal patch: its first frame slot holds frame 0 as the image path has it
            first = inputs["pixel_values_videos"][rows : rows + gh * gw].numpy()
            first = first.reshape(gh * gw, 3, T, P, P)
            frame0 = img["pixel_values"].reshape(gh * gw, 3, T, P, P)[:, :, 0]
            np.testing.assert_allclose(first[:, :, 0], frame0, atol=1e-5)
            rows += grid[0] * gh * gw
            if name == "qwen3_vl":
                text = cap.tokenizer.decode(ids[i])
                assert text.count(" seconds>") == grid[0]
            elif name == "qwen2_vl":  # its RoPE counts temporal patches, not seconds
                assert "second_per_grid_ts" not in inputs
            else:
                ts = inputs["second_per_grid_ts"][i].item()
                assert ts == pytest.approx(T / (n / video.metadata["total_num_frames"] * 10.0))
        assert inputs["pixel_values_videos"].shape == (rows, 3 * T * P * P)
        assert (inputs["mm_token_type_ids"] == 2).sum() == (ids == cfg.video_token_id).sum()
    elif name == "smolvlm2":
        seq = (cfg.vision_config.image_size // cfg.vision_config.patch_size) ** 2
        seq //= cfg.scale_factor**2
        assert cap.image_seq_len == seq
        for i, (_, _, video) in enumerate(items):
            n = len(video.frames)
            assert int((ids[i] == cfg.image_token_id).sum()) == n * seq
            assert cap.tokenizer.decode(ids[i]).count("Frame from ") == n
            for j in (0, n - 1):
                single = ip(images=[[video.frames[j]]], do_image_splitting=False,
                            return_tensors="pt")["pixel_values"][0, 0]  # fmt: skip
                torch.testing.assert_close(inputs["pixel_values"][i, j], single)
            assert inputs["pixel_attention_mask"][i].all()  # one frame count: no padding
    elif name == "llava_next_video":  # 4x4 patches per 32-px frame, pooled by 2: 4 tokens
        for i, (_, plan, video) in enumerate(items):
            n = len(video.frames)
            assert min(plan.size) == 32  # shorter side resized to 32, aspect kept
            assert int((ids[i] == cfg.video_token_index).sum()) == n * 4
        assert inputs["pixel_values_videos"].shape[2:] == (3, 32, 32)
    else:  # llava_onevision
        side = cfg.vision_config.image_size // cfg.vision_config.patch_size
        per_frame = math.ceil(side / 2) ** 2
        for i, (_, _, video) in enumerate(items):
            n = len(video.frames)
            assert int((ids[i] == cfg.video_token_index).sum()) == n * per_frame + 1
        assert inputs["pixel_values_videos"].shape[:2] == (len(items), len(items[0][2].frames))

    with torch.inference_mode():  # the model checks that features and placeholders agree
        out = cap.model(**inputs)
    assert out.logits.shape[:2] == ids.shape


@pytest.mark.parametrize("name", FAMILIES)
def test_the_processor_path_hands_one_video_per_clip(name, tiny_models, clip_videos):
    """What ``inputs_from_processor`` passes as ``videos`` and ``video_metadata``, replayed
    through transformers' own ``make_batched_videos`` and ``make_batched_metadata`` (which need
    no torchvision): one video per clip, its frames and metadata in clip order. SmolVLM's
    processor takes videos nested per prompt, and transformers 5.17 checks that each prompt's
    list holds as many videos as the prompt has video tokens: a flat list counted a clip's frames
    as videos and failed every clip (seen on a GPU machine, bench/results/)."""
    from transformers.video_utils import make_batched_metadata, make_batched_videos

    cap = family(name)(local_config(tiny_models, name, max_frames=4))
    items = items_for(cap, clip_videos)
    videos = [v for _, _, v in items]
    frames, metadata = cap.processor_videos(videos)
    batched = make_batched_videos(frames)
    assert len(batched) == len(videos)
    for got, video in zip(batched, videos, strict=True):
        assert np.array_equal(np.asarray(got), video.frames)
    meta = make_batched_metadata(batched, metadata)
    assert [m.frames_indices for m in meta] == [v.metadata["frames_indices"] for v in videos]
    if name == "smolvlm2":  # transformers 5.17's SmolVLMProcessor.validate_inputs
        assert [len(per_prompt) for per_prompt in frames] == [1] * len(videos)


@pytest.fixture(scope="module")
def vfr_clip(tmp_path_factory):
    return vfr_caption_clip(tmp_path_factory.mktemp("vfr_caption"))


def test_captions_of_a_variable_frame_rate_clip_tell_its_frames_real_times(tiny_models, vfr_clip):
    """A 5-s shot whose rate drops from 30 to 10 fps after 2 s: each frame's time is the decoded
    one, in the records, in Qwen3-VL's timestamps and SmolVLM2's frame labels (``index / fps``
    at the clip's average 18 fps put the 10-fps frames up to 1.3 s late); Qwen2.5-VL's one
    rate, seconds per temporal patch, is the clip's average."""
    job, real = vfr_clip
    assert (job.n_frames, job.fps) == (90, pytest.approx(18.0, rel=0.02))
    for name in ("qwen3_vl", "qwen2_5_vl", "smolvlm2"):
        cap = family(name)(local_config(tiny_models, name, video_inputs="images", max_frames=8,
                                        fps=2.0))  # fmt: skip
        cap.load()
        plan = cap.plan(job)
        video = cap.decode(job, plan)
        want = [real[i] for i in plan.indices]
        assert video.timestamps == pytest.approx(want, abs=1e-3)
        # spread over the clip's time; the processors' ``frames_indices / fps`` is each time
        assert np.abs(np.asarray(want) - np.linspace(0, real[-1], len(want))).max() <= 0.051
        places = np.asarray(video.metadata["frames_indices"]) / job.fps
        assert np.abs(places - want).max() <= 0.5 / job.fps + 1e-9
        assert max(abs(i / job.fps - t) for i, t in zip(plan.indices, want, strict=True)) > 1.0
        (result,) = cap.generate([(job, plan, video)])
        assert result.frames["times"] == pytest.approx(want, abs=1e-3)
        inputs = cap.build_inputs([cap.render(job)], [video])
        text = cap.tokenizer.decode(inputs["input_ids"][0])
        if name == "qwen3_vl":
            pairs = [(a + b) / 2 for a, b in zip(want[::2], want[1::2], strict=True)]
            got = [float(x) for x in re.findall(r"<([0-9.]+) seconds>", text)]
            assert got == pytest.approx(pairs, abs=0.051)  # printed to 0.1 s
        elif name == "qwen2_5_vl":
            per_patch = inputs["second_per_grid_ts"][0].item()
            assert per_patch == pytest.approx(cap.temporal * job.duration / len(want), rel=0.02)
        else:
            labels = re.findall(r"Frame from (\d\d):(\d\d):", text)
            assert [60 * int(m) + int(s) for m, s in labels] == [int(t) for t in want]


@pytest.mark.skipif(not torchvision_available(), reason=NO_TORCHVISION)
@pytest.mark.parametrize("name", FAMILIES)
def test_processor_and_images_paths_build_the_same_inputs(name, tiny_models, clip_videos):
    import torch

    got = {}
    for path in ("processor", "images"):
        max_frames = 4 if name in ("llava_onevision", "llava_next_video", "smolvlm2") else 6
        cap = family(name)(
            local_config(tiny_models, name, video_inputs=path, max_frames=max_frames)
        )
        cap.load()
        assert cap.inputs_path == path
        items = items_for(cap, clip_videos)
        texts = [cap.render(job) for job, _, _ in items]
        got[path] = cap.build_inputs(texts, [v for _, _, v in items])
    a, b = got["processor"], got["images"]
    assert set(a) == set(b)
    for key in a:
        if a[key].is_floating_point():
            torch.testing.assert_close(a[key], b[key], atol=1e-5, rtol=1e-5)
        else:
            assert torch.equal(a[key], b[key]), key


@pytest.mark.skipif(not torchvision_available(), reason=NO_TORCHVISION)
@pytest.mark.parametrize("name", FAMILIES)
def test_video_defaults_mirror_the_video_processor_classes(name):
    """Our copies of each video processor's class defaults are still transformers' values."""
    import transformers

    cls = {
        "qwen2_vl": "Qwen2VLVideoProcessor", "qwen2_5_vl": "Qwen2VLVideoProcessor",
        "qwen3_vl": "Qwen3VLVideoProcessor",
        "llava_onevision": "LlavaOnevisionVideoProcessor", "smolvlm2": "SmolVLMVideoProcessor",
        "llava_next_video": "LlavaNextVideoVideoProcessor",
    }[name]  # fmt: skip
    vp = getattr(transformers, cls)
    for key, value in family(name).video_defaults.items():
        if key == "rescale_factor":
            continue
        ref = getattr(vp, key)
        if isinstance(ref, (list, tuple)):
            ref = list(ref)
        assert ref == value, key


# ----------------------------------------------------------------------------- shards


@pytest.mark.parametrize("name", ["qwen2_vl", "qwen2_5_vl", "llava_next_video", "smolvlm2"])
def test_caption_shard_records_and_rerun(name, tiny_models, clip_videos, tmp_path):
    clips, source, selection = tables(clip_videos)
    cfg = local_config(tiny_models, name)
    cache = tmp_path / "cache" / "s.jsonl"
    out = caption_shard(clips, source, selection, cfg, cache_path=cache, shard="s")
    meta, recs = out["meta"], out["clips"]
    assert set(recs) == {"a_0000", "a_0001", "b_0000", "bad_0000"}  # kept clips only
    assert meta["counts"] == {"kept": 4, "captioned": 4, "cached": 0, "errors": 1}
    assert meta["inputs_path"] == ("processor" if torchvision_available() else "images")
    assert meta["model"] == name
    assert meta["resolved_revision"].startswith("local:")
    bad = recs["bad_0000"]
    assert bad["caption"] is None and bad["error"].startswith("decode")
    for cid in ("a_0000", "a_0001", "b_0000"):
        r = recs[cid]
        assert r["error"] is None and r["caption"] and r["captions"]["generated"] == r["caption"]
        assert r["model"] == name and r["model_id"] == str(tiny_models[name])
        assert r["revision"] == meta["resolved_revision"]
        assert r["prompt_hash"] == meta["prompt_hash"] and len(r["prompt_hash"]) == 16
        assert r["frames"]["n"] == len(r["frames"]["times"]) >= 2
        assert 0 < r["tokens"]["output"] <= 8 and r["tokens"]["prompt"] > 20
        assert r["latency"] > 0 and r["cached"] is False
    assert recs["a_0000"]["captions"]["source"] == "A given caption."
    assert "source" not in recs["b_0000"]["captions"]
    n_frames = {cid: recs[cid]["frames"]["n"] for cid in ("a_0000", "a_0001", "b_0000")}
    if name in ("qwen2_vl", "qwen2_5_vl"):  # 2 fps, even counts
        assert n_frames == {"a_0000": 4, "a_0001": 6, "b_0000": 6}
    else:
        assert n_frames == {"a_0000": 4, "a_0001": 6, "b_0000": 5}
    assert len(cache.read_text().splitlines()) == 3  # the failed clip is not cached

    # greedy decoding: the same captions again, now from the cache; only the failure is retried
    again = caption_shard(clips, source, selection, cfg, cache_path=cache, shard="s")
    assert again["meta"]["counts"] == {"kept": 4, "captioned": 1, "cached": 3, "errors": 1}
    for cid in ("a_0000", "a_0001", "b_0000"):
        assert again["clips"][cid]["cached"] is True
        assert again["clips"][cid]["caption"] == recs[cid]["caption"]

    # a new prompt is a new key: everything is captioned again
    cfg2 = local_config(tiny_models, name, prompts={"user": "Describe the clip briefly."})
    third = caption_shard(clips, source, selection, cfg2, cache_path=cache, shard="s")
    assert third["meta"]["counts"]["cached"] == 0
    assert third["meta"]["prompt_hash"] != meta["prompt_hash"]


def test_top_k_is_sent_only_when_set(tiny_models):
    """top_k reaches generate (sampling) and the API body, and changes the cache key only when
    set, so captions cached before the option existed stay valid."""
    from clipsift.captioners.api import ApiCaptioner

    base = local_config(tiny_models, "qwen2_vl", temperature=0.7)
    local = family("qwen2_vl")(base)
    assert "top_k" not in local.generation_kwargs() and "top_k" not in local.settings()
    k = family("qwen2_vl")(local_config(tiny_models, "qwen2_vl", temperature=0.7, top_k=20))
    assert k.generation_kwargs()["top_k"] == 20 and k.settings()["top_k"] == 20
    greedy = family("qwen2_vl")(local_config(tiny_models, "qwen2_vl", top_k=20))
    assert greedy.generation_kwargs()["do_sample"] is False
    api = {
        "provider": "api",
        "api": {"model": "m", "base_url": "http://127.0.0.1:9", "key_env": "X"},
    }
    without = ApiCaptioner(caption_config(**api))
    with_k = ApiCaptioner(caption_config(**api, top_k=5))
    job = ClipJob("c", "v", "x.mp4", 1.0, 4.0, 10.0, 30, 160, 90)
    assert "top_k" not in without.payload(job, []) and with_k.payload(job, [])["top_k"] == 5
    assert "top_k" not in without.settings() and with_k.settings()["top_k"] == 5


def test_batch_and_single_generation_agree(tiny_models, clip_videos):
    """Left padding: a clip's greedy caption does not depend on its batch."""
    cap = family("qwen2_5_vl")(local_config(tiny_models, "qwen2_5_vl"))
    cap.load()
    items = items_for(cap, clip_videos, ("a_0000", "a_0001"))
    together = [r.caption for r in cap.generate(items)]
    alone = [cap.generate([it])[0].caption for it in items]
    assert together == alone


def test_rewrite_and_alignment(tiny_models, clip_videos, tmp_path):
    clips, source, selection = tables(clip_videos)
    cfg = local_config(
        tiny_models,
        "smolvlm2",
        rewrite={"enabled": True, "model_id": str(tiny_models["lm"]), "revision": None,
                 "device": "cpu", "max_new_tokens": 6},
        alignment={"enabled": True, "model_id": str(tiny_models["clip"]), "revision": None,
                   "device": "cpu", "frames": 2, "threshold": -1.0},
    )  # fmt: skip
    cache = tmp_path / "c.jsonl"
    out = caption_shard(clips, source, selection, cfg, cache_path=cache)
    assert out["meta"]["rewrite"]["model"] == str(tiny_models["lm"])
    assert out["meta"]["alignment"]["threshold"] == -1.0
    for cid in ("a_0000", "a_0001", "b_0000"):
        r = out["clips"][cid]
        rw = r["rewrite"]
        assert rw["error"] is None or rw["error"] == "empty rewrite"
        if rw["error"] is None:
            assert r["caption"] == rw["caption"] == r["captions"]["rewrite"]
        assert r["captions"]["generated"]
        assert isinstance(r["alignment"], float) and -1.0 <= r["alignment"] <= 1.0
        assert r["alignment_pass"] is True
    assert out["clips"]["bad_0000"]["alignment"] is None
    again = caption_shard(clips, source, selection, cfg, cache_path=cache)
    for cid in ("a_0000", "a_0001", "b_0000"):
        assert again["clips"][cid]["rewrite"]["cached"] is True
        assert again["clips"][cid]["alignment"] == out["clips"][cid]["alignment"]


# ----------------------------------------------------------------------------- interrupted shard

WORKER = """
import json, sys, time
import pandas as pd
from clipsift.captioners.local import LocalVLM
from clipsift.captioners.shard import caption_shard

slow = LocalVLM.generate
def generate(self, items):  # slow enough for the test to kill the job halfway
    time.sleep(0.4)
    return slow(self, items)
LocalVLM.generate = generate

args = json.loads(sys.argv[1])
clips, source, selection = (pd.read_json(args[k], orient="records") for k in ("clips", "source", "selection"))
caption_shard(clips, source, selection, args["cfg"], cache_path=args["cache"])
print("finished")
"""


def test_killed_shard_resumes_with_only_the_missing_clips(tiny_models, clip_videos, tmp_path):
    """The job is killed after two clips are cached; the rerun captions only the others."""
    clips, source, selection = tables(clip_videos)
    clips = pd.concat(
        [clips.iloc[:3].assign(clip_id=lambda d, k=k: d["clip_id"] + f"_{k}") for k in range(3)],
        ignore_index=True,
    )  # 9 decodable kept clips
    selection = pd.DataFrame({"clip_id": clips["clip_id"], "keep": True})
    paths = {}
    for k, df in {"clips": clips, "source": source, "selection": selection}.items():
        paths[k] = str(tmp_path / f"{k}.json")
        df.to_json(paths[k], orient="records")
    cache = tmp_path / "cache.jsonl"
    cfg = local_config(tiny_models, "qwen2_5_vl", batch_size=1)
    args = json.dumps({**paths, "cfg": cfg, "cache": str(cache)})
    proc = subprocess.Popen(
        [sys.executable, "-c", WORKER, args], stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    try:
        wait_for(
            lambda: cache.exists() and len(cache.read_text().splitlines()) >= 2,
            proc,
            "2 cached captions",
            log=lambda: proc.stderr.read().decode()[-2000:],
        )
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.wait(timeout=30)
    assert b"finished" not in proc.stdout.read()
    done = {json.loads(line)["clip_id"] for line in cache.read_text().splitlines() if line}
    assert 2 <= len(done) < 9

    calls = []
    from clipsift.captioners.local import LocalVLM

    real = LocalVLM.generate

    def counting(self, items):
        calls.extend(job.clip_id for job, _, _ in items)
        return real(self, items)

    LocalVLM.generate = counting
    try:
        out = caption_shard(clips, source, selection, cfg, cache_path=cache)
    finally:
        LocalVLM.generate = real
    assert sorted(calls) == sorted(set(clips["clip_id"]) - done)
    assert out["meta"]["counts"] == {
        "kept": 9, "captioned": 9 - len(done), "cached": len(done), "errors": 0
    }  # fmt: skip
    assert {cid for cid, r in out["clips"].items() if r["cached"]} == done


# ----------------------------------------------------------------------------- the rule


@pytest.mark.slow
def test_caption_rule(tmp_path, tiny_models, clip_videos):
    """The real Snakemake rule on a metalist with a given caption: caption.json for the kept
    clips, the log, the cache outside the outputs; a forced rerun reuses every caption."""
    wd = tmp_path / "wd"
    (wd / "lists").mkdir(parents=True)
    (wd / "lists" / "videos.jsonl").write_text(
        json.dumps({"video": str(clip_videos["a"]), "caption": "Two scenes."})
        + "\n"
        + json.dumps({"video": str(clip_videos["b"])})
        + "\n"
    )
    cfg = caption_run_config(local_config(tiny_models, "smolvlm2"))
    run_snakemake(wd, cfg, dryrun=True)
    (shard,) = plan_shards(wd)
    target = f"results/shards/{shard}/caption.json"
    run = run_snakemake(wd, cfg, targets=[target])
    assert run.rules["caption"] == 1
    data = json.loads((wd / target).read_text())
    sel = pd.read_parquet(wd / f"results/shards/{shard}/selection.parquet")
    assert set(data["clips"]) == set(sel.loc[sel["keep"], "clip_id"]) != set()
    assert data["meta"]["counts"]["cached"] == 0
    src = pd.read_parquet(wd / f"results/shards/{shard}/source.parquet")
    (vid_a,) = src.loc[src["caption"] == "Two scenes.", "video_id"]
    given = [r for r in data["clips"].values() if r["video_id"] == vid_a]
    assert given and all(r["captions"]["source"] == "Two scenes." for r in given)
    assert all("source" not in r["captions"] for r in data["clips"].values() if r not in given)
    assert all(r["error"] is None and r["caption"] for r in data["clips"].values())
    log = (wd / f"results/logs/caption/{shard}.log").read_text()
    assert "kept clips" in log
    assert (wd / f"results/cache/captions/{shard}.jsonl").exists()

    assert run_snakemake(wd, cfg, targets=[target], dryrun=True).jobs == []
    run_snakemake(wd, cfg, targets=[target], forcerun=["caption"])
    again = json.loads((wd / target).read_text())
    assert again["meta"]["counts"]["cached"] == len(data["clips"])
    assert {k: r["caption"] for k, r in again["clips"].items()} == {
        k: r["caption"] for k, r in data["clips"].items()
    }


@pytest.mark.slow
def test_alignment_threshold_drops_misaligned_pairs(tmp_path, tiny_models, clip_videos):
    """select.caption.min_alignment through the rules: select_captions drops the kept clips
    whose caption aligns below the bound, and the dataset tables and clip files follow it;
    changing the bound re-runs neither select nor the captioner."""
    wd = tmp_path / "wd"
    (wd / "lists").mkdir(parents=True)
    (wd / "lists" / "videos.jsonl").write_text(
        "".join(json.dumps({"video": str(clip_videos[v])}) + "\n" for v in ("a", "b"))
    )
    caption = local_config(tiny_models, "smolvlm2") | {
        "alignment": {"enabled": True, "model_id": str(tiny_models["clip"]), "revision": None,
                      "device": "cpu", "frames": 2},
    }  # fmt: skip
    cfg = caption_run_config(caption)
    run_snakemake(wd, cfg, targets=["results/dataset/metadata.parquet"])
    meta = pd.read_parquet(wd / "results/dataset/metadata.parquet")
    kept = meta[meta["keep"]]
    scores = sorted(kept["caption.alignment"])
    assert len(scores) >= 2
    bound = (scores[0] + scores[-1]) / 2  # between the worst and the best pair

    cfg["select"]["caption"] = {"min_alignment": bound}
    run = run_snakemake(wd, cfg, targets=["results/dataset/metadata.parquet"])
    assert "select_captions" in run.rules
    assert "select" not in run.rules and "caption" not in run.rules
    after = pd.read_parquet(wd / "results/dataset/metadata.parquet").set_index("clip_id")
    low = set(kept.loc[kept["caption.alignment"] < bound, "clip_id"])
    assert low and set(after.index[after["keep"]]) == set(kept["clip_id"]) - low
    for cid in low:
        assert any(r.startswith("caption.alignment=") for r in after.loc[cid, "reasons"])
        assert pd.isna(after.loc[cid, "file"])
        assert not list((wd / "results/dataset/clips").rglob(f"{cid}.mp4"))

    # a bound without the alignment score is a config error, said at parse time
    cfg["caption"] = {**caption, "alignment": {"enabled": False}}
    with pytest.raises(Exception, match="select.caption.min_alignment needs"):
        run_snakemake(wd, cfg, targets=["results/dataset/metadata.parquet"], dryrun=True)


# ----------------------------------------------------------------------------- vLLM backend


@pytest.mark.parametrize("name", ["qwen2_5_vl", "qwen3_vl", "llava_next_video"])
def test_vllm_requests_are_the_transformers_prompts_and_frames(name, tiny_models, clip_videos):
    """caption.backend: vllm builds, for each clip, the prompt text and frames the transformers
    path feeds its model, and vLLM sampling arguments from the same settings; its cache key
    differs; without a GPU (or vllm) it stops with what is missing."""
    from clipsift.captioners import make_captioner

    cfg = local_config(tiny_models, name, video_inputs="images", max_frames=4)
    ref = make_captioner(cfg)
    ref.load()
    vl = make_captioner(cfg | {"backend": "vllm"})
    vl.load_prompting()
    assert type(vl).__name__ == f"Vllm{type(ref).__name__}"
    for (job, plan, video), (_, plan2, video2) in zip(
        items_for(ref, clip_videos), items_for(vl, clip_videos), strict=True
    ):
        req = vl.request(job, video2)
        assert req["prompt"] == ref.render(job)
        assert "<video>" in req["prompt"] or "<|video_pad|>" in req["prompt"]  # one placeholder
        assert plan2.size == plan.size
        sent = req["multi_modal_data"]["video"]
        if name == "qwen3_vl":
            # vLLM's Qwen3-VL parser takes (frames, metadata) only; it replaces exactly this
            # string, and writes <t seconds> per temporal patch as the mean of index / fps
            sent, meta = sent
            assert meta["do_sample_frames"] is False
            assert meta["frames_indices"] == plan.indices and meta["fps"] == job.fps
            assert req["prompt"].count("<|vision_start|><|video_pad|><|vision_end|>") == 1
            idx = meta["frames_indices"]
            vllm_times = [(idx[i] + idx[i + 1]) / 2 / meta["fps"] for i in range(0, len(idx), 2)]
            ours = ref.build_inputs([ref.render(job)], [video])["input_ids"][0]
            ours = re.findall(r"<([0-9.]+) seconds>", ref.tokenizer.decode(ours))
            assert [f"{t:.1f}" for t in vllm_times] == ours
        np.testing.assert_array_equal(sent, video.frames)
    assert vl.sampling_kwargs() == {"max_tokens": 8, "temperature": 0.0, "seed": 0,
                                    "repetition_penalty": 1.0}  # fmt: skip
    hot = make_captioner(cfg | {"backend": "vllm", "temperature": 0.7, "top_k": 20})
    assert hot.sampling_kwargs()["top_k"] == 20 and hot.sampling_kwargs()["top_p"] == 1.0
    assert vl.settings() == ref.settings() | {"backend": "vllm"}
    with pytest.raises(RuntimeError, match="runs on a GPU"):
        vl.load()
