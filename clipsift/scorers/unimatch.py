"""UniMatch/GMFlow motion score, as the HF video filter seed computes it (GPU scorer).

The seed (github.com/LyrineYang/world_model, ``pipeline/models.py`` ``UnimatchFlowScorer``, with
``config.yaml`` at commit 258a94a, the one that set its thresholds) scores a clip with UniMatch's
GMFlow-scale1-mixdata checkpoint (``gmflow-scale1-mixdata-train320x576-4c3a6e9a.pth``, MIT):

- ``num_pairs: 3`` pairs of ADJACENT frames of the clip, at frame indices ``k * s`` and
  ``k * s + 1`` for k = 0, 1, 2, with ``s = max(n // (num_pairs + 1), 1)`` (n frames; a pair
  whose second frame would lie past the end is dropped);
- each RGB frame as floats 0-255, resized to ``resize: [320, 576]`` with bilinear interpolation
  (``align_corners=True``, the aspect ratio is not kept and portrait frames are not turned),
  padded to a multiple of 16 (a no-op at 320x576), UniMatch's own ImageNet normalisation inside;
- the model run with ``attn_splits_list=[2]``, ``corr_radius_list=[-1]``,
  ``prop_radius_list=[-1]`` (scale1, :mod:`clipsift.scorers.gmflow_net`);
- per pair the mean over pixels of the flow's length, and the clip's score is the mean over
  the pairs: pixels per frame at 320x576. It kept clips with ``score >= 87.0``.

That is ``unimatch.score`` here, with the real weights loaded strictly. The seed itself never
ran them: it loads the file with ``model.load_state_dict(torch.load(path), strict=False)``,
but the file holds ``{"model": state_dict}``, so no key matches, nothing is loaded and its
network keeps PyTorch's random initialisation (different in every process). Its 87 was measured
with such an untrained network and does not carry over: with the seed's code path (three random
initialisations) a still textured 640x360 clip read 41-51, pans of 2 and 8 px per frame read
135-223 and 79-201, the slower pan higher every time. With the real weights, 87 px per frame at
576 px width is a cut-like displacement.

Open-Sora (``tools/scoring/optical_flow/inference.py``) differs: the scale2-regrefine6
checkpoint, frames 0, 10, 20, 30 (v1.1-1.2; v1.3: 0, 15, ..., 135), portrait frames transposed
before the 320x576 resize, and the mean of ``|u|`` and ``|v|`` (v1.2) or of the length (v1.3).

Units. ``score`` is px per frame at the inference size. ``px_per_s`` converts each flow vector
back to source pixels (x by W/576, y by H/320) and divides each pair's mean length by the time
between its two frames (adjacent frames, counted from the clip's first one: on variable frame
rate too), averaged over the pairs; ``rel_per_s`` divides that by the source diagonal: frame
diagonals per second, the unit of ``motion.rel_per_s`` (DIS, textured pixels only; GMFlow fills
flat areas from their surroundings). For a source of aspect 1.8
``rel_per_s = score * fps / 659`` (659 = the 320x576 diagonal); for 16:9 within 1 % (horizontal
motion 0.3 %, vertical 0.9 %).
"""

from __future__ import annotations

import logging
import time

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F

from ..config import with_defaults
from ..io.decode import VideoError, frames_by_index, reason
from ..models.batching import Batcher
from ..models.frames import prefetch
from .gmflow_net import ATTN_SPLITS, STRIDE, GMFlow

log = logging.getLogger(__name__)

MULTIPLE = STRIDE * ATTN_SPLITS  # 16


def checkpoint_state_dict(obj) -> dict:
    """The model's state dict from a checkpoint: UniMatch's files hold ``{"model": ...}``."""
    if isinstance(obj, dict) and isinstance(obj.get("model"), dict):
        obj = obj["model"]
    if not isinstance(obj, dict) or "backbone.conv1.weight" not in obj:
        keys = sorted(obj)[:8] if isinstance(obj, dict) else type(obj).__name__
        raise RuntimeError(f"not a UniMatch flow checkpoint ({{'model': state_dict}}): {keys}")
    return obj


