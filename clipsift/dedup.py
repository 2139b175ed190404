"""Near-duplicate clips across the whole dataset, from the image embeddings the scorers store.

Embeddings (``results/shards/{shard}/embeddings/{scorer}.npy``) are written by the model scorers
as they score: one row per clip, ``clip_id`` plus the clip's embedding (the mean of its frames'
L2-normalised embeddings, normalised again) in float16. A structured array, so that the ids
travel with the vectors and ``np.load`` needs no pickle; ``read_embeddings`` gives ``(ids,
matrix)``, and ``np.load(path, mmap_mode="r")["embedding"]`` works too.

The global pass (:func:`near_duplicates`) is exact and greedy, like non-maximum suppression:
clips are ranked by a score (best first, then by clip id), and a clip is a near-duplicate when
its cosine similarity to a better-ranked clip that is itself kept reaches ``threshold``; it
points to the most similar such clip. So every ``duplicate_of`` names a kept clip, and a chain
A ~ B ~ C where A and C are not similar keeps A and C.

It runs in blocks of rows: a block's similarities to every earlier clip come from matrix
products over column tiles (torch, on the GPU when there is one), reduced on the spot to the best
kept match per row, so memory is ``O(N d)`` for the embeddings plus ``O(block x tile)``;
within a block the few pairs above the threshold are resolved in order on the CPU. Work is
``N^2 d / 2`` multiply-adds (see docs/scores.md for the measured rate).
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass

import numpy as np
import pandas as pd

log = logging.getLogger(__name__)


# ----------------------------------------------------------------------------- embedding files


def embedding_dtype(dim: int, id_len: int) -> np.dtype:
    return np.dtype([("clip_id", f"<U{max(1, id_len)}"), ("embedding", "<f2", (dim,))])


def write_embeddings(dest: str | os.PathLike, clip_ids, embeddings) -> None:
    """One row per clip: ``clip_id`` and the L2-normalised embedding in float16 (atomic write).
    No clips (or a scorer without embeddings) writes an empty array."""
    from .io.atomic import atomic_path

    clip_ids = [str(c) for c in clip_ids]
    emb = np.asarray(embeddings, np.float32)
    if not clip_ids:
        emb = np.zeros((0, emb.shape[1] if emb.ndim == 2 else 0), np.float32)
    elif emb.ndim != 2 or len(emb) != len(clip_ids):
        raise ValueError(f"{len(clip_ids)} clip ids but embeddings of shape {emb.shape}")
    if len(emb):
        emb = emb / np.maximum(np.linalg.norm(emb, axis=1, keepdims=True), 1e-12)
    arr = np.zeros(
        len(clip_ids), embedding_dtype(emb.shape[1], max((len(c) for c in clip_ids), default=1))
    )
    arr["clip_id"] = clip_ids
    arr["embedding"] = emb.astype(np.float16)
    with atomic_path(dest) as tmp, open(tmp, "wb") as fh:
        np.save(fh, arr, allow_pickle=False)


def read_embeddings(path: str | os.PathLike) -> tuple[np.ndarray, np.ndarray]:
    """``(clip_ids, (n, d) float16)`` of one embeddings file."""
    arr = np.load(path, allow_pickle=False)
    if arr.dtype.names is None or "embedding" not in arr.dtype.names:
        raise ValueError(f"{path} is not an embeddings file (clip_id, embedding)")
    return arr["clip_id"].astype(str), np.ascontiguousarray(arr["embedding"])


# ----------------------------------------------------------------------------- the global pass


@dataclass
class DedupStats:
    n: int = 0
    dim: int = 0
    n_duplicates: int = 0
    seconds: float = 0.0
    device: str = "cpu"

    @property
    def pairs_per_second(self) -> float:
        """Similarities computed per second (N^2/2 of them)."""
        return self.n * self.n / 2 / self.seconds if self.seconds > 0 else float("nan")


def priority_order(clip_ids, scores, higher_is_better: bool = True) -> np.ndarray:
    """Indices best first: by score (missing scores last), ties by clip id (deterministic)."""
    ids = np.asarray(clip_ids).astype(str)
    s = pd.to_numeric(pd.Series(scores), errors="coerce").to_numpy(np.float64)
    key = -s if higher_is_better else s
    missing = np.isnan(key)
    key = np.where(missing, 0.0, key)
    return np.lexsort((ids, key, missing))  # last key sorts first


def near_duplicates(
    clip_ids,
    embeddings,
    scores=None,
    *,
    threshold: float = 0.95,
    higher_is_better: bool = True,
    block_size: int = 4096,
    tile_size: int = 16384,
    device: str = "cpu",
    stats: DedupStats | None = None,
) -> pd.DataFrame:
    """``clip_id, duplicate_of, similarity`` for every near-duplicate (see the module docstring).

    ``embeddings`` are L2-normalised rows (float16 or float32); ``scores`` rank the clips (best
    kept); without scores the clip id decides. On CUDA the products run in float16 (similarities
    good to about 1e-3), on the CPU in float32.
    """
    t0 = time.monotonic()
    ids, emb, thr = _checked_inputs(clip_ids, embeddings, threshold)
    n = len(ids)
    stats = stats if stats is not None else DedupStats()
    stats.n, stats.dim, stats.device = n, emb.shape[1], device
    if n < 2:
        stats.seconds = time.monotonic() - t0
        return _empty_duplicates()
    order = priority_order(ids, scores if scores is not None else [np.nan] * n, higher_is_better)
    dup_of, dup_sim = _greedy_pass(emb[order], thr, block_size, tile_size, device)
    out = _duplicates_frame(ids, order, dup_of, dup_sim)
    stats.n_duplicates = len(out)
    stats.seconds = time.monotonic() - t0
    return out if len(out) else _empty_duplicates()


def _checked_inputs(clip_ids, embeddings, threshold) -> tuple[np.ndarray, np.ndarray, float]:
    """``(ids, embeddings, threshold)`` as arrays and a float; raises on inconsistent input."""
    thr = float(threshold)
    if not 0 < thr <= 1:
        raise ValueError(f"threshold {threshold} is not a cosine similarity in (0, 1]")
    ids = np.asarray(clip_ids).astype(str)
    n = len(ids)
    emb = np.asarray(embeddings)
    if emb.ndim != 2 or emb.shape[0] != n:
        raise ValueError(f"embeddings of shape {emb.shape} for {n} clips")
    if len(set(ids.tolist())) != n:
        raise ValueError("clip ids are not unique")
    return ids, emb, thr


def _empty_duplicates() -> pd.DataFrame:
    """The result with no rows, typed like a full one."""
    return pd.DataFrame(
        {
            "clip_id": pd.Series([], dtype=object),
            "duplicate_of": pd.Series([], dtype=object),
            "similarity": pd.Series([], dtype=np.float32),
        }
    )


def _greedy_pass(
    ranked_emb: np.ndarray, thr: float, block_size: int, tile_size: int, device: str
) -> tuple[np.ndarray, np.ndarray]:
    """``(dup_of, dup_sim)`` per ranked position: the kept clip it duplicates (-1: kept itself)
    and the similarity; ``ranked_emb`` is best first."""
    import torch

    n = len(ranked_emb)
    dev = torch.device(device)
    work_dtype = torch.float16 if dev.type == "cuda" else torch.float32
    # stored in half precision on the device; CPU tiles are converted to float32 as they are used
    ranked = torch.from_numpy(np.ascontiguousarray(ranked_emb).astype(np.float16)).to(dev)
    kept = torch.zeros(n, dtype=torch.bool, device=dev)
    dup_of = np.full(n, -1, np.int64)  # in ranked positions
    dup_sim = np.zeros(n, np.float32)

    with torch.inference_mode():
        for a in range(0, n, block_size):
            b = min(a + block_size, n)
            q = ranked[a:b].to(work_dtype)
            best, arg = _best_kept_earlier(q, ranked, kept, a, tile_size)
            pairs, sims = _pairs_within_block(q, thr)
            best_np, arg_np = best.cpu().numpy(), arg.cpu().numpy()
            block_kept = best_np < thr  # not yet a duplicate of an earlier block's kept clip
            dup_of[a:b] = np.where(block_kept, -1, arg_np)
            dup_sim[a:b] = np.where(block_kept, 0.0, best_np)
            _resolve_block(pairs, sims, a, block_kept, dup_of, dup_sim)
            kept[a:b] = torch.from_numpy(block_kept).to(dev)
    return dup_of, dup_sim


def _best_kept_earlier(q, ranked, kept, a: int, tile_size: int):
    """``(best, arg)`` per row of ``q``: its highest similarity to a kept clip ranked before
    ``a``, and that clip's ranked position (-inf and -1 when there is none)."""
    import torch

    best = torch.full((len(q),), float("-inf"), device=q.device)
    arg = torch.full((len(q),), -1, dtype=torch.long, device=q.device)
    for c in range(0, a, tile_size):  # earlier blocks: their kept flags are final
        d = min(c + tile_size, a)
        sim = q @ ranked[c:d].to(q.dtype).T
        sim.masked_fill_(~kept[c:d][None, :], float("-inf"))
        m, i = sim.max(dim=1)
        m = m.float()
        upd = m > best
        best = torch.where(upd, m, best)
        arg = torch.where(upd, i + c, arg)
    return best, arg


