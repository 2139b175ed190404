"""Safe extraction of downloaded archives (tar, tar.gz/tgz, zip).

Every member is checked before anything is written; one unsafe member refuses the whole archive.
Extraction goes to a temporary folder next to ``dest`` that replaces ``dest`` only once complete, so a
refused or interrupted archive leaves nothing that looks extracted.

Archive bombs are refused by three limits (:class:`Limits`): the size of one member, the total
extracted bytes, and the ratio of extracted bytes to the archive's size (videos barely compress,
so a video archive expands about 1:1, while a bomb expands 1000:1). The declared sizes are
checked first, before anything is written; then the bytes are counted while writing, since a
header may lie, and extraction stops before a chunk would pass a limit.
"""

from __future__ import annotations

import errno
import lzma
import re
import stat
import tarfile
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path

from ..io.atomic import atomic_dir
from .base import SourceError, SourceUnavailable

_TAR_SUFFIXES = (".tar", ".tar.gz", ".tgz", ".tar.bz2", ".tar.xz")
ARCHIVE_SUFFIXES = (*_TAR_SUFFIXES, ".zip")
_CHUNK = 1 << 20


# Errors of the machine, not of the archive, while extracting: a full disk or quota, a read-only
# or forbidden folder, an I/O error, out of memory or file handles. The ingest job fails on them
# (retried, and the next run extracts again); any other OSError (``File exists``, ``Is a
# directory``, ``File name too long``: the archive's names) makes the archive an error row.
MACHINE_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM,
                            errno.EIO, errno.ENOMEM, errno.EMFILE, errno.ENFILE})  # fmt: skip


class UnsafeArchiveError(SourceError):
    """An archive member could write outside the destination, is a link or device, or is too large."""


def _clean(name: str, archive: Path) -> str:
    """The member's relative path with ``/`` separators; refuses absolute paths and ``..``."""
    if name.startswith(("/", "\\")) or re.match(r"[A-Za-z]:", name):
        raise UnsafeArchiveError(f"{archive.name}: member {name!r} has an absolute path")
    parts = re.split(r"[/\\]", name)  # backslash too: zips written on Windows use it
    if ".." in parts:
        raise UnsafeArchiveError(f"{archive.name}: member {name!r} has a '..' component")
    return "/".join(p for p in parts if p not in ("", "."))


def _too_big(archive: Path, name: str, size: int, limit: int) -> UnsafeArchiveError:
    return UnsafeArchiveError(
        f"{archive.name}: member {name!r} is {size} bytes, over the limit of {limit} bytes (max_member_mb)"
    )


@dataclass(frozen=True)
class Limits:
    """What one archive may write: bytes per member, bytes in all, and extracted bytes per byte
    of archive (``max_ratio``)."""

    max_member_bytes: int
    max_total_bytes: int = 64 << 30
    max_ratio: float = 20.0

    def total_for(self, archive: Path) -> tuple[int, str]:
        """The total the archive may write, and which limit sets it."""
        size = archive.stat().st_size
        by_ratio = int(self.max_ratio * max(size, 1))
        if by_ratio < self.max_total_bytes:
            return by_ratio, f"{self.max_ratio:g} x the archive's {size} bytes (max_ratio)"
        return self.max_total_bytes, "max_extracted_mb"


def _too_much(archive: Path, size: int, limit: int, why: str) -> UnsafeArchiveError:
    return UnsafeArchiveError(
        f"{archive.name}: expands to {size} bytes or more, over the limit of {limit} bytes ({why}): "
        "refused as an archive bomb"
    )


def _kind(path: Path) -> str:
    name = path.name.lower()
    if name.endswith(".zip"):
        return "zip"
    if name.endswith(_TAR_SUFFIXES):
        return "tar"
    # no telling suffix: look at the content
    if zipfile.is_zipfile(path):
        return "zip"
    if tarfile.is_tarfile(path):
        return "tar"
    raise SourceError(f"{path.name}: not a tar, tar.gz/tgz or zip archive")


def _check_tar(tf: tarfile.TarFile, archive: Path, limit: int) -> list[tuple[str, tarfile.TarInfo]]:
    checked = []
    for m in tf.getmembers():
        rel = _clean(m.name, archive)
        if m.issym() or m.islnk():
            kind = "symlink" if m.issym() else "hardlink"
            raise UnsafeArchiveError(
                f"{archive.name}: member {m.name!r} is a {kind} (to {m.linkname!r})"
            )
        if m.ischr() or m.isblk() or m.isfifo():
            raise UnsafeArchiveError(f"{archive.name}: member {m.name!r} is a device or fifo")
        if not (m.isfile() or m.isdir()):
            raise UnsafeArchiveError(
                f"{archive.name}: member {m.name!r} has unsupported type {m.type!r}"
            )
        if m.isfile() and m.size > limit:
            raise _too_big(archive, m.name, m.size, limit)
        if rel:
            checked.append((rel, m))
    return checked


