"""VideoCLIP-XL caption-clip alignment (``caption.alignment.kind: videoclip_xl``).

VideoCLIP-XL (Wang et al. 2024, "VideoCLIP-XL: Advancing Long Description Understanding for
Video CLIP Models"; weights ``alibaba-pai/VideoCLIP-XL`` and ``-v2`` on the Hub, CC BY-NC-SA 4.0)
is the model EasyAnimate drops misaligned (video, long caption) pairs with. Two towers:

- ``text_model``: a Long-CLIP text transformer (ViT-L/14 text side, 12 layers of 768, causal
  mask) with 248 positions: the first 20 take ``positional_embedding``, the rest
  ``positional_embedding_res``; the feature is the end-of-text token's, times ``text_projection``.
- ``vision_model``: ViCLIP-L's video ViT (24 layers of 1024): a (1, 14, 14) Conv3d patchifies
  each of 8 frames, spatial then temporal position embeddings are added to the patch tokens, one
  class token attends to all 8 x 256 of them, ``proj`` maps it to 768.

The modules here are written for this project; their parameter names are those of the published
``VideoCLIP-XL.bin`` (a plain state dict, loaded with ``strict=True``). EasyAnimate's re-keyed copy
(``model.`` / ``viclip_model.`` prefixes) is accepted too.

Scoring follows EasyAnimate's ``VideoCLIPXLScore``: 8 frames at ``linspace(0, n, 8,
endpoint=False)``, each squashed to 224x224 with ``cv2.resize`` (bilinear, on uint8), scaled to
[0, 1] and normalised with the ImageNet mean/std; the caption is CLIP-BPE tokenised to 248 tokens
(the longer ones cut, the last kept token made end-of-text); the score is the cosine of the
L2-normalised text and video features, in [-1, 1] (EasyAnimate keeps >= 0.20). The authors' demo
feeds the frames in RGB order; EasyAnimate converts them to BGR first: ``channel_order`` picks.
The BPE vocabulary is transformers' CLIP tokenizer (the same vocabulary and merges as the
authors' ``bpe_simple_vocab_16e6.txt.gz``); ftfy is not used, html entities are unescaped.
"""

from __future__ import annotations

import html
import logging
import os
from collections import OrderedDict
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..config import with_defaults
from ..io.decode import reason
from ..models.frames import clip_frames
from ..models.hub import fetch_file, file_sha256, load, load_state_dict
from .base import ClipJob

log = logging.getLogger(__name__)

LONG_HEAD = 20  # Long-CLIP: positions below this keep CLIP's embedding, the rest are stretched
MEAN = np.array([0.485, 0.456, 0.406]).reshape(1, 1, 3)
STD = np.array([0.229, 0.224, 0.225]).reshape(1, 1, 3)
ALIASES = {"model.": "text_model.", "viclip_model.": "vision_model."}  # EasyAnimate's copy


