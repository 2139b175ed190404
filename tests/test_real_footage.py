"""Real footage's awkward properties, with known ground truth (issue: clips right on real
footage): variable frame rate, non-square pixels, and seeks in every container.

- A video that switches from 30 to 10 fps with a hard cut at the switch: each clip holds
  exactly its shot's frames (none of the other shot, none lost), with the decoder's times;
  a 4 / 60 / 4 fps video keeps its real-time lengths. Exported clips hold exactly those frames.
- A 704x576 source with SAR 16:11 is probed, split and exported at its display aspect (16:9,
  square pixels).
- After a seek, decoding starts at the requested frame by timestamp, in MP4, MKV, WebM, MPEG-TS and
  AVI (MPEG-TS seeks land late; AVI has no usable timestamps with B-frames).
- Those properties together, with a cut, a dissolve and a fade, in each of MP4, MKV, WebM and
  MPEG-TS: clean clips ending within a frame of each shot's, exported with their frames' times
  and the display aspect.
- The same pictures in 4:2:2, 4:4:4 and 10 bits (H.264 and a phone's HEVC) give the same 8-bit
  luma, technical measures and small frames as in 8-bit 4:2:0.
- HDR sources (PQ, HLG) are recorded by their transfer and ingest warns about them; their pictures
  come tone-mapped to SDR, and their luma measures read SDR levels.
"""

from __future__ import annotations

import math
from fractions import Fraction

import av
import cv2
import numpy as np
import pandas as pd
import pytest
from helpers import all_shards_table, base_config, run_snakemake

from clipsift.config import validate_config, with_defaults
from clipsift.export_clips import source_fits
from clipsift.filters.flash import find_flashes
from clipsift.ingest import ingest_shard
from clipsift.io.decode import iter_frames, probe, read_frames_at, stream_fps
from clipsift.io.frames import full_range, yuv_bits
from clipsift.painting import all_frames
from clipsift.sample import (
    Segment,
    _transition_frames,
    copy_as,
    render_video,
    score_scenes,
    write_lossless,
)
from clipsift.scorers.technical import frame_technical
from clipsift.split.clips import copy_or_reencode, materialize, reencode, stream_copy
from clipsift.split.scan import scan_video

LEAN = {
    "filters": {"ocr": {"enabled": False}, "flash": {"enabled": False}},
    "scorers": {"technical": {"enabled": False}},
    "select": {"thresholds": {}},
}


def shot_means(path) -> list[float]:
    return [float(f.luma().mean()) for f in iter_frames(path)]


@pytest.fixture(scope="module")
def vfr_videos(tmp_path_factory):
    out = tmp_path_factory.mktemp("vfr")
    # 2.5 s at 30 fps, then a hard cut at the switch to 10 fps for 3 s
    switch = [i / 30 for i in range(75)] + [2.5 + i / 10 for i in range(30)]
    render_video(out / "switch.mp4", [Segment(75, seed=31), Segment(30, seed=32)],
                 fps=30, size=(320, 180), times=switch)  # fmt: skip
    # 5 s at 4 fps, 5 s at 60 fps, 5 s at 4 fps, one shot each
    t, times = 0.0, []
    for n, fps in ((20, 4), (300, 60), (20, 4)):
        times += [t + i / fps for i in range(n)]
        t += n / fps
    render_video(out / "fourty.mp4", [Segment(20, seed=33), Segment(300, seed=34),
                 Segment(20, seed=35)], fps=30, size=(320, 180), times=times)  # fmt: skip
    render_video(out / "anamorphic.mp4", [Segment(75, seed=36)], fps=25, size=(1024, 576),
                 sar=(16, 11))  # fmt: skip
    # a recording paused for 20 s after 3.3 s of its first shot, then resumed; a cut at 25 s
    paused = [i / 30 for i in range(100)] + [23.3 + i / 30 for i in range(125)]
    render_video(out / "paused.mp4", [Segment(150, seed=43, pan=(1, 0)), Segment(75, seed=44)],
                 fps=30, size=(320, 180), times=paused)  # fmt: skip
    return out


def test_clips_follow_the_decoders_times_and_exports_hold_their_frames(vfr_videos, tmp_path):
    cfg = base_config([{"name": "v", "type": "folder", "path": str(vfr_videos)}], **LEAN)
    cfg["export"] = {"clips": True}
    run_snakemake(tmp_path, cfg)
    clips = all_shards_table(tmp_path, "clips.parquet").set_index("clip_id")
    meta = pd.read_parquet(tmp_path / "results" / "dataset" / "metadata.parquet")
    meta = meta.set_index("clip_id")

    sw = clips[clips["video_id"] == "v-switch"].sort_values("start_frame")
    ok = sw[sw["split_reason"].isna()]
    assert list(zip(ok["start_frame"], ok["end_frame"], strict=True)) == [(0, 75), (75, 105)]
    assert ok["start_time"].tolist() == pytest.approx([0.0, 2.5])
    assert ok["end_time"].tolist() == pytest.approx([2.5, 5.5], abs=0.02)
    assert ok["fps"].tolist() == pytest.approx([30, 10], rel=0.02)
    assert set(ok["frame_rate_mode"]) == {"variable"}
    # the exported files: exactly each shot's frames (shots differ in mean luma), each at its
    # own time, playing as long as the shot (at the stream's average 19.8 fps the 10-fps shot
    # played in 1.5 s instead of 3)
    src = shot_means(vfr_videos / "switch.mp4")
    a, b = np.mean(src[:75]), np.mean(src[75:])
    src_times = [f.time for f in iter_frames(vfr_videos / "switch.mp4")]
    for cid, (lo, hi) in zip(ok.index, ((0, 75), (75, 105)), strict=True):
        path = tmp_path / "results" / "dataset" / meta.loc[cid, "file"]
        got = shot_means(path)
        assert len(got) == hi - lo, (cid, len(got))
        own, other = (a, b) if lo == 0 else (b, a)
        assert all(abs(m - own) < abs(m - other) for m in got), cid
        times = [f.time for f in iter_frames(path)]
        want = [t - src_times[lo] for t in src_times[lo:hi]]
        assert times == pytest.approx(want, abs=1e-3), cid
        with av.open(str(path)) as c:
            s = c.streams.video[0]
            assert float(s.duration * s.time_base) == pytest.approx(ok.loc[cid, "duration"],
                                                                    abs=2e-3)  # fmt: skip
        assert meta.loc[cid, "fps"] == pytest.approx(ok.loc[cid, "fps"], rel=1e-3)
    # the split's own clip files (materialize: reencode) keep the frames' times the same way
    made = materialize(ok.reset_index(), tmp_path / "made", {"materialize": "reencode", "crf": 23,
                       "preset": "veryfast"})  # fmt: skip
    for clip in made.itertuples():
        times = [f.time for f in iter_frames(clip.path)]
        want = [
            t - src_times[clip.start_frame] for t in src_times[clip.start_frame : clip.end_frame]
        ]
        assert times == pytest.approx(want, abs=1e-3), clip.clip_id
        with av.open(clip.path) as c:
            s = c.streams.video[0]
            assert float(s.duration * s.time_base) == pytest.approx(clip.duration, abs=2e-3)

    # 4 / 60 / 4 fps: three 5-s shots, none too short in real time
    ft = clips[clips["video_id"] == "v-fourty"]
    kept = ft[ft["split_reason"].isna()].sort_values("start_frame")
    assert kept["duration"].sum() == pytest.approx(15.0, abs=0.5)
    assert (kept["duration"] <= 10.0 + 1e-6).all()

    # a pause: the frame before it, shown for 20 s, is in no clip (it made a 20-s clip of one
    # frame); the 1.7 s after it are too short, and the clip before it lasts 3.3 s
    pa = clips[clips["video_id"] == "v-paused"].sort_values("start_frame")
    runs = zip(pa["start_frame"], pa["end_frame"], pa["split_reason"].fillna(""), strict=True)
    assert list(runs) == [(0, 99, ""), (100, 150, "too_short"), (150, 225, "")]
    assert pa["duration"].iloc[0] == pytest.approx(3.3, abs=0.01)
    got = shot_means(tmp_path / "results" / "dataset" / meta.loc[pa.index[0], "file"])
    assert len(got) == 99

    # non-square pixels: 704x576 coded, 16:11 pixels, shown 1024x576
    assert probe(vfr_videos / "anamorphic.mp4")["width"] == 1024
    an = meta[meta["video_id"] == "v-anamorphic"]
    an = an[an["keep"].fillna(False)]
    assert len(an) == 1
    with av.open(str(tmp_path / "results" / "dataset" / an["file"].iloc[0])) as c:
        s = c.streams.video[0]
        w, h = s.codec_context.width, s.codec_context.height
        sar = s.sample_aspect_ratio
    assert sar in (None, 1) or float(sar) == 1.0
    assert w / h == pytest.approx(16 / 9, rel=0.01), (w, h)
    assert (an["width"].iloc[0], an["height"].iloc[0]) == (1024, 576)


