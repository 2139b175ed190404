"""The codecs footage comes in besides H.264, HEVC and VP9: broadcast MPEG-2 in MPEG-TS (B-frames,
a start time that is not 0), MJPEG (full-range ``yuvj420p``) and MPEG-4 Part 2 with B-frames in
AVI (old cameras, DivX), the editing intermediates ProRes 4:2:2 10-bit and DNxHR in MOV, AV1 in
MP4 (web downloads) and VP8 in WebM. Each is probed, scanned, sought and exported exactly as
H.264 is: the same frame count and times, the cut on its frame, seeks that land on the requested
frame, and an exported clip that holds the clip's frames.

Ground truth: one render (two panning shots, a hard cut at frame 40) whose decoded pictures
are encoded again with each codec, frame i at i / 25 s.
"""

from __future__ import annotations

from fractions import Fraction

import av
import numpy as np
import pandas as pd
import pytest

from clipsift.config import with_defaults
from clipsift.io.decode import iter_frames, probe, read_frames_at
from clipsift.sample import Segment, render_video
from clipsift.split.clips import materialize, reencode
from clipsift.split.scan import scan_video

FPS, CUT, N = 25, 40, 85
SIZE = (320, 180)

# file, encoder, pixel format, encoder options, codec-context settings (a colorspace: the matrix
# the pictures are converted with; else BT.601, FFmpeg's default for untagged video)
CODECS = [
    ("mpeg2.ts", "mpeg2video", "yuv420p", {"b": "3000000"}, {"gop_size": 15, "max_b_frames": 2}),
    ("mjpeg.avi", "mjpeg", "yuvj420p", {"b": "8000000"}, {}),
    ("mpeg4.avi", "mpeg4", "yuv420p", {"b": "2000000"}, {"max_b_frames": 2}),
    # H.264 in AVI without B-frames (cameras, screen recorders, ffmpeg -bf 0): FFmpeg gives each
    # frame a pts one slot late
    ("h264.avi", "libx264", "yuv420p", {"x264-params": "bframes=0", "crf": "12"}, {}),
    ("prores.mov", "prores_ks", "yuv422p10le", {}, {}),
    # DNxHR is BT.709 by definition: FFmpeg's decoder tags its frames so
    ("dnxhr.mov", "dnxhd", "yuv422p", {"profile": "dnxhr_hq"}, {"colorspace": 1}),
    ("av1.mp4", "libsvtav1", "yuv420p", {"preset": "12"}, {}),
    ("vp8.webm", "libvpx", "yuv420p", {"b": "1000000"}, {}),
    ("h264.flv", "libx264", "yuv420p", {"preset": "veryfast"}, {}),  # Flash video, web archives
]


@pytest.fixture(scope="module")
def pictures(tmp_path_factory) -> list[np.ndarray]:
    """The render's decoded RGB pictures: frames 0-39 pan right, 40-84 another scene pans down."""
    path = tmp_path_factory.mktemp("codecs") / "base.mp4"
    segs = [Segment(CUT, seed=51, pan=(2, 0)), Segment(N - CUT, seed=52, pan=(0, 1.5))]
    render_video(path, segs, fps=FPS, size=SIZE)
    return [f.rgb() for f in iter_frames(path)]


def encode(path, pictures, codec: str, pix_fmt: str, options: dict, settings: dict) -> None:
    with av.open(str(path), "w") as oc:
        s = oc.add_stream(codec, rate=FPS)
        (s.width, s.height), s.pix_fmt = SIZE, pix_fmt
        for name, value in settings.items():
            setattr(s.codec_context, name, value)
        if options:
            s.codec_context.options = {k: str(v) for k, v in options.items()}
        for i, rgb in enumerate(pictures):
            frame = av.VideoFrame.from_ndarray(rgb, format="rgb24").reformat(
                format=pix_fmt, dst_colorspace="ITU709" if settings.get("colorspace") else None
            )
            frame.pts, frame.time_base = i, Fraction(1, FPS)
            oc.mux(s.encode(frame))
        oc.mux(s.encode(None))


def mean_abs(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(a.astype(np.int16) - b.astype(np.int16)).mean())


