"""DOVER's network in plain torch: the two backbones and heads of the released ``DOVER.pth``.

``DoverNet`` holds four parts whose parameter names are those of the published checkpoint, so
``load_state_dict(strict=True)`` takes the real file as it is:

- ``technical_backbone``: a video Swin Transformer with FAST-VQA's gated relative position
  biases (:mod:`clipsift.scorers.swin3d`).
- ``aesthetic_backbone``: ConvNeXt-T inflated to 3D (stem 2x4x4, downsampling 1x2x2, depthwise
  kernels of temporal size 1, 3, 1, ... within each stage).
- ``technical_head`` / ``aesthetic_head``: 1x1x1 convolutions 768-64-1 with a GELU between,
  applied to every position of the last feature map (no pooling before the head).

The sizes are read back from a state dict (:func:`arch_from_state_dict`), so a small test
checkpoint with the same layout goes through the same loading code as the real one.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from .swin3d import SwinTransformer3D

# ----------------------------------------------------------------------------- ConvNeXt3D


class ChannelsFirstNorm(nn.Module):
    """LayerNorm over dim 1 of (B, C, T, H, W), computed as ConvNeXt's reference code does."""

    def __init__(self, dim: int, eps: float = 1e-6):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(dim))
        self.bias = nn.Parameter(torch.zeros(dim))
        self.eps = eps

    def forward(self, x):
        mean = x.mean(1, keepdim=True)
        var = (x - mean).pow(2).mean(1, keepdim=True)
        x = (x - mean) / torch.sqrt(var + self.eps)
        return self.weight[:, None, None, None] * x + self.bias[:, None, None, None]


