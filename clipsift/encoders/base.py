"""What every video VAE family shares: loading with a pinned revision, memory options, the
distribution's mean or a seeded sample, and the family's latent normalisation.

A family is a subclass of :class:`VideoVAE` in its own module (``wan.py``, ``hunyuan.py``, ...)
that names its diffusers class and implements :meth:`VideoVAE.normalize` and
:meth:`VideoVAE.normalization`. Everything that depends on the weights (channels, spatial and
temporal compression) is read from the loaded model, so a tiny test model and the real one go
through the same code.

Latents are stored channel-first per clip, ``[C, F', H', W']`` (no batch axis, no packing or
patchifying of the transformer), already normalised; the record says how.
"""

from __future__ import annotations

import hashlib
import logging
from typing import ClassVar

import numpy as np

from ..models.hub import load

log = logging.getLogger(__name__)


def clip_seed(seed: int, clip_id: str) -> int:
    """The noise seed of one clip: independent of batch composition, order and device."""
    digest = hashlib.blake2b(f"{int(seed)}:{clip_id}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") & ((1 << 63) - 1)


def valid_count(n: int, temporal: int) -> int:
    """Largest frame count ``<= n`` of the form ``k * temporal + 1`` (0 when ``n < 1``).

    Causal video VAEs keep the first frame and compress the rest by ``temporal``; any other count
    does not raise, the trailing frames are silently dropped, so counts are chosen here.
    """
    if n < 1:
        return 0
    return (n - 1) // temporal * temporal + 1


def to_model_input(frames: np.ndarray):
    """``[F, H, W, 3]`` uint8 RGB frames -> ``[3, F, H, W]`` float32 tensor in ``[-1, 1]``."""
    import torch

    x = torch.from_numpy(np.ascontiguousarray(frames)).permute(3, 0, 1, 2).float()
    return x.div_(127.5).sub_(1.0)


