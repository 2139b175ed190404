"""DOVER (Wu et al., ICCV 2023): learned video quality from a technical and an aesthetic view.

The released ``DOVER.pth`` (github.com/VQAssessment/DOVER, release v0.1.0; S-Lab License 1.0,
non-commercial) is loaded into a plain-torch copy of its network (:mod:`.dover_net`, same
parameter names, strict loading). Per clip, as the authors' ``evaluate_one_video.py`` with
``dover.yml`` (``val-l1080p``) does it:

- technical view: the clip's frames cut into ``num_clips`` (3) equal parts; in each, ``clip_len``
  (32) frames ``frame_interval`` (2) apart from a random start. Each frame becomes a 7x7 grid of
  32x32 "fragments" (one per grid cell, at a random place inside the cell, the same place for a
  part's 32 frames) at the source resolution: 224x224. Frames smaller than 224 are first upscaled
  (bilinear); as in the authors' code the grid is laid over the size before the upscale.
- aesthetic view: ``clip_len`` (32) frames, one at a random place in each of 32 equal parts,
  resized to 224x224 (bilinear without antialiasing, aspect not kept: torchvision's tensor
  ``Resize`` as the authors' pinned torch 1.13 / torchvision 0.14 does it).
- frame indices wrap around the clip (the authors' modulo), so a clip shorter than the sampling
  loops its frames (under 32 frames, the aesthetic view repeats the first frame); RGB normalised
  with ImageNet's mean and std in 0-255 units.
- ``technical`` / ``aesthetic``: the mean of each head's score map (raw; the authors' fusion
  constants centre them near 0.11 and -0.08).
  ``technical_norm`` = sigmoid((technical - 0.1107) / 0.07355), ``aesthetic_norm`` =
  sigmoid((aesthetic + 0.08285) / 0.03774), ``score`` = sigmoid(0.6104 t + 0.3896 a) of the same
  standardised t and a: ``fuse_results`` of ``evaluate_a_set_of_videos.py`` (and the fused score
  of ``evaluate_one_video.py -f``), 0-1. The HF video filter seed keeps ``score >= 0.57``;
  Open-Sora-Plan drops clips by the technical score. (The peer-pipeline notes quote this formula
  with the two branches' constants swapped and the aesthetic offset's sign flipped; this follows
  the code.)

What differs: the authors draw the random starts and fragment places from unseeded global
generators (two runs differ slightly); here they come from a generator seeded with ``seed`` and
the clip id, so a clip's score is reproducible and independent of the shard it is in. Frames are
decoded with PyAV (the authors use decord), one clip at a time in order, keeping only the views.
The model runs in float32 by default, as the authors' does: the fusion divides the raw scores by
0.04-0.07, which magnifies bfloat16 rounding.
"""

from __future__ import annotations

import logging
import time
import zlib

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F

from ..config import with_defaults
from ..io.decode import VideoError, iter_frames, reason
from ..models.frames import prefetch
from . import dover_net

log = logging.getLogger(__name__)

MEAN = (123.675, 116.28, 103.53)
STD = (58.395, 57.12, 57.375)
# fuse_results (evaluate_a_set_of_videos.py): standardise each branch, weigh, sigmoid
TECH_SHIFT, TECH_SCALE, TECH_WEIGHT = 0.1107, 0.07355, 0.6104
AES_SHIFT, AES_SCALE, AES_WEIGHT = -0.08285, 0.03774, 0.3896


def fuse(technical: float, aesthetic: float) -> dict:
    """The authors' normalised branch scores and the fused overall score, all 0-1."""
    t = (technical - TECH_SHIFT) / TECH_SCALE
    a = (aesthetic - AES_SHIFT) / AES_SCALE
    return {
        "technical_norm": _sigmoid(t),
        "aesthetic_norm": _sigmoid(a),
        "score": _sigmoid(TECH_WEIGHT * t + AES_WEIGHT * a),
    }


def _sigmoid(x: float) -> float:
    return float(1.0 / (1.0 + np.exp(-x)))


# ----------------------------------------------------------------------------- sampling


