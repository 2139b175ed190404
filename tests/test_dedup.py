"""Near-duplicate removal across the dataset: the exact blockwise pass against a brute-force
reference, ranking, the embedding files, and re-encoded copies of real (generated) clips."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from clipsift.dedup import (
    DedupStats,
    load_shards,
    near_duplicates,
    priority_order,
    read_embeddings,
    write_embeddings,
)


def brute_force(ids, emb, scores, threshold, higher_is_better=True):
    """The definition, spelled out: in rank order, a clip is a duplicate of its most similar
    already-kept clip when that similarity reaches the threshold."""
    order = priority_order(ids, scores, higher_is_better)
    e = emb.astype(np.float32)[order]
    sims = e @ e.T
    kept, out = [], {}
    for j in range(len(order)):
        cand = [(sims[j, k], k) for k in kept if sims[j, k] >= threshold]
        if cand:
            s, k = max(cand, key=lambda x: (x[0], -x[1]))
            out[ids[order[j]]] = ids[order[k]]
        else:
            kept.append(j)
    return out


def clustered(n=240, d=24, n_groups=40, noise=0.08, seed=0):
    """Unit vectors in groups around random centres (near-duplicates), plus loners."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((n_groups, d))
    which = rng.integers(0, n_groups * 2, n)  # half the draws are loners
    emb = np.where(
        (which < n_groups)[:, None],
        centres[np.minimum(which, n_groups - 1)] + noise * rng.standard_normal((n, d)),
        rng.standard_normal((n, d)),
    )
    emb /= np.linalg.norm(emb, axis=1, keepdims=True)
    ids = np.array([f"v{i % 17:02d}_{i:04d}" for i in range(n)])
    scores = rng.normal(5, 1, n)
    scores[rng.random(n) < 0.1] = np.nan  # some clips have no score: ranked last
    return ids, emb.astype(np.float16), scores


@pytest.mark.parametrize(("block", "tile"), [(16, 8), (25, 1000), (64, 40), (4096, 65536)])
def test_blockwise_pass_equals_the_brute_force_greedy(block, tile):
    ids, emb, scores = clustered()
    ref = brute_force(ids, emb, scores, 0.97)
    assert 20 < len(ref) < 200  # the data has duplicates and distinct clips
    got = near_duplicates(ids, emb, scores, threshold=0.97, block_size=block, tile_size=tile)
    assert dict(zip(got["clip_id"], got["duplicate_of"], strict=True)) == ref
    kept = set(ids) - set(got["clip_id"])
    assert set(got["duplicate_of"]) <= kept  # every duplicate points to a kept clip
    e = dict(zip(ids, emb.astype(np.float32), strict=True))
    for row in got.itertuples():
        assert row.similarity == pytest.approx(
            float(e[row.clip_id] @ e[row.duplicate_of]), abs=1e-5
        )
        assert row.similarity >= 0.97


def test_best_scored_clip_is_kept_and_ties_and_missing_scores_rank_last():
    e = np.array([[1, 0], [1, 0.01], [1, -0.01], [0, 1]], np.float32)
    e /= np.linalg.norm(e, axis=1, keepdims=True)
    ids = ["a", "b", "c", "d"]
    got = near_duplicates(ids, e, [4.0, 6.0, np.nan, 5.0], threshold=0.99)
    assert dict(zip(got["clip_id"], got["duplicate_of"], strict=True)) == {"a": "b", "c": "b"}
    got = near_duplicates(ids, e, [4.0, 6.0, np.nan, 5.0], threshold=0.99, higher_is_better=False)
    assert dict(zip(got["clip_id"], got["duplicate_of"], strict=True)) == {"b": "a", "c": "a"}
    got = near_duplicates(ids, e, None, threshold=0.99)  # no scores: the smaller id wins
    assert set(got["duplicate_of"]) == {"a"}
    assert list(priority_order(["x", "y", "z"], [1.0, np.nan, 1.0])) == [0, 2, 1]