class ConvNeXtBlock3D(nn.Module):
    def __init__(self, dim: int, t_kernel: int):
        super().__init__()
        self.gamma = nn.Parameter(torch.full((dim,), 1e-6))
        self.dwconv = nn.Conv3d(
            dim, dim, kernel_size=(t_kernel, 7, 7), padding=(t_kernel // 2, 3, 3), groups=dim
        )
        self.norm = nn.LayerNorm(dim, eps=1e-6)
        self.pwconv1 = nn.Linear(dim, 4 * dim)
        self.pwconv2 = nn.Linear(4 * dim, dim)

    def forward(self, x):
        y = self.norm(self.dwconv(x).permute(0, 2, 3, 4, 1))
        y = self.gamma * self.pwconv2(F.gelu(self.pwconv1(y)))
        return x + y.permute(0, 4, 1, 2, 3)


class ConvNeXt3D(nn.Module):
    T_KERNELS = "131"  # temporal kernel of block j in a stage: T_KERNELS[j % 3]

    def __init__(self, dims, depths):
        super().__init__()
        stem = nn.Sequential(
            nn.Conv3d(3, dims[0], (2, 4, 4), (2, 4, 4)), ChannelsFirstNorm(dims[0])
        )
        downs = [
            nn.Sequential(ChannelsFirstNorm(dims[i]), nn.Conv3d(dims[i], dims[i + 1], (1, 2, 2), (1, 2, 2)))
            for i in range(len(dims) - 1)
        ]  # fmt: skip
        self.downsample_layers = nn.ModuleList([stem, *downs])
        kernels = self.T_KERNELS
        self.stages = nn.ModuleList(
            nn.Sequential(*(ConvNeXtBlock3D(dim, int(kernels[j % 3])) for j in range(depth)))
            for dim, depth in zip(dims, depths, strict=True)
        )
        self.norm = nn.LayerNorm(dims[-1], eps=1e-6)

    def forward(self, x):
        for down, stage in zip(self.downsample_layers, self.stages, strict=True):
            x = stage(down(x))
        return self.norm(x.permute(0, 2, 3, 4, 1)).permute(0, 4, 1, 2, 3)


# ----------------------------------------------------------------------------- DOVER


class QualityHead(nn.Module):
    """A score at every position of a feature map: 1x1x1 conv, GELU, 1x1x1 conv to one channel."""

    def __init__(self, dim: int, hidden: int):
        super().__init__()
        self.fc_hid = nn.Conv3d(dim, hidden, 1)
        self.fc_last = nn.Conv3d(hidden, 1, 1)

    def forward(self, x):
        return self.fc_last(F.gelu(self.fc_hid(x)))


@dataclass(frozen=True)
class DoverArch:
    """Sizes of the network; the defaults are those of the released DOVER.pth."""

    swin_dim: int = 96
    swin_depths: tuple = (2, 2, 6, 2)
    swin_heads: tuple = (3, 6, 12, 24)
    fragment_bias: tuple = (True, True, True, False)
    window: tuple = (8, 7, 7)
    patch: tuple = (2, 4, 4)
    mlp_ratio: float = 4.0
    conv_dims: tuple = (96, 192, 384, 768)
    conv_depths: tuple = (3, 3, 9, 3)
    head_hidden: int = 64


class DoverNet(nn.Module):
    def __init__(self, arch: DoverArch | None = None):
        super().__init__()
        a = arch or DoverArch()
        self.arch = a
        self.technical_backbone = SwinTransformer3D(
            a.swin_dim, a.swin_depths, a.swin_heads, a.window, a.patch, a.mlp_ratio,
            a.fragment_bias,
        )  # fmt: skip
        self.aesthetic_backbone = ConvNeXt3D(a.conv_dims, a.conv_depths)
        swin_out = a.swin_dim * 2 ** (len(a.swin_depths) - 1)
        self.technical_head = QualityHead(swin_out, a.head_hidden)
        self.aesthetic_head = QualityHead(a.conv_dims[-1], a.head_hidden)

    def forward(self, technical: torch.Tensor, aesthetic: torch.Tensor):
        """Score maps ``(clips, 1, T', H', W')`` of the technical view (fragments) and of the
        aesthetic view (the resized frames); DOVER's scores are their means."""
        t = self.technical_head(self.technical_backbone(technical))
        a = self.aesthetic_head(self.aesthetic_backbone(aesthetic))
        return t, a


def _count(sd: dict, prefix: str) -> int:
    """How many consecutive integer children ``{prefix}{i}.`` the state dict has."""
    n = 0
    while any(k.startswith(f"{prefix}{n}.") for k in sd):
        n += 1
    return n


def _window(n_tokens: int, n_rel: int, default) -> tuple:
    if n_tokens == default[0] * default[1] * default[2]:
        return tuple(default)
    for d in range(1, n_tokens + 1):
        for s in range(1, n_tokens + 1):
            if d * s * s == n_tokens and (2 * d - 1) * (2 * s - 1) ** 2 == n_rel:
                return (d, s, s)
    raise RuntimeError(f"cannot tell the attention window from {n_tokens} tokens")


def arch_from_state_dict(sd: dict) -> DoverArch:
    """The sizes of the network a DOVER state dict was saved from."""
    tb, ab = "technical_backbone.", "aesthetic_backbone."
    need = f"{tb}patch_embed.proj.weight"
    if need not in sd or f"{ab}norm.weight" not in sd or "technical_head.fc_hid.weight" not in sd:
        raise RuntimeError(
            f"not a DOVER state dict: expected keys such as {need!r}, "
            f"'{ab}stages.0.0.dwconv.weight' and 'technical_head.fc_hid.weight'; "
            f"got {sorted(sd)[:6]}..."
        )
    proj = sd[need]
    n_layers = _count(sd, f"{tb}layers.")
    depths = tuple(_count(sd, f"{tb}layers.{i}.blocks.") for i in range(n_layers))
    attn0 = f"{tb}layers.0.blocks.0.attn."
    table = sd[f"{attn0}relative_position_bias_table"]
    window = _window(
        int(sd[f"{attn0}relative_position_index"].shape[0]), int(table.shape[0]), DoverArch.window
    )
    heads = tuple(
        int(sd[f"{tb}layers.{i}.blocks.0.attn.relative_position_bias_table"].shape[1])
        for i in range(n_layers)
    )
    frag = tuple(
        f"{tb}layers.{i}.blocks.0.attn.fragment_position_bias_table" in sd for i in range(n_layers)
    )
    n_stages = _count(sd, f"{ab}stages.")
    return DoverArch(
        swin_dim=int(proj.shape[0]),
        swin_depths=depths,
        swin_heads=heads,
        fragment_bias=frag,
        window=window,
        patch=tuple(int(s) for s in proj.shape[2:]),
        mlp_ratio=sd[f"{attn0[:-5]}mlp.fc1.weight"].shape[0] / proj.shape[0],
        conv_dims=tuple(int(sd[f"{ab}stages.{i}.0.gamma"].shape[0]) for i in range(n_stages)),
        conv_depths=tuple(_count(sd, f"{ab}stages.{i}.") for i in range(n_stages)),
        head_hidden=int(sd["technical_head.fc_hid.weight"].shape[0]),
    )


def build(sd: dict) -> DoverNet:
    """A :class:`DoverNet` of the state dict's sizes with it loaded strictly, in eval mode."""
    net = DoverNet(arch_from_state_dict(sd))
    try:
        net.load_state_dict(sd, strict=True)
    except RuntimeError as exc:
        detail = " ".join(line.strip() for line in str(exc).splitlines()[1:3])
        raise RuntimeError(f"the weights do not match DOVER's published layout: {detail}") from None
    return net.eval()
