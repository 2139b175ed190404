"""The scan: one full decode per source video, feeding every CPU analysis that needs all frames.

Decoding is the CPU bottleneck (bench/results/cpu-2core.md), so each video is decoded once here and
everything that needs a dense look at it is taken from the same frames:
- small frames (``analysis_width``) for the scene detector and the transition finder (fades,
  dissolves and blanks, whose frames are left out of every scene: ``split/transitions.py``);
- the mean luma of every ``luma_stride``-th frame (the flash filter's input);
- at ``sample_fps``: optical flow between the sample frame and the first frame at least
  ``MIN_PAIR_INTERVAL`` later (motion score; where pictures repeat, from the sample's picture to
  the second new one, :class:`Pictures`), and technical measures on the full-size luma plane
  (sharpness, exposure, black borders);
- with ``filters.ocr.frames: scan`` (the default), OCR on one frame every ``every_seconds`` at a
  capped size, one every ``quiet_every_seconds`` while no box is found (:class:`OcrGrid`):
  reading OCR frames afterwards by seeking cost as much as decoding the video again.

The decode skips the deblocking filter on frames no other frame predicts from
(``skip_loop_filter``: about 6 % less decoding); a sample due on such a frame moves to the next
deblocked one, so the technical measures read what a full decode gives.

Per-clip scores are aggregated later from these per-frame and per-sample rows, so changing the
clip bounds (``split``) or any threshold never decodes again.
"""

from __future__ import annotations

import json
import logging
import math
import time

import cv2
import numpy as np
import pandas as pd
from av.video.frame import PictureType

from ..failures import check_reachable
from ..filters.flash import MAX_BARS, decay_frames, edge_flashes, find_flashes, picture_luma
from ..filters.ocr import ocr_size
from ..io.decode import VideoError, iter_frames
from ..scorers.motion import FlowMeter
from ..scorers.technical import border_profile, find_borders, frame_technical
from .detectors import make_detector
from .transitions import (
    WHOLE,
    TransitionFinder,
    cut_out,
    fine_frame,
    mean_chroma,
    shifted_similarity,
)

log = logging.getLogger(__name__)

SCENE_COLUMNS = [
    "video_id",
    "scene",
    "start_frame",
    "end_frame",
    "start_time",
    "end_time",
    "n_frames",
    "decode_errors",
    "width",
    "height",
    "video_sizes",
    "error",
]
FRAME_COLUMNS = ["video_id", "frame", "time", "luma"]
OCR_COLUMNS = ["video_id", "frame", "time", "width", "height", "boxes"]
# The flow pair's shortest interval (s): a 30-fps frame (33 ms, 33.3 exact), not a 50- or 60-fps
# one. DIS reads sub-pixel steps of fine texture high, and the smaller the step the more: paired
# with the very next frame, a 40 px/s pan at 640x360 read +15-17 % at 60 fps against +5-6 % at 30
# (bench/accuracy.py, every container), a spread over the 10 % that one motion may have between
# frame rates. Above 30 fps a pair skips frames, so that it spans what a 30-fps one does.
MIN_PAIR_INTERVAL = 0.030
# A frame repeats the picture before it where their gray frames differ by under this many levels
# on average: a held drawing decodes within 0.003 of it, the slowest pans of the bench's set
# differ by several levels (:class:`Pictures`)
REPEAT_LEVEL = 0.05
# the frames before a sample that are looked at for repeats; the longest a picture counts as
# held (s: a drawing on fours at 24 fps is 0.17 s; a picture still for longer is a still shot,
# whose pair starts at the sample as before); and the longest a pair waits for a new picture
# (a still picture with no noise, a title card, is paired then, with no motion)
REPEAT_LOOKBACK = 6
MAX_HELD = 0.2
MAX_PAIR_WAIT = 0.5
FLOW_KEYS = ("mag", "grid", "dx", "dy", "textured", "dt", "pair_frame")  # a sample's pair


