"""Small random models saved the way the real ones are published, for tests and benchmarks.

Machines without a model hub still run the real loading code: a model is built from a config
(tiny, or the real architecture's sizes), saved with ``save_pretrained`` next to its image
processor (and a CLIP tokenizer built offline from a byte-level vocabulary), and loaded back
from that folder, or by id and revision from a Hub cache laid out by :func:`fake_hub_repo`.
Heads are saved as ``.pth`` state dicts with the published key layout.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

# ----------------------------------------------------------------------------- tokenizer


def bytes_to_unicode() -> dict[int, str]:
    """GPT-2/CLIP byte-level alphabet: every byte as a printable character."""
    bs = list(range(33, 127)) + list(range(161, 173)) + list(range(174, 256))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, map(chr, cs), strict=True))


def clip_tokenizer(merges: list[str] | None = None):
    """A ``CLIPTokenizer`` over the byte-level alphabet (every text encodes; ids < 514).

    With ``merges=None`` a few merges of common letters are added, so that it is a real BPE.
    """
    from transformers import CLIPTokenizer

    chars = list(bytes_to_unicode().values())
    vocab: dict[str, int] = {}
    for c in chars:
        vocab[c] = len(vocab)
    for c in chars:
        vocab[c + "</w>"] = len(vocab)
    merges = merges if merges is not None else ["p h", "o t", "ph ot", "phot o</w>"]
    for m in merges:
        tok = m.replace(" ", "")
        if tok not in vocab:
            vocab[tok] = len(vocab)
    vocab["<|startoftext|>"] = len(vocab)
    vocab["<|endoftext|>"] = len(vocab)
    return CLIPTokenizer(vocab=vocab, merges=[tuple(m.split(" ")) for m in merges])


# ----------------------------------------------------------------------------- models

TINY_VISION = {
    "hidden_size": 32,
    "intermediate_size": 64,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "image_size": 32,
    "patch_size": 8,
}


def save_tiny_clip(dest: str | os.PathLike, *, seed: int = 0, projection_dim: int = 16, **vision):
    """A random ``CLIPModel`` (vision + text) with tokenizer and image processor in ``dest``.

    It loads as ``CLIPModel`` (CLIP-IQA) and as ``CLIPVisionModelWithProjection`` (the LAION
    aesthetic predictor), like ``openai/clip-vit-*``.
    """
    import torch
    from transformers import CLIPConfig, CLIPImageProcessor, CLIPModel

    tok = clip_tokenizer()
    vc = {**TINY_VISION, **vision, "projection_dim": projection_dim}
    tc = {
        "hidden_size": 32,
        "intermediate_size": 64,
        "num_hidden_layers": 2,
        "num_attention_heads": 4,
        "vocab_size": len(tok),
        "max_position_embeddings": 32,
        "projection_dim": projection_dim,
        "bos_token_id": tok.bos_token_id,
        "eos_token_id": tok.eos_token_id,
        "pad_token_id": tok.pad_token_id,
    }
    torch.manual_seed(seed)
    model = CLIPModel(CLIPConfig(text_config=tc, vision_config=vc, projection_dim=projection_dim))
    dest = Path(dest)
    model.save_pretrained(dest)
    tok.save_pretrained(dest)
    size = vc["image_size"]
    CLIPImageProcessor(
        size={"shortest_edge": size}, crop_size={"height": size, "width": size}
    ).save_pretrained(dest)
    return dest


def save_tiny_siglip(dest: str | os.PathLike, *, seed: int = 0, **vision):
    """A random ``SiglipVisionModel`` with its image processor in ``dest``."""
    import torch
    from transformers import SiglipImageProcessor, SiglipVisionConfig, SiglipVisionModel

    vc = {**TINY_VISION, **vision}
    torch.manual_seed(seed)
    model = SiglipVisionModel(SiglipVisionConfig(**vc))
    dest = Path(dest)
    model.save_pretrained(dest)
    size = vc["image_size"]
    SiglipImageProcessor(size={"height": size, "width": size}).save_pretrained(dest)
    return dest


def head_state_dict(kind: str, in_dim: int, *, seed: int = 0, centre: float = 5.5, spread=2.0):
    """A random head of ``kind`` (``aesthetic`` or ``aesthetic_v2_5``) with the published keys,
    scaled so that every unit-norm input scores within ``centre +- spread`` (the head is linear:
    its end-to-end weight vector is rescaled and its end-to-end bias set)."""
    import torch

    from clipsift.scorers.aesthetic import HEADS

    torch.manual_seed(seed)
    head = HEADS[kind](in_dim).eval()
    linears = [m for m in head.modules() if isinstance(m, torch.nn.Linear)]
    with torch.no_grad():
        w = torch.eye(in_dim)
        b = torch.zeros(in_dim)
        for lin in linears:
            b = lin(b)
            w = w @ lin.weight.T
        norm = float(w.norm())
        last = linears[-1]
        last.weight.mul_(spread / norm)
        last.bias.zero_()
        zero_out = head(torch.zeros(1, in_dim))[0, 0]
        last.bias.add_(centre - zero_out)
    return {k: v.clone() for k, v in head.state_dict().items()}


def save_head(dest: str | os.PathLike, kind: str, in_dim: int, **kw) -> Path:
    import torch

    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    torch.save(head_state_dict(kind, in_dim, **kw), dest)
    return dest


# ----------------------------------------------------------------------------- a Hub cache


def fake_hub_repo(
    cache_dir: str | os.PathLike,
    repo_id: str,
    files: str | os.PathLike,
    *,
    commit: str | None = None,
    ref: str = "main",
) -> str:
    """Lay out ``files`` (a folder, or one file) as Hub repo ``repo_id`` at ``commit`` in a
    huggingface_hub cache, with ``ref`` pointing to it; returns the commit. With
    ``HF_HUB_OFFLINE=1`` and ``HF_HUB_CACHE=cache_dir``, ``from_pretrained(repo_id,
    revision=...)`` and ``hf_hub_download`` then resolve exactly as after a real download."""
    import hashlib

    files = Path(files)
    commit = commit or hashlib.sha1(f"{repo_id}:{files.name}".encode()).hexdigest()
    root = Path(cache_dir) / ("models--" + repo_id.replace("/", "--"))
    snap = root / "snapshots" / commit
    snap.mkdir(parents=True, exist_ok=True)
    if files.is_dir():
        for p in files.iterdir():
            if p.is_file():
                shutil.copy2(p, snap / p.name)
    else:
        shutil.copy2(files, snap / files.name)
    (root / "refs").mkdir(exist_ok=True)
    (root / "refs" / ref).write_text(commit)
    return commit


# ----------------------------------------------------------------------------- real sizes

REAL_SIZES = {
    # openai/clip-vit-large-patch14 vision tower (config.json vision_config), 304 M parameters
    "clip_vit_l14_vision": {
        "hidden_size": 1024,
        "intermediate_size": 4096,
        "num_hidden_layers": 24,
        "num_attention_heads": 16,
        "image_size": 224,
        "patch_size": 14,
        "projection_dim": 768,
    },
    # google/siglip-so400m-patch14-384 vision tower, 428 M parameters
    "siglip_so400m_vision": {
        "hidden_size": 1152,
        "intermediate_size": 4304,
        "num_hidden_layers": 27,
        "num_attention_heads": 16,
        "image_size": 384,
        "patch_size": 14,
    },
    # openai/clip-vit-base-patch32 (vision and text), 151 M parameters
    "clip_vit_b32": {
        "vision": {
            "hidden_size": 768,
            "intermediate_size": 3072,
            "num_hidden_layers": 12,
            "num_attention_heads": 12,
            "image_size": 224,
            "patch_size": 32,
        },
        "text": {
            "hidden_size": 512,
            "intermediate_size": 2048,
            "num_hidden_layers": 12,
            "num_attention_heads": 8,
            "max_position_embeddings": 77,
        },
        "projection_dim": 512,
    },
}
