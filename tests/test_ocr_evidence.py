"""OCR tells text from texture (issue 12): busy textless textures give no text-like box and no
text area; rendered text of several sizes (one-word signs, subtitles, titles) is text-like. Real
RapidOCR, small frames (560x315: what the scan hands the reader at the default max_side)."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pandas as pd
import pytest

from clipsift.config import validate_config
from clipsift.filters.ocr import ocr_from_scan, ocr_record, ocr_shard, summarise
from clipsift.filters.ocr_reader import OcrReader, det_size, is_text_like, text_chars
from clipsift.textures import KINDS, busy_texture

W, H = 560, 315
FONT = cv2.FONT_HERSHEY_DUPLEX


@pytest.fixture(scope="module")
def reader():
    return OcrReader()  # the schema defaults


def bgr_texture(kind: str, seed: int) -> np.ndarray:
    return np.ascontiguousarray(busy_texture(kind, seed, H, W)[..., ::-1])


def glints(seed: int) -> np.ndarray:
    """Bold bright arcs on a dark plain ground (highlights on glass): the detector boxes them
    and the recogniser reads single glyphs (C, O, J, n) at up to 0.94 confidence."""
    rng = np.random.default_rng(seed)
    img = np.full((H, W, 3), 30, np.uint8)
    for _ in range(int(rng.integers(3, 10))):
        centre = (int(rng.uniform(0, W)), int(rng.uniform(0, H)))
        axes = (int(rng.uniform(8, 45)), int(rng.uniform(8, 45)))
        a0 = rng.uniform(0, 360)
        sweep = rng.uniform(90, 300)
        thick = int(rng.uniform(2, 7))
        cv2.ellipse(img, centre, axes, rng.uniform(0, 180), a0, a0 + sweep, (240, 240, 240), thick,
                    cv2.LINE_AA)  # fmt: skip
    return img


def with_text(img: np.ndarray, text: str, cap: float, style: str, at=None) -> tuple:
    """``img`` with ``text`` of cap height ~``cap`` px burned in; returns (image, box x, y, w, h).
    ``subtitle``: white with a black outline, bottom centre; ``sign``: dark on a light plate;
    ``title``: yellow with a drop shadow."""
    img = img.copy()
    fs = cap / 22
    thick = max(1, round(cap / 9))
    (tw, th), base = cv2.getTextSize(text, FONT, fs, thick)
    if at is None:
        x, y = (W - tw) // 2, int(H * 0.9) - base
    else:
        x, y = at
    pad = max(3, round(cap / 3))
    if style == "sign":
        cv2.rectangle(
            img, (x - pad, y - th - pad), (x + tw + pad, y + base + pad), (235, 240, 240), -1
        )
        cv2.putText(img, text, (x, y), FONT, fs, (30, 20, 20), thick, cv2.LINE_AA)
        return img, (x - pad, y - th - pad, tw + 2 * pad, th + base + 2 * pad)
    if style == "subtitle":
        mask = np.zeros(img.shape[:2], np.uint8)
        cv2.putText(mask, text, (x, y), FONT, fs, 255, thick, cv2.LINE_AA)
        r = max(1, round(cap / 10))
        ring = cv2.dilate(mask, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * r + 1,) * 2))
        img[ring > 0] = 0
        a = mask.astype(np.float32)[..., None] / 255
        img[:] = (img * (1 - a) + 255 * a).astype(np.uint8)
    else:  # title
        off = max(1, round(cap / 15))
        cv2.putText(img, text, (x + off, y + off), FONT, fs, (0, 0, 0), thick, cv2.LINE_AA)
        cv2.putText(img, text, (x, y), FONT, fs, (0, 230, 255), thick, cv2.LINE_AA)
    return img, (x, y - th, tw, th + base)


def overlaps(box, gt) -> bool:
    ax, ay, aw, ah = box
    bx, by, bw, bh = gt
    iw = min(ax + aw, bx + bw) - max(ax, bx)
    ih = min(ay + ah, by + bh) - max(ay, by)
    return iw > 0 and ih > 0 and iw * ih >= 0.5 * min(aw * ah, bw * bh)


def letters(s: str) -> set[str]:
    return {c for c in s.upper() if c.isalnum()}


# ----------------------------------------------------------------------------- pure functions


def test_text_chars_counts_distinct_letters_and_digits():
    assert text_chars("C") == 1
    assert text_chars("CC") == 1 and text_chars("888") == 1  # repeated glyphs: texture
    assert text_chars(",2") == 1 and text_chars("##") == 0
    assert text_chars("Zoo") == 2 and text_chars("OK") == 2 and text_chars("24") == 2
    assert text_chars("中本") == 2  # the 'ch' models read Chinese: a character is a letter
    assert text_chars(None) == 0


def test_is_text_like_needs_letters_and_confidence():
    assert is_text_like("EXIT", 0.99)
    assert not is_text_like("C", 0.94)  # a single glyph, however confident
    assert not is_text_like("55J", 0.6)  # letters, but read unsure
    assert not is_text_like("EXIT", None)
    assert is_text_like("C", 0.94, min_chars=1)


def test_det_size_keeps_the_height_and_narrows_the_width():
    assert det_size(640, 360, 480, 1.0) == (480, 256)  # what RapidOCR itself rounded to
    assert det_size(640, 360, 480, 0.8) == (384, 256)
    assert det_size(480, 270, 480, 0.8) == (384, 256)
    assert det_size(1920, 1080, 480, 0.8) == (384, 256)
    assert det_size(270, 480, 480, 0.8) == (224, 480)  # portrait: text height kept too
    assert det_size(100, 40, 480, 1.0) == (96, 32)  # small frames are not upscaled (but rounded)
    assert det_size(560, 315, 560, 0.8) == (448, 320)  # the scan's 16:9 frame at the default


def test_busy_textures_are_deterministic_rgb_of_the_asked_size():
    for kind in KINDS:
        a = busy_texture(kind, 3, 90, 160)
        assert a.shape == (90, 160, 3) and a.dtype == np.uint8, kind
        assert np.array_equal(a, busy_texture(kind, 3, 90, 160)), kind
        assert not np.array_equal(a, busy_texture(kind, 4, 90, 160)), kind
        assert a.std() > 10, f"{kind} is not busy"
    with pytest.raises(ValueError, match="kind"):
        busy_texture("marble", 0, 90, 160)


# ----------------------------------------------------------------------------- real RapidOCR


def test_reader_defaults_are_the_schema_defaults(tmp_path):
    cfg = validate_config({"sources": [{"name": "v", "type": "folder", "path": str(tmp_path)}]})
    ocr = cfg["filters"]["ocr"]
    plain, configured = OcrReader(), OcrReader.from_config(ocr)
    for key in ("threshold", "max_side", "width_scale", "box_thresh", "min_chars", "min_conf"):
        assert getattr(plain, key) == getattr(configured, key) == ocr[key], key
    assert OcrReader.from_config(ocr | {"min_chars": 1, "width_scale": 1.0}).min_chars == 1


def test_detector_input_is_rapidocrs_own_bit_for_bit(reader):
    """The reader's table-based detector preprocessing gives RapidOCR's float32 input exactly,
    at the sizes read() hands it and at sizes RapidOCR itself resizes."""
    det = reader._engine.text_det
    rapidocr = type(det).get_preprocess  # RapidOCR's own, unpatched
    rng = np.random.default_rng(0)
    for h, w in [(256, 384), (224, 320), (480, 480), (270, 480), (1080, 1920), (33, 50)]:
        img = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
        ours, theirs = det.get_preprocess(max(h, w))(img), rapidocr(det, max(h, w))(img)
        assert ours.dtype == theirs.dtype == np.float32 and ours.flags["C_CONTIGUOUS"]
        assert np.array_equal(ours, theirs), (h, w)
    # a frame that is not 3-channel uint8 goes through RapidOCR's own preprocessing
    img = rng.random((64, 96, 3)).astype(np.float32) * 255
    assert np.array_equal(det.get_preprocess(96)(img), rapidocr(det, 96)(img))


@pytest.mark.parametrize("kind", KINDS)
def test_busy_textures_give_no_text_like_box(reader, kind):
    for seed in range(3):
        boxes = reader.read(bgr_texture(kind, seed))
        assert not [b for b in boxes if b["text_like"]], (kind, seed, boxes)


def test_glyphs_read_on_glints_are_recorded_but_are_not_text(reader):
    frames = [glints(s) for s in range(4)]
    rec = ocr_record(frames, [0, 30, 60, 90], reader, stable_iou=0.8)
    boxes = [b for f in rec["frames"] for b in f["boxes"]]
    # before the evidence rule these boxes (confidence >= 0.5) were text: 2-15 % of the frame
    assert boxes, "the detector no longer boxes bright arcs: pick a harder texture"
    assert not any(b["text_like"] for b in boxes)
    assert rec["text_area_mean"] == 0 and rec["text_area_max"] == 0
    assert not rec["has_stable_text"]


@pytest.mark.parametrize(
    ("text", "cap", "style", "at", "kind"),
    [
        ("EXIT", 14, "sign", (60, 80), "foliage"),  # a small one-word sign
        ("OPEN", 30, "sign", (250, 150), "stone"),
        ("OK", 26, "sign", (120, 120), "fractal"),  # two letters
        ("Where are you going?", 13, "subtitle", None, "fabric"),  # small subtitle
        ("It's not what it looks like", 20, "subtitle", None, "cellular"),
        ("THE END", 48, "title", (80, 140), "glass"),  # big title
    ],
)
def test_rendered_text_is_text_like(reader, text, cap, style, at, kind):
    img, gt = with_text(bgr_texture(kind, 1), text, cap, style, at)
    boxes = [b for b in reader.read(img) if b["text_like"]]
    hits = [b for b in boxes if overlaps(b["box"], gt)]
    assert hits, (gt, reader.read(img))
    # read loosely: most of the letters are there
    read = set().union(*(letters(b["text"]) for b in hits))
    assert len(read & letters(text)) >= 0.6 * len(letters(text)), (text, read)


def test_scan_rows_of_textured_clip_have_no_text_area(reader):
    """ocr_from_scan on rows the scan would write (textures only): text area 0, no stable text;
    and the flag is decided again from the config's evidence options."""
    frames = [bgr_texture(k, 0) for k in KINDS] + [glints(1), glints(2)]
    rows = pd.DataFrame(
        [
            {"video_id": "v", "frame": 30 * i, "time": float(i), "width": W, "height": H,
             "boxes": json.dumps(reader.read(img))}
            for i, img in enumerate(frames)
        ]
    )  # fmt: skip
    clips = pd.DataFrame(
        [{"clip_id": "v-0", "video_id": "v", "start_frame": 0, "end_frame": 30 * len(frames),
          "error": None, "split_reason": None}]
    )  # fmt: skip
    cfg = {"every_seconds": 1.0, "stable_iou": 0.8, "min_chars": 2, "min_conf": 0.8}
    rec = ocr_from_scan(clips, rows, cfg)["v-0"]
    assert rec["error"] is None
    assert rec["text_area_mean"] == 0 and rec["text_area_max"] == 0
    assert rec["text_frame_ratio"] == 0 and not rec["has_stable_text"]
    assert any(f["boxes"] for f in rec["frames"])  # the glyph boxes stay in the record
    # with single glyphs allowed as text, the same rows count them (the rule, not the reader)
    loose = ocr_from_scan(clips, rows, cfg | {"min_chars": 1, "min_conf": 0.5})["v-0"]
    assert loose["text_area_max"] > 0


