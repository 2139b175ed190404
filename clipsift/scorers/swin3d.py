"""The technical backbone of DOVER (:mod:`clipsift.scorers.dover_net`): a video Swin Transformer
(Swin-T: patches 2x4x4, dims 96-768, depths 2-2-6-2, windows 8x7x7) with FAST-VQA's gated
relative position biases. In the first three stages a second bias table
(``fragment_position_bias_table``) is used for token pairs that lie in different fragments of
the 7x7 fragment grid, the first one for pairs inside one fragment; as published, the gate is the
L1 distance between the two fragment indices (not a 0/1 flag), and it is applied the same way
here. Parameter names are the checkpoint's."""

from __future__ import annotations

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
