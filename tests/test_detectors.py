"""The scan's ``adaptive`` detector is PySceneDetect's AdaptiveDetector computed in clipsift: on
the same frames it gives the same frame scores and the same cuts, for every option."""

from __future__ import annotations

import pytest

from clipsift.io.decode import iter_frames
from clipsift.sample import Segment, render_video
from clipsift.split.detectors import MIN_SCENE_LEN, AdaptiveDetector, PySceneDetector

scenedetect = pytest.importorskip("scenedetect")


@pytest.fixture(scope="module")
def frames(tmp_path_factory):
    """160-px BGR frames of a video with hard cuts, a fast pan, a flash, a fade and a dissolve
    (what makes the ratio and the content floor matter), as the scan hands them over."""
    path = tmp_path_factory.mktemp("det") / "v.mp4"
    plan = [
        Segment(20, seed=1, pan=(6.0, 1.0)),
        Segment(14, seed=2, flashes=(6,)),
        Segment(18, seed=3, fade_out=8),
        Segment(16, seed=4, fade_in=6, pan=(-2.0, 0.0)),
        Segment(20, seed=5, dissolve=10),
        Segment(5, seed=6),  # a shot of 5 frames between two cuts
        Segment(15, seed=7, rotate=3.0),
    ]
    render_video(path, plan, fps=30, size=(320, 180))
    return [fr.bgr(160) for fr in iter_frames(path)]


@pytest.mark.parametrize(
    "options",
    [
        {},
        {"adaptive_threshold": 1.5, "min_content_val": 4.0},
        {"window_width": 1},
        {"window_width": 3, "adaptive_threshold": 2.0},
        {"luma_only": True, "min_content_val": 8.0},
    ],
)
def test_same_scores_and_cuts_as_pyscenedetect(frames, options):
    ours = AdaptiveDetector(**options)
    theirs = scenedetect.AdaptiveDetector(min_scene_len=MIN_SCENE_LEN, **options)
    stats = scenedetect.StatsManager()  # records each frame's content_val
    theirs.stats_manager = stats
    wrapped = PySceneDetector(theirs, 30.0)
    for i, bgr in enumerate(frames):
        ours.push(i, bgr)
        wrapped.push(i, bgr)
    tc = wrapped._tc
    key = scenedetect.ContentDetector.FRAME_SCORE_KEY
    expected = [stats.get_metrics(tc(i), [key])[0] for i in range(1, len(frames))]
    assert ours.scores[1:] == expected  # bit for bit, not approximately
    assert ours.finish(len(frames)) == wrapped.finish(len(frames))
    # the video's cuts are found (so the comparison is not between two empty lists)
    assert len(ours.cuts()) >= 3, ours.cuts()


def test_window_width_must_be_positive():
    with pytest.raises(ValueError, match="window_width"):
        AdaptiveDetector(window_width=0)