def segment_indices(n: int, parts: int, length: int, interval: int, rng) -> np.ndarray:
    """The authors' frame sampler: ``parts`` equal parts of ``n`` frames, in each ``length``
    frames ``interval`` apart from a random start (the part's first frame when it is too short);
    indices wrap around ``n``. Returns ``parts * length`` indices, part by part."""
    part = n // parts
    starts = np.arange(parts) * part
    if part > length * interval:
        starts = starts + rng.integers(0, part - length * interval, size=parts)
    idx = starts[:, None] + np.arange(length)[None, :] * interval
    return np.mod(idx.reshape(-1), n)


def fragment_origins(h: int, w: int, grid: int, size: int, groups: int, rng):
    """Top-left corners ``(rows, cols)``, each ``(grid, grid, groups)``: one fragment per grid
    cell of an ``h`` x ``w`` frame at a random place inside the cell (its corner when the cell is
    no larger than a fragment), drawn anew for each group of frames."""
    ch, cw = h // grid, w // grid
    if ch < 1 or cw < 1 or min(h, w) < size:
        raise ValueError(f"frames of {w}x{h} are too small for {grid}x{grid} fragments of {size}")
    rows = np.minimum(np.arange(grid) * ch, h - size)[:, None, None]
    cols = np.minimum(np.arange(grid) * cw, w - size)[None, :, None]
    dh = rng.integers(0, ch - size, (grid, grid, groups)) if ch > size else 0
    dw = rng.integers(0, cw - size, (grid, grid, groups)) if cw > size else 0
    shape = (grid, grid, groups)
    return np.broadcast_to(rows + dh, shape), np.broadcast_to(cols + dw, shape)


def upscale_to(video: torch.Tensor, side: int) -> torch.Tensor:
    """(C, T, H, W) uint8 scaled up (bilinear) so that its shorter side is at least ``side``, as
    the authors do it: the whole view in one call (the result of a plane can differ by an ulp
    with the number of planes, and the truncation back to uint8 would show it), ``uint8 / 255.0``
    and the values truncated back to uint8. Unchanged when it is large enough."""
    ratio = min(video.shape[-2] / side, video.shape[-1] / side)
    if ratio >= 1:
        return video
    up = F.interpolate(video / 255.0, scale_factor=1 / ratio, mode="bilinear")
    return (up * 255.0).to(torch.uint8)


def fragments(frame: torch.Tensor, rows, cols, size: int) -> torch.Tensor:
    """The ``grid x grid`` fragments of ``size`` px at ``rows``/``cols`` (grid, grid) as one
    image, (C, grid * size, grid * size)."""
    g = rows.shape[0]
    out = frame.new_empty((frame.shape[0], g * size, g * size))
    for i in range(g):
        for j in range(g):
            r, c = int(rows[i, j]), int(cols[i, j])
            out[:, i * size : (i + 1) * size, j * size : (j + 1) * size] = frame[
                :, r : r + size, c : c + size
            ]
    return out


def resized(frame: torch.Tensor, size: int) -> torch.Tensor:
    """(C, H, W) uint8 -> (C, size, size): bilinear, no antialiasing, rounded back to uint8."""
    out = F.interpolate(frame[None].float(), size=(size, size), mode="bilinear", antialias=False)
    return out[0].round().clamp(0, 255).to(torch.uint8)


def normalise(view: torch.Tensor) -> torch.Tensor:
    """uint8 (..., C, T, H, W) -> float, ImageNet mean/std per channel (0-255 units)."""
    shape = (3, 1, 1, 1)
    mean = torch.tensor(MEAN).view(shape)
    std = torch.tensor(STD).view(shape)
    return (view.float() - mean) / std


# ----------------------------------------------------------------------------- views