def _check_zip(zf: zipfile.ZipFile, archive: Path, limit: int) -> list[tuple[str, zipfile.ZipInfo]]:
    checked = []
    for info in zf.infolist():
        rel = _clean(info.filename, archive)
        mode = info.external_attr >> 16  # unix mode, when the zip was written on unix
        if stat.S_ISLNK(mode):
            raise UnsafeArchiveError(f"{archive.name}: member {info.filename!r} is a symlink")
        if stat.S_IFMT(mode) not in (0, stat.S_IFREG, stat.S_IFDIR):
            raise UnsafeArchiveError(
                f"{archive.name}: member {info.filename!r} is a device, fifo or socket"
            )
        if info.flag_bits & 0x1:
            raise UnsafeArchiveError(f"{archive.name}: member {info.filename!r} is encrypted")
        if not info.is_dir() and info.file_size > limit:
            raise _too_big(archive, info.filename, info.file_size, limit)
        if rel:
            checked.append((rel, info))
    return checked


def _copy(
    src, dst: Path, archive: Path, name: str, limits: Limits, total: list[int], cap: tuple[int, str]
) -> None:
    """Write one member, counting its bytes and the archive's (``total[0]``, against ``cap``:
    the limit and its name, from :meth:`Limits.total_for`): a header may lie, so the limits
    hold for the bytes really written; a chunk that would pass one is not."""
    cap, why = cap
    written = 0
    with open(dst, "wb") as out:
        while chunk := src.read(_CHUNK):
            if written + len(chunk) > limits.max_member_bytes:
                raise _too_big(archive, name, written + len(chunk), limits.max_member_bytes)
            if total[0] + len(chunk) > cap:
                raise _too_much(archive, total[0] + len(chunk), cap, why)
            written += len(chunk)
            total[0] += len(chunk)
            out.write(chunk)


def safe_extract(
    archive_path: str | Path,
    dest: str | Path,
    *,
    max_member_bytes: int | None = None,
    limits: Limits | None = None,
) -> list[str]:
    """Extract ``archive_path`` into ``dest`` (replaced if present); return the extracted files'
    relative paths. ``limits`` (or only ``max_member_bytes``, with the default totals)."""
    archive = Path(archive_path)
    limits = limits or Limits(max_member_bytes=max_member_bytes or Limits.max_total_bytes)
    kind = _kind(archive)
    files: set[str] = set()
    try:
        with tarfile.open(archive, "r:*") if kind == "tar" else zipfile.ZipFile(archive) as ar:
            if kind == "tar":
                members = _check_tar(ar, archive, limits.max_member_bytes)
                declared = sum(m.size for _, m in members if m.isfile())
            else:
                members = _check_zip(ar, archive, limits.max_member_bytes)
                declared = sum(m.file_size for _, m in members if not m.is_dir())
            cap = limits.total_for(archive)  # (bytes, the limit's name)
            if declared > cap[0]:  # refused before anything is written
                raise _too_much(archive, declared, *cap)
            total = [0]
            with atomic_dir(dest) as tmp:
                for rel, m in members:
                    target = tmp / rel
                    if m.isdir() if kind == "tar" else m.is_dir():
                        target.mkdir(parents=True, exist_ok=True)
                        continue
                    target.parent.mkdir(parents=True, exist_ok=True)
                    with ar.extractfile(m) if kind == "tar" else ar.open(m) as src:
                        _copy(src, target, archive, rel, limits, total, cap)
                    files.add(rel)
    except SourceError:
        raise
    except OSError as e:
        if e.errno in MACHINE_ERRNOS:
            raise SourceUnavailable(f"{archive.name}: cannot extract into {dest}: {e}") from e
        # the archive's own: not gzip data, a file and a folder of one name, a name too long
        raise SourceError(f"{archive.name}: cannot extract: {e}") from e
    except (tarfile.TarError, zipfile.BadZipFile, zlib.error, lzma.LZMAError, EOFError) as e:
        raise SourceError(f"{archive.name}: cannot extract: {e}") from e
    return sorted(files)
