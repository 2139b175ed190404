"""The OCR reader: RapidOCR (ONNX Runtime) boxes in one frame, and which of them are text.

rapidocr-onnxruntime 1.4.4 ships one language set: the PP-OCRv4 "ch" detector and recogniser
(dictionary of 6,623 characters: simplified Chinese, ASCII letters and digits, punctuation and a
few accented Latin letters) and the mobile v2.0 text-direction classifier. Other languages need
their own recogniser model and dictionary (``rec_model_path``, ``rec_keys_path``).

Text, not texture. On busy textless footage (a fractal, foliage, a glass jar) the detector boxes
glyph-like shapes and the recogniser reads them as one character ("C", "n", "5", "快", "+") at
confidence up to 0.94, in boxes of up to 9-16 % of the frame (issue 12): with "confidence >= 0.5
is text" such clips were rejected by ``select.ocr.max_text_area``. A box is therefore *text-like*
(:func:`is_text_like`) only when its string has at least ``min_chars`` (2) distinct letters or
digits, read with confidence at least ``min_conf`` (0.8): every texture read seen was one glyph or
one glyph repeated ("CC", "888"), or several read unsure ("55J" 0.60, "552" 0.70). Box shape
does not separate them (two-letter words gave boxes 1.1-1.8 times as wide as high, single texture
glyphs 0.6-2.9) and neither does stability (a static textured shot gives the same glyph box in
every frame). Every recorded box stays in the record with its ``text_like`` flag; the text area
and stable text count text-like boxes only.

Detector input. RapidOCR's default is "shorter side at least 736 px", which upscales video frames
(a 360p frame went to 1308x736) and made text-free frames 6x slower. We cap the frame at
``max_side`` and resize it once, straight to the detector's input (multiples of 32, never up):
the detector's cost is proportional to its input pixels (about 230 ms per megapixel, one
thread), and it needs text height more than width, so ``width_scale`` (0.8) narrows the input and
keeps the height: a 16:9 frame goes in at 448x320 instead of 560x320 at the default ``max_side``
560. At the same pixel count a lower input loses far more (448x224: 91.6 % of readable text
found, 384x256: 95.0 %). ``max_side`` was 480 (384x256) when the table below was measured; text
at 2.5-3 % of the frame height, an orange date stamp or a half-transparent subtitle went unread
there (tryout 13: 18 of 26 text videos flagged, 24 at 560; ``bench/ocr_sizes.py``).
``box_thresh`` 0.3 (RapidOCR: 0.5) keeps text the detector merged with busy surroundings into one
region of low mean score. A frame where the detector finds nothing never reaches the
recogniser (RapidOCR returns early), so text-free frames cost the detector only.

Measured with a one-off script on generated images at 640x360 and 1280x720: 560 textless ones
(the six kinds of ``clipsift.textures`` and ``clipsift.sample``'s scene texture, 40 seeds each) and
400 with text rendered over such backgrounds (DejaVu and Hershey fonts, cap height 11-80 px at
360p): outlined subtitles, one-word signs on plates, titles with a shadow, lower thirds on a dark
bar (together "readable text") and coloured text straight on the texture. "Found": a text-like
box on the rendered text.

=============================  ===================  ==================================
                               before               now (defaults)
=============================  ===================  ==================================
textless images flagged        7 / 560              0 / 560
readable text found            94.7 % (303 / 320)   95.0 % (304 / 320)
text directly on the texture   67.5 % (54 / 80)     67.5 % (54 / 80)
ms per frame, text-free        36.2 (640x360)       30.4
                               40.5 (1280x720)      34.6
                               38.9 (480x270)       33.5
ms per frame, with text        64.0 (640x360)       56.7
                               79.1 (1280x720)      71.6
                               65.2 (480x270)       57.8
=============================  ===================  ==================================

(before: 480x256 detector input, RapidOCR's box_thresh 0.5, every box read at confidence 0.5 or
more is text. One ONNX Runtime thread, both readers interleaved frame by frame in one run on a
shared 2-core machine, each frame's fastest of 3 passes; 480x270 is what the scan hands the
reader at ``max_side`` 480. ``width_scale`` 1.0 finds 96.6 % at about the old cost, 0.87 finds
95.6 %. Both columns ran the models as shipped; the lean graphs, ``lean_graph``, take about 30 %
off each.)
The nearest texture read to a text-like one was "滋饼" at 0.74 (a Game of Life texture, a box of
15 % of the frame): ``min_conf`` below 0.75 lets such reads in. Still missed: text smaller than
about 12 px cap height at 360p, and coloured text without outline or plate directly on a busy
texture.
"""

from __future__ import annotations

import functools
import logging
import os
import tempfile
import warnings
from pathlib import Path

import cv2
import numpy as np

log = logging.getLogger(__name__)


