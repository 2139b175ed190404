"""What every source yields: items (one per source video) that the shard plan groups."""

from __future__ import annotations

import hashlib
import re
from dataclasses import asdict, dataclass, field

VIDEO_EXTENSIONS = ("mp4", "mov", "mkv", "webm", "avi", "m4v", "mpg", "mpeg", "ts", "flv", "wmv")
# Video files that cameras, discs and broadcast write, outside the default: a folder source warns
# when it leaves any out (an .MTS folder gave an empty plan without a word). Not taken by default:
# ids are file names without their extension, so in a camera folder that holds 00001.MTS next to
# its transcode 00001.mp4 a re-plan would number the pair again and change the mp4's id.
CAMERA_EXTENSIONS = ("mts", "m2ts", "m2t", "mxf", "vob", "dv", "3gp", "3g2", "ogv", "f4v", "asf",
                     "tod")  # fmt: skip


class SourceError(Exception):
    """The source as configured cannot be read (a missing folder, a bad list): the run stops."""


class SourceUnavailable(SourceError):
    """A shard's videos cannot be fetched now (the network, the Hub, access, the disk), as
    opposed to what is wrong with the archive itself: the ingest job fails and is retried, and
    the next run fetches it again, where an error row would lose the shard for good."""


@dataclass
class Item:
    """One source video.

    id: stable id, unique within its source (used in clip ids and file names).
    uri: where it came from: an absolute path, or ``hf://datasets/{repo}@{rev}/{archive}#{member}``.
    path: local path to decode (absolute); for archive members, where extraction puts it.
    caption: a caption given by the source, if any.
    extra: other fields of the source row worth keeping (JSON-serialisable).
    """

    id: str
    uri: str
    path: str | None
    caption: str | None = None
    extra: dict = field(default_factory=dict)

    def to_row(self) -> dict:
        return asdict(self)


_SLUG = re.compile(r"[^A-Za-z0-9_.-]+")


def slug_id(text: str, max_len: int = 80) -> str:
    """A file-name-safe id derived from a relative path or a given id.

    Characters outside ``[A-Za-z0-9_.-]`` become ``_``; long or changed ids get a short hash of the
    original so that two different inputs never map to the same id.
    """
    slug = _SLUG.sub("_", text).strip("._") or "video"
    if slug != text or len(slug) > max_len:
        digest = hashlib.sha1(text.encode()).hexdigest()[:8]
        slug = f"{slug[: max_len - 9]}-{digest}"
    return slug


def unique_sorted(items: list[Item]) -> list[Item]:
    """Items sorted by id, with repeated ids made unique: the 2nd, 3rd... in input order get ``-2``, ``-3``..."""
    items = sorted(items, key=lambda it: it.id)  # stable: repeats keep their input order
    taken = {it.id for it in items}
    seen: set[str] = set()
    for it in items:
        if it.id in seen:
            n = 2
            while f"{it.id}-{n}" in taken:
                n += 1
            it.id = f"{it.id}-{n}"
            taken.add(it.id)
        seen.add(it.id)
    return sorted(items, key=lambda it: it.id)