@dataclass(frozen=True)
class Dims:
    """Sizes of the two towers; the defaults are the published model's."""

    embed: int = 768
    text_width: int = 768
    text_layers: int = 12
    context: int = 248
    vocab: int = 49408
    vision_width: int = 1024
    vision_layers: int = 24
    patch: int = 14
    image: int = 224
    frames: int = 8

    @staticmethod
    def heads(width: int) -> int:
        return max(1, width // 64)  # 64-wide heads, as CLIP and ViCLIP build them

    @classmethod
    def of(cls, sd: dict) -> Dims:
        """The sizes a state dict (published layout) was built with."""

        def layers(prefix: str) -> int:
            return len({k[len(prefix) :].split(".")[0] for k in sd if k.startswith(prefix)})

        v = "vision_model.vision_encoder."
        patch = int(sd[v + "conv1.weight"].shape[-1])
        grid = round((sd[v + "positional_embedding"].shape[0] - 1) ** 0.5)
        return cls(
            embed=int(sd["text_model.text_projection"].shape[1]),
            text_width=int(sd["text_model.ln_final.weight"].shape[0]),
            text_layers=layers("text_model.transformer.resblocks."),
            context=int(sd["text_model.positional_embedding"].shape[0]),
            vocab=int(sd["text_model.token_embedding.weight"].shape[0]),
            vision_width=int(sd[v + "conv1.weight"].shape[0]),
            vision_layers=layers(v + "transformer.resblocks."),
            patch=patch,
            image=patch * grid,
            frames=int(sd[v + "temporal_positional_embedding"].shape[1]),
        )


class LayerNorm32(nn.LayerNorm):
    """LayerNorm computed in float32 whatever the model's dtype (as CLIP's text side does)."""

    def forward(self, x):
        w = self.weight.float() if self.weight is not None else None
        b = self.bias.float() if self.bias is not None else None
        return F.layer_norm(x.float(), self.normalized_shape, w, b, self.eps).to(x.dtype)


class QuickGELU(nn.Module):
    def forward(self, x):
        return x * torch.sigmoid(1.702 * x)


class Block(nn.Module):
    """Pre-norm residual block: self-attention, then a 4x QuickGELU MLP (sequence-first)."""

    def __init__(self, width: int, heads: int):
        super().__init__()
        self.attn = nn.MultiheadAttention(width, heads)
        self.ln_1 = LayerNorm32(width)
        hidden = [("c_fc", nn.Linear(width, 4 * width)), ("gelu", QuickGELU())]
        self.mlp = nn.Sequential(OrderedDict([*hidden, ("c_proj", nn.Linear(4 * width, width))]))
        self.ln_2 = LayerNorm32(width)

    def forward(self, x, mask=None):
        h = self.ln_1(x)
        mask = None if mask is None else mask.to(x.dtype)
        x = x + self.attn(h, h, h, need_weights=False, attn_mask=mask)[0]
        return x + self.mlp(self.ln_2(x))


class Tower(nn.Module):
    def __init__(self, width: int, layers: int):
        super().__init__()
        self.resblocks = nn.ModuleList(Block(width, Dims.heads(width)) for _ in range(layers))

    def forward(self, x, mask=None):
        for block in self.resblocks:
            x = block(x, mask)
        return x


class LongTextEncoder(nn.Module):
    """The Long-CLIP text side (``text_model.*``)."""

    def __init__(self, d: Dims):
        super().__init__()
        self.positional_embedding = nn.Parameter(torch.zeros(d.context, d.text_width))
        self.positional_embedding_res = nn.Parameter(torch.zeros(d.context, d.text_width))
        self.text_projection = nn.Parameter(torch.zeros(d.text_width, d.embed))
        self.logit_scale = nn.Parameter(torch.tensor(float(np.log(1 / 0.07))))
        self.transformer = Tower(d.text_width, d.text_layers)
        self.token_embedding = nn.Embedding(d.vocab, d.text_width)
        self.ln_final = LayerNorm32(d.text_width)
        causal = torch.full((d.context, d.context), float("-inf")).triu_(1)
        self.register_buffer("causal", causal, persistent=False)
        head = (torch.arange(d.context) < LONG_HEAD)[:, None]
        self.register_buffer("head", head, persistent=False)

    def forward(self, ids):
        pos = torch.where(self.head, self.positional_embedding, self.positional_embedding_res)
        x = self.token_embedding(ids) + pos.to(self.token_embedding.weight.dtype)
        x = self.transformer(x.transpose(0, 1), self.causal).transpose(0, 1)
        x = self.ln_final(x)
        eot = ids.argmax(dim=-1)  # the end-of-text token has the largest id
        return x[torch.arange(x.shape[0], device=x.device), eot] @ self.text_projection


class VideoViT(nn.Module):
    """ViCLIP's video ViT (``vision_model.vision_encoder.*``): frames share the class token."""

    def __init__(self, d: Dims):
        super().__init__()
        w, p = d.vision_width, d.patch
        self.class_embedding = nn.Parameter(torch.zeros(w))
        self.positional_embedding = nn.Parameter(torch.zeros((d.image // p) ** 2 + 1, w))
        self.temporal_positional_embedding = nn.Parameter(torch.zeros(1, d.frames, w))
        self.proj = nn.Parameter(torch.zeros(w, d.embed))
        self.conv1 = nn.Conv3d(3, w, (1, p, p), (1, p, p), bias=False)
        self.ln_pre = LayerNorm32(w)
        self.transformer = Tower(w, d.vision_layers)
        self.ln_post = LayerNorm32(w)

    def forward(self, video):
        """``video`` [B, T, 3, H, W] -> [B, embed]."""
        x = self.conv1(video.permute(0, 2, 1, 3, 4))  # B, w, T, g, g
        b, w, t = x.shape[:3]
        x = x.flatten(3).permute(0, 2, 3, 1)  # B, T, N, w
        x = x + self.positional_embedding[1:].to(x.dtype)
        tpe = self.temporal_positional_embedding
        tpe = tpe.mean(1, keepdim=True) if t == 1 else tpe
        x = x + tpe.to(x.dtype)[:, :, None, :]
        x = x.transpose(1, 2).reshape(b, -1, w)  # tokens ordered patch-major, then time
        cls = (self.class_embedding + self.positional_embedding[0]).to(x.dtype)
        x = torch.cat([cls.expand(b, 1, w), x], dim=1)
        x = self.transformer(self.ln_pre(x).transpose(0, 1))
        return self.ln_post(x[0]) @ self.proj


class VisionSide(nn.Module):
    def __init__(self, d: Dims):
        super().__init__()
        self.vision_encoder = VideoViT(d)
        self.temp = nn.Parameter(torch.tensor(0.01))  # training temperature; unused here


class VideoCLIPXL(nn.Module):
    def __init__(self, dims: Dims | None = None):
        super().__init__()
        self.dims = dims or Dims()
        self.text_model = LongTextEncoder(self.dims)
        self.vision_model = VisionSide(self.dims)

    def encode_text(self, ids):
        return self.text_model(ids)

    def encode_video(self, video):
        return self.vision_model.vision_encoder(video)

    def similarity(self, ids, video):
        """Cosine of each caption with its video (pairs by row), in float32."""
        t = F.normalize(self.encode_text(ids).float(), dim=-1)
        v = F.normalize(self.encode_video(video).float(), dim=-1)
        return (t * v).sum(-1)


def published_layout(sd: dict) -> dict:
    """The state dict with the published key names (EasyAnimate's prefixes renamed)."""
    out = {}
    for k, v in sd.items():
        new = next((n + k[len(o) :] for o, n in ALIASES.items() if k.startswith(o)), k)
        out[new] = v
    return out


def load_model(path) -> VideoCLIPXL:
    sd = published_layout(load_state_dict(path))
    model = VideoCLIPXL(Dims.of(sd))
    model.load_state_dict(sd, strict=True)
    return model.eval()


def preprocess(frames: list[np.ndarray], size: int, channel_order: str = "rgb") -> torch.Tensor:
    """RGB uint8 frames -> [T, 3, size, size] float32, as the authors' demo (``rgb``) or
    EasyAnimate (``bgr``) prepare them."""
    import cv2

    out = []
    for f in frames:
        f = np.ascontiguousarray(f[..., ::-1] if channel_order == "bgr" else f)
        small = cv2.resize(f, (size, size))  # bilinear on uint8, aspect not kept
        out.append((small / 255.0 - MEAN) / STD)
    return torch.from_numpy(np.stack(out)).permute(0, 3, 1, 2).float()


def frame_indices(job: ClipJob, count: int) -> list[int]:
    """EasyAnimate's "uniform" frames, ``linspace(0, n, count, endpoint=False)``, counted from
    the clip's first frame."""
    n = max(1, int(job.n_frames))
    return [int(i) for i in np.linspace(0, n, count, endpoint=False).astype(int)]


def token_ids(tokenizer, text: str, context: int) -> torch.Tensor:
    """[1, context]: start, BPE tokens, end, zero padding; a longer caption is cut to
    ``context`` tokens whose last becomes end-of-text (the authors' ``tokenize(truncate=True)``)."""
    text = html.unescape(html.unescape(text)).strip()
    body = tokenizer(text, add_special_tokens=False, verbose=False)["input_ids"]
    toks = [tokenizer.bos_token_id, *body, tokenizer.eos_token_id]
    if len(toks) > context:
        toks = toks[:context]
        toks[-1] = tokenizer.eos_token_id
    out = torch.zeros(1, context, dtype=torch.long)
    out[0, : len(toks)] = torch.tensor(toks)
    return out


class VideoClipXLAligner:
    """``caption.alignment`` with ``kind: videoclip_xl`` (same interface as ``ClipAligner``)."""

    def __init__(self, acfg: dict, *, device: str = "cpu"):
        self.cfg = acfg = with_defaults("caption.alignment", acfg)
        self.vcfg = acfg["videoclip_xl"]
        self.device = device
        self.model = None
        self._sha = None  # of the file loaded
        self._local_sha = None

    def _spec(self) -> dict:
        path = self.vcfg.get("weights_path")
        return {"path": os.fspath(path)} if path else dict(self.vcfg.get("weights") or {})

    def _name(self) -> str:
        s = self._spec()
        if s.get("path"):
            return s["path"]
        if s.get("repo"):
            return f"{s['repo']}/{s.get('filename')}"
        return str(s.get("url"))

    def _pinned(self) -> str | None:
        """The weights' sha256 when it is known without downloading them (a local file, or the
        pin): then it names the weights in the records and cache keys, before and after loading."""
        s = self._spec()
        if self._local_sha is None and s.get("path") and os.path.isfile(s["path"]):
            self._local_sha = file_sha256(s["path"])
        return self._local_sha or s.get("sha256")

    def identity(self) -> dict:
        s, pinned = self._spec(), self._pinned()
        return {
            "model": self._name(),
            "revision": s.get("revision"),
            "resolved_revision": f"sha256:{pinned}" if pinned else s.get("revision"),
            "kind": "videoclip_xl",
            "sha256": pinned or self._sha,
            "tokenizer": {
                "model": self.vcfg["tokenizer"],
                "revision": self.vcfg["tokenizer_revision"],
            },
        }

    def settings(self) -> dict:
        frames = self.model.dims.frames if self.model is not None else Dims().frames
        return {
            "kind": "videoclip_xl",
            "frames": frames,
            "channel_order": self.vcfg["channel_order"],
            "tokenizer": [self.vcfg["tokenizer"], self.vcfg["tokenizer_revision"]],
        }

    def load(self) -> None:
        from transformers import AutoTokenizer

        from ..models.device import pick_dtype

        path, rec = fetch_file(self._spec())
        self._sha = rec["sha256"]
        self.dtype = pick_dtype(self.device, self.cfg["dtype"])
        self.model = load_model(path).to(self.device, dtype=self.dtype)
        self.tokenizer, _ = load(
            AutoTokenizer, self.vcfg["tokenizer"], revision=self.vcfg["tokenizer_revision"]
        )

    def inputs(self, job: ClipJob, caption: str) -> tuple[torch.Tensor, torch.Tensor]:
        d = self.model.dims
        frames = clip_frames(job, frame_indices(job, d.frames), size=None)
        video = preprocess(frames, d.image, self.vcfg["channel_order"])[None]
        return token_ids(self.tokenizer, caption, d.context), video

    def score(self, job: ClipJob, caption: str) -> float:
        ids, video = self.inputs(job, caption)
        with torch.inference_mode():
            sim = self.model.similarity(
                ids.to(self.device), video.to(self.device, dtype=self.dtype)
            )
        return float(sim[0].cpu())

    def score_all(self, items: list[tuple[ClipJob, str]], on_result) -> None:
        """``on_result(clip_id, score or None, error or None)`` per item."""
        for job, caption in items:
            try:
                on_result(job.clip_id, round(self.score(job, caption), 6), None)
            except Exception as exc:  # noqa: BLE001 - failures are data
                on_result(job.clip_id, None, f"alignment: {reason(exc)}")