def test_millisecond_times_of_a_constant_rate_are_no_variable_rate(tmp_path):
    """Matroska stores times in milliseconds: a 60-fps file's frames come 16 and 17 ms apart
    (6 % of a frame), which made it "variable" and sent its clips down the variable-rate paths
    (export at each frame's own time, encode by time). A real drop is still variable."""
    from clipsift.split.clips import rate_mode, scenes_to_clips
    from clipsift.split.scan import scan_shard

    path = tmp_path / "sixty.mkv"
    render_video(path, [Segment(120, seed=51, pan=(1.0, 0))], fps=60, size=(96, 54))
    times = np.array([f.time for f in iter_frames(path)])
    assert set(np.round(np.diff(times), 3)) == {0.016, 0.017}
    items = pd.DataFrame([{"source": "s", "video_id": "v", "uri": str(path), "path": str(path),
                           "caption": None}])  # fmt: skip
    source = ingest_shard(items)
    scenes, frames, _, _ = scan_shard(source, with_defaults("scan", None))
    clips = scenes_to_clips(scenes, source, with_defaults("split", None), frames)
    assert list(clips["frame_rate_mode"]) == ["constant"]
    assert clips["fps"].iloc[0] == pytest.approx(60.0)
    drop = [i / 30 for i in range(60)] + [2.0 + i / 10 for i in range(30)] + [5.0]
    assert rate_mode(np.round(drop, 3)) == "variable"

    def ends(t, fps):
        return np.append(t, t[-1] + 1 / fps)

    n = np.arange(400)
    assert rate_mode(ends(np.round(n / 48 * 600) / 600, 48)) == "constant"  # QuickTime's clock
    assert rate_mode(ends(np.round(n / 240, 3), 240)) == "constant"
    # a change of rate or one dropped frame is variable, with exact or rounded times
    change = np.concatenate([np.arange(240) / 240, 1 + np.arange(200) / 200])
    assert rate_mode(ends(change, 200)) == rate_mode(ends(np.round(change, 3), 200)) == "variable"
    dropped = np.delete(n / 240, 200)
    assert rate_mode(ends(dropped, 240)) == rate_mode(ends(np.round(dropped, 3), 240)) == "variable"


def test_an_exported_clip_whose_rate_drops_inside_it_keeps_its_frames_times(tmp_path):
    """One shot, 2 s at 30 fps then 3 s at 10 fps (a phone in low light), re-encoded at the
    export's default preset: each frame at its own time and the file 5 s long. With B-frames,
    MP4's decode times, from which each frame's duration is derived, made it 4.87 s."""
    times = [i / 30 for i in range(60)] + [2.0 + i / 10 for i in range(30)]
    src = tmp_path / "drop.mp4"
    render_video(src, [Segment(90, seed=32, pan=(1.0, 0))], fps=30, size=(160, 90), times=times)
    info = reencode(str(src), tmp_path / "clip.mp4", 0.0, 5.0, variable=True)
    assert info["n_frames"] == 90 and info["fps"] == pytest.approx(18.0)
    assert [f.time for f in iter_frames(tmp_path / "clip.mp4")] == pytest.approx(times, abs=1e-3)
    with av.open(str(tmp_path / "clip.mp4")) as c:
        s = c.streams.video[0]
        assert float(s.duration * s.time_base) == pytest.approx(5.0, abs=1e-3)


@pytest.mark.parametrize(("ext", "stride"), [("mp4", 1), ("mkv", 1), ("mkv", 4)])
def test_later_stages_read_a_variable_rate_clips_own_frames(tmp_path, ext, stride):
    """A shot filmed at 30 fps that drops to 5 fps for its last second, then a hard cut to a
    30-fps shot: its last frame lasts 0.2 s, four times the clip's average frame. Every stage
    that reads frames after the split gets frames of the clip: OCR's first, middle and last
    (before: the last was the next shot's first frame), the learned scorers' evenly spread
    frames (the same), the encoder's planned frames by number (before: frame numbers over the
    clip's average rate, wrong frames in the first clip and a failed read in the second), and
    UniMatch's adjacent pairs with their real time gaps, and the captioners' frames by number
    (before: ``start + (i + 0.25) / fps``, the next shot's frame last). With
    ``scan.luma_stride`` 4 the per-frame table skips frames: a clip still starts at its cut's own
    time (interpolated, Matroska's milliseconds put it after its frame and counting began one
    frame late)."""
    from clipsift.captioners.base import ClipJob, sample_frames
    from clipsift.encoders.sampling import plan_frames
    from clipsift.encoders.video import read_clip
    from clipsift.filters.ocr import clip_frame_times, frame_number
    from clipsift.ingest import ingest_shard
    from clipsift.io.decode import frames_by_index
    from clipsift.models.frames import clip_frames
    from clipsift.models.runner import clip_times
    from clipsift.scorers import unimatch
    from clipsift.split.clips import scenes_to_clips
    from clipsift.split.scan import scan_shard

    times = [i / 30 for i in range(45)] + [1.5 + i / 5 for i in range(5)]
    times += [2.5 + i / 30 for i in range(75)]
    path = tmp_path / f"drop.{ext}"
    render_video(path, [Segment(50, seed=38, pan=(2, 0)), Segment(75, seed=39, pan=(0, 1.5))],
                 fps=30, size=(192, 108), times=times)  # fmt: skip
    decoded = list(iter_frames(path))
    assert [f.time for f in decoded] == pytest.approx(times, abs=1e-3)
    small = np.stack([f.gray(96).astype(np.float32) for f in decoded])

    def which(img: np.ndarray) -> int:
        """The decoded frame this image is (nearest by pixels)."""
        g = img if img.ndim == 2 else cv2.cvtColor(img, cv2.COLOR_RGB2GRAY)
        g = cv2.resize(g, small.shape[:0:-1], interpolation=cv2.INTER_AREA).astype(np.float32)
        return int(np.argmin(((small - g) ** 2).mean(axis=(1, 2))))

    items = pd.DataFrame([{"source": "s", "video_id": "v", "uri": str(path), "path": str(path),
                           "caption": None}])  # fmt: skip
    source = ingest_shard(items)
    scan = with_defaults("scan", None) | {"luma_stride": stride}
    scenes, frames, _, _ = scan_shard(source, scan)
    split = with_defaults("split", None) | {"min_seconds": 1.0}
    clips = scenes_to_clips(scenes, source, split, frames)
    assert [(c.start_frame, c.end_frame) for c in clips.itertuples()] == [(0, 50), (50, 125)]
    assert list(clips["frame_rate_mode"]) == ["variable", "variable"]
    assert list(clips["last_time"]) == [decoded[49].time, decoded[124].time]
    ocr_cfg = with_defaults("filters.ocr", None) | {"frames": "first_middle_last"}
    for clip in clips.itertuples():
        inside = range(clip.start_frame, clip.end_frame)
        ts = clip_frame_times(clip, ocr_cfg)
        got = [which(img) for img in read_frames_at(path, ts, fmt="gray")]
        assert all(i in inside for i in got), (clip.clip_id, got)
        assert got[-1] == clip.end_frame - 1
        assert [frame_number(clip, ts[0]), frame_number(clip, ts[-1])] == [got[0], got[-1]]
        got = [which(img) for img in read_frames_at(path, clip_times(clip, 5), fmt="gray")]
        assert all(i in inside for i in got) and got[-1] == clip.end_frame - 1
        plan = plan_frames(clip.start_frame, clip.end_frame, clip.fps, {"count": 9}, 4)
        first = (clip.start_frame, clip.start_time)
        enc = read_clip(str(path), plan.indices, first, (0, 0, 192, 108), (96, 54))
        assert [which(img) for img in enc] == plan.indices
        job = ClipJob(clip.clip_id, "v", str(path), clip.start_time, clip.end_time, clip.fps,
                      clip.n_frames, 192, 108)  # fmt: skip
        plan = sample_frames(job, rate=4.0, max_frames=8)
        want = [clip.start_frame + i for i in plan.indices]
        assert [which(img) for img in clip_frames(job, plan.indices, size=96)] == want
        assert want[-1] == clip.end_frame - 1
        offsets = unimatch.pair_offsets(clip, 3)
        pairs = [f for _, f in frames_by_index(path, offsets, (0, clip.start_time))]
        want = [clip.start_frame + o for o in offsets]
        assert [f.index for f in pairs] == offsets
        assert [which(f.gray()) for f in pairs] == want
        assert [f.time for f in pairs] == [decoded[i].time for i in want]


def test_a_read_takes_the_frame_at_its_time_where_frames_come_fast(tmp_path):
    """8 s at 5 fps, then 1 s at 60 fps (average 11 fps): a read at a frame's own time in the
    burst takes that frame (stopping half an average frame early took the one before it)."""
    times = [i / 5 for i in range(40)] + [8 + i / 60 for i in range(60)]
    path = tmp_path / "burst.mp4"
    render_video(path, [Segment(100, seed=40, pan=(2, 1))], fps=30, size=(96, 64), times=times)
    decoded = list(iter_frames(path))
    want = [0, 39, 40, 41, 70, 99, 45]
    got = read_frames_at(path, [decoded[i].time for i in want], fmt="gray")
    for i, img in zip(want, got, strict=True):
        assert np.array_equal(img, decoded[i].gray()), i


def clock_wrapped(src, dest, at: float) -> None:
    """``src`` remuxed to MPEG-TS with its times moved so that the 33-bit clock (90 kHz, about
    26.5 h) wraps ``at`` seconds in, as it does somewhere in one of every 26 hour-long broadcast
    recordings. FFmpeg reads the times before the wrap below 0 (the stream starts at -``at``)."""
    with av.open(str(src)) as inp, av.open(str(dest), "w", format="mpegts") as out:
        video = inp.streams.video[0]
        stream = out.add_stream_from_template(video)
        first = None
        for packet in inp.demux(video):
            if packet.dts is None:
                continue
            first = packet.pts if first is None else first
            shift = round((2**33 / 90000 - at) / packet.time_base) - first
            packet.pts, packet.dts, packet.stream = packet.pts + shift, packet.dts + shift, stream
            out.mux(packet)  # the muxer writes the low 33 bits