@pytest.mark.parametrize(("name", "codec", "pix_fmt", "options", "settings"), CODECS)
def test_every_codec_is_cut_sought_and_exported_like_h264(
    tmp_path, pictures, name, codec, pix_fmt, options, settings
):
    path = tmp_path / name
    encode(path, pictures, codec, pix_fmt, options, settings)

    info = probe(path)
    assert info["error"] is None, info
    assert (info["width"], info["height"]) == SIZE
    # FLV states no frame count: it is estimated from the duration (87 for 85)
    assert info["n_frames"] == pytest.approx(N, abs=2 if name.endswith(".flv") else 1)

    frames = list(iter_frames(path))
    assert [round(f.time * FPS, 3) for f in frames] == list(range(N))
    decoded = [f.rgb() for f in frames]
    # the codec's own loss only: every frame is nearest to its own picture
    assert all(mean_abs(d, pictures[i]) < 6 for i, d in enumerate(decoded)), name

    scenes, *_ = scan_video(str(path), "v", float(FPS), with_defaults("scan", None))
    assert [(s["start_frame"], s["end_frame"]) for s in scenes] == [(0, CUT), (CUT, N)]

    # seeks land on the requested frame: a range, and single frames in any order
    ranged = [round(f.time * FPS) for f in iter_frames(path, start=2.0, end=2.8)]
    assert ranged == list(range(50, 70))
    wanted = [62, 10, 80, 41]
    got = read_frames_at(path, [i / FPS for i in wanted])
    assert all(np.array_equal(g, decoded[i]) for g, i in zip(got, wanted, strict=True)), name

    # the exported clip holds the second shot's frames, from its first
    out = reencode(str(path), tmp_path / "clip.mp4", CUT / FPS, N / FPS)
    assert out["n_frames"] == N - CUT
    clip = [f.rgb() for f in iter_frames(tmp_path / "clip.mp4")]
    assert len(clip) == N - CUT
    assert mean_abs(clip[0], decoded[CUT]) < 4 < 20 < mean_abs(clip[0], decoded[CUT - 1])
    assert mean_abs(clip[-1], decoded[N - 1]) < 4

    # split.materialize copy: a stream copy where MP4 holds the codec (AV1 crashed the split
    # job, as did VP8, ProRes and DNxHR, which MP4 cannot hold: those clips are re-encoded)
    row = {"clip_id": "c", "source_path": str(path), "start_time": CUT / FPS,
           "end_time": N / FPS, "error": None, "split_reason": None, "path": None}  # fmt: skip
    cfg = {"materialize": "copy", "crf": 18, "preset": "veryfast"}
    done = materialize(pd.DataFrame([row]), tmp_path / "clips", cfg)
    assert done.loc[0, "error"] is None, done.loc[0, "error"]
    copied = [f.rgb() for f in iter_frames(done.loc[0, "path"])]
    # a copy starts at the keyframe at or before the shot (these GOPs: the shot's first frame
    # or earlier); every frame of the shot is there, in order, and nothing after it
    first = next(k for k, c in enumerate(copied) if mean_abs(c, decoded[CUT]) < 4)
    assert len(copied) - first == N - CUT
    assert mean_abs(copied[-1], decoded[N - 1]) < 4
    # and the first shot, from the file's start (AVI and FLV refuse a seek before their start)
    first_shot = {**row, "clip_id": "c0", "start_time": 0.0, "end_time": CUT / FPS}
    done = materialize(pd.DataFrame([first_shot]), tmp_path / "clips0", cfg)
    assert done.loc[0, "error"] is None, done.loc[0, "error"]
    copied = [f.rgb() for f in iter_frames(done.loc[0, "path"])]
    assert len(copied) == CUT and mean_abs(copied[0], decoded[0]) < 4
    assert read_frames_at(path, [2.0, 0.0])[1].shape == decoded[0].shape  # back to the start
    if name == "vp8.webm":  # the upload captioner's `cut: copy` falls back the same way
        from clipsift.captioners.api import UploadCaptioner
        from clipsift.captioners.base import ClipJob

        job = ClipJob("c", "v", str(path), CUT / FPS, N / FPS, FPS, N - CUT, *SIZE)
        upload = UploadCaptioner({"api": {"upload": {"cut": "copy"}}})
        sent = upload.clip_file(job, tmp_path)
        assert len([f for f in iter_frames(sent)]) == N - CUT


def test_a_copy_from_the_start_of_a_matroska_file_with_b_frames(tmp_path, pictures):
    """Matroska leaves the first packet's decode time out where B-frames follow: the copy
    skipped that packet, the video's first keyframe, and a clip in the first GOP failed ("no
    keyframe in range") or held one frame. Every frame of the first shot is there now."""
    path = tmp_path / "h264.mkv"
    opts = {"x264-params": "keyint=12:min-keyint=12:scenecut=0:bframes=2", "crf": "20"}
    encode(path, pictures, "libx264", "yuv420p", opts, {})
    with av.open(str(path)) as c:
        assert next(c.demux(video=0)).dts is None  # as Matroska has it
    decoded = [f.rgb() for f in iter_frames(path)]
    rows = [{"clip_id": f"c{k}", "source_path": str(path), "start_time": a / FPS,
             "end_time": CUT / FPS, "error": None, "split_reason": None, "path": None}
            for k, a in enumerate((0, 5))]  # fmt: skip
    cfg = {"materialize": "copy", "crf": 18, "preset": "veryfast"}
    done = materialize(pd.DataFrame(rows), tmp_path / "clips", cfg)
    assert done["error"].isna().all(), list(done["error"])
    for path_out in done["path"]:
        copied = [f.rgb() for f in iter_frames(path_out)]
        # from the first keyframe, frame 0: every frame of the shot, in order
        assert len(copied) >= CUT and all(
            mean_abs(c, decoded[i]) < 4 for i, c in enumerate(copied[:CUT])
        )


