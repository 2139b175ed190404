"""Snakemake entry point: thresholds over stored measurements -> selection.parquet (rule select);
the caption tests after the caption stage -> selection_captioned.parquet (rule select_captions)."""

import pandas as pd

from clipsift import reasons
from clipsift.io.atomic import write_parquet
from clipsift.selection import clip_table, filter_records, load_json, select, select_captions
from clipsift.smk import rule_logging

with rule_logging(snakemake) as log:  # noqa: F821
    sm = snakemake  # noqa: F821
    if sm.rule == "select_captions":
        before = pd.read_parquet(sm.input.selection)
        sel = select_captions(before, load_json(sm.input.captions), sm.params.caption)
        log.info(
            "%d clips, %d kept before the caption tests, %d after",
            len(sel), int(before["keep"].sum()), int(sel["keep"].sum()),
        )  # fmt: skip
        write_parquet(sm.output[0], sel, reasons.TYPES)
    else:
        table = clip_table(
            pd.read_parquet(sm.input.clips),
            pd.read_parquet(sm.input.scores),
            filter_records(sm.input)[0],
        )
        dups = pd.read_parquet(sm.input.dups) if sm.input.get("dups") else None
        sel = select(table, sm.params.select, near_duplicates=dups)
        log.info("%d clips, %d kept", len(sel), int(sel["keep"].sum()))
        write_parquet(sm.output[0], sel, reasons.TYPES)