def test_no_window_of_a_long_shot_is_shorter_than_min_seconds():
    """A shot longer than max_seconds is cut into equal windows; where those would be shorter
    than min_seconds (a 3.5-s shot, min 2, max 3: two of 1.75 s were kept), the windows are
    max_seconds long from the shot's start and the rest is a too_short row."""
    from clipsift.split.clips import scenes_to_clips

    def clips_of(seconds: float, least: float, most: float) -> list[tuple[int, int, object]]:
        n = round(seconds * 30)
        scenes = pd.DataFrame([{"video_id": "v", "scene": 0, "start_frame": 0, "end_frame": n,
                                "start_time": 0.0, "end_time": n / 30, "n_frames": n,
                                "decode_errors": 0, "width": 64, "height": 36, "error": None}])  # fmt: skip
        source = pd.DataFrame([{"video_id": "v", "fps": 30.0, "width": 64, "height": 36,
                                "path": "v.mp4", "duplicate_of": None, "error": None}])  # fmt: skip
        frames = pd.DataFrame({"video_id": "v", "frame": range(n), "time": np.arange(n) / 30})
        cfg = {"min_seconds": least, "max_seconds": most}
        clips = scenes_to_clips(scenes, source, cfg, frames)
        reasons = [r if isinstance(r, str) else None for r in clips["split_reason"]]
        return list(zip(clips["start_frame"], clips["end_frame"], reasons, strict=True))

    assert clips_of(3.5, 2, 3) == [(0, 90, None), (90, 105, "too_short")]
    assert clips_of(6.5, 2.5, 3) == [(0, 90, None), (90, 180, None), (180, 195, "too_short")]
    assert clips_of(7.5, 2, 3) == [(0, 75, None), (75, 150, None), (150, 225, None)]  # 2.5 s each
    assert clips_of(25.0, 2, 10) == [(0, 250, None), (250, 500, None), (500, 750, None)]

    # on frames: edges at the nearest frame shaved equal windows under the minimum (5.0 s at
    # 25 fps, min 2.5: 2.48 + 2.52 s), and fixed-length clips (min = max) kept 4.97 s of 5
    from clipsift.split.clips import windows

    def spans(n: int, fps: float, least: float, most: float) -> list:
        times = np.arange(n + 1) / fps
        return windows(times, 0, n, {"min_seconds": least, "max_seconds": most})

    assert spans(125, 25, 2.5, 3) == [(0, 75, None), (75, 125, "too_short")]
    assert spans(150, 30000 / 1001, 5, 5) == [(0, 150, None)]
    for fps in (23.976, 25, 29.97, 59.94):
        for least, most in ((2.5, 3), (5, 6), (5, 5), (2, 10)):
            for n in range(math.ceil(least * fps), round(40 * fps), 7):
                got = spans(n, fps, least, most)
                assert got[0][0] == 0 and got[-1][1] == n
                assert all(x[1] == y[0] for x, y in zip(got, got[1:], strict=False)), got
                for x, y, why in got:
                    kept_ok = (y - x) / fps >= least - 1e-6
                    assert (why is None) == kept_ok, (fps, least, most, n, got)
                    assert (y - x) / fps < most + 1 / fps + 1e-6, (fps, least, most, n, got)


def retimed(
    src, dest, pts, time_base, rate, last_duration=None, *, codec="libx264", options=None,
    container_options=None,
) -> None:  # fmt: skip
    """``src``'s frames encoded again into ``dest`` at ``pts(i)`` ticks of ``time_base`` under a
    stream that states ``rate`` (None: no frame duration in the header), without B-frames;
    ``last_duration``: the last frame's length (ticks), as a recorder that stops while the
    picture stands still writes it. ``codec``, its ``options`` and the muxer's
    ``container_options``: x264 in the container of ``dest``'s suffix by default."""
    with av.open(str(src)) as c:
        frames = [f.to_ndarray(format="yuv420p") for f in c.decode(video=0)]
    h, w = frames[0].shape[0] * 2 // 3, frames[0].shape[1]
    with av.open(str(dest), "w", options=container_options or {}) as out:
        opts = {"preset": "veryfast", "bf": "0"} if options is None else options
        s = out.add_stream(codec, rate=rate or 30, options=opts)
        if not rate:
            s.codec_context.framerate = Fraction(0, 1)  # no DefaultDuration
        s.width, s.height, s.pix_fmt = w, h, "yuv420p"
        s.time_base = s.codec_context.time_base = time_base
        packets = []
        for i, arr in enumerate(frames):
            frame = av.VideoFrame.from_ndarray(arr, format="yuv420p")
            frame.pts, frame.time_base = pts(i), time_base
            packets += s.encode(frame)
        packets += s.encode(None)
        if last_duration:
            for packet in packets:
                packet.duration = pts(1) - pts(0)
            packets[-1].duration = last_duration
        for packet in packets:
            out.mux(packet)


def test_a_matroska_file_stating_another_rate_is_sampled_at_its_frames_rate(tmp_path):
    """A Matroska header states a frame duration the muxer was told (here 24 fps over frames
    1/60 s apart): the scan sampled it and sized the transition finder's windows at 24 fps,
    and its fades and dissolves (up to 2 s) ran past the windows, leaving one scene from the
    first frame to the last. Its packets give 60 fps now."""
    from test_transitions import SIZE, scenes_of, transitions_plan

    truth = render_video(tmp_path / "t.mp4", transitions_plan(60), fps=60, size=SIZE)
    path = tmp_path / "labelled24.mkv"
    retimed(tmp_path / "t.mp4", path, lambda i: round(i * 1000 / 60), Fraction(1, 1000), 24,
            options={"preset": "veryfast", "bf": "0", "crf": "18"})  # fmt: skip
    fps = probe(path)["fps"]
    assert fps == pytest.approx(60, rel=1e-3)
    score = score_scenes(truth, scenes_of(path, fps), min_frames=30)
    # every shot within 2 frames (a second encode's faint ends: a 2-s dissolve's last frame,
    # 99.2 % the new shot, may open the next clip); at 24 fps the worst was 180 frames off
    assert score["missed"] == 0 and score["boundary_error"] <= 2, score


def test_clips_take_their_frames_rate_where_the_stream_states_another(tmp_path):
    """A screen recording whose last frame is held 3 s (its stream averages 17.2 fps over frames
    33 ms apart) and a Matroska file whose header states 24 fps over frames 1/60 s apart: their
    clips were exported at the stated rate, 1.7 and 2.5 times too slow, with that rate in the
    clip table. Now a constant-rate clip's ``fps`` is its frames' own, and its file plays for
    the clip's duration, each frame at its own time."""
    from clipsift.export_clips import export_shard_clips
    from clipsift.split.clips import scenes_to_clips
    from clipsift.split.scan import scan_shard

    segs = [Segment(60, seed=295, pan=(2, 0)), Segment(60, seed=296, pan=(0, 2))]
    render_video(tmp_path / "r30.mp4", segs, fps=30, size=(192, 108))
    render_video(tmp_path / "r60.mp4", segs, fps=60, size=(192, 108))
    videos = tmp_path / "videos"
    videos.mkdir()
    retimed(tmp_path / "r30.mp4", videos / "held.mp4", lambda i: 20 * i, Fraction(1, 600), 30,
            last_duration=1800)  # fmt: skip
    retimed(tmp_path / "r60.mp4", videos / "labelled24.mkv", lambda i: round(i * 1000 / 60),
            Fraction(1, 1000), 24)  # fmt: skip
    items = [{"source": "s", "video_id": p.stem, "uri": str(p), "path": str(p), "caption": None}
             for p in sorted(videos.iterdir())]  # fmt: skip
    source = ingest_shard(pd.DataFrame(items)).set_index("video_id", drop=False)
    stated = source["fps"].to_dict()
    assert stated["held"] == pytest.approx(17.2, abs=0.2)
    # a Matroska header's frame duration is a claim: its packets' rate is taken (was 24)
    assert stated["labelled24"] == pytest.approx(60, rel=1e-3)
    cfg = validate_config({"sources": [{"name": "s", "type": "folder", "path": "."}]})
    scenes, frames, *_ = scan_shard(source.reset_index(drop=True), cfg["scan"])
    clips = scenes_to_clips(scenes, source.reset_index(drop=True), cfg["split"], frames)
    kept = clips[clips["split_reason"].isna() & clips["error"].isna()]
    assert set(kept["frame_rate_mode"]) == {"constant"}
    own = {"held": 30.0, "labelled24": 60.0}
    assert kept["fps"].tolist() == pytest.approx([own[v] for v in kept["video_id"]], rel=1e-3)
    out = tmp_path / "clips"
    keep = pd.DataFrame({"clip_id": kept["clip_id"], "keep": True})
    index = export_shard_clips(kept, source.reset_index(drop=True), keep, out, final_dir=out,
                               dataset_dir=out, cfg={})  # fmt: skip
    assert index["error"].isna().all()
    for clip, row in zip(kept.sort_values("clip_id").itertuples(), index.itertuples(), strict=True):
        got = [f.time for f in iter_frames(out / row.file)]
        rate = own[clip.video_id]
        assert got == pytest.approx([i / rate for i in range(clip.n_frames)], abs=1e-3)
        with av.open(str(out / row.file)) as c:
            s = c.streams.video[0]
            assert float(s.duration * s.time_base) == pytest.approx(clip.duration, abs=0.02)
        assert row.fps == pytest.approx(rate, rel=1e-3)


def recorder_webm(src, dest, steps_ms, stated=None) -> None:
    """``src``'s frames as a browser's MediaRecorder writes them: VP8 in a live WebM (no Cues,
    no duration), millisecond times ``steps_ms`` apart and no frame duration in the header
    (``stated``: that rate written there instead)."""
    times = np.concatenate(([0], np.cumsum(steps_ms)))
    retimed(src, dest, lambda i: int(times[i]), Fraction(1, 1000), stated, codec="libvpx",
            options={"deadline": "realtime", "cpu-used": "8", "b": "1M"},
            container_options={"live": "1"})  # fmt: skip


