"""LLaVA-NeXT-Video (``LlavaNextVideoForConditionalGeneration``, llava-hf checkpoints): Dataflow-Gen's
second captioner (``llava-hf/LLaVA-NeXT-Video-7B-hf``).

Video inputs (what ``LlavaNextVideoVideoProcessor`` + ``LlavaNextVideoProcessor`` give): each
frame resized so that its shorter side is ``size.shortest_edge`` (aspect kept, the longer side
truncated as transformers' ``get_resize_output_image_size`` does), centre-cropped to
``crop_size`` (336x336 for the released models), rescaled and CLIP-normalised;
``pixel_values_videos`` is ``(batch, frames, 3, H, W)``. The model average-pools each frame's
patch grid by ``spatial_pool_stride`` (2), so the prompt holds ``frames * (side // stride)**2``
``<video>`` tokens (144 per 336-px frame), with no newline token.

The ``images`` path decodes frames straight to the resized size and crops them here, so both
paths see the same pixels. ``max_side`` does not apply: the frame size is the model's.
"""

from __future__ import annotations

import numpy as np

from .base import ClipJob
from .local import CLIP_MEAN, CLIP_STD, LocalVLM, Video


def shortest_edge_size(width: int, height: int, shortest: int) -> tuple[int, int]:
    """``(width, height)`` with the shorter side ``shortest``, the longer truncated (aspect kept)."""
    if width <= height:
        return shortest, int(shortest * height / width)
    return int(shortest * width / height), shortest


class LlavaNextVideo(LocalVLM):
    name = "llava_next_video"
    model_class = "LlavaNextVideoForConditionalGeneration"
    video_token = "<video>"
    video_defaults = {  # LlavaNextVideoVideoProcessor's class defaults (the 7B model sets 336)
        "size": {"shortest_edge": 224},
        "crop_size": {"height": 224, "width": 224},
        "image_mean": CLIP_MEAN,
        "image_std": CLIP_STD,
        "rescale_factor": 1 / 255,
    }

    def frame_size(self, job: ClipJob, n_frames: int) -> tuple[int, int]:
        return shortest_edge_size(
            int(job.width), int(job.height), int(self.video_cfg["size"]["shortest_edge"])
        )

    def batch_key(self, plan):
        return len(plan.times)  # frames are stacked: one frame count per batch

    def tokens_per_frame(self) -> int:
        cfg = self.model.config
        crop = self.video_cfg["crop_size"]
        patch = int(cfg.vision_config.patch_size)
        stride = int(getattr(cfg, "spatial_pool_stride", 2))
        return (int(crop["height"]) // patch // stride) * (int(crop["width"]) // patch // stride)

    def video_tensors(self, videos: list[Video]):
        import torch

        crop = self.video_cfg["crop_size"]
        ch, cw = int(crop["height"]), int(crop["width"])
        scale = float(self.video_cfg.get("rescale_factor", 1 / 255))
        mean = np.asarray(self.video_cfg["image_mean"], np.float32)
        std = np.asarray(self.video_cfg["image_std"], np.float32)
        batch, reps = [], []
        for v in videos:
            h, w = v.frames.shape[1:3]
            top, left = int(round((h - ch) / 2.0)), int(round((w - cw) / 2.0))
            x = v.frames[:, top : top + ch, left : left + cw].astype(np.float32)
            x = (x * scale - mean) / std  # (F, H, W, 3)
            batch.append(x.transpose(0, 3, 1, 2))
            reps.append(self.video_token * (len(v.frames) * self.tokens_per_frame()))
        return {"pixel_values_videos": torch.from_numpy(np.stack(batch))}, reps
