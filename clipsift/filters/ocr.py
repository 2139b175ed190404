"""On-screen text: RapidOCR (ONNX Runtime) boxes, text area ratio, stable text tracks.

rapidocr-onnxruntime 1.4.4 ships one language set: the PP-OCRv4 "ch" detector and recogniser
(dictionary of 6,623 characters: simplified Chinese, ASCII letters and digits, punctuation and a
few accented Latin letters) and the mobile v2.0 text-direction classifier. Other languages need
their own recogniser model and dictionary (``rec_model_path``, ``rec_keys_path``).

Its default detector input is "shorter side at least 736 px", which upscales video frames (a 360p
frame went to 1308x736) and makes text-free frames 6x slower (shared notes, video-io.md). We cap
both the frame (``max_side``) and the detector input (``det_limit_type="max"``,
``det_limit_side_len=max_side``), so small frames are never upscaled.
"""

from __future__ import annotations

import logging
import warnings
from collections import Counter
from collections.abc import Sequence

import cv2
import numpy as np

from ..split.clips import rows_in_clip, skip_reason


class OcrReader:
    """Text boxes in one frame. ``threshold`` applies to RapidOCR's per-box confidence (that of
    the recogniser; the detector's box score is not exposed). ``threads`` is ONNX Runtime's
    intra-op thread count (1: the pipeline runs one job per core; 0: all cores)."""

    def __init__(
        self,
        *,
        threshold: float = 0.5,
        lang: str = "ch",
        max_side: int = 640,
        use_gpu: bool = False,
        threads: int = 1,
        rec_model_path: str | None = None,
        rec_keys_path: str | None = None,
    ):
        if lang != "ch" and rec_model_path is None:
            raise ValueError(
                f"rapidocr ships only the 'ch' models; lang {lang!r} needs rec_model_path"
            )
        import onnxruntime
        from rapidocr_onnxruntime import RapidOCR

        if use_gpu and "CUDAExecutionProvider" not in onnxruntime.get_available_providers():
            warnings.warn("ONNX Runtime has no CUDA provider; OCR runs on CPU", stacklevel=2)
            use_gpu = False
        kwargs = {
            "text_score": threshold,
            # text in video is upright; the 180-degree classifier only costs time
            "use_cls": False,
            "det_limit_type": "max",
            "det_limit_side_len": max_side,
            "det_use_cuda": use_gpu,
            "rec_use_cuda": use_gpu,
            "cls_use_cuda": use_gpu,
        }
        if threads > 0:
            kwargs |= {"intra_op_num_threads": threads, "inter_op_num_threads": 1}
        if rec_model_path:
            kwargs["rec_model_path"] = rec_model_path
        if rec_keys_path:
            kwargs["rec_keys_path"] = rec_keys_path
        logging.getLogger("RapidOCR").setLevel(logging.WARNING)
        self._engine = RapidOCR(**kwargs)
        self.threshold = threshold
        self.max_side = max_side

    def read(self, image_bgr: np.ndarray) -> list[dict]:
        """``[{"box": [x, y, w, h], "text", "conf"}]`` in ``image_bgr``'s pixels, conf >= threshold;
        boxes are the axis-aligned bounds of the detected quadrilaterals."""
        h, w = image_bgr.shape[:2]
        scale = min(1.0, self.max_side / max(h, w))
        img = image_bgr
        if scale < 1.0:
            size = (max(1, round(w * scale)), max(1, round(h * scale)))
            img = cv2.resize(image_bgr, size, interpolation=cv2.INTER_AREA)
        result, _ = self._engine(np.ascontiguousarray(img))
        boxes = []
        for quad, text, conf in result or []:
            if float(conf) < self.threshold:
                continue
            q = np.asarray(quad, dtype=np.float64) / scale
            x0, y0 = np.clip(q.min(axis=0), 0, None)
            x1, y1 = np.minimum(q.max(axis=0), (w, h))
            box = [round(x0), round(y0), round(x1 - x0), round(y1 - y0)]
            boxes.append({"box": box, "text": str(text), "conf": float(conf)})
        return boxes


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


