"""LTX-Video VAE (diffusers ``AutoencoderKLLTXVideo``): 128 channels, x32 spatial (a 4x4 pixel
patchify before the encoder), x8 temporal, frame counts 8n+1 (e.g. 121, 161).

Normalisation as in the diffusers LTX pipeline: ``(z - latents_mean) * scaling_factor /
latents_std`` with the per-channel ``latents_mean`` / ``latents_std`` *buffers* stored in the
weights (not the config) and the config's ``scaling_factor`` (1.0 in the released models). The
transformer's patch is 1x1 (the VAE already compresses x32), so frame sizes are multiples of 32.
Latents are stored unpacked ``[C, F', H', W']``; the LTX pipeline packs them into tokens itself.
"""

from __future__ import annotations

from typing import ClassVar

from .base import VideoVAE, per_channel


class LTXVideo(VideoVAE):
    name: ClassVar[str] = "ltx"
    diffusers_class: ClassVar[str] = "AutoencoderKLLTXVideo"
    dit_patch: ClassVar[int] = 1

    def _stats(self):
        return (
            self.model.latents_mean.detach().float().cpu().tolist(),
            self.model.latents_std.detach().float().cpu().tolist(),
        )

    def normalize(self, z):
        mean, std = self._stats()
        sf = float(self.config.scaling_factor)
        return (z - per_channel(mean, z)) * sf / per_channel(std, z)

    def normalization(self) -> dict:
        mean, std = self._stats()
        return {
            "kind": "per_channel_mean_std",
            "formula": "(z - latents_mean) * scaling_factor / latents_std",
            "scaling_factor": float(self.config.scaling_factor),
            "latents_mean": mean,
            "latents_std": std,
        }
