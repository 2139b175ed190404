"""One run at a time on a results folder, from any working folder.

Snakemake's own lock lives in the working folder (``.snakemake/locks``), so two runs from two
folders on one results path are not kept apart, and a killed Snakemake leaves it behind (the next
run then needs ``--unlock``). clipsift instead holds an ``flock`` on ``{results}/.clipsift.lock``
for the life of the Snakemake process that schedules the jobs (taken when it parses the
Snakefile). The kernel drops it when that process ends, however it ends, so a lock is never
stale; a second run on the same folder stops at once with who holds it. The lock file's text
(host, pid, working folder, start time) is only for that message.

Within one process the lock is re-entrant (tests run many workflows in one process).
"""

from __future__ import annotations

import datetime as dt
import fcntl
import json
import os
import socket
import time
from pathlib import Path

LOCK_NAME = ".clipsift.lock"
_held: dict[str, int] = {}  # absolute results folder -> open descriptor holding the lock


class ResultsLocked(RuntimeError):
    pass


def lock_path(results: str | os.PathLike) -> Path:
    return Path(results) / LOCK_NAME


def holder(results: str | os.PathLike) -> dict | None:
    """What the lock file says of the run holding it, or None when no run holds the lock."""
    path = lock_path(results)
    if not path.exists():
        return None
    fd = os.open(path, os.O_RDONLY)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            try:
                return json.loads(path.read_text() or "{}")
            except (OSError, ValueError):
                return {}
        fcntl.flock(fd, fcntl.LOCK_UN)
        return None
    finally:
        os.close(fd)


def acquire(results: str | os.PathLike) -> Path:
    """Take the results folder's lock for this process, or raise :class:`ResultsLocked`."""
    results = Path(results).absolute()
    key = os.fspath(results)
    path = lock_path(results)
    if key in _held:
        return path
    results.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        who = holder(results) or {}
        raise ResultsLocked(
            f"clipsift: the results folder {results} is in use by another run "
            f"(pid {who.get('pid', '?')} on {who.get('host', '?')}, working folder "
            f"{who.get('cwd', '?')}, since {who.get('started', '?')}). Wait for it to end, or "
            "use another `results` folder. A dry run (-n) needs no lock."
        ) from None
    info = {
        "host": socket.gethostname(),
        "pid": os.getpid(),
        "cwd": os.getcwd(),
        "started": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
    }
    os.ftruncate(fd, 0)
    os.pwrite(fd, json.dumps(info).encode(), 0)
    os.set_inheritable(fd, False)  # jobs started by this run must not keep it alive
    _held[key] = fd
    return path


STARTED = Path(".clipsift") / "run_started.json"  # under the results folder


def mark_start(results: str | os.PathLike) -> None:
    """Record when the run now holding the lock started: ``clipsift status`` measures a stage's
    pace over the latest run only (over all runs, the idle hours between two runs counted as
    work, and a 5-s shard read as 161 s, a tryout)."""
    path = Path(results) / STARTED
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".{os.getpid()}.tmp")
    tmp.write_text(json.dumps({"started": time.time()}))
    os.replace(tmp, path)


def last_start(results: str | os.PathLike) -> float | None:
    """When the latest run on ``results`` started (None: unknown, a folder built before)."""
    try:
        return float(json.loads((Path(results) / STARTED).read_text())["started"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def release(results: str | os.PathLike) -> None:
    fd = _held.pop(os.fspath(Path(results).absolute()), None)
    if fd is not None:
        os.ftruncate(fd, 0)
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)
