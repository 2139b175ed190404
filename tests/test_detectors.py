"""The scan's ``adaptive`` detector is PySceneDetect's AdaptiveDetector computed in clipsift: on
the same frames it gives the same frame scores and the same cuts, for every option; its aligned
difference adds the cuts between fast pans over texture that PySceneDetect misses, and no other;
and it judges the frames near either end, which PySceneDetect does not."""

from __future__ import annotations

import numpy as np
import pytest

from clipsift.config import validate_config
from clipsift.io.decode import iter_frames
from clipsift.sample import Segment, render_video
from clipsift.split.detectors import MIN_SCENE_LEN, AdaptiveDetector, PySceneDetector
from clipsift.split.scan import scan_video

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
        # the aligned difference adds no cut on pans, a flash, a fade, a dissolve or a turn
        {"aligned_ratio": 4.0},
    ],
)
def test_same_scores_and_cuts_as_pyscenedetect(frames, options):
    ours = AdaptiveDetector(**options, edges=False, held=False)
    theirs = scenedetect.AdaptiveDetector(
        min_scene_len=MIN_SCENE_LEN, **{k: v for k, v in options.items() if "aligned" not in k}
    )
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


@pytest.mark.parametrize(
    "texture, bars, pans",
    [
        ("fractal", (0, 0), ((4.0, 0), (0, -3.0))),
        ("foliage", (0, 0), ((4.0, 0), (0, -3.0))),
        ("stone", (0, 0), ((4.0, 0), (0, -3.0))),
        # letterboxed: the bars stay put while the picture pans (found only with them left out)
        ("foliage", (30, 0), ((1.0, 4.0), (0, -4.0))),
    ],
)
def test_a_cut_between_fast_pans_over_texture_is_found(tmp_path, texture, bars, pans):
    """Two shots panning fast over fine texture, one cut (the tryout's 720x480 footage missed
    one so): every frame's content score is high, so the cut's ratio stays under 3 and
    PySceneDetect's rule alone makes one scene of both; aligned, the pans' frames match and the
    cut's do not. Through the scan with the schema defaults."""
    path = tmp_path / f"{texture}.mp4"
    plan = [
        Segment(40, seed=3, texture=texture, pan=pans[0], noise=2.0, letterbox=bars),
        Segment(40, seed=4, texture=texture, pan=pans[1], noise=2.0, letterbox=bars),
    ]
    render_video(path, plan, fps=30, size=(320, 180))
    cfg = validate_config({"sources": [{"name": "s", "type": "folder", "path": "."}]})["scan"]

    def scenes(scan):
        return [(s["start_frame"], s["end_frame"]) for s in scan_video(str(path), "v", 30, scan)[0]]

    assert cfg["adaptive"]["aligned_ratio"] is not None  # on by default
    assert scenes(cfg) == [(0, 40), (40, 80)]
    off = cfg | {"adaptive": cfg["adaptive"] | {"aligned_ratio": None}}
    assert scenes(off) == [(0, 80)]  # what PySceneDetect's rule alone gives


@pytest.mark.parametrize(
    "plan, expected",
    [
        # a video that starts with a frame of another shot, or ends with one or two (a cut by
        # time, off the shot's own cut): PySceneDetect's rule never judges those frames
        ([Segment(1, seed=1, pan=(2, 0)), Segment(60, seed=3, pan=(2, 0))], [(0, 1), (1, 61)]),
        ([Segment(60, seed=3, pan=(2, 0)), Segment(1, seed=1, pan=(2, 0))], [(0, 60), (60, 61)]),
        ([Segment(60, seed=3, pan=(2, 0)), Segment(2, seed=1, pan=(2, 0))], [(0, 60), (60, 62)]),
        # the aligned difference too, between fast pans over texture
        (
            [Segment(40, seed=3, texture="stone", pan=(4, 0), noise=2.0),
             Segment(1, seed=4, texture="stone", pan=(0, -3), noise=2.0)],
            [(0, 40), (40, 41)],
        ),
        # animation on twos from the first frame: the first frame's 0 (it has no previous frame)
        # among the third frame's neighbours put a cut there
        ([Segment(48, seed=3, pan=(8, 0), hold=(2,))], [(0, 48)]),
        ([Segment(48, seed=3, pan=(4, 0), hold=(2,), texture="foliage")], [(0, 48)]),
    ],
)  # fmt: skip
def test_the_frames_near_either_end_are_judged(tmp_path, plan, expected):
    path = tmp_path / "v.mp4"
    render_video(path, plan, fps=24, size=(320, 180))
    cfg = validate_config({"sources": [{"name": "s", "type": "folder", "path": "."}]})["scan"]
    scenes = scan_video(str(path), "v", 24, cfg)[0]
    assert [(s["start_frame"], s["end_frame"]) for s in scenes] == expected

    # PySceneDetect's rule, on the same frames, misses each of these
    det = AdaptiveDetector(aligned_ratio=cfg["adaptive"]["aligned_ratio"], edges=False, held=False)
    frames = [fr.bgr(cfg["detector_width"]) for fr in iter_frames(path)]
    for i, bgr in enumerate(frames):
        det.push(i, bgr)
    assert det.finish(len(frames)) != expected


