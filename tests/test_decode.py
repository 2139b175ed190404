"""clipsift.io.decode against videos whose every frame is known."""

from __future__ import annotations

from fractions import Fraction

import av
import cv2
import numpy as np
import pytest
from helpers import decoded_lumas, keyframe_times, open_fds, render_lumas

from clipsift.io.decode import (
    VideoError,
    frames_by_index,
    iter_frames,
    open_video,
    probe,
    read_frames_at,
)
from clipsift.sample import Segment, render_video, write_corrupt
from clipsift.split.clips import stream_copy

FPS = 25
N = 150  # 6 s
# frame i is flat with Y = LUMA[i]; neighbours differ by 67 (mod 211), all values distinct
LUMA = np.array([16 + (i * 67) % 211 for i in range(N)], dtype=float)


@pytest.fixture(scope="module")
def luma_video(tmp_path_factory):
    """Lossless H.264 (B-frames, keyframe at least every 10 frames), 64x48, 25 fps, 150 frames."""
    path = render_lumas(tmp_path_factory.mktemp("decode") / "luma.mp4", LUMA, fps=FPS, gop=10)
    assert np.array_equal(decoded_lumas(path), LUMA)  # the reference decode itself is exact
    return path


@pytest.fixture(scope="module")
def rotated(tmp_path_factory):
    """The same two scenes rendered upright and with a 90 degree display rotation."""
    out = tmp_path_factory.mktemp("rot")
    segs = [Segment(6, seed=3, pan=(2.0, 0)), Segment(6, seed=4)]
    kw = {"fps": 10, "size": (320, 180)}
    upright = render_video(out / "upright.mp4", segs, **kw)
    turned = render_video(out / "rot90.mp4", segs, rotation=90, **kw)
    return out / "upright.mp4", out / "rot90.mp4", upright, turned


def nearest_index(t: float) -> int:
    """The frame nearest ``t``; halfway between two, the earlier (the one on screen then)."""
    return int(np.clip(np.ceil(t * FPS - 0.5 - 1e-9), 0, N - 1))


# ----------------------------------------------------------------------------- probe


def test_probe_fields(luma_video, tiny_videos):
    p = probe(luma_video)
    assert p["error"] is None
    assert p["fps"] == pytest.approx(FPS)
    assert p["n_frames"] == N
    assert p["duration"] == pytest.approx(N / FPS, abs=1 / FPS)
    assert (p["width"], p["height"], p["rotation"]) == (64, 48, 0)
    assert p["codec"] == "h264" and p["pix_fmt"] == "yuv420p"
    assert p["bit_rate"] and p["bit_rate"] > 0

    q = probe(tiny_videos["a"])  # render_video: 320x180, 10 fps, 40 frames
    assert q["error"] is None
    assert (q["width"], q["height"], q["n_frames"]) == (320, 180, 40)
    assert q["fps"] == pytest.approx(10) and q["duration"] == pytest.approx(4.0, abs=0.1)


LFS_POINTER = (
    "version https://git-lfs.github.com/spec/v1\n"
    "oid sha256:4d7a214614ab2935c943f9e0ff69d22eadbb8f32b1258daaa5e2ca24d17e2393\n"
    "size 12345678\n"
)


@pytest.mark.parametrize(
    "kind", ["empty", "garbage", "truncated", "missing", "text", "folder", "lfs", "html", "xml"]
)
def test_probe_bad_input_gives_error_and_never_raises(tmp_path, tiny_videos, kind):
    path = tmp_path / "bad.mp4"
    if kind in ("empty", "garbage"):
        write_corrupt(path, kind)
    elif kind == "truncated":
        write_corrupt(path, "truncated", source=tiny_videos["a"])
    elif kind == "text":
        path.write_text("this is not a video\n" * 100)
    elif kind == "folder":
        path.mkdir()
    elif kind == "lfs":  # a Hub dataset cloned without Git LFS: pointers where videos should be
        path.write_text(LFS_POINTER)
    elif kind == "html":  # a failed download that saved the server's error page (with a BOM)
        path.write_text("\ufeff\n<!DOCTYPE html>\n<html><body>403 Forbidden</body></html>\n")
    elif kind == "xml":  # an object store's error answer
        path.write_text('<?xml version="1.0" encoding="UTF-8"?><Error><Code>AccessDenied</Code>')
    p = probe(path)
    assert isinstance(p["error"], str) and p["error"]
    assert p["duration"] is None and p["width"] is None and p["n_frames"] is None
    if kind == "empty":
        assert p["error"] == "empty file"
    if kind == "lfs":
        assert (
            p["error"].startswith("cannot open: a Git LFS pointer") and "git lfs pull" in p["error"]
        )
    if kind == "html":
        assert p["error"] == "cannot open: an HTML page, not a video (a failed download?)"
    if kind == "xml":
        assert p["error"] == "cannot open: an XML document, not a video (a failed download?)"
    if kind in ("garbage", "text"):  # nothing to tell: FFmpeg's own reason
        assert "LFS" not in p["error"] and "HTML" not in p["error"]


