"""The record of which working folder built a results folder (clipsift/workdirs.py): what a
command line forces, and which runs count as whole. The stop itself, as a user meets it, is
test_readme.py's test_a_config_change_from_another_working_folder_is_not_silently_ignored."""

from __future__ import annotations

import pytest
from snakemake.settings.types import DAGSettings

from clipsift.workdirs import forced, whole_run


@pytest.mark.parametrize(
    "args, says",
    [
        (["--forcerun", "select"], True),
        (["-R", "select"], True),
        (["-Rselect"], True),  # argparse's joined form
        (["--forcer", "select"], True),  # and its unique prefixes
        (["--forcerun=select"], True),
        (["-F"], True),
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