class ClipViews:
    """Both views of one clip, filled frame by frame while the clip is decoded once.

    Fragments are cut as each frame arrives; only frames smaller than the fragment grid (which
    the authors upscale first) are kept until the end, then upscaled together."""

    def __init__(self, n: int, cfg: dict, rng_seed: list[int]):
        self.cfg, self.n = cfg, n
        self.rng = np.random.default_rng(rng_seed)
        t, a = cfg["technical"], cfg["aesthetic"]
        self.t_idx = segment_indices(
            n, t["num_clips"], t["clip_len"], t["frame_interval"], self.rng
        )
        self.a_idx = segment_indices(n, a["clip_len"], 1, a["frame_interval"], self.rng)
        self.side = t["fragments"] * t["fsize"]
        self.tech = torch.zeros(
            (t["num_clips"], 3, t["clip_len"], self.side, self.side), dtype=torch.uint8
        )
        self.aes = torch.zeros((1, 3, a["clip_len"], a["size"], a["size"]), dtype=torch.uint8)
        self.size = self.origins = self.raw = None
        self.needed = set(self.t_idx.tolist()) | set(self.a_idx.tolist())
        self.seen: set[int] = set()

    def _first(self, h: int, w: int) -> None:
        t = self.cfg["technical"]
        self.size = (h, w)
        self.origins = fragment_origins(h, w, t["fragments"], t["fsize"], t["num_clips"], self.rng)
        if min(h, w) < self.side:  # upscaled at the end, all frames in one call
            self.raw = torch.zeros((3, len(self.t_idx), h, w), dtype=torch.uint8)

    def _cut(self, frame: torch.Tensor, p: int) -> None:
        t = self.cfg["technical"]
        g, f = divmod(p, t["clip_len"])
        rows, cols = self.origins[0][..., g], self.origins[1][..., g]
        self.tech[g, :, f] = fragments(frame, rows, cols, t["fsize"])

    def add(self, k: int, rgb: np.ndarray) -> None:
        """Frame ``k`` of the clip (H, W, 3 RGB uint8) into every place the sampling put it."""
        frame = torch.from_numpy(np.ascontiguousarray(rgb)).permute(2, 0, 1)
        if self.size is None:  # the fragment places are drawn once the frame size is known
            self._first(*frame.shape[1:])
        elif tuple(frame.shape[1:]) != self.size:
            raise ValueError(
                f"the frame size changes inside the clip: {self.size} to {frame.shape[1:]}"
            )
        for p in np.flatnonzero(self.t_idx == k).tolist():
            if self.raw is not None:
                self.raw[:, p] = frame
            else:
                self._cut(frame, p)
        pos = np.flatnonzero(self.a_idx == k).tolist()
        if pos:
            small = resized(frame, self.cfg["aesthetic"]["size"])
            for p in pos:
                self.aes[0, :, p] = small
        self.seen.add(k)

    @property
    def complete(self) -> bool:
        return self.needed <= self.seen

    def technical(self) -> torch.Tensor:
        """The technical view, uint8 ``(num_clips, 3, clip_len, S, S)``."""
        if self.raw is not None:
            big = upscale_to(self.raw, self.side)
            for p in range(big.shape[1]):
                self._cut(big[:, p], p)
            self.raw = None
        return self.tech


def clip_seed(seed: int, clip_id: str) -> list[int]:
    return [int(seed), zlib.crc32(str(clip_id).encode())]


def expected_frames(clip) -> int:
    n = getattr(clip, "n_frames", None)
    if n is not None and not pd.isna(n) and int(n) > 0:
        return int(n)
    fps = float(clip.fps) if clip.fps and clip.fps > 0 else 30.0
    return max(1, round((float(clip.end_time) - float(clip.start_time)) * fps))


def _decode_views(clip, cfg: dict, n: int) -> tuple[ClipViews, int]:
    """One pass over the clip's frames; returns the views and how many frames it has."""
    views = ClipViews(n, cfg, clip_seed(cfg["seed"], clip.clip_id))
    count = 0
    for k, frame in enumerate(
        iter_frames(
            clip.source_path, start=float(clip.start_time), end=float(clip.end_time), errors=[]
        )
    ):
        count = k + 1
        if k in views.needed:
            views.add(k, frame.rgb())
    return views, count


