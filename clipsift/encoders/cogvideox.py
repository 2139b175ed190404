"""CogVideoX VAE (diffusers ``AutoencoderKLCogVideoX``): 16 channels, x8 spatial, x4 temporal;
normalised by ``z * scaling_factor`` (1.15258426 for CogVideoX-2b, 0.7 for 5b: read from the
loaded config). Latents are stored ``[C, F', H', W']`` like every family; the CogVideoX
transformer reads ``[F', C, H', W']`` (the pipeline permutes), so a trainer permutes on load.
CogVideoX 1.5 (patch_size_t 2) also wants an even number of latent frames after the first;
choose ``frames.count`` accordingly (e.g. 81 -> 21 latent frames, the pipeline pads one)."""

from __future__ import annotations

from typing import ClassVar

from .base import VideoVAE


class CogVideoX(VideoVAE):
    name: ClassVar[str] = "cogvideox"
    diffusers_class: ClassVar[str] = "AutoencoderKLCogVideoX"
    dit_patch: ClassVar[int] = 2  # CogVideoX DiT patch 2

    @property
    def spatial(self) -> int:
        # diffusers does not set spatial_compression_ratio on this class
        ratio = getattr(self.model, "spatial_compression_ratio", None)
        return int(ratio) if ratio else 2 ** (len(self.config.block_out_channels) - 1)

    @property
    def temporal(self) -> int:
        return int(self.config.temporal_compression_ratio)

    def tiling_args(self) -> dict:
        # CogVideoX takes an overlap factor instead of a stride
        args = {}
        size, stride = self.tile_pixels()
        if size:
            args |= {"tile_sample_min_height": size, "tile_sample_min_width": size}
            if stride:
                overlap = max(0.0, 1.0 - stride / size)
                args |= {
                    "tile_overlap_factor_height": overlap,
                    "tile_overlap_factor_width": overlap,
                }
        return args

    def normalize(self, z):
        return z * float(self.config.scaling_factor)

    def normalization(self) -> dict:
        return {
            "kind": "scaling_factor",
            "formula": "z * scaling_factor",
            "scaling_factor": float(self.config.scaling_factor),
        }
