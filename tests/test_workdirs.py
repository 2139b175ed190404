"""The record of which working folder built a results folder (clipsift/workdirs.py): what a
command line forces, and which runs count as whole. The stop itself, as a user meets it, is
test_readme.py's test_a_config_change_from_another_working_folder_is_not_silently_ignored."""

from __future__ import annotations

import json
import os
from base64 import urlsafe_b64encode

import pytest
from snakemake.settings.types import DAGSettings

from clipsift.workdirs import STAGE_OUTPUTS, _command, forced, has_record, whole_run


@pytest.mark.parametrize(
    "args, says",
    [
        (["--forcerun", "select"], True),
        (["-R", "select"], True),
        (["-Rselect"], True),  # argparse's joined form
        (["--forcer", "select"], True),  # and its unique prefixes
        (["--forcerun=select"], True),
        (["-F"], True),
        (["-nR", "select"], True),  # after flags that take no value (review: a needless stop)
        (["-pkF"], True),
        (["-cF"], False),  # a value of -c, not a flag
        (["-qR"], False),  # -q takes values: R is one
        (["--forceall"], True),
        (["-f"], False),  # forces the targets only: the default one, rule all, redoes nothing
        (["--force"], False),
        (["--cores", "all", "-n"], False),
        (["--rerun-incomplete"], False),
    ],
)
def test_what_a_command_line_forces(args, says):
    assert forced(["snakemake", *args]) is says


def test_only_the_whole_default_target_is_a_build_on_record():
    assert whole_run(DAGSettings())
    assert whole_run(DAGSettings(targets=frozenset({"all"})))
    assert not whole_run(DAGSettings(targets=frozenset({"results/shards/a/scores.parquet"})))
    assert not whole_run(DAGSettings(until=frozenset({"split"})))
    assert not whole_run(DAGSettings(omit_from=frozenset({"export"})))
    assert not whole_run(DAGSettings(allowed_rules=frozenset({"scan"})))


def _record(workdir, output: str, endtime: float) -> None:
    """Snakemake's file record of ``output``, as its file persistence writes it."""
    key = urlsafe_b64encode(output.encode()).decode()
    path = workdir / ".snakemake" / "metadata" / key
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"rule": "x", "endtime": endtime}))


def test_a_folder_is_trusted_only_with_current_records_of_every_shards_stages(
    tmp_path, monkeypatch
):
    """A folder that re-ingested one shard and rebuilt the dataset held records of that shard
    only, and was trusted for every shard (second review): a scan change there reran shard 0
    alone."""
    monkeypatch.chdir(tmp_path)
    plan = {"shards": [{"name": "s-0", "items": 1}, {"name": "s-1", "items": 1}]}
    (tmp_path / "results" / "plan").mkdir(parents=True)
    (tmp_path / "results" / "plan" / "shards.json").write_text(json.dumps(plan))
    outputs = ["results/dataset/metadata.parquet"] + [
        f"results/shards/{s}/{name}" for s in ("s-0", "s-1") for name in STAGE_OUTPUTS
    ]
    for out in outputs:
        (tmp_path / out).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / out).write_bytes(b"x")
    assert not has_record(tmp_path, "results")  # no .snakemake at all
    for out in outputs:
        if "s-1" not in out:
            _record(tmp_path, out, os.stat(out).st_mtime)
    assert not has_record(tmp_path, "results")  # shard s-1 unseen here
    for out in outputs:
        _record(tmp_path, out, os.stat(out).st_mtime)
    assert has_record(tmp_path, "results")
    later = os.stat(outputs[3]).st_mtime + 5
    os.utime(outputs[3], (later, later))  # rebuilt from another folder since
    assert not has_record(tmp_path, "results")


def test_the_suggested_commands_repeat_the_users_command_line():
    """Copied without the user's config files, a suggestion ran the default config (a tryout);
    ``python -m snakemake`` is the same command, and a dry run's ``-n`` would make the
    suggestion do nothing (review)."""
    line = ["--cores", "4", "--configfile", "my file.yaml", "-n"]
    for exe in ("/venv/bin/snakemake", "/venv/lib/python3.11/site-packages/snakemake/__main__.py"):
        assert _command([exe, *line]) == "snakemake --cores 4 --configfile 'my file.yaml'"
    assert _command(["/usr/bin/pytest", "-k", "x"]) == "snakemake --cores all"  # the API
