"""`clipsift status`: progress of a run, read from the results folder (works while it runs);
:mod:`clipsift.status_view` prints it.

Per stage: shards done, jobs running, what went in and what came out (videos, scenes, clips,
kept clips), errors (of ingest and of the scan: a video that opened but could not be read
through), the time of the first and the last done output, and the throughput in
video-seconds per wall-second. Below the table: video errors by reason and clip rejections by
reason. Once the export is done: the clips in the dataset, and the kept clips the export could
not write (``export_failed``; the dataset then holds fewer clips than selection kept).

Only complete files count. Every output is written to a temporary name (``.{name}.XXXX``) and
renamed into place, so a file under its final name is complete; a file that disappears while it
is read (Snakemake deletes the outputs of a job before it re-runs it) is counted as not done.
Jobs running are Snakemake's own markers (``.snakemake/incomplete`` in the working directory):
an output marked there is being written, or its job was killed (the next run redoes it).

Failed jobs: a job that raises writes ``job failed`` and its traceback into its log
(``results/logs/...``, :func:`clipsift.smk.rule_logging`), and each attempt starts its log
afresh (one not retried writes the first attempt's log back, then its own marker), so a log
whose last marker ends it is a job whose last attempt failed. The status lists each
with its error (a stage that stopped, `max_error_share`; a model that did not load), which a
keep-going run otherwise leaves in Snakemake's scroll-back only.

Throughput of a stage: the video-seconds of the shards it has done since the latest run
started (the Snakefile records the start, :func:`clipsift.runlock.mark_start`), over the wall
time from that start to its last done output; shown once those are at least 10 s apart. Over
every run, the idle time between runs counted as work. In a results folder without that record
(built before it), the shards done except the first one, from its first done output on. It
reads the per-shard output times, so it is the rate of the whole cluster (or machine), not of
one job.

The whole table reads a few parquet footers and small columns per shard: about 5 ms of CPU a
shard, 10 s for 2,000 shards; the failed jobs, the last 16 KB of every log: 0.3 s for 16,000.
"""

from __future__ import annotations

import base64
import json
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq

from .config import with_defaults
from .filters import REGISTRY as FILTERS
from .reasons import column_of, split_duplicates, summary
from .runlock import last_start

# stage -> its files under results/shards/{shard}/ (done when all of them exist)
STAGES = [
    ("ingest", ["source.parquet"]),
    ("scan", ["scan/scenes.parquet", "scan/frames.parquet", "scan/samples.parquet"]),
    ("split", ["clips.parquet"]),
    *((name, [f"{name}.json"]) for name in FILTERS),
    ("scores", ["scores.parquet"]),
    ("select", ["selection.parquet"]),
    ("caption", ["caption.json"]),
    ("encode", ["latents.parquet"]),
    ("upload", ["upload.json"]),  # streaming: the shard's own commit to the Hub
    ("release", ["released.json"]),  # its downloads and extracted members removed
]
OPTIONAL = {*FILTERS, "caption", "encode", "upload", "release"}  # shown when on or started
MIN_SPAN = 10.0  # s between the first and last done output before a throughput is shown
READ_ERRORS = (FileNotFoundError, OSError, ValueError)  # gone or rewritten while read


@dataclass
class ShardInfo:
    """What the done files of one shard say (each part None until its file exists)."""

    planned: int = 0
    videos_ok: int | None = None
    video_seconds: float = 0.0
    video_errors: list[str] = field(default_factory=list)
    scan_errors: list[str] = field(default_factory=list)  # videos ingested that the scan failed
    scenes: int | None = None
    clips: int | None = None  # rows of clips.parquet (too short and failed ones included)
    scored: int | None = None
    selected: int | None = None
    kept: int | None = None
    reasons: list[str] = field(default_factory=list)  # rejections without the value (summary)
    latents: int | None = None
    uploaded_files: int = 0
    uploaded_bytes: int = 0
    freed_bytes: int = 0


