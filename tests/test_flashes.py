"""Flashes through the scan and the flash filter, on rendered videos whose flash frames are known
(``Segment.flash_gain``): a flash that fades out stays inside its shot's clip and the filter
counts it, and a flash at a cut (an edit's flash cut) belongs to no clip."""

from __future__ import annotations

import pandas as pd
import pytest

from clipsift.config import validate_config
from clipsift.filters.flash import flash_shard, picture_bars
from clipsift.ingest import ingest_shard
from clipsift.painting import Segment
from clipsift.sample import render_video, true_shots
from clipsift.split.clips import scenes_to_clips
from clipsift.split.scan import scan_shard, scan_video

FPS = 30


@pytest.fixture(scope="module")
def cfg():
    return validate_config({"sources": [{"name": "s", "type": "folder", "path": "."}]})


def scenes(path, scan_cfg) -> list[tuple[int, int]]:
    return [
        (s["start_frame"], s["end_frame"]) for s in scan_video(str(path), "v", FPS, scan_cfg)[0]
    ]


# a camera flash, a flash over fine texture, lightning's two strokes: white, then fading out
FADING = {
    "flash": [Segment(90, seed=1, pan=(2, 0), flashes=(45,), flash_gain=(1.0, 0.55, 0.25, 0.1))],
    "textured": [Segment(90, seed=1, pan=(3, 1), texture="foliage", noise=2.0, flashes=(45,),
                         flash_gain=(0.9, 0.5, 0.2))],
    "lightning": [Segment(90, seed=2, pan=(0, 1), flashes=(40, 46), flash_gain=(1.0, 0.6, 0.3))],
}  # fmt: skip


@pytest.mark.parametrize("name", sorted(FADING))
def test_a_flash_that_fades_out_stays_in_its_clip_and_is_counted(tmp_path, cfg, name):
    """The scene detector cuts at such a flash and the old rule saw no flash in it: the flash
    was cut out as blank frames, or (overexposed rather than white) opened the next clip with
    ``flash.n`` 0. Now the cut is merged, the shot is one clip, and the filter counts the
    flash's frames (at the schema's max_flash_ratio 0 the clip is rejected)."""
    video = tmp_path / f"{name}.mp4"
    truth = render_video(video, FADING[name], fps=FPS, size=(320, 180))
    items = pd.DataFrame(
        [{"source": "s", "video_id": "v", "uri": str(video), "path": str(video), "caption": None}]
    )
    source = ingest_shard(items)
    found, frames, _, _ = scan_shard(source, cfg["scan"])
    assert [(r.start_frame, r.end_frame) for r in found.itertuples()] == [(0, 90)]
    clips = scenes_to_clips(found, source, cfg["split"], frames)
    rec = flash_shard(clips, frames, cfg["filters"]["flash"])[clips["clip_id"].iloc[0]]
    flagged = set(rec["flash_frames"])
    # every frame raised by more than a tenth of the way to white is counted, none other
    raised = {f for f in truth["flash_frames"] if f not in flagged}
    assert flagged <= set(truth["flash_frames"]) and len(raised) <= 2, (flagged, truth)
    assert rec["n_flash"] >= 3 and rec["flash_ratio"] > cfg["select"]["flash"]["max_flash_ratio"]

    # merge_flash_cuts off: the flash frames belong to no clip, the shot's clean frames either
    # side make clips of their own
    apart = scenes(video, cfg["scan"] | {"merge_flash_cuts": False})
    kept = {f for a, b in apart for f in range(a, b)}
    assert not kept & set(truth["flash_frames"][:2]), apart
    assert len(kept) >= 90 - len(truth["flash_frames"]) - 1 and len(apart) >= 2, apart


