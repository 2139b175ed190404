"""Aesthetic scores: an image embedding, L2-normalised, then a small linear head.

Two published predictors, each a registry entry and a ``scorers:`` config key:

- ``aesthetic``: the LAION improved aesthetic predictor v2 ("sac+logos+ava1-l14-linearMSE"). CLIP
  ViT-L/14 image embeddings (768-d, the projected ``image_embeds`` of
  ``CLIPVisionModelWithProjection``), head 768-1024-128-64-16-1. Its state dict, as published
  (``sac+logos+ava1-l14-linearMSE.pth``): ``layers.{0,2,4,6,7}.{weight,bias}`` (dropout layers at
  1, 3, 5; no activations).
- ``aesthetic_v2_5``: aesthetic-predictor v2.5 (discus0434). SigLIP so400m-patch14-384 pooled
  output (1152-d, ``SiglipVisionModel.pooler_output``), head 1152-1024-128-64-16-1. Its state
  dict (``models/aesthetic_predictor_v2_5.pth``, loaded upstream into the head module):
  ``scoring_head.{0,2,4,6,8}.{weight,bias}`` (dropout after every linear layer but the last).

- ``aesthetic_linear``: LAION-Aesthetics predictor V1 (LAION-AI/aesthetic-predictor,
  ``sa_0_4_vit_l_14_linear.pth``, MIT), the head the HF video filter seed uses: the same CLIP
  ViT-L/14 embeddings, L2-normalised, into one ``nn.Linear(768, 1)``. Its state dict is that
  layer's own (``weight`` [1, 768], ``bias`` [1]), as its README's ``get_aesthetic_model`` loads it.

All heads output the 1-10 scale of their training ratings directly; nothing is rescaled here.
A head file is read with ``torch.load(weights_only=True)`` (or safetensors), never unpickled. A
state dict of a bare ``nn.Sequential`` (``0.weight``...) is accepted for either layout.

Per clip: ``frames`` frames at uniform times are scored one by one and reduced (``reduce``:
``mean``, the EasyAnimate and LAION-video practice, or ``min``, NeMo's); ``score_mean`` and
``score_min`` are always recorded, so either reduction can be selected on without re-scoring.
The clip's embedding (mean of the normalised frame embeddings) goes to the ``embeddings`` output
for the near-duplicate stage: no second model pass.
"""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd
import torch
from torch import nn

from ..config import with_defaults
from ..dedup import write_embeddings
from ..models.runner import FrameModel, clip_embedding, frame_outputs, model_label, reduce_frames

log = logging.getLogger(__name__)

HIDDEN = (1024, 128, 64, 16)


class LaionAestheticHead(nn.Module):
    """The LAION v2 head: ``layers`` = Linear, Dropout(0.2), Linear, Dropout(0.2), Linear,
    Dropout(0.1), Linear, Linear (no activations, as published)."""

    def __init__(self, in_dim: int = 768):
        super().__init__()
        h = HIDDEN
        self.layers = nn.Sequential(
            nn.Linear(in_dim, h[0]),
            nn.Dropout(0.2),
            nn.Linear(h[0], h[1]),
            nn.Dropout(0.2),
            nn.Linear(h[1], h[2]),
            nn.Dropout(0.1),
            nn.Linear(h[2], h[3]),
            nn.Linear(h[3], 1),
        )

    def forward(self, x):
        return self.layers(x)


class AestheticV25Head(nn.Module):
    """The v2.5 head: ``scoring_head`` = (Linear, Dropout(0.5)) x 3, Linear, Dropout(0.2),
    Linear (no activations, as published)."""

    def __init__(self, in_dim: int = 1152):
        super().__init__()
        h = HIDDEN
        self.scoring_head = nn.Sequential(
            nn.Linear(in_dim, h[0]),
            nn.Dropout(0.5),
            nn.Linear(h[0], h[1]),
            nn.Dropout(0.5),
            nn.Linear(h[1], h[2]),
            nn.Dropout(0.5),
            nn.Linear(h[2], h[3]),
            nn.Dropout(0.2),
            nn.Linear(h[3], 1),
        )

    def forward(self, x):
        return self.scoring_head(x)