def _pairs_within_block(q, thr: float) -> tuple[np.ndarray, np.ndarray]:
    """``(pairs, sims)``: every ``(j, k)`` of the block with ``k < j`` and similarity at least
    ``thr``, sorted by ``j`` then ``k``, and those similarities."""
    import torch

    sim = (q @ q.T).float()
    # only better-ranked clips of the block (k < j)
    sim.masked_fill_(torch.ones_like(sim, dtype=torch.bool).triu(), float("-inf"))
    found = torch.nonzero(sim >= thr)  # (j, k), sorted by j then k
    sims = sim[found[:, 0], found[:, 1]].cpu().numpy()
    return found.cpu().numpy(), sims


def _resolve_block(pairs, sims, a: int, block_kept, dup_of, dup_sim) -> None:
    """Settle the block's own pairs in rank order, updating ``block_kept``, ``dup_of`` and
    ``dup_sim`` in place (the block starts at ranked position ``a``)."""
    # a clip is only compared to clips kept so far
    k = 0
    while k < len(pairs):
        j = pairs[k, 0]
        e = k
        while e < len(pairs) and pairs[e, 0] == j:
            e += 1
        cand = [(float(sims[t]), int(pairs[t, 1])) for t in range(k, e)]
        cand = [(v, kk) for v, kk in cand if block_kept[kk]]
        if cand:
            v, kk = max(cand, key=lambda x: (x[0], -x[1]))
            if block_kept[j] or v > dup_sim[a + j]:
                dup_of[a + j], dup_sim[a + j] = a + kk, v
            block_kept[j] = False
        k = e


