"""Source readers: list the videos of a configured source (``list_items``) or the archives of a Hugging
Face repo (``list_archives``, then ``fetch_archive`` per archive, which is one shard).

Relative paths in a source config resolve against ``root`` (the workflow folder). Items come sorted by
id; ids are unique within a source: when two rows give the same id (a repeated ``id_key`` value, the same
video listed twice, ``a.mp4`` next to ``a.mkv``), the later ones in list order get ``-2``, ``-3``...
"""

from __future__ import annotations

from pathlib import Path

from ..plugins import Plugin, Registry, UnknownPlugin
from .base import VIDEO_EXTENSIONS, Item, SourceError, SourceUnavailable, slug_id, unique_sorted
from .extract import UnsafeArchiveError, safe_extract
from .hf_archive import fetch_archive, list_archives, with_retries

__all__ = [
    "VIDEO_EXTENSIONS",
    "Item",
    "SourceError",
    "SourceUnavailable",
    "UnsafeArchiveError",
    "fetch_archive",
    "list_archives",
    "list_items",
    "safe_extract",
    "slug_id",
    "with_retries",
]

# the listers by source type (an hf_archives source lists archives, each one shard, not items)
READERS = Registry(
    "source type",
    {
        "folder": Plugin("clipsift.sources.folder:list_folder"),
        "metalist": Plugin("clipsift.sources.metalist:list_metalist"),
        "hunyuan": Plugin("clipsift.sources.metalist:list_hunyuan"),
        "conversation": Plugin("clipsift.sources.metalist:list_conversation"),
        "generate": Plugin("clipsift.sources.prompts:list_prompts"),
        "hf_archives": Plugin("clipsift.sources.hf_archive:list_archives"),
    },
)


def list_items(source: dict, *, root: Path) -> list[Item]:
    """The items of a folder, metalist, hunyuan or conversation source, sorted by (unique) id."""
    kind = source.get("type")
    if kind == "hf_archives":
        raise SourceError(
            f"source {source.get('name')!r}: hf_archives sources are read with list_archives"
        )
    try:
        reader = READERS.load(kind)
    except UnknownPlugin as exc:
        raise SourceError(f"source {source.get('name')!r}: {exc}") from None
    return unique_sorted(reader(source, Path(root)))