class LaionLinearHead(nn.Linear):
    """LAION-Aesthetics V1: one linear layer, its state dict ``weight`` and ``bias``."""

    def __init__(self, in_dim: int = 768):
        super().__init__(in_dim, 1)


HEADS = {
    "aesthetic": LaionAestheticHead,
    "aesthetic_linear": LaionLinearHead,
    "aesthetic_v2_5": AestheticV25Head,
}
FAMILIES = {"aesthetic": "clip", "aesthetic_linear": "clip", "aesthetic_v2_5": "siglip"}
PREFIX = {"aesthetic": "layers.", "aesthetic_linear": "", "aesthetic_v2_5": "scoring_head."}


def expected_keys(kind: str, in_dim: int | None = None) -> list[str]:
    """The state-dict keys (in order) of the published head file of ``kind``."""
    return list(HEADS[kind](in_dim or 8).state_dict())


def build_head(kind: str, state_dict: dict):
    """The head of ``kind`` with ``state_dict`` loaded strictly (its input size read from it)."""
    mod_prefix = PREFIX[kind]
    sd = dict(state_dict)
    if mod_prefix and sd and all(k.split(".", 1)[0].isdigit() for k in sd):  # bare Sequential
        sd = {mod_prefix + k: v for k, v in sd.items()}
    first = sd.get(f"{mod_prefix}0.weight" if mod_prefix else "weight")
    if first is None or first.ndim != 2:
        raise RuntimeError(
            f"{kind} head: expected the keys {expected_keys(kind)}, got {sorted(sd)[:12]}"
        )
    head = HEADS[kind](int(first.shape[1]))
    try:
        head.load_state_dict(sd, strict=True)
    except RuntimeError as exc:
        raise RuntimeError(
            f"{kind} head does not match the published layout {expected_keys(kind)}: "
            f"{str(exc).splitlines()[0]}"
        ) from None
    return head.eval()


class AestheticModel:
    """Vision tower + image processor + head, on one device; a :class:`FrameModel` factory."""

    def __init__(self, kind, vision, processor, head, *, device="cpu", dtype=None, record=None):
        self.kind = kind
        self.family = FAMILIES[kind]
        self.device = device
        self.dtype = dtype or torch.float32
        self.vision = vision.to(device=device, dtype=self.dtype).eval()
        self.processor = processor
        self.head = head.to(device=device, dtype=torch.float32).eval()  # the head stays fp32
        self.record = record or {}
        out_dim = self.embed_dim
        in_dim = self.head.state_dict()[next(iter(self.head.state_dict()))].shape[1]
        if out_dim != in_dim:
            raise RuntimeError(
                f"{kind}: the model gives {out_dim}-d embeddings but the head takes {in_dim}"
            )

    @property
    def embed_dim(self) -> int:
        cfg = self.vision.config
        return int(cfg.projection_dim) if self.family == "clip" else int(cfg.hidden_size)

    def preprocess(self, frames):
        return self.processor(images=list(frames), return_tensors="pt")["pixel_values"]

    def embed(self, pixels):
        """Raw (unnormalised) image embeddings in float32."""
        pixels = pixels.to(self.device, self.dtype)
        out = self.vision(pixel_values=pixels)
        emb = out.image_embeds if self.family == "clip" else out.pooler_output
        return emb.float()

    def forward(self, pixels) -> np.ndarray:
        """Per frame: ``[score, normalised embedding...]``."""
        with torch.inference_mode():
            emb = self.embed(pixels)
            emb = emb / emb.norm(dim=-1, keepdim=True).clamp_min(1e-12)
            score = self.head(emb)
            return torch.cat([score, emb], dim=1).cpu().numpy()

    def frame_model(self) -> FrameModel:
        return FrameModel(self.preprocess, self.forward, short_side(self.processor))


def short_side(processor) -> int | None:
    """The smallest frame side the processor's resize needs."""
    size = getattr(processor, "size", None) or {}
    if not isinstance(size, dict):
        size = dict(size)
    if size.get("shortest_edge"):
        return int(size["shortest_edge"])
    if size.get("height") and size.get("width"):
        return int(max(size["height"], size["width"]))
    return None


