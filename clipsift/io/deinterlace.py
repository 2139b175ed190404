"""Interlaced video as whole pictures: every frame the decoder flags interlaced is deinterlaced.

Broadcast footage (1080i and 576i in MPEG-TS, DV, camcorder AVCHD) stores each frame as two
fields captured 1/50 or 1/60 s apart. Read as whole frames, anything that moves is combed: every
other row shows the other field's instant. Combing reads as detail (sharpness 54 % above the
progressive picture's on ``bench/formats.py``'s render), and a clip exported with it teaches a
video model comb teeth. (The scan's small frames halve the rows by averaging, which blends the
fields: cuts, transitions and flow read the same either way, ``bench/accuracy.py``.) So frames
flagged interlaced go through FFmpeg's ``bwdif`` (motion adaptive: still areas keep both fields,
moving ones are interpolated from the first field in time), one picture per frame: frame counts,
indices and timestamps are those of the decoded stream, and every reader (the scan, OCR seeks,
the scorers, captioners, encoders and the export) sees the same pictures. Progressive frames
pass untouched, and a progressive stream never builds a filter.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Iterator

import av
import av.filter

# one output frame per input frame (send_frame), field order from each frame's flags (auto),
# and only the frames flagged interlaced deinterlaced (a stream may mix both)
BWDIF = "mode=send_frame:parity=auto:deint=interlaced"


def progressive(frames: Iterable[av.VideoFrame], time_base) -> Iterator[av.VideoFrame]:
    """``frames`` (decoded in order from one stream of ``time_base``) with every interlaced one
    deinterlaced. From the first interlaced frame on, frames go through the filter, which
    holds one frame back (it looks at the next one's fields) and hands back each frame's own
    timestamp; until then, and for a progressive stream throughout, frames pass as they are."""
    graph, pending = None, deque()
    for frame in frames:
        if graph is None and not frame.interlaced_frame:
            yield frame
            continue
        if graph is not None and _shape(frame) != graph[1]:
            # the picture changed size or format mid-stream: drain the filter, start a new one
            yield from _drain(graph[0], pending)
            graph = None
        if graph is None:
            graph = (_graph(frame, time_base), _shape(frame))
        pending.append(frame)
        graph[0].push(frame)
        yield from _pulled(graph[0], pending)
    if graph is not None:
        yield from _drain(graph[0], pending)


def _shape(frame: av.VideoFrame) -> tuple:
    return frame.width, frame.height, frame.format.name


def _graph(frame: av.VideoFrame, time_base) -> av.filter.Graph:
    graph = av.filter.Graph()
    src = graph.add_buffer(
        width=frame.width, height=frame.height, format=frame.format, time_base=time_base
    )
    deint = graph.add("bwdif", BWDIF)
    sink = graph.add("buffersink")
    src.link_to(deint)
    deint.link_to(sink)
    graph.configure()
    return graph


def _pulled(graph: av.filter.Graph, pending: deque) -> Iterator[av.VideoFrame]:
    """The frames the filter has ready, each given the timestamp of the frame it came from (in
    send_frame mode the filter counts time in half its input's ticks)."""
    while pending:
        try:
            out = graph.pull()
        except (av.BlockingIOError, av.EOFError):
            return
        source = pending.popleft()
        out.pts, out.dts, out.time_base = source.pts, source.dts, source.time_base
        yield out


def _drain(graph: av.filter.Graph, pending: deque) -> Iterator[av.VideoFrame]:
    graph.push(None)
    yield from _pulled(graph, pending)
