"""Folder source: every video file under a folder, by extension; plus path helpers the list readers share."""

from __future__ import annotations

import logging
import os
from collections import Counter
from pathlib import Path

from .base import CAMERA_EXTENSIONS, VIDEO_EXTENSIONS, Item, SourceError, slug_id

log = logging.getLogger(__name__)


def resolve(path: str | os.PathLike, base: str | os.PathLike) -> Path:
    """``path`` made absolute against ``base`` when relative; normalised but symlinks are kept."""
    p = Path(os.path.expanduser(os.fspath(path)))
    return Path(os.path.abspath(p if p.is_absolute() else Path(base) / p))


def extensions(source: dict) -> set[str]:
    """Configured extensions, lower case without the dot (".MP4" and "mp4" both work)."""
    exts = source.get("extensions") or VIDEO_EXTENSIONS
    return {str(e).lower().lstrip(".") for e in exts}


def has_ext(name: str, exts: set[str]) -> bool:
    _, dot, ext = name.rpartition(".")
    return bool(dot) and ext.lower() in exts


def strip_ext(relpath: str) -> str:
    """``a/b.mp4`` -> ``a/b`` (only the last suffix of the file name)."""
    head, sep, name = relpath.rpartition("/")
    stem = name.rsplit(".", 1)[0] if "." in name.lstrip(".") else name
    return head + sep + stem


def path_id(video: Path, base: Path) -> tuple[str, str]:
    """(id, relpath): the id derives from the path relative to ``base`` without its extension.

    A path outside ``base`` uses its absolute path (without the leading slash) instead.
    """
    rel = os.path.relpath(video, base)
    if rel == ".." or rel.startswith(".." + os.sep) or os.path.isabs(rel):
        rel = os.fspath(video).lstrip(os.sep)
    rel = rel.replace(os.sep, "/")
    return slug_id(strip_ext(rel)), rel


def source_path(source: dict, root: Path, *, kind: str) -> Path:
    if not source.get("path"):
        raise SourceError(f"source {source.get('name')!r}: set `path` (the {kind})")
    return resolve(source["path"], root)


def hidden(name: str) -> bool:
    """A file or folder name no one means as a video or a folder of them: a dot entry (.git,
    macOS's ``._clip.mp4`` resource forks) or the ``__MACOSX`` folder the Finder adds to every
    zip it makes (each fork was an error row, "cannot open")."""
    return name.startswith(".") or name == "__MACOSX"


def _inward_link(path: str, root: str) -> bool:
    """Whether ``path`` is a symlink to ``root`` (a real path), a folder inside it, or a folder
    that holds it."""
    if not os.path.islink(path):
        return False
    real = os.path.realpath(path)
    return real == root or real.startswith(root + os.sep) or root.startswith(real + os.sep)


def list_folder(source: dict, root: Path) -> list[Item]:
    folder = source_path(source, root, kind="folder of videos")
    if not folder.is_dir():
        what = "is not a folder" if folder.exists() else "does not exist"
        raise SourceError(f"source {source.get('name')!r}: {folder} {what}; fix `path`")
    exts = extensions(source)
    items = []
    # Subfolders that are symlinks to folders elsewhere are followed (datasets are assembled
    # from links to other disks; os.walk's default skipped them, and their videos, without a
    # word). A link into the folder itself is not: its videos are listed under their own paths
    # (a `latest` link must not rename them), and a link to a folder that holds this one is a
    # loop. Each real folder is listed once, under the first path the sorted walk reaches.
    root = os.path.realpath(folder)
    walked: set[str] = set()
    other: Counter[str] = Counter()  # files left out, by extension
    for dirpath, dirnames, filenames in os.walk(folder, followlinks=True):
        real = os.path.realpath(dirpath)
        if real in walked:  # a second link to a folder elsewhere
            dirnames[:] = []
            continue
        walked.add(real)
        dirnames[:] = sorted(d for d in dirnames if not hidden(d) and
                             not _inward_link(os.path.join(dirpath, d), root))  # fmt: skip
        if not source.get("recursive", True):
            dirnames[:] = []
        for name in sorted(filenames):
            if hidden(name):
                continue
            if not has_ext(name, exts):
                other[name.rpartition(".")[2].lower() if "." in name else "(none)"] += 1
                continue
            path = Path(dirpath) / name
            vid, rel = path_id(path, folder)
            items.append(Item(id=vid, uri=str(path), path=str(path), extra={"relpath": rel}))
    videos = {ext: n for ext, n in other.items() if ext in CAMERA_EXTENSIONS}
    if videos:
        # said, not silent: a camcorder's .MTS files were left out without a word
        log.warning(
            "source %r: %d video file(s) left out (%s): not in the source's extensions; add "
            "them to `extensions` to take them (e.g. [mp4, mov, mkv, mts, m2ts])",
            source.get("name"), sum(videos.values()),
            ", ".join(f".{ext} {n}" for ext, n in sorted(videos.items())),
        )  # fmt: skip
    elif other:
        counts = ", ".join(f".{ext} {n}" for ext, n in other.most_common(8))
        log.info("source %r: %d file(s) of other extensions left out (%s)",
                 source.get("name"), sum(other.values()), counts)  # fmt: skip
    return items