def test_a_chain_keeps_both_ends_when_they_are_not_similar():
    ang = np.radians([0.0, 10.0, 20.0])  # a~b and b~c at cos 10 deg, a vs c at cos 20 deg
    e = np.stack([np.cos(ang), np.sin(ang)], axis=1).astype(np.float32)
    got = near_duplicates(["a", "b", "c"], e, [3.0, 2.0, 1.0], threshold=np.cos(np.radians(15)))
    assert list(got["clip_id"]) == ["b"] and list(got["duplicate_of"]) == ["a"]


def test_no_clips_one_clip_and_bad_input():
    empty = near_duplicates([], np.zeros((0, 4)), threshold=0.9)
    assert list(empty.columns) == ["clip_id", "duplicate_of", "similarity"] and not len(empty)
    assert not len(near_duplicates(["a"], np.ones((1, 4)) / 2, threshold=0.9))
    with pytest.raises(ValueError, match="not unique"):
        near_duplicates(["a", "a"], np.eye(2), threshold=0.9)
    with pytest.raises(ValueError, match="threshold"):
        near_duplicates(["a", "b"], np.eye(2), threshold=0)


def test_embedding_files_round_trip_with_ids(tmp_path):
    rng = np.random.default_rng(0)
    emb = rng.standard_normal((5, 12)) * 3
    ids = [f"video-{i}_{i:04d}" for i in range(5)]
    write_embeddings(tmp_path / "e.npy", ids, emb)
    got_ids, got = read_embeddings(tmp_path / "e.npy")
    assert list(got_ids) == ids and got.dtype == np.float16 and got.shape == (5, 12)
    np.testing.assert_allclose(np.linalg.norm(got.astype(np.float32), axis=1), 1, atol=2e-3)
    ref = emb / np.linalg.norm(emb, axis=1, keepdims=True)
    np.testing.assert_allclose(got.astype(np.float32), ref, atol=2e-3)
    # loadable without pickle, memory-mapped
    assert np.load(tmp_path / "e.npy", mmap_mode="r")["embedding"].shape == (5, 12)
    write_embeddings(tmp_path / "none.npy", [], [])
    i0, e0 = read_embeddings(tmp_path / "none.npy")
    assert len(i0) == 0 and e0.shape[0] == 0
    np.save(tmp_path / "plain.npy", np.zeros((2, 2)))
    with pytest.raises(ValueError, match="not an embeddings file"):
        read_embeddings(tmp_path / "plain.npy")


def test_load_shards_joins_the_ranking_score(tmp_path):
    write_embeddings(tmp_path / "s0.npy", ["a", "b"], np.eye(3)[:2])
    write_embeddings(tmp_path / "s1.npy", [], [])  # a shard without usable clips
    write_embeddings(tmp_path / "s2.npy", ["c"], np.eye(3)[2:])
    pd.DataFrame({"clip_id": ["a", "b", "x"], "aesthetic.score": [5.0, None, 1.0]}).to_parquet(
        tmp_path / "s0.parquet"
    )
    pd.DataFrame({"clip_id": ["c"], "aesthetic.score": [7.0]}).to_parquet(tmp_path / "s2.parquet")
    paths = [tmp_path / f"s{i}.npy" for i in range(3)]
    scores = [tmp_path / "s0.parquet", tmp_path / "s2.parquet"]
    ids, emb, s = load_shards(paths, scores, "aesthetic.score")
    assert list(ids) == ["a", "b", "c"] and emb.shape == (3, 3)
    assert s[0] == 5.0 and np.isnan(s[1]) and s[2] == 7.0
    with pytest.raises(ValueError, match="keep_best_by: no column 'nope.score'"):
        load_shards(paths, scores, "nope.score")
    write_embeddings(tmp_path / "s3.npy", ["d"], np.ones((1, 5)))
    with pytest.raises(ValueError, match="different sizes"):
        load_shards([*paths, tmp_path / "s3.npy"])


# ----------------------------------------------------------------------------- real clips