def _copy_video(src_path, out, shift: float = 0.0) -> None:
    """Every packet of ``src_path``'s video into a new stream of ``out`` (a remux), its times
    ``shift`` seconds later."""
    with av.open(str(src_path)) as src:
        film = out.add_stream_from_template(src.streams.video[0])
        for packet in src.demux(src.streams.video[0]):
            if packet.dts is not None:
                later = round(shift / packet.time_base)
                packet.pts, packet.dts = packet.pts + later, packet.dts + later
                packet.stream = film
                out.mux(packet)


@pytest.mark.parametrize("ext", ["mkv", "webm"])
def test_a_file_written_as_it_was_recorded_has_its_duration(tmp_path, luma_video, ext):
    """A WebM from a browser's MediaRecorder, or any Matroska file written live, states no
    duration in its header (and has no seek index): it was an error row, "zero duration". The
    duration now comes from its packets' times, and it is scanned and sought as any other."""
    src = luma_video
    if ext == "webm":  # VP9: WebM holds no H.264
        src = render_video(tmp_path / "vp9.webm", [Segment(N, seed=5)], fps=FPS, size=(64, 48))
        src = src["path"]
    path = tmp_path / f"live.{ext}"
    with av.open(str(path), "w", options={"live": "1"}) as out:
        _copy_video(src, out)
    with av.open(str(path)) as c:
        assert c.duration is None and not c.streams.video[0].frames  # the header has none
    p = probe(path)
    assert p["error"] is None, p
    assert p["duration"] == pytest.approx(N / FPS, abs=0.002)
    assert p["n_frames"] == N
    times = [f.time for f in iter_frames(path, start=2.0, end=2.2)]  # no index: still found
    assert times == pytest.approx([2.0 + i / FPS for i in range(5)], abs=0.002)


def test_a_bare_h264_stream_is_an_error_row_that_says_to_remux_it(tmp_path):
    """A ``.h264`` file (a camera module's or an encoder's output without a container) has no
    frame times: every decoded frame is at 0 s, so it stays an error row, one that says why and
    what to do."""
    path = tmp_path / "bare.h264"
    with av.open(str(path), "w", format="h264") as out:
        stream = out.add_stream("libx264", rate=FPS)
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        for y in LUMA[:30]:
            img = np.full((48, 64), int(y), np.uint8)
            out.mux(stream.encode(av.VideoFrame.from_ndarray(img, format="gray")))
        out.mux(stream.encode())
    p = probe(path)
    assert p["duration"] is None and p["width"] == 64
    assert "H.264 elementary stream" in p["error"] and "remux" in p["error"]


