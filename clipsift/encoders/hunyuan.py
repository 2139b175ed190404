"""HunyuanVideo VAE (diffusers ``AutoencoderKLHunyuanVideo``): 16 channels, x8 spatial, x4
temporal; normalised by ``z * scaling_factor`` (0.476986 in the released config), what the
diffusers HunyuanVideo pipeline divides by before decoding. Frame counts 4n+1 (129 at 720p)."""

from __future__ import annotations

from typing import ClassVar

from .base import VideoVAE


class HunyuanVideo(VideoVAE):
    name: ClassVar[str] = "hunyuan"
    diffusers_class: ClassVar[str] = "AutoencoderKLHunyuanVideo"
    dit_patch: ClassVar[int] = 2  # HunyuanVideo DiT patch (1, 2, 2)

    def normalize(self, z):
        return z * float(self.config.scaling_factor)

    def normalization(self) -> dict:
        return {
            "kind": "scaling_factor",
            "formula": "z * scaling_factor",
            "scaling_factor": float(self.config.scaling_factor),
        }