@dataclass
class StageStatus:
    name: str
    done: dict[str, float] = field(default_factory=dict)  # shard -> mtime of its output
    running: int = 0
    n_in: int = 0
    n_out: int | None = None
    unit_in: str = ""
    unit_out: str = ""
    errors: int = 0
    video_seconds: float = 0.0
    rate: float | None = None  # video-seconds per wall-second
    shard_seconds: float | None = None  # wall seconds per done shard (the whole cluster's pace)
    eta: float | None = None  # seconds until every planned shard is done at that pace

    @property
    def first(self) -> float | None:
        return min(self.done.values()) if self.done else None

    @property
    def last(self) -> float | None:
        return max(self.done.values()) if self.done else None


@dataclass
class FailedJob:
    """A job whose last attempt failed: its log (relative to the results folder), when the log
    was last written, and the error's first line."""

    log: str
    time: float
    error: str


@dataclass
class RunStatus:
    results: Path
    shards: list[dict]
    stages: list[StageStatus]
    export_done: float | None
    video_errors: Counter
    rejections: Counter
    clips: int
    kept: int
    running_other: int = 0
    failed: list[FailedJob] = field(default_factory=list)
    exported: int | None = None  # clips in the dataset (None: no export yet, or unreadable)
    export_failed: int = 0  # kept clips whose file the export could not write
    export_duplicates: int = 0  # clips the export left out as duplicates of other shards' videos


def collect(
    results: str | Path, workdir: str | Path | None = None, config: dict | None = None
) -> RunStatus | None:
    """The status of the run whose outputs are under ``results`` (None: no plan yet).

    ``workdir``: where Snakemake runs (its ``.snakemake`` folder); default the current folder.
    ``config``: the run's config, to list optional stages before they start.
    """
    results = Path(results)
    manifest = results / "plan" / "shards.json"
    if not manifest.exists():
        return None
    shards = json.loads(manifest.read_text())["shards"]
    names = [s["name"] for s in shards]
    infos = {s["name"]: ShardInfo(planned=int(s.get("items", 0))) for s in shards}
    running = _running(results, Path(workdir) if workdir else Path.cwd())
    since = last_start(results)

    stages = []
    for stage, files in STAGES:
        st = StageStatus(stage, running=running.pop(stage, 0))
        for shard in names:
            t = _done_time(results / "shards" / shard, files)
            if t is not None and _read(stage, results / "shards" / shard, infos[shard]):
                st.done[shard] = t
        if stage in OPTIONAL and not (st.done or st.running or _enabled(stage, config)):
            continue
        _summarize(st, infos, since)
        stages.append(st)

    export = results / "dataset" / "metadata.parquet"
    export_done = export.stat().st_mtime if export.exists() else None
    exported, export_failed, export_duplicates = _exported(export) if export_done else (None, 0, 0)
    video_errors: Counter = Counter()
    rejections: Counter = Counter()
    for shard in names:
        video_errors.update(error_reason(e) for e in infos[shard].video_errors)
        video_errors.update(error_reason(e) for e in infos[shard].scan_errors)
        rejections.update(infos[shard].reasons)
    sel = [infos[s] for s in names if infos[s].selected is not None]
    return RunStatus(
        results=results,
        shards=shards,
        stages=stages,
        export_done=export_done,
        video_errors=video_errors,
        rejections=rejections,
        clips=sum(i.selected for i in sel),
        kept=sum(i.kept for i in sel),
        running_other=sum(running.values()),
        failed=failed_jobs(results),
        exported=exported,
        export_failed=export_failed,
        export_duplicates=export_duplicates,
    )


