"""Scale: plan, dry run and per-job parse time of the workflow for 10,000 and 1,000,000 videos.

For each size N, a synthetic ``metalist`` source (a parquet list of N fake video paths: planning
never opens a video, and nothing here runs a job) in shards of 500, then, each in a fresh
process, as a user or a cluster would run it:

- plan: ``clipsift plan`` (lists the source, writes results/plan/);
- dry run: ``snakemake -n`` of the whole DAG (N/500 shards x the per-shard rules, + the rest);
- job parse: what every cluster job does before its work starts, ``snakemake --target-jobs
  ingest:shard=<one shard> --allowed-rules ingest --force -n`` (start Python and Snakemake,
  parse the Snakefile, which reads the plan's shards.json, and build the one-job DAG);
  the median of 3, next to the same command on a one-rule Snakefile (Snakemake's own floor).

Wall time, CPU time (user + system of the process and its children) and peak memory are
reported: on a shared machine the CPU time is the figure to compare, the wall time is what a user
waits. ``--profile`` also writes cProfile output of the 1M dry run.

    python bench/scale.py --out bench/results/scale.md
    python bench/scale.py --videos 20000 --out -      # quick look, to stdout
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
NOTES = "<!-- notes: kept when the bench rewrites this file -->"
SNAKEFILE = REPO / "Snakefile"


@dataclass
class Timing:
    wall: float
    cpu: float
    maxrss_mb: float
    out: str


def timed(cmd: list[str], cwd: Path) -> Timing:
    """Run ``cmd``; its wall time, CPU time and peak RSS (of it and its children)."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(
        cmd, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    out = proc.stdout.read()
    _, status, ru = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t0
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed ({proc.returncode}):\n{out[-3000:]}")
    return Timing(wall, ru.ru_utime + ru.ru_stime, ru.ru_maxrss / 1024, out)


def make_source(workdir: Path, n: int, shard_size: int) -> None:
    import pandas as pd

    workdir.mkdir(parents=True, exist_ok=True)
    lst = workdir / "list.parquet"
    if not lst.exists() or len(pd.read_parquet(lst, columns=["path"])) != n:
        paths = [f"/data/videos/{i // 1000:04d}/v{i:07d}.mp4" for i in range(n)]
        pd.DataFrame({"path": paths, "caption": "a synthetic caption"}).to_parquet(lst)
    (workdir / "config").mkdir(exist_ok=True)
    (workdir / "config" / "config.yaml").write_text(
        f"results: results\nshard_size: {shard_size}\n"
        "sources:\n  - name: big\n    type: metalist\n    path: list.parquet\n"
    )


def snakemake(*args: str, prof: Path | None = None) -> list[str]:
    python = [sys.executable, *(["-m", "cProfile", "-o", str(prof)] if prof else [])]
    return [*python, "-m", "snakemake", "--cores", "1", *args]


