"""On-screen text per clip: text-area ratio, share of frames with text and stable text, from the
text-like boxes of :mod:`clipsift.filters.ocr_reader` (read by the scan on a time grid, or here
by seeking in the seek modes). Measurements only: the verdicts are the selection's, from the
tests of ``MEASURE``.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence

import numpy as np

from ..models.frames import sample_span
from ..split.clips import last_time, rows_in_clip, skip_reason
from . import Measure, Test
from .ocr_reader import OcrReader, is_text_like

# The filters.ocr options that change what the scan reads from a frame (its OCR rows). The
# others (min_chars, min_conf, stable_iou, ...) are applied again by the ocr step to those rows,
# so changing them never decodes the videos again.
SCAN_KEYS = ("threshold", "lang", "max_side", "box_thresh", "width_scale", "gpu", "every_seconds",
             "quiet_every_seconds", "lean_graph")  # fmt: skip


def text_area_ratio(boxes: Sequence[dict], width: int, height: int) -> float:
    """Area of the union of the boxes (overlaps count once) / frame area."""
    if not boxes or width <= 0 or height <= 0:
        return 0.0
    mask = np.zeros((height, width), dtype=np.uint8)
    for b in boxes:
        x, y, w, h = b["box"]
        mask[max(0, y) : max(0, y + h), max(0, x) : max(0, x + w)] = 1
    return float(np.count_nonzero(mask)) / (width * height)


def _iou(a: Sequence[float], b: Sequence[float]) -> float:
    ax, ay, aw, ah = a
    bx, by, bw, bh = b
    iw = max(0.0, min(ax + aw, bx + bw) - max(ax, bx))
    ih = max(0.0, min(ay + ah, by + bh) - max(ay, by))
    inter = iw * ih
    union = aw * ah + bw * bh - inter
    return inter / union if union > 0 else 0.0


def stable_text(
    frames_boxes: Sequence[Sequence[dict]], *, iou: float = 0.9, min_frames: int = 2
) -> list[dict]:
    """Text boxes that stay put (IoU >= ``iou``) over consecutive analysed frames: subtitles,
    captions, logos, watermarks. Tracks are matched greedily, best IoU first, one box per track
    and frame; returns ``{"box" (first), "text" (most frequent), "frames"}`` for tracks seen in at
    least ``min_frames`` frames (Cosmos-Curate asks 10 frames at every 3rd frame; we analyse
    far fewer frames per clip).

    IoU 0.9 is the peers' value, but it is strict for small boxes: the same 40-px-high line
    rendered over 8 different backgrounds at 640x360 gave consecutive IoUs of 0.87-1.0 (the
    detector's box height moved between 38 and 43 px), so 0.8 keeps such tracks whole."""
    done: list[dict] = []
    active: list[dict] = []
    for i, boxes in enumerate(frames_boxes):
        pairs = sorted(
            (
                (_iou(t["last"], b["box"]), ti, bi)
                for ti, t in enumerate(active)
                for bi, b in enumerate(boxes)
            ),
            reverse=True,
        )
        used_t, used_b, nxt = set(), set(), []
        for score, ti, bi in pairs:
            if score < iou:
                break
            if ti in used_t or bi in used_b:
                continue
            used_t.add(ti)
            used_b.add(bi)
            t = active[ti]
            t["last"] = boxes[bi]["box"]
            t["frames"].append(i)
            t["texts"].append(boxes[bi]["text"])
            nxt.append(t)
        done += [t for ti, t in enumerate(active) if ti not in used_t]
        for bi, b in enumerate(boxes):
            if bi not in used_b:
                nxt.append(
                    {"box": list(b["box"]), "last": b["box"], "frames": [i], "texts": [b["text"]]}
                )
        active = nxt
    tracks = [t for t in done + active if len(t["frames"]) >= min_frames]
    tracks.sort(key=lambda t: t["frames"][0])
    return [
        {"box": t["box"], "text": Counter(t["texts"]).most_common(1)[0][0], "frames": t["frames"]}
        for t in tracks
    ]


def ocr_record(
    frames: Sequence[np.ndarray],
    frame_numbers: Sequence[int],
    reader: OcrReader,
    *,
    stable_iou: float = 0.9,
) -> dict:
    """OCR record of one clip from a few BGR frames (``frame_numbers``: their source frames)."""
    per_frame = [
        {"frame": int(n), "boxes": reader.read(img), "width": img.shape[1], "height": img.shape[0]}
        for img, n in zip(frames, frame_numbers, strict=True)
    ]
    return summarise(per_frame, stable_iou=stable_iou)


def summarise(
    per_frame: list[dict],
    *,
    stable_iou: float = 0.9,
    min_chars: int | None = None,
    min_conf: float | None = None,
) -> dict:
    """Per-clip OCR record from per-frame ``{frame, boxes, width, height}``: the text-area ratio
    (mean and max over frames), the share of frames with text and stable text (boxes repeated in
    consecutive analysed frames), all from the text-like boxes only. Every recorded box stays in
    ``frames`` with its ``text_like`` flag: given ``min_chars`` and ``min_conf``, the flag is
    decided again from each box's text and confidence (:func:`is_text_like`); otherwise the
    reader's flag is kept, and a box without one (rows written before the flag existed) counts as
    text.
    Measurements only: verdicts against thresholds are the selection's."""
    if min_chars is not None and min_conf is not None:
        per_frame = [
            f | {"boxes": [
                b | {"text_like": is_text_like(b.get("text"), b.get("conf"), min_chars=min_chars,
                                               min_conf=min_conf)}
                for b in f["boxes"]
            ]}
            for f in per_frame
        ]  # fmt: skip
    texts = [[b for b in f["boxes"] if b.get("text_like", True)] for f in per_frame]
    areas = [
        text_area_ratio(t, f["width"], f["height"]) for t, f in zip(texts, per_frame, strict=True)
    ]
    tracks = stable_text(texts, iou=stable_iou)
    for t in tracks:  # indices into the analysed frames -> source frame numbers
        t["frames"] = [per_frame[i]["frame"] for i in t["frames"]]
    return {
        "frames": [{"frame": f["frame"], "boxes": f["boxes"]} for f in per_frame],
        "text_area_mean": float(np.mean(areas)) if areas else None,
        "text_area_max": float(max(areas)) if areas else None,
        # share of the analysed frames with any text-like box: small text (a one-word sign is
        # often under 2 % of the frame) shows here even when the area stays small
        "text_frame_ratio": float(np.mean([bool(t) for t in texts])) if texts else None,
        "stable_text": tracks,
        "has_stable_text": bool(tracks),
    }


def ocr_from_scan(clips, rows, cfg: dict, prepare=None) -> dict:
    """``ocr.json`` from the OCR rows the scan wrote (frames on a time grid): no decoding here,
    except for a clip that holds no frame the scan read (shorter than ``every_seconds``, or
    between two frames read on the quiet grid): its first, middle and last frame are read by
    seeking (:func:`ocr_shard`), so a short clip is measured rather than failed. ``prepare`` is
    called once before such reads (the ocr job puts archive members back on disk there)."""
    import json
    import logging

    by_video = dict(tuple(rows.groupby("video_id"))) if len(rows) else {}
    out: dict = {}
    missing = []
    for clip in clips.itertuples():
        if skip := skip_reason(clip):
            out[clip.clip_id] = {"error": skip}
            continue
        r = rows_in_clip(by_video, clip)
        r = r if r is not None else []
        if not len(r):
            missing.append(clip.clip_id)
            continue
        per_frame = [
            {
                "frame": int(x.frame),
                "boxes": json.loads(x.boxes),
                "width": int(x.width),
                "height": int(x.height),
            }
            for x in r.itertuples()
        ]
        rec = summarise(
            per_frame,
            stable_iou=cfg["stable_iou"],
            min_chars=cfg.get("min_chars"),
            min_conf=cfg.get("min_conf"),
        )
        out[clip.clip_id] = rec | {"error": None}
    if missing:
        logging.getLogger(__name__).info(
            "ocr: %d clips hold no OCR frame of the scan (every_seconds %s, quiet %s): reading "
            "their first, middle and last frame", len(missing), cfg["every_seconds"],
            cfg.get("quiet_every_seconds"),
        )  # fmt: skip
        if prepare is not None:
            prepare()
        seek = cfg | {"frames": "first_middle_last"}
        out |= ocr_shard(clips[clips["clip_id"].isin(missing)], seek)
    return {clip_id: out[clip_id] for clip_id in clips["clip_id"]}


def clip_frame_times(clip, cfg: dict) -> list[float]:
    """Times (s) of the frames OCR reads in a clip: first, middle, last; or one every N seconds."""
    a, b = sample_span(
        float(clip.start_time),
        float(clip.end_time),
        float(clip.fps),
        last_time(clip),
    )
    if cfg["frames"] == "first_middle_last":
        return [a, (a + b) / 2, b]
    n = max(2, min(cfg["max_frames"], int((b - a) / cfg["every_seconds"]) + 1))
    return list(np.linspace(a, b, n))


def frame_number(clip, t: float) -> int:
    """The number of the clip's frame that a read at time ``t`` takes (the nearest; halfway, the
    earlier): exact at the clip's first and last frame, whose times the clip carries, and in
    between on constant frame rate; on variable frame rate the middle is the nearest estimate."""
    a, b = int(clip.start_frame), int(clip.end_frame) - 1
    ta, fps = float(clip.start_time), float(clip.fps)
    last = last_time(clip)
    tb = last if last is not None else float(clip.end_time) - 1 / fps
    x = a + (t - ta) * (b - a) / (tb - ta) if b > a and tb > ta else a
    return int(min(max(math.ceil(x - 0.5 - 1e-9), a), max(a, b)))


def ocr_shard(clips, cfg: dict) -> dict:
    """``ocr.json`` content: per clip, boxes and text per analysed frame, text-area ratios and
    stable text. Measurements only: the verdict against ``select.ocr.max_text_area`` is made by
    the selection. Frames of one video are read in one pass over ascending times."""
    import logging
    import time

    from ..io.decode import VideoError, read_frames_at

    log = logging.getLogger(__name__)
    reader = OcrReader.from_config(cfg)
    out: dict = {}
    t0, done = time.monotonic(), 0
    for video_id, group in clips.groupby("video_id", sort=False):
        todo = []
        for clip in group.itertuples():
            if skip := skip_reason(clip):
                out[clip.clip_id] = {"error": skip}
            else:
                todo.append(clip)
        # one read per picture size: a video's size can change, and with it its clips'
        by_size: dict[tuple, list] = {}
        for clip in todo:
            by_size.setdefault((clip.width, clip.height), []).append(clip)
        for sized in by_size.values():
            times = [clip_frame_times(c, cfg) for c in sized]
            try:
                flat = read_frames_at(
                    sized[0].source_path,
                    [t for ts in times for t in ts],
                    size=ocr_size(int(sized[0].width), int(sized[0].height), cfg["max_side"]),
                    fmt="bgr",
                )
            except VideoError as exc:
                for c in sized:
                    out[c.clip_id] = {"error": str(exc)}
                continue
            k = 0
            for clip, ts in zip(sized, times, strict=True):
                imgs = flat[k : k + len(ts)]
                k += len(ts)
                numbers = [frame_number(clip, t) for t in ts]
                rec = ocr_record(imgs, numbers, reader, stable_iou=cfg["stable_iou"])
                out[clip.clip_id] = rec | {"error": None}
                done += 1
        log.info("ocr: %s, %d clips done (%.1f s)", video_id, done, time.monotonic() - t0)
    return out


def ocr_size(w: int, h: int, max_side: int) -> tuple[int, int]:
    """The OCR frame's size for a picture of display size ``w`` x ``h``: its longest side capped
    at ``max_side``. The scan and the seek modes both read OCR frames at the display aspect (a
    frame of non-square pixels as a viewer sees it)."""
    s = min(1.0, max_side / max(w, h))
    return max(2, round(w * s)), max(2, round(h * s))


def text_frames(rec: dict) -> float | None:
    """Share of a clip's analysed frames with text; records written before the key existed
    count the frames with any box (every box was text then)."""
    if "text_frame_ratio" in rec or "frames" not in rec:
        return rec.get("text_frame_ratio")
    frames = rec["frames"]
    return sum(1 for f in frames if f["boxes"]) / len(frames) if frames else None


MEASURE = Measure(
    "ocr",
    about="a burned-in text filter (OCR)",
    columns=(
        ("ocr.text_area_mean", lambda r: r.get("text_area_mean"), True),
        ("ocr.text_area_max", lambda r: r.get("text_area_max"), True),
        ("ocr.stable_text", lambda r: r.get("has_stable_text"), False),
        ("ocr.text_frame_ratio", text_frames, True),
    ),
    # the verdict (ocr_verdict) is the two text tests; stable text only rejects
    tests=(
        Test("text", "ocr.text_area_mean", "<=", "max_text_area"),
        Test("text_frames", "ocr.text_frame_ratio", "<=", "max_text_frames"),
        Test("stable_text", "ocr.stable_text", "==", "reject_stable_text", False, verdict=False),
    ),
    model=lambda cfg: (
        f"rapidocr-onnxruntime PP-OCRv4 ({cfg['lang']})",
        "rapidocr-onnxruntime",
    ),
)
