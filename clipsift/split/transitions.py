"""Gradual transitions (fades through black or white, dissolves) and blank frames.

Cut detectors compare neighbouring frames, so a transition that spreads its change over 0.3-2 s
either passes unseen or is cut somewhere in its middle, and its blended frames end up inside a
clip. A fade or a dissolve is a blend: every frame between the last clean frame ``A`` of one shot
and the first clean frame ``B`` of the next is ``A + alpha * (B - A)`` with alpha rising from 0 to
1 (a fade is a dissolve to or from a flat frame). Camera motion, action and a hard cut are not:
a panned frame is no blend of its neighbours, and a cut jumps from alpha 0 to 1 in one frame.

So for every frame ``e`` and window lengths ``L`` of 0.1-2.5 s in steps of 1.35x, the window
``[e - L, e]`` is tested on 64-px gray frames (smoothed by ``SMOOTH`` where blends are fitted and
motion is measured) and the frames' mean chroma (ends that differ in colour are two pictures,
however alike in gray: ``RECOLOURED``). Cheap screens over all windows at once drop most of them
(ends too alike, a single jump, no change in brightness, contrast or colour). A window that is left
is a transition when its ends are two different pictures (or one is flat), every frame inside is a
blend of the ends, each moved as its shot moves (``alpha`` and a small residual on its best-fitting
``FIT_SHARE`` of pixels, as a subject may move across a shot on its own), alpha rises steadily (no
jump, no stall), the frames' contrast is that of such a blend, and the frames beyond each end go no
further along the ramp (the window holds all of it). A line fitted to alpha gives the first and
last blended frame (widened over faint frames that stand out from the clean ones beyond them); they
belong to no clip. A shot's motion is measured over up to 0.15 s of its frames, so windows are
tested that long after their last frame. Frames that are one flat colour near black or white as
seen (the dip of a fade, a blank; an HDR frame by its SDR levels) belong to no clip either. Frames
are compared inside the video's black bars (:class:`PictureBox`), which would fit any blend and any
motion. Windows pass over bright flashes (a jump in luma that comes back): no window ends on a flash
frame or is fitted to one (:meth:`TransitionFinder._track_flash`).

A whip pan is no blend: shot A swings away in a few blurred frames and shot B swings in, the
cut hidden in the blur. Each of its frames changes as much as the cut, so a cut detector sees
no cut. The finder also follows the mean step between its 64-px frames: a short run of steps
far over those before it, calm again after, between two different pictures, with a cut hidden
in it, is a transition too (:meth:`TransitionFinder._burst`); so is a short run of frames
blurred far below the detail of the shots either side (:meth:`TransitionFinder._track_blur`),
which finds whips between shots that pan themselves.

Cost, from ``bench/throughput.py``: 0.2-0.31 ms per frame on one core, next to the 3-10 ms a
720p or 1080p frame costs to decode; 9-19 ms on footage with a transition every 3 s
(``bench/accuracy.py``), as every window around one is fitted frame by frame. Above 50 fps
windows end on, and are first tested on, every ``fps // 50``-th frame (see ``stride``), so a
second of 240-fps video costs about what it does at 60 fps.
"""

from __future__ import annotations

import collections
import functools
import itertools
import statistics

import cv2
import numpy as np

from ..filters.flash import decay_frames, find_flashes
from ..scorers.technical import BLACK_LEVEL, border_profile, centred, edge_runs


