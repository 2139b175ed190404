"""Optional caption-clip alignment score (``caption.alignment``, off by default).

CLIP similarity between the final caption and a few frames of the clip: the cosine of the
L2-normalised text embedding with each frame's image embedding, averaged over the frames.
Scores of CLIP ViT-L/14 lie around 0.15-0.35 for matching pairs; a caption that describes
another clip (a hallucination, or a caption left over from the source) scores lower.

The score is written to each record as ``alignment``, and ``alignment_pass`` records whether it
reaches ``caption.alignment.threshold``. It is a measurement, like every score: rejecting clips
on it belongs to a selection step that runs after captioning (``select.caption``, docs/captions.md).
"""

from __future__ import annotations

import logging

import numpy as np

from ..config import with_defaults
from ..io.decode import reason
from ..models.frames import clip_frames
from ..models.hub import load, resolved_revision
from .base import ClipJob, fit_side, sample_frames

log = logging.getLogger(__name__)


class ClipAligner:
    def __init__(self, acfg: dict, *, device: str = "cpu"):
        self.cfg = acfg = with_defaults("caption.alignment", acfg)
        self.device = device
        self.model_id = str(acfg["model_id"])
        self.revision = acfg.get("revision") or None
        self._resolved = None

    def identity(self) -> dict:
        return {
            "model": self.model_id,
            "revision": self.revision,
            "resolved_revision": self._resolved or resolved_revision(self.model_id, self.revision),
        }

    def settings(self) -> dict:
        return {"frames": int(self.cfg["frames"])}

    def load(self) -> None:
        import torch
        from transformers import AutoImageProcessor, AutoModel, AutoTokenizer

        from ..models.device import pick_dtype

        self.dtype = pick_dtype(self.device, self.cfg["dtype"])
        self.model, rec = load(AutoModel, self.model_id, revision=self.revision, dtype=self.dtype)
        self._resolved = rec["resolved_revision"]
        self.model.to(self.device).eval()
        self.tokenizer, _ = load(AutoTokenizer, self.model_id, revision=self.revision)
        self.image_processor, _ = load(AutoImageProcessor, self.model_id, revision=self.revision)
        self.max_len = int(getattr(self.model.config.text_config, "max_position_embeddings", 77))
        self.torch = torch

    @staticmethod
    def _embeds(out):
        emb = out.pooler_output if hasattr(out, "pooler_output") else out
        return emb / emb.norm(dim=-1, keepdim=True)

    def score(self, job: ClipJob, caption: str) -> float:
        torch = self.torch
        plan = sample_frames(job, rate=1e9, max_frames=int(self.cfg["frames"]))
        side = 2 * max(int(v) for v in _sizes(getattr(self.image_processor, "size", None)) or [224])
        frames = clip_frames(job, plan.indices, size=fit_side(job.width, job.height, side))
        px = self.image_processor(images=frames, return_tensors="pt")["pixel_values"]
        enc = self.tokenizer(
            [caption], padding=True, truncation=True, max_length=self.max_len, return_tensors="pt"
        )
        with torch.inference_mode():
            img = self._embeds(
                self.model.get_image_features(pixel_values=px.to(self.device, dtype=self.dtype))
            )
            txt = self._embeds(self.model.get_text_features(**enc.to(self.device)))
        return float((img @ txt.T).float().mean().cpu())

    def score_all(self, items: list[tuple[ClipJob, str]], on_result) -> None:
        """``on_result(clip_id, score or None, error or None)`` per item."""
        for job, caption in items:
            try:
                s = self.score(job, caption)
                on_result(job.clip_id, round(s, 6), None)
            except Exception as exc:  # noqa: BLE001 - failures are data
                on_result(job.clip_id, None, f"alignment: {reason(exc)}")


def _sizes(size) -> list[int]:
    if size is None:
        return []
    if isinstance(size, dict):
        d = size
    else:
        d = {k: getattr(size, k, None) for k in ("shortest_edge", "height", "width")}
    return [v for k, v in d.items() if k in ("shortest_edge", "height", "width") and v]


def passes(score: float | None, threshold: float | None) -> bool | None:
    if score is None or threshold is None or np.isnan(score):
        return None
    return bool(score >= threshold)


def make_aligner(acfg: dict, *, device: str = "cpu"):
    """The aligner ``caption.alignment.kind`` names (a ``captioners.ALIGNERS`` entry): ``clip``
    (:class:`ClipAligner`, the default) or ``videoclip_xl`` (EasyAnimate's VideoCLIP-XL)."""
    from . import ALIGNERS

    return ALIGNERS.load(acfg.get("kind") or "clip")(acfg, device=device)