class Pictures:
    """Which frames start a new picture. Animation shows each drawing on two or three frames
    (on twos, on threes), 24-fps film carried at 60 fps shows its pictures 3 and 2 frames in turn
    (3:2 pulldown), and encoders repeat a frame where a phone dropped one. A flow pair inside a
    held picture read no motion, and one across a change read a picture's motion over one frame:
    a 60 px/s pan on twos read 106-121 px/s, a drawing held in every pair read 0, and a 48 px/s
    pan in 3:2 pulldown read 29-59 px/s by its phase. So where pictures repeat (the sample or one
    of the ``REPEAT_LOOKBACK`` frames before it repeats the one before), a pair runs from the
    first frame of the sample's picture to the first frame of the second picture after it: two
    pictures' motion over their own time, which a 3:2 cadence always makes 5 frames.

    A video's first frames have no frames before them to show a cadence, and an encoder's first
    frames of one held picture differ by up to 0.3 levels: the first sample's pair ended on such
    a frame and read no motion. So once ``REPEAT_LOOKBACK`` frames are decoded, where pictures
    repeat, the pairs of the samples taken before (:attr:`early`) are dropped (``settled``)."""

    def __init__(self):
        self._prev: np.ndarray | None = None
        self._repeats: list[bool] = []  # the last REPEAT_LOOKBACK + 1 frames: each a repeat?
        self.start = 0.0  # time of the first frame of the current picture
        self.count = 0  # frames pushed

    @property
    def early(self) -> bool:
        """Whether too few frames are decoded to tell whether pictures repeat."""
        return self.count <= REPEAT_LOOKBACK

    @property
    def settled(self) -> bool:
        """Whether the frame just pushed is the first after the :attr:`early` ones."""
        return self.count == REPEAT_LOOKBACK + 1

    def push(self, t: float, gray: np.ndarray) -> bool:
        """Whether the frame at ``t`` starts a new picture."""
        new = self._prev is None or gray.shape != self._prev.shape or (
            cv2.norm(gray, self._prev, cv2.NORM_L1) >= REPEAT_LEVEL * gray.size
        )  # fmt: skip
        self._prev = gray
        self.count += 1
        self._repeats = [*self._repeats[-REPEAT_LOOKBACK:], not new]
        if new:
            self.start = t
        return new

    def held(self) -> bool:
        """Whether the latest frame or one of the ``REPEAT_LOOKBACK`` before it is a repeat."""
        return any(self._repeats)


class ClockCheck:
    """Raises :class:`VideoError` where frame times go back and stay back: files joined with
    ``cat`` (MPEG-TS recordings, whose second part's clock starts again at 0) or a recorder
    restarting its clock. Every stage after the scan finds frames by time, and the export of the
    frames after such a reset wrote those before it. A single frame out of order, as a decoder
    hands out after damaged packets (1.6 s between 2.633 and 2.667), is no reset; neither is a
    frame or two early in a stream whose reordering the decoder underestimated."""

    BACK = 1.0  # s behind the latest time so far
    FRAMES = 3  # in a row

    def __init__(self):
        self.latest = -math.inf
        self.behind: list[tuple[int, float]] = []  # (index, time) of the frames in a row behind

    def push(self, index: int, t: float) -> None:
        if t >= self.latest - self.BACK:
            self.behind.clear()
            self.latest = max(self.latest, t)
            return
        self.behind.append((index, t))
        if len(self.behind) == self.FRAMES:
            first, back_to = self.behind[0]
            raise VideoError(
                f"frame times go back at frame {first} ({self.latest:.3f} s, then "
                f"{back_to:.3f} s): files joined without a remux, or a clock reset; the frames "
                "after it cannot be found by time (split the file there, or remux it so that "
                "its times run on)"
            )


