"""Interlaced footage (broadcast 1080i/576i in MPEG-TS, DV, camcorders) is read as whole pictures.

Each test video exists twice, rendered from the same scenes: progressive, and interlaced (x264's
field coding, bottom field first as in DV), each frame's second field (the top one) taken from
the next frame of its scene, so anything that moves is combed. Ground truth: a deinterlaced frame
``i`` shows the progressive frame ``i``. Read as stored, the comb read as detail (sharpness more
than 1.5 times the progressive picture's), and an exported clip kept it.
"""

from __future__ import annotations

import shutil

import av
import numpy as np
import pytest
from helpers import all_shards_table, base_config, metadata, run_snakemake

from clipsift.export_clips import source_fits
from clipsift.io.decode import iter_frames, probe, read_frames_at
from clipsift.sample import Segment, render_video
from clipsift.scorers.technical import frame_technical

SCENES = [Segment(30, seed=71, pan=(-5, 0), noise=1.0), Segment(25, seed=72, pan=(0, 3))]
CUT = 30


def combing(y: np.ndarray) -> float:
    """Mean distance of each row from the mean of the rows above and below it: fields captured
    at different instants make every other row jump where the picture moves."""
    y = y.astype(np.float32)
    return float(np.abs(y[1:-1] - (y[:-2] + y[2:]) / 2).mean())


def mad(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(a.astype(np.float32) - b).mean())


@pytest.fixture(scope="module")
def pair(tmp_path_factory):
    out = tmp_path_factory.mktemp("interlaced")
    for name, interlaced in (("fields.ts", True), ("frames.ts", False)):
        render_video(out / name, SCENES, fps=25, size=(512, 288), interlaced=interlaced)
    return out


def test_interlaced_frames_are_deinterlaced_for_every_reader(pair):
    fields, frames = pair / "fields.ts", pair / "frames.ts"
    assert probe(fields)["interlaced"] is True
    assert probe(frames)["interlaced"] is False
    with av.open(str(fields)) as c:
        stored = list(c.decode(video=0))
    truth = [f.luma() for f in iter_frames(frames)]
    read = list(iter_frames(fields))
    assert all(f.interlaced_frame for f in stored)
    # one picture per frame, at the decoder's times: indices and clip times are unchanged
    assert len(read) == len(stored) == len(truth) == 55
    t0 = stored[0].pts * stored[0].time_base
    assert [f.time for f in read] == pytest.approx(
        [float(f.pts * f.time_base - t0) for f in stored]
    )
    assert not any(f.av_frame.interlaced_frame for f in read)
    moving = range(2, CUT - 1)  # frames whose bottom field shows the next, moved, picture
    for i in moving:
        raw = stored[i].to_ndarray(format="yuv420p")[: truth[i].shape[0]]
        assert combing(raw) > 2.5 * combing(truth[i]), i  # the render is combed
        assert combing(read[i].luma()) < 1.3 * combing(truth[i]), i
        # the picture is frame i's: nearer to it than the stored frame by far
        assert mad(read[i].luma(), truth[i]) < 0.4 * mad(raw, truth[i]), i
    # sharpness reads the picture, not the comb
    sharp = [frame_technical(truth[i])["sharpness"] for i in moving]
    combed = [frame_technical(stored[i].to_ndarray(format="yuv420p")[:288])["sharpness"]
              for i in moving]  # fmt: skip
    deint = [frame_technical(read[i].luma())["sharpness"] for i in moving]
    # a moving field holds half the rows, so the picture is softer than a progressive one,
    # never sharper: the comb no longer reads as detail
    assert np.median(combed) > 1.5 * np.median(sharp)
    assert 0.4 * np.median(sharp) < np.median(deint) < 1.1 * np.median(sharp)
    # reads by time (OCR seeks, scorers, captioners): the same pictures
    times = [read[i].time for i in (12, 40)]
    for img, i in zip(read_frames_at(fields, times, fmt="gray"), (12, 40), strict=True):
        assert mad(img, read[i].luma()) < 1.0
        assert combing(img) < 1.3 * combing(truth[i])


def test_whole_interlaced_file_is_never_published_as_it_is(tmp_path):
    """A whole H.264 mp4 that fits is exported as the source file itself; an interlaced one
    must be re-encoded, deinterlaced."""
    clip = {"start_frame": 0, "end_frame": 20, "width": 320, "height": 180}
    for name, interlaced in (("fields.mp4", True), ("frames.mp4", False)):
        path = tmp_path / name
        render_video(path, [Segment(20, seed=3, pan=(4, 0))], fps=25, size=(320, 180),
                     interlaced=interlaced)  # fmt: skip
        src = {"path": str(path), **probe(path)}
        # a source table from before the column: the file itself says it is interlaced
        src.pop("interlaced")
        assert source_fits(clip, src, None) is not interlaced, name


@pytest.mark.slow
def test_a_run_on_interlaced_broadcast_footage(pair, tmp_path):
    """Through the pipeline: the cut is found on its frame, the source table says the video is
    interlaced, and the exported clips are progressive pictures of their shots."""
    (tmp_path / "tv").mkdir()
    shutil.copy(pair / "fields.ts", tmp_path / "tv" / "fields.ts")
    cfg = base_config(
        [{"name": "tv", "type": "folder", "path": str(tmp_path / "tv")}],
        lean=True,
        split={"min_seconds": 0.5, "max_seconds": 10.0, "materialize": "virtual"},
    )
    cfg["export"] = {"clips": True}
    run_snakemake(tmp_path, cfg)
    source = all_shards_table(tmp_path, "source.parquet")
    assert source["interlaced"].tolist() == [True]
    clips = all_shards_table(tmp_path, "clips.parquet").sort_values("start_frame")
    kept = clips[clips["split_reason"].isna()]
    assert abs(int(kept["end_frame"].iloc[0]) - CUT) <= 1
    assert abs(int(kept["start_frame"].iloc[1]) - CUT) <= 1
    truth = [f.luma() for f in iter_frames(pair / "frames.ts")]
    meta = metadata(tmp_path)
    meta = meta[meta["keep"].fillna(False)].set_index("clip_id")
    assert len(meta) == 2
    for clip in kept.itertuples():
        path = tmp_path / "results" / "dataset" / meta.loc[clip.clip_id, "file"]
        with av.open(str(path)) as c:
            out = list(c.decode(video=0))
        assert len(out) == clip.end_frame - clip.start_frame
        assert not any(f.interlaced_frame for f in out)
        for k in range(2, len(out) - 2):
            y = out[k].to_ndarray(format="yuv420p")[:288]
            assert combing(y) < 1.5 * combing(truth[clip.start_frame + k]), (clip.clip_id, k)