@pytest.mark.parametrize(
    "plan, expected",
    [
        # an edit's flash cut: B opens on two overexposed frames
        ([Segment(60, seed=1, pan=(2, 0)),
          Segment(60, seed=3, pan=(-2, 0), flashes=(0,), flash_gain=(0.7, 0.35))],
         [(0, 60), (62, 120)]),
        # ... fading out over three frames, the last 10 % of the way to white: the detector
        # cut at the first two, and the faint frames opened B's clip (62, 120)
        ([Segment(60, seed=1, pan=(2, 0)),
          Segment(60, seed=3, pan=(-2, 0), flashes=(0,), flash_gain=(0.7, 0.35, 0.1))],
         [(0, 60), (63, 120)]),
        ([Segment(60, seed=1, pan=(2, 0)),
          Segment(60, seed=3, pan=(-2, 0), flashes=(0,), flash_gain=(0.9, 0.5, 0.2, 0.1))],
         [(0, 60), (64, 120)]),
        # A's last frame overexposed, then the cut
        ([Segment(60, seed=1, pan=(2, 0), flashes=(59,), flash_gain=(0.6,)),
          Segment(60, seed=3, pan=(-2, 0))],
         [(0, 59), (60, 120)]),
        # letterboxed (a third of the frame bars): the last frame, 8 % of the way to white,
        # rises 12 levels in the picture and 8 in the frame; read in the frame, it opened B's clip
        ([Segment(60, seed=1, pan=(2, 0), letterbox=(30, 0)),
          Segment(60, seed=3, pan=(-2, 0), flashes=(0,), flash_gain=(0.45, 0.2, 0.08),
                  letterbox=(30, 0))],
         [(0, 60), (63, 120)]),
    ],
)  # fmt: skip
def test_flash_frames_at_a_cut_belong_to_no_clip(tmp_path, cfg, plan, expected):
    """The detector cuts at the flash, and its other edge hides the shots' own cut: the
    overexposed frames opened the next clip (the tryout's A' frame made a clip of two shots).
    Inside black bars the scan reads the picture's luma, as the flash filter does."""
    video = tmp_path / "v.mp4"
    render_video(video, plan, fps=FPS, size=(320, 180))
    assert scenes(video, cfg["scan"]) == expected


# a flash right next to a fade or a dissolve: the windows that held the flash failed the blend
# test, and the one that passed ended on the transition's faintest frame, which stayed in a clip
NEXT_TO_BLENDS = {
    "before a fade-out": [
        Segment(60, seed=1, pan=(2, 0), flashes=(42,), flash_gain=(0.9, 0.5, 0.2), fade_out=15),
        Segment(60, seed=3, pan=(0, 2)),
    ],
    "after a fade-in": [
        Segment(60, seed=1, pan=(2, 0), fade_out=15),
        Segment(60, seed=3, fade_in=10, pan=(0, 2), flashes=(10,), flash_gain=(1.0,)),
    ],
    "before a dissolve": [
        Segment(60, seed=1, pan=(2, 0), flashes=(59,), flash_gain=(0.6,)),
        Segment(60, seed=3, pan=(0, 2), dissolve=12),
    ],
    "after a dissolve": [
        Segment(60, seed=1, pan=(2, 0)),
        Segment(60, seed=3, pan=(0, 2), dissolve=12, flashes=(12,)),
    ],
}


@pytest.mark.parametrize("name", sorted(NEXT_TO_BLENDS))
def test_a_flash_next_to_a_fade_or_dissolve_leaves_the_transition_out(tmp_path, cfg, name):
    """The transition finder skips a flash's frames: no window ends on one or is fitted to one,
    so a window over the flash holds the whole ramp. Each shot keeps its frames to within one,
    besides flash frames at its edge (cut off for the flash filter, which needs the frame
    before a flash). All four left a faint transition frame in a clip before."""
    video = tmp_path / "v.mp4"
    truth = render_video(video, NEXT_TO_BLENDS[name], fps=FPS, size=(320, 180))
    found = scenes(video, cfg["scan"])
    blended = {f for a, b in truth["transitions"] for f in range(a, b + 1)}
    assert not [s for s in found if blended & set(range(*s))], (found, truth["transitions"])
    flashes = set(truth["flash_frames"])
    for a, b in true_shots(truth):
        while a in flashes:
            a += 1
        while b - 1 in flashes:
            b -= 1
        (x, y), *more = [s for s in found if min(s[1], b) > max(s[0], a)]
        assert not more and abs(x - a) <= 1 and abs(y - b) <= 1, ((a, b), found)


