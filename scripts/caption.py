"""Snakemake entry point: captions for the kept clips of one shard -> caption.json.

Captions made so far are appended to ``{results}/cache/captions/{shard}.jsonl`` as they are made
(outside the rule's outputs, which Snakemake deletes before a rerun), so a rerun of an interrupted
or re-selected shard captions only what is new.
"""

import json
import sys

import pandas as pd

from clipsift.captioners.secrets import SecretFilter, scrub
from clipsift.captioners.shard import caption_shard
from clipsift.failures import check_error_share, check_failed_sources
from clipsift.ingest import localize
from clipsift.io.atomic import write_json
from clipsift.models.device import resolve_device
from clipsift.smk import results_dir, rule_logging

with rule_logging(snakemake) as log:  # noqa: F821
    sm = snakemake  # noqa: F821
    cfg = sm.params.caption
    secrets = SecretFilter.install(cfg)
    results = results_dir(sm)
    shard = sm.wildcards.shard
    source = localize(pd.read_parquet(sm.input.source), sm.params.source, results, shard)
    lock_dir = results / ".gpu_locks"

    def device_for(pref):
        return resolve_device(pref or "auto", lock_dir=lock_dir)

    device = device_for(cfg.get("device", "auto")) if cfg["provider"] == "local" else "cpu"
    clips = pd.read_parquet(sm.input.clips)
    try:
        out = caption_shard(
            clips,
            source,
            pd.read_parquet(sm.input.selection),
            cfg,
            cache_path=results / "cache" / "captions" / f"{shard}.jsonl",
            shard=shard,
            device=device,
            device_for=device_for,
            frames=pd.read_parquet(sm.input.frames, columns=["video_id", "frame", "time"]),
        )
    except Exception as exc:
        from clipsift.captioners.http import AuthError

        if isinstance(exc, AuthError):
            # a clear stop, no traceback: the message names the variable, never the key
            log.error("caption stopped: %s", exc)
            print(f"caption stopped: {secrets.redact(str(exc))}", file=sys.__stderr__)
            sys.exit(1)
        raise
    failed = [cid for cid, c in out["clips"].items() if c.get("error")]
    check_failed_sources("caption", clips, failed, source, results)
    check_error_share(
        "caption",
        shard,
        [c.get("error") for c in out["clips"].values()],
        sm.config["max_error_share"],
    )
    c = out["meta"]["counts"]
    log.info(
        "%d kept clips: %d captioned now, %d from the cache, %d errors",
        c["kept"],
        c["captioned"],
        c["cached"],
        c["errors"],
    )
    write_json(sm.output[0], json.loads(scrub(json.dumps(out), secrets.values)))