def load_model(kind: str, cfg: dict, device: str = "cpu") -> AestheticModel:
    """Load the vision tower, processor and head named by ``cfg`` (pinned revisions)."""
    from ..models import hub
    from ..models.device import pick_dtype

    cfg = with_defaults(f"scorers.{kind}", cfg)
    if FAMILIES[kind] == "clip":
        from transformers import CLIPVisionModelWithProjection as Vision
    else:
        from transformers import SiglipVisionModel as Vision
    vision, record = hub.load(
        Vision,
        cfg["model"],
        revision=cfg.get("revision"),
        subfolder=cfg.get("subfolder"),
        trust_remote_code=bool(cfg.get("trust_remote_code")),
    )
    processor = hub.load_image_processor(
        cfg["model"], revision=cfg.get("revision"), subfolder=cfg.get("subfolder")
    )
    head_spec = cfg.get("head_path") or cfg.get("head")
    head_file, head_record = hub.fetch_file(head_spec)
    head = build_head(kind, hub.load_state_dict(head_file))
    record["head"] = head_record
    dtype = pick_dtype(device, cfg["dtype"])
    model = AestheticModel(kind, vision, processor, head, device=device, dtype=dtype, record=record)
    log.info("%s: %s on %s (%s), head %s", kind, model_label(record), device, dtype, head_record)
    return model


def score_clips(clips: pd.DataFrame, model: AestheticModel, cfg: dict, embeddings_path=None):
    """One row per clip: ``score`` (by ``reduce``), ``score_mean``, ``score_min``,
    ``score_max``, ``n_frames``, ``model``, ``head``; an ``error`` where frames failed."""
    cfg = with_defaults(f"scorers.{model.kind}", cfg)
    res = frame_outputs(
        clips,
        model.frame_model(),
        n_frames=int(cfg["frames"]),
        batch_size=int(cfg["batch_size"]),
        workers=cfg["workers"],
    )
    label = model_label(model.record)
    head = model.record.get("head", {})
    head_label = f"sha256:{head.get('sha256', '')[:16]}"
    rows, emb_ids, embs = [], [], []
    for clip_id in clips["clip_id"]:
        if clip_id in res.errors or clip_id not in res.outputs:
            rows.append({"clip_id": clip_id, "error": res.errors.get(clip_id, "not scored")})
            continue
        out = res.outputs[clip_id]
        s = out[:, 0].astype(np.float64)
        rows.append(
            {
                "clip_id": clip_id,
                "score": reduce_frames(s, cfg["reduce"]),
                "score_mean": float(s.mean()),
                "score_min": float(s.min()),
                "score_max": float(s.max()),
                "n_frames": int(len(s)),
                "model": label,
                "head": head_label,
                "error": None,
            }
        )
        emb_ids.append(clip_id)
        embs.append(clip_embedding(out[:, 1:]))
    if embeddings_path:
        dim = model.embed_dim
        write_embeddings(embeddings_path, emb_ids, np.array(embs).reshape(len(embs), dim))
    log.info(
        "%s: %d clips, %d errors, %.1f s (%.2f clips/s), batch size %d, %d OOM",
        model.kind,
        len(clips),
        len(res.errors),
        res.seconds,
        len(clips) / res.seconds if res.seconds else 0.0,
        res.batch_size,
        res.n_oom,
    )
    return pd.DataFrame(rows)


def _score(kind: str, clips, inputs, cfg):
    from ..models.device import resolve_device

    cfg = with_defaults(f"scorers.{kind}", cfg)
    device = resolve_device(cfg["device"], lock_dir=inputs.lock_dir)
    model = load_model(kind, cfg, device)
    return score_clips(clips, model, cfg, embeddings_path=inputs.outputs.get("embeddings"))


def score_aesthetic(clips, inputs, cfg):
    """LAION improved aesthetic predictor v2 (CLIP ViT-L/14 + linear head), 1-10."""
    return _score("aesthetic", clips, inputs, cfg)


def score_aesthetic_linear(clips, inputs, cfg):
    """LAION-Aesthetics V1 (CLIP ViT-L/14 + one linear layer), 1-10."""
    return _score("aesthetic_linear", clips, inputs, cfg)


def score_aesthetic_v2_5(clips, inputs, cfg):
    """aesthetic-predictor v2.5 (SigLIP so400m-patch14-384 + head), 1-10."""
    return _score("aesthetic_v2_5", clips, inputs, cfg)
