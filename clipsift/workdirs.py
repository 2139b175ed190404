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
import re
import shlex
from base64 import urlsafe_b64encode
from pathlib import Path

from .io.atomic import write_json
from .provenance import build_config, config_hash

RECORD = Path(".clipsift") / "built.json"
# the options that say what to redo (``-Rselect``, ``--forcer``, ``-nR``: argparse's forms too,
# after any of Snakemake's short flags that take no value); the Snakefile sees the command line
# before Snakemake's own settings. ``-f`` forces only the targets (the default one, rule all,
# redoes nothing)
FORCING = re.compile(r"^-[ntkfFlSDvpa]*[RF]|^--force(?:r|ru|run|a|al|all)(?:=|$)")
# one output of each stage of every shard, and the dataset: Snakemake's record of each, here,
# shows that this folder saw every job a config change may redo (a small read per output:
# less than the source check's stat per video)
STAGE_OUTPUTS = ("source.parquet", "scan/scenes.parquet", "clips.parquet", "scores.parquet",
                 "selection.parquet")  # fmt: skip


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


def whole_run(dag_settings) -> bool:
    """Whether a run's settings name the default target, all of it (no targets but ``all``, no
    ``--until``, ``--omit-from``, ``--batch`` or ``--allowed-rules``)."""
    ds = dag_settings
    return (
        set(ds.targets) <= {"all"}
        and not (ds.until or ds.omit_from or ds.allowed_rules)
        and ds.batch is None
    )


def forced(argv: list[str]) -> bool:
    """Whether the command line says what to redo (``--forcerun``, ``--forceall``)."""
    return any(FORCING.match(a) for a in argv[1:])


def has_record(workdir: str | os.PathLike, results: str) -> bool:
    """Whether Snakemake keeps, in ``workdir``, its record of what ``results`` (as the config
    names it) holds now: its file persistence's record (``.snakemake/metadata``, keyed by the
    output's path in base64) of one output of every stage of every shard (``STAGE_OUTPUTS``,
    those that exist) and of the dataset's metadata, each made when the file now there was
    (the record's ``endtime`` is the output's mtime, read on one clock). A copy or move of the
    working folder with its results keeps them (relative paths, mtimes kept); a build from
    another folder since makes them older than the files, a run from a new folder that forced
    only the selection leaves no record of the scan, and one that re-ingested one shard none
    of the others' (reviews)."""
    meta = Path(workdir) / ".snakemake" / "metadata"
    if not meta.is_dir():
        return False
    outputs = [f"{results}/dataset/metadata.parquet"]
    try:
        plan = json.loads((Path(results) / "plan" / "shards.json").read_text())["shards"]
        shards = [s["name"] for s in plan]
    except (OSError, ValueError, KeyError, TypeError):
        shards = []
    outputs += [f"{results}/shards/{shard}/{name}" for shard in shards for name in STAGE_OUTPUTS]
    most = max(2, (os.pathconf(meta, "PC_NAME_MAX") if os.name == "posix" else 255) or 255) - 1
    for output in outputs:
        try:
            mtime = os.stat(output).st_mtime
        except OSError:
            continue  # a stage that is off, or not run yet
        key = urlsafe_b64encode(output.encode()).decode()
        parts = [key[i : i + most] for i in range(0, len(key), most)]
        record = meta.joinpath(*(["@" + p for p in parts[:-1]] + parts[-1:]))
        try:
            made = float(json.loads(record.read_text())["endtime"])
        except (OSError, ValueError, KeyError, TypeError):
            return False
        if abs(made - mtime) > 0.01:
            return False
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
    if built.get("config_sha256") == config_digest(config) or forced(argv):
        return  # the cheap tests first: this one runs at every parse of the Snakefile
    here = os.getcwd()
    if has_record(here, results):
        return  # Snakemake's own record is here: its params trigger sees the change
    where = built.get("workdir", "another folder")
    why = "this folder keeps no record of its jobs" if where == here else f"this run is from {here}"
    again = _command(argv)
    raise BuiltElsewhere(
        f"clipsift: {results} was built from {where} ({built.get('finished', '?')}) with "
        f"another config, and {why}. Snakemake keeps the settings each job ran with in the "
        "working folder's .snakemake/, so from here it cannot tell what the change affects: it "
        "would keep the outputs made with the old config, and provenance would record the new "
        f"one. Either run from {where}, or say here what to redo, e.g.\n"
        f"  {again} --forcerun select  # a select threshold\n"
        f"  {again} --forcerun split  # a split option\n"
        f"  {again} --forcerun scan  # a scan option (all after the scan too)\n"
        f"  {again} --forcerun provenance  # a change that redoes nothing\n"
        "(docs/scaling.md, 'Partial reruns')."
    )


DRY_RUN = {"-n", "--dry-run", "--dryrun", "--just-print"}  # a suggestion that runs


def _command(argv: list[str]) -> str:
    """The user's snakemake command line, for the commands suggested: without its config files
    a copied suggestion ran the default config on another results folder (a tryout). Through
    the API (no snakemake command line), the plain one."""
    exe = Path(argv[0]) if argv else Path()
    if not (exe.name == "snakemake" or exe.parent.name == "snakemake"):  # or python -m snakemake
        return "snakemake --cores all"
    return shlex.join(["snakemake", *(a for a in argv[1:] if a not in DRY_RUN)])
