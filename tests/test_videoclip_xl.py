"""VideoCLIP-XL as the caption-clip alignment model (``caption.alignment.kind: videoclip_xl``).

- The module's state-dict keys and shapes at full size are the authors' (a fixture extracted once
  from their ``VideoCLIP_XL``), so the published ``VideoCLIP-XL.bin`` loads with ``strict=True``.
- A golden: the authors' text and video towers, built at a tiny size with the seeded weights
  below, gave the features and cosines in ``data/videoclip_xl_golden.json``; this module must give
  the same from the same weights and inputs.
- A tiny VideoCLIP-XL saved like the published file (a plain state dict) goes through the real
  loading path from ``weights_path`` with a tiny local CLIP-BPE tokenizer: scores on generated
  videos are the cosines recomputed here by hand, and a Snakemake run drops the clips below
  ``select.caption.min_alignment``.
"""

from __future__ import annotations

import json
from collections import OrderedDict
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from fakes.clips import caption_config, caption_run_config, render_caption_videos, tables
from fakes.tiny_vlm import tiny_smolvlm2
from helpers import run_snakemake

from clipsift.captioners.alignment import ClipAligner, make_aligner
from clipsift.captioners.base import ClipJob
from clipsift.captioners.shard import caption_shard, kept_jobs
from clipsift.captioners.videoclip_xl import (
    Dims,
    VideoCLIPXL,
    VideoClipXLAligner,
    frame_indices,
    load_model,
    preprocess,
    published_layout,
    token_ids,
)
from clipsift.io.decode import read_frames_at

DATA = Path(__file__).parent / "data"
# the published sizes but narrow and shallow: 64-wide towers of two layers, 16-d features, 8
# frames of 224 px in 14-px patches, 248 text positions, a 514-token byte-level vocabulary
TINY = Dims(embed=16, text_width=64, text_layers=2, vocab=514, vision_width=64, vision_layers=2)
SOT, EOT = 512, 513  # the tiny vocabulary's <|startoftext|> and <|endoftext|> (the largest ids)


def seeded_state_dict(shapes: dict[str, list[int]], seed: int = 0) -> dict[str, torch.Tensor]:
    """Deterministic weights for any layout (numpy's legacy generator: a stable stream):
    LayerNorm gains near 1, everything else N(0, 0.02), CLIP's logit scale and ViCLIP's temp."""
    rs = np.random.RandomState(seed)
    out = OrderedDict()
    for key in sorted(shapes):
        z = np.asarray(rs.standard_normal(tuple(shapes[key])))
        if key.endswith(".weight") and ".ln_" in key:
            v = 1.0 + 0.1 * z
        elif key.endswith("logit_scale"):
            v = np.full(z.shape, np.log(1 / 0.07))
        elif key.endswith(".temp"):
            v = np.full(z.shape, 0.01)
        else:
            v = 0.02 * z
        out[key] = torch.from_numpy(v.astype(np.float32))
    return out


def tiny_shapes() -> dict[str, list[int]]:
    return {k: list(v.shape) for k, v in VideoCLIPXL(TINY).state_dict().items()}