@pytest.fixture(scope="module")
def reencoded(tmp_path_factory):
    """One scene rendered at 320x180 crf 18 and again at 224x126 crf 38 (another size and
    bitrate), plus three distinct scenes; scored by the aesthetic scorer (tiny random CLIP) in two
    shards, the copy in the other shard than its original."""
    from fakes.tiny_clip import save_head, save_tiny_clip

    from clipsift.sample import Segment, render_video
    from clipsift.scorers import ShardInputs, run_scorer

    root = tmp_path_factory.mktemp("reencoded")
    model = save_tiny_clip(root / "clip")
    head = save_head(root / "head.pth", "aesthetic", 16)
    videos = {
        "orig": ([Segment(20, seed=31, pan=(1.5, 0))], (320, 180), 18),
        "copy": ([Segment(20, seed=31, pan=(1.5, 0))], (224, 126), 38),
        "other1": ([Segment(20, seed=32, pan=(0, 1.0))], (320, 180), 18),
        "other2": ([Segment(20, seed=33)], (320, 180), 18),
        "other3": ([Segment(20, seed=34, pan=(-1.0, 0.5))], (320, 180), 18),
    }
    rows = []
    for name, (segs, size, crf) in videos.items():
        path = root / f"{name}.mp4"
        render_video(path, segs, fps=10, size=size, crf=crf)
        rows.append(
            {
                "clip_id": f"{name}_0000", "video_id": name, "start_time": 0.0, "end_time": 2.0,
                "fps": 10.0, "width": size[0], "height": size[1], "source_path": str(path),
                "error": None, "split_reason": None,
            }
        )  # fmt: skip
    clips = pd.DataFrame(rows)
    cfg = {"model": str(model), "head_path": str(head), "batch_size": 8}
    shards = {"s0": ["orig", "other1", "other2"], "s1": ["copy", "other3"]}
    emb_paths, score_paths = [], []
    for shard, names in shards.items():
        part = clips[clips["video_id"].isin(names)].reset_index(drop=True)
        emb_paths.append(root / shard / "embeddings.npy")
        inputs = ShardInputs(part, pd.DataFrame(), outputs={"embeddings": emb_paths[-1]})
        scores = run_scorer("aesthetic", inputs, cfg).set_index("clip_id").add_prefix("aesthetic.")
        score_paths.append(root / shard / "scores.parquet")
        scores.reset_index().to_parquet(score_paths[-1])
    return emb_paths, score_paths


def test_reencoded_copy_is_a_duplicate_of_its_original_and_distinct_clips_are_not(reencoded):
    emb_paths, score_paths = reencoded
    ids, emb, scores = load_shards(emb_paths, score_paths, "aesthetic.score")
    assert len(ids) == 5 and not np.isnan(scores).any()
    stats = DedupStats()
    got = near_duplicates(ids, emb, scores, threshold=0.98, block_size=2, stats=stats)
    assert len(got) == 1, got
    pair = {got["clip_id"].iloc[0], got["duplicate_of"].iloc[0]}
    assert pair == {"orig_0000", "copy_0000"}
    s = dict(zip(ids, scores, strict=True))
    assert s[got["duplicate_of"].iloc[0]] >= s[got["clip_id"].iloc[0]]  # the better one is kept
    e = dict(zip(ids, emb.astype(np.float32), strict=True))
    distinct = [c for c in ids if c not in pair]
    top_distinct = max(float(e[a] @ e[b]) for a in ids for b in distinct if a != b)
    assert got["similarity"].iloc[0] > 0.98 > top_distinct
    assert stats.n == 5 and stats.n_duplicates == 1


def test_the_stage_refuses_embeddings_of_a_scorer_that_is_off(tmp_path, tiny_videos):
    from helpers import base_config, run_snakemake

    cfg = base_config(
        [{"name": "t", "type": "folder", "path": str(tiny_videos["a"].parent)}],
        near_duplicates={"enabled": True, "embeddings": "aesthetic"},
    )
    with pytest.raises(
        Exception, match="near_duplicates.embeddings: 'aesthetic' is not an enabled"
    ):
        run_snakemake(tmp_path, cfg, dryrun=True)
