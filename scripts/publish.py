"""Snakemake entry point of rule publish: results/dataset/ -> a Hub dataset repo
(+ results/dataset/.published.json). Run on demand only: `snakemake publish`."""

import sys
from pathlib import Path

from clipsift.captioners.secrets import SecretFilter
from clipsift.publish import PublishError, publish
from clipsift.smk import rule_logging

with rule_logging(snakemake) as log:  # noqa: F821
    sm = snakemake  # noqa: F821
    cfg = sm.params.publish
    SecretFilter.install({"api": {"key_env": cfg.get("token_env") or "HF_TOKEN"}})
    dataset = Path(sm.output[0]).parent  # results/dataset/.published.json
    try:
        publish(
            dataset,
            cfg,
            results=dataset.parent,
            shards=sm.params.shards,
            record_path=sm.output[0],
        )
    except PublishError as exc:
        log.error("%s", exc)
        print(str(exc), file=sys.__stderr__)
        sys.exit(1)
