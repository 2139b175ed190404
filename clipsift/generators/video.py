"""Writing generated frames: H.264 mp4 (libx264, yuv420p) through PyAV.

Every generated item is an mp4, a text-to-image item too (one frame), so ingest, scan, split and
the export treat generated and collected videos alike. The prompt and the generation settings
are also written into the file's metadata (``description``, ``comment``), so a video that leaves
the dataset still says how it was made.
"""

from __future__ import annotations

import json
import os
from fractions import Fraction
from pathlib import Path

import numpy as np

from ..io.atomic import atomic_path
from ..io.x264 import X264_THREADS, x264_options


def write_mp4(
    dest: str | os.PathLike,
    frames: np.ndarray,
    fps: float,
    *,
    crf: int = 17,
    preset: str = "medium",
    metadata: dict | None = None,
) -> Path:
    """``frames`` (``[F, H, W, 3]`` uint8 RGB, even H and W) -> ``dest``, atomically.

    crf 17 is visually lossless for x264: generated videos are training data, and re-encoding
    them later (clip export) should start from as little loss as possible.

    The x264 settings are :func:`clipsift.io.x264.x264_options`: the same frames give the same
    file, which the dataset's reproducibility needs.
    """
    import av

    frames = np.asarray(frames)
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
        raise ValueError(f"expected [F, H, W, 3] uint8 frames, got {frames.shape} {frames.dtype}")
    _, h, w, _ = frames.shape
    if h % 2 or w % 2:
        raise ValueError(f"yuv420p needs an even size, got {w}x{h}")
    rate = Fraction(fps).limit_denominator(1001)
    dest = Path(dest)
    with atomic_path(dest) as tmp, av.open(os.fspath(tmp), "w", format="mp4") as out:
        for key, value in (metadata or {}).items():
            out.metadata[key] = value if isinstance(value, str) else json.dumps(value)
        stream = out.add_stream("libx264", rate=rate)
        stream.width, stream.height, stream.pix_fmt = w, h, "yuv420p"
        stream.codec_context.options = x264_options(crf, preset)
        stream.codec_context.thread_count = X264_THREADS
        for i, rgb in enumerate(frames):
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb), format="rgb24")
            frame.pts = i
            out.mux(stream.encode(frame))
        out.mux(stream.encode(None))
    return dest


def read_frames(path: str | os.PathLike) -> np.ndarray:
    """Every frame of a video as ``[F, H, W, 3]`` uint8 RGB."""
    import av

    with av.open(os.fspath(path)) as c:
        return np.stack([f.to_ndarray(format="rgb24") for f in c.decode(video=0)])