def load_model(cfg: dict, device: str = "cpu") -> tuple[GMFlow, dict]:
    """The network of the configured weights file, loaded strictly; and the file's record."""
    from ..models import hub

    cfg = with_defaults("scorers.unimatch", cfg)
    path, record = hub.fetch_file(cfg.get("weights_path") or cfg["weights"])
    model = GMFlow.from_state_dict(checkpoint_state_dict(hub.load_state_dict(path)))
    log.info("unimatch: GMFlow scale1 from %s on %s", record, device)
    return model.to(device), record


# ----------------------------------------------------------------------------- frames


def pair_starts(n_frames: int, pairs: int) -> list[int]:
    """First frames (clip-relative) of the seed's adjacent-frame pairs."""
    if n_frames < 2:
        return []
    stride = max(n_frames // (max(pairs, 1) + 1), 1)
    return [k * stride for k in range(max(pairs, 1)) if k * stride + 1 < n_frames]


def frame_count(clip) -> int:
    start, end = getattr(clip, "start_frame", None), getattr(clip, "end_frame", None)
    if start is not None and end is not None and not pd.isna(start) and not pd.isna(end):
        return int(end) - int(start)
    return int(round((float(clip.end_time) - float(clip.start_time)) * float(clip.fps)))


def pair_offsets(clip, pairs: int) -> list[int]:
    """Clip-relative numbers of both frames of every pair, in order."""
    return [i for s in pair_starts(frame_count(clip), pairs) for i in (s, s + 1)]


def pad_amounts(h: int, w: int) -> tuple[int, int, int, int]:
    """(left, right, top, bottom) to the next multiple of 16, split as UniMatch's InputPadder."""
    ph, pw = -h % MULTIPLE, -w % MULTIPLE
    return pw // 2, pw - pw // 2, ph // 2, ph - ph // 2


def prepare(frames: list[np.ndarray], size) -> torch.Tensor:
    """RGB uint8 frames (pairs in order) -> [n_pairs, 2, 3, H', W'] floats at ``size``, padded."""
    x = torch.from_numpy(np.stack(frames)).permute(0, 3, 1, 2).float()
    x = F.interpolate(x, size=tuple(size), mode="bilinear", align_corners=True)
    pad = pad_amounts(*size)
    if any(pad):
        x = F.pad(x, pad, mode="replicate")
    return x.view(-1, 2, *x.shape[1:])


def _decode(item, cfg) -> dict:
    """clip_id -> (pairs tensor, source (W, H), seconds between each pair's frames) or an error
    string, for one video's clips. Frames are counted from the clip's first one (its start
    time), so a pair is two adjacent frames on variable frame rate too, and its real time gap
    turns pixels per frame into pixels per second."""
    path, clips = item
    out = {}
    for clip in clips:
        offsets = pair_offsets(clip, int(cfg["pairs"]))
        if not offsets:
            out[clip.clip_id] = f"unimatch: {frame_count(clip)} frame(s), a pair needs 2"
            continue
        try:
            read = frames_by_index(
                path, offsets, (0, float(clip.start_time)), convert=lambda f: (f.rgb(), f.time)
            )
            frames, times = zip(*(value for _, value in read), strict=True)
            h, w = frames[0].shape[:2]
            gaps = np.diff(times)[::2]
            gaps[~(gaps > 0)] = 1.0 / float(clip.fps)  # timestamps that do not advance
            out[clip.clip_id] = (prepare(frames, cfg["size"]), (w, h), gaps)
        except (VideoError, OSError, ValueError) as exc:
            out[clip.clip_id] = f"frames: {reason(exc)}"
    return out


# ----------------------------------------------------------------------------- scores


def pair_lengths(flow: torch.Tensor, size, src_wh) -> tuple[np.ndarray, np.ndarray]:
    """Mean flow length per pair at the inference size, and in source pixels."""
    h, w = size
    left, _, top, _ = pad_amounts(h, w)
    flow = flow[:, :, top : top + h, left : left + w].float()
    inf = flow.norm(dim=1).mean(dim=(1, 2))
    sx, sy = src_wh[0] / w, src_wh[1] / h
    src = torch.hypot(flow[:, 0] * sx, flow[:, 1] * sy).mean(dim=(1, 2))
    return inf.cpu().numpy().astype(np.float64), src.cpu().numpy().astype(np.float64)


def clip_row(clip, inf: np.ndarray, src: np.ndarray, src_wh, gaps: np.ndarray, label: str) -> dict:
    px_per_s = float(np.mean(src / gaps))  # each pair's source pixels over its real time gap
    return {
        "clip_id": clip.clip_id,
        "score": float(inf.mean()),
        "px_per_s": px_per_s,
        "rel_per_s": px_per_s / float(np.hypot(*src_wh)),
        "n_pairs": int(len(inf)),
        "weights": label,
        "error": None,
    }


def flows(model: GMFlow, pairs: list, batcher: Batcher, device: str, dtype) -> list:
    """Model flow of each [2, 3, H, W] pair, batched (the batch halves after an OOM)."""

    def run(chunk):
        x = torch.stack(chunk).to(device)
        with torch.inference_mode():
            return list(model(x[:, 0], x[:, 1], feature_dtype=dtype).cpu())

    return batcher.map(run, pairs)


def score_clips(clips: pd.DataFrame, model: GMFlow, cfg: dict, record: dict | None = None):
    """One row per clip (see the module docstring); ``error`` where it could not be scored."""
    cfg = with_defaults("scorers.unimatch", cfg)
    device = str(next(model.parameters()).device)
    dtype = getattr(torch, cfg["dtype"]) if cfg["dtype"] != "float32" else None
    label = f"sha256:{(record or {}).get('sha256', '')[:16]}"
    by_id = {c.clip_id: c for c in clips.itertuples(index=False)}
    groups: dict[str, list] = {}
    for clip in by_id.values():
        groups.setdefault(clip.source_path, []).append(clip)
    batcher, rows, t0 = Batcher(int(cfg["batch_size"])), {}, time.monotonic()
    pending: list[tuple[str, torch.Tensor, tuple, float]] = []  # (clip_id, pair, size, gap)

    def flush(items):
        out = flows(model, [p for _, p, _, _ in items], batcher, device, dtype)
        per: dict[str, list] = {}
        for (cid, _, wh, gap), flow in zip(items, out, strict=True):
            per.setdefault(cid, []).append((*pair_lengths(flow[None], cfg["size"], wh), wh, gap))
        for cid, parts in per.items():
            inf = np.concatenate([p[0] for p in parts])
            src = np.concatenate([p[1] for p in parts])
            gaps = np.array([p[3] for p in parts])
            rows[cid] = clip_row(by_id[cid], inf, src, parts[0][2], gaps, label)

    items = list(groups.items())
    workers = cfg["workers"]
    for item, result in prefetch(lambda it: _decode(it, cfg), items, workers=workers, ahead=4):
        if isinstance(result, Exception):
            result = {c.clip_id: f"frames: {reason(result)}" for c in item[1]}
        for cid, value in result.items():
            if isinstance(value, str):
                rows[cid] = {"clip_id": cid, "error": value}
                continue
            pairs, wh, gaps = value
            pending.extend((cid, p, wh, g) for p, g in zip(pairs, gaps, strict=True))
        # flush whole clips only, so that a clip's pairs are reduced together
        if len(pending) >= batcher.batch_size:
            flush(pending)
            pending = []
    if pending:
        flush(pending)
    log.info(
        "unimatch: %d clips, %d errors, %.1f s, batch size %d, %d OOM",
        len(by_id),
        sum(1 for r in rows.values() if r.get("error")),
        time.monotonic() - t0,
        batcher.batch_size,
        batcher.n_oom,
    )
    return pd.DataFrame([rows[c] for c in clips["clip_id"]])


def score_unimatch(clips, inputs, cfg):
    """GMFlow-scale1 motion, the HF video filter seed's definition (``score``, px per frame at
    320x576) and per second of real time (``px_per_s``, ``rel_per_s``)."""
    from ..models.device import resolve_device

    cfg = with_defaults("scorers.unimatch", cfg)
    device = resolve_device(cfg["device"], lock_dir=inputs.lock_dir)
    model, record = load_model(cfg, device)
    return score_clips(clips, model, cfg, record)
