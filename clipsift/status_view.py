"""`clipsift status` as text: the table of :func:`clipsift.status.collect`, the state of the run
(active, or what a dead one left), the disk, and the reasons; ``--watch`` prints it again every
few seconds."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from . import runlock
from .sources.changes import status_lines
from .status import collect


def status_table(
    results: str | Path,
    workdir: str | Path | None = None,
    config: dict | None = None,
    *,
    sources: bool = True,
) -> str:
    """``clipsift status`` as text: a markdown table and the reasons below it; with
    ``sources``, the ingested source files that changed, are gone or back since (a stat per
    video: ``--watch`` leaves it out)."""
    st = collect(results, workdir, config)
    if st is None:
        lines = [f"no shard plan under {results}/plan yet (run snakemake first)"]
        return "\n".join(lines + run_state(runlock.holder(results), 0, Path(workdir or ".")))
    planned = sum(int(s.get("items", 0)) for s in st.shards)
    lines = [
        f"{results}: {len(st.shards):,} shard(s) planned, {planned:,} item(s)",
        "",
        "| stage | shards done | running | in | out | errors | first done | last done "
        "| video-s / s | s / shard | ETA |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    n = len(st.shards)
    active = runlock.holder(results)
    cut_short = 0 if active is not None else sum(s.running for s in st.stages) + st.running_other
    for s in st.stages:
        running = s.running if active is not None else 0
        lines.append(
            f"| {s.name} | {len(s.done):,}/{n:,} | {running or ''} "
            f"| {_count(s.n_in, s.unit_in) if s.done else ''} "
            f"| {_count(s.n_out, s.unit_out) if s.done else ''} | {s.errors or ''} "
            f"| {_ts(s.first)} | {_ts(s.last)} | {_rate(s.rate)} "
            f"| {_rate(s.shard_seconds)} | {_duration(s.eta)} |"
        )
    export = f"done at {_ts(st.export_done)}" if st.export_done else "not yet"
    if st.exported is not None:
        export += f": {st.exported:,} clips in the dataset"
    if st.export_failed:
        export += (
            f"; {st.export_failed:,} kept clips failed to export (reason export_failed in "
            "dataset/metadata.parquet)"
        )
    if st.export_duplicates:
        export += (
            f"; {st.export_duplicates:,} clips left out as duplicates of other shards' videos "
            "(export.dedupe_across_shards)"
        )
    lines += ["", f"export: {export}"]
    if st.clips:
        lines.append(f"clips: {st.kept} kept of {st.clips} judged by select")
    if st.running_other and active is not None:
        lines.append(f"other jobs running: {st.running_other}")
    lines += run_state(active, cut_short, Path(workdir) if workdir else Path.cwd())
    lines.append(disk_line(Path(results)))
    if st.video_errors:
        lines += ["", "video errors by reason:"]
        lines += [f"  {k:7d}  {r}" for r, k in st.video_errors.most_common()]
    if st.rejections:
        lines += ["", "clip rejections by reason (a clip may have several):"]
        lines += [f"  {k:7d}  {r}" for r, k in st.rejections.most_common()]
    if sources and (config is None or config.get("ingest", {}).get("check_sources", True)):
        lines += status_lines(results)
    if st.failed:
        lines += ["", "failed jobs (the last attempt of each; its log under the results folder):"]
        for job in st.failed[:SHOWN_FAILED]:
            lines += [f"  {_ts(job.time)}  {job.log}", f"      {job.error}"]
        if len(st.failed) > SHOWN_FAILED:
            lines.append(f"  ... and {len(st.failed) - SHOWN_FAILED} more")
    return "\n".join(lines)


SHOWN_FAILED = 10


def watch(
    results: str | Path,
    *,
    interval: float = 10.0,
    until_done: bool = False,
    workdir: str | Path | None = None,
    config: dict | None = None,
    out=None,
    clock=None,
) -> int:
    """Print the status every ``interval`` seconds (a time-stamped block each). With
    ``until_done``, stop once no run holds the results folder (after one was seen, or when the
    export is done); else until interrupted. Returns the number of blocks printed."""
    import sys
    import time

    out, clock = out or sys.stdout, clock or time
    seen_active, blocks = False, 0
    while True:
        stamp = dt.datetime.now().strftime("%H:%M:%S")
        text = status_table(results, workdir=workdir, config=config, sources=False)
        print(f"--- {stamp} ---\n{text}\n", file=out, flush=True)
        blocks += 1
        active = runlock.holder(results) is not None
        seen_active |= active
        done = (Path(results) / "dataset" / "metadata.parquet").exists()
        if until_done and not active and (seen_active or done):
            return blocks
        try:
            clock.sleep(interval)
        except KeyboardInterrupt:
            return blocks


def run_state(active: dict | None, cut_short: int, workdir: Path) -> list[str]:
    """Whether a run holds the results folder, and what a run that died left behind."""
    if active is not None:
        return [
            f"run: active (pid {active.get('pid', '?')} on {active.get('host', '?')}, "
            f"working folder {active.get('cwd', '?')}, since {active.get('started', '?')})"
        ]
    lines = ["run: none active"]
    if cut_short:
        lines.append(
            f"  {cut_short} job(s) were cut short by a run that ended without finishing them "
            "(killed?). The same snakemake command redoes them (rerun-incomplete is set in "
            "profiles/default); their partial files are never read."
        )
    locks = workdir / ".snakemake" / "locks"
    if locks.is_dir() and any(locks.iterdir()):
        lines.append(
            "  Snakemake's own lock (.snakemake/locks) was left by a run that died; clipsift's "
            "profiles turn that lock off, so only a run with `--workflow-profile none` is "
            "stopped by it. `snakemake --unlock` clears it."
        )
    return lines


# ----------------------------------------------------------------------------- format


def _count(n: int | None, unit: str) -> str:
    return "" if n is None else f"{n:,} {unit}"


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return ""
    seconds = int(round(seconds))
    h, rest = divmod(seconds, 3600)
    return f"{h}h{rest // 60:02d}m" if h else f"{rest // 60}m{rest % 60:02d}s"


def disk_line(results: Path) -> str:
    """Free space where the results are, and what the removable extracted archives take."""
    import shutil

    try:
        free = shutil.disk_usage(results).free
    except OSError:
        return "disk: results folder not readable"
    work = results / "work"
    used = 0
    if work.is_dir():
        for p in work.rglob("*"):
            try:
                if p.is_file():
                    used += p.stat().st_size
            except OSError:  # removed meanwhile
                pass
    return f"disk: {free / 1e9:.1f} GB free; extracted archives (results/work) {used / 1e9:.2f} GB"


def _rate(r: float | None) -> str:
    return "" if r is None else f"{r:.3g}"


def _ts(t: float | None) -> str:
    return dt.datetime.fromtimestamp(t).strftime("%H:%M:%S") if t else ""
