"""DOVER's network in plain torch: the two backbones and heads of the released ``DOVER.pth``.

``DoverNet`` holds four parts whose parameter names are those of the published checkpoint, so
``load_state_dict(strict=True)`` takes the real file as it is:

- ``technical_backbone``: a video Swin Transformer (Swin-T: patches 2x4x4, dims 96-768, depths
  2-2-6-2, windows 8x7x7) with FAST-VQA's "gated relative position biases": in the first three
  stages a second bias table (``fragment_position_bias_table``) is used for token pairs that lie
  in different fragments of the 7x7 fragment grid, the first one for pairs inside one fragment.
  As published, the gate is the L1 distance between the two fragment indices (not a 0/1 flag),
  and it is applied the same way here.
- ``aesthetic_backbone``: ConvNeXt-T inflated to 3D (stem 2x4x4, downsampling 1x2x2, depthwise
  kernels of temporal size 1, 3, 1, ... within each stage).
- ``technical_head`` / ``aesthetic_head``: 1x1x1 convolutions 768-64-1 with a GELU between,
  applied to every position of the last feature map (no pooling before the head).

The sizes are read back from a state dict (:func:`arch_from_state_dict`), so a small test
checkpoint with the same layout goes through the same loading code as the real one.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import torch
import torch.nn.functional as F
from torch import nn

# ----------------------------------------------------------------------------- Swin3D helpers


def fit_window(size, window, shift):
    """Window and shift per axis; an axis no longer than the window takes its whole length as
    the window and is not shifted."""
    win, sh = list(window), list(shift)
    for i, n in enumerate(size):
        if n <= window[i]:
            win[i], sh[i] = n, 0
    return tuple(win), tuple(sh)


def to_windows(x: torch.Tensor, win) -> torch.Tensor:
    """(B, D, H, W, C) -> (B * windows, tokens per window, C)."""
    b, d, h, w, c = x.shape
    x = x.view(b, d // win[0], win[0], h // win[1], win[1], w // win[2], win[2], c)
    return x.permute(0, 1, 3, 5, 2, 4, 6, 7).reshape(-1, win[0] * win[1] * win[2], c)


def from_windows(x: torch.Tensor, win, b: int, d: int, h: int, w: int) -> torch.Tensor:
    """Inverse of :func:`to_windows`."""
    x = x.view(b, d // win[0], h // win[1], w // win[2], win[0], win[1], win[2], -1)
    return x.permute(0, 1, 4, 2, 5, 3, 6, 7).reshape(b, d, h, w, -1)


def relative_index(win) -> torch.Tensor:
    """Index of each token pair's 3D offset into the relative bias table, (N, N)."""
    grid = torch.stack(torch.meshgrid(*(torch.arange(n) for n in win), indexing="ij")).flatten(1)
    rel = (grid[:, :, None] - grid[:, None, :]).permute(1, 2, 0)
    rel = rel + torch.tensor([n - 1 for n in win])
    strides = torch.tensor([(2 * win[1] - 1) * (2 * win[2] - 1), 2 * win[2] - 1, 1])
    return (rel * strides).sum(-1)


@lru_cache(maxsize=64)
def shift_mask(size, win, shift, device: str) -> torch.Tensor:
    """Additive mask (windows, N, N) of a shifted window pass: -100 between tokens that came
    from different regions of the rolled feature map, else 0."""

    def regions(n, w, s):
        lab = torch.zeros(n)
        if s > 0:
            lab[n - w : n - s] = 1
            lab[n - s :] = 2
        return lab

    ld, lh, lw = (regions(n, w, s) for n, w, s in zip(size, win, shift, strict=True))
    region = ld[:, None, None] * 9 + lh[None, :, None] * 3 + lw[None, None, :]
    reg = to_windows(region[None, ..., None], win).squeeze(-1)
    diff = reg[:, None, :] - reg[:, :, None]
    return torch.where(diff != 0, -100.0, 0.0).to(device)


@lru_cache(maxsize=64)
def fragment_gate(size, win, shift, device: str) -> torch.Tensor:
    """(windows, N, N): for each token pair, the L1 distance between the fragments they lie in
    (a ``win[1] x win[2]`` fragment grid stretched over the feature map by nearest
    interpolation, rolled with the features)."""
    grid = torch.stack(
        torch.meshgrid(torch.arange(1), torch.arange(win[1]), torch.arange(win[2]), indexing="ij")
    ).float()
    coords = F.interpolate(grid[None], size=tuple(size)).long().permute(0, 2, 3, 4, 1)
    coords = torch.roll(coords, shifts=tuple(-s for s in shift), dims=(1, 2, 3))
    wc = to_windows(coords, win)
    return (wc[:, None, :, :] - wc[:, :, None, :]).abs().sum(-1).float().to(device)


# ----------------------------------------------------------------------------- Swin3D


class Mlp(nn.Module):
    def __init__(self, dim: int, hidden: int):
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x):
        return self.fc2(F.gelu(self.fc1(x)))


