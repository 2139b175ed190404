"""Glue for the thin ``script:`` entry points: logging into the rule's log file, and no
retry of a job that stopped on a cause a retry does not fix.

The workflow profile retries a failed job (``restart-times: 2``) for what a retry does fix: a
job killed for memory or time gets more of both. A job that stopped itself because most of its
clips failed (:class:`clipsift.failures.StageFailed`) or its source is wrong
(:class:`clipsift.sources.SourceError`) stops again, after redoing its work: under SLURM, two
more GPU jobs with twice and three times the memory. So such a stop leaves a note beside the
job's log (``.stopped.json``, with the run's start, :func:`clipsift.runlock.last_start`), and a
later attempt of the same run fails at once with that error. Snakemake removes a failed job's
log before its next attempt, so the note keeps the first attempt's log, and the retry writes it
back before its own line. The next run tries again.
``SourceUnavailable`` (cannot fetch now) is retried as before.
"""

from __future__ import annotations

import json
import logging
import os
import sys
from contextlib import contextmanager, suppress
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


SAVED_LOG = 1 << 20  # the first attempt's log kept in the note: its last MiB


def _earlier_stop(log_path: str | None) -> dict | None:
    """The note of an earlier attempt of this job in this run that stopped (its ``error`` and
    ``log``), else None."""
    if not log_path:
        return None
    try:
        note = json.loads(_stopped_note(log_path).read_text())
    except (OSError, ValueError):
        return None
    run = _run_start(log_path)
    return note if run is not None and note.get("run") == run and note.get("error") else None


@contextmanager
def rule_logging(snakemake):
    """Send logging and stderr of a script job to its ``log:`` file (the snakemake-workflows
    way); see the module notes for the jobs it does not run again."""
    path = snakemake.log[0] if snakemake.log else None
    earlier = _earlier_stop(path)
    fh = open(path, "w") if path else sys.stderr  # noqa: SIM115
    if earlier:
        fh.write(earlier.get("log") or "")
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
                f"an earlier attempt of this job in this run stopped with {earlier['error']} "
                "(its log is above); a retry would stop the same way, so it is not tried again "
                "(the next run tries it)"
            )
        yield log
    except Exception as exc:
        log.exception("job failed")
        if path and _final(exc):
            # a note that cannot be written (a full disk) never hides the job's own error
            with suppress(OSError):
                fh.flush()
                with open(path, "rb") as f:
                    f.seek(max(0, f.seek(0, 2) - SAVED_LOG))
                    text = f.read().decode("utf-8", "replace")
                note = {
                    "run": _run_start(path),
                    "error": f"{type(exc).__name__}: {exc}",
                    "log": text,
                }
                _stopped_note(path).write_text(json.dumps(note))
        raise
    else:
        if path:
            with suppress(OSError):
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