def test_summarise_counts_only_text_like_boxes():
    sub = {"box": [0, 80, 100, 20], "text": "a subtitle", "conf": 0.97, "text_like": True}
    glyph = {"box": [0, 0, 50, 50], "text": "C", "conf": 0.9, "text_like": False}
    legacy = {"box": [50, 0, 50, 10], "text": "x", "conf": 0.6}  # rows without the flag: text
    frames = [
        {"frame": 0, "boxes": [sub, glyph], "width": 100, "height": 100},
        {"frame": 5, "boxes": [sub, glyph, legacy], "width": 100, "height": 100},
    ]
    rec = summarise(frames, stable_iou=0.8)
    assert rec["text_area_mean"] == pytest.approx((0.2 + 0.25) / 2)
    assert rec["text_frame_ratio"] == 1.0
    assert [t["text"] for t in rec["stable_text"]] == ["a subtitle"]
    assert [len(f["boxes"]) for f in rec["frames"]] == [2, 3]  # every box stays as data
    # decided again from text and confidence: the legacy box is one letter, not text
    again = summarise(frames, stable_iou=0.8, min_chars=2, min_conf=0.8)
    assert again["text_area_max"] == pytest.approx(0.2)
    assert [b["text_like"] for b in again["frames"][1]["boxes"]] == [True, False, False]


