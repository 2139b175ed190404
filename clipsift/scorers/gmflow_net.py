"""GMFlow as UniMatch builds its 1/8-resolution ("scale1") optical-flow model, for inference.

GMFlow (Xu et al., CVPR 2022; UniMatch, TPAMI 2023, github.com/autonomousvision/unimatch, MIT)
casts flow as global matching: a CNN gives 1/8-resolution features of both frames, a Transformer
(shifted-window self- and cross-attention, 2x2 windows) makes each frame's features aware of the
other, the flow of a pixel is the softmax-weighted mean position of its matches over the whole
second frame minus its own position, a global self-attention over the first frame's features
spreads that flow into pixels without a good match, and a RAFT-style convex combination of 3x3
neighbours upsamples it 8x. The scale1 checkpoints (``gmflow-scale1-*.pth``) have no refinement
head and no second scale; they are run with ``attn_splits_list=[2]``, ``corr_radius_list=[-1]``
and ``prop_radius_list=[-1]`` (the defaults of UniMatch's ``main_flow.py``).

The module tree reproduces the published state dict (``UniMatch(num_scales=1,
feature_channels=128, upsample_factor=8, num_head=1, ffn_dim_expansion=4,
num_transformer_layers=6, reg_refine=False, task="flow")``) key for key, so the authors'
``checkpoint["model"]`` loads with ``strict=True``; its sizes are read from the state dict, so a
tiny instance (tests) loads through the same code. The authors' instance norms have no weights
(``affine=False``), so they are plain functions here. One quirk is kept because the weights were
trained with it: the propagation's key is ``k_proj(q_proj(x))``, not ``k_proj(x)``.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
ATTN_SPLITS = 2  # 2x2 attention windows at 1/8 resolution: inputs must be multiples of 16
STRIDE = 8


def _inorm(x):
    return F.instance_norm(x, eps=1e-5)


class ResidualBlock(nn.Module):
    """Two 3x3 convolutions with instance norms; a 1x1 projection where the shape changes."""

    def __init__(self, cin: int, cout: int, stride: int):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False)
        self.conv2 = nn.Conv2d(cout, cout, 3, padding=1, bias=False)
        reshape = stride != 1 or cin != cout
        self.downsample = nn.Sequential(nn.Conv2d(cin, cout, 1, stride=stride)) if reshape else None

    def forward(self, x):
        y = F.relu(_inorm(self.conv1(x)))
        y = F.relu(_inorm(self.conv2(y)))
        skip = x if self.downsample is None else _inorm(self.downsample(x))
        return F.relu(skip + y)


class Encoder(nn.Module):
    """7x7 stem (stride 2), three stages of two residual blocks (strides 1, 2, 2), 1x1 head."""

    def __init__(self, out_dim: int, dims: tuple[int, int, int] = (64, 96, 128)):
        super().__init__()
        self.conv1 = nn.Conv2d(3, dims[0], 7, stride=2, padding=3, bias=False)
        stages, cin = [], dims[0]
        for d, s in zip(dims, (1, 2, 2), strict=True):
            stages.append(nn.Sequential(ResidualBlock(cin, d, s), ResidualBlock(d, d, 1)))
            cin = d
        self.layer1, self.layer2, self.layer3 = stages
        self.conv2 = nn.Conv2d(dims[2], out_dim, 1)

    def forward(self, x):
        x = F.relu(_inorm(self.conv1(x)))
        return self.conv2(self.layer3(self.layer2(self.layer1(x))))


def window_position(c: int, h: int, w: int, device) -> torch.Tensor:
    """DETR's normalised sine embedding of one (h, w) window, ``c`` channels: [c, h, w]."""
    half = c // 2
    ys = torch.arange(1, h + 1, dtype=torch.float32, device=device) / (h + 1e-6) * (2 * math.pi)
    xs = torch.arange(1, w + 1, dtype=torch.float32, device=device) / (w + 1e-6) * (2 * math.pi)
    freq = 10000 ** (2 * (torch.arange(half, device=device) // 2) / half)

    def enc(v):  # [n] -> [n, half]: sin on even channels, cos on odd ones
        a = v[:, None] / freq
        return torch.stack((a[:, 0::2].sin(), a[:, 1::2].cos()), dim=2).flatten(1)

    ey = enc(ys)[:, None, :].expand(h, w, half)
    ex = enc(xs)[None, :, :].expand(h, w, half)
    return torch.cat((ey, ex), dim=2).permute(2, 0, 1)


def shift_mask(h: int, w: int, splits: int, device) -> torch.Tensor:
    """Additive mask [splits^2, n, n] of the shifted windows: -100 between pixels that came from
    different regions of the frame before the cyclic shift, 0 elsewhere."""
    wh, ww = h // splits, w // splits
    rows = torch.bucketize(
        torch.arange(h, device=device),
        torch.tensor([h - wh, h - wh // 2], device=device),
        right=True,
    )
    cols = torch.bucketize(
        torch.arange(w, device=device),
        torch.tensor([w - ww, w - ww // 2], device=device),
        right=True,
    )
    label = (rows[:, None] * 3 + cols[None, :]).float()[None, :, :, None]
    lab = to_windows(label, splits).squeeze(-1)  # [splits^2, wh*ww]
    return (lab[:, None, :] != lab[:, :, None]).float() * -100.0


def to_windows(x, s: int):
    """[B, H, W, C] -> [B*s*s, H/s*W/s, C], windows in row-major order."""
    b, h, w, c = x.shape
    x = x.view(b, s, h // s, s, w // s, c).permute(0, 1, 3, 2, 4, 5)
    return x.reshape(b * s * s, (h // s) * (w // s), c)


def from_windows(x, s: int, h: int, w: int):
    b = x.shape[0] // (s * s)
    x = x.view(b, s, s, h // s, w // s, -1).permute(0, 1, 3, 2, 4, 5)
    return x.reshape(b, h, w, -1)


class AttentionLayer(nn.Module):
    """Single-head window attention; with ``ffn`` an MLP over [input, message] follows."""

    def __init__(self, dim: int, ffn: int | None):
        super().__init__()
        self.q_proj = nn.Linear(dim, dim, bias=False)
        self.k_proj = nn.Linear(dim, dim, bias=False)
        self.v_proj = nn.Linear(dim, dim, bias=False)
        self.merge = nn.Linear(dim, dim, bias=False)
        self.norm1 = nn.LayerNorm(dim)
        if ffn:
            self.mlp = nn.Sequential(
                nn.Linear(2 * dim, 2 * dim * ffn, bias=False),
                nn.GELU(),
                nn.Linear(2 * dim * ffn, dim, bias=False),
            )
            self.norm2 = nn.LayerNorm(dim)
        else:
            self.mlp = None

    def forward(self, x, ctx, hw: tuple[int, int], mask):
        """``x``, ``ctx``: [B, H*W, C]; ``mask``: the shifted-window mask or None (no shift)."""
        h, w = hw
        b, _, c = x.shape
        s = ATTN_SPLITS
        q, k, v = (
            p(t).view(b, h, w, c)
            for p, t in ((self.q_proj, x), (self.k_proj, ctx), (self.v_proj, ctx))
        )
        if mask is not None:
            q, k, v = (t.roll((-(h // s // 2), -(w // s // 2)), dims=(1, 2)) for t in (q, k, v))
        q, k, v = (to_windows(t, s) for t in (q, k, v))
        scores = q @ k.transpose(1, 2) / math.sqrt(c)
        if mask is not None:
            scores = scores + mask.repeat(b, 1, 1)
        out = from_windows(scores.softmax(-1) @ v, s, h, w)
        if mask is not None:
            out = out.roll((h // s // 2, w // s // 2), dims=(1, 2))
        msg = self.norm1(self.merge(out.reshape(b, h * w, c)))
        if self.mlp is not None:
            msg = self.norm2(self.mlp(torch.cat((x, msg), dim=-1)))
        return x + msg


class TransformerBlock(nn.Module):
    def __init__(self, dim: int, ffn: int):
        super().__init__()
        self.self_attn = AttentionLayer(dim, None)
        self.cross_attn_ffn = AttentionLayer(dim, ffn)

    def forward(self, x, ctx, hw, mask):
        x = self.self_attn(x, x, hw, mask)
        return self.cross_attn_ffn(x, ctx, hw, mask)


class FeatureTransformer(nn.Module):
    """Both frames go through the blocks together; odd blocks use shifted windows."""

    def __init__(self, dim: int, layers: int, ffn: int):
        super().__init__()
        self.layers = nn.ModuleList(TransformerBlock(dim, ffn) for _ in range(layers))

    def forward(self, f0, f1):
        b, c, h, w = f0.shape
        mask = shift_mask(h, w, ATTN_SPLITS, f0.device).to(f0.dtype)
        x = torch.cat((f0, f1)).flatten(2).transpose(1, 2)  # [2B, HW, C]: frame 0, then frame 1
        for i, block in enumerate(self.layers):
            ctx = torch.cat(x.chunk(2)[::-1])  # each frame attends to the other
            x = block(x, ctx, (h, w), mask if i % 2 else None)
        x = x.transpose(1, 2).reshape(2 * b, c, h, w)
        return x.chunk(2)


class FlowPropagation(nn.Module):
    """Global self-attention over frame 0's features whose values are the flow."""

    def __init__(self, dim: int):
        super().__init__()
        self.q_proj = nn.Linear(dim, dim)
        self.k_proj = nn.Linear(dim, dim)

    def forward(self, feat, flow):
        b, c, h, w = feat.shape
        q = self.q_proj(feat.flatten(2).transpose(1, 2))
        k = self.k_proj(q)  # as trained (see the module docstring)
        prob = (q @ k.transpose(1, 2) / math.sqrt(c)).softmax(-1)
        out = prob @ flow.flatten(2).transpose(1, 2)
        return out.transpose(1, 2).reshape(b, 2, h, w)


def global_match(f0, f1):
    """Flow [B, 2, H, W] (x, y) at feature resolution from the softmax over all matches."""
    b, c, h, w = f0.shape
    corr = f0.flatten(2).transpose(1, 2) @ f1.flatten(2) / math.sqrt(c)  # [B, HW, HW]
    ys, xs = torch.meshgrid(
        torch.arange(h, device=f0.device), torch.arange(w, device=f0.device), indexing="ij"
    )
    grid = torch.stack((xs, ys)).float().view(2, -1)  # [2, HW]
    target = corr.softmax(-1) @ grid.t()  # [B, HW, 2]
    return (target.transpose(1, 2) - grid).view(b, 2, h, w)


def convex_upsample(flow, weights, factor: int):
    """Each output pixel: a softmax-weighted mix of the 3x3 low-resolution flows around it."""
    b, _, h, w = flow.shape
    weights = weights.view(b, 1, 9, factor, factor, h, w).softmax(2)
    nb = F.unfold(flow * factor, 3, padding=1).view(b, 2, 9, 1, 1, h, w)
    up = (weights * nb).sum(2)  # [B, 2, f, f, H, W]
    return up.permute(0, 1, 4, 2, 5, 3).reshape(b, 2, h * factor, w * factor)


class GMFlow(nn.Module):
    """The scale1 flow model; ``forward(img0, img1)`` takes RGB in [0, 255], [B, 3, H, W] with H
    and W multiples of 16, and returns the flow from img0 to img1 in input pixels, [B, 2, H, W]."""

    def __init__(
        self,
        feature_channels: int = 128,
        num_transformer_layers: int = 6,
        ffn_dim_expansion: int = 4,
        upsample_factor: int = 8,
        encoder_dims: tuple[int, int, int] = (64, 96, 128),
    ):
        super().__init__()
        c = feature_channels
        self.upsample_factor = upsample_factor
        self.backbone = Encoder(c, tuple(encoder_dims))
        self.transformer = FeatureTransformer(c, num_transformer_layers, ffn_dim_expansion)
        self.feature_flow_attn = FlowPropagation(c)
        self.upsampler = nn.Sequential(
            nn.Conv2d(2 + c, 256, 3, padding=1),
            nn.ReLU(inplace=True),
            nn.Conv2d(256, upsample_factor**2 * 9, 1),
        )

    @classmethod
    def from_state_dict(cls, sd: dict) -> GMFlow:
        """The instance whose sizes the state dict has, loaded strictly."""
        try:
            sizes = sizes_of(sd)
        except (KeyError, IndexError, AttributeError) as exc:
            raise RuntimeError(f"not a GMFlow scale1 state dict (missing {exc})") from None
        model = cls(**sizes)
        model.load_state_dict(sd, strict=True)
        return model.eval()

    def features(self, img0, img1):
        mean = img0.new_tensor(IMAGENET_MEAN).view(1, 3, 1, 1)
        std = img0.new_tensor(IMAGENET_STD).view(1, 3, 1, 1)
        f = self.backbone((torch.cat((img0, img1)) / 255.0 - mean) / std)
        f0, f1 = f.chunk(2)
        c, h, w = f0.shape[1:]
        s = ATTN_SPLITS
        pos = window_position(c, h // s, w // s, f.device).repeat(1, s, s).to(f.dtype)
        return self.transformer(f0 + pos, f1 + pos)

    def forward(self, img0, img1, *, feature_dtype=None):
        h, w = img0.shape[-2:]
        if h % (STRIDE * ATTN_SPLITS) or w % (STRIDE * ATTN_SPLITS):
            raise ValueError(f"GMFlow input {h}x{w}: both sides must be multiples of 16")
        if feature_dtype is not None and feature_dtype != torch.float32:
            dev = img0.device.type
            with torch.autocast(dev, dtype=feature_dtype):
                f0, f1 = self.features(img0, img1)
            f0, f1 = f0.float(), f1.float()
        else:
            f0, f1 = self.features(img0, img1)
        flow = self.feature_flow_attn(f0, global_match(f0, f1))
        weights = self.upsampler(torch.cat((flow, f0), dim=1))
        return convex_upsample(flow, weights, self.upsample_factor)


def sizes_of(sd: dict) -> dict:
    """GMFlow's constructor arguments from a state dict's shapes."""
    c = int(sd["backbone.conv2.weight"].shape[0])
    dims = tuple(int(sd[f"backbone.layer{i}.0.conv1.weight"].shape[0]) for i in (1, 2, 3))
    layers = 1 + max(int(k.split(".")[2]) for k in sd if k.startswith("transformer.layers."))
    ffn = int(sd["transformer.layers.0.cross_attn_ffn.mlp.0.weight"].shape[0]) // (2 * c)
    factor = math.isqrt(int(sd["upsampler.2.weight"].shape[0]) // 9)
    return {
        "feature_channels": c,
        "num_transformer_layers": layers,
        "ffn_dim_expansion": ffn,
        "upsample_factor": factor,
        "encoder_dims": dims,
    }
