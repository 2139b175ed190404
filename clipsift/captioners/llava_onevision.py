"""LLaVA-OneVision (``LlavaOnevisionForConditionalGeneration``, llava-hf checkpoints).

Video inputs (what ``LlavaOnevisionVideoProcessor`` + ``LlavaOnevisionProcessor`` give): every
frame resized to the video processor's fixed ``size`` (384x384 for the released models, aspect
not kept), rescaled and normalised; ``pixel_values_videos`` is ``(batch, frames, 3, H, W)``; the
model pools each frame's patch grid to ``ceil(side/2)`` squared tokens and adds one newline token,
so the prompt holds ``frames * ceil(sqrt(num_image_tokens)/2)**2 + 1`` ``<video>`` tokens.

The image processor's own path tiles a picture into "anyres" crops, which is not how the model
sees video frames, so the ``images`` path builds the frame tensors from the video processor's
config values (size, rescale factor, mean, std) directly. ``max_side`` does not apply: the frame
size is the model's.
"""

from __future__ import annotations

import math

import numpy as np

from .base import ClipJob
from .local import CLIP_MEAN, CLIP_STD, LocalVLM, Video


class LlavaOnevision(LocalVLM):
    name = "llava_onevision"
    model_class = "LlavaOnevisionForConditionalGeneration"
    video_token = "<video>"
    video_defaults = {
        "size": {"height": 384, "width": 384},
        "image_mean": CLIP_MEAN,
        "image_std": CLIP_STD,
        "rescale_factor": 1 / 255,
    }

    def frame_size(self, job: ClipJob, n_frames: int) -> tuple[int, int]:
        size = self.video_cfg["size"]
        return int(size["width"]), int(size["height"])

    def batch_key(self, plan):
        return len(plan.times)  # frames are stacked: one frame count per batch

    def load(self) -> None:
        super().load()
        pcfg = self.processor_config()
        n = pcfg.get("num_image_tokens")
        if not n:
            vc = self.model.config.vision_config
            n = (vc.image_size // vc.patch_size) ** 2
        self.num_image_tokens = int(n)

    def video_tensors(self, videos: list[Video]):
        import torch

        scale = float(self.video_cfg.get("rescale_factor", 1 / 255))
        mean = np.asarray(self.video_cfg["image_mean"], np.float32)
        std = np.asarray(self.video_cfg["image_std"], np.float32)
        side = int(math.sqrt(self.num_image_tokens))
        per_frame = math.ceil(side / 2) ** 2
        batch, reps = [], []
        for v in videos:
            x = (v.frames.astype(np.float32) * scale - mean) / std  # (F, H, W, 3)
            batch.append(x.transpose(0, 3, 1, 2))
            reps.append(self.video_token * (len(v.frames) * per_frame + 1))
        return {"pixel_values_videos": torch.from_numpy(np.stack(batch))}, reps