def test_a_clip_between_grid_frames_is_read_by_seeking(tmp_path, reader):
    """With filters.ocr.every_seconds longer than a clip, the scan's grid can miss the clip; its
    record then comes from its first, middle and last frame, read by seeking, not an error."""
    from clipsift.config import validate_config
    from clipsift.ingest import ingest_shard
    from clipsift.painting import Segment
    from clipsift.sample import render_video
    from clipsift.split.clips import scenes_to_clips
    from clipsift.split.scan import scan_shard

    video = tmp_path / "v.mp4"
    render_video(
        video,
        [Segment(75, seed=1, pan=(2, 0)), Segment(60, seed=9, text="SALE ENDS FRIDAY"),
         Segment(75, seed=4, pan=(0, 1))],
        fps=30, size=(640, 360),
    )  # fmt: skip
    cfg = validate_config({"sources": [{"name": "v", "type": "folder", "path": str(tmp_path)}]})
    ocr_cfg = cfg["filters"]["ocr"] | {"every_seconds": 5.0}  # grid frames at 0 s and 5 s
    items = pd.DataFrame(
        [{"source": "v", "video_id": "v", "uri": str(video), "path": str(video), "caption": None}]
    )
    source = ingest_shard(items)
    scenes, frames, _, rows = scan_shard(source, cfg["scan"], ocr_cfg)
    clips = scenes_to_clips(scenes, source, cfg["split"] | {"min_seconds": 1.5}, frames)
    kept = clips[clips["split_reason"].isna() & clips["error"].isna()]
    assert list(kept["start_frame"]) == [0, 75, 135], kept
    assert sorted(rows["frame"]) == [0, 150]  # the middle clip (2.5-4.5 s) holds none
    prepared = []
    records = ocr_from_scan(kept, rows, ocr_cfg, prepare=lambda: prepared.append(1))
    assert prepared == [1]  # called once, before the reads (the job's archive members)
    assert list(records) == list(kept["clip_id"])
    middle = records[kept["clip_id"].iloc[1]]
    assert middle["error"] is None, middle
    assert len(middle["frames"]) == 3  # first, middle and last
    assert all(75 <= f["frame"] < 135 for f in middle["frames"]), middle["frames"]
    assert middle["text_frame_ratio"] == 1 and middle["text_area_mean"] > 0
    for clip_id in kept["clip_id"].iloc[[0, 2]]:  # the others: the scan's rows, no text
        rec = records[clip_id]
        assert rec["error"] is None and len(rec["frames"]) == 1 and rec["text_frame_ratio"] == 0


