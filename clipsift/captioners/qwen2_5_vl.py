"""Qwen2.5-VL (``Qwen2_5_VLForConditionalGeneration``): dynamic resolution, frames paired in time.

Video inputs (what ``Qwen2VLVideoProcessor`` + ``Qwen2_5_VLProcessor`` give):
- frames resized by ``smart_resize`` to multiples of ``patch_size * merge_size`` (28 px) with
  ``size.shortest_edge <= h*w <= size.longest_edge`` (we first cap the longer side at ``max_side``);
- ``pixel_values_videos``: flat patches ``(t*h*w, C*T*P*P)``, where each patch holds the same
  14x14 square of ``T = temporal_patch_size`` (2) consecutive frames; ``video_grid_thw`` =
  ``[[frames/T, H/14, W/14]]``; ``second_per_grid_ts`` = ``T / sampled fps``;
- one ``<|video_pad|>`` per ``merge_size**2`` patches.

The ``images`` path runs each frame through the image processor (which patchifies an image as a
still of ``T`` identical frames) and re-pairs the frames' patches in time.
"""

from __future__ import annotations

import math

import numpy as np

from .base import ClipJob, fit_side
from .local import CLIP_MEAN, CLIP_STD, LocalVLM, Video


def smart_resize(height: int, width: int, factor: int, min_pixels: int, max_pixels: int):
    """(height, width) as multiples of ``factor`` within the pixel budget, aspect kept.

    The rule of transformers' ``qwen2_vl`` image and video processors (checked against them by
    the tests where torchvision is installed).
    """
    if max(height, width) / min(height, width) > 200:
        raise ValueError("aspect ratio above 200")
    h_bar = round(height / factor) * factor
    w_bar = round(width / factor) * factor
    if h_bar * w_bar > max_pixels:
        beta = math.sqrt((height * width) / max_pixels)
        h_bar = max(factor, math.floor(height / beta / factor) * factor)
        w_bar = max(factor, math.floor(width / beta / factor) * factor)
    elif h_bar * w_bar < min_pixels:
        beta = math.sqrt(min_pixels / (height * width))
        h_bar = math.ceil(height * beta / factor) * factor
        w_bar = math.ceil(width * beta / factor) * factor
    return h_bar, w_bar


class QwenVLBase(LocalVLM):
    video_token = "<|video_pad|>"

    @property
    def patch(self) -> int:
        return int(self.video_cfg["patch_size"])

    @property
    def merge(self) -> int:
        return int(self.video_cfg["merge_size"])

    @property
    def temporal(self) -> int:
        return int(self.video_cfg["temporal_patch_size"])

    @property
    def temporal_multiple(self) -> int:  # the frame count is a multiple of it
        return self.temporal

    def frame_size(self, job: ClipJob, n_frames: int) -> tuple[int, int]:
        w, h = fit_side(int(job.width), int(job.height), int(self.cfg["max_side"]))
        size = self.video_cfg["size"]
        hh, ww = smart_resize(
            h, w, self.patch * self.merge, size["shortest_edge"], size["longest_edge"]
        )
        return ww, hh

    def processor_call_kwargs(self) -> dict:
        return {"cap_pixels_per_frame": False}  # frames come sized (max_side, smart_resize)

    def patches(self, video: Video) -> tuple[np.ndarray, list[int]]:
        """Flat video patches ``(t*h*w, C*T*P*P)`` and ``[t, h, w]`` from per-frame image patches."""
        P, T, C = self.patch, self.temporal, 3
        out = self.image_processor(
            images=list(video.frames),
            do_resize=False,
            patch_size=P,
            merge_size=self.merge,
            temporal_patch_size=T,
            image_mean=self.video_cfg.get("image_mean"),
            image_std=self.video_cfg.get("image_std"),
            rescale_factor=self.video_cfg.get("rescale_factor", 1 / 255),
            return_tensors="np",
        )
        grid = np.asarray(out["image_grid_thw"])
        _, gh, gw = (int(x) for x in grid[0])
        n = len(video.frames)
        # each frame's patches hold the frame T times; keep one copy: (F, h*w, C, P, P)
        per_frame = np.asarray(out["pixel_values"]).reshape(n, gh * gw, C, T, P, P)[:, :, :, 0]
        if pad := -n % T:  # the video processor repeats the last frame
            per_frame = np.concatenate([per_frame, np.repeat(per_frame[-1:], pad, axis=0)])
        gt = per_frame.shape[0] // T
        paired = per_frame.reshape(gt, T, gh * gw, C, P, P).transpose(0, 2, 3, 1, 4, 5)
        return paired.reshape(gt * gh * gw, C * T * P * P), [gt, gh, gw]

    def mm_token_type_ids(self, input_ids):
        import torch

        types = torch.zeros_like(input_ids)
        types[input_ids == self.model.config.video_token_id] = 2
        types[input_ids == self.model.config.image_token_id] = 1
        return types

    def inputs_from_images(self, texts, videos):
        out = super().inputs_from_images(texts, videos)
        out["mm_token_type_ids"] = self.mm_token_type_ids(out["input_ids"])
        return out


class Qwen25VL(QwenVLBase):
    name = "qwen2_5_vl"
    model_class = "Qwen2_5_VLForConditionalGeneration"
    video_defaults = {
        "size": {"shortest_edge": 128 * 28 * 28, "longest_edge": 28 * 28 * 768},
        "patch_size": 14,
        "temporal_patch_size": 2,
        "merge_size": 2,
        "image_mean": CLIP_MEAN,
        "image_std": CLIP_STD,
        "rescale_factor": 1 / 255,
    }

    def video_tensors(self, videos: list[Video]):
        import torch

        pixels, grids, secs, reps = [], [], [], []
        for v in videos:
            p, grid = self.patches(v)
            pixels.append(p)
            grids.append(grid)
            m = v.metadata
            sampled_fps = len(m["frames_indices"]) / m["total_num_frames"] * m["fps"]
            secs.append(self.temporal / sampled_fps)
            reps.append(self.video_token * (int(np.prod(grid)) // self.merge**2))
        tensors = {
            "pixel_values_videos": torch.from_numpy(np.concatenate(pixels)),
            "video_grid_thw": torch.tensor(grids, dtype=torch.long),
            "second_per_grid_ts": torch.tensor(secs),
        }
        return tensors, reps
