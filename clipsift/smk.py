"""Glue for the thin ``script:`` entry points: logging into the rule's log file."""

from __future__ import annotations

import logging
import os
import sys
from contextlib import contextmanager


@contextmanager
def rule_logging(snakemake):
    """Send logging and stderr of a script job to its ``log:`` file (the snakemake-workflows way)."""
    path = snakemake.log[0] if snakemake.log else None
    fh = open(path, "w") if path else sys.stderr  # noqa: SIM115
    old_stderr = sys.stderr
    sys.stderr = fh
    logging.basicConfig(
        stream=fh,
        level=logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        force=True,
    )
    try:
        yield logging.getLogger(f"clipsift.{snakemake.rule}")
    except Exception:
        logging.getLogger(f"clipsift.{snakemake.rule}").exception("job failed")
        raise
    finally:
        sys.stderr = old_stderr
        if path:
            fh.close()


def results_dir(snakemake):
    """The results folder, derived from the job's shard paths (``{results}/shards/{shard}/...``)."""
    from pathlib import Path

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
