"""Test helpers: run the real workflow through Snakemake's Python API, tiny videos, table readers.

``run_snakemake`` touches these Snakemake (9.x) internals, all read-only and after the run:
``DAGApi.workflow_api._workflow`` (the ``Workflow`` built by the API) and its ``dag`` property,
``DAG.needrun_jobs(exclude_finished=False)`` (the jobs Snakemake decided to run; the set is not
emptied as jobs finish, so it is the same list for a dry run and a real run), ``DAG.reason(job)``,
and per job ``job.rule.name``, ``job.wildcards`` and ``job.output``. Everything else is the public API
(``SnakemakeApi``, ``OutputSettings``, ``ResourceSettings``, ``ConfigSettings``, ``DAGSettings``,
``SchedulingSettings``).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import av
import numpy as np
import pandas as pd
import yaml

REPO = Path(__file__).resolve().parent.parent
SNAKEFILE = REPO / "Snakefile"


@dataclass(frozen=True)
class JobInfo:
    rule: str
    wildcards: dict
    output: tuple[str, ...]
    reason: str = ""

    @property
    def shard(self) -> str | None:
        return self.wildcards.get("shard")


@dataclass
class RunResult:
    """What one ``run_snakemake`` call ran (or, for a dry run, would run)."""

    workdir: Path
    dryrun: bool
    jobs: list[JobInfo] = field(default_factory=list)

    @property
    def rules(self) -> Counter:
        """Rule name -> number of jobs."""
        return Counter(j.rule for j in self.jobs)

    def shards(self, rule: str) -> set[str]:
        """Shards (wildcard values) of the jobs of ``rule``."""
        return {j.shard for j in self.jobs if j.rule == rule}

    @property
    def outputs(self) -> set[str]:
        return {o for j in self.jobs for o in j.output}


def write_config(workdir: Path, config: dict) -> Path:
    """``workdir/config/config.yaml`` (the path the Snakefile's ``configfile:`` reads)."""
    path = Path(workdir) / "config" / "config.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def run_snakemake(
    workdir: Path,
    config: dict,
    targets=None,
    dryrun: bool = False,
    forcerun=(),
    cores: int = 2,
) -> RunResult:
    """Run the real Snakefile in ``workdir`` with ``config``; raise if a job fails.

    The config is written to ``workdir/config/config.yaml`` and passed as the config file too.
    ``targets`` are files or rule names (default: the default target); ``forcerun`` rule names.
    The current directory is restored afterwards, whatever happens.
    """
    from snakemake.api import SnakemakeApi
    from snakemake.scheduling.greedy import SchedulerSettings as GreedySettings
    from snakemake.settings.enums import Quietness
    from snakemake.settings.types import (
        ConfigSettings,
        DAGSettings,
        OutputSettings,
        ResourceSettings,
        SchedulingSettings,
    )

    workdir = Path(workdir).resolve()
    configfile = write_config(workdir, config)
    cwd = os.getcwd()
    result = RunResult(workdir=workdir, dryrun=dryrun)
    try:
        output = OutputSettings(
            dryrun=dryrun,
            show_failed_logs=True,
            quiet={Quietness.PROGRESS, Quietness.HOST} if not dryrun else {Quietness.ALL},
        )
        with SnakemakeApi(output) as api:
            wf = api.workflow(
                resource_settings=ResourceSettings(cores=cores),
                config_settings=ConfigSettings(configfiles=[configfile]),
                snakefile=SNAKEFILE,
                workdir=workdir,
            )
            dag_api = wf.dag(
                DAGSettings(targets=frozenset(targets or ()), forcerun=frozenset(forcerun))
            )
            try:
                dag_api.execute_workflow(
                    executor="dryrun" if dryrun else "local",
                    # greedy: the default ILP scheduler runs a solver process at every step
                    # (its settings must be given too: Snakemake 9.27 passes None otherwise)
                    scheduling_settings=SchedulingSettings(scheduler="greedy"),
                    scheduler_settings=GreedySettings(),
                )
            finally:
                dag = dag_api.workflow_api._workflow.dag
                if dag is not None:
                    result.jobs = sorted(
                        (
                            JobInfo(
                                j.rule.name,
                                dict(j.wildcards.items()),
                                tuple(j.output),
                                str(dag.reason(j)),
                            )
                            for j in dag.needrun_jobs(exclude_finished=False)
                        ),
                        key=lambda j: (j.rule, j.shard or ""),
                    )
    finally:
        os.chdir(cwd)
    return result


# ----------------------------------------------------------------------------- configs


# Measurements that tests of ingest/scan/split/export do not need: fewer jobs per shard.
LEAN = {
    "filters": {"ocr": {"enabled": False}, "flash": {"enabled": False}},
    "scorers": {"technical": {"enabled": False}},
    # the default thresholds less the technical one (a threshold on a disabled scorer is an error)
    "select": {"thresholds": {"motion.rel_per_s": {"min": 0.015, "max": 1.5}}},
}


