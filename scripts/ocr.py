"""Snakemake entry point: per-clip OCR records -> ocr.json (from the scan's OCR rows, or by
reading the configured frames of each clip)."""

import pandas as pd

from clipsift.filters.ocr import ocr_from_scan, ocr_shard
from clipsift.ingest import localize
from clipsift.io.atomic import write_json
from clipsift.smk import results_dir, rule_logging

with rule_logging(snakemake) as log:  # noqa: F821
    sm = snakemake  # noqa: F821
    clips = pd.read_parquet(sm.input.clips)
    # the seek modes read frames, and so does scan mode for a clip between two grid frames
    source = pd.read_parquet(sm.input.source)
    localize(source, sm.params.source, results_dir(sm), sm.wildcards.shard)
    if sm.input.get("scan_ocr"):
        records = ocr_from_scan(clips, pd.read_parquet(sm.input.scan_ocr), sm.params.ocr)
    else:
        records = ocr_shard(clips, sm.params.ocr)
    write_json(sm.output[0], records)
