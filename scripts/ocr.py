"""Snakemake entry point: per-clip OCR records -> ocr.json (from the scan's OCR rows, or by
reading the configured frames of each clip)."""

import pandas as pd

from clipsift.failures import check_failed_sources
from clipsift.filters.ocr import ocr_from_scan, ocr_shard
from clipsift.ingest import localize
from clipsift.io.atomic import write_json
from clipsift.smk import results_dir, rule_logging

with rule_logging(snakemake) as log:  # noqa: F821
    sm = snakemake  # noqa: F821
    clips = pd.read_parquet(sm.input.clips)
    source = pd.read_parquet(sm.input.source)

    def on_disk():  # archive members, for the frames read by seeking
        localize(source, sm.params.source, results_dir(sm), sm.wildcards.shard)

    if sm.input.get("scan_ocr"):
        # reads frames only for a clip that holds none of the scan's OCR frames
        rows = pd.read_parquet(sm.input.scan_ocr)
        records = ocr_from_scan(clips, rows, sm.params.ocr, prepare=on_disk)
    else:
        on_disk()
        records = ocr_shard(clips, sm.params.ocr)
    failed = [cid for cid, r in records.items() if r.get("error")]
    if failed:  # archive members back on disk first: only a file still missing is missing
        on_disk()
        check_failed_sources("ocr", clips, failed, source, results_dir(sm))
    write_json(sm.output[0], records)
