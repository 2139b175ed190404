"""Qwen3-VL (``Qwen3VLForConditionalGeneration``): Qwen2.5-VL's patches, with timestamps in text.

Differences from Qwen2.5-VL (what ``Qwen3VLVideoProcessor`` + ``Qwen3VLProcessor`` give):
- 16-px patches (32-px resize factor), SigLIP-style mean/std 0.5;
- the pixel budget of ``smart_resize`` counts all frames (``frames * h * w``);
- no ``second_per_grid_ts``; instead each pair of frames gets its time in the prompt:
  ``<0.3 seconds><|vision_start|><|video_pad|>...<|vision_end|>`` per temporal patch.
"""

from __future__ import annotations

import math

import numpy as np

from .base import ClipJob, fit_side
from .local import HALF, Video
from .qwen2_5_vl import QwenVLBase


def smart_resize_video(
    num_frames: int,
    height: int,
    width: int,
    temporal_factor: int,
    factor: int,
    min_pixels: int,
    max_pixels: int,
):
    """transformers' ``qwen3_vl`` video resize rule (budget over ``frames * h * w``)."""
    if num_frames < temporal_factor:
        raise ValueError(f"{num_frames} frames < temporal factor {temporal_factor}")
    if height < factor or width < factor:
        scale = max(factor / height, factor / width)
        height, width = int(height * scale), int(width * scale)
    if max(height, width) / min(height, width) > 200:
        raise ValueError("aspect ratio above 200")
    h_bar = round(height / factor) * factor
    w_bar = round(width / factor) * factor
    t_bar = round(num_frames / temporal_factor) * temporal_factor
    if t_bar * h_bar * w_bar > max_pixels:
        beta = math.sqrt((num_frames * height * width) / max_pixels)
        h_bar = max(factor, math.floor(height / beta / factor) * factor)
        w_bar = max(factor, math.floor(width / beta / factor) * factor)
    elif t_bar * h_bar * w_bar < min_pixels:
        beta = math.sqrt(min_pixels / (num_frames * height * width))
        h_bar = math.ceil(height * beta / factor) * factor
        w_bar = math.ceil(width * beta / factor) * factor
    return h_bar, w_bar


def group_timestamps(times: list[float], temporal: int) -> list[float]:
    """The time of each temporal patch: the mean of its first and last frame's (the last frame
    repeated to fill the patch), as ``Qwen3VLProcessor`` has it. ``times`` are the frames' own
    (decoded): the processor's ``index / fps`` is exact only at a constant frame rate."""
    ts = list(times)
    if len(ts) % temporal:
        ts += [ts[-1]] * (temporal - len(ts) % temporal)
    return [(ts[i] + ts[i + temporal - 1]) / 2 for i in range(0, len(ts), temporal)]


class Qwen3VL(QwenVLBase):
    name = "qwen3_vl"
    model_class = "Qwen3VLForConditionalGeneration"
    video_defaults = {
        "size": {"shortest_edge": 128 * 32 * 32, "longest_edge": 32 * 32 * 768},
        "patch_size": 16,
        "temporal_patch_size": 2,
        "merge_size": 2,
        "image_mean": HALF,
        "image_std": HALF,
        "rescale_factor": 1 / 255,
    }
    vision_start = "<|vision_start|>"
    vision_end = "<|vision_end|>"
    vllm_video_metadata = True  # its timestamps are made from the metadata in vLLM too
    prompt_times = True  # each temporal patch's time, in the prompt

    def frame_size(self, job: ClipJob, n_frames: int) -> tuple[int, int]:
        w, h = fit_side(int(job.width), int(job.height), int(self.cfg["max_side"]))
        size = self.video_cfg["size"]
        hh, ww = smart_resize_video(
            max(n_frames, self.temporal),
            h,
            w,
            self.temporal,
            self.patch * self.merge,
            size["shortest_edge"],
            size["longest_edge"],
        )
        return ww, hh

    def video_tensors(self, videos: list[Video]):
        import torch

        pixels, grids, reps = [], [], []
        for v in videos:
            p, (gt, gh, gw) = self.patches(v)
            pixels.append(p)
            grids.append([gt, gh, gw])
            times = group_timestamps(v.timestamps, self.temporal)
            per_frame = self.video_token * (gh * gw // self.merge**2)
            reps.append(
                "".join(
                    f"<{times[k]:.1f} seconds>{self.vision_start}{per_frame}{self.vision_end}"
                    for k in range(gt)
                )
            )
        tensors = {
            "pixel_values_videos": torch.from_numpy(np.concatenate(pixels)),
            "video_grid_thw": torch.tensor(grids, dtype=torch.long),
        }
        return tensors, reps