BARS = {"full": (0, 0), "pillarbox": (0, 60), "windowbox": (20, 40)}


@pytest.mark.parametrize("bars", sorted(BARS))
@pytest.mark.parametrize("seed, first", [(14, 60), (35, 60), (14, 20)])
def test_a_flash_cut_between_shots_alike_in_brightness_is_a_cut(tmp_path, cfg, seed, first, bars):
    """A white flash fading into a shot as bright as the one before (mean luma 70 and 75 after
    75): taken for a flash inside one shot, its cut was merged, and one clip held both shots.
    The frames either side of it are two shots, so the cut stays and the flash is cut off.

    Inside black bars the two shots are compared by their pictures: the bars of a pillarboxed
    frame alone made them correlate at 0.55-0.72, and one clip held both shots again. A cut in
    the first second is judged by the bars seen until then."""
    video = tmp_path / "v.mp4"
    lb = BARS[bars]
    plan = [Segment(first, seed=1, pan=(2, 0), letterbox=lb),
            Segment(60, seed=seed, pan=(-2, 0), flashes=(0,), flash_gain=(0.9, 0.5, 0.2),
                    letterbox=lb)]  # fmt: skip
    render_video(video, plan, fps=FPS, size=(320, 180))
    found = scenes(video, cfg["scan"])
    # the flash's first frame may stay a scene of its own: too short to be a clip
    assert [s for s in found if s[1] - s[0] > 2] == [(0, first), (first + 3, first + 60)], found
    assert scenes(video, cfg["scan"] | {"merge_flash_cuts": False}) == found


@pytest.mark.parametrize("bars", [(0, 0), (30, 0)], ids=["full", "letterboxed"])
def test_a_flash_inside_black_bars_rises_as_it_does_in_the_picture(tmp_path, cfg, bars):
    """A flash that lifts the picture 48 levels lifts a letterboxed frame (a third bars) 32,
    under the default ``brightness_delta`` of 40: it went uncounted. With the scan's samples the
    filter reads the picture's luma, so the same flash counts with bars or without."""
    video = tmp_path / "v.mp4"
    seg = Segment(90, seed=1, pan=(2, 0), flashes=(45,), flash_gain=(0.3,), letterbox=bars)
    truth = render_video(video, [seg], fps=FPS, size=(320, 180))
    items = pd.DataFrame(
        [{"source": "s", "video_id": "v", "uri": str(video), "path": str(video), "caption": None}]
    )
    source = ingest_shard(items)
    found, frames, samples, _ = scan_shard(source, cfg["scan"])
    clips = scenes_to_clips(found, source, cfg["split"], frames)
    clip = clips["clip_id"].iloc[0]
    rec = flash_shard(clips, frames, cfg["filters"]["flash"], samples)[clip]
    assert rec["flash_frames"] == truth["flash_frames"] == [45], rec
    assert rec["border_ratio"] == pytest.approx(2 * bars[0] / 180, abs=0.02)
    # the whole frame's luma alone: the letterboxed flash is diluted under the threshold
    frame_only = flash_shard(clips, frames, cfg["filters"]["flash"])[clip]["flash_frames"]
    assert frame_only == ([] if any(bars) else [45])


def test_only_a_centred_matte_counts_as_bars_for_flashes():
    """A night shot dark at the top in every sample is no letterbox: read as one, a 30-level
    rise of the whole frame (under the default 40) was scaled up and counted (a review)."""
    sides = ("border_top", "border_bottom", "border_left", "border_right")

    def share(*bars):
        return picture_bars(pd.DataFrame([dict(zip(sides, bars, strict=True))]), 320, 180)

    assert share(60, 0, 0, 0) == 0.0 and share(100, 0, 0, 0) == 0.0
    assert share(30, 30, 0, 0) == pytest.approx(1 / 3)
    assert share(0, 0, 40, 40) == pytest.approx(0.25)
    assert share(30, 30, 40, 40) == pytest.approx(1 - 120 * 240 / (180 * 320))
    assert share(80, 80, 0, 0) == 0.0  # over MAX_BARS: a frame of bars is black
