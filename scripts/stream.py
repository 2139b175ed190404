"""Snakemake entry point of the streaming rules (rules/stream.smk, clipsift/streaming.py):

- ``shard_metadata``: one shard's tables -> shards/{shard}/metadata.jsonl + metadata.parquet;
- ``upload_shard``: the shard's clip files and metadata -> one commit to publish.repo;
- ``release_shard``: removes the shard's extracted members and downloaded archives.
"""

import sys
from types import SimpleNamespace

import pandas as pd

from clipsift.export import build_metadata, write_metadata
from clipsift.io.atomic import write_json
from clipsift.portable import path_roots
from clipsift.smk import results_dir, rule_logging
from clipsift.streaming import release_shard, upload_shard

with rule_logging(snakemake) as log:  # noqa: F821
    sm = snakemake  # noqa: F821
    results = results_dir(sm)
    shard = sm.wildcards.shard
    if sm.rule == "shard_metadata":
        named = {k: [v] for k, v in sm.input.items()}
        inputs = SimpleNamespace(**named)
        roots = path_roots(sm.config["sources"], sm.config["results"])
        meta = build_metadata(inputs, sm.params.export, results / "dataset", roots)
        write_metadata(meta, sm.output.parquet, sm.output.jsonl)
        log.info("%s: %d clips, %d kept", shard, len(meta), int(meta["keep"].sum()))
    elif sm.rule == "upload_shard":
        from clipsift.captioners.secrets import SecretFilter
        from clipsift.publish import PublishError

        cfg = sm.params.publish
        SecretFilter.install({"api": {"key_env": cfg.get("token_env") or "HF_TOKEN"}})
        try:
            record = upload_shard(results / "dataset", shard, results / "shards" / shard, cfg)
        except PublishError as exc:
            log.error("%s", exc)
            print(str(exc), file=sys.__stderr__)
            sys.exit(1)
        write_json(sm.output[0], record)
        log.info(
            "%s: %d files committed to %s (%s)",
            shard,
            record["files"],
            record["repo"],
            record["commit"],
        )
    elif sm.rule == "release_shard":
        plan = pd.read_parquet(results / "plan" / "shards" / f"{shard}.parquet")
        archives = sorted(a for a in plan["archive"].dropna() if a)
        record = release_shard(
            results, shard, sm.params.source, archives, downloads=sm.params.downloads
        )
        write_json(sm.output[0], record)