def _duplicates_frame(ids, order, dup_of, dup_sim) -> pd.DataFrame:
    """The near-duplicates as ``clip_id, duplicate_of, similarity``, in rank order."""
    is_dup = dup_of >= 0
    return pd.DataFrame(
        {
            "clip_id": ids[order[is_dup]],
            "duplicate_of": ids[order[dup_of[is_dup]]],
            "similarity": np.minimum(dup_sim[is_dup], 1.0).astype(np.float32),
        }
    )


def load_shards(embedding_paths, score_paths=None, score_column: str | None = None):
    """Every shard's embeddings concatenated, and the ranking score of each clip (NaN where it
    has none). ``score_paths`` are the shards' ``scores.parquet``, in any order."""
    ids, embs = [], []
    for p in embedding_paths:
        i, e = read_embeddings(p)
        if len(i):
            ids.append(i)
            embs.append(e)
    if not ids:
        return np.zeros(0, dtype=str), np.zeros((0, 0), np.float16), np.zeros(0)
    dims = {e.shape[1] for e in embs}
    if len(dims) > 1:
        raise ValueError(
            f"embeddings of different sizes {sorted(dims)}: shards were scored with different "
            "models; re-run the scorer for every shard"
        )
    ids_all = np.concatenate(ids)
    emb_all = np.concatenate(embs)
    scores = np.full(len(ids_all), np.nan)
    if score_paths and score_column:
        found = False
        lookup: dict[str, float] = {}
        for p in score_paths:
            df = pd.read_parquet(p)
            if score_column in df.columns:
                found = True
                vals = pd.to_numeric(df[score_column], errors="coerce")
                lookup.update(zip(df["clip_id"].astype(str), vals, strict=True))
        if not found:
            raise ValueError(
                f"keep_best_by: no column {score_column!r} in scores.parquet; "
                "name a score column, e.g. aesthetic.score"
            )
        scores = np.array([lookup.get(c, np.nan) for c in ids_all], np.float64)
    return ids_all, emb_all, scores
