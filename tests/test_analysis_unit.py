"""Unit tests of the measurement functions: flashes, technical measures, motion, OCR."""

from __future__ import annotations

import av
import cv2
import numpy as np
import pytest

from clipsift.filters.flash import decay_frames, edge_flashes, find_flashes
from clipsift.filters.ocr import ocr_record, stable_text, text_area_ratio
from clipsift.filters.ocr_reader import OcrReader
from clipsift.scorers.motion import FlowMeter, aggregate_motion, motion_vectors
from clipsift.scorers.technical import (
    aggregate_technical,
    border_profile,
    find_borders,
    frame_technical,
)


def texture(h: int, w: int, seed: int = 0, lo: int = 40, hi: int = 220) -> np.ndarray:
    """Multi-scale noise: trackable at every scale, like natural images."""
    rng = np.random.default_rng(seed)
    img = np.zeros((h, w), np.float32)
    for s in (2, 4, 8, 16):
        n = rng.random((h // s + 2, w // s + 2)).astype(np.float32)
        img += cv2.resize(n, (w + 2 * s, h + 2 * s), interpolation=cv2.INTER_CUBIC)[:h, :w] * s**0.5
    return cv2.normalize(img, None, lo, hi, cv2.NORM_MINMAX).astype(np.uint8)


def shifted(img: np.ndarray, dx: float, dy: float, size: tuple[int, int]) -> np.ndarray:
    """Window of ``size`` (w, h) at offset (100 + dx, 100 + dy): content moves by (-dx, -dy)."""
    m = np.float32([[1, 0, 100 + dx], [0, 1, 100 + dy]])
    return cv2.warpAffine(img, m, size, flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP)


# ----------------------------------------------------------------------------- flash


def test_single_and_double_frame_flashes_found():
    luma = [80.0] * 20
    luma[5] = 200.0  # one frame
    luma[12] = luma[13] = 190.0  # two frames
    assert find_flashes(luma) == [5, 12, 13]


def test_dark_dropout_is_a_flash_but_not_longer_than_max_len():
    luma = [150.0] * 12
    luma[3] = 20.0
    luma[7:11] = [250.0] * 4  # four bright frames, max_len 3
    assert find_flashes(luma, max_len=3) == [3]


def test_hard_cut_and_slow_fade_are_not_flashes():
    cut = [60.0] * 10 + [200.0] * 10
    assert find_flashes(cut) == []
    fade = list(np.linspace(30, 230, 40))  # 5 per frame
    assert find_flashes(fade) == []
    # cut up, then back down 2 frames later to a slightly different level: still a flash
    luma = [100.0] * 5 + [210.0, 205.0] + [110.0] * 5
    assert find_flashes(luma) == [5, 6]


def test_a_flash_that_fades_out_is_found():
    """A camera flash, lightning or a dropout jumps in one frame and fades over a few (the
    tryout's: +117, +69, +32, +12): no run of it stands out from both sides, so the old rule
    saw none."""
    base = [97.0] * 8
    luma = base + [214.0, 166.0, 129.0, 109.0] + base
    assert find_flashes(luma, max_decay=8) == [8, 9, 10, 11]
    lightning = base + [217.0, 179.0, 145.0, 125.0, 99.0, 99.0, 228.0, 196.0, 159.0, 133.0] + base
    assert find_flashes(lightning, max_decay=8) == [8, 9, 10, 11, 14, 15, 16, 17]
    dropout = base + [20.0, 55.0, 80.0] + base  # dark, recovering
    assert find_flashes(dropout, max_decay=8) == [8, 9, 10]
    # not flashes: a bright insert that holds its level (a 4-frame shot), a cut up that fades
    # back down too slowly, a cut up that settles elsewhere, a cut up then down 10 frames on
    assert find_flashes(base + [200.0] * 4 + base, max_decay=8) == []
    assert find_flashes(base + list(np.linspace(200.0, 97.0, 20)) + base, max_decay=8) == []
    assert find_flashes(base + [214.0, 166.0, 140.0, 140.0, 140.0], max_decay=8) == []
    assert find_flashes(base + [214.0] * 10 + base, max_decay=8) == []
    # the decay's length is in frames: 0.25 s
    assert (decay_frames(30.0), decay_frames(60.0), decay_frames(None), decay_frames(8.0)) == (
        8, 15, 8, 3,
    )  # fmt: skip


def test_flash_frames_at_a_scene_edge_are_cut_off():
    """``edge_flashes``: a scene that opens on a flash (an edit's flash cut, a flash the detector
    cut at) or closes on one loses those frames; an ordinary scene, or one that is simply
    brighter than the one before, loses none."""
    a, b = [90.0] * 10, [130.0] * 10
    # A, two flash frames, B: the detector cuts at the flash (its end hides B's cut)
    assert edge_flashes(a + [225.0, 195.0] + b, [(0, 10), (10, 22)], 40.0, 8) == [[10, 11]]
    # A's last frame overexposed, then B; the cut at it or after it
    luma = a[:-1] + [200.0] + b
    assert edge_flashes(luma, [(0, 9), (9, 20)], 40.0, 8) == [[9, 9]]
    assert edge_flashes(luma, [(0, 10), (10, 20)], 40.0, 8) == [[9, 9]]
    # the first frames of a video, overexposed while the camera's exposure settles
    assert edge_flashes([230.0, 180.0, 140.0] + b, [(0, 13)], 40.0, 8) == [[0, 2]]
    # the detector cut inside the flash too: its first frame is a scene of its own, and the
    # scene after it opens on the faint rest of the decay (+20 levels: 10 % of the way to white)
    luma = a + [225.0, 170.0, 150.0] + b
    assert edge_flashes(luma, [(0, 10), (10, 11), (11, 23)], 40.0, 8) == [[10, 12]]
    assert edge_flashes(luma, [(0, 10), (10, 12), (12, 23)], 40.0, 8) == [[10, 12]]
    # a one-frame flash the detector cut either side of: B opens at its level, and the flash
    # frame's scene goes
    assert edge_flashes(a + [225.0] + b, [(0, 10), (10, 11), (11, 21)], 40.0, 8) == [[10, 10]]
    # nothing to cut: a plain cut to a brighter shot, a shot that brightens by 2 levels a frame
    assert edge_flashes(a + b, [(0, 10), (10, 20)], 40.0, 8) == []
    assert edge_flashes(list(np.arange(60.0, 120.0, 2.0)), [(0, 30)], 40.0, 8) == []
    assert edge_flashes(a + [230.0] * 10, [(0, 10), (10, 20)], 40.0, 8) == []


# ----------------------------------------------------------------------------- technical


def test_blur_lowers_sharpness_and_view_input_works():
    img = texture(360, 640)
    padded = np.zeros((360, 704), np.uint8)  # a decoded plane with line padding
    padded[:, :640] = img
    sharp = frame_technical(padded[:, :640])
    blurred = frame_technical(cv2.GaussianBlur(img, (0, 0), 2))
    assert sharp["sharpness"] > 3 * blurred["sharpness"] > 0
    assert sharp["sharpness"] == pytest.approx(cv2.Laplacian(img, cv2.CV_64F).var(), rel=1e-12)
    # a picture of extreme steps: the Laplacian's largest values, squared and summed, stay exact
    board = ((np.indices((1080, 1920)).sum(axis=0) % 2) * 255).astype(np.uint8)
    assert frame_technical(board, crop=[0, 0, 1920, 1080])["sharpness"] == 1020.0**2


def test_exposure_and_clipping():
    img = np.full((100, 200), 128, np.uint8)
    img[:, :50] = 10  # 25 % crushed
    img[:, 50:60] = 250  # 5 % blown
    t = frame_technical(img, crop=[0, 0, 200, 100])
    assert t["clipped_low"] == pytest.approx(0.25)
    assert t["clipped_high"] == pytest.approx(0.05)
    assert t["luma_mean"] == pytest.approx(img.mean())
    assert t["contrast"] == pytest.approx(img.std())
    assert (t["luma_min"], t["luma_max"]) == (10, 250)


def _boxed(top: int = 0, side: int = 0, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    frame = (16 + rng.integers(-3, 4, (360, 640))).astype(np.uint8)  # noisy video black
    frame[top : 360 - top, side : 640 - side] = texture(360 - 2 * top, 640 - 2 * side, seed)
    frame[frame.shape[0] // 2, side + 3] = 255  # a bright pixel next to the bars changes nothing
    return frame


def test_letterbox_and_pillarbox_crops():
    frames = [_boxed(top=44, seed=s) for s in range(3)]
    profiles = [border_profile(f) for f in frames]
    b = find_borders([r for r, _ in profiles], [c for _, c in profiles])
    assert b["crop"] == [0, 44, 640, 272]
    assert (b["border_top"], b["border_bottom"], b["border_left"], b["border_right"]) == (
        44,
        44,
        0,
        0,
    )
    assert b["border_ratio"] == pytest.approx(88 / 360)
    assert not b["all_black"]

    r, c = border_profile(_boxed(side=80))
    assert find_borders([r], [c])["crop"] == [80, 0, 480, 360]

    # bars are measured out: no crushed blacks reported for a letterboxed mid-grey picture
    assert frame_technical(frames[0])["clipped_low"] == 0.0


def test_borders_need_black_in_every_sample_and_all_black_is_flagged():
    dark = _boxed(top=44)
    full = texture(360, 640)
    rows, cols = zip(*(border_profile(f) for f in (dark, full)), strict=True)
    assert find_borders(rows, cols)["crop"] == [0, 0, 640, 360]
    black = np.full((360, 640), 16, np.uint8)
    b = find_borders(*([p] for p in border_profile(black)))
    assert b["all_black"] and b["crop"] == [0, 0, 640, 360] and b["border_ratio"] == 0.0


def test_aggregate_technical():
    samples = [frame_technical(texture(90, 160, s)) for s in range(3)]
    agg = aggregate_technical(samples)
    assert agg["n_samples"] == 3
    assert agg["sharpness_min"] == min(s["sharpness"] for s in samples)
    assert agg["sharpness_mean"] == pytest.approx(np.mean([s["sharpness"] for s in samples]))
    assert aggregate_technical([])["sharpness_mean"] is None


# ----------------------------------------------------------------------------- motion


@pytest.mark.parametrize("method", ["dis", "farneback"])
def test_flow_magnitude_of_a_known_shift(method):
    big = texture(600, 800)
    dx, dy = 5.0, -3.0
    a, b = shifted(big, 0, 0, (320, 180)), shifted(big, dx, dy, (320, 180))
    m = FlowMeter(method).measure(a, b)
    assert m["mag"] == pytest.approx(np.hypot(dx, dy), rel=0.1)
    assert m["dx"] == pytest.approx(-dx, rel=0.1) and m["dy"] == pytest.approx(-dy, rel=0.1)
    assert len(m["grid"]) == 16 and min(m["grid"]) > 0.5 * m["mag"]
    assert m["textured"] > 0.9  # the texture is measurable everywhere
    assert FlowMeter(method).measure(a, a.copy())["mag"] < 0.05


@pytest.mark.parametrize("method", ["dis", "farneback"])
def test_flow_of_a_flat_noisy_pair_is_no_motion(method):
    """Sensor noise on a flat grey frame: the raw flow reads px of motion, the measure 0."""
    rng = np.random.default_rng(0)
    a, b = (np.clip(128 + rng.normal(0, 3, (180, 320)), 0, 255).astype(np.uint8) for _ in "ab")
    m = FlowMeter(method).measure(a, b)
    assert m["mag"] == 0.0 and m["textured"] < 0.01 and np.isnan(m["grid"]).all()
    # half the frame textured and still: the noise in the flat half does not count
    a[90:], b[90:] = texture(90, 320), texture(90, 320)
    m = FlowMeter(method).measure(a, b)
    assert m["mag"] < 0.05 and 0.3 < m["textured"] < 0.6
    # grid rows of 45 px: the top one all flat, the bottom two all texture
    assert np.isnan(m["grid"][:4]).all() and max(m["grid"][8:]) < 0.05


def test_aggregate_motion_scales_to_source_pixels_per_second():
    samples = [
        {"mag": 2.0, "grid": [1.0, 3.0], "dt": 0.04, "textured": 1.0},
        {"mag": 4.0, "grid": [2.0, 3.0], "dt": 0.04, "textured": 0.5},
    ]
    agg = aggregate_motion(samples, scale=6.0, diagonal=2203.0, fps=25.0)
    assert agg["motion_px_per_s"] == pytest.approx(450.0)  # 3 px x 6 / 0.04 s
    assert agg["motion_rel_per_s"] == pytest.approx(450.0 / 2203.0)
    assert agg["motion_min_region_per_s"] == pytest.approx(225.0)
    assert agg["motion_textured"] == pytest.approx(0.75)
    assert agg["n_pairs"] == 2
    assert not {"motion_px", "motion_rel", "motion_min_region"} & set(agg)
    assert aggregate_motion([], scale=1, diagonal=1, fps=1)["motion_px_per_s"] is None


def _encode(path, dx: float, dy: float, n: int = 48, fps: int = 24) -> None:
    big = texture(700, 900)
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = 320, 240, "yuv420p"
        stream.options = {"crf": "20"}  # x264 defaults otherwise: B-frames, B-pyramid
        for i in range(n):
            gray = shifted(big, dx * i, dy * i, (320, 240))
            frame = av.VideoFrame.from_ndarray(
                cv2.cvtColor(gray, cv2.COLOR_GRAY2BGR), format="bgr24"
            )
            out.mux(stream.encode(frame))
        out.mux(stream.encode())


def test_motion_vectors_of_a_pan_and_a_still(tmp_path):
    _encode(tmp_path / "pan.mp4", 4, 2)
    _encode(tmp_path / "still.mp4", 0, 0)
    pan = motion_vectors(tmp_path / "pan.mp4", 0.0, 2.0)
    assert pan["n_frames"] >= 3
    assert pan["mv_px"] == pytest.approx(np.hypot(4, 2), rel=0.25)
    assert pan["mv_rel"] == pytest.approx(pan["mv_px"] / 560)
    assert pan["mv_min_region"] == pytest.approx(np.hypot(4, 2), rel=0.25)
    assert motion_vectors(tmp_path / "pan.mp4", 1.0, 2.0)["mv_px"] == pytest.approx(
        np.hypot(4, 2), rel=0.25
    )
    still = motion_vectors(tmp_path / "still.mp4", 0.0, 2.0)
    assert still["n_frames"] >= 3 and still["mv_px"] < 0.05


def test_the_motion_vectors_scorer_writes_the_columns_it_declares(tmp_path):
    """Thresholds are checked against the declared columns before the run; run_scorer stops a
    scorer that writes others."""
    import pandas as pd

    from clipsift.scorers import REGISTRY, ShardInputs, run_scorer

    _encode(tmp_path / "pan.mp4", 4, 2)
    clips = pd.DataFrame(
        [{"clip_id": "c", "source_path": str(tmp_path / "pan.mp4"), "start_time": 0.0,
          "end_time": 2.0, "error": None, "split_reason": None}]
    )  # fmt: skip
    out = run_scorer("motion_vectors", ShardInputs(clips, pd.DataFrame()), {})
    assert out["error"].isna().all()
    assert set(out.columns) - {"clip_id", "error"} == set(REGISTRY["motion_vectors"].columns)
    assert out.loc[0, "px_per_s"] > 0


def test_motion_vectors_per_second_are_the_same_at_24_and_48_fps(tmp_path):
    """One pan speed in px per second at two frame rates: the per-frame values halve, the
    per-second ones (each frame's vectors over the real time from its reference) do not."""
    _encode(tmp_path / "24.mp4", 4, 2, n=48, fps=24)
    _encode(tmp_path / "48.mp4", 2, 1, n=96, fps=48)
    slow, fast = (motion_vectors(tmp_path / f"{r}.mp4", 0.0, 2.0) for r in (24, 48))
    truth = np.hypot(4, 2) * 24  # px per second
    for mv in (slow, fast):
        assert mv["n_frames"] >= 3
        assert mv["mv_px_per_s"] == pytest.approx(truth, rel=0.25)
        assert mv["mv_rel_per_s"] == pytest.approx(mv["mv_px_per_s"] / 400)  # 320x240
        assert mv["mv_min_region_per_s"] == pytest.approx(truth, rel=0.25)
    assert fast["mv_px_per_s"] == pytest.approx(slow["mv_px_per_s"], rel=0.1)
    assert fast["mv_px"] == pytest.approx(slow["mv_px"] / 2, rel=0.1)


# ----------------------------------------------------------------------------- OCR


def test_text_area_ratio_counts_overlaps_once():
    boxes = [{"box": [0, 0, 10, 10]}, {"box": [5, 0, 10, 10]}, {"box": [95, 95, 10, 10]}]
    assert text_area_ratio(boxes, 100, 100) == pytest.approx((150 + 25) / 10000)
    assert text_area_ratio([], 100, 100) == 0.0


def test_stable_text_tracks():
    sub = {"box": [100, 300, 400, 40], "text": "a subtitle"}
    moved = {"box": [101, 301, 400, 40], "text": "a subtitle"}
    sign = {"box": [10, 10, 50, 20], "text": "EXIT"}
    far = {"box": [200, 10, 50, 20], "text": "EXIT"}
    tracks = stable_text([[sub, sign], [moved, far], [], [sub], [sub]])
    assert [(t["box"], t["frames"]) for t in tracks] == [
        ([100, 300, 400, 40], [0, 1]),
        ([100, 300, 400, 40], [3, 4]),
    ]
    assert tracks[0]["text"] == "a subtitle"


def test_ocr_gpu_request_falls_back_to_cpu_with_a_warning():
    import onnxruntime

    if "CUDAExecutionProvider" in onnxruntime.get_available_providers():
        pytest.skip("CUDA provider installed")
    with pytest.warns(UserWarning, match="CPU"):
        OcrReader(use_gpu=True)
    with pytest.raises(ValueError):
        OcrReader(lang="fr")


@pytest.fixture(scope="module")
def reader():
    return OcrReader()


def _text_frame(seed: int) -> tuple[np.ndarray, np.ndarray]:
    bg = cv2.cvtColor(texture(360, 640, seed, lo=0, hi=70), cv2.COLOR_GRAY2BGR)
    img = bg.copy()  # text about 40 px high
    cv2.putText(
        img,
        "HELLO WORLD",
        (120, 200),
        cv2.FONT_HERSHEY_SIMPLEX,
        1.6,
        (255, 255, 255),
        3,
        cv2.LINE_AA,
    )
    return img, bg


def test_ocr_reads_rendered_text_and_ignores_texture(reader):
    img, bg = _text_frame(0)
    boxes = reader.read(img)
    assert any("HELLO" in b["text"].upper() for b in boxes)
    x, y, w, h = boxes[0]["box"]
    assert 100 <= x <= 130 and 150 <= y <= 175 and 290 <= w <= 340 and 30 <= h <= 60
    assert boxes[0]["conf"] >= 0.5 and boxes[0]["text_like"]
    assert text_area_ratio(boxes, 640, 360) > 0
    assert reader.read(bg) == []
    # a larger frame is read at max_side and boxes come back in its own pixels
    big = reader.read(cv2.resize(img, (1280, 720)))
    assert big and big[0]["box"][0] == pytest.approx(2 * x, abs=12)


def test_ocr_record_finds_stable_text(reader):
    frames = [_text_frame(s)[0] for s in (1, 2)]
    # the same text over a different background: the detector's box moves by a few pixels
    # (measured IoU 0.87 here), so the peers' 0.9 would split the track
    rec = ocr_record(frames, [10, 40], reader, stable_iou=0.8)
    assert rec["has_stable_text"] and rec["stable_text"][0]["frames"] == [10, 40]
    assert "HELLO" in rec["stable_text"][0]["text"].upper()
    assert rec["text_area_mean"] > 0.02 and rec["text_area_max"] >= rec["text_area_mean"]
    assert [f["frame"] for f in rec["frames"]] == [10, 40]


SCAN_TWICE = """
import hashlib, sys
import pandas as pd
from clipsift.config import validate_config
from clipsift.filters.ocr import SCAN_KEYS
from clipsift.split.scan import scan_shard
cfg = validate_config({"sources": [{"name": "v", "type": "folder", "path": "."}]})
ocr = {k: cfg["filters"]["ocr"][k] for k in SCAN_KEYS}
src = pd.DataFrame([{"path": sys.argv[1], "video_id": "v", "fps": 30.0, "duration": 4.0}])
_, _, samples, _ = scan_shard(src, cfg["scan"], ocr)
print(hashlib.sha256(samples.to_json().encode()).hexdigest())
"""


@pytest.mark.slow
def test_the_same_video_scanned_again_gives_the_same_samples(tmp_path):
    """Motion samples are summed in float64 numpy in a fixed order: with OCR in the scan, OpenCV's
    float32 reductions gave the first flow pair last-bit differences in about half of the
    processes (the memory alignment of their arrays)."""
    import subprocess
    import sys

    from clipsift.sample import render_video, sample_plan

    video = tmp_path / "v.mp4"
    render_video(video, sample_plan()["cuts.mp4"], fps=30, size=(640, 360))
    runs = {
        subprocess.run(
            [sys.executable, "-c", SCAN_TWICE, str(video)], capture_output=True, text=True,
            check=True,
        ).stdout.strip()
        for _ in range(4)
    }  # fmt: skip
    assert len(runs) == 1, runs


@pytest.mark.slow
def test_the_scan_skips_deblocking_only_where_no_measure_of_pixels_sees_it(tmp_path):
    """``scan.skip_loop_filter: noref`` decodes the frames no other frame predicts from (x264's
    B-frames here) without H.264's deblocking filter. Their blockier pixels never spread, and a
    sample due on such a frame moves to the next deblocked one: every sample's technical
    measures are exactly those of a full decode of its frame, while the same measure on a
    skipped B-frame is not (what the move avoids). Cuts are those of a full decode."""
    from clipsift.config import validate_config
    from clipsift.io.decode import iter_frames
    from clipsift.sample import render_video, sample_plan
    from clipsift.split.scan import _sample, scan_video

    video = tmp_path / "v.mp4"
    # crf 32: blocks the filter has work on, as in much of what users download
    render_video(video, sample_plan()["motion.mp4"], fps=30, size=(640, 360), crf=32)
    cfg = validate_config({"sources": [{"name": "v", "type": "folder", "path": "."}]})["scan"]
    assert cfg["skip_loop_filter"] == "noref"  # the default
    every = round(30 / cfg["sample_fps"])
    skipped = scan_video(str(video), "v", 30.0, cfg)
    full = scan_video(str(video), "v", 30.0, cfg | {"skip_loop_filter": "none"})
    assert [s["start_frame"] for s in skipped[0]] == [s["start_frame"] for s in full[0]]

    frames = {fr.index: fr for fr in iter_frames(video)}  # every frame deblocked
    bframes = {
        i for i, fr in frames.items() if fr.av_frame.pict_type == av.video.frame.PictureType.B
    }
    grid = [s["frame"] for s in full[2]]
    assert grid == list(range(0, len(frames), every))
    moved = [g for g in grid if g in bframes]
    assert len(skipped[2]) >= len(grid) - 1  # the last one may find no deblocked frame
    assert moved, "no sample was due on a B-frame: the test shows nothing"
    for row in skipped[2]:
        g = row["frame"] // every * every
        assert row["frame"] - g < every and (row["frame"] == g) == (g not in bframes)
        assert row["frame"] not in bframes or row["frame"] - g == every - 1
        want = _sample(frames[row["frame"]], cfg["analysis_width"], "v")
        assert {k: row[k] for k in want} == want, row["frame"]

    # what the move avoids: a B-frame decoded without the filter measures otherwise
    blocky = {
        fr.index: frame_technical(fr.luma())["sharpness"]
        for fr in iter_frames(video, skip_loop_filter="noref")
        if fr.index in moved
    }
    assert any(blocky[i] != frame_technical(frames[i].luma())["sharpness"] for i in moved), (
        "decoding without the filter changed no B-frame: the default would not need the move"
    )