def test_quiet_footage_reads_every_other_grid_frame_and_text_the_full_grid(tmp_path):
    """OcrGrid at every_seconds 1 and quiet_every_seconds 2: text-free shots read one frame in
    two; the frame before the text's first read is read after all, and the text shot gets the
    same frames and the same record as with the full grid (quiet_every_seconds null)."""
    from clipsift.config import validate_config
    from clipsift.ingest import ingest_shard
    from clipsift.painting import Segment
    from clipsift.sample import render_video
    from clipsift.split.clips import scenes_to_clips
    from clipsift.split.scan import scan_shard

    video = tmp_path / "v.mp4"
    render_video(
        video,
        [Segment(90, seed=1, pan=(1, 0), texture="flat"),  # 0-3 s
         Segment(120, seed=9, text="SALE ENDS FRIDAY"),  # 3-7 s
         Segment(90, seed=4, pan=(0, 1), texture="flat")],  # 7-10 s
        fps=30, size=(640, 360),
    )  # fmt: skip
    cfg = validate_config({"sources": [{"name": "v", "type": "folder", "path": str(tmp_path)}]})
    ocr_cfg = cfg["filters"]["ocr"]
    assert (ocr_cfg["every_seconds"], ocr_cfg["quiet_every_seconds"]) == (1.0, 2.0)
    items = pd.DataFrame(
        [{"source": "v", "video_id": "v", "uri": str(video), "path": str(video), "caption": None}]
    )
    source = ingest_shard(items)
    quiet = scan_shard(source, cfg["scan"], ocr_cfg)
    full = scan_shard(source, cfg["scan"], ocr_cfg | {"quiet_every_seconds": None})
    rows, full_rows = quiet[3], full[3]
    assert list(full_rows["frame"]) == list(range(0, 300, 30))
    found = {int(r.frame) for r in full_rows.itertuples() if json.loads(r.boxes)}
    assert found == {90, 120, 150, 180}, found  # the text shot, nothing on the flat shots
    # 0 (none) .. 60 (none) .. 120 (text: 90 read after all) 150 180 210 (none) .. 270
    assert list(rows["frame"]) == [0, 60, 90, 120, 150, 180, 210, 270]
    same = full_rows.set_index("frame").loc[list(rows["frame"])].reset_index()
    pd.testing.assert_frame_equal(rows.reset_index(drop=True), same[rows.columns])
    clips = scenes_to_clips(quiet[0], source, cfg["split"], quiet[1])
    kept = clips[clips["split_reason"].isna() & clips["error"].isna()]
    assert list(kept["start_frame"]) == [0, 90, 210], kept
    text_clip = kept["clip_id"].iloc[1]
    prepared = []
    a = ocr_from_scan(kept, rows, ocr_cfg, prepare=lambda: prepared.append(1))
    assert not prepared  # every clip holds a frame the scan read: nothing to seek
    b = ocr_from_scan(kept, full_rows, ocr_cfg)
    assert a[text_clip] == b[text_clip] and a[text_clip]["text_frame_ratio"] == 1
    for clip_id in kept["clip_id"].iloc[[0, 2]]:
        assert a[clip_id]["error"] is None and a[clip_id]["text_frame_ratio"] == 0
        assert len(a[clip_id]["frames"]) < len(b[clip_id]["frames"])