@pytest.mark.parametrize("px", [1.0, 3.0])
@pytest.mark.parametrize("hold", [(2,), (3,), (4,), (2, 3)], ids=["twos", "threes", "fours", "3:2"])
def test_held_pictures_are_cut_where_the_shot_changes_only(tmp_path, hold, px):
    """Animation on twos, threes or fours and 24-fps film at 60 fps (3:2 pulldown: pictures
    held 2 and 3 frames in turn), panning 1 or 3 px a frame, cut once: each change of picture
    stood 16-31 levels over held frames that score 0-1.7, and a shot on threes was cut at every
    drawing (21-47 scenes of 2-3 frames, too short to keep). Neighbours are the changes of
    picture now; PySceneDetect's rule (``held=False``) still cuts all but the twos."""
    path = tmp_path / "v.mp4"
    plan = [Segment(60, seed=801, pan=(px, 0), hold=hold),
            Segment(60, seed=802, pan=(0, px), hold=hold)]  # fmt: skip
    render_video(path, plan, fps=24, size=(320, 180))
    cfg = validate_config({"sources": [{"name": "s", "type": "folder", "path": "."}]})["scan"]
    scenes = scan_video(str(path), "v", 24, cfg)[0]
    assert [(s["start_frame"], s["end_frame"]) for s in scenes] == [(0, 60), (60, 120)]

    det = AdaptiveDetector(aligned_ratio=cfg["adaptive"]["aligned_ratio"], held=False)
    frames = [fr.bgr(cfg["detector_width"]) for fr in iter_frames(path)]
    for i, bgr in enumerate(frames):
        det.push(i, bgr)
    assert (len(det.finish(len(frames))) > 2) == (max(hold) >= 3)


@pytest.mark.parametrize(
    ("hold", "px", "texture", "seed"),
    [(2, 4.0, "foliage", 900), (2, 6.0, "foliage", 900), (2, 8.0, "fabric", 900),
     (2, 8.0, "fabric", 910), (3, 4.0, "fabric", 900)],
)  # fmt: skip
def test_cuts_between_fast_pans_of_held_pictures_over_texture(tmp_path, hold, px, texture, seed):
    """Three shots on twos (or threes) panning 4-8 px a frame over foliage or a weave (a
    drawing's step of 8-24 px at 320 px), joined by hard cuts: aligned, each change of drawing
    left 9-12 levels of residual (the shift's interpolation blurs one frame and not the other),
    the cuts stood only 3.2-4.0 times above it, and one clip held two shots (9 of a sweep of
    96 such videos). Both frames are smoothed before they are compared now. On
    threes, the held frames beside a shot's last drawing (no cadence of changes on that side)
    stood in for its steps with their zeros, and a change of drawing read as a cut."""
    path = tmp_path / "v.mp4"
    plan = [Segment(40, seed=seed, pan=(px, 0), hold=(hold,), texture=texture),
            Segment(40, seed=seed + 1, pan=(-px, px / 2), hold=(hold,), texture=texture),
            Segment(40, seed=seed + 2, pan=(0, -px), hold=(hold,), texture=texture)]  # fmt: skip
    render_video(path, plan, fps=24, size=(320, 180))
    cfg = validate_config({"sources": [{"name": "s", "type": "folder", "path": "."}]})["scan"]
    scenes = [(s["start_frame"], s["end_frame"]) for s in scan_video(str(path), "v", 24, cfg)[0]]
    # on threes a shot's last drawing is shown once (40 frames): it may be left out
    assert len(scenes) == 3, scenes
    for (a, b), (ta, tb) in zip(scenes, [(0, 40), (40, 80), (80, 120)], strict=True):
        assert a == ta and tb - (hold - 2) <= b <= tb, scenes


def test_a_weave_panning_fast_in_3_2_cadence_is_one_shot(tmp_path):
    """Fabric panning 6 px a frame, its pictures held 3 and 2 frames in turn: phase correlation
    locked onto a wrong shift at one change of picture (frame 70, aligned 4.0 levels against
    0.9 for its neighbours once both frames are smoothed), which read as a cut 2 frames before
    the end. A neighbour's shift is tried too: a pan's frames share one, two shots none."""
    path = tmp_path / "v.mp4"
    render_video(path, [Segment(72, seed=514, pan=(6.0, 2.0), texture="fabric", hold=(3, 2))],
                 fps=30, size=(320, 180))  # fmt: skip
    cfg = validate_config({"sources": [{"name": "s", "type": "folder", "path": "."}]})["scan"]
    scenes = scan_video(str(path), "v", 30, cfg)[0]
    assert [(s["start_frame"], s["end_frame"]) for s in scenes] == [(0, 72)]


def test_a_video_too_short_for_a_window_has_no_cut():
    rng = np.random.default_rng(0)
    for n in (1, 2):
        det = AdaptiveDetector()
        for i in range(n):
            det.push(i, rng.integers(0, 256, (90, 160, 3), dtype=np.uint8))
        assert det.finish(n) == [(0, n)]