class TransitionFinder:
    """Push every frame's small gray image in order; ``finish`` gives the frames of gradual
    transitions and blanks, as sorted ``[first, last]`` ranges."""

    def __init__(
        self,
        fps: float,
        *,
        min_change: float = 8.0,
        max_residual: float = 0.3,
        max_contrast_error: float = 0.15,
        max_similarity: float = 0.5,
        min_seconds: float = 0.1,
        max_seconds: float = 2.5,
        blank_std: float = 3.0,
        flash_delta: float | None = None,
    ):
        fps = fps if fps and fps > 0 else 30.0
        lo = max(3, round(min_seconds * fps))
        hi = max(lo + 1, round(max_seconds * fps))
        lengths, length = [], float(lo)
        while round(length) < hi:  # geometric steps: some window fits every transition closely
            lengths.append(round(length))
            length *= 1.35
        self.lengths = sorted(set(lengths + [hi]))
        self.min_change = min_change
        self.max_residual = max_residual
        self.max_contrast_error = max_contrast_error
        self.max_similarity = max_similarity
        self.blank_std = blank_std
        # a shot's motion is measured over up to ``lag`` frames at each end of a window (a slow
        # pan moves a 64-px frame by a twentieth of a pixel per frame: one pair measures that
        # poorly, and the error grows over a long window), so windows are tested ``lag`` frames
        # after their last frame
        self.lag = max(2, round(0.15 * fps))
        # flashes (``flash_delta``; None: none looked for): their frames are no picture of
        # either shot, so windows skip them (:meth:`_track_flash`). A flash is known once its
        # frames end, up to ``decay_frames`` after it starts, so windows are tested that late
        self.flash_delta = flash_delta
        self._decay = decay_frames(fps)
        self.delay = max(self.lag, self._decay) if flash_delta else self.lag
        # above 50 fps, windows end on every ``stride``-th frame and are tested on every
        # ``stride``-th frame inside (the rate of 50-100 fps footage), and only a window that
        # passes is fitted frame by frame for its ends. Tested frame by frame at every end, the
        # cost grew with the square of the rate: 35 times the decoding of a 640x360 video at 240
        # fps with a transition every 3 s
        self.stride = max(1, int(fps // 50))
        # ring buffers by frame index: a window and ``lag`` frames before and after it
        self._burst_len = max(2, round(BURST_SECONDS * fps))
        self._size = max(self.lengths[-1], 2 * self._burst_len) + self.lag + self.delay + 3
        self._count = 0  # frames pushed
        self._fine: np.ndarray | None = None  # 64 px gray frames, flattened
        self._fine8: np.ndarray | None = None  # the same as uint8, for OpenCV's integer sums
        self._mean = np.zeros(self._size, np.float32)
        self._colour = np.zeros((self._size, 2), np.float32)  # mean chroma (Cb, Cr)
        self._std = np.zeros(self._size, np.float32)
        self._step = np.zeros(self._size, np.float32)  # mean |frame - previous frame|
        self._pace = np.zeros(self._size, np.float32)  # the same on the smoothed frames
        # the steps the windows' screen reads: 0 into a flash's frames, and from the frame
        # before the flash to the one after it out of them
        self._screen_step = np.zeros(self._size, np.float32)
        # per frame: the second largest of the ``2 * lag`` steps up to it where two of them are
        # repeats (under HELD_STEP: a held picture), else 0 (TransitionFinder._windows); the
        # second, so that a cut next to a still shot is no step of a held shot
        self._held_steps = np.zeros(self._size, np.float32)
        self._held_back = np.arange(1 - 2 * self.lag, 1)
        self._seen = np.zeros(self._size, np.float32)  # mean luma as seen
        self._flash = np.zeros(self._size, bool)  # frames of flashes
        self._jumps: collections.deque = collections.deque()  # recent flash_delta jumps
        self._marked: set[int] = set()
        # the picture inside black bars: a letterboxed 2-s dissolve stayed inside its clip, as
        # the bars (a quarter of a 2.39:1 film's 16:9 frame) fit any blend and motion exactly
        self._picture = PictureBox(max(3, round(fps)), blank_std)
        self._box: tuple[slice, slice] | None = None  # (rows, columns) of the picture
        self._pending: list = []  # frames held until the box is known
        self._hold, self._held = max(3, round(HOLD_SECONDS * fps)), 0  # frames, bytes held
        self._motions: dict[tuple[int, int], Motion] = {}  # (a, b): motion from frame a to b
        self._cadences: dict = {}  # (frame, way): _cadence, until the next frame is pushed
        # bursts (whip pans): the open run of big steps [first, last, threshold], and closed
        # runs waiting for ``lag`` frames after them
        self._run: list | None = None
        self._recent: collections.deque = collections.deque(maxlen=self.lag)  # the last steps
        self._edge = np.zeros(self._size, np.float32)  # detail: mean |gradient| (blurred whips)
        self._dip: list | None = None  # the open run of blurred frames [first, last, level]
        self._recent_edge: collections.deque = collections.deque(maxlen=self.lag + 1)
        self._closed: list[tuple[int, int]] = []

    def push(
        self,
        index: int,
        gray: np.ndarray,
        levels: np.ndarray | None = None,
        colour: tuple[float, float] | None = None,
    ) -> None:
        """``gray``: the frame as uint8 gray at any size; ``index`` counts decoded frames from 0
        without gaps. ``levels``: the luma a viewer sees by coded level (an HDR frame's SDR
        levels, ``Frame.sdr_table``), for what is near black or white: PQ codes its white at
        about 144. ``colour``: the frame's mean chroma (:func:`mean_chroma`), where known.

        Frames are compared inside the video's black bars (:class:`PictureBox`), so frames are
        held until its first second of pictures shows where they are."""
        if self._box is not None:
            self._push_boxed(index, gray, levels, colour)
            return
        self._pending.append((index, gray, levels, colour))
        self._held += gray.nbytes
        self._box = self._picture.see(gray, levels)
        if self._box is not None:
            self._replay()
        elif len(self._pending) >= self._hold or self._held > HOLD_BYTES:
            self.settle()  # a long blank start: no more frames held

    def _replay(self) -> None:
        pending, self._pending = self._pending, []
        for index, gray, levels, colour in pending:
            self._push_boxed(index, gray, levels, colour)

    def _push_boxed(self, index: int, gray: np.ndarray, levels, colour) -> None:
        self._push(index, gray[self._box], levels, gray if self._picture.bars else None, colour)

    def picture(self) -> tuple[tuple[slice, slice], float]:
        """The picture inside the video's black bars as (row, column) slices of the frames
        pushed, and the share of the frame the bars take (:class:`PictureBox`): as decided, or
        before that from the pictures seen so far."""
        if self._box is not None:
            return self._box, self._picture.share
        return self._picture.so_far()

    def settle(self) -> None:
        """Decide the box now, from the pictures seen so far, and compare the held frames: a run
        of frames that ends (a new picture size) holds none while the video goes on."""
        if self._box is None:
            self._box = self._picture.box()
            self._replay()

    def _push(self, index: int, gray: np.ndarray, levels, framed, colour) -> None:
        """``gray`` inside the bars; ``framed``: the whole frame, where it has bars."""
        small = fine_frame(gray)
        if self._fine is None:
            self._fine = np.empty((self._size, small.size), np.float32)
            self._fine8 = np.empty((self._size, small.size), np.uint8)
            self._rows = np.empty((len(self.lengths), small.size), np.uint8)
            self._shape = small.shape
        mean, std = (float(v[0, 0]) for v in cv2.meanStdDev(small))
        h, w = small.shape  # detail: OpenCV's integer sums of neighbours' differences
        self._edge[index % self._size] = cv2.norm(small[:, 1:], small[:, :-1], cv2.NORM_L1) / (
            h * (w - 1)
        ) + cv2.norm(small[1:], small[:-1], cv2.NORM_L1) / ((h - 1) * w)
        seen = mean if levels is None else float(levels[min(255, round(mean))])
        # a blank fills the frame: the bars stay black, or turn with it (PictureBox.blank_bars)
        flat = std < self.blank_std and not BLANK_BLACK <= seen < BLANK_WHITE
        if flat and (framed is None or self._picture.blank_bars(framed, levels, seen)):
            self._marked.add(index)
        k = index % self._size
        fine8 = small.ravel()
        # mean absolute differences from OpenCV's exact integer sums of uint8 differences,
        # divided in float32: the same floats as numpy's float32 means, at a fifth of the cost
        if index:
            prev = self._fine8[(index - 1) % self._size]
            self._step[k] = np.float32(cv2.norm(fine8, prev, cv2.NORM_L1)) / np.float32(len(fine8))
        self._screen_step[k] = self._step[k]
        held = 0.0
        if index >= 2 * self.lag:
            steps = np.sort(self._step.take((index + self._held_back) % self._size))
            held = steps[-2] if steps[1] < HELD_STEP else 0.0
        self._held_steps[k] = held
        self._fine8[k] = fine8
        # the fits and motion measures see the frame smoothed (``SMOOTH``)
        fine = cv2.GaussianBlur(small.astype(np.float32), (0, 0), SMOOTH).ravel()
        if index:
            self._pace[k] = np.abs(fine - self._fine[(index - 1) % self._size]).mean()
        self._fine[k] = fine
        self._mean[k], self._std[k] = mean, std
        self._colour[k] = colour if colour is not None else np.nan
        self._seen[k], self._flash[k] = seen, False
        self._count = index + 1
        if index:
            self._track_burst(index)
            self._track_blur(index)
            if self.flash_delta:
                self._track_flash(index)
        self._cadences.clear()  # the frames beyond a window's ends, and flashes, are new
        # the frames after a window show how its second shot moves
        if index - 1 - self.delay >= 0 and (index - 1 - self.delay) % self.stride == 0:
            self._windows(index - 1 - self.delay)
        if index - 2 - self.delay >= 1:
            self._blended_cut(index - 2 - self.delay)

    def _track_flash(self, i: int) -> None:
        """Mark the frames of flashes (:func:`~clipsift.filters.flash.find_flashes`, on the
        picture's mean luma as seen) once frame ``i`` ends them. A flash next to a fade or a
        dissolve left the transition's faintest frame in the clip: the windows that held the
        flash failed the blend test, and the one that passed ended on that frame. Windows skip
        a flash's frames: no end on one, no fit to one, and the screen's step over one is the
        step from the frame before it to the frame after."""
        size = self._size
        if abs(self._seen[i % size] - self._seen[(i - 1) % size]) >= self.flash_delta:
            self._jumps.append(i)
        while self._jumps and i - self._jumps[0] > self._decay + 1:
            self._jumps.popleft()
        # a flash ends where the luma comes back to within half a delta of where it jumped from
        # (find_flashes' rule): a cut's jump, which stays, costs no search
        now = self._seen[i % size]
        if not any(
            abs(now - self._seen[(j - 1) % size]) <= self.flash_delta / 2 for j in self._jumps
        ):
            return
        lo = self._jumps[0] - 1
        found = find_flashes(self._seen[np.arange(lo, i + 1) % size],
                             brightness_delta=self.flash_delta, max_decay=self._decay)  # fmt: skip
        # bright flashes only: a run darker than the frame before it is a cut to black and a
        # fade in from it as often as a dropout (find_flashes reads both), and skipped, such a
        # fade lost its last 1-2 frames to the next clip
        base = self._seen[lo % size]
        new = [lo + f for f in found if not self._flash[(lo + f) % size]]
        new = [f for f in new if self._seen[f % size] > base]
        if not new:
            return
        self._flash[np.asarray(new) % size] = True
        for a in {self._run_start(f, lo) for f in new}:
            b = a
            while b <= i and self._flash[b % size]:
                b += 1
            self._screen_step[np.arange(a, b) % size] = 0.0
            if b <= i:
                before, after = self._fine8[(a - 1) % size], self._fine8[b % size]
                self._screen_step[b % size] = cv2.norm(after, before, cv2.NORM_L1) / len(after)

    def _run_start(self, f: int, lo: int) -> int:
        """The first frame of the run of flash frames that holds frame ``f`` (not before
        ``lo + 1``)."""
        while f - 1 > lo and self._flash[(f - 1) % self._size]:
            f -= 1
        return f

    def _track_burst(self, i: int) -> None:
        """Follow runs of steps far over the pace before them (``BURST_RATIO`` times its median
        over ``lag`` frames, at least ``BURST_FLOOR``), and judge each that ends within
        ``BURST_SECONDS`` once ``lag`` frames follow it (:meth:`_burst`)."""
        step = float(self._step[i % self._size])
        run = self._run
        if run is not None and step >= run[2]:
            run[1] = i
            if i - run[0] >= self._burst_len:  # too long for a whip: a fast camera move
                run[3] = True
            self._recent.append(step)
            return
        if run is not None:
            self._run = None
            if not run[3]:
                self._closed.append((run[0], run[1]))
        if self._recent and run is None:
            limit = max(BURST_FLOOR, BURST_RATIO * statistics.median(self._recent))
            if step >= limit:
                self._run = [i, i, limit, False]
        self._recent.append(step)
        while self._closed and i - self._closed[0][1] >= self.lag:
            self._burst(*self._closed.pop(0), self.lag)

    def _track_blur(self, i: int) -> None:
        """Follow runs of frames whose detail (:attr:`_edge`) drops under ``BLUR_DIP`` of the
        median detail of the ``lag`` frames before them: a whip's frames, blurred along the
        swing, between shots that may pan themselves (their own steps hide the whip's from
        :meth:`_track_burst`). Each run is judged ``2 * lag`` frames after it ends
        (:meth:`_blur_run`)."""
        edge = float(self._edge[i % self._size])
        before, dip = self._recent_edge, self._dip
        before.append(edge)  # the last lag + 1 frames' detail, this one last
        if dip is not None and len(dip) == 3:
            if edge < BLUR_DIP * dip[2] and i - dip[0] < 2 * self._burst_len:
                dip[1] = i
                return
            dip.append(i)  # closed: judged once 2 * lag frames follow it
        if dip is not None and i - dip[1] >= 2 * self.lag:
            self._dip = None
            self._blur_run(dip[0], dip[1], dip[2])
            dip = None
        if dip is None and len(before) > self.lag:
            level = statistics.median(itertools.islice(before, 0, self.lag))
            if level >= BLUR_FLOOR and edge < BLUR_DIP * level:
                self._dip = [i, i, level]

    def _blur_run(self, first: int, last: int, before: float) -> None:
        """A run of blurred frames ``first``-``last`` under the detail ``before`` them: widen it
        over its less blurred frames (under ``BLUR_EDGE`` of the detail on their side, the
        level after measured ``lag`` to ``2 * lag`` frames on, past the whip's slowing end) and
        judge it as a whip (:meth:`_whip`)."""
        size = self._size
        hi = min(last + 2 * self.lag, self._count)
        after = float(np.median(self._edge[np.arange(min(last + self.lag, hi - 1), hi) % size]))
        if after < BLUR_FLOOR:
            return
        # the run may go on into a shot with less detail than the one before: those frames are
        # the next shot's, as detailed as it is
        while last >= first and self._edge[last % size] >= BLUR_EDGE * after:
            last -= 1
        if last < first or last - first + 1 > self._burst_len:
            return
        while first > 1 and last - first < self._burst_len:
            if self._edge[(first - 1) % size] >= BLUR_EDGE * before:
                break
            first -= 1
        while last + 2 < self._count and last - first < self._burst_len:
            if self._edge[(last + 1) % size] >= BLUR_EDGE * after:
                break
            last += 1
        self._whip(first, last + 1)

    def _whip(self, first: int, end: int) -> None:
        """Frames ``first`` to ``end - 1`` belong to no clip where frames ``first - 1`` and
        ``end`` are two pictures (not one shot moved) and a cut hides between them: two
        neighbouring frames that, aligned, correlate under ``HIDDEN_CUT``."""
        if first < 1 or end >= self._count or end - first > self._burst_len:
            return
        a, b = self._sharp(first - 1), self._sharp(end)
        if float(np.abs(a - b).mean()) < self.min_change:
            return
        if shifted_similarity(a, b) > self.max_similarity:
            return
        # the ends' own test cannot tell a swing of half the frame or more inside one shot (the
        # ends share too little to align): such swings scored 0.51-0.92 frame to frame, whips
        # 0.03 or less at their cut
        frames = [a] + [self._sharp(k) for k in range(first, end)] + [b]
        pairs = zip(frames[:-1], frames[1:], strict=True)
        if min(shifted_similarity(x, y) for x, y in pairs) > HIDDEN_CUT:
            return
        self._marked.update(range(first, end))

    def _burst(self, first: int, last: int, after: int) -> None:
        """A run of big steps, frames ``first`` to ``last``: a whip pan's blurred frames, where
        a shot swings away and another swings in (the cut between them hides in the blur), are
        such a run between two calm shots. No frame in it is a blend of the shots, and the
        cut detector saw each of its frames change as much as the cut (5 of 7 tryout whips
        were no cut: both shots in one clip). Where the steps after it are calm again (their
        median under the run's by ``BURST_RATIO``), the frames either side of it are two
        pictures (not one shot moved: :func:`shifted_similarity` at most ``max_similarity``,
        and ``min_change`` apart), and two neighbouring frames in it are no picture moved (the
        hidden cut: under ``HIDDEN_CUT``), its frames but the last belong to no clip. A flash or
        a shake leaves the same picture either side; a swing inside one shot moves each frame
        on from the one before."""
        if last - first < 1:
            return
        size = self._size
        steps = self._step[np.arange(first, last + 1) % size]
        calm = self._step[np.arange(last + 1, last + 1 + after) % size]
        if float(np.median(steps)) < BURST_RATIO * float(np.median(calm)):
            return
        self._whip(first, last)

    def _windows(self, e: int) -> None:
        """Screen and test the windows ``[s, e]`` that end at frame ``e``."""
        starts = e - np.asarray([n for n in self.lengths if n <= e], np.int64)
        if self._flash[e % self._size]:
            return  # a flash's frame is no picture of either shot
        starts = starts[~self._flash[starts % self._size]]
        if not len(starts):
            return
        # cheap screens for all windows at once: the ends differ enough, no single step holds
        # half the change (a cut, but see below), and the ends differ in brightness, contrast,
        # or by a contrast dip between them (two pictures blended); a moving picture keeps its
        # brightness and contrast, so camera motion rarely gets past here
        ring, ke = starts % self._size, e % self._size
        rows = self._rows[: len(ring)]
        np.take(self._fine8, ring, axis=0, out=rows)
        sums = cv2.reduce(
            cv2.absdiff(rows, np.tile(self._fine8[ke], (len(ring), 1))), 1, cv2.REDUCE_SUM,
            dtype=cv2.CV_32S,
        )  # fmt: skip
        change = sums.ravel().astype(np.float32) / np.float32(rows.shape[1])
        back = (e - np.arange(self.lengths[-1] + 1)) % self._size  # frame e, then back in time
        at = e - starts - 1  # per window: position of its second frame in ``back``
        jump = np.maximum.accumulate(self._screen_step[back])[at]
        dip = np.minimum.accumulate(self._std[back[1:]])[np.maximum(at - 1, 0)]
        sa, sm = self._std[ring], self._mean[ring]
        lo, hi = np.minimum(sa, self._std[ke]), np.maximum(sa, self._std[ke])
        hue = self._colour_gap(starts, e) >= RECOLOURED
        differ = (np.abs(sm - self._mean[ke]) > 6) | (lo < 0.8 * hi) | (dip < 0.9 * lo) | hue
        keep = ((change >= self.min_change) | hue) & differ
        # ... unless a shot takes such steps by itself where it holds pictures:
        # animation on twos (each picture held for two frames) moves in steps of two frames'
        # motion, with repeats between. At 320x180 a pan on twos stepped half the change of the
        # windows around a 9-frame dissolve, each such window's screen took the step for a
        # cut's, and 4 blended frames stayed in a clip. The shots are read in the ``2 * lag``
        # steps up to frame s and those up to ``lag`` frames after e (``_held_steps``)
        after = self._held_steps[(e + self.lag) % self._size] if e + self.lag < self._count else 0.0
        # (within HELD_JUMP of them: a held shot's first picture after a dissolve steps from
        # the dissolve's last frame, a little further than its own pictures step from each
        # other, and every window over a 20-frame dissolve into a fast pan failed here)
        held = jump <= HELD_JUMP * np.maximum(self._held_steps[ring], after)
        stepped = keep & ~((jump < 0.5 * change) | held)
        if stepped.any():
            # ... and a fast pan over fine texture (foliage at 0.8 px a frame on 64-px frames)
            # steps about half as far each frame as two pictures differ: every window over a
            # 0.5-s dissolve between two such pans failed here, and one clip held both shots.
            # Smoothed as the fits see them, its steps are a quarter of the change; a cut's
            # step stays most of it
            pace = np.maximum.accumulate(self._pace[back])[at[stepped]]
            sm = np.abs(self._fine[ring[stepped]] - self._fine[ke]).mean(axis=1)
            stepped[stepped] = pace < 0.5 * sm
        for s in starts[keep & ((jump < 0.5 * change) | held | stepped)]:
            self._test(int(s), e)

    def _blended_cut(self, t: int) -> str:
        """Mark frame ``t`` where it alone blends the shots either side of a cut; returns the
        test it failed, or ''. Frame-rate conversion by blending (a 24-fps film shown at 30 or
        25 fps), and editors' one-frame "soft cuts", turn a cut into one frame of both shots,
        which no window of :meth:`_windows` holds (their shortest has two frames inside). Such
        a frame stayed at a clip's end or start; over a fast pan of busy texture its two half
        steps were no cut either, and one clip held three shots. Frame ``t`` is such a blend
        where the frames either side are two pictures, much further apart than the shots' own
        steps, and ``t`` is a blend of them, each moved as its shot moves (``alpha`` between
        ``1 - ONE_FRAME_ALPHA`` and ``ONE_FRAME_ALPHA``, the windows' residual bound). The
        blend may be shown up to 3 times (such a film doubled to 50 or 60 fps, or carried in a
        3:2 cadence): its repeats go with it, and a repeat is judged with its first frame."""
        size, s, e = self._size, t - 1, t + 1
        if self._step[t % size] < HELD_STEP:
            return "held"  # a repeat of frame t - 1
        while e + 1 < self._count and e - t < 3 and self._step[e % size] < HELD_STEP:
            e += 1
        if self._flash[s % size] or self._flash[t % size] or self._flash[e % size]:
            return "flash"
        raw = float(cv2.norm(self._fine8[s % size], self._fine8[e % size], cv2.NORM_L1))
        if raw < self.min_change * self._fine8.shape[1]:
            return "screen"
        # the rest on the smoothed frames, as the fits see them: unsmoothed, a pan over foliage
        # at 0.7 px a frame (64-px frames) stepped 20 levels, and the cut's half steps 23
        change = float(np.abs(self._frame(s) - self._frame(e)).mean())
        if min(self._pace[t % size], self._pace[e % size]) < (1 - ONE_FRAME_ALPHA) * change:
            return "screen"  # all of the change in one step: a cut
        # within a shot, frames two apart differ by at most about two of its steps (a step
        # into or out of a flash is none of the shot's)
        own = 0.0
        if s and not self._flash[(s - 1) % size]:
            own = self._pace[s % size]
        if e + 1 < self._count and not self._flash[(e + 1) % size]:
            own = max(own, self._pace[(e + 1) % size])
        # ... and a shot that holds its pictures steps at its changes of picture, with repeats
        # between: on threes, frame t is the next picture, s and e repeat the ones either side,
        # and a fast pan over a weave (fabric), whose pictures align poorly, passed as a blend
        # and was split there
        own = max(own, self._held_pace(s, -1), self._held_pace(e, 1))
        if change < OWN_STEPS * own:
            return "own"
        # two pictures, but not by contrast: one picture lit otherwise keeps its correlation,
        # and a room whose light came on, a blinking lamp or lightning, each with one frame
        # half lit, lost that frame and was split there (7 of 7 light switches, 17 frames of
        # 90 under a 3-Hz blink)
        if self._one_picture(s, e, self._sharp(s), self._sharp(e), by_contrast=False):
            return "similar"
        va, vb = self._velocity(s, -1, change), self._velocity(e, 1, change)
        alpha, resid = (float(v[0]) for v in self._blend_fit(s, e, va, vb, [t]))
        if resid > self.max_residual:
            return "residual"
        if not 1 - ONE_FRAME_ALPHA <= alpha <= ONE_FRAME_ALPHA:
            return "alpha"
        self._marked.update(range(t, e))
        return ""

    def _test(self, s: int, e: int) -> str:
        """Mark the blended frames of window ``[s, e]``; returns the test it failed, or ''."""
        size = self._size
        a, b = self._sharp(s), self._sharp(e)
        sa, sb = float(self._std[s % size]), float(self._std[e % size])
        # 1. the ends are two different pictures (not one picture moved), as pushed or
        # smoothed: threads finer than the 64-px frames leave a moire that moves unlike the
        # cloth, and two frames of a fast pan over a weave correlated at 0.18 as pushed (0.95
        # smoothed), fitted as a blend, and cut a shot in two pieces too short to keep
        if self._one_picture(s, e, a, b) or self._one_picture(s, e, self._frame(s), self._frame(e)):
            return "similar"
        # 2. every frame between is a blend of the two shots, each moved as it moves at its
        # end of the window (a shift, turn and zoom per frame, measured over the frames before
        # s and after e): f_k = A_k + alpha_k (B_k - A_k), with a small residual
        change = float(np.abs(self._frame(s) - self._frame(e)).mean())  # as _same_shot's paces
        va, vb = self._velocity(s, -1, change), self._velocity(e, 1, change)
        # 1b. one shot carried by its own motion: each end moved on over the window as its
        # shot moves leaves a small part of their difference (:func:`_carried`). Phase
        # correlation whitens the spectrum, so a small textured part that moves on its own (a
        # picture-in-picture inset) set the shift of test 1, and the pan of a smooth picture
        # around it (sky, a gradient), which any blend of its ends fits, read as a dissolve (a
        # tryout lost 0.7-3.2 s of such shots)
        if min(_carried(a, b, va, e - s), _carried(b, a, vb, s - e)) < CARRIED:
            return "carried"
        # 1c. a transition changes the whole picture: the ends' difference, each moved on as
        # its shot moves, is spread over the frame about as widely as the pictures' detail
        # (:func:`_spread`). A part of the shot that switches on its own (a scoreboard, a
        # burned-in counter, a screen in the shot), a tenth of the frame over a steady pan,
        # made windows of 4-30 frames whose average alpha rose as a dissolve's does
        if min(_spread(a, b, va, e - s), _spread(b, a, vb, s - e)) < SPREAD:
            return "local"
        ks = np.arange(s + 1, e, self.stride)  # the frames tested (all, up to 50 fps)
        ks = ks[~self._flash[ks % size]]  # but a flash's
        if len(ks) < 2:
            return "flash"
        x = ks - (s + 1)  # their places in the window
        mid = len(ks) // 2  # the middle frame first: most windows that fail, fail there
        others = [int(k) for k in np.delete(ks, mid)]
        fit, bound = self._blend_fit, self.max_residual
        first = fit(s, e, va, vb, [int(ks[mid])])
        rest = fit(s, e, va, vb, others) if first[1].max() <= bound else None
        if (rest is None or rest[1].max(initial=0.0) > bound) and min(sa, sb) < self.blank_std:
            # a fade (one end flat) over fine texture that moves: the moved picture predicts
            # the frames too poorly (worst where the picture is strongest, so often not at the
            # middle frame), but a fade scales the picture's difference from the flat colour,
            # which each frame's mean and contrast show alone (:meth:`_fade_fit`)
            fit, bound = self._fade_fit, FADE_AGREEMENT
            first, rest = fit(s, e, va, vb, [int(ks[mid])]), fit(s, e, va, vb, others)
        if rest is None or max(first[1].max(), rest[1].max(initial=0.0)) > bound:
            return "residual"
        alpha = np.insert(rest[0], mid, first[0])
        if change < FAINT * self.min_change and self._recoloured(s, e):
            # two pictures told apart by colour: where the gray ramp is faint (two skies 8
            # levels apart in gray, its alpha wobbled by 0.05 and a 30-frame dissolve's line
            # met 0 nine frames early), the ends' mean chroma gives the steadier one. Not on a
            # stronger ramp: a subject crossing either shot moves the mean chroma too, and the
            # end of a 2-s dissolve under one came a frame later by it
            hue = self._chroma_fit(s, e, va, vb, [int(k) for k in ks])[0]
            if _wobble(hue, x) < _wobble(alpha, x):
                fit, alpha = self._chroma_fit, hue
        # 3. a steady rise: no step back, no single jump carrying most of the change (a cut),
        # and no stall: a quarter of the ramp's frames in a row move alpha by under 0.05 in a
        # blend of any pace or easing, while a shot cut to and then faded out sits still at one
        # alpha, half way to its faded end, until it fades
        steps = np.diff(np.concatenate(([0.0], alpha, [1.0])))
        inside = (alpha > 0.1) & (alpha < 0.9)
        ramp = steps[1:][inside]
        if steps.min() < -0.1 or steps.max() > 0.6 or len(ramp) < 2:
            return "steps"
        if _stalls(alpha, inside):
            return "stall"
        # 4. contrast as a blend has it: std((1 - t) a + t b) follows from the ends alone, and
        # dips in a dissolve; moving pictures keep theirs. Within a share of the stronger end's
        # contrast, and never under half a level (``QUANTUM``): a fade into a faint sky failed
        # here on rounding alone, and its faint frames opened the next clip
        cov = float(((a - a.mean()) * (b - b.mean())).mean())
        t = np.clip(alpha, 0.0, 1.0)
        pred = np.sqrt(
            np.maximum((1 - t) ** 2 * sa * sa + t * t * sb * sb + 2 * t * (1 - t) * cov, 0)
        )
        obs = self._std[ks % size]
        if np.abs(obs - pred).max() > max(self.max_contrast_error * max(sa, sb), QUANTUM):
            return "contrast"
        # the blend's frames: a line fitted to alpha over the ramp's middle (0.1-0.9) meets 0
        # and 1 where the transition starts and ends; the faint first and last steps of a long
        # dissolve are below the coding noise, the line is not. Fades and dissolves are linear
        # ramps in edits; an eased one loses its faintest frames here
        line = _line(alpha, x, e - s - 1)
        if line is None:
            return "steps"
        slope, lo, hi = line
        if e - s > 1.5 * (hi - lo + 3):
            # a loose window: its shots' motion is extrapolated far, so its ends are less sure;
            # a tighter window (lengths step by 1.35) marks this transition
            return "loose"
        # 5. the window holds the whole ramp: beyond each end, its shot's frames go no further
        # along it. A window that starts or ends inside a slow dissolve passes 1-4 (an end that
        # is itself a blend is a picture too), but its line is fitted to part of the ramp, which
        # coding bends near its end: such windows marked frames past the end of 1- and 2-s
        # dissolves. A window that holds all of it marks this transition
        for i, way in ((s, -1), (e, 1)):
            n = self._same_shot(i, way, change)
            if n >= 3 * self.stride:
                out = sorted(i + way * k for k in range(self.stride, n + 1, self.stride))
                out = [k for k in out if not self._flash[k % size]]
                if len(out) < 2:  # (above 50 fps: the frames on the stride all a flash's)
                    continue
                beyond = fit(s, e, va, vb, out)[0].astype(np.float64)
                at = np.asarray(out, np.float64) - out[0]
                if np.polyfit(at, beyond, 1)[0] > 0.5 * slope:
                    return "partial"
        if len(ks) < e - s - 1:  # the ends to the frame: every frame's alpha
            alpha = self._fit_frames(fit, s, e, va, vb, range(s + 1, e))
            line = _line(alpha, np.arange(len(alpha)), len(alpha))
            if line is None:
                return "steps"
            _, lo, hi = line
        # the faint frames at each end may still hold a blend that the line misses: a decoded
        # blend lags the edit (the frames after a dissolve hold 0.5-3 % of the old shot, and a
        # slow dissolve's decoded ramp runs that much late), and a shot's motion is measured
        # with some error. Each end widens over the frames that stand out from the clean frames
        # beyond them
        lo = self._widen(alpha, lo, s, e, va, vb, change, fit, slope, -1)
        hi = len(alpha) - 1 - self._widen(1.0 - alpha[::-1], len(alpha) - 1 - hi, s, e, va, vb,
                                          change, fit, slope, 1)  # fmt: skip
        # a blend's faint end can lie past the window's own: the windows that hold it may fail
        # (the contrast test, on a shot whose contrast changes as it moves in), and the one
        # that passes starts a frame or two inside the ramp (a fade-out's frames at 95 and 90 %
        # were kept). Where the ramp reaches the window's end, that end widens on the same way
        # over its shot's frames beyond the window
        first, last = s + 1 + lo, s + 1 + hi
        if lo == 0:
            first -= self._widen_past(fit, s, e, va, vb, change, slope, -1)
        if hi == len(alpha) - 1:
            last += self._widen_past(fit, s, e, va, vb, change, slope, 1)
        self._marked.update(range(first, last + 1))
        return ""

    def _one_picture(self, s: int, e: int, a, b, *, by_contrast: bool = True) -> bool:
        """Whether frames ``s`` and ``e`` (``a``, ``b``: as :meth:`_sharp` gives them) show one
        picture, moved, not two: their contrasts are within a factor of 2 (``by_contrast``;
        else neither is flat), their colours are alike (two skies, two walls of one gradient in
        gray: a dissolve from an orange sky to a green one correlated at 0.996 in gray, and
        stayed in its clip), and they correlate once aligned."""
        sa, sb = float(self._std[s % self._size]), float(self._std[e % self._size])
        alike = min(sa, sb) >= (0.5 * max(sa, sb) if by_contrast else self.blank_std)
        return (
            alike and not self._recoloured(s, e) and shifted_similarity(a, b) > self.max_similarity
        )

    def _recoloured(self, s: int, e: int) -> bool:
        """Whether frames ``s`` and ``e`` differ in mean chroma by ``RECOLOURED`` or more."""
        return bool(self._colour_gap(s, e) >= RECOLOURED)

    def _colour_gap(self, s, e: int):
        """The larger of the Cb and Cr differences between frame(s) ``s`` and frame ``e`` (nan,
        so no gap, where either's colour is unknown)."""
        return np.abs(self._colour[s % self._size] - self._colour[e % self._size]).max(axis=-1)

    def _chroma_fit(self, s, e, va, vb, ks) -> tuple[np.ndarray, np.ndarray]:
        """Alpha of frames ``ks`` from their mean chroma, projected on the ends' difference (a
        blend's mean is the blend of the means), with no residual: the fit of a window whose
        ends differ in colour (:meth:`_recoloured`), in :meth:`_blend_fit`'s form."""
        size = self._size
        a, b = self._colour[s % size], self._colour[e % size]
        d = (b - a).astype(np.float64)
        c = self._colour[np.asarray(ks, np.int64) % size].astype(np.float64)
        alpha = ((c - a) @ d) / float(d @ d)
        return alpha.astype(np.float32), np.zeros(len(alpha), np.float32)

    def _past_end(self, fit, s, e, va, vb, change, way) -> np.ndarray:
        """How far along the ramp, from the window's own end, its end frame's shot's frames
        beyond it lie (up to ``lag``, :meth:`_same_shot`; fitted as the window's frames were,
        ``fit``): farthest first, then the end frame, 0 by the fit's definition. ``way`` -1 the
        start (alpha of the frames before ``s``), 1 the end (1 - alpha after ``e``)."""
        end = s if way < 0 else e
        n = self._same_shot(end, way, change)
        beyond = self._fit_frames(fit, s, e, va, vb, [end + way * k for k in range(n, 0, -1)])
        return np.append(beyond if way < 0 else 1.0 - beyond, 0.0)

    def _fit_frames(self, fit, s, e, va, vb, frames) -> np.ndarray:
        """``fit``'s alpha (float64) of ``frames`` in window ``[s, e]``; a flash's frames take
        theirs from the frames either side, of those fitted and the window's ends (alpha 0 at
        ``s``, 1 at ``e``)."""
        frames = np.asarray(frames, np.int64)
        lit = self._flash[frames % self._size]
        known = frames[~lit]
        alpha = fit(s, e, va, vb, [int(k) for k in known])[0].astype(np.float64)
        if not lit.any():
            return alpha
        at = np.concatenate(([s, e], known))
        order = np.argsort(at)
        return np.interp(frames, at[order], np.concatenate(([0.0, 1.0], alpha))[order])

    def _widen(self, ramp, lo, s, e, va, vb, change, fit, step, way) -> int:
        """:func:`_widen_start` at the window's start (``way`` -1; ``ramp`` its alpha) or end
        (1; ``ramp`` 1 - alpha, reversed). Where fewer than 3 of the window's frames lie beyond
        the line's end, the clean frames to judge by are the end frame and its shot's frames
        past it: the line of a 2-s dissolve under a moving subject ended a frame early, and its
        last frame (alpha 0.986) opened the next clip, with no frame left to judge it by."""
        if lo >= 4 or lo == 0:
            return _widen_start(ramp, lo)
        past = self._past_end(fit, s, e, va, vb, change, way)
        if len(past) < 4:  # fewer than 3 frames of the shot past the end frame
            return _widen_start(ramp, lo)
        ext = np.concatenate((past, ramp))
        m = len(past)
        return max(0, _widen_start(ext, lo + m, floor=max(0.01, 0.5 * step)) - m)

    def _widen_past(self, fit, s, e, va, vb, change, step, way) -> int:
        """How many frames past the window's inner frames, its end frame first, are part of
        its blend: ``way`` -1 the start (frame ``s``, then those before it), 1 the end
        (:meth:`_past_end`). The farthest of them (all but the 3 nearest, at least 3) are the
        clean reference: a line fitted to them as in :func:`_widen_start`, and the end frame and
        the nearer ones count from the end outward while each stands out above it by half a step
        of the ramp (``step`` per frame) as well: a blend goes on by steps, a clean frame beyond
        a window differs by coding noise and the shot's extrapolated motion (up to 0.03 on the
        bench set; judged as :func:`_widen_start` judges, each frame against those just beyond
        it, the faint frames outside were part of the reference of those inside them and hid
        them). Up to 43 fps the reference is 3 frames, which a line fits with no spread left to
        measure: there the half step and the 0.01 floor decide."""
        arr = self._past_end(fit, s, e, va, vb, change, way)
        n = len(arr) - 1  # the shot's frames past the end frame
        if n < 4:
            return 0
        ref = arr[: max(3, n - 3)]
        level, tol = _clean_line(ref, max(0.01, 0.5 * step))
        k = 0
        for j in range(n, len(ref) - 1, -1):  # the end frame, then outward
            if arr[j] <= level(j) + tol:
                break
            k += 1
        return k

    def _velocity(self, i: int, way: int, change: float) -> Motion:
        """The motion per frame (turn, zoom and shift) of the shot at frame ``i``, measured
        towards ``way`` (-1: the frames before ``i``, 1: after) over up to ``lag`` frames of
        that shot (:meth:`_same_shot`). In a shot that holds its pictures (:meth:`_cadence`),
        per frame of its pictures' time: a drawing on twos is shown at the time it first
        appeared, so the measure spans the frames between the first frames of the two pictures
        compared (:meth:`_picture_start`). Not where a frame is repeated now and then (a rate
        conversion): its pictures lag their frames' times unevenly, and measured so, a pan
        with every fifth frame repeated read 1.25 times its speed and a dissolve's end came
        22 frames late (counted in frames, 5)."""
        n = self._same_shot(i, way, change)
        if n == 0:
            return STILL
        a, b = sorted((i, i + way * n))
        frames = b - a
        if self._cadence(i, way)[2]:
            frames = self._picture_start(b) - self._picture_start(a)
        if frames <= 0:
            return STILL  # one picture held throughout
        if (a, b) not in self._motions:  # windows that share an end share its measure
            if len(self._motions) > 4 * self._size:
                self._motions = {k: v for k, v in self._motions.items() if k[0] > i - self._size}
            guess = self._stepped(i, way, b - a)
            self._motions[a, b] = _refined_motion(self._frame(a), self._frame(b), guess)
        return _per_frame(self._motions[a, b], frames)

    def _stepped(self, i: int, way: int, n: int) -> complex | None:
        """The shift over the ``n`` frames beyond frame ``i`` (``way`` -1: before it, 1: after)
        of a shot that goes on as it moves at its change of picture nearest ``i``: that step's
        shift times the changes of picture among them (a repeated frame, a step under
        ``HELD_STEP``, moves nothing). A start for the measure over ``n`` frames
        (:func:`_refined_motion`): over a fast pan those frames lie several pixels apart, where
        phase correlation locks now and then onto a texture's repeat (a weave's threads, a
        fractal's self-similar detail); over 4 frames of single shots panning 3-7 px a frame at
        320x180 (five textures; plain, crossed by a subject, lit by a flash), 50 of 630
        measures were over 0.1 px a frame off, 23 with this start (one frame apart the pictures
        still overlap nearly whole). Counted in frames, with every fifth frame repeated, the
        start lay a step off: of a sweep's 96 such dissolve videos, 6 came out worse than with
        changes counted (one clip over a dissolve frame, a shot losing 28 more frames). None
        where ``n`` is 1, a flash lies among them or no picture changes."""
        size = self._size
        if n < 2:
            return None
        at = (i + 1 if way > 0 else i) + way * np.arange(n)  # _step[f]: f against f - 1
        if self._flash[at % size].any():
            return None
        moving = at[self._step[at % size] >= HELD_STEP]
        if not len(moving):
            return None
        f = int(moving[0])
        if (f - 1, f) not in self._motions:
            self._motions[f - 1, f] = _refined_motion(self._frame(f - 1), self._frame(f))
        return self._motions[f - 1, f][1] * len(moving)

    def _picture_start(self, i: int) -> int:
        """The frame where the picture shown at frame ``i`` first appeared: ``i``, less the
        repeats (steps under ``HELD_STEP``) just before it, up to ``HELD_REPEATS`` of them (a
        drawing on fours)."""
        first = max(0, self._count - self._size + 1, i - HELD_REPEATS)
        while i > first and self._step[i % self._size] < HELD_STEP:
            i -= 1
        return i

    def _shot_times(self, i: int, way: int, ks) -> np.ndarray:
        """The times of frames ``ks`` in frames from frame ``i``, as the shot at ``i`` (``way``:
        the side of ``i`` it lies on) shows them. Where it holds its pictures (repeats between
        its changes of picture, :meth:`_cadence`), a frame shows the picture of the last change
        before it, the changes falling every ``period`` frames from the first frame of ``i``'s
        picture on: a blend of two held shots shows each shot's pictures at its own cadence,
        and each shot moved by frame counts put its pictures half a step off on every other
        frame. Over a fast pan of busy texture that was the residual of a dissolve's faint
        frames, which stayed in clips."""
        ks = np.asarray(ks, np.float64)
        period = self._cadence(i, way)[2]
        if not period:
            return ks - i
        start = self._picture_start(i)  # frame i shows the picture of this frame's time
        return period * np.floor((ks - start) / period + 1e-6)

    def _cadence(self, i: int, way: int) -> tuple[np.ndarray, np.ndarray, float]:
        """The steps of the shot at frame ``i`` beyond it (``way`` -1: before ``i``, 1: after),
        nearest first, over up to ``2 * lag`` frames that the ring holds (``_step[f]``: frame
        ``f`` against frame ``f - 1``); empty where a flash lies among them. Then the steps that
        show its cadence: those, and after ``i`` also the step into ``i`` where it ends a held
        picture (after ``i`` the frames end ``delay`` frames on, 6 at 24 fps: a shot on threes
        may change its picture once in them). And the cadence's period: the mean frames between
        the changes of picture among them, where the shot holds pictures (a repeat among its
        steps) and changes them at least twice, every 1.5 frames or more; else 0."""
        if (i, way) in self._cadences:  # the windows tested after one frame share their ends
            return self._cadences[i, way]
        size = self._size
        at = self._beyond(i, way)
        if not len(at) or self._flash[at % size].any():
            none = np.zeros(0, np.float32)
            self._cadences[i, way] = none, none, 0.0
            return self._cadences[i, way]
        steps = self._step[at % size]
        frames, shown = at, steps
        if way > 0 and i >= 2 and self._step[(i - 1) % size] < HELD_STEP:
            frames, shown = np.append(i, at), np.append(self._step[i % size], steps)
        changes = np.sort(frames[shown >= HELD_STEP])
        period = 0.0
        if len(at) >= 3 and (steps < HELD_STEP).any() and len(changes) >= 2:
            period = float(changes[-1] - changes[0]) / (len(changes) - 1)
        self._cadences[i, way] = steps, shown, period if period >= 1.5 else 0.0
        return self._cadences[i, way]

    def _held_pace(self, i: int, way: int) -> float:
        """The (smoothed) step of the shot at frame ``i`` at its changes of picture, where it
        holds its pictures (:meth:`_cadence`): the second largest of its steps beyond ``i`` (a
        cut among them is one step); else 0."""
        if not self._cadence(i, way)[2]:
            return 0.0
        return float(np.sort(self._pace[self._beyond(i, way) % self._size])[-2])

    def _beyond(self, i: int, way: int) -> np.ndarray:
        """The frames whose steps (``_step[f]``, ``_pace[f]``: frame ``f`` against ``f - 1``)
        are the shot's beyond frame ``i``, nearest first: up to ``2 * lag`` of them, those the
        ring holds."""
        count, steps = self._count, range(1, 2 * self.lag + 1)
        at = [i + m for m in steps] if way > 0 else [i - m + 1 for m in steps]
        return np.asarray([f for f in at if 0 < f < count and f > count - self._size], np.int64)

    def _same_shot(self, i: int, way: int, change: float) -> int:
        """How many of the up to ``lag`` frames beyond frame ``i`` (``way`` -1: before it, 1:
        after) are of its shot: steps under a quarter of the window's ``change`` (no cut or
        transition between), and a held shot's own changes of picture (:meth:`_held_change`)."""
        n, bound = 0, 0.25 * change
        # ... or like the shot's own steps, where it takes steps that far: over fine texture a
        # pan of 1 px a frame (64-px frames) steps a third of a dissolve's change, its motion
        # was measured over no frames, read as still, and the dissolve stayed in a clip. A cut
        # beyond ``i`` steps as far as the change, over ``OWN_LIKE`` times the steps around it
        own = self._own_pace(i, way)
        if own * OWN_LIKE > bound:
            bound = min(own * OWN_LIKE, 0.5 * change)
        for k in range(1, self.lag + 1):
            j = i + way * k
            if not 0 <= j < self._count:
                break
            if self._flash[j % self._size]:
                continue  # a flash's frames are passed over: no picture of the shot
            if n == k - 1:  # _pace[f]: frame f against frame f - 1, smoothed
                pace = self._pace[(j if way > 0 else j + 1) % self._size]
                if pace >= bound and not self._held_change(i, way, k, pace, change):
                    break
            else:  # the frame before a flash against the one after it
                pace = np.abs(self._frame(j) - self._frame(i + way * n)).mean()
                if pace >= 0.25 * change:
                    break
            n = k
        return n

    def _own_pace(self, i: int, way: int) -> float:
        """The median (smoothed) step of the shot beyond frame ``i`` (``way`` -1: before it,
        1: after), over up to ``lag`` frames, where it is a picture that moves; else 0: a flash
        among them, frame ``i`` flat, or steps that change the frames' brightness (a fade's:
        counted as a shot's own, the frames beyond a window at the dip of a fade through white
        went on along its ramp, and 4 of its frames were left as scenes)."""
        size, at = self._size, self._beyond(i, way)[: self.lag]
        if len(at) < 2 or self._flash[at % size].any() or self._std[i % size] < self.blank_std:
            return 0.0
        pace = float(np.median(self._pace[at % size]))
        lit = float(np.median(np.abs(self._mean[at % size] - self._mean[(at - 1) % size])))
        return pace if lit < 0.25 * pace else 0.0

    def _held_change(self, i: int, way: int, k: int, pace: float, change: float) -> bool:
        """Whether the step to the ``k``-th frame beyond frame ``i`` (towards ``way``) is its
        shot's own change of picture in a shot that holds pictures (animation on twos or threes,
        film carried at 60 fps): such a shot moves in steps of two or three frames' motion, with
        repeats between. Over a fast pan of busy texture each step was more than a quarter of
        a dissolve's change (27-36 of 29 levels unsmoothed at 320x180), so the shot's motion was
        measured over no frames, read as still, and the dissolve failed its fit and stayed in
        a clip. The step counts where a repeat lies next to it, it is under ``HELD_CHANGE`` of
        the window's change, and the shot takes a like step of its own: it is at most
        ``HELD_LIKE`` times the second largest of the steps that show its cadence
        (:meth:`_cadence`; a cut next to still shots is a lone step, the second largest a
        repeat)."""
        if pace >= HELD_CHANGE * change:
            return False
        steps, shown, period = self._cadence(i, way)
        # no cadence (a frame repeated now and then, as a rate conversion does), or the step
        # lies past those the ring holds
        if not period or len(steps) < k:
            return False
        # the steps either side of it in the walk (the step into i is no step of the walk)
        if not (steps[max(0, k - 2) : k + 1] < HELD_STEP).any():
            return False
        return bool(steps[k - 1] <= HELD_LIKE * np.sort(shown)[-2])

    def _sharp(self, i: int) -> np.ndarray:
        """Frame ``i``'s 64-px gray image as pushed (float32): the ends test and the contrast
        test compare it, as the screens and the contrast of every frame do."""
        return self._fine8[i % self._size].reshape(self._shape).astype(np.float32)

    def _frame(self, i: int) -> np.ndarray:
        """Frame ``i``'s 64-px gray image (float32) smoothed (``SMOOTH``): what the blend fits,
        motion measures and a shot's pace (:meth:`_same_shot`) compare."""
        return self._fine[i % self._size].reshape(self._shape)

    def _fade_fit(self, s, e, va, vb, ks) -> tuple[np.ndarray, np.ndarray]:
        """alpha of frames ``ks`` in a fade between the picture at one end of window ``[s, e]``
        and the flat frame at the other, from each frame's mean and contrast alone, and how far
        the two estimates disagree. A fade makes ``f = (1 - alpha) A + alpha C``: the mean moves
        from A's to the flat colour's and the contrast falls to none, by the same alpha; a shot
        that moves keeps both (its texture's statistics), and a pan onto a flat wall does not
        move them alike (the covered part adds contrast). The contrast test follows from the
        same statistics, so the steps, stall, line and partial tests judge such a window. Lights
        dimming to black are a fade pixel for pixel (docs/clips.md: in-shot blends). (``va``,
        ``vb``: unused; :meth:`_blend_fit`'s call.)"""
        if not len(ks):
            return np.zeros(0, np.float32), np.zeros(0, np.float32)
        size = self._size
        at = np.asarray(ks, np.int64) % size
        mean, std = self._mean[at].astype(np.float64), self._std[at].astype(np.float64)
        ma, mb = float(self._mean[s % size]), float(self._mean[e % size])
        sa, sb = float(self._std[s % size]), float(self._std[e % size])
        if abs(mb - ma) < 6 or max(sa, sb) < self.blank_std:
            return np.zeros(len(at)), np.ones(len(at))  # no fade the statistics can see
        by_mean = (mean - ma) / (mb - ma)
        by_std = 1.0 - std / sa if sb < sa else std / sb
        return (by_mean + by_std) / 2, np.abs(by_mean - by_std)

    def _blend_fit(self, s, e, va, vb, ks) -> tuple[np.ndarray, np.ndarray]:
        """alpha and relative residual of frames ``ks`` as blends of the moved ends. Between
        two pictures (a dissolve) each frame is judged on the ``FIT_SHARE`` of its pixels that
        fit best on a first fit over all of them: a subject that moves across a shot is where
        neither moved end is, and judged on every pixel, a dissolve between shots with one (a
        disc a fifth of the frame high, crossing it in 2 s) failed the residual test and stayed
        inside a clip. A fade (a flat end) is fitted on every pixel: its faint frames' alpha,
        fitted on a share, ran past its ends over busy texture, and where the fit fails, each
        frame's mean and contrast give alpha (:meth:`_fade_fit`), whatever moves in it."""
        if not ks:
            return np.zeros(0, np.float32), np.zeros(0, np.float32)
        size, shape = self._size, self._shape
        a, b = self._frame(s), self._frame(e)
        crop = (slice(None), slice(M, -M), slice(M, -M))
        ta, tb = self._shot_times(s, -1, ks), self._shot_times(e, 1, ks)
        ak = np.stack([_moved(a, va, t) for t in ta])[crop].reshape(len(ks), -1)
        bk = np.stack([_moved(b, vb, t) for t in tb])[crop].reshape(len(ks), -1)
        f = self._fine[np.asarray(ks) % size].reshape(len(ks), *shape)[crop]
        f = f.reshape(len(ks), -1) - ak
        d = bk - ak
        # where a shot moved further than the crop, what moved in from outside is unknown (the
        # moved frame repeats its edge there). A pan of 1 px a frame (64-px frames, 300 px/s at
        # 640 and 30 fps) moves each end by a quarter of the frame over a 0.5-s dissolve, and a
        # frame of it fitted with those bands failed the residual test (docs/clips.md: fast
        # pans). So a shot's unknown band is left out of a frame that holds that shot (by a
        # first fit on all pixels: alpha under 0.9 for the first shot, over 0.1 for the
        # second), and a frame left with under ``MIN_COVER`` of its pixels is no blend the fit
        # can judge: over a long window the shots' motion is extrapolated far, and a window of
        # 2.5 s over fast pans, half its frames moved out, fitted the first shot's last frames
        # as a slow ramp and marked 22 of them
        cover = unknown = None
        if _reach(va, ta, shape) > M or _reach(vb, tb, shape) > M:
            in_a = np.stack([_covered(shape, va, t) for t in ta])[crop].reshape(len(ks), -1)
            in_b = np.stack([_covered(shape, vb, t) for t in tb])[crop].reshape(len(ks), -1)
            rough = ((f * d).sum(axis=1) / np.maximum((d * d).sum(axis=1), 1e-6))[:, None]
            cover = (in_a | (rough >= 0.9)) & (in_b | (rough <= 0.1))
            unknown = cover.sum(axis=1) < MIN_COVER * cover.shape[1]
            cover[unknown] = True  # fitted on all pixels, and judged unfit below
            f, d = f * cover, d * cover
        alpha = (f * d).sum(axis=1) / np.maximum((d * d).sum(axis=1), 1e-6)
        resid = np.abs(f - alpha[:, None] * d)
        if min(self._std[s % size], self._std[e % size]) < self.blank_std:
            resid = resid.sum(axis=1) / np.maximum(np.abs(d).sum(axis=1), 1e-6)
            return alpha, resid if unknown is None else np.where(unknown, 1.0, resid)
        if cover is None:
            n = int(FIT_SHARE * resid.shape[1])
            keep = (resid <= np.partition(resid, n, axis=1)[:, n : n + 1]).astype(np.float32)
        else:  # the best-fitting share of each frame's covered pixels
            counts = cover.sum(axis=1)
            ranked = np.sort(np.where(cover, resid, np.inf), axis=1)
            n = np.minimum((FIT_SHARE * counts).astype(np.int64), resid.shape[1] - 1)
            keep = (cover & (resid <= ranked[np.arange(len(ks)), n][:, None])).astype(np.float32)
        fk, dk = f * keep, d * keep
        alpha = (fk * dk).sum(axis=1) / np.maximum((dk * dk).sum(axis=1), 1e-6)
        resid = np.abs(fk - alpha[:, None] * dk).sum(axis=1)
        resid = resid / np.maximum(np.abs(dk).sum(axis=1), 1e-6)
        return alpha, resid if unknown is None else np.where(unknown, 1.0, resid)

    def finish(self, exclude: set[int] = frozenset()) -> list[list[int]]:
        """``[first, last]`` frame ranges (inclusive) of transitions and blanks, leaving out the
        frames in ``exclude``."""
        self.settle()  # under a second of pictures: the box of those there are
        # the last windows, with fewer frames after them (push tested those up to count - 2 - lag)
        for e in range(max(0, self._count - 1 - self.delay), self._count - 1):
            self._windows(e)
        # ... and the last single frames (push judged those up to count - 3 - delay)
        for t in range(max(1, self._count - 2 - self.delay), self._count - 1):
            self._blended_cut(t)
        # a blurred run with fewer than 2 * lag frames after it: judged with those there are
        dip, self._dip = self._dip, None
        if dip is not None and self._count - 1 - dip[1] >= self.lag + 1:
            self._blur_run(*dip[:3])
        # bursts with fewer than ``lag`` frames after them, at least 2
        if self._run is not None and not self._run[3]:
            self._closed.append((self._run[0], self._run[1]))
        self._run = None
        for first, last in self._closed:
            if self._count - 1 - last >= 2:
                self._burst(first, last, self._count - 1 - last)
        self._closed = []
        ranges: list[list[int]] = []
        for i in sorted(self._marked - set(exclude)):
            if ranges and i == ranges[-1][1] + 1:
                ranges[-1][1] = i
            else:
                ranges.append([i, i])
        return ranges


class PictureBox:
    """Where a video's picture lies inside black bars (a letterboxed film, a 4:3 picture in a
    16:9 frame, both): the rows and columns at its edges that stay black (8-px means at most
    ``BLACK_LEVEL`` as seen, :func:`~clipsift.scorers.technical.border_profile`) over its first
    ``frames`` frames that are not flat. Only centred bars count
    (:func:`~clipsift.scorers.technical.centred`: a dark scene's black top is no bar), leaving
    at least ``MIN_PICTURE`` of each side, with picture along at least ``FILL`` of each of its
    edges (8x8-px blocks above ``BLACK_LEVEL`` in some frame: a title on black is no picture in
    bars). A video whose first pictures show no bars is compared whole, as are the frames of
    one whose bars come later. ``bars``: the bars' own (rows, columns) regions; ``share``: the
    share of the frame they take."""

    def __init__(self, frames: int, flat_std: float):
        self.frames, self.flat_std = frames, flat_std
        self.seen = 0
        self.rows: np.ndarray | None = None  # the brightest 8-px mean of each row, as seen
        self.cols: np.ndarray | None = None
        self.blocks: np.ndarray | None = None  # the brightest mean of each 8x8-px block
        self.bars: list[tuple[slice, slice]] = []
        self.share = 0.0

    def see(self, gray: np.ndarray, levels: np.ndarray | None) -> tuple[slice, slice] | None:
        """Take in one frame; the box once ``frames`` pictures have been seen, else None."""
        if float(cv2.meanStdDev(gray)[1][0, 0]) < self.flat_std:
            return None  # a flat frame (a fade's dip, a blank) says nothing of the bars
        rows, cols = border_profile(gray)
        blocks = _blocks(gray)
        if levels is not None:
            rows, cols, blocks = levels[rows], levels[cols], levels[blocks]
        if self.rows is None:
            self.rows, self.cols, self.blocks = rows, cols, blocks
        else:
            self.rows = np.maximum(self.rows, rows)
            self.cols = np.maximum(self.cols, cols)
            self.blocks = np.maximum(self.blocks, blocks)
        self.seen += 1
        return self.box() if self.seen >= self.frames else None

    def box(self) -> tuple[slice, slice]:
        """The picture as (row, column) slices (one pixel in from each bar, its soft edge);
        whole frames where no bars were seen. Sets :attr:`bars`."""
        box, self.bars = self._regions()
        self.share = self._share(self.bars)
        return box

    def _regions(self) -> tuple[tuple[slice, slice], list[tuple[slice, slice]]]:
        """The picture's (row, column) slices and the bars' regions, from the frames seen."""
        if self.rows is None:
            return WHOLE, []
        (top, bottom), (left, right) = _side_bars(self.rows), _side_bars(self.cols)
        h, w = len(self.rows), len(self.cols)
        rows = slice(top + 1, h - bottom - 1) if top else slice(None)
        cols = slice(left + 1, w - right - 1) if left else slice(None)
        lit = self.blocks > BLACK_LEVEL
        if top and not _filled(lit, rows, cols):
            rows, top, bottom = slice(None), 0, 0
        if left and not _filled(lit.T, cols, rows):
            cols, left, right = slice(None), 0, 0
        every, bars = slice(None), []
        if top:
            bars += [(slice(0, top), every), (slice(h - bottom, h), every)]
        if left:
            bars += [(every, slice(0, left)), (every, slice(w - right, w))]
        return (rows, cols), bars

    def so_far(self) -> tuple[tuple[slice, slice], float]:
        """The picture and the bars' share of the frame (:attr:`share`) from the frames seen so
        far, before :meth:`box` decides them."""
        box, bars = self._regions()
        return box, self._share(bars)

    def _share(self, bars: list[tuple[slice, slice]]) -> float:
        if not bars:
            return 0.0
        mask = np.zeros((len(self.rows), len(self.cols)), bool)
        for region in bars:
            mask[region] = True
        return float(mask.mean())

    def blank_bars(self, gray: np.ndarray, levels: np.ndarray | None, seen: float) -> bool:
        """Whether the bars of ``gray`` (a frame whose picture is flat at level ``seen``) take
        part in a blank: black as bars are (8-px block means at most ``BLACK_LEVEL``), or flat
        at the picture's level (a fade that turned them white). A flat middle framed by picture
        is a shot's, whatever its level: a dark street under a box that a centred logo set."""
        for region in self.bars:
            strip = gray[region]
            brightest = int(_blocks(strip).max())
            if (brightest if levels is None else levels[brightest]) <= BLACK_LEVEL:
                continue
            mean, std = (float(v[0, 0]) for v in cv2.meanStdDev(strip))
            level = mean if levels is None else float(levels[min(255, round(mean))])
            if std >= self.flat_std or abs(level - seen) > 2 * self.flat_std:
                return False
        return True


WHOLE = (slice(None), slice(None))


def _blocks(img: np.ndarray) -> np.ndarray:
    """Means of ``img``'s 8x8-px blocks (about: the image is resized to an eighth)."""
    h, w = img.shape[:2]
    return cv2.resize(img, (max(1, w // 8), max(1, h // 8)), interpolation=cv2.INTER_AREA)


def _side_bars(profile: np.ndarray) -> tuple[int, int]:
    """The bars at both ends of one side's brightest 8-px means: centred ones that leave at
    least ``MIN_PICTURE`` of it, else (0, 0)."""
    n = len(profile)
    lead, trail = edge_runs(profile <= BLACK_LEVEL)
    if not centred(lead, trail) or n - lead - trail - 2 < MIN_PICTURE * n:
        return 0, 0
    return lead, trail


def _filled(lit: np.ndarray, across: slice, along: slice) -> bool:
    """Whether the picture ``across`` (a slice of ``lit``'s rows, in pixels) has lit 8-px blocks
    along at least ``FILL`` of its first and last whole block rows (within ``along``)."""
    n, m = lit.shape
    first, last = -(-(across.start or 0) // 8), (across.stop or 8 * n) // 8 - 1
    a0, a1 = -(-(along.start or 0) // 8), min(m, (along.stop or 8 * m) // 8)
    if last < first or a1 <= a0:
        return False
    return bool(lit[first, a0:a1].mean() >= FILL and lit[last, a0:a1].mean() >= FILL)


def _line(alpha: np.ndarray, x: np.ndarray, n: int) -> tuple[float, int, int] | None:
    """A line fitted to ``alpha`` at places ``x`` over the ramp's middle (0.1-0.9): its slope
    per frame and the first and last blended places (of ``n``), where it leaves 0 and meets 1;
    None for a line that does not rise. The line is 0 on the last clean frame before and 1 on
    the first clean frame after.

    A ramp longer than 30 frames out of a steady shot starts one frame earlier: its first frame
    is a blend of under 3 %, and an encoder with nothing else to code there held it back (x264
    swallowed the first frame of a 1.2-s dissolve out of a still at 60 fps, VP9 that of a 2-s
    one), so the decoded ramp lags and its line meets 0 late. Steady: the 3 places before that
    frame, where known, hold alpha within ``STEADY`` of a ramp step. Not where they wobble by
    more (a subject crossing the shot): such a frame is coded with the rest, and the earlier
    start ended a clip before a 2-s dissolve under one 2 frames early. (Nor a frame more out
    of exact copies: a fade out of a still at 60 fps decodes on time, and that lost 2 frames.)
    """
    middle = np.flatnonzero((alpha > 0.1) & (alpha < 0.9))
    slope, at0 = np.polyfit(x[middle].astype(np.float64), alpha[middle].astype(np.float64), 1)
    if slope <= 0:
        return None
    lo, hi = round(-at0 / slope) + 1, round((1 - at0) / slope) - 1
    before = alpha[x < lo - 1][-3:]
    if slope < 1 / 30 and (len(before) < 3 or np.ptp(before) < STEADY * slope):
        lo -= 1
    return float(slope), max(0, lo), min(n - 1, hi)


def _wobble(alpha: np.ndarray, x: np.ndarray) -> float:
    """How far ``alpha`` strays from a line over the ramp's middle (0.1-0.9): the RMS of the
    residual of a fitted line (infinite for fewer than 3 frames there)."""
    middle = np.flatnonzero((alpha > 0.1) & (alpha < 0.9))
    if len(middle) < 3:
        return float("inf")
    xs, ys = x[middle].astype(np.float64), alpha[middle].astype(np.float64)
    return float(np.sqrt(np.mean((ys - np.polyval(np.polyfit(xs, ys, 1), xs)) ** 2)))


def _stalls(alpha: np.ndarray, inside: np.ndarray) -> bool:
    """Whether alpha holds still (moves under 0.05) over a quarter of the frames from the first
    to the last one ``inside`` the ramp (at least 3 in a row)."""
    idx = np.flatnonzero(inside)
    run = alpha[idx[0] : idx[-1] + 1]
    span = max(3, int(np.ceil(len(run) / 4)))
    if len(run) < span:
        return False
    windows = np.lib.stride_tricks.sliding_window_view(run, span)
    return bool((windows.max(axis=1) - windows.min(axis=1)).min() < 0.05)


def _widen_start(alpha: np.ndarray, lo: int, *, floor: float = 0.01, m: int = 8) -> int:
    """Move ``lo`` back over the frames before it whose alpha stands out from the clean frames
    before them: above a line fitted to the last ``m`` of them (a shot's alpha may drift as
    its motion is extrapolated; never downwards) by more than ``floor`` and three robust
    deviations of that fit. At least 3 clean frames are needed to judge. The end of a ramp
    widens the same way on ``1 - alpha`` reversed."""
    while lo > 0:
        before = alpha[max(0, lo - 1 - m) : lo - 1].astype(np.float64)
        if len(before) < 3:
            break
        level, tol = _clean_line(before, floor)
        if alpha[lo - 1] <= level(len(before)) + tol:
            break
        lo -= 1
    return lo


def _clean_line(ref: np.ndarray, floor: float):
    """The clean frames ``ref``'s alpha as a line over their places (never falling: a shot's
    alpha may drift as its motion is extrapolated) and how far above it a frame must lie to
    stand out: ``floor``, or three robust deviations of the fit where more."""
    x = np.arange(len(ref), dtype=np.float64)
    slope, at0 = np.polyfit(x, ref, 1)
    slope = max(float(slope), 0.0)
    res = ref - (at0 + slope * x)
    tol = max(floor, 3 * 1.4826 * float(np.median(np.abs(res - np.median(res)))))
    return (lambda place: at0 + slope * place), tol


FINE = 64  # width (px) of the frames the finder compares
# black bars (PictureBox): edge rows and columns whose 8-px means stay at most BLACK_LEVEL as
# seen, leaving at least MIN_PICTURE of the frame's side (a 9:16 phone video pillarboxed in
# 16:9 is 0.316 of it), with 8x8-px blocks above BLACK_LEVEL along at least FILL of each of the
# picture's edges
MIN_PICTURE = 0.3
FILL = 0.5
# the most frames held before the box is known (PictureBox.frames pictures, flat frames
# not counted): a recording that starts black for minutes is not held in memory (HOLD_BYTES:
# 10 s at the default 320-px analysis width is 35 MB at 60 fps; a wider one is held less long)
HOLD_SECONDS = 10.0
HOLD_BYTES = 64 << 20
# bursts (TransitionFinder._burst): a run of steps each this many times the median step of the
# frames before it, at least BURST_FLOOR (mean levels on the 64-px frames), lasting at most
# BURST_SECONDS. Whip pans of 2-8 frames gave steps of 5-93 after shots that step 1-3.5; none
# of the bench's 66 videos nor the tryouts' (flashes, shake, strobe, dissolves) held such a
# run between two pictures other than flash cuts and the dips of fades
BURST_RATIO = 3.0
BURST_FLOOR = 4.0
BURST_SECONDS = 0.5
# blurred whips (TransitionFinder._track_blur): a run of frames whose detail (mean absolute
# gradient of the 64-px frame) is under BLUR_DIP of the frames' before it, widened over frames
# under BLUR_EDGE of the detail on their side; shots with less detail than BLUR_FLOOR are left
BLUR_DIP = 0.6
BLUR_EDGE = 0.85
BLUR_FLOOR = 3.0
# mean step (levels, 64-px frames) under which a frame repeats the one before: a held picture
# (TransitionFinder._held_steps); x264 codes a repeat of an animation on twos to the bit (0.0)
HELD_STEP = 0.5
# a held shot's own change of picture (TransitionFinder._held_change): under this share of the
# window's change, and at most HELD_LIKE times the shot's second largest step
HELD_CHANGE = 1.0
HELD_LIKE = 1.5
# the repeats a picture's time reaches back over (TransitionFinder._picture_start): drawings on fours
HELD_REPEATS = 3
# a window's largest step is a held shot's own (TransitionFinder._windows) up to this many times
# the shot's held steps
HELD_JUMP = 1.2
# a burst holds a cut where two of its neighbouring frames, aligned, correlate under this
HIDDEN_CUT = 0.3
# a single blended frame at a cut (TransitionFinder._blended_cut): alpha within ONE_FRAME_ALPHA of
# either shot (a 24-to-30-fps blend conversion makes 0.2-0.8), and the change across it at
# least OWN_STEPS times the shots' own steps either side
ONE_FRAME_ALPHA = 0.9
OWN_STEPS = 2.5
# the ends of a window whose mean chroma (Cb or Cr, 8-bit levels) differs by this much are two
# pictures, however alike in gray (two skies of one gradient: orange and green differed by 58-74);
# a small pan, whose ends align in gray, keeps most of its picture and so its colour. At 16, a
# window from inside a dissolve (its first frame 70 % the new shot) to that shot passed, its
# ends 17 apart, and marked 2 clean frames past the dissolve
RECOLOURED = 24.0
# ... and where their gray frames differ by under FAINT times min_change (mean levels), the
# window's alpha may come from the frames' mean chroma (TransitionFinder._chroma_fit)
FAINT = 2.0
# how far a fade's alpha from a frame's mean and from its contrast may disagree
# (TransitionFinder._fade_fit)
FADE_AGREEMENT = 0.1
# a flat frame is blank when its luma as seen (8-bit limited range; an HDR frame's SDR level) is
# under BLANK_BLACK or at least BLANK_WHITE: near black, or near white (HDR reference white
# reads 226)
BLANK_BLACK, BLANK_WHITE = 24, 224
M = 4  # px left out at the edges of a moved frame (what moved in from outside is unknown)
# the share of pixels motion and blends are judged on: the rest may be a subject that moves
# across the shot on its own
FIT_SHARE = 0.8
# a frame whose moved shots still cover under this share of its pixels is no blend the fit can
# judge (TransitionFinder._blend_fit). A quarter failed every window over the whole of a 1-s
# dissolve between pans of 1 px a frame, one of them vertical (over part of the ramp both shots
# cover under a quarter of the 36-px-high frames), and a clip kept 11 of its frames
MIN_COVER = 0.15
# a step beyond a window's end is its shot's own where it is at most this many times the median
# of the shot's steps there (TransitionFinder._same_shot)
OWN_LIKE = 1.5
# test 1b: a window's end moved on as its shot moves is one shot with the other end where it
# leaves under this share of their difference (tryout's picture-in-picture windows 0.012-0.067,
# the bench's dissolves at least 0.26)
CARRIED = 0.1
# px (64-px frames, over the measure's frames): a refined shift under this is "no motion", where
# the median flow is tried as a third start (:func:`_refined_motion`); the tryout's counter box
# held both starts at 0.1 px over 5 frames of a 2-px pan
HELD_SHIFT = 0.5
# px (64-px frames): a start this close to another refines to the same shift, so it is not tried
APART = 0.5
# test 1c: a window is a transition where its ends' difference is spread at least this much of
# the pictures' detail (:func:`_spread`; the bench's blends at least 0.59, a tryout's switching
# counter over a pan 0.19)
SPREAD = 0.35
# Gaussian sigma (px) of the smoothing of the 64-px frames that blends are fitted and motion is
# measured on. A shot's frame moved by a fraction of a pixel (bilinear) is blurred, the next
# frame is not: over fine texture that difference, with coding noise, was a fifth of the change
# between two shots, and dissolves between shots panning 30-90 px/s over fine texture (640x360)
# failed the residual test and stayed inside clips. Smoothed by 1 px, a 90-px/s pan's frames
# differ from the prediction by 0.6 levels instead of 3.4 while the shots still differ by 12
SMOOTH = 1.0
# a shot steady before a long ramp (:func:`_line`): alpha over its last 3 frames within this
# share of a ramp step
STEADY = 0.25
# the least bound of the contrast test (levels): the finder's frames are rounded to whole levels,
# and a faint picture (a sky 1.3 levels in contrast, faded in) rounds to a staircase whose
# contrast reads up to 0.4 levels off the blend's
QUANTUM = 0.5


def mean_chroma(bgr: np.ndarray) -> tuple[float, float]:
    """A BGR frame's mean chroma (Cb, Cr; BT.601, 8-bit levels less 128): black bars add none."""
    b, g, r = cv2.mean(bgr)[:3]
    y = 0.299 * r + 0.587 * g + 0.114 * b
    return 0.564 * (b - y), 0.713 * (r - y)


def fine_frame(gray: np.ndarray) -> np.ndarray:
    """``gray`` (uint8, any size) at the ``FINE`` px width the finder compares frames at."""
    h, w = gray.shape[:2]
    return cv2.resize(gray, (FINE, max(2, round(h * FINE / w))), interpolation=cv2.INTER_AREA)


def _shift(a: np.ndarray, b: np.ndarray, *, tapered: bool = False) -> tuple[float, float]:
    """The global shift (px) that takes frame ``a`` to frame ``b`` (phase correlation).
    ``tapered``: the frames tapered to their edges by a Hann window first, for motion measures
    (:func:`_refined_motion`). Unwindowed, the jump between a frame's opposite edges is a
    pattern that stays put, and its peak at no shift outweighed a pan over foliage of 3.2 px in
    4 of the 64-px frames (read as 0.6 px, refined to a quarter of the truth). The two-pictures
    tests keep the plain correlation they were tuned on (tapered, the blurred frames either
    side of a whip's cut aligned and the whip stayed in a clip). OpenCV applies the window in
    place, so it gets copies."""
    if tapered:
        (dx, dy), _ = cv2.phaseCorrelate(a.copy(), b.copy(), _hann(*a.shape))
    else:
        (dx, dy), _ = cv2.phaseCorrelate(a, b)
    return dx, dy


@functools.cache
def _hann(h: int, w: int) -> np.ndarray:
    return cv2.createHanningWindow((w, h), cv2.CV_32F)


# A shot's motion between two frames is a similarity about the frame's centre: with pixel
# positions as complex numbers z (x + iy, from the centre), z -> c z + t, where c turns and
# zooms (|c| the zoom, arg c the turn) and t shifts. A pan is c = 1; its steps add up, and any
# similarity's k-th step is c^k z + t (c^k - 1) / (c - 1), so one measure over n frames gives the
# motion per frame and its extrapolation over a window.
Motion = tuple[complex, complex]  # (c, t)
STILL: Motion = (1 + 0j, 0j)


def _refined_motion(a: np.ndarray, b: np.ndarray, guess: complex | None = None) -> Motion:
    """The motion that takes frame ``a`` to frame ``b``: a shift refined by least squares on the
    image gradients (Lucas-Kanade), then as a similarity (turn, zoom and shift), kept when it
    fits clearly better (under 0.7 times the shift's error). Phase correlation pulls sub-pixel
    shifts towards whole pixels (0.45 px reads as 0.3), a slow pan's error grows with every
    frame it is extrapolated over, and a turning shot is no shift at all: its blends read too
    little alpha near its edges. A turn or zoom fitted to coding noise, on the other hand, would
    bend a long window.

    A subject moving across the shot is not the shot's motion: phase correlation follows the
    strongest structure, often that subject, and plain least squares follows its edges (a disc
    crossing a slow pan read 4 times the pan, the wrong way). So each step weighs the pixels by
    how well they fit (Cauchy weights at twice the residuals' robust spread), the refinement
    starts from phase correlation's shift and from no motion (a slow pan under a fast subject),
    and where both end under ``HELD_SHIFT`` from no motion, from the median flow too
    (:func:`_median_flow`: a pan around a still inset with hard edges; a third start on every
    measure cost 11-20 % more scan time on a dissolve-heavy render), and from ``guess`` (a
    shift) where it lies over ``APART`` from both other starts; the fits are compared on
    their best-fitting ``FIT_SHARE`` of pixels."""
    h, w = a.shape
    inner = (slice(M, -M), slice(M, -M))
    zx, zy = _centred_grid(h, w)
    target = b[inner].ravel().astype(np.float64)
    by, bx = np.gradient(b)
    bx, by = bx[inner].ravel(), by[inner].ravel()

    def refine(m: Motion, turn: bool, rounds: int) -> tuple[Motion, float]:
        """``m`` after ``rounds`` weighted Gauss-Newton steps, and the mean squared difference
        of ``a`` so moved from ``b`` over its best-fitting pixels."""
        full = _moved(a, m, 1)
        for _ in range(rounds):
            moved = full[inner].ravel()
            diff = moved - target
            spread = max(1.0, 1.4826 * float(np.median(np.abs(diff))))
            weight = 1.0 / (1.0 + np.square(diff / (2.0 * spread)))
            gy, gx = np.gradient(full)
            # both images' slopes (fewer steps overshoot than with one image's)
            gx, gy = (gx[inner].ravel() + bx) / 2, (gy[inner].ravel() + by) / 2
            # b(z) = moved(z - d(z)) ~ moved(z) - grad . d(z), with d(z) = p z + q (complex p,
            # q; p = 0 for a shift): the step solves grad . d = moved - b for (q, p)
            cols = [gx, gy] + ([gx * zx + gy * zy, gy * zx - gx * zy] if turn else [])
            jac = np.stack(cols, axis=1).astype(np.float64)
            weighted = jac * weight[:, None]
            try:
                step = np.linalg.solve(weighted.T @ jac, weighted.T @ diff)
            except np.linalg.LinAlgError:
                break  # no gradient at all (a flat frame)
            d = complex(1 + step[2], step[3]) if turn else 1 + 0j
            if not np.isfinite(step).all() or np.abs(step[:2]).max() > 1.0 or abs(d - 1) > 0.15:
                break  # no smooth gradient to follow (flat, or too far): keep what we have
            m = (d * m[0], d * m[1] + complex(step[0], step[1]))
            full = _moved(a, m, 1)
        sq = np.square(full[inner].ravel() - target)
        return m, float(
            np.partition(sq, int(FIT_SHARE * len(sq)))[: int(FIT_SHARE * len(sq))].mean()
        )

    correlated = complex(*_shift(a, b, tapered=True))
    starts = ((1 + 0j, correlated), STILL)
    if guess is not None and min(abs(guess - correlated), abs(guess)) > APART:
        starts += ((1 + 0j, guess),)  # the shot's one-frame step repeated, where it differs
    shift, fit = min((refine(m, False, 4) for m in starts), key=lambda r: r[1])
    if abs(shift[1]) < HELD_SHIFT:  # both held at no motion: maybe by a still inset's edges
        shift, fit = min((shift, fit), refine((1 + 0j, _median_flow(a, b)), False, 4),
                         key=lambda r: r[1])  # fmt: skip
    turned, turned_fit = refine(shift, True, 3)
    return turned if turned_fit < 0.7 * fit else shift


def _median_flow(a: np.ndarray, b: np.ndarray) -> complex:
    """The median of the dense flow (DIS) from frame ``a`` to ``b``: the shift most of the
    picture makes, whatever its edges. Phase correlation and the fits' gradients follow the
    strongest edges, so a still inset with hard edges (a scoreboard, a burned-in counter over
    a sixth of the frame) held both other starts at no motion while the picture around it
    panned, and the pan, unexplained, read as dissolves: a tryout's steady pans lost 80 % of
    their frames."""
    flow = _dis().calc(_u8(a), _u8(b), None)
    return complex(float(np.median(flow[..., 0])), float(np.median(flow[..., 1])))


def _u8(img: np.ndarray) -> np.ndarray:
    return np.clip(img + 0.5, 0, 255).astype(np.uint8)


@functools.cache
def _dis():
    dis = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_ULTRAFAST)
    dis.setPatchSize(6)
    dis.setPatchStride(3)
    return dis


@functools.cache
def _centred_grid(h: int, w: int) -> tuple[np.ndarray, np.ndarray]:
    """x and y of the pixels ``M`` px inside an ``h`` x ``w`` frame, from its centre, flattened."""
    ys, xs = np.mgrid[M : h - M, M : w - M].astype(np.float64)
    return (xs - (w - 1) / 2).ravel(), (ys - (h - 1) / 2).ravel()


def _per_frame(m: Motion, n: int) -> Motion:
    """The motion per frame of one measured over ``n`` frames (the n-th root of the similarity)."""
    c, t = m
    if abs(c - 1) < 1e-9:
        return 1 + 0j, t / n
    c1 = c ** (1 / n)
    return c1, t * (c1 - 1) / (c - 1)


def _moved(
    img: np.ndarray, v: Motion, steps: int, border: int = cv2.BORDER_REPLICATE
) -> np.ndarray:
    """``img`` moved ``steps`` times by ``v`` (backwards for negative steps; itself when no
    pixel moves by 0.05 px)."""
    c, t = v
    if abs(c - 1) < 1e-9:
        ck, tk = 1 + 0j, t * steps
    else:
        ck = c**steps
        tk = t * (ck - 1) / (c - 1)
    h, w = img.shape
    centre = complex((w - 1) / 2, (h - 1) / 2)
    if abs(ck - 1) * abs(centre) + abs(tk.real) + abs(tk.imag) < 0.05:
        return img
    off = tk + centre - ck * centre  # about the centre, in OpenCV's pixel coordinates
    mat = np.float32([[ck.real, -ck.imag, off.real], [ck.imag, ck.real, off.imag]])
    return cv2.warpAffine(img, mat, (w, h), borderMode=border)


def _reach(v: Motion, steps: np.ndarray, shape: tuple[int, int]) -> float:
    """How far (px) any pixel of a frame of ``shape`` moves at most, moved by ``v`` any of
    ``steps`` times (the extreme steps count: the motion per frame is steady)."""
    c, t = v
    radius = abs(complex((shape[1] - 1) / 2, (shape[0] - 1) / 2))
    far = 0.0
    for n in (float(np.min(steps)), float(np.max(steps))):
        ck = c**n
        tk = t * n if abs(c - 1) < 1e-9 else t * (ck - 1) / (c - 1)
        far = max(far, abs(ck - 1) * radius + abs(tk))
    return far


def _covered(shape: tuple[int, int], v: Motion, steps: float) -> np.ndarray:
    """Which pixels of a frame of ``shape`` moved ``steps`` times by ``v`` come from inside it."""
    return _moved(np.ones(shape, np.float32), v, steps, border=cv2.BORDER_CONSTANT) > 0.999


def shifted_similarity(a: np.ndarray, b: np.ndarray) -> float:
    """Correlation of ``b`` with ``a`` moved by their phase-correlation shift (a pan's frames
    stay similar, two shots do not); ``M`` px at the edges are left out."""
    return _similarity(_moved(a, (1 + 0j, complex(*_shift(a, b))), 1), b)


def _carried(a: np.ndarray, b: np.ndarray, v: Motion, steps: int) -> float:
    """How far ``a`` moved ``steps`` times by ``v`` is from ``b``, against how far ``a`` is:
    mean absolute differences over their best-fitting ``FIT_SHARE`` of the pixels that ``a``
    moved still covers (``M`` px at the edges left out), 1 where ``a`` and ``b`` do not differ.
    What moved in from outside is unknown: over a long window it is a band a third of the frame
    wide, more than the share left out."""
    inner = (slice(M, -M), slice(M, -M))
    covered = _covered(a.shape, v, steps)[inner]
    if covered.mean() < 0.5:
        return 1.0  # moved mostly out of the frame: nothing to compare
    moved = np.abs(_moved(a, v, steps)[inner] - b[inner])[covered]
    plain = np.abs(a[inner] - b[inner])[covered]
    k = int(FIT_SHARE * len(moved))
    base = float(np.partition(plain, k)[:k].mean())
    return float(np.partition(moved, k)[:k].mean()) / base if base > 0 else 1.0


def _spread(a: np.ndarray, b: np.ndarray, v: Motion, steps: int) -> float:
    """How widely ``b`` differs from ``a`` moved ``steps`` times by ``v``, against how widely
    the two pictures hold detail: the share of pixels that hold half the difference over the
    share that hold half of each picture's distance from its median (``M`` px at the edges left
    out). About 1 for two pictures blended (the bench's dissolves and fades 0.59-1.3), small
    where one part of a shot changes (a tryout's flipping counter, 0.19): a night shot's few
    lights hold its difference and its detail alike."""
    inner = (slice(M, -M), slice(M, -M))
    diff = np.abs(b[inner] - _moved(a, v, steps)[inner])
    detail = np.abs(a[inner] - np.median(a[inner])) + np.abs(b[inner] - np.median(b[inner]))
    return _half_share(diff) / max(_half_share(detail), 1e-6)


def _half_share(x: np.ndarray) -> float:
    """The smallest share of ``x``'s values (largest first) that holds half their sum."""
    v = np.sort(x.ravel())[::-1]
    total = float(v.sum())
    if total <= 0:
        return 1.0
    return (int(np.searchsorted(np.cumsum(v), 0.5 * total)) + 1) / len(v)


def _similarity(moved: np.ndarray, b: np.ndarray) -> float:
    """Correlation of ``b`` with ``moved``, ``M`` px at the edges left out."""
    x, y = moved[M:-M, M:-M], b[M:-M, M:-M]
    x, y = x - x.mean(), y - y.mean()
    return float((x * y).mean() / (x.std() * y.std() + 1e-6))


def cut_out(bounds: list[tuple[int, int]], ranges: list[list[int]]) -> list[tuple[int, int]]:
    """Scenes ``[a, b)`` without the frames in ``ranges`` (inclusive): a scene that holds a
    transition becomes the parts before and after it; a scene inside one disappears."""
    out = []
    for a, b in bounds:
        start = a
        for first, last in ranges:
            if last < start or first >= b:
                continue
            if first > start:
                out.append((start, first))
            start = max(start, last + 1)
        if start < b:
            out.append((start, b))
    return out
