"""Snakemake entry point: every shard's clip embeddings -> dedup/near_duplicates.parquet."""

from pathlib import Path

from clipsift.dedup import DedupStats, load_shards, near_duplicates
from clipsift.io.atomic import write_parquet
from clipsift.models.device import resolve_device
from clipsift.smk import rule_logging

with rule_logging(snakemake) as log:  # noqa: F821
    sm = snakemake  # noqa: F821
    cfg = sm.params.cfg
    ids, emb, scores = load_shards(sm.input.embeddings, sm.input.scores, cfg["keep_best_by"])
    results = Path(sm.output[0]).parent.parent
    device = resolve_device(cfg["device"], lock_dir=results / ".gpu_locks")
    stats = DedupStats()
    dups = near_duplicates(
        ids,
        emb,
        scores,
        threshold=cfg["threshold"],
        higher_is_better=cfg["higher_is_better"],
        block_size=cfg["block_size"],
        tile_size=cfg["tile_size"],
        device=device,
        stats=stats,
    )
    log.info(
        "%d clips (%d-d %s embeddings), %d near-duplicates at cosine >= %s, on %s in %.2f s "
        "(%.3g similarities/s)",
        stats.n,
        stats.dim,
        cfg["embeddings"],
        stats.n_duplicates,
        cfg["threshold"],
        device,
        stats.seconds,
        stats.pairs_per_second,
    )
    write_parquet(sm.output[0], dups)
