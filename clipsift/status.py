"""`clipsift status`: progress of a run read from the results folder (works while it runs)."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pandas as pd

STAGES = [
    ("ingest", "source.parquet"),
    ("scan", "scan/scenes.parquet"),
    ("split", "clips.parquet"),
    ("flash", "flash.json"),
    ("ocr", "ocr.json"),
    ("scores", "scores.parquet"),
    ("select", "selection.parquet"),
]


def status_table(results: Path) -> str:
    manifest = results / "plan" / "shards.json"
    if not manifest.exists():
        return f"no shard plan under {results}/plan yet (run snakemake first)"
    shards = [s["name"] for s in json.loads(manifest.read_text())["shards"]]
    lines = [
        f"{len(shards)} shard(s) planned",
        "",
        "| stage | shards done | rows | errors | first done | last done |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    reasons: Counter = Counter()
    for stage, name in STAGES:
        done = [
            results / "shards" / s / name
            for s in shards
            if (results / "shards" / s / name).exists()
        ]
        rows = errors = 0
        for path in done:
            if path.suffix == ".parquet" and stage in ("ingest", "split", "select"):
                df = pd.read_parquet(path)
                rows += len(df)
                if "error" in df:
                    errors += int(df["error"].notna().sum())
                if stage == "select":
                    for r in df.loc[~df["keep"], "reasons"]:
                        reasons.update(x.split("=")[0].split(":")[0] for x in r)
        times = sorted(p.stat().st_mtime for p in done)
        first = _ts(times[0]) if times else ""
        last = _ts(times[-1]) if times else ""
        lines.append(
            f"| {stage} | {len(done)}/{len(shards)} | {rows or ''} | {errors or ''} | {first} | {last} |"
        )
    sel = [results / "shards" / s / "selection.parquet" for s in shards]
    sel = [pd.read_parquet(p) for p in sel if p.exists()]
    if sel:
        df = pd.concat(sel)
        lines += ["", f"clips: {len(df)} in, {int(df['keep'].sum())} kept", "rejections by reason:"]
        lines += [f"  {n:6d}  {r}" for r, n in reasons.most_common()]
    return "\n".join(lines)


def _ts(t: float) -> str:
    import datetime as dt

    return dt.datetime.fromtimestamp(t).strftime("%H:%M:%S")