def scan_video(
    path: str, video_id: str, fps: float, cfg: dict, ocr=None
) -> tuple[list, list, list, list]:
    """Scenes, per-frame luma rows, per-sample rows and OCR rows of one video. Raises VideoError.

    ``ocr`` is ``(OcrReader, every_seconds, quiet_every_seconds, max_side)`` when OCR runs in
    this pass (:class:`OcrGrid`).

    One loop on purpose: every measure reads each decoded frame while it is in the cache, and
    the video is decoded once (the sample rows, the OCR row and the scenes have helpers).
    """
    width = cfg["analysis_width"]
    if not (isinstance(fps, (int, float)) and math.isfinite(fps) and fps > 0):
        # a stream that states no rate: windows and sample spacing assume 30 fps; clip times
        # still come from the decoder's timestamps
        log.warning("%s: unknown frame rate (%r); sampling as at 30 fps", video_id, fps)
        fps = 30.0
    meter = FlowMeter(method=cfg["flow"], preset=cfg["flow_preset"])
    sampled = SampleGrid(max(1, round(fps / cfg["sample_fps"])), cfg["skip_loop_filter"])
    stride = cfg["luma_stride"]

    frames, samples, times, lumas = [], [], [], []
    # samples waiting for their pair: [sample row, its gray frame, the time its pair's interval
    # starts, new pictures still to come (0: any frame MIN_PAIR_INTERVAL on; :class:`Pictures`)]
    waiting: list[list] = []
    pictures = Pictures()
    early: list[dict] = []  # samples taken while pictures.early
    texts = OcrGrid(video_id, *ocr) if ocr is not None else None
    n = 0
    damaged: list[str] = []  # packets the decoder refused: skipped, the video is kept
    clock = ClockCheck()
    part = None  # the run of frames of one picture size (a Geometry)
    parts: list[Geometry] = []
    for fr in iter_frames(path, errors=damaged, skip_loop_filter=sampled.skip):
        clock.push(fr.index, fr.time)
        size = fr.display_size()
        if part is None or size != part.size:
            # a new picture size (a video call's resolution switch, a broadcast's SD/HD
            # change): a cut, and the frame comparisons start again at it
            if part is not None and part.blends is not None:
                part.blends.settle()  # no frames held while the video goes on
            part = Geometry(fr.index, size, cfg, fps)
            parts.append(part)
            waiting = []
        # the detector needs less than the flow: 160 px found the same cuts at 40 % of the cost
        gray, bgr = fr.analysis(width, min(cfg["detector_width"], width), quick=True)
        lumas.append(cv2.mean(fr.sdr_levels(gray))[0])  # as seen: the flash filter reads it
        part.push(fr, gray, bgr, lumas[-1])
        times.append(fr.time)
        if fr.index % stride == 0:
            frames.append((video_id, fr.index, fr.time, lumas[-1]))
        new = pictures.push(fr.time, gray)
        for w in waiting:
            w[3] -= new and w[3] > 0
        while waiting and _paired(waiting[0], fr.time, new):
            # flow between the sample frame and the first one a 30-fps frame on: the next frame
            # up to 30 fps, small displacements, measured alike at any rate (samples come
            # closer than that only where sample_fps is over 30); where pictures repeat, from
            # the sample's picture to the second new one (:class:`Pictures`)
            pending, first, since, _ = waiting.pop(0)
            pending.update(meter.measure(first, gray))
            pending["dt"] = fr.time - since  # the pair's real interval (VFR too)
            pending["pair_frame"] = fr.index
        if pictures.settled and pictures.held():
            for row in early:  # taken before a cadence could show: their pairs are unsure
                for key in FLOW_KEYS:
                    row.pop(key, None)
            waiting = [w for w in waiting if not any(w[0] is row for row in early)]
        if sampled.take(fr):
            samples.append(_sample(fr, gray.shape[1], video_id))
            held = pictures.held() and fr.time - pictures.start <= MAX_HELD
            waiting.append([samples[-1], gray, pictures.start if held else fr.time, 2 * held])
            if pictures.early:
                early.append(samples[-1])
        if texts is not None:
            texts.push(fr)
        n += 1
    if n == 0:
        raise VideoError(f"no decodable frame{': ' + damaged[0] if damaged else ''}")
    if damaged:
        log.warning("%s: %d damaged packet(s) skipped (%s)", video_id, len(damaged), damaged[0])
    if len(parts) > 1:
        sizes = ", ".join(f"{p.label} from frame {p.start}" for p in parts[:6])
        log.info("%s: the picture size changes %d time(s) (%s%s): a cut at each", video_id,
                 len(parts) - 1, sizes, ", ..." if len(parts) > 6 else "")  # fmt: skip
    ends = [p.start for p in parts[1:]] + [n]
    bounds = [b for p, end in zip(parts, ends, strict=True) for b in p.bounds(end, lumas, cfg)]
    if not bounds:
        raise VideoError("no scene: every frame is part of a transition or blank")
    scenes = _scenes(bounds, times, video_id, fps, decode_errors=len(damaged))
    # every size of the video, also of parts left without a scene (all blank): a whole-video
    # clip spans them (split.mode whole)
    every = " ".join(dict.fromkeys(p.label for p in parts))
    for sc in scenes:
        part = next(p for p in reversed(parts) if p.start <= sc["start_frame"])
        sc["width"], sc["height"] = part.size
        sc["video_sizes"] = every
    return scenes, frames, samples, texts.rows() if texts is not None else []