def base_config(sources: list[dict], *, lean: bool = False, **over) -> dict:
    """A small config: the given sources, shard_size 4, virtual clips; ``over`` updates top-level
    sections (dicts are merged one level deep). ``lean`` turns off the OCR and flash filters and
    the technical scorer (see LEAN): about a third fewer jobs."""
    cfg = {
        "results": "results",
        "shard_size": 4,
        "sources": sources,
        "scan": {"detector": "adaptive"},
        "split": {"min_seconds": 2.0, "max_seconds": 10.0, "materialize": "virtual"},
        **(json.loads(json.dumps(LEAN)) if lean else {}),
    }
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(cfg.get(key), dict):
            cfg[key] = {**cfg[key], **value}
        else:
            cfg[key] = value
    return cfg


# ----------------------------------------------------------------------------- tables


def shard_table(workdir: Path, shard: str, name: str) -> pd.DataFrame:
    return pd.read_parquet(Path(workdir) / "results" / "shards" / shard / name)


def all_shards_table(workdir: Path, name: str) -> pd.DataFrame:
    """``name`` (e.g. source.parquet) of every shard, with a ``shard`` column."""
    frames = []
    for path in sorted((Path(workdir) / "results" / "shards").glob(f"*/{name}")):
        df = pd.read_parquet(path)
        df.insert(0, "shard", path.parent.name)
        frames.append(df)
    return pd.concat(frames, ignore_index=True)


def metadata(workdir: Path) -> pd.DataFrame:
    return pd.read_parquet(Path(workdir) / "results" / "dataset" / "metadata.parquet")


def plan_shards(workdir: Path) -> dict[str, dict]:
    data = json.loads((Path(workdir) / "results" / "plan" / "shards.json").read_text())
    return {s["name"]: s for s in data["shards"]}


# ----------------------------------------------------------------------------- videos


