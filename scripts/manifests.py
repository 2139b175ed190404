"""Snakemake entry point of two rules (see clipsift/manifests.py):

- ``dataset_clips``: the encoded clips of one shard -> results/dataset/clips/{shard}/ + table;
- ``manifests``: every shard's latents and clip files -> results/dataset/manifests/.
"""

from pathlib import Path

import pandas as pd

from clipsift.ingest import localize
from clipsift.io.atomic import atomic_dir, write_parquet
from clipsift.manifests import write_dataset_clips, write_manifests
from clipsift.smk import results_dir, rule_logging

with rule_logging(snakemake) as log:  # noqa: F821
    sm = snakemake  # noqa: F821
    if sm.rule == "dataset_clips":
        localize(
            pd.read_parquet(sm.input.source), sm.params.source, results_dir(sm), sm.wildcards.shard
        )
        with atomic_dir(sm.output.dir) as tmp:
            table = write_dataset_clips(
                pd.read_parquet(sm.input.clips),
                pd.read_parquet(sm.input.latents),
                tmp,
                Path(sm.output.dir),
                sm.params.reencode,
                sm.params.link,
            )
        write_parquet(sm.output.table, table)
    else:
        with atomic_dir(sm.output[0]) as tmp:
            counts = write_manifests(
                [pd.read_parquet(p) for p in sm.input.latents],
                [pd.read_parquet(p) for p in sm.input.clips],
                tmp,
                sm.params.manifests | {"final_dir": sm.output[0]},
            )
        log.info("manifests written: %s", counts)