def _paired(w: list, t: float, new: bool) -> bool:
    """Whether a waiting sample ``w`` pairs with the frame at ``t`` (``new``: a new picture; a
    pair never ends on a repeat, which a video's first samples cannot know of yet)."""
    sample, _, _, pictures = w
    if t - sample["time"] >= MAX_PAIR_WAIT:
        return True
    return new and pictures == 0 and t - sample["time"] >= MIN_PAIR_INTERVAL


class Geometry:
    """The frames of a video from ``start`` on that have one display ``size``: a scene detector
    and a transition finder of their own (they compare each frame with those before it, at one
    size), fed frame indices counted from ``start``."""

    def __init__(self, start: int, size: tuple[int, int], cfg: dict, fps: float):
        self.start, self.size, self.fps = start, size, fps
        self.label = f"{size[0]}x{size[1]}"
        self.detector = make_detector(cfg, fps)
        self.flash_ends = FlashEnds(cfg["flash_delta"], decay_frames(fps) + 1)
        self.blends = transition_finder(cfg, fps)

    def push(self, fr, gray: np.ndarray, bgr: np.ndarray, luma: float) -> None:
        self.detector.push(fr.index - self.start, bgr)
        self.flash_ends.push(fr.index - self.start, gray, luma, *flash_picture(self.blends))
        if self.blends is not None:
            self.blends.push(fr.index - self.start, gray, fr.sdr_table, mean_chroma(bgr))

    def bounds(self, end: int, lumas: list[float], cfg: dict) -> list[tuple[int, int]]:
        """Scenes ``[a, b)`` of frames ``start`` to ``end``, in the video's frame indices."""
        own = _scene_bounds(self.detector.finish(end - self.start), lumas[self.start : end],
                            self.blends, cfg, self.fps, self.flash_ends.alike)  # fmt: skip
        return [(a + self.start, b + self.start) for a, b in own]


class OcrGrid:
    """The scan's OCR frames of one video: the first frame at or after every ``every`` seconds
    (the grid), read at ``max_side``. While the frames read find no box at all, only one every
    ``quiet_every`` seconds is read (None: every grid frame); the grid frame skipped last is
    held, and read after all when the next frame read has a box, so text keeps the full grid
    from the grid frame before it appears until a frame read has no box again.

    Text-free footage, most of it, then costs half the OCR at the defaults (1 and 2 s), and
    where text is a clip gets the frames of the full grid; a clip with text part of the time has
    its text-free part read at half the density, so its ``text_frame_ratio`` leans towards the
    text. A clip that holds no frame read is read by seeking in the ocr step
    (:func:`clipsift.filters.ocr.ocr_from_scan`)."""

    def __init__(self, video_id, reader, every: float, quiet_every: float | None, max_side: int):
        self.video_id, self.reader, self.max_side = video_id, reader, max_side
        self.every = every
        self.quiet_every = max(every, quiet_every) if quiet_every else every
        self._rows: list[dict] = []
        self._next = 0.0  # time of the next grid frame
        self._last: float | None = None  # time of the last frame read
        self._found = False  # whether the last frame read had a box
        self._held = None  # the grid frame skipped last (a Frame)

    def push(self, fr) -> None:
        if fr.time < self._next - 1e-6:
            return
        self._next = fr.time + self.every
        quiet = self._last is not None and not self._found
        if quiet and fr.time < self._last + self.quiet_every - 1e-6:
            self._held = fr
            return
        self._found = bool(self._read(fr))
        if self._found and self._held is not None:
            self._read(self._held)
        self._held, self._last = None, fr.time

    def _read(self, fr) -> list[dict]:
        img = fr.bgr(_ocr_width(fr, self.max_side))
        boxes = self.reader.read(img)
        self._rows.append(
            {"video_id": self.video_id, "frame": fr.index, "time": fr.time,
             "width": img.shape[1], "height": img.shape[0], "boxes": json.dumps(boxes)}
        )  # fmt: skip
        return boxes

    def rows(self) -> list[dict]:
        """The OCR rows in frame order (a held frame is read after the one that followed it)."""
        return sorted(self._rows, key=lambda r: r["frame"])


