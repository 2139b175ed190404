"""Shared fixtures: the generated sample set (once per session) and tiny purpose-made videos.

Pipeline runs go through ``helpers.run_snakemake`` (re-exported here), which runs the real
Snakefile with Snakemake's Python API in a per-test working directory.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import pytest
from helpers import RunResult, run_snakemake  # noqa: F401  (re-exported for tests)

from clipsift.sample import Segment, generate_sample, render_video


@dataclass(frozen=True)
class SampleSet:
    """``generate_sample`` output: the folder and its ground truth (keys are relative paths)."""

    dir: Path
    truth: dict

    def path(self, name: str) -> Path:
        return self.dir / name


@pytest.fixture(scope="session")
def sample_set(tmp_path_factory) -> SampleSet:
    """The default sample set (640x360, 30 fps, ~50 s of video), generated once per session
    (once per xdist worker)."""
    out = tmp_path_factory.mktemp("sample")
    truth = generate_sample(out)
    assert json.loads((out / "ground_truth.json").read_text()) == json.loads(json.dumps(truth))
    return SampleSet(out, truth)


@pytest.fixture(scope="session")
def tiny_videos(tmp_path_factory) -> dict[str, Path]:
    """Small 320x180 10 fps videos, rendered once per session; do not modify them.

    - ``a``: 2 s + 2 s scenes, hard cut at frame 20;
    - ``b``: one 3 s scene, slow pan;
    - ``c``: one 1.5 s scene.
    """
    out = tmp_path_factory.mktemp("tiny")
    specs = {
        "a": [Segment(20, seed=11), Segment(20, seed=12)],
        "b": [Segment(30, seed=13, pan=(1.0, 0))],
        "c": [Segment(15, seed=14)],
    }
    paths = {}
    for name, segs in specs.items():
        paths[name] = out / f"{name}.mp4"
        render_video(paths[name], segs, fps=10, size=(320, 180))
    return paths
