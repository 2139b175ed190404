"""Source readers: list the videos of a configured source (``list_items``) or the archives of a Hugging
Face repo (``list_archives``, then ``fetch_archive`` per archive, which is one shard).

Relative paths in a source config resolve against ``root`` (the workflow folder). Items come sorted by
id; ids are unique within a source: when two rows give the same id (a repeated ``id_key`` value, the same
video listed twice, ``a.mp4`` next to ``a.mkv``), the later ones in list order get ``-2``, ``-3``...
"""

from __future__ import annotations

from pathlib import Path

from .base import VIDEO_EXTENSIONS, Item, SourceError, slug_id, unique_sorted
from .extract import UnsafeArchiveError, safe_extract
from .folder import list_folder
from .hf_archive import fetch_archive, list_archives, with_retries
from .metalist import list_conversation, list_hunyuan, list_metalist
from .prompts import list_prompts

__all__ = [
    "VIDEO_EXTENSIONS",
    "Item",
    "SourceError",
    "UnsafeArchiveError",
    "fetch_archive",
    "list_archives",
    "list_items",
    "safe_extract",
    "slug_id",
    "with_retries",
]

_READERS = {
    "folder": list_folder,
    "metalist": list_metalist,
    "hunyuan": list_hunyuan,
    "conversation": list_conversation,
    "generate": list_prompts,
}


def list_items(source: dict, *, root: Path) -> list[Item]:
    """The items of a folder, metalist, hunyuan or conversation source, sorted by (unique) id."""
    kind = source.get("type")
    if kind == "hf_archives":
        raise SourceError(
            f"source {source.get('name')!r}: hf_archives sources are read with list_archives"
        )
    reader = _READERS.get(kind)
    if reader is None:
        known = ", ".join([*_READERS, "hf_archives"])
        raise SourceError(
            f"source {source.get('name')!r}: unknown type {kind!r}; use one of {known}"
        )
    return unique_sorted(reader(source, Path(root)))