def test_copies_of_short_clips_of_an_avi_with_b_frames_hold_every_frame(tmp_path, pictures):
    """AVI states decode times only (MPEG-4 Part 2 with B-frames, as DivX and old cameras
    wrote): a stream copy cut by those times lost each clip's last frame. Such clips are
    re-encoded, frame-exact."""
    path = tmp_path / "divx.avi"
    encode(path, pictures, "mpeg4", "yuv420p", {"b": "2000000"},
           {"gop_size": 12, "max_b_frames": 2})  # fmt: skip
    decoded = [f.rgb() for f in iter_frames(path)]
    rows = [{"clip_id": f"c{a}", "source_path": str(path), "start_time": a / FPS,
             "end_time": (a + 5) / FPS, "error": None, "split_reason": None, "path": None}
            for a in range(1, 13)]  # fmt: skip
    cfg = {"materialize": "copy", "crf": 18, "preset": "veryfast"}
    done = materialize(pd.DataFrame(rows), tmp_path / "clips", cfg)
    assert done["error"].isna().all(), list(done["error"])
    for a, out in zip(range(1, 13), done["path"], strict=True):
        copied = [f.rgb() for f in iter_frames(out)]
        # each of the clip's five frames is there, in order (a copy may start earlier)
        at = [next((k for k, c in enumerate(copied) if mean_abs(c, decoded[i]) < 4), None)
              for i in range(a, a + 5)]  # fmt: skip
        assert None not in at and at == sorted(at), (a, at)


@pytest.mark.parametrize(("name", "codec", "pix_fmt", "options"), [
    ("mjpeg.avi", "mjpeg", "yuvj420p", {"b": "8000000"}),
    ("mpeg4.avi", "mpeg4", "yuv420p", {"b": "2000000"}),
])  # fmt: skip
def test_an_avi_capture_that_dropped_frames_keeps_each_frames_time(
    tmp_path, pictures, name, codec, pix_fmt, options
):
    """A webcam or capture card's AVI that dropped every 10th frame leaves its slot empty.
    Times counted from the frames put every frame after the first drop early: the shot after
    the cut started 0.16 s early and its clip, 41 frames spread over 1.8 s, was exported at
    25 fps to play 1.64 s. Without B-frames the decoder's times hold the slots."""
    path = tmp_path / name
    slots = [i for i in range(N) if i % 10 != 9]
    with av.open(str(path), "w") as oc:
        s = oc.add_stream(codec, rate=FPS)
        (s.width, s.height), s.pix_fmt = SIZE, pix_fmt
        s.codec_context.options = options
        for i in slots:
            frame = av.VideoFrame.from_ndarray(pictures[i], format="rgb24").reformat(format=pix_fmt)
            frame.pts, frame.time_base = i, Fraction(1, FPS)
            oc.mux(s.encode(frame))
        oc.mux(s.encode(None))

    from clipsift.ingest import ingest_shard
    from clipsift.split.clips import scenes_to_clips
    from clipsift.split.scan import scan_shard

    assert [round(f.time * FPS, 3) for f in iter_frames(path)] == slots
    items = pd.DataFrame([{"source": "s", "video_id": "v", "uri": str(path), "path": str(path),
                           "caption": None}])  # fmt: skip
    source = ingest_shard(items)
    scenes, frames, _, _ = scan_shard(source, with_defaults("scan", None))
    split = with_defaults("split", None) | {"min_seconds": 1.0}
    clips = scenes_to_clips(scenes, source, split, frames)
    cut = slots.index(CUT)
    spans = [(c.start_frame, c.end_frame) for c in clips.itertuples()]
    assert spans == [(0, cut), (cut, len(slots))]
    assert clips["start_time"].tolist() == pytest.approx([0.0, CUT / FPS])
    assert clips["last_time"].tolist() == pytest.approx([slots[cut - 1] / FPS, slots[-1] / FPS])
    assert set(clips["frame_rate_mode"]) == {"variable"}
    # the second shot's clip, exported as the pipeline exports a variable-rate clip: its frames,
    # each at its own time, playing as long as the shot
    clip = clips.iloc[1]
    out = reencode(str(path), tmp_path / "clip.mp4", clip.start_time, clip.end_time,
                   variable=True, fps=clip.fps)  # fmt: skip
    assert out["n_frames"] == len(slots) - cut
    times = [f.time for f in iter_frames(tmp_path / "clip.mp4")]
    assert times[-1] == pytest.approx((slots[-1] - CUT) / FPS, abs=1e-3)
