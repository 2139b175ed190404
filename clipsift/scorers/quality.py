"""Learned technical quality: CLIP-IQA (Wang, Chan and Loy, AAAI 2023), zero-shot.

A CLIP model scores each frame against antonym prompt pairs. For a pair (positive, negative) the
score is the softmax, over the two, of the image-text cosine similarities times CLIP's logit
scale: the probability of the positive prompt, 0-1. Defaults are the paper's pairs: overall
quality ("Good photo." / "Bad photo."), and the technical attributes sharp/blurry, clean/noisy,
bright/dark, colorful/dull, high/low contrast. Columns are named after the positive side, so 1
always means the first prompt (``clip_iqa.quality``, ``.sharp``, ``.clean``, ``.bright``,
``.colorful``, ``.contrast``); ``prompts`` in the config replaces or adds pairs.

Differences from the paper's numbers: it used a ResNet-50 CLIP on full-resolution images (its
positional embedding removed); we use a ViT CLIP from transformers on the processor's centre crop
(``openai/clip-vit-base-patch32`` by default), like most CLIP-IQA ports, so absolute values
differ and thresholds should come from calibration.

DOVER, the learned video quality model that Open-Sora-Plan and the HF video filter use, is the
``dover`` scorer (:mod:`clipsift.scorers.dover`).
"""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd
import torch

from ..config import defaults, with_defaults
from ..dedup import write_embeddings
from ..models.runner import FrameModel, clip_embedding, frame_outputs, model_label, reduce_frames
from .aesthetic import short_side

log = logging.getLogger(__name__)

# the defaults are config/schema.yaml's (the pipeline's validated config holds the same)
PROMPTS = defaults("scorers.clip_iqa")["prompts"]  # the paper's pairs


def _features(out) -> torch.Tensor:
    # transformers 5 returns a model output whose pooler_output is the projected feature; 4.x a
    # tensor
    return out if isinstance(out, torch.Tensor) else out.pooler_output


class ClipIqaModel:
    """CLIPModel + image processor + the prompt pairs' text features, on one device."""

    def __init__(
        self, model, processor, tokenizer, prompts: dict, *, device="cpu", dtype=None, record=None
    ):
        self.device = device
        self.dtype = dtype or torch.float32
        self.model = model.to(device=device, dtype=self.dtype).eval()
        self.processor = processor
        self.names = list(prompts)
        for name, pair in prompts.items():
            if len(pair) != 2:
                raise ValueError(f"clip_iqa prompt {name!r}: give [positive, negative]")
        texts = [t for name in self.names for t in prompts[name]]
        tok = tokenizer(texts, padding=True, return_tensors="pt")
        with torch.inference_mode():
            t = _features(
                self.model.get_text_features(
                    input_ids=tok["input_ids"].to(device),
                    attention_mask=tok["attention_mask"].to(device),
                )
            ).float()
            self.text = t / t.norm(dim=-1, keepdim=True).clamp_min(1e-12)  # (2P, d)
            self.scale = float(self.model.logit_scale.float().exp())
        self.record = record or {}
        self.dim = int(self.text.shape[1])

    def preprocess(self, frames):
        return self.processor(images=list(frames), return_tensors="pt")["pixel_values"]

    def forward(self, pixels) -> np.ndarray:
        """Per frame: ``[p(positive) for each pair..., normalised image embedding...]``."""
        with torch.inference_mode():
            img = _features(
                self.model.get_image_features(pixel_values=pixels.to(self.device, self.dtype))
            ).float()
            img = img / img.norm(dim=-1, keepdim=True).clamp_min(1e-12)
            logits = self.scale * img @ self.text.T  # (n, 2P)
            probs = logits.view(len(img), -1, 2).softmax(dim=-1)[..., 0]  # (n, P)
            return torch.cat([probs, img], dim=1).cpu().numpy()

    def frame_model(self) -> FrameModel:
        return FrameModel(self.preprocess, self.forward, short_side(self.processor))


def load_model(cfg: dict, device: str = "cpu") -> ClipIqaModel:
    from transformers import AutoTokenizer, CLIPModel

    from ..models import hub
    from ..models.device import pick_dtype

    cfg = with_defaults("scorers.clip_iqa", cfg)
    kw = {"revision": cfg.get("revision"), "subfolder": cfg.get("subfolder")}
    model, record = hub.load(
        CLIPModel, cfg["model"], trust_remote_code=bool(cfg.get("trust_remote_code")), **kw
    )
    tokenizer, _ = hub.load(AutoTokenizer, cfg["model"], **kw)
    processor = hub.load_image_processor(cfg["model"], **kw)
    dtype = pick_dtype(device, cfg["dtype"])
    m = ClipIqaModel(
        model, processor, tokenizer, cfg["prompts"], device=device, dtype=dtype, record=record
    )
    log.info(
        "clip_iqa: %s on %s (%s), %d prompt pairs", model_label(record), device, dtype, len(m.names)
    )
    return m


def score_clips(clips: pd.DataFrame, model: ClipIqaModel, cfg: dict, embeddings_path=None):
    """One row per clip: one 0-1 column per prompt pair (reduced over frames by ``reduce``),
    ``n_frames``, ``model``; an ``error`` where frames failed."""
    cfg = with_defaults("scorers.clip_iqa", cfg)
    res = frame_outputs(
        clips,
        model.frame_model(),
        n_frames=int(cfg["frames"]),
        batch_size=int(cfg["batch_size"]),
        workers=cfg["workers"],
    )
    label = model_label(model.record)
    p = len(model.names)
    rows, emb_ids, embs = [], [], []
    for clip_id in clips["clip_id"]:
        if clip_id in res.errors or clip_id not in res.outputs:
            rows.append({"clip_id": clip_id, "error": res.errors.get(clip_id, "not scored")})
            continue
        out = res.outputs[clip_id]
        row = {"clip_id": clip_id}
        for i, name in enumerate(model.names):
            row[name] = reduce_frames(out[:, i].astype(np.float64), cfg["reduce"])
        row |= {"n_frames": int(len(out)), "model": label, "error": None}
        rows.append(row)
        emb_ids.append(clip_id)
        embs.append(clip_embedding(out[:, p:]))
    if embeddings_path:
        write_embeddings(embeddings_path, emb_ids, np.array(embs).reshape(len(embs), model.dim))
    log.info(
        "clip_iqa: %d clips, %d errors, %.1f s, batch size %d, %d OOM",
        len(clips),
        len(res.errors),
        res.seconds,
        res.batch_size,
        res.n_oom,
    )
    return pd.DataFrame(rows)


def score_clip_iqa(clips, inputs, cfg):
    """CLIP-IQA: antonym prompt pairs, 0-1 per pair."""
    from ..models.device import resolve_device

    cfg = with_defaults("scorers.clip_iqa", cfg)
    device = resolve_device(cfg["device"], lock_dir=inputs.lock_dir)
    model = load_model(cfg, device)
    return score_clips(clips, model, cfg, embeddings_path=inputs.outputs.get("embeddings"))