class SampleGrid:
    """Which decoded frames are samples: one due every ``every`` frames (``fr.index % every``).
    The technical measures need a deblocked frame, so with frames decoded without the loop filter
    (``skip``, a ``skip_loop_filter`` level) a sample due on one of them moves to the next frame
    that was filtered, at most ``every - 1`` frames on (before the next one is due)."""

    def __init__(self, every: int, skip: str):
        self.every, self.skip = every, skip
        self._due: int | None = None  # index of the grid frame whose sample is not taken yet

    def take(self, fr) -> bool:
        """Whether ``fr`` (frames pushed in order) is a sample."""
        if fr.index % self.every == 0:
            self._due = fr.index
        if self._due is None:
            return False
        if not (filtered(fr, self.skip) or fr.index - self._due >= self.every - 1):
            return False
        self._due = None
        return True


def filtered(fr, skip: str) -> bool:
    """Whether ``fr`` went through the deblocking filter when frames ``skip`` (a
    ``skip_loop_filter`` level) skip it. With "noref" the frames that skip it are those no other
    frame predicts from; FFmpeg does not say which those were, but I- and P-frames are (x264
    and the other H.264 encoders predict from them), so only a B-frame is in doubt."""
    return skip == "none" or fr.av_frame.pict_type != PictureType.B


def _scenes(bounds: list, times: list[float], video_id: str, fps: float, decode_errors: int):
    """Scene rows from frame bounds, with their times from the decoder's timestamps."""
    n = len(times)
    # the last frame lasts as long as the one before it (the stream's own pace, also at a
    # variable frame rate), or 1 / fps for a single frame
    end_time = times[-1] + (times[-1] - times[-2] if n > 1 else 1.0 / fps)
    scenes = [
        {
            "video_id": video_id,
            "scene": k,
            "start_frame": a,
            "end_frame": b,
            "start_time": times[a],
            "end_time": times[b] if b < n else end_time,
            "n_frames": n,
            "decode_errors": decode_errors,
            "error": None,
        }
        for k, (a, b) in enumerate(bounds)
    ]
    return scenes


def _sample(fr, analysis_width: int, video_id: str) -> dict:
    """The sample row of one frame: its technical measures on the full-size luma, inside its
    black bars, and the bars' extents (a clip's bars are those black in all its samples).

    The luma plane has the coded pixels; ``scale`` (flow pixels to source pixels) and the bars
    are in display pixels, as the clip's width and height are: with 16:11 pixels a 96-px coded
    pillar is 140 px wide on screen, and a crop in coded pixels kept 87 px of bar."""
    luma = fr.luma()
    dw, dh = fr.display_size()
    rec = {"video_id": video_id, "frame": fr.index, "time": fr.time, "scale": dw / analysis_width}
    rows, cols = border_profile(luma)
    bars = find_borders([rows], [cols])
    rec.update(frame_technical(luma, crop=bars["crop"]))
    # a bar is whole display pixels, rounded up: no pixel of it is left in the picture
    for sides, size, coded in ((("border_top", "border_bottom"), dh, luma.shape[0]),
                               (("border_left", "border_right"), dw, luma.shape[1])):  # fmt: skip
        for side in sides:
            rec[side] = min(math.ceil(bars[side] * size / coded - 1e-6), size)
    return rec


def _scene_bounds(
    bounds: list, lumas: list[float], blends, cfg: dict, fps: float, alike: dict | None = None
) -> list:
    """The detector's scenes less what is not a scene: cuts made by a flash inside a shot merged
    (with ``merge_flash_cuts``; ``alike``: :attr:`FlashEnds.alike`), and the frames of fades,
    dissolves and blanks cut out (none left when every frame is one), and flashes left at a
    scene's edge (at a cut, or where the detector cut at a flash not merged). Inside the black
    bars that the transition finder ``blends`` found, flashes are read in the picture's luma."""
    delta, decay = cfg["flash_delta"], decay_frames(fps)
    # inside black bars, the picture's luma: a flash that lifts a letterboxed picture by delta
    # lifts the frame a third less, and the flash filter reads the picture's (picture_luma)
    x = picture_luma(np.asarray(lumas, np.float64), flash_picture(blends)[1])
    found = find_flashes(x, brightness_delta=delta, max_decay=decay)
    flashes = set(in_shot(found, alike or {}))
    if cfg["merge_flash_cuts"]:
        bounds = merge_flash_cuts(bounds, flashes)
    if blends is not None:
        # a flash frame is blank too, but it stays in its clip for the flash filter to judge
        bounds = cut_out(bounds, blends.finish(exclude=flashes))
    return cut_out(bounds, edge_flashes(x, bounds, delta, decay))


