"""The hashed locks (requirements/*.lock.txt) are complete, consistent and what is installed."""

from __future__ import annotations

import re
import sys

import pytest
import tomllib
from helpers import REPO

sys.path.insert(0, str(REPO / "requirements"))
import conda_env  # noqa: E402

from clipsift.provenance import lock_record  # noqa: E402

LOCKS = {name: REPO / "requirements" / f"{name}.lock.txt" for name in ("cpu", "cuda")}


def entries(text: str) -> dict[str, tuple[str, list[str]]]:
    """name -> (version, hashes) of every requirement in a lock."""
    out = {}
    for block in re.split(r"\n(?=[A-Za-z0-9])", text):
        m = re.match(r"([A-Za-z0-9_.-]+)==(\S+)", block)
        if m:
            out[m[1].lower()] = (m[2], re.findall(r"--hash=sha256:([0-9a-f]{64})", block))
    return out


def norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


@pytest.mark.parametrize("name", sorted(LOCKS))
def test_every_requirement_is_pinned_and_hashed(name):
    text = LOCKS[name].read_text()
    locked = entries(text)
    assert locked and all(hashes for _, hashes in locked.values())
    # every requirement line is an exact pin (no ranges, no unpinned names)
    reqs = [ln for ln in text.splitlines() if ln and not ln.startswith((" ", "#"))]
    assert all("==" in ln for ln in reqs), [ln for ln in reqs if "==" not in ln]
    # one OpenCV package only (rapidocr's opencv-python is left out; the headless one serves)
    assert [n for n in locked if n.startswith("opencv")] == ["opencv-python-headless"]
    # torch: the CPU build in the CPU lock, PyPI's (CUDA) build in the other, same release
    torch = locked["torch"][0]
    assert torch == ("2.13.0+cpu" if name == "cpu" else "2.13.0")
    assert not any(n.startswith("nvidia-") for n in locked) or name == "cuda"
    # everything pyproject.toml asks for (core, models, dev, slurm) is in the lock
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    wanted = list(project["dependencies"])
    for extra in ("models", "dev", "slurm"):
        wanted += project["optional-dependencies"][extra]
    names = {norm(re.split(r"[<>=!~\[; ]", w)[0]) for w in wanted}
    assert names - {norm(n) for n in locked} == set()


def test_conda_env_has_the_lock_versions():
    env = (REPO / "envs" / "clipsift.yaml").read_text()
    assert env == conda_env.render(), "envs/clipsift.yaml is stale: run `make lock`"
    assert "-e " not in env and ".." not in env  # nothing relative to where conda runs it
    cuda = entries(LOCKS["cuda"].read_text())
    pins = dict(re.findall(r"- ([A-Za-z0-9_.-]+)==(\S+)", env))
    assert (
        pins["torch"] == cuda["torch"][0]
        and pins["opencv-python"] == cuda["opencv-python-headless"][0]
    )
    assert "opencv-python-headless" not in pins


def test_this_environment_is_the_lock():
    """What provenance.json records: the lock installed, and no package that differs from it."""
    rec = lock_record()
    assert rec is not None and rec["file"] in {f"requirements/{n}.lock.txt" for n in LOCKS}
    assert rec["differs"] == {}, rec["differs"]