def render_lumas(path: Path, lumas, *, fps: int = 25, size=(64, 48), gop: int = 10) -> Path:
    """An H.264 mp4 whose frame i is flat with luma ``lumas[i]`` (full frame, Y plane)."""
    w, h = size
    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(os.fspath(path), "w") as out:
        stream = out.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = w, h, "yuv420p"
        stream.codec_context.gop_size = gop
        stream.codec_context.options = {"qp": "0", "preset": "veryfast"}
        for i, y in enumerate(lumas):
            i420 = np.full((h * 3 // 2, w), 128, np.uint8)
            i420[:h] = int(y)
            frame = av.VideoFrame.from_ndarray(i420, format="yuv420p")
            frame.pts = i
            out.mux(stream.encode(frame))
        out.mux(stream.encode(None))
    return path


def decoded_lumas(path: Path) -> np.ndarray:
    """Mean raw Y value (limited range, as encoded) of every decoded frame, straight from PyAV."""
    with av.open(os.fspath(path)) as c:
        return np.array([f.to_ndarray()[: f.height].mean() for f in c.decode(video=0)])


def keyframe_times(path: Path) -> list[float]:
    with av.open(os.fspath(path)) as c:
        s = c.streams.video[0]
        start = s.start_time or 0
        return sorted(
            float((p.pts - start) * s.time_base)
            for p in c.demux(s)
            if p.is_keyframe and p.pts is not None
        )


def count_frames(path: Path) -> int:
    with av.open(os.fspath(path)) as c:
        return sum(1 for _ in c.decode(video=0))


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def frame_times(path: Path) -> list[float]:
    """Display times (s, from the stream start) of every decoded frame."""
    with av.open(os.fspath(path)) as c:
        s = c.streams.video[0]
        start = s.start_time or 0
        return [float((f.pts - start) * s.time_base) for f in c.decode(s)]


def gray_frames(path: Path, width: int = 80) -> np.ndarray:
    """Every decoded frame as a small float gray image (display orientation ignored)."""
    import cv2

    out = []
    with av.open(os.fspath(path)) as c:
        for f in c.decode(video=0):
            y = f.to_ndarray(format="gray")
            h = round(y.shape[0] * width / y.shape[1])
            out.append(cv2.resize(y, (width, h), interpolation=cv2.INTER_AREA).astype(np.float32))
    return np.stack(out)


# ----------------------------------------------------------------------------- Hub cache

HUB_COMMIT = "0123456789abcdef0123456789abcdef01234567"


def make_hub_cache(cache: Path, repo: str, files: dict[str, Path]) -> Path:
    """A huggingface_hub cache holding dataset ``repo`` at HUB_COMMIT (= main) with ``files``
    (repo path -> local file). Use with HF_HUB_OFFLINE=1 and the source's ``cache_dir``."""
    import shutil

    root = Path(cache) / f"datasets--{repo.replace('/', '--')}"
    (root / "refs").mkdir(parents=True, exist_ok=True)
    (root / "refs" / "main").write_text(HUB_COMMIT)
    for name, src in files.items():
        dest = root / "snapshots" / HUB_COMMIT / name
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(src, dest)
    return Path(cache)


def make_tar(path: Path, members: dict[str, bytes]) -> Path:
    import io
    import tarfile

    with tarfile.open(path, "w:gz" if path.name.endswith(".gz") else "w") as tf:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    return path


def make_zip(path: Path, members: dict[str, bytes]) -> Path:
    import zipfile

    with zipfile.ZipFile(path, "w") as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return path


# ----------------------------------------------------------------------------- waiting


HUNG = 1800  # s: only a stop for a process that hangs, never a speed bound (CI's load varies)


def wait_for(condition, proc, what: str, *, log=None) -> None:
    """Poll ``condition()`` until it holds, while ``proc`` (a Popen) runs: fails if ``proc``
    ends first (with ``log()``'s text, if given). The only bound is :data:`HUNG`, a guard
    against a hang, so that a slow, loaded machine waits as long as the work takes."""
    import time

    start = time.monotonic()
    while not condition():
        if proc.poll() is not None:
            detail = log() if log else ""
            raise AssertionError(f"{what}: the process ended first (rc {proc.returncode}) {detail}")
        if time.monotonic() - start > HUNG:
            raise AssertionError(f"{what}: nothing after {HUNG} s, the process hangs")
        time.sleep(0.05)


# ----------------------------------------------------------------------------- the CLI


# Fields of the dataset that may differ between two identical builds (docs/reproducible.md).
TIMESTAMP_FIELDS = {"provenance.json": ("created",)}


def python_module(module: str, workdir: Path, *args, env=None, timeout: int = 900):
    """``python -m MODULE ARGS`` in ``workdir``, as a user types the command."""
    return subprocess.run(
        [sys.executable, "-m", module, *map(str, args)],
        cwd=workdir,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def snakemake_cli(workdir: Path, *args, **kw):
    """``snakemake ARGS`` in ``workdir`` (profiles included, as on the command line)."""
    return python_module("snakemake", workdir, *args, **kw)


def clipsift_cli(workdir: Path, *args, **kw):
    return python_module("clipsift.cli", workdir, *args, **kw)


def dataset_digests(dataset: Path) -> dict[str, str]:
    """sha256 of every file under ``dataset``, by relative path; the declared timestamp fields
    of a JSON file are dropped before hashing."""
    out = {}
    for path in sorted(p for p in Path(dataset).rglob("*") if p.is_file()):
        rel = path.relative_to(dataset).as_posix()
        data = path.read_bytes()
        if rel in TIMESTAMP_FIELDS:
            doc = json.loads(data)
            for key in TIMESTAMP_FIELDS[rel]:
                doc.pop(key, None)
            data = json.dumps(doc, sort_keys=True).encode()
        out[rel] = hashlib.sha256(data).hexdigest()
    return out


# ----------------------------------------------------------------------------- the docs


README = REPO / "README.md"
DOC_FILES = [README, *sorted((REPO / "docs").glob("*.md"))]


def section(title: str) -> str:
    """The text of the section whose heading is ``title``, in the README or a page of docs/ (up
    to the next heading of the same or a higher level); the title must be unique across them."""
    found = []
    for path in DOC_FILES:
        text = path.read_text()
        for m in re.finditer(rf"^(#+) {re.escape(title)}\s*$", text, re.M):
            level = len(m[1])
            end = re.compile(rf"^#{{1,{level}}} ", re.M).search(text, m.end())
            found.append(text[m.end() : end.start() if end else len(text)])
    assert len(found) == 1, f"{len(found)} sections titled {title!r} in the README and docs/"
    return found[0]


def commands(title: str) -> list[str]:
    """The lines of the section's one ``bash`` block, without their trailing comments."""
    blocks = re.findall(r"```bash\n(.*?)```", section(title), re.S)
    assert len(blocks) == 1, f"{title}: {len(blocks)} bash blocks"
    lines = [re.sub(r"\s+#.*$", "", ln).strip() for ln in blocks[0].splitlines()]
    return [ln for ln in lines if ln]


def project_copy(dest: Path, sample_dir: Path) -> Path:
    """The project's files as a fresh clone has them (git's tracked and not-ignored files),
    plus the sample videos where `make sample` puts them."""
    files = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"],
        cwd=REPO, capture_output=True, check=True,
    ).stdout.decode().split("\0")  # fmt: skip
    for rel in filter(None, files):
        src = REPO / rel
        if src.is_file():
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / rel)
    shutil.copytree(sample_dir, dest / "sample" / "videos")
    return dest


def user_env() -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SNAKEMAKE", "SLURM"))}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    return env
