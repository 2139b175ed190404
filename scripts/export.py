"""Snakemake entry point of the global export rules (see rules/export.smk):

- ``export_duplicates``: every shard's source.parquet -> videos duplicated across shards;
- ``export``: every shard's tables -> results/dataset/{metadata.parquet,metadata.jsonl,
  kept.parquet,rejected.parquet} (+ easyanimate.json, webdataset/);
- ``provenance``: -> results/dataset/provenance.json;
- ``card``: -> results/dataset/README.md.
"""

import json
from pathlib import Path

import pandas as pd

from clipsift.card import write_card
from clipsift.export import build_metadata, check_kept, cross_shard_duplicates, write_dataset
from clipsift.io.atomic import atomic_dir, write_json, write_parquet
from clipsift.portable import path_roots
from clipsift.provenance import build_provenance, read_inputs
from clipsift.smk import rule_logging
from clipsift.webdataset import write_webdataset

with rule_logging(snakemake) as log:  # noqa: F821
    sm = snakemake  # noqa: F821
    if sm.rule == "export_duplicates":
        sources = {Path(p).parent.name: pd.read_parquet(p) for p in sm.input.sources}
        dups = cross_shard_duplicates(sources)
        write_parquet(sm.output[0], dups)
        log.info("%d videos duplicate a video of an earlier shard", len(dups))
    elif sm.rule == "export":
        dataset = Path(sm.output.parquet).parent
        roots = path_roots(sm.config["sources"], sm.config["results"])
        meta = build_metadata(sm.input, sm.params.export, dataset, roots)
        check_kept(meta, sm.params.allow_empty)
        write_dataset(meta, dict(sm.output.items()), sm.params.export["easyanimate"])
        if sm.output.get("webdataset"):
            with atomic_dir(sm.output.webdataset) as tmp:
                tars = write_webdataset(meta, dataset, tmp, sm.params.export["webdataset"])
            log.info("webdataset: %d tars", len(tars))
        log.info("metadata: %d clips, %d kept", len(meta), int(meta["keep"].sum()))
    elif sm.rule == "provenance":
        dataset = Path(sm.output[0]).parent
        files = {Path(p).relative_to(dataset).as_posix(): p for p in sm.input.dataset_files}
        record = build_provenance(
            config=sm.params.config,
            plan=sm.params.plan,
            files=files,
            secrets_from=sm.config,
            **read_inputs(sm.input),
        )
        write_json(sm.output[0], record)
        log.info(
            "provenance: config %s, counts %s",
            record["config_sha256"][:12],
            json.dumps({k: v for k, v in record["counts"].items() if k != "funnel"}),
        )
    elif sm.rule == "card":
        prov = json.loads(Path(sm.input.provenance).read_text())
        write_card(
            sm.output[0], prov, sm.params.card, repo=sm.params.repo, webdataset=sm.params.webdataset
        )
        log.info("dataset card written")
