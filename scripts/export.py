"""Snakemake entry point: every shard's tables -> results/dataset/metadata.{parquet,jsonl}."""

from clipsift.export import build_metadata, write_metadata
from clipsift.smk import rule_logging

with rule_logging(snakemake) as log:  # noqa: F821
    sm = snakemake  # noqa: F821
    meta = build_metadata(sm.input, sm.params.export)
    write_metadata(meta, sm.output.parquet, sm.output.jsonl)
    log.info("metadata: %d clips, %d kept", len(meta), int(meta["keep"].sum()))
