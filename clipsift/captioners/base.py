"""What every captioner shares: the clip to caption, frame sampling, prompts and their hashes.

A captioner is anything with ``identity()`` (model, revision: what the cache key and the records
name, known before any weights are loaded), ``load()`` and ``caption(jobs, on_result)``, which
calls ``on_result(job, Result)`` once per clip as soon as that clip is done (the shard writes it to
its resume cache at once). Failures of one clip are a ``Result`` with ``error`` set; only what is
wrong for the whole shard (a missing model, a refused API key) raises.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field

import numpy as np

from ..io.hashing import json_digest


@dataclass(frozen=True)
class ClipJob:
    """One kept clip: where its frames are (times in seconds of the source video)."""

    clip_id: str
    video_id: str
    source_path: str
    start: float
    end: float
    fps: float  # the clip table's: its own average rate on variable frame rate
    n_frames: int
    width: int
    height: int
    path: str | None = None  # a materialized clip file (copy/reencode), else the source
    source_caption: str | None = None
    frame_rate_mode: str | None = None  # the clip table's: "variable" or "constant"
    # each frame's time (s in the source, from the scan) where the rate is variable: frames are
    # then sampled by time (:func:`sample_frames`)
    times: tuple[float, ...] | None = None

    @property
    def duration(self) -> float:
        return max(0.0, self.end - self.start)


@dataclass
class Result:
    """What one captioning call gave for one clip."""

    caption: str | None = None  # raw model output (the cleaned text is made when records are built)
    frames: dict = field(default_factory=dict)  # n, times (s, in the clip), size [w, h]
    tokens: dict = field(default_factory=dict)  # prompt, output
    latency: float | None = None  # seconds (a batch's time shared by its clips for local models)
    error: str | None = None
    revision: str | None = None  # the API's reported model name, where it differs per answer

    def to_dict(self) -> dict:
        return asdict(self)


OnResult = Callable[[ClipJob, Result], None]


@dataclass(frozen=True)
class FramePlan:
    """Which frames of a clip a model sees and at what size."""

    times: list[float]  # seconds in the source video (planned at the clip's average rate)
    indices: list[int]  # frame numbers counted from the clip's first frame: what is read
    size: tuple[int, int]  # (width, height) the frames are decoded to

    def record(self, job: ClipJob, decoded: Sequence[float] | None = None) -> dict:
        """What the records say about the frames: ``decoded`` are the frames' own times (s from
        the clip's start, :func:`~clipsift.models.frames.timed_clip_frames`), the planned ones
        where the clip was not decoded."""
        times = decoded if decoded is not None else [t - job.start for t in self.times]
        return {
            "n": len(self.times),
            "times": [round(t, 3) for t in times],
            "size": list(self.size),
        }

    def positions(self, job: ClipJob, decoded: Sequence[float] | None = None) -> list[int]:
        """The frames' places as a processor's ``frames_indices`` (video metadata), which
        Qwen3-VL turns into its timestamps as ``index / fps`` (in transformers and in vLLM):
        the frame numbers on a constant rate; on a variable one, each frame's time from the
        clip's start (``decoded``, else planned) at the clip's average ``fps``, rounded, so
        that ``index / fps`` is its time to half a frame."""
        if job.frame_rate_mode != "variable" or not job.fps:
            return list(self.indices)
        times = decoded if decoded is not None else [t - job.start for t in self.times]
        return [round(t * job.fps) for t in times]


def sample_frames(job: ClipJob, rate: float, max_frames: int, multiple: int = 1) -> FramePlan:
    """Frames at ``rate`` per second of the clip, at most ``max_frames``, spread evenly over its
    time.

    The count is a multiple of ``multiple`` (Qwen models pair frames in time); a clip with fewer
    frames than that repeats its frames. Frames are read by number (:func:`clip_frames`). On a
    variable frame rate (``job.times``) each is the frame nearest its share of the clip's time,
    the later on a tie: spread over the frames instead, a shot of 2 s at 30 fps then 3 s at 10
    fps had six of its eight frames in the first 2 s, and Qwen2.5-VL, which takes one rate for
    a video, was told they were evenly spaced. On a constant rate, the frames
    ``linspace(0, n_frames - 1, n)``, rounded. The planned times (on a constant rate a quarter
    frame after each frame's start at the clip's ``fps``; on a variable one the frame's own)
    stand in for the decoded ones only where a clip could not be read.
    """
    n_avail = max(1, int(job.n_frames))
    n = max(1, min(int(max_frames), round(job.duration * rate)))
    if multiple > 1:
        cap = max(multiple, int(max_frames) // multiple * multiple)
        n = min(cap, max(multiple, math.ceil(n / multiple) * multiple))
    if job.times is not None and len(job.times) == n_avail:
        from ..split.clips import nearest_times  # av and pandas: only here

        t = np.asarray(job.times, np.float64)
        idx = nearest_times(t, np.linspace(t[0], t[-1], n))
        return FramePlan([float(t[i]) for i in idx], idx, (0, 0))
    idx = np.linspace(0, n_avail - 1, n).round().astype(int).tolist()
    times = [job.start + (i + 0.25) / job.fps for i in idx]
    return FramePlan(times, idx, (0, 0))


def fit_side(width: int, height: int, max_side: int) -> tuple[int, int]:
    """(width, height) scaled so the longer side is at most ``max_side`` (never enlarged)."""
    s = min(1.0, max_side / max(width, height))
    return max(1, round(width * s)), max(1, round(height * s))


# ----------------------------------------------------------------------------- prompts

DEFAULT_SYSTEM = (
    "You are an expert video annotator who writes captions for training video generation models."
)
DEFAULT_USER = (
    "Describe this video clip in detail: the main subjects and their appearance, actions and "
    "motion, the setting, lighting and colours, and the camera angle and camera movement. Write "
    "one paragraph in plain present-tense prose, without opening phrases such as 'The video "
    "shows'."
)


class _Fields(dict):
    def __missing__(self, key):  # unknown placeholders stay as written
        return "{" + key + "}"


def format_prompt(template: str, job: ClipJob) -> str:
    """Fill ``{source_caption}``, ``{duration}``, ``{clip_id}`` and ``{video_id}`` in a prompt."""
    fields = _Fields(
        source_caption=job.source_caption or "",
        duration=f"{job.duration:.1f}",
        clip_id=job.clip_id,
        video_id=job.video_id,
    )
    return template.format_map(fields)


def stable_hash(obj, n: int = 16) -> str:
    """Short sha256 of a JSON-able object (keys sorted): the caption and encode cache keys."""
    return json_digest(obj, n)


def prompt_hash(system: str, user: str) -> str:
    return stable_hash({"system": system, "user": user})


class Timer:
    def __enter__(self):
        self.t0 = time.perf_counter()
        return self

    def __exit__(self, *exc):
        self.seconds = time.perf_counter() - self.t0


def chunks(items: Sequence, n: int):
    for i in range(0, len(items), max(1, n)):
        yield items[i : i + max(1, n)]
