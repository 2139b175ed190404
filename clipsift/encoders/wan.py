"""Wan 2.1 and Wan 2.2 VAEs (diffusers ``AutoencoderKLWan``).

- Wan 2.1 (and the Wan 2.2 A14B models, which reuse it): 16 channels, x8 spatial, x4 temporal.
- Wan 2.2 TI2V-5B: 48 channels, x16 spatial (a 2x2 pixel patchify before a x8 encoder), x4
  temporal; config ``patch_size: 2``, ``is_residual: true``.

Normalisation is per channel with the config's ``latents_mean`` / ``latents_std``:
``(z - mean) / std``, what the diffusers Wan pipelines undo before decoding
(``latents / (1 / std) + mean``).
"""

from __future__ import annotations

from typing import ClassVar

from .base import VideoVAE, per_channel


class Wan21(VideoVAE):
    name: ClassVar[str] = "wan2_1"
    diffusers_class: ClassVar[str] = "AutoencoderKLWan"
    dit_patch: ClassVar[int] = 2  # Wan DiT patch (1, 2, 2)

    @property
    def temporal(self) -> int:
        scale = self.config.get("scale_factor_temporal")
        return int(scale) if scale else 2 ** sum(self.config.temperal_downsample)

    @property
    def channels(self) -> int:
        return int(self.config.z_dim)

    def normalize(self, z):
        mean = per_channel(self.config.latents_mean, z)
        std = per_channel(self.config.latents_std, z)
        return (z - mean) / std

    def normalization(self) -> dict:
        return {
            "kind": "per_channel_mean_std",
            "formula": "(z - latents_mean) / latents_std",
            "latents_mean": [float(v) for v in self.config.latents_mean],
            "latents_std": [float(v) for v in self.config.latents_std],
        }


class Wan22(Wan21):
    """The Wan 2.2 TI2V-5B VAE: same class and normalisation, 48 channels at x16 spatial."""

    name: ClassVar[str] = "wan2_2"