def _ocr_width(fr, max_side: int) -> int | None:
    """Display width of the OCR frame (:func:`~clipsift.filters.ocr.ocr_size`); None where that
    is the decoded frame as it is. Text in an anamorphic frame is squeezed (by 3/4 in HDV's
    1440x1080); below the cap it was read so, and the row's size was the coded one."""
    w, h = ocr_size(*fr.display_size(), max_side)
    f = fr.av_frame
    coded = (f.height, f.width) if fr.rotation in (90, 270) else (f.width, f.height)
    return None if (w, h) == coded else w


def transition_finder(cfg: dict, fps: float) -> TransitionFinder | None:
    """The transition finder of the scan config ``cfg`` (None: ``transitions.enabled`` is
    false), looking for flashes by ``flash_delta`` as the flash rules do."""
    tcfg = cfg["transitions"]
    if not tcfg["enabled"]:
        return None
    own = {k: v for k, v in tcfg.items() if k != "enabled"}
    return TransitionFinder(fps, flash_delta=cfg["flash_delta"], **own)


def flash_picture(blends) -> tuple[tuple[slice, slice], float]:
    """The picture that the flash rules read inside black bars, and the share of the frame the
    bars take, from the transition finder ``blends`` (:meth:`TransitionFinder.picture`): as the
    flash filter takes them, no share over ``MAX_BARS`` (a frame of bars is black). None: the
    whole frame."""
    if blends is None:
        return WHOLE, 0.0
    box, bars = blends.picture()
    return box, (bars if bars <= MAX_BARS else 0.0)


def in_shot(flashes: list[int], alike: dict[tuple[int, int], bool]) -> list[int]:
    """The frames of ``flashes`` (ascending) in runs that the frames on either side show one
    shot, by ``alike[first frame of the run, first frame after it]``."""
    out: list[int] = []
    runs = np.split(np.asarray(flashes, np.int64), np.flatnonzero(np.diff(flashes) > 1) + 1)
    for run in runs:
        if len(run) and alike.get((int(run[0]), int(run[-1]) + 1), False):
            out += [int(f) for f in run]
    return out


class FlashEnds:
    """Whether the frames on either side of a possible flash show one shot. A flash inside a
    shot has its cut merged; a flash at a cut, an edit's flash cut between two shots, may
    fade out to about the brightness the first shot had, and merging its cut made one clip of
    both shots. Where the mean luma jumps by ``delta``, the frame before the jump is kept and
    compared with each of the next ``span`` frames (:func:`shifted_similarity` of 64-px gray
    frames over ``SAME_SHOT``; a correlation, so a frame still brighter than it compares
    alike). Two flat frames (a wall, a grey card: no picture to line up) are one shot where
    their levels agree within a quarter of ``delta``. ``alike[(a, b)]``: frame ``a`` jumped, and
    frames ``a - 1`` and ``b`` are one shot.

    Inside black bars (``box``, the picture, and ``bars``, the share of the frame they take, from
    :func:`flash_picture`) the frames are compared by their pictures, and a jump of
    the picture by ``delta`` is a jump of the frame by less: the bars of a pillarboxed frame
    alone made two shots correlate at 0.55-0.72, over ``SAME_SHOT``, and a flash cut between
    them was merged into one clip of both shots."""

    def __init__(self, delta: float, span: int):
        self.delta, self.span = delta, span
        self.alike: dict[tuple[int, int], bool] = {}
        self._open: list[tuple[int, np.ndarray]] = []  # (jump frame, the frame before it)
        self._prev: tuple[np.ndarray, float] | None = None  # the last frame and its luma

    def push(self, index: int, gray: np.ndarray, luma: float, box=WHOLE, bars: float = 0.0) -> None:
        jump = self.delta * (1.0 - bars)
        if self._prev is not None and abs(luma - self._prev[1]) >= jump:
            self._open.append((index, self._prev[0]))  # cropped when compared: the box may move
        self._open = [(a, before) for a, before in self._open if index - a <= self.span]
        if self._open:
            now = _fine(gray[box])
            for a, before in self._open:
                if index > a:
                    self.alike[a, index] = self._one_shot(_fine(before[box]), now)
        self._prev = (gray, luma)

    def _one_shot(self, before: np.ndarray, now: np.ndarray) -> bool:
        spread = sorted((float(before.std()), float(now.std())))
        if spread[0] < FLAT:  # one flat: one shot only where both are, at one level
            level = abs(float(before.mean()) - float(now.mean()))
            return spread[1] < FLAT and level < self.delta / 4
        return shifted_similarity(before, now) > SAME_SHOT


