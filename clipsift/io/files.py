"""Putting a file that clipsift made somewhere else: one home for linking and copying.

Hard links only ever join clipsift's own files, which are replaced by rename, never rewritten in
place; a source video that could be overwritten in place is always copied (a reflink where the
file system makes one)."""

from __future__ import annotations

import fcntl
import os
import shutil
from pathlib import Path

from .atomic import atomic_path

FICLONE = 0x40049409  # linux/fs.h: share the source's blocks copy-on-write (btrfs, XFS)


def copy_file(src: str | os.PathLike, dest: str | os.PathLike) -> None:
    """A copy whose bytes never change with ``src``: a reflink where the file system makes one
    (instant, no space), else a plain copy."""
    with open(src, "rb") as fin, open(dest, "wb") as fout:
        try:
            fcntl.ioctl(fout.fileno(), FICLONE, fin.fileno())
            return
        except OSError:
            pass
    shutil.copyfile(src, dest)


def place(src: str | os.PathLike, dest: str | os.PathLike, how: str = "hardlink") -> str:
    """Put ``src`` at ``dest`` by ``how``: ``hardlink`` (a copy where the file system refuses
    one), ``symlink`` (absolute) or ``copy`` (atomic). Returns what was done."""
    src, dest = Path(src), Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    if dest.exists() or dest.is_symlink():
        dest.unlink()
    if how == "symlink":
        dest.symlink_to(src.resolve())
        return "symlink"
    if how == "hardlink":
        try:
            os.link(src, dest)
            return "hardlink"
        except OSError:
            pass
    with atomic_path(dest) as tmp:
        copy_file(src, tmp)
    return "copy"


def file_identity(path) -> str:
    """A cheap stand-in for a file's content hash (path, size, mtime), for cache keys of files
    that were never hashed."""
    try:
        st = os.stat(path)
        return f"{path}:{st.st_size}:{st.st_mtime_ns}"
    except (OSError, TypeError):
        return str(path)