def test_a_copy_from_the_start_follows_the_film_behind_a_one_picture_track(tmp_path):
    """A Matroska file whose first video track is one MJPEG picture (a cover not marked as
    attached): FFmpeg seeks by that track, and the seek to 0 put the film's first keyframe
    behind it, so the stream copy of the first clip held one frame of the next shot (tryout
    15). Now a seek to the start goes by the film's own index."""
    segs = [Segment(30, seed=61, pan=(2, 0)), Segment(30, seed=62, pan=(0, 2))]
    frames = list(all_frames(segs, 160, 96))
    path = tmp_path / "cover.mkv"
    with av.open(str(path), "w", format="matroska") as out:
        cover = out.add_stream("mjpeg", rate=1)
        cover.width, cover.height, cover.pix_fmt = 160, 96, "yuvj420p"
        film = out.add_stream("libx264", rate=30, options={"preset": "veryfast"})
        film.width, film.height, film.pix_fmt = 160, 96, "yuv420p"
        still = av.VideoFrame.from_ndarray(frames[0], format="rgb24").reformat(format="yuvj420p")
        still.pts = 0
        out.mux(cover.encode(still))
        out.mux(cover.encode(None))
        for i, img in enumerate(frames):
            frame = av.VideoFrame.from_ndarray(img, format="rgb24")
            frame.pts = i
            out.mux(film.encode(frame))
        out.mux(film.encode(None))
    assert probe(path)["width"] == 160  # the film is the video
    source = [f.rgb() for f in iter_frames(path)]
    stream_copy(str(path), tmp_path / "first.mp4", 0.0, 1.0)
    got = [f.rgb() for f in iter_frames(tmp_path / "first.mp4")]
    assert len(got) == 30
    # its own first and last frame, not the next shot's (85 levels away): compared with the
    # source's decoded frames, which the copied packets decode to; against the render, the
    # coding error alone read 8.0 on one machine's x264
    for k in (0, 29):
        assert np.abs(got[k].astype(int) - source[k]).mean() < 1, k


def test_a_seek_to_the_start_of_an_mpeg_ts_film_behind_a_preview_stream_lands_at_its_start(
    tmp_path,
):
    """In MPEG-TS a seek by the film's own stream lands late: where a preview stream came
    first, the start seek by the film landed on its second GOP, and a read from 0.5 s gave no
    frame, or one from 2 s (review). The plain seek to 0 stays for such containers."""
    path = tmp_path / "two.ts"
    with av.open(str(path), "w", format="mpegts") as out:
        preview = out.add_stream("libx264", rate=25, options={"preset": "veryfast", "g": "50"})
        preview.width, preview.height, preview.pix_fmt = 96, 64, "yuv420p"
        film = out.add_stream("libx264", rate=25, options={"preset": "veryfast", "g": "50"})
        film.width, film.height, film.pix_fmt = 192, 128, "yuv420p"
        for i in range(100):
            for s, (w, h) in ((preview, (96, 64)), (film, (192, 128))):
                frame = av.VideoFrame.from_ndarray(np.full((h, w, 3), 2 * i, np.uint8), "rgb24")
                frame.pts = i
                out.mux(s.encode(frame))
        for s in (preview, film):
            out.mux(s.encode(None))
    got = list(iter_frames(path, start=0.5, end=0.7))
    assert [round(f.time, 2) for f in got] == [0.52, 0.56, 0.6, 0.64, 0.68]  # frames 13-17
    (img,) = read_frames_at(path, [0.5])
    assert abs(float(img.mean()) - 2 * 12.5) < 6  # frame 12 or 13, not one from 2 s


def test_a_recording_that_states_no_rate_is_sampled_at_its_frames_rate(tmp_path):
    """A browser or screen recording states no frame rate (MediaRecorder's WebM: FFmpeg then
    guesses 1000 fps, its time base's tick rate) or a wrong one. Sampled at 1000 fps, each video
    got one motion sample (its later clips were rejected as missing scores) and windows 40 times
    too long for its fades and dissolve, which stayed inside two kept clips (tryout 15). Now the
    rate comes from the packets' times: samples at ``sample_fps`` and three clean shots."""
    from clipsift.split.clips import scenes_to_clips
    from clipsift.split.scan import scan_shard

    segs = [Segment(90, seed=501, pan=(1.5, 0), fade_out=20),
            Segment(90, seed=502, pan=(-1, 0.5), fade_in=20),
            Segment(90, seed=503, pan=(2, -0.5), dissolve=20)]  # fmt: skip
    truth = render_video(tmp_path / "r.mp4", segs, fps=30, size=(320, 180))
    steps = np.random.default_rng(2).choice([33, 33, 34, 34, 40, 41, 50, 67], size=270)
    videos = tmp_path / "videos"
    videos.mkdir()
    recorder_webm(tmp_path / "r.mp4", videos / "none.webm", steps)
    recorder_webm(tmp_path / "r.mp4", videos / "stated1000.webm", steps, stated=1000)
    with av.open(str(videos / "none.webm")) as c:
        s = c.streams.video[0]
        assert s.average_rate is None and s.guessed_rate == 1000  # what FFmpeg makes of it
    items = [{"source": "s", "video_id": p.stem, "uri": str(p), "path": str(p), "caption": None}
             for p in sorted(videos.iterdir())]  # fmt: skip
    source = ingest_shard(pd.DataFrame(items))
    frames_rate = 1000 / np.median(steps)
    assert source["fps"].tolist() == pytest.approx([frames_rate] * 2, rel=0.05)
    # an estimate (docs/sources.md), from the rate: 9204 for 225 frames at the guessed 1000 fps
    assert source["n_frames"].tolist() == pytest.approx([270, 270], rel=0.1)
    cfg = validate_config({"sources": [{"name": "s", "type": "folder", "path": "."}]})
    scenes, frames, samples, _ = scan_shard(source, cfg["scan"])
    seconds = sum(steps[:-1]) / 1000
    for vid in source["video_id"]:
        n = int((samples["video_id"] == vid).sum())
        assert n >= 0.8 * seconds * cfg["scan"]["sample_fps"], (vid, n)
        assert samples.loc[samples["video_id"] == vid, "mag"].notna().sum() >= n - 2
    clips = scenes_to_clips(scenes, source, cfg["split"], frames)
    kept = clips[clips["split_reason"].isna() & clips["error"].isna()]
    bad = _transition_frames(truth)
    for vid in source["video_id"]:
        spans = kept.loc[kept["video_id"] == vid, ["start_frame", "end_frame"]].to_numpy()
        assert len(spans) == 3, (vid, spans)
        for a, b in spans:
            assert not bad[a:b].any() and not any(a < c < b for c in truth["cuts"]), (vid, a, b)


def test_a_stated_average_rate_is_kept_and_a_short_recording_gets_its_own(tmp_path):
    """The packets' rate stands in only where the header states none (or over 240 fps): a
    screen recording at 5 fps for 12 s, then 60, averages 29 fps, and its first packets (5 fps,
    as FFmpeg's own guess) sized the finder's windows for its 60-fps fades 12 times too short
    (review; here 12 s, then 2 s). A 12-frame recording that states none was guessed at 120 fps, not its tick rate,
    and kept that (review)."""
    render_video(tmp_path / "r.mp4", [Segment(180, seed=71, pan=(2, 0))], fps=30, size=(160, 96))
    steps = [200] * 60 + [17] * 120
    retimed(tmp_path / "r.mp4", tmp_path / "screen.mp4", lambda i: sum(steps[:i]),
            Fraction(1, 1000), 60)  # fmt: skip
    with av.open(str(tmp_path / "screen.mp4")) as c:
        s = c.streams.video[0]
        average, guess = float(s.average_rate), float(s.guessed_rate)
    assert guess == pytest.approx(5, rel=0.05) and average > 2 * guess  # the header's two rates
    assert probe(tmp_path / "screen.mp4")["fps"] == pytest.approx(average)
    # a high-speed camera's rate is a rate: every reader takes it (review: 0, then 25 or 30)
    render_video(tmp_path / "hs.mp4", [Segment(40, seed=73, pan=(1, 0))], fps=480, size=(96, 64))
    with av.open(str(tmp_path / "hs.mp4")) as c:
        assert stream_fps(c.streams.video[0]) == 480
    assert probe(tmp_path / "hs.mp4")["fps"] == 480
    short = render_video(tmp_path / "s.mp4", [Segment(12, seed=72)], fps=24, size=(160, 96))
    recorder_webm(tmp_path / "s.mp4", tmp_path / "short.webm", [41, 42] * 6)
    got = probe(tmp_path / "short.webm")
    assert got["fps"] == pytest.approx(24, rel=0.05) and got["n_frames"] == pytest.approx(
        short["n_frames"], abs=1
    )