SAME_SHOT = 0.5  # correlation of two frames moved into line above which they show one shot
FLAT = 3.0  # gray std (levels) under which a 64-px frame is flat (the finder's blank_std)


def _fine(gray: np.ndarray) -> np.ndarray:
    return fine_frame(gray).astype(np.float32)


def merge_flash_cuts(bounds: list[tuple[int, int]], flash: set[int]) -> list[tuple[int, int]]:
    """Undo cuts that a flash caused: content detectors see a flash frame as two scene changes.

    A boundary is dropped when the frame on either side of it is in ``flash`` (the frames of
    ``find_flashes``: a jump in luma that comes back within a few frames), so the flash filter
    sees the flash inside one clip.
    """
    merged: list[tuple[int, int]] = []
    for a, b in bounds:
        if merged and merged[-1][1] == a and (a in flash or a - 1 in flash):
            merged[-1] = (merged[-1][0], b)
        else:
            merged.append((a, b))
    return merged


def scan_shard(source: pd.DataFrame, cfg: dict, ocr_cfg: dict | None = None, results=None):
    """Scan every usable video of a shard; a video that fails mid-decode becomes an error row.

    Returns the scenes, frames (luma), samples and OCR tables; ``ocr_cfg`` (the ``filters.ocr``
    section) turns on OCR in this pass. ``results``: the results folder, for the commands a
    missing file's message gives (:func:`check_reachable`).
    """
    check_reachable(source, results)
    # one OpenCV thread: the pipeline runs one job per core, and threaded optical flow gave
    # results that differed in the last bits between identical runs
    cv2.setNumThreads(1)
    ocr = None
    if ocr_cfg:
        from ..filters.ocr_reader import OcrReader

        reader = OcrReader.from_config(ocr_cfg)
        ocr = (reader, *(ocr_cfg[k] for k in ("every_seconds", "quiet_every_seconds", "max_side")))
    all_scenes, all_frames, all_samples, all_texts = [], [], [], []
    t0 = time.monotonic()
    total_s = 0.0
    for i, row in enumerate(source.to_dict("records")):
        try:
            scenes, frames, samples, texts = scan_video(
                row["path"], row["video_id"], row["fps"], cfg, ocr
            )
        except VideoError as exc:
            all_scenes.append(
                {c: None for c in SCENE_COLUMNS} | {"video_id": row["video_id"], "error": str(exc)}
            )
            continue
        all_scenes += scenes
        all_frames += frames
        all_samples += samples
        all_texts += texts
        total_s += row["duration"] or 0.0
        el = time.monotonic() - t0
        log.info(
            "scan %d/%d %s: %d scene(s); %.1f video-s in %.1f s (%.2f x real time)",
            i + 1, len(source), row["video_id"], len(scenes), total_s, el, total_s / max(el, 1e-9),
        )  # fmt: skip
    scenes = pd.DataFrame(all_scenes, columns=SCENE_COLUMNS)
    frames = pd.DataFrame(all_frames, columns=FRAME_COLUMNS)
    samples = pd.DataFrame(all_samples)
    if samples.empty:
        samples = pd.DataFrame(columns=["video_id", "frame", "time"])
    texts = pd.DataFrame(all_texts, columns=OCR_COLUMNS)
    for col in ("frame", "pair_frame", "start_frame", "end_frame", "scene", "n_frames",
                "decode_errors", "width", "height"):  # fmt: skip
        for df in (scenes, frames, samples, texts):
            if col in df:
                df[col] = df[col].astype("Int64")
    return scenes, frames, samples, texts


def as_float32(df: pd.DataFrame) -> pd.DataFrame:
    """Halve the size of the per-frame tables; these are measurements, not identifiers."""
    for col in df.columns:
        if df[col].dtype == np.float64 and col not in ("time",):
            df[col] = df[col].astype(np.float32)
    return df