@pytest.mark.parametrize("rotation", [0, 90])
def test_non_square_pixels_are_read_at_the_display_aspect(tmp_path, rotation):
    """A small anamorphic video (display 400x224 from 300x224 pixels of aspect 4:3; turned a
    quarter in a phone's MOV) under ``max_side``: the scan's OCR frames and the seek modes' are
    its display picture, so the boxes are where a viewer sees the text (they were squeezed to
    the coded width, and the row's size was the coded one)."""
    from clipsift.config import validate_config
    from clipsift.ingest import ingest_shard
    from clipsift.painting import Segment
    from clipsift.sample import render_video
    from clipsift.split.clips import scenes_to_clips
    from clipsift.split.scan import scan_shard

    video = tmp_path / ("v.mov" if rotation else "v.mp4")
    size = (224, 400) if rotation else (400, 224)
    truth = render_video(video, [Segment(60, seed=9, text="SALE ENDS FRIDAY", text_scale=1.4)],
                         fps=30, size=size, sar=(4, 3), rotation=rotation)  # fmt: skip
    assert (truth["coded_width"], truth["coded_height"]) == (300, 224)  # stored turned back
    x, y, w, h = truth["text"][0]["box"]
    cfg = validate_config({"sources": [{"name": "v", "type": "folder", "path": str(tmp_path)}]})
    ocr_cfg = cfg["filters"]["ocr"]
    items = pd.DataFrame(
        [{"source": "v", "video_id": "v", "uri": str(video), "path": str(video), "caption": None}]
    )
    source = ingest_shard(items)
    assert (source["width"].iloc[0], source["height"].iloc[0]) == size
    scenes, frames, _, rows = scan_shard(source, cfg["scan"], ocr_cfg)
    assert len(rows) == 2
    assert {(r.width, r.height) for r in rows.itertuples()} == {size}

    def text_box(boxes):
        found = [b["box"] for b in boxes if b["text_like"]]
        assert len(found) == 1, boxes
        return found[0]

    clips = scenes_to_clips(scenes, source, cfg["split"] | {"min_seconds": 1.0}, frames)
    seeking = ocr_shard(clips, ocr_cfg | {"frames": "first_middle_last"})
    read = [text_box(json.loads(r.boxes)) for r in rows.itertuples()]
    read += [text_box(f["boxes"]) for rec in seeking.values() for f in rec["frames"]]
    assert len(read) == 5
    for bx, by, bw, bh in read:  # the line's ends within a few pixels of the drawn ones
        assert abs(bx - x) <= 0.03 * size[0] and abs(bx + bw - (x + w)) <= 0.03 * size[0]
        assert by <= y + h and by + bh >= y
