"""Snakemake entry point: every shard's latents and exported clip files -> results/dataset/manifests/."""

import pandas as pd

from clipsift.io.atomic import atomic_dir
from clipsift.manifests import write_manifests
from clipsift.smk import rule_logging

with rule_logging(snakemake) as log:  # noqa: F821
    sm = snakemake  # noqa: F821
    with atomic_dir(sm.output[0]) as tmp:
        counts = write_manifests(
            [pd.read_parquet(p) for p in sm.input.latents],
            [pd.read_parquet(p) for p in sm.input.clips],
            tmp,
            sm.params.manifests | {"final_dir": sm.output[0]},
        )
    log.info("manifests written: %s", counts)