@pytest.mark.slow
@pytest.mark.parametrize("ext", ["mp4", "mkv", "webm", "ts"])
def test_every_container_gives_each_shot_its_frames_times_and_aspect(tmp_path, ext):
    """The awkward properties together, in each container: frames that come at a variable rate
    (30 fps, a cut where it drops to 15 fps, dropped frames), pixels 64:45 wide (PAL DVD's
    16:9; not in WebM, whose pixel aspect PyAV cannot write), a hard cut, a dissolve and a
    fade through black. No kept clip holds a transition frame or spans a cut, every shot's ends
    are found within a frame, and the exported files hold exactly each clip's frames at their
    own times (within the container's millisecond) and show the source's display aspect."""
    from clipsift.export_clips import export_shard_clips
    from clipsift.sample import score_scenes
    from clipsift.split.clips import scenes_to_clips
    from clipsift.split.scan import scan_shard

    rng = np.random.default_rng(7)
    drops = sorted(rng.choice(np.arange(1, 100), size=79, replace=False))  # 20 of 100 dropped
    times = [i / 30 for i in range(75)] + [2.5 + i / 15 for i in range(45)]
    times += [5.5 + i / 30 for i in [0, *drops]] + [5.5 + (100 + i) / 30 for i in range(180)]
    segs = [
        Segment(75, seed=290, pan=(2, 0)),
        Segment(45, seed=291, pan=(0, 2)),  # a hard cut where the rate drops to 15 fps
        Segment(80, seed=292, dissolve=12, pan=(-2, 0)),  # 30 fps again, dropped frames
        Segment(90, seed=293, fade_out=9),
        Segment(90, seed=294, fade_in=9, pan=(1, 1)),
    ]
    sar = None if ext == "webm" else (64, 45)
    path = tmp_path / f"v.{ext}"
    truth = render_video(path, segs, fps=30, size=(320, 180), times=times, sar=sar)
    assert truth["cuts"] == [75, 200] and len(truth["transitions"]) == 3, truth["transitions"]

    cfg = validate_config({"sources": [{"name": "s", "type": "folder", "path": "."}]})
    source = ingest_shard(pd.DataFrame([{"source": "s", "video_id": "v", "uri": str(path),
                                         "path": str(path), "caption": None}]))  # fmt: skip
    assert source.loc[0, "width"] / source.loc[0, "height"] == pytest.approx(16 / 9, rel=0.01)
    scenes, frames, *_ = scan_shard(source, cfg["scan"])
    clips = scenes_to_clips(scenes, source, cfg["split"], frames)
    kept = clips[clips["split_reason"].isna() & clips["error"].isna()]
    spans = list(zip(kept["start_frame"], kept["end_frame"], strict=True))
    score = score_scenes(truth, spans)
    assert score == {"dirty": 0, "boundary_error": score["boundary_error"], "missed": 0}, spans
    assert score["boundary_error"] <= 1, (spans, score)
    assert len(kept) == 5  # every shot lasts over split.min_seconds without its transitions
    src = [f.time for f in iter_frames(path)]
    assert kept["start_time"].tolist() == pytest.approx([src[a] for a, _ in spans], abs=1e-6)

    out = tmp_path / "clips"
    keep = pd.DataFrame({"clip_id": kept["clip_id"], "keep": True})
    index = export_shard_clips(kept, source, keep, out, final_dir=out, dataset_dir=out, cfg={})
    assert index["error"].isna().all(), index["error"].tolist()
    for clip, row in zip(kept.sort_values("clip_id").itertuples(), index.itertuples(), strict=True):
        got = list(iter_frames(out / row.file))
        want = [t - src[clip.start_frame] for t in src[clip.start_frame : clip.end_frame]]
        assert [f.time for f in got] == pytest.approx(want, abs=1.5e-3), clip.clip_id
        w, h = got[0].display_size()
        assert w / h == pytest.approx(16 / 9, rel=0.01), (clip.clip_id, w, h)


@pytest.mark.parametrize("ext", ["mp4", "mkv", "webm", "ts", "avi", "wrapped.ts"])
def test_seeks_land_on_the_requested_frame(tmp_path, ext):
    """Reads by time and copies from every container; ``wrapped.ts``: an MPEG-TS whose clock
    wraps 1.5 s in, where a seek to the start (a copy of the first clip, a read that goes back)
    went to time 0 instead, after the wrap: 'no keyframe in range'."""
    path = tmp_path / f"pan.{ext}"
    if ext == "wrapped.ts":
        render_video(tmp_path / "pan.mp4", [Segment(120, seed=37, pan=(3, 0))], fps=30,
                     size=(192, 108), gop=50)  # fmt: skip
        clock_wrapped(tmp_path / "pan.mp4", path, 1.5)
        with av.open(str(path)) as c:
            assert c.streams.video[0].start_time * c.streams.video[0].time_base < -1.4
    else:
        render_video(path, [Segment(120, seed=37, pan=(3, 0))], fps=30, size=(192, 108), gop=50)
    frames = list(iter_frames(path))
    times = [f.time for f in frames]
    assert times == pytest.approx([i / 30 for i in range(120)], abs=1e-3)
    means = [float(f.luma().mean()) for f in frames]
    for start, end in ((2.0, 3.0), (0.5, 1.2), (1.7, 4.0)):
        got = [(round(f.time * 30), float(f.luma().mean())) for f in iter_frames(
            path, start=start, end=end)]  # fmt: skip
        want = [i for i, t in enumerate(times) if start - 1e-4 <= t < end - 1e-4]
        assert [i for i, _ in got] == want, (ext, start)
        assert [m for _, m in got] == [means[i] for i in want]
    picked = read_frames_at(path, [3.5, 0.0, 1.0, 2.4], fmt="gray")
    assert [float(p.mean()) for p in picked] == [means[i] for i in (105, 0, 30, 72)]
    if ext != "avi":  # stream copy: keyframe-accurate, from a keyframe at or before the start
        stream_copy(str(path), tmp_path / "copy.mp4", 2.0, 3.0)
        copied = [float(f.luma().mean()) for f in iter_frames(tmp_path / "copy.mp4")]
        assert means[60] in copied or means[50] == copied[0]
        assert len(copied) >= 30
        stream_copy(str(path), tmp_path / "first.mp4", 0.0, 1.0)  # from the file's start
        copied = [float(f.luma().mean()) for f in iter_frames(tmp_path / "first.mp4")]
        assert copied[:30] == means[:30]


def test_motion_vectors_read_their_clip_from_any_start_of_the_clock(tmp_path):
    """The motion-vector scorer sought its clip's start as a pts, not from the stream's start: on
    an MPEG-TS whose clock wraps it started 1.5 s late and read a still shot's vectors for a pan
    (or none), and its seek was not checked. A still shot, then a pan: the pan's clip measures
    the same in MP4, in MPEG-TS (which starts at 1.4 s) and in one whose clock wraps."""
    from clipsift.scorers.motion import motion_vectors

    mp4 = tmp_path / "v.mp4"
    segs = [Segment(60, seed=50), Segment(60, seed=51, pan=(4, 0))]
    render_video(mp4, segs, fps=30, size=(192, 108), gop=25)
    plain, wrapped = tmp_path / "v.ts", tmp_path / "w.ts"
    render_video(plain, segs, fps=30, size=(192, 108), gop=25)
    clock_wrapped(mp4, wrapped, 3.0)
    got = [motion_vectors(p, 2.0, 4.0) for p in (mp4, plain, wrapped)]
    assert got[0]["n_frames"] >= 3 and got[0]["mv_px_per_s"] == pytest.approx(120, rel=0.25)
    assert got[2] == got[0]  # the same packets
    assert got[1]["mv_px_per_s"] == pytest.approx(got[0]["mv_px_per_s"], rel=0.05)


def test_damage_in_the_middle_keeps_the_rest_of_the_video(tmp_path):
    """4 KB of garbage in the middle of a 6-s video: the scan skips the packets the decoder
    refuses and keeps the video (most of its frames), recording how many were damaged; the
    old behaviour dropped the whole video."""
    import os

    from clipsift.config import load_config
    from clipsift.split.scan import scan_shard

    good = tmp_path / "good.mp4"
    render_video(good, [Segment(180, seed=38, pan=(2, 0))], fps=30, size=(320, 180))
    data = bytearray(good.read_bytes())
    mid = len(data) // 2
    data[mid : mid + 4096] = np.random.default_rng(0).integers(0, 256, 4096, np.uint8).tobytes()
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(bytes(data))
    assert os.path.getsize(bad) == os.path.getsize(good)
    cfg = load_config(
        _write(tmp_path, {"sources": [{"name": "v", "type": "folder", "path": "x"}]})
    )["scan"]
    source = pd.DataFrame([{"video_id": "bad", "path": str(bad), "fps": 30.0, "duration": 6.0}])
    scenes, frames, _, _ = scan_shard(source, cfg)
    assert scenes["error"].isna().all()
    assert int(scenes["decode_errors"].iloc[0]) > 0
    assert int(scenes["n_frames"].iloc[0]) >= 150  # of 180
    assert frames["time"].max() > 5.5  # frames after the damage are there
    _exports_what_the_scan_decoded(bad, scenes, tmp_path)


def _exports_what_the_scan_decoded(path, scenes, tmp_path) -> None:
    """Each scene of ``path`` exports (re-encoded) and reads back with exactly the frames the
    scan decoded in it: the export, the caption and encode readers skip damaged packets as the
    scan did (the export stopped at the damage, and the clip was dropped)."""
    from clipsift.io.decode import frames_by_index, read_frames_at
    from clipsift.split.clips import reencode

    for sc in scenes.itertuples():
        dest = tmp_path / f"clip{sc.scene}.mp4"
        n = int(sc.end_frame) - int(sc.start_frame)
        made = reencode(str(path), dest, float(sc.start_time), float(sc.end_time))
        assert made["n_frames"] == n, (sc, made)
        assert sum(1 for _ in iter_frames(dest)) == n
        wanted = [int(sc.start_frame), int(sc.end_frame) - 1]
        got = list(frames_by_index(path, wanted, (int(sc.start_frame), float(sc.start_time))))
        assert [k for k, _ in got] == [0, 1]
        assert len(read_frames_at(path, [float(sc.start_time), float(sc.end_time) - 0.04])) == 2


def test_a_file_cut_short_keeps_and_exports_what_it_holds(tmp_path):
    """An interrupted download: an MP4 whose index (at its front) names 180 frames, cut at 55 %
    of its bytes. The scan keeps the frames it decodes (the last packet is refused); the export
    stopped at that packet, two frames short, and the clip of the first shot was dropped."""
    from clipsift.config import load_config
    from clipsift.split.scan import scan_shard

    whole = tmp_path / "whole.mp4"
    render_video(whole, [Segment(90, seed=36, pan=(2, 0)), Segment(90, seed=37, pan=(2, 2))],
                 fps=30, size=(320, 180))  # fmt: skip
    with (
        av.open(str(whole)) as src,
        av.open(str(tmp_path / "front.mp4"), "w", options={"movflags": "faststart"}) as out,
    ):
        film = out.add_stream_from_template(src.streams.video[0])
        for packet in src.demux(src.streams.video[0]):
            if packet.dts is not None:
                packet.stream = film
                out.mux(packet)
    data = (tmp_path / "front.mp4").read_bytes()
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(data[: int(len(data) * 0.55)])
    assert probe(cut)["n_frames"] == 180  # what the index says
    cfg = load_config(
        _write(tmp_path, {"sources": [{"name": "v", "type": "folder", "path": "x"}]})
    )["scan"]
    source = pd.DataFrame([{"video_id": "cut", "path": str(cut), "fps": 30.0, "duration": 6.0}])
    scenes, _, _, _ = scan_shard(source, cfg)
    assert scenes["error"].isna().all() and int(scenes["decode_errors"].iloc[0]) > 0
    first = scenes.iloc[0]
    assert (int(first["start_frame"]), int(first["end_frame"])) == (0, 90)
    _exports_what_the_scan_decoded(cut, scenes, tmp_path)


