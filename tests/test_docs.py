"""The docs: the site builds with no warning, links resolve, the config reference is current, and
every command block of the README and docs/ runs as a user types it.

The blocks of "Run it on your own videos", "Partial reruns" and "After a crash" run for real in
test_readme.py, "A SLURM cluster" in test_slurm.py, and `make test` is what CI runs. Every
other block needs a GPU or a model hub to run for real, so here it runs as typed with `-n`
(Snakemake's dry run) added to each `snakemake` line: the config it names must validate, the
presets must load and the jobs must plan, which is what breaks when a preset or an option
changes.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import DOC_FILES, README, REPO, project_copy, user_env

from clipsift.config import update_reference

RUN_ELSEWHERE = {"Run it on your own videos", "Partial reruns", "After a crash", "A SLURM cluster"}
FENCE = re.compile(r"^```(\w*)\n(.*?)^```", re.S | re.M)


def blocks() -> list[tuple[str, str, str]]:
    """(file, section title, text) of every bash block in the README and docs/."""
    out = []
    for path in DOC_FILES:
        text = path.read_text()
        for m in FENCE.finditer(text):
            if m[1] != "bash":
                continue
            # the nearest heading above the block, outside code
            prose = FENCE.sub("", text[: m.start()])
            title = re.findall(r"^#+ (.*?)\s*$", prose, re.M)[-1]
            out.append((path.name, title, m[2]))
    return out


def test_docs_site_builds_without_warnings(tmp_path):
    res = subprocess.run(
        [Path(sys.executable).parent / "mkdocs", "build", "--strict", "-d", str(tmp_path / "site")],
        cwd=REPO, capture_output=True, text=True,
    )  # fmt: skip
    assert res.returncode == 0, res.stderr[-3000:]
    assert (tmp_path / "site" / "config" / "index.html").exists()


def test_every_doc_page_is_in_the_nav():
    import yaml

    nav = yaml.safe_load((REPO / "mkdocs.yml").read_text())["nav"]
    listed = {page for entry in nav for page in entry.values()}
    assert listed == {p.name for p in (REPO / "docs").glob("*.md")}


def test_readme_is_short_and_its_links_resolve():
    text = README.read_text()
    assert len(text.splitlines()) <= 250
    links = re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", FENCE.sub("", text))
    local = [ln for ln in links if not ln.startswith(("http://", "https://"))]
    assert local, "the README links to no page"
    missing = [ln for ln in local if not (REPO / ln).exists()]
    assert not missing, missing


def test_the_readmes_threshold_migration_holds():
    """The README's YAML block is a valid config section, and the per-frame threshold in its
    comment stops the run naming the new column; its bounds times the frame rate the README
    names are the new bounds."""
    import yaml

    from clipsift.config import ConfigError, load_config
    from clipsift.selection import ThresholdError, check_thresholds

    text = README.read_text()
    (block,) = [m[2] for m in FENCE.finditer(text) if m[1] == "yaml" and "_per_s" in m[2]]
    section = yaml.safe_load(block)["select"]
    config = load_config(REPO / "config" / "config.yaml", {"select": section})
    check_thresholds(config)  # the new name is measured by the default config
    ((new_col, bounds),) = section["thresholds"].items()
    old_col, old = re.search(r"# was ([\w.]+): (\{.*\})", block).groups()
    old = yaml.safe_load(old)
    rate = float(re.search(r"tuned at \((\d+) here\)", text)[1])
    assert old_col + "_per_s" == new_col
    assert {k: v * rate for k, v in old.items()} == pytest.approx({k: bounds[k] for k in old})
    config = load_config(
        REPO / "config" / "config.yaml", {"select": {"thresholds": {old_col: old}}}
    )
    with pytest.raises(ThresholdError, match=re.escape(repr(new_col))):
        check_thresholds(config)
    # the removed scan option, and what the README says replaces it
    removed, instead = re.search(r"`(scan\.\w+)` is gone .*?use\s+`([\w.]+)`", text, re.S).groups()
    with pytest.raises(ConfigError, match=re.escape(instead)):
        load_config(REPO / "config" / "config.yaml", {"scan": {removed.split(".")[1]: 15}})


def test_config_reference_is_current(tmp_path):
    copy = tmp_path / "config.md"
    shutil.copy(REPO / "docs" / "config.md", copy)
    assert not update_reference(copy), "run: clipsift config-doc --write docs/config.md"


def test_the_command_blocks_are_all_found():
    titles = [t for _, t, _ in blocks()]
    assert set(titles) >= RUN_ELSEWHERE, set(titles)
    assert "The two commands" in titles


def dry(line: str) -> str:
    """The line as typed, with Snakemake's dry-run flag added to a snakemake command."""
    code, _, comment = line.partition(" #")
    if code.strip().startswith("snakemake "):
        return code.rstrip() + " -n"
    return code


DRY_RUN = [b for b in blocks() if b[1] not in RUN_ELSEWHERE | {"The two commands"}]


@pytest.mark.slow
@pytest.mark.parametrize("page,title,text", DRY_RUN, ids=[f"{p}:{t[:30]}" for p, t, _ in DRY_RUN])
def test_command_block_plans_as_typed(tmp_path, sample_set, page, title, text):
    project = project_copy(tmp_path / "clipsift", sample_set.dir)
    (project / "prompts").mkdir()
    (project / "prompts" / "prompts.txt").write_text("a red ball rolls\na cat sleeps\n")
    script = "set -euo pipefail\n" + "\n".join(dry(ln) for ln in text.splitlines())
    res = subprocess.run(
        ["bash", "-c", script], cwd=project, env=user_env(), capture_output=True, text=True,
        timeout=600,
    )  # fmt: skip
    out = res.stdout + res.stderr
    assert res.returncode == 0, f"{page}, {title}:\n{script}\n{out[-4000:]}"
    assert "This was a dry-run" in out, out[-2000:]


@pytest.mark.slow
def test_make_demo_as_typed(tmp_path, sample_set):
    """`make demo` in a fresh copy whose environment is installed: the pipeline on the sample, then
    the status (the install step is what `.ci/run` does from a clean clone)."""
    project = project_copy(tmp_path / "clipsift", sample_set.dir)
    venv = project / ".venv"
    venv.mkdir()
    for part in ("bin", "lib", "lib64", "include", "pyvenv.cfg"):
        if (REPO / ".venv" / part).exists():
            (venv / part).symlink_to(REPO / ".venv" / part)
    (venv / ".installed").write_text("cpu\n")  # newer than the lock: make installs nothing
    (project / "sample" / "videos" / "ground_truth.json").touch()
    lines = [ln.split("#")[0].strip() for ln in blocks()[0][2].splitlines()]
    assert lines[0] == "make demo"
    res = subprocess.run(
        ["bash", "-c", lines[0]], cwd=project, env=user_env(), capture_output=True, text=True,
        timeout=1200,
    )  # fmt: skip
    out = res.stdout + res.stderr
    assert res.returncode == 0, out[-4000:]
    assert "python3 -m venv" not in out, "make reinstalled the environment"
    assert (project / "results" / "dataset" / "metadata.parquet").exists()
    assert "| scan | 2/2 |" in out and "run: none active" in out, out[-2000:]