def golden_inputs(seed: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    """Two captions (a short one, one of the full 248 tokens) and two preprocessed 8-frame clips."""
    rs = np.random.RandomState(seed)
    ids = torch.zeros(2, TINY.context, dtype=torch.long)
    short = [SOT, *rs.randint(0, 512, size=30).tolist(), EOT]
    full = [SOT, *rs.randint(0, 512, size=TINY.context - 2).tolist(), EOT]
    ids[0, : len(short)] = torch.tensor(short)
    ids[1] = torch.tensor(full)
    video = rs.standard_normal((2, TINY.frames, 3, TINY.image, TINY.image)).astype(np.float32)
    return ids, torch.from_numpy(video)


def byte_chars() -> list[str]:
    """Byte-level BPE's printable stand-in for each byte (GPT-2's table, which CLIP uses)."""
    printable = [*range(33, 127), *range(161, 173), *range(174, 256)]
    extra = iter(range(256, 512))
    return [chr(b) if b in printable else chr(next(extra)) for b in range(256)]


def tiny_tokenizer(out: Path) -> Path:
    """A CLIP tokenizer over single bytes (no merges): 256 bytes, 256 word-final bytes, then
    <|startoftext|> 512 and <|endoftext|> 513, saved as a local AutoTokenizer folder."""
    from transformers import CLIPTokenizer

    chars = byte_chars()
    vocab = [*chars, *(c + "</w>" for c in chars), "<|startoftext|>", "<|endoftext|>"]
    tok = CLIPTokenizer(vocab={t: i for i, t in enumerate(vocab)}, merges=[])
    tok.save_pretrained(out)
    return out


def save_tiny_checkpoint(path: Path, seed: int = 0) -> Path:
    """The tiny model's seeded weights as a plain state dict, the way VideoCLIP-XL.bin is saved."""
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(seeded_state_dict(tiny_shapes(), seed), path)
    return path


@pytest.fixture(scope="module")
def tiny_vxl(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("videoclip_xl")
    return {
        "weights": save_tiny_checkpoint(root / "VideoCLIP-XL.bin"),
        "tokenizer": tiny_tokenizer(root / "tokenizer"),
        "captioner": tiny_smolvlm2(root / "smolvlm2"),
    }


@pytest.fixture(scope="module")
def videos(tmp_path_factory) -> dict[str, Path]:
    return render_caption_videos(tmp_path_factory.mktemp("vxl_videos"))


def alignment_config(tiny_vxl, **over) -> dict:
    vxl = {"weights_path": str(tiny_vxl["weights"]), "tokenizer": str(tiny_vxl["tokenizer"]),
           "tokenizer_revision": None}  # fmt: skip
    return {"enabled": True, "kind": "videoclip_xl", "device": "cpu", "videoclip_xl": vxl, **over}


def captioner_config(tiny_vxl, **over) -> dict:
    base = {
        "enabled": True, "provider": "local", "model": "smolvlm2",
        "model_id": str(tiny_vxl["captioner"]), "revision": None, "device": "cpu",
        "max_new_tokens": 8, "batch_size": 2, "max_side": 160, "max_frames": 6,
    }  # fmt: skip
    return caption_config(**{**base, **over})


# ----------------------------------------------------------------------------- architecture


def test_keys_and_shapes_are_the_published_ones():
    published = json.loads((DATA / "videoclip_xl_keys.json").read_text())["keys"]
    with torch.device("meta"):
        model = VideoCLIPXL()
    sd = model.state_dict()
    assert {k: list(v.shape) for k, v in sd.items()} == published
    assert Dims.of(sd) == Dims()  # the sizes are read back from the weights
    # EasyAnimate re-saved the model as model.* (Long-CLIP) and viclip_model.* (ViCLIP)
    renamed = {("model." + k[11:] if k.startswith("text_model.") else "viclip_model." + k[13:]): v
               for k, v in sd.items()}  # fmt: skip
    assert list(published_layout(renamed)) == list(sd)


def test_features_match_the_authors_code():
    golden = json.loads((DATA / "videoclip_xl_golden.json").read_text())
    model = VideoCLIPXL(TINY).eval()
    model.load_state_dict(seeded_state_dict(tiny_shapes(), seed=0), strict=True)
    ids, video = golden_inputs(seed=1)
    with torch.inference_mode():
        text, vid, cos = (
            model.encode_text(ids),
            model.encode_video(video),
            model.similarity(ids, video),
        )
    torch.testing.assert_close(text, torch.tensor(golden["text"]), atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(vid, torch.tensor(golden["video"]), atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(cos, torch.tensor(golden["cosine"]), atol=1e-5, rtol=1e-4)


def test_text_side_uses_long_positions_and_the_end_token():
    """Positions 20+ come from positional_embedding_res; tokens after end-of-text change nothing."""
    model = VideoCLIPXL(TINY).eval()
    model.load_state_dict(seeded_state_dict(tiny_shapes(), seed=3))
    ids, _ = golden_inputs(seed=1)
    text = model.text_model
    bump = torch.linspace(-1, 1, TINY.text_width)  # (a constant would be normalised away)
    with torch.no_grad():
        base = model.encode_text(ids)
        padded = ids.clone()
        padded[0, 40:] = 7  # after the end token (index 31): causal attention never sees it
        torch.testing.assert_close(model.encode_text(padded)[0], base[0])
        for table, pos, used in ((text.positional_embedding, 30, False),
                                 (text.positional_embedding_res, 5, False),
                                 (text.positional_embedding, 5, True),
                                 (text.positional_embedding_res, 30, True)):  # fmt: skip
            table[pos] += bump
            changed = not torch.allclose(model.encode_text(ids)[0], base[0])
            table[pos] -= bump
            assert changed == used


# ----------------------------------------------------------------------------- inputs


def test_preprocess_is_the_authors_resize_and_normalisation():
    import cv2

    rs = np.random.RandomState(5)
    frames = [rs.randint(0, 256, size=(90, 160, 3), dtype=np.uint8) for _ in range(3)]
    mean, std = np.array([0.485, 0.456, 0.406]), np.array([0.229, 0.224, 0.225])
    for order in ("rgb", "bgr"):
        got = preprocess(frames, 224, order)
        assert got.shape == (3, 3, 224, 224) and got.dtype == torch.float32
        for f, g in zip(frames, got, strict=True):
            src = f if order == "rgb" else cv2.cvtColor(f, cv2.COLOR_RGB2BGR)
            want = (
                cv2.resize(src, (224, 224), interpolation=cv2.INTER_LINEAR) / 255.0 - mean
            ) / std
            np.testing.assert_allclose(g.permute(1, 2, 0).numpy(), want, atol=1e-6)
    assert not torch.equal(preprocess(frames, 224, "rgb"), preprocess(frames, 224, "bgr"))


def test_frames_are_easyanimate_uniform_samples():
    job = ClipJob("c", "v", "x.mp4", start=2.0, end=5.0, fps=10.0, n_frames=30, width=8, height=8)
    idx = frame_indices(job, 8)
    assert (
        idx
        == [int(i) for i in np.linspace(0, 30, 8, endpoint=False)]
        == [0, 3, 7, 11, 15, 18, 22, 26]
    )
    short = ClipJob("c", "v", "x.mp4", start=0.0, end=0.5, fps=10.0, n_frames=5, width=8, height=8)
    assert frame_indices(short, 8) == [0, 0, 1, 1, 2, 3, 3, 4]  # a short clip repeats frames


def test_tokens_are_the_authors_layout(tiny_vxl):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_vxl["tokenizer"])
    ids = token_ids(tok, "A cat &amp; a dog.", 248)
    assert ids.shape == (1, 248) and ids.dtype == torch.long
    body = tok("a cat & a dog.", add_special_tokens=False)["input_ids"]  # lower-cased, unescaped
    assert ids[0, : len(body) + 2].tolist() == [SOT, *body, EOT]
    assert not ids[0, len(body) + 2 :].any()  # zero padding
    long = token_ids(tok, "word " * 400, 248)[0]
    assert (long != 0).all() and long[0] == SOT and long[-1] == EOT and int(long.argmax()) == 247


# ----------------------------------------------------------------------------- the aligner


def test_config_picks_the_model():
    acfg = caption_config()["alignment"]
    assert acfg["kind"] == "clip" and isinstance(make_aligner(acfg), ClipAligner)
    vxl = caption_config(alignment={"kind": "videoclip_xl"})["alignment"]
    aligner = make_aligner(vxl)
    assert isinstance(aligner, VideoClipXLAligner)
    ident = aligner.identity()  # the pinned Hub file, named before anything is downloaded
    assert ident["model"] == "alibaba-pai/VideoCLIP-XL/VideoCLIP-XL.bin"
    assert ident["revision"] == "1622f6bb5ae49dabec829091833121f1dfeef24a"
    assert ident["resolved_revision"] == f"sha256:{ident['sha256']}" and len(ident["sha256"]) == 64
    with pytest.raises(KeyError, match="unknown alignment model 'xclip'"):
        make_aligner({**vxl, "kind": "xclip"})


def test_scores_are_the_model_cosines(tiny_vxl, videos):
    """Through the real loading path: the score of each clip is the cosine of the caption's and
    the clip's features, recomputed here from frames sampled and prepared by hand."""
    import cv2

    from clipsift.models.hub import file_sha256

    acfg = caption_config(alignment=alignment_config(tiny_vxl))["alignment"]
    aligner = make_aligner(acfg)
    sha = file_sha256(tiny_vxl["weights"])
    assert aligner.identity()["resolved_revision"] == f"sha256:{sha}"
    aligner.load()
    assert aligner.model.dims == TINY and aligner.identity()["sha256"] == sha
    reference = load_model(tiny_vxl["weights"])
    clips, source, selection = tables(videos)
    jobs = [j for j in kept_jobs(clips, source, selection) if j.video_id != "bad"]
    captions = ["A red ball rolls over the grass.", "Blue squares drift to the left &amp; fade."]
    mean, std = np.array([0.485, 0.456, 0.406]), np.array([0.229, 0.224, 0.225])
    scores = {}
    for job in jobs:
        idx = np.floor(np.arange(8) * job.n_frames / 8).astype(int)
        frames = read_frames_at(job.source_path, [job.start + (i + 0.25) / job.fps for i in idx])
        x = np.stack([(cv2.resize(f, (224, 224)) / 255.0 - mean) / std for f in frames])
        video = torch.from_numpy(x).float().permute(0, 3, 1, 2)[None]
        for text in captions:
            plain = text.replace("&amp;", "&").lower()
            body = aligner.tokenizer(plain, add_special_tokens=False)["input_ids"]
            ids = torch.zeros(1, 248, dtype=torch.long)
            ids[0, : len(body) + 2] = torch.tensor([SOT, *body, EOT])
            with torch.inference_mode():
                t = reference.encode_text(ids)[0].numpy().astype(np.float64)
                v = reference.encode_video(video)[0].numpy().astype(np.float64)
            want = t @ v / np.linalg.norm(t) / np.linalg.norm(v)
            got = aligner.score(job, text)
            assert got == pytest.approx(want, abs=1e-5)
            scores[job.clip_id, text] = got
    assert len(set(np.round(list(scores.values()), 6))) == len(scores)  # captions and clips differ

    results = {}
    bad = next(j for j in kept_jobs(clips, source, selection) if j.video_id == "bad")
    items = [(jobs[0], captions[0]), (bad, captions[0])]
    aligner.score_all(items, lambda cid, s, e: results.__setitem__(cid, (s, e)))
    assert results[jobs[0].clip_id] == (round(scores[jobs[0].clip_id, captions[0]], 6), None)
    assert results["bad_0000"][0] is None and results["bad_0000"][1].startswith("alignment: ")


def test_caption_shard_records_videoclip_xl(tiny_vxl, videos, tmp_path):
    clips, source, selection = tables(videos)
    cfg = captioner_config(tiny_vxl, alignment=alignment_config(tiny_vxl, threshold=-1.0))
    cache = tmp_path / "c.jsonl"
    out = caption_shard(clips, source, selection, cfg, cache_path=cache)
    meta = out["meta"]["alignment"]
    assert meta["kind"] == "videoclip_xl" and meta["frames"] == 8 and meta["threshold"] == -1.0
    assert meta["model"] == str(tiny_vxl["weights"]) and meta["revision"].startswith("sha256:")
    assert meta["tokenizer"] == {"model": str(tiny_vxl["tokenizer"]), "revision": None}
    for cid in ("a_0000", "a_0001", "b_0000"):
        r = out["clips"][cid]
        assert isinstance(r["alignment"], float) and -1.0 <= r["alignment"] <= 1.0
        assert r["alignment_pass"] is True
    again = caption_shard(clips, source, selection, cfg, cache_path=cache)
    for cid in ("a_0000", "a_0001", "b_0000"):
        assert again["clips"][cid]["alignment"] == out["clips"][cid]["alignment"]
    # the EasyAnimate channel order is another setting, so another score
    cfg["alignment"]["videoclip_xl"]["channel_order"] = "bgr"
    bgr = caption_shard(clips, source, selection, cfg, cache_path=cache)
    assert bgr["clips"]["a_0000"]["alignment"] != out["clips"]["a_0000"]["alignment"]


@pytest.mark.slow
def test_min_alignment_drops_clips_in_the_pipeline(tmp_path, tiny_vxl, videos):
    """caption.alignment.kind videoclip_xl through the rules: the scores reach the metadata, and
    select.caption.min_alignment drops the clips below the bound (files included)."""
    wd = tmp_path / "wd"
    (wd / "lists").mkdir(parents=True)
    (wd / "lists" / "videos.jsonl").write_text(
        "".join(json.dumps({"video": str(videos[v])}) + "\n" for v in ("a", "b"))
    )
    cfg = caption_run_config(captioner_config(tiny_vxl, alignment=alignment_config(tiny_vxl)))
    run_snakemake(wd, cfg, targets=["results/dataset/metadata.parquet"])
    meta = pd.read_parquet(wd / "results/dataset/metadata.parquet")
    kept = meta[meta["keep"]]
    scores = sorted(kept["caption.alignment"])
    assert len(scores) >= 2 and scores[0] < scores[-1]
    bound = (scores[0] + scores[-1]) / 2

    cfg["select"]["caption"] = {"min_alignment": bound}
    run = run_snakemake(wd, cfg, targets=["results/dataset/metadata.parquet"])
    assert "select_captions" in run.rules and "caption" not in run.rules
    after = pd.read_parquet(wd / "results/dataset/metadata.parquet").set_index("clip_id")
    low = set(kept.loc[kept["caption.alignment"] < bound, "clip_id"])
    assert low and set(after.index[after["keep"]]) == set(kept["clip_id"]) - low
    for cid in low:
        assert any("caption.alignment" in str(r) for r in after.loc[cid, "reasons"])
        assert pd.isna(after.loc[cid, "file"])