class WindowAttention3D(nn.Module):
    def __init__(self, dim: int, window, heads: int, fragment_bias: bool):
        super().__init__()
        self.heads = heads
        self.scale = (dim // heads) ** -0.5
        n_rel = (2 * window[0] - 1) * (2 * window[1] - 1) * (2 * window[2] - 1)
        self.relative_position_bias_table = nn.Parameter(torch.zeros(n_rel, heads))
        if fragment_bias:
            self.fragment_position_bias_table = nn.Parameter(torch.zeros(n_rel, heads))
        self.register_buffer("relative_position_index", relative_index(window))
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)

    def _bias(self, table, idx, n):
        return table[idx].reshape(n, n, -1).permute(2, 0, 1)

    def forward(self, x, mask, gate):
        bw, n, c = x.shape
        qkv = self.qkv(x).reshape(bw, n, 3, self.heads, c // self.heads).permute(2, 0, 3, 1, 4)
        q, k, v = qkv[0], qkv[1], qkv[2]
        attn = (q * self.scale) @ k.transpose(-2, -1)
        idx = self.relative_position_index[:n, :n].reshape(-1)
        bias = self._bias(self.relative_position_bias_table, idx, n)[None]
        if hasattr(self, "fragment_position_bias_table"):
            g = gate.to(bias.dtype)[:, None]
            frag = self._bias(self.fragment_position_bias_table, idx, n)
            bias = bias * g + frag * (1 - g)
        nw = gate.shape[0]
        attn = attn.view(bw // nw, nw, self.heads, n, n) + bias[None]
        if mask is not None:
            attn = attn + mask.to(attn.dtype)[None, :, None]
        attn = attn.view(-1, self.heads, n, n).softmax(dim=-1)
        return self.proj((attn @ v).transpose(1, 2).reshape(bw, n, c))


class SwinBlock3D(nn.Module):
    def __init__(self, dim, heads, window, shift, mlp_ratio, fragment_bias):
        super().__init__()
        self.window, self.shift = tuple(window), tuple(shift)
        self.norm1 = nn.LayerNorm(dim)
        self.attn = WindowAttention3D(dim, self.window, heads, fragment_bias)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))

    def forward(self, x, mask):
        b, d, h, w, c = x.shape
        win, shift = fit_window((d, h, w), self.window, self.shift)
        y = self.norm1(x)
        pad = [(k - n % k) % k for n, k in zip((d, h, w), win, strict=True)]
        y = F.pad(y, (0, 0, 0, pad[2], 0, pad[1], 0, pad[0]))
        size = tuple(y.shape[1:4])
        shifted = any(s > 0 for s in shift)
        if shifted:
            y = torch.roll(y, shifts=tuple(-s for s in shift), dims=(1, 2, 3))
        gate = fragment_gate(size, win, shift, str(x.device))
        y = self.attn(to_windows(y, win), mask if shifted else None, gate)
        y = from_windows(y, win, b, *size)
        if shifted:
            y = torch.roll(y, shifts=shift, dims=(1, 2, 3))
        x = x + y[:, :d, :h, :w].contiguous()
        return x + self.mlp(self.norm2(x))


class PatchMerging(nn.Module):
    """2x2 spatial neighbours concatenated, normalised and projected to twice the channels."""

    def __init__(self, dim: int):
        super().__init__()
        self.reduction = nn.Linear(4 * dim, 2 * dim, bias=False)
        self.norm = nn.LayerNorm(4 * dim)

    def forward(self, x):  # (B, D, H, W, C)
        h, w = x.shape[2:4]
        if h % 2 or w % 2:
            x = F.pad(x, (0, 0, 0, w % 2, 0, h % 2))
        parts = [x[:, :, i::2, j::2] for j, i in ((0, 0), (0, 1), (1, 0), (1, 1))]
        return self.reduction(self.norm(torch.cat(parts, -1)))


class SwinStage(nn.Module):
    def __init__(self, dim, depth, heads, window, mlp_ratio, fragment_bias, downsample):
        super().__init__()
        self.window = tuple(window)
        self.shift = tuple(k // 2 for k in window)
        self.blocks = nn.ModuleList(
            SwinBlock3D(
                dim, heads, window, (0, 0, 0) if j % 2 == 0 else self.shift, mlp_ratio,
                fragment_bias,
            )
            for j in range(depth)
        )  # fmt: skip
        self.downsample = PatchMerging(dim) if downsample else None

    def forward(self, x):  # (B, C, D, H, W)
        win, shift = fit_window(x.shape[2:], self.window, self.shift)
        padded = tuple(-(-n // k) * k for n, k in zip(x.shape[2:], win, strict=True))
        mask = shift_mask(padded, win, shift, str(x.device)) if any(shift) else None
        x = x.permute(0, 2, 3, 4, 1)
        for block in self.blocks:
            x = block(x, mask)
        if self.downsample is not None:
            x = self.downsample(x)
        return x.permute(0, 4, 1, 2, 3)


class PatchEmbed3D(nn.Module):
    def __init__(self, patch, dim: int):
        super().__init__()
        self.patch = tuple(patch)
        self.proj = nn.Conv3d(3, dim, kernel_size=self.patch, stride=self.patch)
        self.norm = nn.LayerNorm(dim)

    def forward(self, x):
        pad = [(-n) % p for n, p in zip(x.shape[2:], self.patch, strict=True)]
        if any(pad):
            x = F.pad(x, (0, pad[2], 0, pad[1], 0, pad[0]))
        x = self.proj(x)
        b, c, d, h, w = x.shape
        x = self.norm(x.flatten(2).transpose(1, 2))
        return x.transpose(1, 2).reshape(b, c, d, h, w)


class SwinTransformer3D(nn.Module):
    def __init__(self, dim, depths, heads, window, patch, mlp_ratio, fragment_bias):
        super().__init__()
        self.patch_embed = PatchEmbed3D(patch, dim)
        last = len(depths) - 1
        self.layers = nn.ModuleList(
            SwinStage(
                dim * 2**i, depths[i], heads[i], window, mlp_ratio, fragment_bias[i], i < last
            )
            for i in range(len(depths))
        )
        self.norm = nn.LayerNorm(dim * 2**last)

    def forward(self, x):
        x = self.patch_embed(x)
        for layer in self.layers:
            x = layer(x.contiguous())
        return self.norm(x.permute(0, 2, 3, 4, 1)).permute(0, 4, 1, 2, 3)


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