def test_joined_files_whose_clock_restarts_are_an_error_not_wrong_clips(tmp_path):
    """Two MPEG-TS recordings joined with ``cat``: the second one's times start again at 0.
    Scanned as one video, its shots got the times of the first one's, and the export, which
    finds frames by time, wrote the first file's pictures into the second one's clips (and a
    shot whose end came before its start was dropped as too short). It is an error row now."""
    from clipsift.config import load_config
    from clipsift.split.scan import scan_shard

    parts = [tmp_path / "a.ts", tmp_path / "b.ts"]
    for i, part in enumerate(parts):
        segs = [Segment(45, seed=60 + 2 * i, pan=(2, 0)), Segment(45, seed=61 + 2 * i)]
        render_video(part, segs, fps=30, size=(192, 108))
    joined = tmp_path / "joined.ts"
    joined.write_bytes(parts[0].read_bytes() + parts[1].read_bytes())
    times = [round(f.time, 3) for f in iter_frames(joined)]
    assert len(times) == 180 and times[89:92] == [2.967, 0.0, 0.033]  # the reset, as decoded

    cfg = load_config(
        _write(tmp_path, {"sources": [{"name": "v", "type": "folder", "path": "x"}]})
    )["scan"]
    source = pd.DataFrame([{"video_id": "j", "path": str(joined), "fps": 30.0, "duration": 3.0}])
    scenes, *_ = scan_shard(source, cfg)
    assert len(scenes) == 1 and scenes["error"].iloc[0].startswith(
        "frame times go back at frame 90 (2.967 s, then 0.000 s)"
    ), scenes["error"].iloc[0]
    # each file alone is fine
    source = pd.DataFrame(
        [{"video_id": p.stem, "path": str(p), "fps": 30.0, "duration": 3.0} for p in parts]
    )
    scenes, *_ = scan_shard(source, cfg)
    assert scenes["error"].isna().all() and list(scenes["start_frame"]) == [0, 45, 0, 45]


