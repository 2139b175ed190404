"""Snakemake entry point: the prompts of one shard -> videos (generated/) + generated.parquet."""

import pandas as pd

from clipsift.generators.stage import generate_shard
from clipsift.io.atomic import write_parquet
from clipsift.models.device import resolve_device
from clipsift.smk import results_dir, rule_logging

with rule_logging(snakemake) as log:  # noqa: F821
    sm = snakemake  # noqa: F821
    import torch

    torch.set_num_threads(max(1, int(sm.threads)))  # the job's cores, not the machine's
    source = sm.params.source
    results = results_dir(sm)
    device = resolve_device(source.get("device") or "auto", lock_dir=results / ".gpu_locks")
    table = generate_shard(
        pd.read_parquet(sm.input.plan),
        source,
        out_dir=sm.output.videos,
        cache_dir=results / "cache" / "generate" / sm.wildcards.shard,
        device=device,
    )
    write_parquet(sm.output.table, table)