def summarise(per_frame: list[dict], *, stable_iou: float = 0.9) -> dict:
    """Per-clip OCR record from per-frame ``{frame, boxes, width, height}``: the text-area ratio
    (mean and max over frames) and stable text (boxes repeated in consecutive analysed frames).
    Measurements only: verdicts against thresholds are the selection's."""
    areas = [text_area_ratio(f["boxes"], f["width"], f["height"]) for f in per_frame]
    tracks = stable_text([f["boxes"] for f in per_frame], iou=stable_iou)
    for t in tracks:  # indices into the analysed frames -> source frame numbers
        t["frames"] = [per_frame[i]["frame"] for i in t["frames"]]
    return {
        "frames": [{"frame": f["frame"], "boxes": f["boxes"]} for f in per_frame],
        "text_area_mean": float(np.mean(areas)) if areas else None,
        "text_area_max": float(max(areas)) if areas else None,
        "stable_text": tracks,
        "has_stable_text": bool(tracks),
    }


def ocr_from_scan(clips, rows, cfg: dict) -> dict:
    """``ocr.json`` from the OCR rows the scan wrote (frames on a time grid): no decoding here."""
    import json

    by_video = dict(tuple(rows.groupby("video_id"))) if len(rows) else {}
    out: dict = {}
    for clip in clips.itertuples():
        if skip := skip_reason(clip):
            out[clip.clip_id] = {"error": skip}
            continue
        r = rows_in_clip(by_video, clip)
        r = r if r is not None else []
        if not len(r):
            out[clip.clip_id] = {
                "error": f"no OCR frame inside the clip (filters.ocr.every_seconds {cfg['every_seconds']} s is longer than the clip)"
            }
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
        out[clip.clip_id] = summarise(per_frame, stable_iou=cfg["stable_iou"]) | {"error": None}
    return out


def clip_frame_times(clip, cfg: dict) -> list[float]:
    """Times (s) of the frames OCR reads in a clip: first, middle, last; or one every N seconds."""
    half = 0.5 / float(clip.fps)
    a, b = float(clip.start_time) + half, float(clip.end_time) - half
    if cfg["frames"] == "first_middle_last":
        return [a, (a + b) / 2, b]
    n = max(2, min(cfg["max_frames"], int((b - a) / cfg["every_seconds"]) + 1))
    return list(np.linspace(a, b, n))


def ocr_shard(clips, cfg: dict) -> dict:
    """``ocr.json`` content: per clip, boxes and text per analysed frame, text-area ratios and
    stable text. Measurements only: the verdict against ``select.ocr.max_text_area`` is made by
    the selection. Frames of one video are read in one pass over ascending times."""
    import logging
    import time

    from ..io.decode import VideoError, read_frames_at

    log = logging.getLogger(__name__)
    reader = OcrReader(
        threshold=cfg["threshold"], lang=cfg["lang"], max_side=cfg["max_side"], use_gpu=cfg["gpu"]
    )
    out: dict = {}
    t0, done = time.monotonic(), 0
    for video_id, group in clips.groupby("video_id", sort=False):
        todo = []
        for clip in group.itertuples():
            if skip := skip_reason(clip):
                out[clip.clip_id] = {"error": skip}
            else:
                todo.append(clip)
        if not todo:
            continue
        times = [clip_frame_times(c, cfg) for c in todo]
        try:
            flat = read_frames_at(
                todo[0].source_path,
                [t for ts in times for t in ts],
                size=_capped(todo[0], cfg["max_side"]),
                fmt="bgr",
            )
        except VideoError as exc:
            for c in todo:
                out[c.clip_id] = {"error": str(exc)}
            continue
        k = 0
        for clip, ts in zip(todo, times, strict=True):
            imgs = flat[k : k + len(ts)]
            k += len(ts)
            numbers = [int(round(t * float(clip.fps))) for t in ts]
            rec = ocr_record(imgs, numbers, reader, stable_iou=cfg["stable_iou"])
            out[clip.clip_id] = rec | {"error": None}
            done += 1
        log.info("ocr: %s, %d clips done (%.1f s)", video_id, done, time.monotonic() - t0)
    return out


def _capped(clip, max_side: int) -> tuple[int, int] | None:
    w, h = int(clip.width), int(clip.height)
    s = max_side / max(w, h)
    if s >= 1:
        return None
    return max(2, round(w * s)), max(2, round(h * s))