def _size_switches(path, parts: list[tuple], n: int = 60, fps: int = 25) -> None:
    """One pan over one texture, coded at each size of ``parts`` in turn (``n`` frames each):
    MPEG-TS parts joined as a broadcast's SD/HD switch or a video call's resolution change
    arrive, one stream whose picture size changes. Each part is muxed on its own, so each starts
    0.2 s after the last frame before it (the muxer's own delays would otherwise overlap).
    A part ``(w, h, sar)`` has non-square pixels: its view is the one a viewer sees at w x sar."""
    from fractions import Fraction

    from clipsift.textures import busy_texture

    texture = busy_texture("foliage", 7, 360, 900)  # RGB
    data = b""
    for k, (w, h, *sar) in enumerate(parts):
        sar = Fraction(sar[0]) if sar else Fraction(1)
        part = path.parent.parent / f"{path.stem}-part{k}.ts"  # outside the source folder
        with av.open(str(part), "w", format="mpegts") as out:
            stream = out.add_stream("libx264", rate=fps)
            stream.width, stream.height, stream.pix_fmt = w, h, "yuv420p"
            stream.codec_context.sample_aspect_ratio = sar
            stream.time_base = Fraction(1, 90000)
            stream.options = {"g": "25"}  # a keyframe every second, as broadcasts have
            for i in range(n):
                j = k * n + i
                view = texture[:, 3 * j : 3 * j + 480]  # 4:3, 3 px per frame to the right
                if w * sar * 3 != h * 4:  # 16:9: the middle band of the same view
                    view = view[(360 - 270) // 2 : (360 + 270) // 2]
                img = cv2.resize(np.ascontiguousarray(view), (w, h), interpolation=cv2.INTER_AREA)
                frame = av.VideoFrame.from_ndarray(img, format="rgb24")
                frame.pts, frame.time_base = round((j / fps + 0.2 * k) * 90000), stream.time_base
                out.mux(stream.encode(frame))
            out.mux(stream.encode())
        data += part.read_bytes()
    path.write_bytes(data)


def test_a_picture_size_change_is_a_cut_and_each_clip_has_its_own_size(tmp_path, monkeypatch):
    """A stream whose picture size changes mid-way (4:3 SD, then 16:9 HD, then SD again) crashed
    the scan (the detector compared frames of two sizes), and the shard's scan failed 3 times.
    Now each change is a cut even where the picture goes on (a pan), every clip has the size of
    its frames (its metadata and its file), a copied clip holds no frame of the part before,
    and a whole-video clip, which would hold two sizes, is an error row."""
    from clipsift.filters.ocr import ocr_shard
    from clipsift.filters.ocr_reader import OcrReader
    from clipsift.models.runner import FrameModel, _decode_group, _groups
    from clipsift.split.clips import scenes_to_clips

    src = tmp_path / "videos" / "switch.ts"
    src.parent.mkdir()
    _size_switches(src, [(480, 360), (1280, 720), (480, 360)])
    assert [f.av_frame.width for f in iter_frames(src)][58:62] == [480, 480, 1280, 1280]

    scenes, frames, *_ = scan_video(str(src), "v", 25.0, with_defaults("scan", None))
    scenes = pd.DataFrame(scenes)
    assert list(scenes["start_frame"]) == [0, 60, 120]  # the pan alone has no cut
    assert [(r.width, r.height) for r in scenes.itertuples()] == [
        (480, 360),
        (1280, 720),
        (480, 360),
    ]
    source = pd.DataFrame([{"video_id": "v", "path": str(src), "fps": 25.0, "width": 480,
                            "height": 360, "duplicate_of": None, "error": None}])  # fmt: skip
    frames = pd.DataFrame(frames, columns=["video_id", "frame", "time", "luma"])
    whole = scenes_to_clips(scenes, source, {"mode": "whole"}, frames)
    assert whole["error"].iloc[0].startswith("the picture size changes (480x360, 1280x720)")
    # also where a part has no scene of its own (all blank): the whole clip spans it
    later = scenes_to_clips(scenes.iloc[1:2], source, {"mode": "whole"}, frames)
    assert later["error"].iloc[0].startswith("the picture size changes (480x360, 1280x720)")
    # materialize: copy starts at the last keyframe at or before the clip (each part starts with
    # one): the MPEG-TS seek landed a GOP early, and the HD clip began with 8 SD frames. A clip
    # of another size than the stream's header is re-encoded: the copy kept the SD header.
    how = []
    for sc in scenes.itertuples():
        how.append(copy_or_reencode(str(src), tmp_path / "copy.mp4", sc.start_time, sc.end_time))
        with av.open(str(tmp_path / "copy.mp4")) as c:
            head = (c.streams.video[0].width, c.streams.video[0].height)
            sizes = [(f.width, f.height) for f in c.decode(video=0)]
        assert sizes == [(sc.width, sc.height)] * 60 and head == (sc.width, sc.height)
    assert how == [None, "the clip's pictures are 1280x720, the stream's header 480x360", None]

    # stages that read frames by time read each clip at its own size (they read every clip of
    # a video at the first one's: a 4:3 clip after a 16:9 one came out squashed)
    clips = scenes_to_clips(scenes, source, {"min_seconds": 1.0}, frames)
    seek = with_defaults("filters", None)["ocr"] | {"frames": "first_middle_last"}
    read, shapes = OcrReader.read, []
    monkeypatch.setattr(OcrReader, "read", lambda self, img: shapes.append(img.shape[:2]) or
                        read(self, img))  # fmt: skip
    ocr_shard(clips, seek)
    assert sorted(shapes) == [(315, 560)] * 3 + [(360, 480)] * 6  # 3 frames of each clip
    model = FrameModel(preprocess=lambda imgs: {im.shape[:2] for im in imgs}, forward=None,
                       short_side=180)  # fmt: skip
    for path, group in _groups(clips, group=8):
        done = _decode_group((path, group), model, 2)
        assert all(done[c.clip_id] == {(180, round(180 * c.width / c.height))} for c in group)

    work = tmp_path / "run"
    cfg = base_config([{"name": "s", "type": "folder", "path": str(src.parent)}], lean=True)
    run_snakemake(work, cfg)
    meta = pd.read_parquet(work / "results" / "dataset" / "metadata.parquet")
    assert list(meta["width"]) == [480, 1280, 480] and list(meta["height"]) == [360, 720, 360]
    for row in meta.itertuples():
        with av.open(str(work / "results" / "dataset" / row.file)) as c:
            assert (c.streams.video[0].width, c.streams.video[0].height) == (row.width, row.height)
            assert c.streams.video[0].frames == 60


def test_a_pixel_aspect_change_mid_stream_is_followed(tmp_path):
    """MPEG-TS states no pixel aspect of its own, and a broadcast's can change: 16:9 SD
    (720x576, anamorphic 64:45), then square-pixel HD, then 4:3 SD (same coded size, 16:15).
    The first frame's aspect was used throughout: the HD part came out 1820x720, stretched
    1.42 times, in the scan's scenes and in every frame read by time."""
    src = tmp_path / "videos" / "dvb.ts"
    src.parent.mkdir()
    _size_switches(src, [(720, 576, "64/45"), (1280, 720), (720, 576, "16/15")], n=40)
    scenes, *_ = scan_video(str(src), "v", 25.0, with_defaults("scan", None))
    sizes = [(sc["start_frame"], sc["width"], sc["height"]) for sc in scenes]
    assert sizes[:2] == [(0, 1024, 576), (40, 1280, 720)]
    # the aspect-only change: the decoder's aspect may move up to two frames early
    assert len(sizes) == 3 and 78 <= sizes[2][0] <= 80 and sizes[2][1:] == (768, 576)
    times = [f.time for f in iter_frames(src)]
    imgs = read_frames_at(src, [times[10], times[50], times[110]], size=320, fmt="rgb")
    assert [im.shape[:2] for im in imgs] == [(180, 320), (180, 320), (240, 320)]
    # the motion-vector scorer counts a vector's x at its frame's pixel width: the HD part's
    # square pixels (3 px per frame of a 480-px view shown 1280 wide), not the stream's 64:45
    from clipsift.scorers.motion import motion_vectors

    hd = motion_vectors(src, times[40], times[79] + 1e-3)
    assert hd["mv_px_per_s"] == pytest.approx(3 * 1280 / 480 * 25, rel=0.05)


@pytest.mark.parametrize("fps", [None, float("nan"), 0.0])
def test_a_video_without_a_frame_rate_is_scanned(tmp_path, fps):
    """A stream that states no rate no longer fails its whole shard's scan: clip times are the
    decoder's, and sampling assumes 30 fps."""
    from clipsift.config import load_config
    from clipsift.split.scan import scan_shard

    path = tmp_path / "v.mp4"
    render_video(path, [Segment(30, seed=41), Segment(30, seed=42)], fps=30, size=(192, 108))
    cfg = load_config(
        _write(tmp_path, {"sources": [{"name": "v", "type": "folder", "path": "x"}]})
    )["scan"]
    source = pd.DataFrame([{"video_id": "v", "path": str(path), "fps": fps, "duration": 2.0}])
    scenes, _, samples, _ = scan_shard(source, cfg)
    assert scenes["error"].isna().all() and list(scenes["start_frame"]) == [0, 30]
    assert scenes["start_time"].iloc[1] == pytest.approx(1.0, abs=1e-3) and len(samples) == 4


def test_results_under_a_folder_named_shards(tmp_path):
    """With ``results: /data/shards/run1`` caches and locks belong in run1, not in /data."""
    from types import SimpleNamespace

    from clipsift.smk import results_dir

    job = SimpleNamespace(
        output=["/data/shards/run1/shards/s-00000/clips.parquet"],
        input=["/data/shards/run1/shards/s-00000/source.parquet"],
    )
    assert str(results_dir(job)) == "/data/shards/run1"


def _write(tmp_path, cfg):
    import yaml

    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


@pytest.mark.parametrize(
    "pix_fmt, codec, ext, full",
    [("yuv422p", "libx264", "mkv", False), ("yuv444p", "libx264", "mp4", False),
     ("yuv420p10le", "libx264", "mkv", False), ("yuv422p10le", "libx264", "mov", False),
     ("yuv420p10le", "libx265", "mp4", False), ("yuvj420p", "libx264", "mp4", True),
     ("yuv420p10le", "libx265", "mkv", True)],
)  # fmt: skip
def test_every_planar_format_and_range_gives_the_same_luma(tmp_path, pix_fmt, codec, ext, full):
    """Phones write 10-bit HEVC (some of them full range), cameras 4:2:2, screen recorders 4:4:4.
    Through FFmpeg's gray conversion these formats' luma was stretched from limited range to
    0-255: a scene at level 24 in 8-bit 4:2:0 read 9 (under ``technical.luma_mean``'s default
    minimum of 20), and sharpness 36 % higher; full-range frames kept their own levels, and
    their small colour frames had crushed blacks. Luma is now the Y plane on the 8-bit
    limited-range scale in every planar format and range."""
    render_video(
        tmp_path / "src.mp4",
        [Segment(10, seed=1, pan=(2, 0)), Segment(10, seed=2, texture="foliage", noise=2.0)],
        fps=25, size=(320, 180),
    )  # fmt: skip
    copy_as(tmp_path / "src.mp4", tmp_path / f"copy.{ext}", pix_fmt, codec, full_range=full)
    src, copy = list(iter_frames(tmp_path / "src.mp4")), list(iter_frames(tmp_path / f"copy.{ext}"))
    assert len(copy) == len(src) == 20
    bits = yuv_bits(copy[0].av_frame)
    assert bits == (10 if "10" in pix_fmt else 8) and full_range(copy[0].av_frame) == full
    # a 10-bit or full-range level rounds back to its 8-bit one or the next
    tol = 1 if full or bits > 8 else 0
    for a, b in zip(src, copy, strict=True):
        la, lb = a.luma(), b.luma()
        if full:  # levels outside 16-235 (coding noise) have no full-range code
            la = np.clip(la, 16, 235)
        assert lb.dtype == np.uint8 and lb.shape == la.shape
        assert np.abs(la.astype(int) - lb).max() <= tol
        ta, tb = frame_technical(la), frame_technical(lb)
        assert abs(ta["luma_mean"] - tb["luma_mean"]) < 0.6
        assert tb["sharpness"] == pytest.approx(ta["sharpness"], rel=0.03)
        (ga, ca), (gb, cb) = a.analysis(160, 80), b.analysis(160, 80)
        assert np.abs(ga.astype(int) - gb).max() <= tol + 1
        # the colour frame: chroma resized from another layout, so close, not equal
        assert np.abs(ca.astype(int) - cb).mean() < 3
    # at full size FFmpeg converts (the encoders' input), with each frame's own range
    assert np.abs(src[5].rgb().astype(int) - copy[5].rgb()).mean() < 3


BARS = [(255, 0, 0), (0, 255, 0), (0, 0, 255), (255, 255, 0), (200, 120, 90), (30, 60, 200)]


def colour_bars(path, matrix: str | None) -> None:
    """Ten 640x360 frames of colour bars, converted to yuv420p with ``matrix`` (swscale's name;
    None: FFmpeg's default, BT.601) and tagged so, losslessly."""
    w, h = 640, 360
    bars = np.zeros((h, w, 3), np.uint8)
    for i, c in enumerate(BARS):
        bars[:, i * w // len(BARS) : (i + 1) * w // len(BARS)] = c
    frames = (
        av.VideoFrame.from_ndarray(bars, format="rgb24").reformat(
            format="yuv420p", dst_colorspace=matrix
        )
        for _ in range(10)
    )
    bt709 = {"colorspace": 1, "color_primaries": 1, "color_trc": 1} if matrix == "ITU709" else {}
    write_lossless(path, frames, (w, h), "yuv420p", **bt709)


def bar_colours(rgb: np.ndarray) -> np.ndarray:
    h, w = rgb.shape[:2]
    return np.array([rgb[h // 2, int((i + 0.5) * w / len(BARS))] for i in range(len(BARS))])


@pytest.mark.parametrize("matrix", [None, "ITU709"])
def test_colours_follow_the_sources_matrix_in_small_frames_and_exports(tmp_path, matrix):
    """HD footage is tagged BT.709; OpenCV's small-frame conversion knew BT.601 only, so the
    small frames (captions, thumbnails, OCR) and resized exports of a BT.709 source showed its
    red as 233 and its green with red 20, and exported clips went out untagged (players show an
    untagged HD clip as BT.709). Small frames now use the tagged matrix, and a re-encoded clip is
    written with its source's matrix and tags; an untagged source stays BT.601, untagged."""
    colour_bars(tmp_path / "bars.mp4", matrix)
    fr = next(iter_frames(tmp_path / "bars.mp4"))
    assert fr.av_frame.colorspace == (1 if matrix else 2)
    assert np.abs(bar_colours(fr.rgb()).astype(int) - BARS).max() <= 4  # FFmpeg's conversion
    assert np.abs(bar_colours(fr.rgb(320)).astype(int) - BARS).max() <= 4
    for max_height in (None, 180):  # a clip at the source's size, and one resized
        out = tmp_path / f"clip-{max_height}.mp4"
        reencode(str(tmp_path / "bars.mp4"), out, 0.0, 0.4, max_height=max_height)
        clip = next(iter_frames(out))
        assert clip.av_frame.colorspace == fr.av_frame.colorspace
        assert np.abs(bar_colours(clip.rgb()).astype(int) - BARS).max() <= 5


# BT.2087: linear BT.709 RGB in BT.2020 primaries
BT709_TO_BT2020 = np.array(
    [[0.6274, 0.3293, 0.0433], [0.0691, 0.9195, 0.0114], [0.0164, 0.0880, 0.8956]]
)
HDR_BARS = [(200, 40, 40), (40, 180, 60), (50, 70, 210), (225, 225, 225), (128, 128, 128),
            (210, 160, 120), (16, 16, 16)]  # fmt: skip


def pq_oetf(nits: np.ndarray) -> np.ndarray:
    """Display light to PQ signal (SMPTE ST 2084), written here from the standard."""
    m1, m2 = 2610 / 16384, 2523 / 4096 * 128
    c1, c2, c3 = 3424 / 4096, 2413 / 4096 * 32, 2392 / 4096 * 32
    y = np.power(np.clip(nits / 10000, 0, 1), m1)
    return np.power((c1 + c2 * y) / (1 + c3 * y), m2)


def hlg_signal(nits: np.ndarray) -> np.ndarray:
    """Display light on a 1000 cd/m2 display to HLG signal: the inverse OOTF, then the OETF
    (BT.2100), written here from the standard."""
    a, b = 0.17883277, 0.28466892
    c = 0.5 - a * np.log(4 * a)
    yd = np.maximum(nits @ np.array([0.2627, 0.6780, 0.0593]), 1e-9)
    ys = np.power(yd / 1000, 1 / 1.2)
    e = nits / (1000 * np.power(ys, 0.2))[..., None]
    return np.where(e <= 1 / 12, np.sqrt(3 * e), a * np.log(np.maximum(12 * e - b, 1e-9)) + c)


def hdr_video(path, trc: int, pictures: list[np.ndarray]) -> None:
    """SDR BT.709 RGB ``pictures`` (uint8, gamma 2.4, as light relative to SDR white; a float
    array is light in cd/m2 already) placed in HDR as BT.2408 says (SDR white at 203 cd/m2,
    BT.2020 primaries), coded with PQ (16) or HLG (18) in 10-bit HEVC, tagged so."""
    h, w = pictures[0].shape[:2]
    frames = []
    for pic in pictures:
        nits = (
            pic if pic.dtype.kind == "f" else (np.power(pic / 255, 2.4) @ BT709_TO_BT2020.T) * 203
        )
        signal = pq_oetf(nits) if trc == 16 else hlg_signal(nits)
        rgb48 = np.round(np.clip(signal, 0, 1) * 65535).astype(np.uint16)
        frames.append(av.VideoFrame.from_ndarray(rgb48, format="rgb48le").reformat(
            format="yuv420p10le", dst_colorspace="BT2020"))  # fmt: skip
    tags = {"colorspace": 9, "color_primaries": 9, "color_trc": trc}
    write_lossless(path, frames, (w, h), "yuv420p10le", "libx265", **tags)


def sdr_bars(n: int = len(HDR_BARS)) -> np.ndarray:
    """``HDR_BARS`` side by side in a 448x128 picture of ``n`` bars (those past the colours
    black)."""
    bars = np.zeros((128, 448, 3), np.uint8)
    step = 448 // n
    for i, c in enumerate(HDR_BARS):
        bars[:, i * step : (i + 1) * step] = c
    return bars


def hdr_bars(path, trc: int, extra_nits: float | None = None) -> np.ndarray:
    """``HDR_BARS`` in HDR (:func:`hdr_video`), five frames; ``extra_nits``: one more bar of
    that grey light. Returns the SDR bars."""
    n = len(HDR_BARS) + bool(extra_nits)
    bars = sdr_bars(n)
    nits = (np.power(bars / 255, 2.4) @ BT709_TO_BT2020.T) * 203
    if extra_nits:
        nits[:, (n - 1) * (448 // n) :] = extra_nits
    hdr_video(path, trc, [nits] * 5)
    return bars


def bar_means(rgb: np.ndarray, n: int) -> np.ndarray:
    step = rgb.shape[1] // n
    return np.array([rgb[16:-16, i * step + 8 : (i + 1) * step - 8].reshape(-1, 3).mean(0)
                     for i in range(n)])  # fmt: skip


@pytest.mark.parametrize(("trc", "name"), [(16, "PQ"), (18, "HLG")])
def test_hdr_pictures_come_tone_mapped_to_sdr_for_models_and_clips(tmp_path, trc, name):
    """Phones record HLG and HDR masters are PQ. Converted as coded, their pictures were flat and
    desaturated (mid grey 128 read 105 in PQ and 112 in HLG, the red bar's green and blue far
    above the SDR grade's). SDR content placed in HDR as BT.2408 says comes back as it was graded; highlights
    above SDR white roll off into the top of the range, brighter staying brighter; exported clips are SDR BT.709
    and tagged so."""
    src = tmp_path / f"{name}.mkv"
    truth = hdr_bars(src, trc, extra_nits=1000.0)
    n = len(HDR_BARS) + 1
    want = bar_means(truth, n)[:-1]
    fr = next(iter_frames(src))
    got = bar_means(fr.rgb(), n)
    assert np.abs(got[:-1] - want).max() <= 5, (got.round(1), want)
    # as coded, the same frame was far from the grade
    coded = bar_means(fr.av_frame.to_ndarray(format="rgb24"), n)[:-1]
    assert np.abs(coded - want).max() > 20
    # 1000 cd/m2, five times SDR white: rolled off, brighter than the white bar, not clipped flat
    white, highlight = got[3], got[-1]
    assert (highlight > white + 3).all() and (highlight <= 255).all()
    # sized reads (captions, latents) agree with the full-size picture
    small = bar_means(fr.rgb(224), n)
    assert np.abs(small[:-1] - want).max() <= 6
    # the export: SDR BT.709 pictures, tagged BT.709
    reencode(str(src), tmp_path / "clip.mp4", 0.0, 1.0)
    with av.open(str(tmp_path / "clip.mp4")) as c:
        out = next(c.decode(video=0))
    assert (out.colorspace, out.color_primaries, out.color_trc) == (1, 1, 1)
    assert np.abs(bar_means(out.to_ndarray(format="rgb24"), n)[:-1] - want).max() <= 7


def grey_video(path, **tags: int) -> None:
    """Five 128x72 grey yuv420p frames, H.264 lossless, with encoder colour ``tags``."""
    grey = np.full((72, 128, 3), 120, np.uint8)
    frames = (av.VideoFrame.from_ndarray(grey, format="rgb24").reformat(format="yuv420p")
              for _ in range(5))  # fmt: skip
    write_lossless(path, frames, (128, 72), "yuv420p", **tags)


@pytest.mark.parametrize(("trc", "name"), [(16, "PQ"), (18, "HLG")])
def test_hdr_luma_measures_read_the_levels_a_viewer_sees(tmp_path, trc, name):
    """The scan's luma measures (the flash filter's per-frame luma, ``technical.luma_mean``)
    read an HDR frame at the levels of its SDR picture, so thresholds in SDR levels mean the
    same. Coded, PQ holds SDR white at 144 and HLG at 181: the bars read 99 (PQ) and 107 (HLG)
    against the grade's 118, and a flash from grey 110 to 200 rose 30 levels in PQ, under the 40
    the flash filter needs. The cut detector keeps reading the coded signal."""
    grey, flash = np.full((128, 448, 3), 110, np.uint8), np.full((128, 448, 3), 200, np.uint8)
    pictures = [sdr_bars()] * 6 + [grey] * 4 + [flash] + [grey] * 4
    src = tmp_path / f"{name}.mkv"
    hdr_video(src, trc, pictures)
    # the SDR grade's luma (BT.709, limited range)
    truth = np.array([16 + 219 / 255 * (p @ [0.2126, 0.7152, 0.0722]).mean() for p in pictures])
    scenes, frames, samples, _ = scan_video(str(src), "v", 25.0, with_defaults("scan", None))
    luma = np.array([row[3] for row in frames])
    # greys exactly (the table maps a neutral grey through the same tone map as the pictures);
    # the colour bars within 6 (a colour's luma moves with its largest component)
    assert np.abs(luma - truth)[6:].max() <= 1.5, luma.round(1)
    assert np.abs(luma - truth)[:6].max() <= 6, luma.round(1)
    assert find_flashes(luma) == [10]
    by_frame = {s["frame"]: s["luma_mean"] for s in samples}
    assert all(abs(v - truth[f]) <= 6 for f, v in by_frame.items()), (by_frame, truth)
    # the detector's coded frames: the cut between the bars and the grey, the flash no cut
    assert [sc["start_frame"] for sc in scenes] == [0, 6]
    if trc == 16:  # coded, the flash was too faint to be one
        coded = [cv2.mean(fr.analysis(64)[0])[0] for fr in iter_frames(src)]
        assert coded[10] - coded[9] < 40


@pytest.mark.parametrize(("trc", "name"), [(16, "PQ"), (18, "HLG")])
def test_an_hdr_fade_through_white_leaves_no_clip_of_white(tmp_path, trc, name):
    """The flat frames at the dip of a fade through white are blank, as in SDR. An HDR master's
    white is its reference white (203 cd/m2), coded 144 in PQ and 181 in HLG: read as coded,
    that is no near-white level, and the two white frames were left as a scene; as seen, its
    SDR level, it is 226."""
    plan = [Segment(40, seed=61, pan=(2, 0), fade_out=10, fade_color="white"),
            Segment(40, seed=62, pan=(0, 1.5), fade_in=10, fade_color="white")]  # fmt: skip
    src = tmp_path / f"{name}.mkv"
    hdr_video(src, trc, list(all_frames(plan, 320, 180)))
    scenes, *_ = scan_video(str(src), "v", 25.0, with_defaults("scan", None))
    found = [(sc["start_frame"], sc["end_frame"]) for sc in scenes]
    assert len(found) == 2, found  # the fade's frames 30-49 belong to none
    assert abs(found[0][0]) + abs(found[0][1] - 30) + abs(found[1][0] - 50) <= 2, found


def test_hdr_sources_are_recorded_and_ingest_says_what_is_tone_mapped(tmp_path, caplog):
    """The source table records each video's transfer characteristic, and ingest warns about HDR
    sources: their pictures are tone-mapped to SDR."""
    rows = []
    for name, trc in (("sdr", 1), ("hlg", 18), ("pq", 16), ("untagged", None)):
        path = tmp_path / f"{name}.mkv"
        if trc in (16, 18):
            hdr_bars(path, trc)
        else:
            tags = {} if trc is None else {"colorspace": 1, "color_primaries": 1, "color_trc": 1}
            grey_video(path, **tags)
        rows.append({"source": "v", "video_id": name, "uri": str(path), "path": str(path)})
    with caplog.at_level("WARNING", logger="clipsift.ingest"):
        source = ingest_shard(pd.DataFrame(rows)).set_index("video_id")
    assert source["transfer"].fillna("-").to_dict() == {
        "sdr": "bt709", "hlg": "arib-std-b67", "pq": "smpte2084", "untagged": "-"
    }  # fmt: skip
    warned = [r.getMessage() for r in caplog.records if "HDR" in r.getMessage()]
    assert len(warned) == 1 and "2 HDR video(s) (HLG, PQ)" in warned[0], warned


def test_a_whole_hdr_file_is_never_published_as_it_is(tmp_path):
    """A whole H.264 mp4 that fits is exported as the source file itself, unless it is HDR:
    the dataset's clips are SDR BT.709, so an HDR one is re-encoded, tone-mapped."""
    clip = {"start_frame": 0, "end_frame": 5, "width": 128, "height": 72}
    for name, tags in (("sdr", {}), ("pq", {"colorspace": 9, "color_primaries": 9,
                                            "color_trc": 16})):  # fmt: skip
        path = tmp_path / f"{name}.mp4"
        grey_video(path, **tags)
        src = {"path": str(path), **probe(path)}
        assert source_fits(clip, src, None) is (name == "sdr"), name