def bench_size(workdir: Path, n: int, shard_size: int, profile: bool) -> dict:
    import json
    import shutil

    make_source(workdir, n, shard_size)
    shutil.rmtree(workdir / "results", ignore_errors=True)
    shutil.rmtree(workdir / ".snakemake", ignore_errors=True)
    plan = timed(
        [sys.executable, "-m", "clipsift.cli", "plan", "--config", "config/config.yaml"], workdir
    )
    shards = json.loads((workdir / "results" / "plan" / "shards.json").read_text())["shards"]
    one = shards[len(shards) // 2]["name"]

    prof = workdir / "dryrun.prof" if profile else None
    dry = timed(
        snakemake("--snakefile", str(SNAKEFILE), "-n", "--quiet", "rules", prof=prof), workdir
    )
    jobs = _total_jobs(dry.out)

    job_cmd = snakemake(
        "--snakefile",
        str(SNAKEFILE),
        "-n",
        "--force",
        "--quiet",
        "all",
        "--target-jobs",
        f"ingest:shard={one}",
        "--allowed-rules",
        "ingest",
    )
    job_runs = [timed(job_cmd, workdir) for _ in range(3)]
    return {
        "videos": n,
        "shards": len(shards),
        "jobs": jobs,
        "plan": plan,
        "dry": dry,
        "job": _median(job_runs),
    }


def _median(runs: list[Timing]) -> Timing:
    mid = sorted(runs, key=lambda t: t.wall)[len(runs) // 2]
    return Timing(mid.wall, statistics.median(t.cpu for t in runs), mid.maxrss_mb, "")


def _total_jobs(out: str) -> int | None:
    for line in out.splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[0] == "total" and parts[1].isdigit():
            return int(parts[1])
    return None


def floor(tmp: Path) -> Timing:
    """The same one-job dry run on a one-rule Snakefile: Python + Snakemake startup."""
    (tmp / "Snakefile").write_text('rule a:\n    output: "x"\n    shell: "touch {output}"\n')
    runs = [
        timed(
            snakemake(
                "-n", "--force", "--quiet", "all", "--target-jobs", "a:", "--allowed-rules", "a"
            ),
            tmp,
        )
        for _ in range(3)
    ]
    return _median(runs)


def report(results: list[dict], base: Timing, started: str, load: tuple) -> str:
    import snakemake

    lines = [
        "# Scale: plan, dry run and job parse time",
        "",
        f"`python bench/scale.py` on {started}: {platform.node()}, {os.cpu_count()} cores, "
        f"Python {platform.python_version()}, Snakemake {snakemake.__version__}. "
        f"Load average before/after: {load[0]:.1f} / {load[1]:.1f} (a shared machine: compare "
        "the CPU seconds; the wall time is what was waited).",
        "",
        "Synthetic metalist source (fake paths, nothing decoded), shards of 500 videos.",
        "",
        "| videos | shards | jobs in the DAG | plan: wall / CPU s (peak MB) "
        "| dry run `-n`: wall / CPU s (peak MB) | one job's parse: wall / CPU s |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for r in results:
        p, d, j = r["plan"], r["dry"], r["job"]
        lines.append(
            f"| {r['videos']:,} | {r['shards']:,} | {r['jobs'] or '?':,} "
            f"| {p.wall:.1f} / {p.cpu:.1f} ({p.maxrss_mb:.0f}) "
            f"| {d.wall:.1f} / {d.cpu:.1f} ({d.maxrss_mb:.0f}) | {j.wall:.2f} / {j.cpu:.2f} |"
        )
    lines += [
        "",
        f"Snakemake's floor (the same one-job command on a one-rule Snakefile): "
        f"{base.wall:.2f} s wall / {base.cpu:.2f} s CPU.",
        "",
    ]
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--videos", type=int, nargs="+", default=[10_000, 1_000_000])
    ap.add_argument("--shard-size", type=int, default=500)
    ap.add_argument("--workdir", type=Path, default=Path(tempfile.gettempdir()) / "clipsift-scale")
    ap.add_argument(
        "--out", default="bench/results/scale.md", help="markdown file, or - for stdout"
    )
    ap.add_argument("--profile", action="store_true", help="cProfile the largest dry run")
    args = ap.parse_args(argv)

    started = dt.datetime.now().strftime("%Y-%m-%d %H:%M")
    load0 = os.getloadavg()[0]
    results = []
    for n in args.videos:
        print(f"{n} videos ...", file=sys.stderr, flush=True)
        r = bench_size(
            args.workdir / f"n{n}", n, args.shard_size, args.profile and n == max(args.videos)
        )
        print(
            f"  plan {r['plan'].wall:.1f} s, dry run {r['dry'].wall:.1f} s "
            f"({r['jobs']} jobs), job parse {r['job'].wall:.2f} s",
            file=sys.stderr,
        )
        results.append(r)
    tmp = args.workdir / "floor"
    tmp.mkdir(parents=True, exist_ok=True)
    base = floor(tmp)
    text = report(results, base, started, (load0, os.getloadavg()[0]))
    if args.out == "-":
        print(text)
    else:
        out = Path(args.out)
        out.parent.mkdir(parents=True, exist_ok=True)
        # hand-written notes below the marker survive a new run of the bench
        notes = (
            out.read_text().split(NOTES, 1)[1] if out.exists() and NOTES in out.read_text() else ""
        )
        out.write_text(text + (f"\n{NOTES}{notes}" if notes else ""))
        print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