def clip_views(clip, cfg: dict) -> tuple[torch.Tensor, torch.Tensor, int]:
    """Normalised technical ``(num_clips, 3, clip_len, S, S)`` and aesthetic ``(1, 3, clip_len,
    size, size)`` views of a clip (rows of a clips table), and its frame count. A clip whose
    frame count differs from its table's is sampled again over the frames it really has."""
    n = expected_frames(clip)
    views, count = _decode_views(clip, cfg, n)
    if count == 0:
        raise VideoError("no frames in the clip's time range")
    if count != n:
        log.debug("%s: %d frames decoded, %d expected; sampling again", clip.clip_id, count, n)
        views, count = _decode_views(clip, cfg, count)
    if not views.complete:
        raise VideoError(f"frames {sorted(views.needed - views.seen)[:5]} could not be decoded")
    return normalise(views.technical()), normalise(views.aes), count


# ----------------------------------------------------------------------------- model


class DoverModel:
    """The network on a device, with what was loaded (weights file and its sha256)."""

    def __init__(self, net, *, device="cpu", dtype=None, record=None):
        self.device = device
        self.dtype = dtype or torch.float32
        self.net = net.to(device=device, dtype=self.dtype).eval()
        self.record = record or {}

    @property
    def label(self) -> str:
        return f"DOVER@sha256:{self.record.get('sha256', '')[:16]}"

    def forward(self, technical: torch.Tensor, aesthetic: torch.Tensor) -> tuple[float, float]:
        """The two raw scores: the means of the heads' score maps."""
        with torch.inference_mode():
            t, a = self.net(
                technical.to(self.device, self.dtype), aesthetic.to(self.device, self.dtype)
            )
            return float(t.float().mean()), float(a.float().mean())


def load_model(cfg: dict, device: str = "cpu") -> DoverModel:
    """The weights named by ``weights_path`` (a local file) or ``weights`` (URL + sha256, or a
    Hub file), loaded strictly into :class:`~.dover_net.DoverNet`."""
    from ..models import hub
    from ..models.device import pick_dtype

    cfg = with_defaults("scorers.dover", cfg)
    path, record = hub.fetch_file(cfg.get("weights_path") or cfg["weights"])
    net = dover_net.build(hub.load_state_dict(path))
    dtype = pick_dtype(device, cfg["dtype"])
    model = DoverModel(net, device=device, dtype=dtype, record=record)
    log.info("dover: %s on %s (%s), %s", model.label, device, dtype, net.arch)
    return model


def score_clips(clips: pd.DataFrame, model: DoverModel, cfg: dict) -> pd.DataFrame:
    """One row per clip: ``technical``, ``aesthetic`` (raw), ``technical_norm``,
    ``aesthetic_norm``, ``score`` (0-1), ``n_frames``, ``model``; ``error`` where the clip's
    frames could not be read."""
    cfg = with_defaults("scorers.dover", cfg)
    t0, rows, n_err = time.monotonic(), [], 0
    items = list(clips.itertuples(index=False))
    for clip, result in prefetch(
        lambda c: clip_views(c, cfg), items, workers=int(cfg["workers"]), ahead=4
    ):
        if isinstance(result, Exception):
            rows.append({"clip_id": clip.clip_id, "error": f"frames: {reason(result)}"})
            n_err += 1
            continue
        tech_view, aes_view, count = result
        technical, aesthetic = model.forward(tech_view, aes_view)
        rows.append(
            {
                "clip_id": clip.clip_id,
                "technical": technical,
                "aesthetic": aesthetic,
                **fuse(technical, aesthetic),
                "n_frames": int(count),
                "model": model.label,
                "error": None,
            }
        )
    seconds = time.monotonic() - t0
    log.info("dover: %d clips, %d errors, %.1f s", len(items), n_err, seconds)
    return pd.DataFrame(rows)


def score_dover(clips, inputs, cfg):
    """DOVER: technical and aesthetic video quality, fused to 0-1."""
    from ..models.device import resolve_device

    cfg = with_defaults("scorers.dover", cfg)
    device = resolve_device(cfg["device"], lock_dir=inputs.lock_dir)
    return score_clips(clips, load_model(cfg, device), cfg)