class VideoVAE:
    """A loaded diffusers video VAE plus what a trainer needs to know about its latents."""

    name: ClassVar[str] = ""  # config name (vae.name)
    diffusers_class: ClassVar[str] = ""  # e.g. "AutoencoderKLWan"
    # the transformer's spatial patch: frame sizes must be multiples of spatial x patch, so that
    # the latent grid divides into the trainer's patches
    dit_patch: ClassVar[int] = 2

    def __init__(self, model, record: dict, cfg: dict, device: str, dtype):
        self.model = model
        self.record = record
        self.cfg = cfg
        self.device = device
        self.dtype = dtype

    # ------------------------------------------------------------------ loading

    @classmethod
    def load(cls, cfg: dict, device: str, dtype) -> VideoVAE:
        """``from_pretrained(model, revision=..., subfolder=...)``, moved to ``device``, eval mode,
        with the tiling/slicing options of ``cfg`` (the ``encode.vae`` section)."""
        import importlib.util

        import diffusers

        extra = {}
        if importlib.util.find_spec("accelerate") is None:
            extra["low_cpu_mem_usage"] = False  # what diffusers falls back to, without the warning
        model, record = load(
            getattr(diffusers, cls.diffusers_class),
            cfg["model"],
            revision=cfg.get("revision"),
            subfolder=cfg.get("subfolder") or None,
            torch_dtype=dtype,
            **extra,
        )
        model = model.to(device).eval()
        model.requires_grad_(False)
        vae = cls(
            model, record | {"class": cls.diffusers_class, "family": cls.name}, cfg, device, dtype
        )
        vae.configure_memory()
        return vae

    def configure_memory(self) -> None:
        """Tiling bounds activation memory of large frames; slicing encodes a batch one clip at a
        time. Both trade speed for memory and leave the latents (nearly) unchanged."""
        if self.cfg.get("slicing"):
            self.model.enable_slicing()
        if self.cfg.get("tiling"):
            self.model.enable_tiling(**self.tiling_args())

    def tile_pixels(self) -> tuple[int | None, int | None]:
        """``tile_size`` and ``tile_stride`` rounded down to multiples of the spatial compression
        (a stride that is not one makes some families' tiled encoders return a smaller grid)."""
        s = self.spatial
        size, stride = self.cfg.get("tile_size"), self.cfg.get("tile_stride")
        size = max(s, int(size) // s * s) if size else None
        stride = max(s, int(stride) // s * s) if stride else None
        return size, stride

    def tiling_args(self) -> dict:
        args = {}
        size, stride = self.tile_pixels()
        if size:
            args |= {"tile_sample_min_height": size, "tile_sample_min_width": size}
        if stride:
            args |= {"tile_sample_stride_height": stride, "tile_sample_stride_width": stride}
        return args

    # ------------------------------------------------------------------ geometry

    @property
    def config(self):
        return self.model.config

    @property
    def spatial(self) -> int:
        """Pixels per latent cell along height and width."""
        return int(self.model.spatial_compression_ratio)

    @property
    def temporal(self) -> int:
        """Frames per latent frame after the first."""
        return int(self.model.temporal_compression_ratio)

    @property
    def channels(self) -> int:
        return int(self.config.latent_channels)

    def multiple(self, override: int | None = None) -> int:
        """Frame height and width must be multiples of this."""
        return int(override) if override else self.spatial * self.dit_patch

    def latent_shape(self, frames: int, height: int, width: int) -> tuple[int, int, int, int]:
        """``[C, F', H', W']`` of one clip of ``frames`` frames (a valid count) at ``height x width``."""
        return (
            self.channels,
            (frames - 1) // self.temporal + 1,
            height // self.spatial,
            width // self.spatial,
        )

    # ------------------------------------------------------------------ encoding

    def check_shape(self, latents: np.ndarray, frames: int, height: int, width: int) -> None:
        """Raise if the latents are not ``[B, *latent_shape]``: a wrong grid must not be stored."""
        want = self.latent_shape(frames, height, width)
        if tuple(latents.shape[1:]) != want:
            raise ValueError(f"latent shape {tuple(latents.shape[1:])} is not the expected {want}")

    def encode(self, videos, clip_ids: list[str]) -> np.ndarray:
        """``[B, 3, F, H, W]`` float tensor in ``[-1, 1]`` -> normalised latents, float32 numpy
        ``[B, C, F', H', W']``: the posterior mean (``sample: mean``), or ``mean + std * eps`` with
        ``eps`` drawn on the CPU from a generator seeded per clip (``sample: sample``), so the
        latents do not depend on the batch, the order or the device."""
        import torch

        with torch.inference_mode():
            dist = self.model.encode(videos.to(self.device, self.dtype)).latent_dist
            if self.cfg.get("sample", "mean") == "sample":
                mean, std = dist.mean.float(), dist.std.float()
                eps = torch.stack(
                    [
                        torch.randn(
                            mean.shape[1:],
                            generator=torch.Generator("cpu").manual_seed(
                                clip_seed(self.cfg.get("seed", 0), cid)
                            ),
                        )
                        for cid in clip_ids
                    ]
                ).to(mean.device)
                z = mean + std * eps
            else:
                z = dist.mode().float()
            return self.normalize(z).cpu().numpy()

    def normalize(self, z):
        """Family-specific latent normalisation of float32 ``[B, C, F', H', W']`` latents."""
        raise NotImplementedError

    def normalization(self) -> dict:
        """What :meth:`normalize` did, for the per-clip JSON and ``latents.parquet``: ``kind``,
        ``formula`` and the constants."""
        raise NotImplementedError

    def describe(self) -> dict:
        """The VAE's record: id, revision, class, compression, normalisation."""
        return self.record | {
            "spatial_compression": self.spatial,
            "temporal_compression": self.temporal,
            "latent_channels": self.channels,
            "dtype": str(self.dtype).replace("torch.", ""),
            "sample": self.cfg.get("sample", "mean"),
            "seed": self.cfg.get("seed", 0) if self.cfg.get("sample") == "sample" else None,
            "tiling": bool(self.cfg.get("tiling")),
            "slicing": bool(self.cfg.get("slicing")),
            "normalization": self.normalization(),
            "layout": "CFHW",
        }


def per_channel(values, like):
    """A ``[1, C, 1, 1, 1]`` float32 tensor of per-channel constants on ``like``'s device."""
    import torch

    return torch.as_tensor(values, dtype=torch.float32, device=like.device).view(1, -1, 1, 1, 1)


def denormalize(latents: np.ndarray, normalization: dict) -> np.ndarray:
    """The VAE's own latents (the posterior as the VAE gives it) from stored ``[C, ...]``
    latents and the record of how they were normalised (:meth:`VideoVAE.normalization`), in
    float32: for trainers that normalise on load (HunyuanVideo's multiplies by the scaling factor)."""
    z = np.asarray(latents, dtype=np.float32)
    kind = normalization.get("kind")
    if kind == "scaling_factor":
        return z / np.float32(normalization["scaling_factor"])
    if kind == "per_channel_mean_std":
        shape = (-1,) + (1,) * (z.ndim - 1)
        mean = np.asarray(normalization["latents_mean"], np.float32).reshape(shape)
        std = np.asarray(normalization["latents_std"], np.float32).reshape(shape)
        return z * std / np.float32(normalization.get("scaling_factor", 1.0)) + mean
    if kind == "none":
        return z
    raise ValueError(f"unknown latent normalisation {kind!r}")