def text_chars(text: str | None) -> int:
    """Letters and digits in ``text``, each counted once whatever its case: textures read as one
    glyph or a repeated one ("C", "CC", "888"), words rarely do."""
    return len({c for c in (text or "").casefold() if c.isalnum()})


def is_text_like(
    text: str | None, conf: float | None, *, min_chars: int = 2, min_conf: float = 0.8
) -> bool:
    """Whether a recognised box is text: at least ``min_chars`` distinct letters or digits
    (:func:`text_chars`) read with confidence at least ``min_conf``."""
    return conf is not None and float(conf) >= min_conf and text_chars(text) >= min_chars


def det_size(width: int, height: int, max_side: int, width_scale: float = 1.0) -> tuple[int, int]:
    """Detector input (w, h), multiples of 32: the frame scaled to ``max_side`` (never up), then
    narrowed by ``width_scale`` (text height, what the detector needs, is kept)."""
    s = min(1.0, max_side / max(width, height))
    return (
        max(32, round(width * s * width_scale / 32) * 32),
        max(32, round(height * s / 32) * 32),
    )


def _fast_det_input(det) -> None:
    """Give RapidOCR's detector a cheaper preprocessing with the same output, bit for bit.

    RapidOCR's ``DetPreProcess`` resizes the frame (a copy here: :meth:`OcrReader.read` already
    sized it), scales it to [-1, 1] in float32 (mean and std 0.5) and transposes it to NCHW. A
    uint8 pixel has only 256 values, so after RapidOCR's own resize this looks the result up in
    a table made by RapidOCR's own ``normalize``. For a 384x256 frame: 2.0 -> 0.5 ms, about 5 %
    of a text-free frame's OCR (both in one process, bench videos). Other inputs (not 3-channel
    uint8, or a mean or std per channel) go through RapidOCR's own preprocessing.
    """
    own = det.get_preprocess

    @functools.lru_cache(maxsize=4)
    def get_preprocess(max_wh: int):
        op = own(max_wh)
        ramp = np.repeat(np.arange(256, dtype=np.uint8)[:, None, None], 3, axis=2)
        table = op.normalize(ramp).astype(np.float32)  # (256, 1, 3)
        if not (table == table[:, :, :1]).all():
            return op  # a mean or std per channel: keep RapidOCR's arithmetic
        table = np.ascontiguousarray(table[:, 0, 0])

        def preprocess(img: np.ndarray) -> np.ndarray | None:
            if img.dtype != np.uint8 or img.ndim != 3 or img.shape[2] != 3:
                return op(img)
            resized = op.resize(img)
            if resized is None:
                return None
            return np.take(table, np.ascontiguousarray(resized.transpose(2, 0, 1)))[None]

        return preprocess

    det.get_preprocess = get_preprocess


def _package_model(kind: str) -> Path:
    """The detector ("det") or recogniser ("rec") model file that rapidocr-onnxruntime ships and
    uses by default (its config.yaml)."""
    import rapidocr_onnxruntime
    import yaml

    root = Path(rapidocr_onnxruntime.__file__).parent
    cfg = yaml.safe_load((root / "config.yaml").read_text())
    return root / cfg[kind.capitalize()]["model_path"]


def _lean(path: str) -> bytes:
    """:func:`~clipsift.filters.ocr_graph.lean_model`, once per process per model file (a shard
    job builds one reader; the tests and the benches build many)."""
    st = os.stat(path)
    return _lean_cached(os.path.realpath(path), st.st_size, st.st_mtime_ns)


@functools.lru_cache(maxsize=4)
def _lean_cached(path: str, size: int, mtime_ns: int) -> bytes:
    from .ocr_graph import lean_model

    return lean_model(path)


def _lean_engine(make, kwargs: dict):
    """``make(**kwargs)`` (RapidOCR) on the lean graphs of its detector and recogniser (the
    shipped ones, or ``rec_model_path``). A model that the rewrite or ONNX Runtime refuses in
    its lean form runs as shipped, with a warning: slower, the same boxes."""
    models = {"det_model_path": _package_model("det"),
              "rec_model_path": kwargs.get("rec_model_path") or _package_model("rec")}  # fmt: skip
    with tempfile.TemporaryDirectory(prefix="clipsift-ocr-") as tmp:
        lean = {}
        for key, path in models.items():
            try:
                graph = _lean(str(path))
            except Exception as exc:
                log.warning("%s runs as shipped: no lean graph (%s)", path, exc)
                continue
            lean[key] = os.path.join(tmp, f"{key}.onnx")
            with open(lean[key], "wb") as f:
                f.write(graph)
        try:
            # ONNX Runtime reads the files when it builds its sessions, here
            return make(**(kwargs | lean))
        except Exception as exc:
            if not lean:
                raise
            log.warning("the lean OCR graphs do not load, the models run as shipped (%s)", exc)
    return make(**kwargs)


