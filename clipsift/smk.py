"""Glue for the thin ``script:`` entry points: logging into the rule's log file, and no
retry of a job that stopped on a cause a retry does not fix.

The workflow profile retries a failed job (``restart-times: 2``) for what a retry does fix: a
job killed for memory or time gets more of both. A job that stopped itself because most of its
clips failed (:class:`clipsift.failures.StageFailed`) or its source is wrong
(:class:`clipsift.sources.SourceError`) stops again, after redoing its work: under SLURM, two
more GPU jobs with twice and three times the memory. So such a stop leaves a note beside the
job's log (``.stopped.json``, with the run's start, :func:`clipsift.runlock.last_start`), and a
later attempt of the same run fails at once with that error. The next run tries again.
``SourceUnavailable`` (cannot fetch now) is retried as before.
"""

from __future__ import annotations

import json
import logging
import os
import sys
from contextlib import contextmanager
from pathlib import Path


class NotRetried(RuntimeError):
    """A retry of a job whose earlier attempt in this run stopped on a final cause."""


def _final(exc: BaseException) -> bool:
    from .failures import StageFailed
    from .sources.base import SourceError, SourceUnavailable

    return isinstance(exc, (StageFailed, SourceError)) and not isinstance(exc, SourceUnavailable)


def _run_start(log_path: str) -> float | None:
    """The start of the run this job belongs to, from its results folder (``{results}/logs/``
    holds every rule's log)."""
    from .runlock import last_start

    parts = Path(log_path).absolute().parts
    if "logs" not in parts:
        return None
    return last_start(Path(*parts[: len(parts) - 1 - parts[::-1].index("logs")]))


def _stopped_note(log_path: str) -> Path:
    return Path(log_path).with_suffix(".stopped.json")


def _earlier_stop(log_path: str | None) -> str | None:
    """The error an earlier attempt of this job in this run stopped with, else None."""
    if not log_path:
        return None
    try:
        note = json.loads(_stopped_note(log_path).read_text())
    except (OSError, ValueError):
        return None
    run = _run_start(log_path)
    return note.get("error") if run is not None and note.get("run") == run else None


@contextmanager
def rule_logging(snakemake):
    """Send logging and stderr of a script job to its ``log:`` file (the snakemake-workflows
    way); see the module notes for the jobs it does not run again."""
    path = snakemake.log[0] if snakemake.log else None
    earlier = _earlier_stop(path)
    fh = open(path, "w") if path else sys.stderr  # noqa: SIM115
    old_stderr = sys.stderr
    sys.stderr = fh
    logging.basicConfig(
        stream=fh,
        level=logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        force=True,
    )
    log = logging.getLogger(f"clipsift.{snakemake.rule}")
    try:
        if earlier:
            raise NotRetried(
                f"an earlier attempt of this job in this run stopped with {earlier}; a retry "
                "would stop the same way, so it is not tried again (the next run tries it)"
            )
        yield log
    except Exception as exc:
        log.exception("job failed")
        if path and _final(exc):
            note = {"run": _run_start(path), "error": f"{type(exc).__name__}: {exc}"}
            _stopped_note(path).write_text(json.dumps(note))
        raise
    else:
        if path:
            _stopped_note(path).unlink(missing_ok=True)
    finally:
        sys.stderr = old_stderr
        if path:
            fh.close()


def results_dir(snakemake):
    """The results folder, derived from the job's shard paths (``{results}/shards/{shard}/...``)."""
    files = [*snakemake.output, *snakemake.input]
    for f in files:
        parts = Path(f).parts
        if "shards" in parts:  # the last one: results may itself sit under a "shards" folder
            return Path(*parts[: len(parts) - 1 - parts[::-1].index("shards")])
    raise ValueError("no shard path among the job's files")


def import_from_checkout(basedir: str) -> None:
    """Put the workflow's folder first on the jobs' PYTHONPATH (inherited by every job this
    process starts), so that they import clipsift from it whatever environment runs them."""
    parts = [basedir, *filter(None, os.environ.get("PYTHONPATH", "").split(os.pathsep))]
    os.environ["PYTHONPATH"] = os.pathsep.join(dict.fromkeys(parts))