@pytest.mark.parametrize("tags,start", [(True, 0), (False, 0), (True, 2)])
def test_a_matroska_file_whose_sound_runs_on_has_the_pictures_duration(
    tmp_path, luma_video, tags, start
):
    """Matroska states no duration per track, and the container's is its longest stream's: an
    MKV whose sound runs 4 s past the picture probed at 10 s and 250 frames for a 6-s, 150-frame
    video (the status's video hours and the scan's progress took them). FFmpeg and mkvmerge
    tag each track with its DURATION (its end time: a picture that starts at 2 s is tagged 8 s);
    a file without the tags is timed by its packets."""
    path = tmp_path / "long_sound.mkv"
    with av.open(str(path), "w") as out:
        sound = out.add_stream("aac", rate=48000)
        _copy_video(luma_video, out, shift=start)
        for k in range(0, (N // FPS + 4 + start) * 48000, 1024):
            quiet = av.AudioFrame.from_ndarray(np.zeros((1, 1024), np.float32), "fltp", "mono")
            quiet.sample_rate, quiet.pts = 48000, k
            out.mux(sound.encode(quiet))
        out.mux(sound.encode(None))
    if not tags:  # as a muxer that writes no track tags leaves it (the tag name is renamed)
        path.write_bytes(path.read_bytes().replace(b"DURATION", b"XURATION"))
    with av.open(str(path)) as c:
        assert c.duration / av.time_base > N / FPS + 3.5  # the container's: the sound's end
        assert ("DURATION" in c.streams.video[0].metadata) is tags
    p = probe(path)
    assert p["error"] is None, p
    assert p["duration"] == pytest.approx(N / FPS, abs=0.002)
    assert p["n_frames"] == N


def test_a_duration_tag_with_a_language_and_a_late_start():
    """mkvmerge tags its statistics in English, which FFmpeg names DURATION-eng; the tag is the
    track's end time, so a track that starts late is that much shorter."""
    from types import SimpleNamespace

    from clipsift.io.decode import tagged_duration

    def track(tags, start=None):
        return SimpleNamespace(metadata=tags, start_time=start, time_base=Fraction(1, 1000))

    assert tagged_duration(track({"DURATION-eng": "00:01:02.500000000"})) == 62.5
    assert tagged_duration(track({"DURATION": "01:00:00.000"}, start=2000)) == 3598.0
    assert tagged_duration(track({"DURATION": "garbage"})) is None
    assert tagged_duration(track({})) is None


def _cover(out, attached: bool) -> list[av.Packet]:
    """Adds a 1-picture MJPEG stream to ``out``, flagged as an attached picture (cover art) or
    not, and returns its packets (muxed once every stream is added: the header is written then)."""
    cover = out.add_stream("mjpeg", rate=1)
    cover.width, cover.height, cover.pix_fmt = 32, 32, "yuvj420p"
    if attached:
        cover.disposition = av.stream.Disposition.attached_pic
    picture = av.VideoFrame.from_ndarray(np.full((32, 32, 3), 200, np.uint8), format="rgb24")
    return [*cover.encode(picture.reformat(format="yuvj420p")), *cover.encode(None)]


@pytest.mark.parametrize("ext", ["mkv", "mp4"])
def test_a_cover_picture_or_still_track_before_the_film_is_not_the_video(tmp_path, luma_video, ext):
    """Downloads carry cover art (an attached picture) and some files a still or thumbnail
    track, which may come before the film: it was taken as the video (a "film" of one picture)."""
    path = tmp_path / f"covered.{ext}"
    with av.open(str(path), "w") as out:
        picture = _cover(out, attached=ext == "mp4")  # Matroska keeps it as a track of its own
        _copy_video(luma_video, out)
        for packet in picture:
            out.mux(packet)
    with av.open(str(path)) as c:  # the picture is a video stream, first where the format allows
        assert [s.codec_context.name for s in c.streams.video] == (
            ["mjpeg", "h264"] if ext == "mkv" else ["h264", "mjpeg"]
        )
    p = probe(path)
    assert (p["codec"], p["width"], p["height"], p["n_frames"]) == ("h264", 64, 48, N)
    assert p["fps"] == pytest.approx(FPS)
    lumas = [float(f.luma().mean()) for f in iter_frames(path)]
    assert np.allclose(lumas, LUMA, atol=0.5)
    stream_copy(str(path), tmp_path / "part.mp4", 2.0, 3.0)  # exports copy the film's packets
    with open_video(tmp_path / "part.mp4") as (c, s):
        assert s.codec_context.name == "h264" and len(c.streams.video) == 1


@pytest.mark.parametrize("cover", [False, True])
def test_an_audio_file_is_no_video(tmp_path, cover):
    """With its cover art (a song saved as .mp4), an audio file was probed as a "video" at
    90,000 fps, its one picture counted once per 1/90,000 s of the song."""
    path = tmp_path / "audio.mp4"
    with av.open(str(path), "w") as out:
        stream = out.add_stream("aac", rate=8000)
        stream.layout = "mono"
        for packet in _cover(out, attached=True) if cover else []:
            out.mux(packet)
        for i in range(20):
            frame = av.AudioFrame.from_ndarray(
                np.zeros((1, 1024), np.float32), format="fltp", layout="mono"
            )
            frame.sample_rate, frame.pts = 8000, i * 1024
            out.mux(stream.encode(frame))
        out.mux(stream.encode(None))
    message = "no video stream" + (
        " (only an attached picture, such as cover art)" if cover else ""
    )
    assert probe(path)["error"] == message
    with pytest.raises(VideoError) as error:
        list(iter_frames(path))
    assert str(error.value) == message


def test_unreadable_video_raises_video_error(tmp_path):
    write_corrupt(tmp_path / "g.mp4", "garbage")
    with pytest.raises(VideoError, match="cannot open"):
        list(iter_frames(tmp_path / "g.mp4"))
    with pytest.raises(VideoError):
        read_frames_at(tmp_path / "g.mp4", [0.0])
    assert read_frames_at(tmp_path / "g.mp4", []) == []  # nothing asked, nothing opened


# ----------------------------------------------------------------------------- iter_frames


def test_iter_frames_count_index_time_and_content(luma_video):
    frames = list(iter_frames(luma_video))
    assert [f.index for f in frames] == list(range(N))
    assert np.allclose([f.time for f in frames], np.arange(N) / FPS)
    assert np.array_equal([f.luma().mean() for f in frames], LUMA)
    # gray() is the Y plane (limited range), at full size or resized
    assert frames[7].gray().shape == (48, 64) and frames[7].gray(32).shape == (24, 32)
    assert frames[7].gray(32).mean() == pytest.approx(LUMA[7], abs=0.5)


def test_a_loop_filter_level_is_one_of_ffmpegs(luma_video):
    # luma_video is lossless (qp 0): H.264 filters nothing there, so every level reads the same
    for level in ("none", "noref", "all"):
        frames = list(iter_frames(luma_video, skip_loop_filter=level))
        assert np.array_equal([f.luma().mean() for f in frames], LUMA)
    with pytest.raises(ValueError, match="'nonref': one of none, noref, bidir, nokey, all"):
        list(iter_frames(luma_video, skip_loop_filter="nonref"))


@pytest.mark.parametrize("start,end", [(1.0, 1.4), (2.02, 3.0), (0.0, 0.2), (5.5, None)])
def test_iter_frames_range(luma_video, start, end):
    frames = list(iter_frames(luma_video, start=start, end=end))
    first = int(np.ceil(start * FPS - 1e-6))  # the first frame at or after start, by timestamp
    last = N if end is None else int(np.ceil(end * FPS - 1e-6))
    assert [f.index for f in frames] == list(range(first, last))
    assert np.allclose([f.time for f in frames], np.arange(first, last) / FPS)
    assert np.array_equal([f.luma().mean() for f in frames], LUMA[first:last])


# ----------------------------------------------------------------------------- read_frames_at


def test_read_frames_at_nearest_frames_in_request_order(luma_video):
    assert len(keyframe_times(luma_video)) > 10  # seeks land on many different keyframes
    d = 1 / FPS
    times = [
        3.0,
        0.0,
        5.96,  # last frame
        0.4 + 0.3 * d,  # nearer frame 10
        0.4 - 0.3 * d,  # nearer frame 10, from below
        2.9,  # backwards, less than 2 s
        0.04,
        4.4 + 0.45 * d,
        1.0,
        1.0,  # the same time twice
        6.5,  # past the end: the last frame
    ]
    got = read_frames_at(luma_video, times, fmt="gray")
    assert len(got) == len(times)
    assert [float(g.mean()) for g in got] == [LUMA[nearest_index(t)] for t in times]
    assert all(g.shape == (48, 64) and g.flags.c_contiguous for g in got)


@pytest.mark.parametrize("off", [0.0, 0.3, -0.3, 0.49])
def test_frames_by_index_counts_from_the_frame_nearest_the_start(luma_video, off):
    """A clip's start time a little off its frame's own (interpolated, or rounded to
    milliseconds) still counts from that frame, before or after it; repeats are yielded."""
    first = 57  # frame 60 is a keyframe (gop 10): the frame before it is behind the seek
    for base in (first, 60):
        t0 = (base + off) / FPS
        want = [base, base + 1, base + 1, base + 9]
        got = [
            (k, f.index, f.luma().mean()) for k, f in frames_by_index(luma_video, want, (base, t0))
        ]
        assert [g[:2] for g in got] == list(enumerate(want))
        assert [g[2] for g in got] == pytest.approx(LUMA[want], abs=0.5)
    assert list(frames_by_index(luma_video, [], (3, 0.12))) == []
    with pytest.raises(VideoError):
        list(frames_by_index(luma_video, [N - 2, N + 3], (N - 2, (N - 2) / FPS)))


def test_read_frames_at_repeated_calls_and_seeks_backwards(luma_video):
    # many separate calls, each going back in the file, and one call that jumps around
    for t in [5.0, 4.0, 2.5, 0.52, 0.08, 5.2, 1.6]:
        (img,) = read_frames_at(luma_video, [t], fmt="gray")
        assert img.mean() == LUMA[nearest_index(t)]
    times = list(np.linspace(5.9, 0.0, 40))  # descending, spans seeks (> 2 s) and decoding on
    got = read_frames_at(luma_video, times, fmt="gray")
    assert [g.mean() for g in got] == [LUMA[nearest_index(t)] for t in times]


def test_read_frames_at_formats_and_sizes(luma_video):
    rgb, bgr, small, fixed = (
        read_frames_at(luma_video, [1.2], fmt="rgb")[0],
        read_frames_at(luma_video, [1.2], fmt="bgr")[0],
        read_frames_at(luma_video, [1.2], fmt="gray", size=32)[0],
        read_frames_at(luma_video, [1.2], fmt="rgb", size=(20, 10))[0],
    )
    assert rgb.shape == bgr.shape == (48, 64, 3) and rgb.dtype == np.uint8
    assert small.shape == (24, 32) and fixed.shape == (10, 20, 3)
    # flat grey frame (U = V = 128): R = G = B = full-range value of the Y level
    y = LUMA[30]
    expected = np.clip((y - 16) * 255 / 219, 0, 255)
    assert np.abs(rgb.astype(float) - expected).max() <= 2


# ----------------------------------------------------------------------------- rotation


def test_rotation_probe_and_arrays(rotated):
    upright_path, rot_path, gt_up, gt_rot = rotated
    assert (gt_rot["coded_width"], gt_rot["coded_height"]) == (180, 320)
    p = probe(rot_path)
    assert p["error"] is None and p["rotation"] == 90
    assert (p["width"], p["height"]) == (320, 180)  # display size
    with open_video(rot_path) as (_, stream):
        assert (stream.codec_context.width, stream.codec_context.height) == (180, 320)

    up = list(iter_frames(upright_path))
    rot = list(iter_frames(rot_path))
    assert len(rot) == len(up) == gt_up["n_frames"]
    for a, b in zip(up, rot, strict=True):
        assert b.rotation == 90
        assert b.luma().shape == b.gray().shape == (180, 320)
        assert b.bgr().shape == b.rgb().shape == (180, 320, 3)
        # the same picture as the upright render (both lossy, chroma subsampled the other way
        # round: compare loosely, and against the picture turned upside down)
        ga, gb = a.gray().astype(int), b.gray().astype(int)
        assert np.abs(ga - gb).mean() < 3 < np.abs(ga - gb[::-1, ::-1]).mean()
        assert np.abs(a.rgb().astype(int) - b.rgb().astype(int)).mean() < 8

    g, c = rot[3].analysis(160)
    assert g.shape == (90, 160) and c.shape == (90, 160, 3)
    g0, c0 = up[3].analysis(160)
    assert np.abs(g.astype(int) - g0.astype(int)).mean() < 3
    assert np.abs(c.astype(int) - c0.astype(int)).mean() < 8

    (img,) = read_frames_at(rot_path, [0.3], fmt="rgb")
    assert img.shape == (180, 320, 3)
    assert rot[0].bgr(160).shape == (90, 160, 3)


def _bitstream_sar_video(path, n=12):
    """Frames of 160x90 coded pixels, 16:11 wide, with the SAR only in the H.264 bitstream (the
    muxer is not told, so an MP4 gets no pasp box and a Matroska file no display size)."""
    with av.open(str(path), "w") as out:
        s = out.add_stream("libx264", rate=10)
        s.width, s.height, s.pix_fmt = 160, 90, "yuv420p"
        s.codec_context.options = {"x264-params": "sar=16/11"}
        for i in range(n):
            frame = av.VideoFrame.from_ndarray(np.full((90, 160, 3), 10 * i, np.uint8), "rgb24")
            frame.pts = i
            out.mux(s.encode(frame))
        out.mux(s.encode(None))
    return path


@pytest.mark.parametrize("rotation", [0, 90, 270])
def test_unsized_pictures_of_non_square_pixels_have_the_display_size(tmp_path, rotation):
    """What a model, a crop in display pixels or a VAE reads is the picture a viewer sees: a
    picture drawn at 320x180 and stored with 16:11 pixels (coded 220x180) comes as 320x180 (it
    came as its coded pixels), also turned a quarter; the luma plane, for measures, keeps its
    coded pixels."""
    from clipsift.sample import Segment, render_video

    path = tmp_path / "sar.mp4"
    truth = render_video(path, [Segment(3, seed=3)], fps=10, size=(320, 180), sar=(16, 11),
                         rotation=rotation)  # fmt: skip
    fr = next(iter_frames(path))
    cw, ch = truth["coded_width"], truth["coded_height"]  # the squeezed side is even: 220, 122
    stretched = round(cw * 16 / 11)
    w, h = (ch, stretched) if rotation else (stretched, ch)  # 320x180, 320x177
    assert fr.display_size() == (w, h) and abs(w / h - 16 / 9) < 0.02
    assert fr.rgb().shape == fr.bgr().shape == (h, w, 3)
    assert fr.rgb((120, 50)).shape == (50, 120, 3)
    assert fr.luma().shape == ((cw, ch) if rotation else (ch, cw))


@pytest.mark.parametrize("ext", ["mp4", "mov", "mkv", "ts"])
def test_a_quick_open_reads_what_ffmpegs_probe_decode_reads(tmp_path, rotated, monkeypatch, ext):
    """The reading paths open an MP4 or MOV without FFmpeg decoding its first frame to probe it
    (they decode it themselves): the probe, frame times and geometry are the same as with that
    decode, the SAR stored only in the bitstream included."""
    from clipsift.io import decode

    path = _bitstream_sar_video(tmp_path / f"sar.{ext}")
    paths = [path, rotated[1]] if ext == "mp4" else [path]

    def facts():
        out = []
        for p in paths:
            frames = [(f.index, f.time, f.sar, f.display_size()) for f in iter_frames(p)]
            later = [(f.index, f.time, f.sar) for f in iter_frames(p, start=0.5)]
            shape = read_frames_at(p, [0.45], size=100)[0].shape
            out.append((probe(p), frames, later, shape))
        return out

    quick = facts()
    with monkeypatch.context() as m:
        slow = decode._open_input
        m.setattr(decode, "_open_input", lambda p, quick: slow(p, False))
        assert facts() == quick
    got = quick[0][0]
    assert got["sar"] == pytest.approx(16 / 11) and (got["width"], got["height"]) == (233, 90)
    assert got["pix_fmt"] == "yuv420p" and got["n_frames"] in (12, None)
    # nothing decoded yet: FFmpeg skipped its trial decode for MP4 and MOV only
    with open_video(path, quick=True) as (_, stream):
        assert (stream.codec_context.pix_fmt is None) == (ext in ("mp4", "mov"))
    with open_video(path) as (_, stream):
        assert stream.codec_context.pix_fmt == "yuv420p"


def test_analysis_frames_small_gray_and_bgr(tiny_videos):
    fr = next(iter(iter_frames(tiny_videos["b"])))
    gray, bgr = fr.analysis(160)
    assert gray.shape == (90, 160) and gray.dtype == np.uint8
    assert bgr.shape == (90, 160, 3) and bgr.dtype == np.uint8
    # gray is the resized luma plane; bgr is the same picture in colour
    ref = cv2.resize(fr.luma(), (160, 90), interpolation=cv2.INTER_AREA)
    assert np.abs(gray.astype(int) - ref.astype(int)).max() <= 1
    # (resizing 4:2:0 planes before the colour conversion blurs chroma a little differently)
    full = cv2.resize(fr.bgr(), (160, 90), interpolation=cv2.INTER_AREA).astype(int)
    assert np.abs(bgr.astype(int) - full).mean() < 8 < np.abs(bgr[..., ::-1] - full).mean()
    same_size = fr.analysis(320)[1].astype(int)
    assert np.abs(same_size - fr.bgr().astype(int)).mean() < 2
    # an odd requested width still gives even 4:2:0-friendly sizes
    g, c = fr.analysis(101)
    assert g.shape[1] % 2 == 0 and g.shape[0] % 2 == 0 and c.shape[:2] == g.shape


def test_analysis_frames_at_two_widths_and_the_quick_path(tiny_videos):
    """The scan's call: gray at the analysis width and BGR at the detector's, ``quick`` (a
    bilinear last step below 2x); both stay the same picture as the exact resize."""
    fr = next(iter(iter_frames(tiny_videos["b"])))
    gray, bgr = fr.analysis(240, 120, quick=True)
    assert gray.shape == (134, 240) and bgr.shape == (68, 120, 3)  # even sizes for 4:2:0
    ref = cv2.resize(fr.luma(), (240, 134), interpolation=cv2.INTER_AREA).astype(int)
    assert np.abs(gray.astype(int) - ref).mean() < 2
    full = cv2.resize(fr.bgr(), (120, 68), interpolation=cv2.INTER_AREA).astype(int)
    assert np.abs(bgr.astype(int) - full).mean() < 8 < np.abs(bgr[..., ::-1] - full).mean()
    # without quick the frames are the exact resize OCR reads (bgr(width) is this call)
    exact_gray, exact_bgr = fr.analysis(240)
    assert np.array_equal(exact_bgr, fr.bgr(240))
    assert np.abs(exact_gray.astype(int) - ref).max() <= 1


# ----------------------------------------------------------------------------- resources


def test_containers_are_closed(luma_video, tmp_path):
    bad = tmp_path / "bad.mp4"
    write_corrupt(bad, "garbage")
    # warm up (lazy imports, codec tables), then count open file descriptors
    probe(luma_video)
    list(iter_frames(luma_video, end=0.1))
    before = open_fds()
    for i in range(200):
        assert probe(luma_video)["error"] is None
        assert probe(bad)["error"]
        if i % 4 == 0:
            next(iter(iter_frames(luma_video)))  # abandoned generator: closed when dropped
            read_frames_at(luma_video, [0.1, 2.0], fmt="gray")
            with pytest.raises(VideoError), open_video(bad):
                pass
    assert open_fds() - before <= 2


def test_atomic_dir_clears_what_a_killed_job_left(tmp_path):
    """A killed extraction or export leaves its hidden temporary folder; the next write of the
    same folder removes it (and only its own: a sibling's temporary folder stays)."""
    import tempfile
    from pathlib import Path

    from clipsift.io.atomic import atomic_dir

    dest = tmp_path / "extracted"
    left = Path(tempfile.mkdtemp(prefix=".extracted.", dir=tmp_path))
    (left / "big.mp4").write_bytes(b"x" * 1000)
    other = Path(tempfile.mkdtemp(prefix=".extracted.b.", dir=tmp_path))  # dest "extracted.b"
    with atomic_dir(dest) as tmp:
        (tmp / "a.mp4").write_bytes(b"a")
    assert not left.exists() and other.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["extracted", other.name])


@pytest.mark.parametrize("ext", ["mkv", "mp4"])
def test_a_small_preview_track_before_the_film_is_not_the_video(tmp_path, luma_video, ext, caplog):
    """A file with a 32x24 preview (proxy) track first and the 64x48 film second: Matroska
    states no bit rates and the muxer marks the first track the default in MP4, so FFmpeg's
    choice was the preview, and the pipeline made the dataset of the preview, silently. The
    film, the largest picture, is read, and the probe says there were two."""
    preview = render_lumas(tmp_path / "preview.mp4", LUMA[::-1], fps=FPS, size=(32, 24))
    path = tmp_path / f"two.{ext}"
    with av.open(str(preview)) as a, av.open(str(luma_video)) as b, av.open(str(path), "w") as out:
        pairs = [(src, out.add_stream_from_template(src.streams.video[0])) for src in (a, b)]
        packets = [
            (p.dts * p.time_base, k, p, s)
            for k, (src, s) in enumerate(pairs)
            for p in src.demux(src.streams.video[0])
            if p.dts is not None
        ]
        for _, _, packet, stream in sorted(packets, key=lambda x: x[:2]):
            packet.stream = stream
            out.mux(packet)
    with av.open(str(path)) as c:
        assert [s.codec_context.width for s in c.streams.video] == [32, 64]
        assert c.streams.best("video").index == 0  # FFmpeg's own choice: the preview
    with caplog.at_level("WARNING", logger="clipsift.io.decode"):
        p = probe(path)
    assert (p["width"], p["height"], p["n_frames"]) == (64, 48, N)
    assert "2 video streams; reading stream 1 (64x48), not 32x24" in caplog.text
    lumas = [float(f.luma().mean()) for f in iter_frames(path)]
    assert np.allclose(lumas, LUMA, atol=0.5)


@pytest.mark.parametrize("ext", ["mkv", "webm", "mp4"])
def test_a_larger_one_frame_track_is_not_taken_for_the_film(tmp_path, ext):
    """A 128x96 track of one picture beside a 2-s 64x48 film: larger, but a still. Matroska and
    WebM count no frames, so only the track's DURATION tag tells (FFmpeg gives it the file's
    2 s as its own duration)."""
    path = tmp_path / f"still.{ext}"
    codec = "libvpx-vp9" if ext == "webm" else "libx264"
    with av.open(str(path), "w") as out:
        film, still = out.add_stream(codec, rate=30), out.add_stream(codec, rate=30)
        for stream, (w, h) in ((film, (64, 48)), (still, (128, 96))):
            stream.width, stream.height, stream.pix_fmt = w, h, "yuv420p"
        for i in range(60):
            picture = np.full((48, 64, 3), 4 * i, np.uint8)
            out.mux(film.encode(av.VideoFrame.from_ndarray(picture, format="rgb24")))
            if i == 0:
                card = np.full((96, 128, 3), 200, np.uint8)
                out.mux(still.encode(av.VideoFrame.from_ndarray(card, format="rgb24")))
        out.mux(film.encode(None))
        out.mux(still.encode(None))
    p = probe(path)
    assert (p["width"], p["height"], p["n_frames"]) == (64, 48, 60)
    assert p["duration"] == pytest.approx(2.0, abs=0.05)


@pytest.mark.parametrize("ext", ["mp4", "ts"])
def test_clip_times_plus_stream_start_are_the_sources_own_timestamps(tmp_path, luma_video, ext):
    """Clip times count from the video stream's start; where the sound starts first (0.5 s)
    or the clock does not start at 0 (MPEG-TS), a reader of the source's own timestamps needs
    ``stream_start`` (probe, source.parquet, the dataset's metadata) added: a tryout's reader got
    12 frames of the shot before without it."""
    path = tmp_path / f"sound_first.{ext}"
    with av.open(str(path), "w") as out:
        sound = out.add_stream("aac", rate=48000)
        _copy_video(luma_video, out, shift=0.5)
        for k in range(0, (N // FPS + 1) * 48000, 1024):
            quiet = av.AudioFrame.from_ndarray(np.zeros((1, 1024), np.float32), "fltp", "mono")
            quiet.sample_rate, quiet.pts = 48000, k
            out.mux(sound.encode(quiet))
        out.mux(sound.encode(None))
    start = probe(path)["stream_start"]
    assert start >= 0.5 - 1e-3
    ours = [round(float(f.luma().mean())) for f in iter_frames(path, start=2.0, end=3.0)]
    assert ours == [round(v) for v in LUMA[50:75]]  # frames 50-74: 2.0-3.0 s from the start
    with av.open(str(path)) as c:  # by the source's own clock
        video = c.streams.video[0]
        theirs = [
            round(float(f.to_ndarray(format="yuv420p")[: f.height].mean()))  # the Y plane
            for f in c.decode(video)
            if start + 2.0 - 1e-3 <= f.pts * video.time_base < start + 3.0 - 1e-3
        ]
    assert theirs == ours


def test_a_packet_rate_from_steps_of_two_lengths_in_equal_numbers():
    """The mean of the steps near their median: none was near it where two lengths came in
    equal numbers (a 2:3 cadence, 33 and 50 ms), the rate was NaN and the probe failed
    (review); a tick either way counts as near (8 and 9 ms steps are 120 fps)."""
    from types import SimpleNamespace

    from clipsift.io.decode import _steps_rate

    ms = SimpleNamespace(time_base=Fraction(1, 1000))
    assert _steps_rate([0, 33, 83, 116, 166], ms) == pytest.approx(1000 / 41.5)
    assert _steps_rate([round(i * 1000 / 120) for i in range(48)], ms) == pytest.approx(
        120, rel=0.01
    )
    assert _steps_rate([round(i * 1000 / 60) for i in range(48)], ms) == pytest.approx(60, rel=0.01)
    assert _steps_rate([0, 40], ms) == 0.0