def _exported(meta: Path) -> tuple[int | None, int, int]:
    """Clips in the dataset, kept clips the export failed to write, and clips it left out as
    duplicates of other shards' videos, from its ``metadata.parquet``: selection's kept count
    overstates the dataset by both (a tryout's status said 15 kept; the dataset held 5)."""
    try:
        cols = set(pq.read_schema(meta).names)
        wanted = ("keep", "rejections", "split_reason")
        df = pd.read_parquet(meta, columns=[c for c in wanted if c in cols])
    except READ_ERRORS:
        return None, 0, 0
    if "keep" not in df:  # a dataset written by hand or by an older export
        return len(df), 0, 0
    failed = dups = 0  # by the rejection: a duplicate whose export failed keeps its export.error
    if "rejections" in df:
        tests = [
            {r.get("test") for r in rs} if rs is not None else set() for rs in df["rejections"]
        ]
        failed = sum("export_failed" in t for t in tests)
        # a duplicate within a shard is one the split left (its split_reason), not the export
        split = df["split_reason"] if "split_reason" in df else pd.Series(None, index=df.index)
        within = split_duplicates(split).notna()
        # ... and one select rejected already carries the duplicate rejection too: counted
        # are the clips whose only rejection it is, those select kept
        dups = sum(t == {"duplicate"} and not w for t, w in zip(tests, within, strict=True))
    return int(df["keep"].fillna(False).astype(bool).sum()), failed, dups


# ----------------------------------------------------------------------------- failed jobs

FAILED_MARK = re.compile(r"^\S+ \S+ ERROR clipsift\.\S+: job failed$", re.M)
TAIL_BYTES = 16 * 1024  # a traceback fits; a long log is not read whole
ERROR = b" ERROR clipsift."  # in every line rule_logging writes at level ERROR
LOG_LINE = re.compile(rb"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} [A-Z]+ ")  # rule_logging's format


def failed_jobs(results: Path) -> list[FailedJob]:
    """The jobs under ``results/logs`` whose log ends their last attempt with an error (see the
    module notes), newest first."""
    out = []
    for log in (results / "logs").rglob("*.log") if (results / "logs").is_dir() else []:
        try:
            with open(log, "rb") as fh:
                size = fh.seek(0, 2)
                fh.seek(max(0, size - TAIL_BYTES))
                data = fh.read()
                last = data.rstrip().rpartition(b"\n")[2]
                if size > TAIL_BYTES and not LOG_LINE.match(last) and ERROR not in data:
                    fh.seek(0)  # it ends in no log line, a traceback too long for the tail
                    data = fh.read()
            when = log.stat().st_mtime
        except OSError:  # removed while read
            continue
        if ERROR not in data:  # most logs: no decoding, no pattern
            continue
        text = data.decode("utf-8", "replace")
        marks = list(FAILED_MARK.finditer(text))
        if marks:
            error = final_error(text[marks[-1].end() :])
            out.append(FailedJob(str(log.relative_to(results)), when, error))
    return sorted(out, key=lambda f: (-f.time, f.log))


def final_error(traceback: str) -> str:
    """The first line of the exception a traceback ends with, without its module path
    (``clipsift.failures.StageFailed: ...`` -> ``StageFailed: ...``)."""
    lines = traceback.splitlines()
    starts = [i for i, line in enumerate(lines) if line.startswith("Traceback ")]
    plain = (line for line in (lines[starts[-1] + 1 :] if starts else lines)
             if line.strip() and not line.startswith((" ", "\t")))  # fmt: skip
    # an exception group prints itself and its members after "| ", their frames indented more
    group = (m.group(1) for m in map(GROUP_LINE.match, lines) if m)
    found = next(plain, None) or next(group, None)
    if found is None:
        return "(no error message in the log)"
    name, sep, message = found.partition(": ")
    return f"{name.rsplit('.', 1)[-1]}{sep}{message}"[:400]


GROUP_LINE = re.compile(r"^\s*\| ([A-Za-z_][\w.]*(?:: .*)?)$")


# ----------------------------------------------------------------------------- reasons


def error_reason(error: str) -> str:
    """A video error without its details: ``cannot open: [Errno ..] ... 'x.mp4'`` -> cannot open;
    numbers before the first colon read N (``frame times go back at frame 60 (3.000 s, then
    0.000 s): ...`` is one reason for every video it happens to)."""
    head = str(error).split(":", 1)[0].strip() or str(error)
    return re.sub(r"\d+(\.\d+)?", "N", head)


# ----------------------------------------------------------------------------- reading


def _done_time(folder: Path, files: list[str]) -> float | None:
    """mtime of the newest of a stage's files, or None unless all of them exist."""
    try:
        return max((folder / f).stat().st_mtime for f in files)
    except FileNotFoundError:
        return None


