"""DOVER test weights: seeded random state dicts of the real layout, full size or tiny, saved the
way the released DOVER.pth is (a plain state dict: ``torch.save(model.state_dict(), path)``)."""

from __future__ import annotations

import math
from pathlib import Path

import torch

from clipsift.scorers.dover_net import DoverArch, DoverNet

# a small network of the same structure: 2 Swin stages (fragment biases in the first), 2
# ConvNeXt stages (3 blocks: temporal kernels 1, 3, 1), the real 8x7x7 windows
TINY = DoverArch(
    swin_dim=8,
    swin_depths=(2, 2),
    swin_heads=(1, 2),
    fragment_bias=(True, False),
    conv_dims=(8, 16),
    conv_depths=(1, 3),
    head_hidden=8,
)

# sampling small enough for a CPU: 2 parts of 8 frames, 7x7 fragments of 8 px, 64 px aesthetic
TINY_SAMPLING = {
    "technical": {"clip_len": 8, "num_clips": 2, "frame_interval": 2, "fragments": 7, "fsize": 8},
    "aesthetic": {"clip_len": 8, "frame_interval": 2, "size": 64},
}


def seeded_state_dict(template: dict, seed: int) -> dict:
    """Deterministic values for every float tensor of ``template`` (keys in sorted order, one
    generator): weights scaled by 1/sqrt(fan-in), norms about 1, biases and layer scales small,
    position bias tables large enough to matter. Integer buffers are kept."""
    g = torch.Generator().manual_seed(seed)
    out = {}
    for key in sorted(template):
        t = template[key]
        if not t.is_floating_point():
            out[key] = t.clone()
            continue
        noise = torch.randn(t.shape, generator=g, dtype=torch.float32)
        if "position_bias_table" in key:
            out[key] = 0.5 * noise
        elif key.endswith("gamma"):
            out[key] = 0.3 + 0.1 * noise
        elif t.ndim == 1 and key.endswith("weight"):  # LayerNorm scales
            out[key] = 1.0 + 0.1 * noise
        elif t.ndim == 1:
            out[key] = 0.05 * noise
        else:
            out[key] = noise / math.sqrt(t[0].numel())
    return out


def dover_state_dict(arch: DoverArch | None = None, seed: int = 0) -> dict:
    return seeded_state_dict(DoverNet(arch or TINY).state_dict(), seed)


def save_dover(path: Path, arch: DoverArch | None = None, seed: int = 0) -> Path:
    """A DOVER.pth-like file: the state dict itself, nothing wrapped around it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(dover_state_dict(arch, seed), path)
    return path