class OcrReader:
    """Text boxes in one frame. ``threshold`` is the smallest recognition confidence of a box that
    is recorded at all; ``min_chars`` and ``min_conf`` decide which recorded boxes are text
    (:func:`is_text_like`). ``box_thresh`` is the detector's box score (mean text probability in
    the box) and ``width_scale`` narrows the detector input (see the module notes). ``threads``
    is ONNX Runtime's intra-op thread count (1: the pipeline runs one job per core; 0: all
    cores). ``lean_graph`` runs the detector and recogniser (``rec_model_path`` too) as the
    leaner graphs of :mod:`clipsift.filters.ocr_graph`: the same function to float rounding."""

    def __init__(
        self,
        *,
        threshold: float = 0.5,
        lang: str = "ch",
        max_side: int = 560,
        use_gpu: bool = False,
        threads: int = 1,
        rec_model_path: str | None = None,
        rec_keys_path: str | None = None,
        box_thresh: float = 0.3,
        width_scale: float = 0.8,
        min_chars: int = 2,
        min_conf: float = 0.8,
        lean_graph: bool = True,
    ):
        if lang != "ch" and rec_model_path is None:
            raise ValueError(
                f"rapidocr ships only the 'ch' models; lang {lang!r} needs rec_model_path"
            )
        if not 0 < width_scale <= 1:
            raise ValueError(f"width_scale {width_scale} must be in (0, 1]")
        import onnxruntime
        from rapidocr_onnxruntime import RapidOCR

        if use_gpu and "CUDAExecutionProvider" not in onnxruntime.get_available_providers():
            warnings.warn("ONNX Runtime has no CUDA provider; OCR runs on CPU", stacklevel=2)
            use_gpu = False
        kwargs = {
            "text_score": threshold,
            # text in video is upright; the 180-degree classifier only costs time
            "use_cls": False,
            # read() hands the detector an input already sized in multiples of 32: no resize
            "det_limit_type": "max",
            "det_limit_side_len": 32 * -(-max(max_side, 32) // 32),
            "det_box_thresh": box_thresh,
            # RapidOCR's default mean and std (0.5) as float32: its normalisation then stays in
            # float32 instead of float64 (3.6 -> 1.7 ms per 384x256 frame, same values)
            "det_mean": np.full(3, 0.5, np.float32),
            "det_std": np.full(3, 0.5, np.float32),
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
        self._engine = _lean_engine(RapidOCR, kwargs) if lean_graph else RapidOCR(**kwargs)
        _fast_det_input(self._engine.text_det)
        self.threshold = threshold
        self.max_side = max_side
        self.width_scale = width_scale
        self.box_thresh = box_thresh
        self.min_chars = min_chars
        self.min_conf = min_conf

    @classmethod
    def from_config(cls, cfg: dict, **overrides) -> OcrReader:
        """A reader from the ``filters.ocr`` config section (schema defaults for missing keys)."""
        keys = ("threshold", "lang", "max_side", "box_thresh", "width_scale", "min_chars",
                "min_conf", "lean_graph")  # fmt: skip
        kwargs = {k: cfg[k] for k in keys if k in cfg}
        if "gpu" in cfg:
            kwargs["use_gpu"] = cfg["gpu"]
        return cls(**(kwargs | overrides))

    def read(self, image_bgr: np.ndarray) -> list[dict]:
        """``[{"box": [x, y, w, h], "text", "conf", "text_like"}]`` in ``image_bgr``'s pixels,
        conf >= threshold; boxes are the axis-aligned bounds of the detected quadrilaterals.
        A frame where the detector finds nothing never reaches the recogniser (RapidOCR returns
        early), so text-free frames cost the detector only."""
        h, w = image_bgr.shape[:2]
        dw, dh = det_size(w, h, self.max_side, self.width_scale)
        img = image_bgr
        if (dw, dh) != (w, h):
            img = cv2.resize(image_bgr, (dw, dh), interpolation=cv2.INTER_AREA)
        result, _ = self._engine(np.ascontiguousarray(img))
        boxes = []
        for quad, text, conf in result or []:
            if float(conf) < self.threshold:
                continue
            q = np.asarray(quad, dtype=np.float64) * (w / dw, h / dh)
            x0, y0 = np.clip(q.min(axis=0), 0, None)
            x1, y1 = np.minimum(q.max(axis=0), (w, h))
            box = [round(x0), round(y0), round(x1 - x0), round(y1 - y0)]
            like = is_text_like(text, conf, min_chars=self.min_chars, min_conf=self.min_conf)
            boxes.append({"box": box, "text": str(text), "conf": float(conf), "text_like": like})
        return boxes