def _read(stage: str, folder: Path, info: ShardInfo) -> bool:
    """Read what the status needs from a done stage's file; False if it vanished meanwhile."""
    try:
        if stage == "ingest":
            cols = ["duration", "error"]
            have = set(pq.read_schema(folder / "source.parquet").names)
            t = pq.read_table(folder / "source.parquet", columns=[c for c in cols if c in have])
            df = t.to_pandas()
            err = df.get("error")
            ok = err.isna() if err is not None else [True] * len(df)
            info.videos_ok = int(sum(ok))
            info.video_errors = [e for e in (err.dropna() if err is not None else [])]
            if "duration" in df:
                info.video_seconds = float(df.loc[ok, "duration"].fillna(0).sum())
        elif stage == "scan":
            path = folder / "scan" / "scenes.parquet"
            if "error" in pq.read_schema(path).names:
                # a video the scan could not read is a row with its error, not a scene
                errors = pq.read_table(path, columns=["error"]).column("error").to_pylist()
                info.scan_errors = [e for e in errors if e is not None]
                info.scenes = len(errors) - len(info.scan_errors)
            else:
                info.scenes = pq.ParquetFile(path).metadata.num_rows
        elif stage == "split":
            # a video with an error, or an exact duplicate the split left, is one row, no clip
            path = folder / "clips.parquet"
            have = set(pq.read_schema(path).names)
            df = pq.read_table(path, columns=[c for c in ("error", "split_reason") if c in have])
            df = df.to_pandas()
            unsplit = pd.Series(False, index=df.index)
            if "error" in df:
                unsplit |= df["error"].notna()
            if "split_reason" in df:
                unsplit |= split_duplicates(df["split_reason"]).notna()
            info.clips = (
                int((~unsplit).sum()) if len(df.columns) else pq.ParquetFile(path).metadata.num_rows
            )
        elif stage == "scores":
            info.scored = pq.ParquetFile(folder / "scores.parquet").metadata.num_rows
        elif stage == "select":
            path = folder / "selection.parquet"
            names = pq.ParquetFile(path).schema_arrow.names
            cols = ["keep", "rejections" if "rejections" in names else "reasons"]
            df = pq.read_table(path, columns=cols).to_pandas()
            info.selected, info.kept = len(df), int(df["keep"].sum())
            rejected = df.loc[~df["keep"].astype(bool)]
            info.reasons = [summary(r) for rs in column_of(rejected) for r in rs]
        elif stage == "encode":
            info.latents = pq.ParquetFile(folder / "latents.parquet").metadata.num_rows
        elif stage == "upload":
            rec = json.loads((folder / "upload.json").read_text())
            info.uploaded_files, info.uploaded_bytes = int(rec["files"]), int(rec["bytes"])
        elif stage == "release":
            info.freed_bytes = int(
                json.loads((folder / "released.json").read_text())["bytes_freed"]
            )
        return True
    except (*READ_ERRORS, KeyError):
        return False


