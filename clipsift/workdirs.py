"""Which working folder built a results folder, and with which config.

Snakemake decides that a changed config reruns a job by the settings it recorded when the job ran
(its params rerun trigger), and it keeps that record in the working folder
(``.snakemake/metadata``), not with the outputs. A run from another working folder (a second
checkout on shared storage, a fresh clone) or after ``.snakemake`` was removed has no record of
the outputs, so it never compares: a changed select threshold gave "Nothing to be done", the
dataset kept the old selection, and provenance recorded the new config (tryout 16).

So a run that built the default target records, in the results folder, the working folder it ran
from and its config's digest (``.clipsift/built.json``). A later run from a folder that holds no
record of the dataset as it is now (:func:`has_record`) stops when the config differs, unless
it forces what to redo (``--forcerun``, ``--forceall``: read from the command line, which the
Snakefile sees before Snakemake's own settings), and says how to go on. Only the default file
persistence can be looked at: with ``--persistence-backend db`` nothing is checked.
"""

from __future__ import annotations

import datetime as dt
import json
import os
from base64 import urlsafe_b64encode
from pathlib import Path

from .io.atomic import write_json
from .provenance import build_config, config_hash

RECORD = Path(".clipsift") / "built.json"
# the command-line options that say what to redo: the run then knows what it changes
FORCING = ("-R", "--forcerun", "-F", "--forceall", "-f", "--force")


class BuiltElsewhere(RuntimeError):
    pass


def config_digest(config: dict) -> str:
    """The digest provenance records (``config_sha256``): the config less where it goes."""
    return config_hash(build_config(config))


def record_build(results: str | os.PathLike, config: dict) -> None:
    """Note that the working folder of this process built ``results`` with ``config``."""
    write_json(
        Path(results) / RECORD,
        {
            "workdir": os.getcwd(),
            "config_sha256": config_digest(config),
            "finished": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        },
    )


def has_record(workdir: str | os.PathLike, results: str) -> bool:
    """Whether Snakemake keeps, in ``workdir``, its record of the dataset that ``results`` (as
    the config names it) holds now: its file persistence's record of ``{results}/dataset/
    metadata.parquet`` (``.snakemake/metadata``, keyed by the output's path in base64), written
    after that file was. A copy or move of the working folder with its results keeps it
    (relative paths, mtimes kept); a build from another folder since makes it older than the
    file."""
    meta = Path(workdir) / ".snakemake" / "metadata"
    if not meta.is_dir():
        return False
    output = f"{results}/dataset/metadata.parquet"
    key = urlsafe_b64encode(output.encode()).decode()
    most = max(2, (os.pathconf(meta, "PC_NAME_MAX") if os.name == "posix" else 255) or 255) - 1
    parts = [key[i : i + most] for i in range(0, len(key), most)]
    record = meta.joinpath(*(["@" + p for p in parts[:-1]] + parts[-1:]))
    try:
        made = record.stat().st_mtime
    except OSError:
        return False
    try:
        return made >= Path(output).stat().st_mtime - 1.0
    except OSError:
        return True


def check_workdir(results: str, config: dict, argv: list[str], file_records: bool = True) -> None:
    """Raise :class:`BuiltElsewhere` when ``results`` was built with another config and this
    working folder holds no record of it (see the module). ``file_records``: Snakemake keeps its
    records as files (its default persistence; with a database this check cannot look, and
    does not stop a run)."""
    if not file_records:
        return
    path = Path(results) / RECORD
    try:
        built = json.loads(path.read_text())
    except (OSError, ValueError):
        return  # never built by a clipsift that records it
    here = os.getcwd()
    if has_record(here, results):
        return  # Snakemake's own record is here: its params trigger sees the change
    if built.get("config_sha256") == config_digest(config):
        return
    if any(a in FORCING or a.startswith(("--forcerun=", "--forceall=")) for a in argv):
        return
    where = built.get("workdir", "another folder")
    why = "this folder keeps no record of its jobs" if where == here else f"this run is from {here}"
    raise BuiltElsewhere(
        f"clipsift: {results} was built from {where} ({built.get('finished', '?')}) with "
        f"another config, and {why}. Snakemake keeps the settings each job ran with in the "
        "working folder's .snakemake/, so from here it cannot tell what the change affects: it "
        "would keep the outputs made with the old config, and provenance would record the new "
        f"one. Either run from {where}, or say here what to redo, e.g.\n"
        "  snakemake --cores all --forcerun select    # a select threshold\n"
        "  snakemake --cores all --forcerun split     # a split option\n"
        "  snakemake --cores all --forcerun scan      # a scan option (all after the scan too)\n"
        "  snakemake --cores all --forcerun provenance  # a change that redoes nothing\n"
        "(docs/scaling.md, 'Partial reruns')."
    )
