"""Qwen2-VL (``Qwen2VLForConditionalGeneration``): Dataflow-Gen's captioner (Qwen2-VL-7B-Instruct).

Its video inputs are Qwen2.5-VL's (:mod:`.qwen2_5_vl`: the same ``Qwen2VLVideoProcessor``,
``smart_resize`` to 28-px multiples, frames paired in time, one ``<|video_pad|>`` per 2x2
merged patches), without ``second_per_grid_ts``: Qwen2-VL's multimodal RoPE counts temporal
patches, not seconds.
"""

from __future__ import annotations

import numpy as np

from .local import Video
from .qwen2_5_vl import Qwen25VL, QwenVLBase


class Qwen2VL(QwenVLBase):
    name = "qwen2_vl"
    model_class = "Qwen2VLForConditionalGeneration"
    video_defaults = Qwen25VL.video_defaults

    def video_tensors(self, videos: list[Video]):
        import torch

        pixels, grids, reps = [], [], []
        for v in videos:
            p, grid = self.patches(v)
            pixels.append(p)
            grids.append(grid)
            reps.append(self.video_token * (int(np.prod(grid)) // self.merge**2))
        tensors = {
            "pixel_values_videos": torch.from_numpy(np.concatenate(pixels)),
            "video_grid_thw": torch.tensor(grids, dtype=torch.long),
        }
        return tensors, reps