def _summarize(st: StageStatus, infos: dict[str, ShardInfo], since: float | None = None) -> None:
    done = [infos[s] for s in st.done]
    videos_ok = sum(i.videos_ok or 0 for i in done)
    clips = sum(i.clips or 0 for i in done)
    kept = sum(i.kept or 0 for i in done)
    if st.name == "ingest":
        st.n_in, st.unit_in = sum(i.planned for i in done), "items"
        st.n_out, st.unit_out = videos_ok, "videos"
        st.errors = sum(len(i.video_errors) for i in done)
    elif st.name == "scan":
        st.n_in, st.unit_in = videos_ok, "videos"
        st.n_out, st.unit_out = sum(i.scenes or 0 for i in done), "scenes"
        st.errors = sum(len(i.scan_errors) for i in done)
    elif st.name == "split":
        st.n_in, st.unit_in = videos_ok, "videos"
        st.n_out, st.unit_out = clips, "clips"
    elif st.name in FILTERS:
        st.n_in, st.unit_in = clips, "clips"
    elif st.name == "scores":
        st.n_in, st.unit_in = clips, "clips"
        st.n_out, st.unit_out = sum(i.scored or 0 for i in done), "rows"
    elif st.name == "select":
        st.n_in, st.unit_in = sum(i.selected or 0 for i in done), "clips"
        st.n_out, st.unit_out = kept, "kept"
    elif st.name == "caption":
        st.n_in, st.unit_in = kept, "kept"
    elif st.name == "encode":
        st.n_in, st.unit_in = kept, "kept"
        st.n_out, st.unit_out = sum(i.latents or 0 for i in done), "latents"
    elif st.name == "upload":
        st.n_in, st.unit_in = sum(i.uploaded_files for i in done), "files"
        st.n_out, st.unit_out = round(sum(i.uploaded_bytes for i in done) / 1e6), "MB"
    elif st.name == "release":
        st.n_in, st.unit_in = len(done), "shards"
        st.n_out, st.unit_out = round(sum(i.freed_bytes for i in done) / 1e6), "MB freed"
    st.video_seconds = sum(i.video_seconds for i in done)
    if since is not None:  # the latest run's pace, from its start: never the idle time before
        recent = [s for s, t in st.done.items() if t >= since]
        span = max((st.done[s] for s in recent), default=since) - since
        if recent and span >= MIN_SPAN:
            st.rate = sum(infos[s].video_seconds for s in recent) / span
            st.shard_seconds = span / len(recent)
            st.eta = (len(infos) - len(st.done)) * st.shard_seconds
    elif len(st.done) >= 2 and st.last - st.first >= MIN_SPAN:
        first_shard = min(st.done, key=st.done.get)
        after_first = st.video_seconds - infos[first_shard].video_seconds
        st.rate = after_first / (st.last - st.first)
        st.shard_seconds = (st.last - st.first) / (len(st.done) - 1)
        st.eta = (len(infos) - len(st.done)) * st.shard_seconds


def _running(results: Path, workdir: Path) -> Counter:
    """Stage -> outputs under ``results`` that Snakemake has marked incomplete (being written,
    or killed). A working folder may serve runs on other results folders too (one config file
    each): their jobs were counted here, as cut short or running (a tryout)."""
    out: Counter = Counter()
    root = workdir / ".snakemake" / "incomplete"
    if not root.is_dir():
        return out
    mine = Path(results).resolve()  # read from here, as every table; the markers' paths are
    # Snakemake's, from its working folder
    by_file = {f: stage for stage, files in STAGES for f in files}
    by_folder = {"scan": "scan", "clips": "split", "scores": "scores", "embeddings": "scores"}
    by_folder["latents"] = "encode"
    seen: set[tuple[str, str]] = set()
    for marker in root.rglob("*"):
        if not marker.is_file():
            continue
        rel = marker.relative_to(root)
        b64 = "".join(p.removeprefix("@") for p in rel.parts)
        try:
            path = base64.urlsafe_b64decode(b64.encode()).decode()
        except (ValueError, UnicodeDecodeError):
            continue
        if not (workdir / path).resolve().is_relative_to(mine):
            continue
        m = re.search(r"(?:^|/)shards/([^/]+)/(.+)$", path)
        if m is None:
            stage, job = "other", path
        else:
            shard, name = m[1], m[2]
            stage = by_file.get(name) or by_folder.get(name.split("/")[0], "other")
            # a job with several outputs counts once; score jobs are one per (shard, scorer)
            scorer = Path(name).stem if name.startswith(("scores/", "embeddings/")) else ""
            job = f"{shard}/{scorer}" if stage != "other" else f"{shard}/{name.split('/')[0]}"
        key = (stage, job)
        if key not in seen:
            seen.add(key)
            out[stage] += 1
    return out


def _enabled(stage: str, config: dict | None) -> bool:
    """Whether an optional stage is on; without a config, the schema's defaults (filters on)."""
    if stage in FILTERS:
        return with_defaults(f"filters.{stage}", (config or {}).get("filters", {}).get(stage))[
            "enabled"
        ]
    if stage in ("upload", "release"):
        stream = with_defaults("streaming", (config or {}).get("streaming"))
        return stream["enabled"] and (stage == "release" or stream["upload"])
    return bool(((config or {}).get(stage) or {}).get("enabled"))
