"""Atomic writes: a killed job never leaves a file that looks complete.

Every writer goes to a temporary name in the destination's folder, then renames it into place.
"""

from __future__ import annotations

import glob
import json
import os
import re
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


_UMASK = _umask()


@contextmanager
def atomic_path(dest: str | os.PathLike, suffix: str = "") -> Iterator[Path]:
    """Yield a temporary path next to ``dest``; rename it to ``dest`` when the block succeeds."""
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(
        prefix=f".{dest.name}.", suffix=suffix or dest.suffix, dir=dest.parent
    )
    os.close(fd)
    tmp = Path(tmp)
    os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp makes 0600; outputs are shared like any other file
    try:
        yield tmp
        os.replace(tmp, dest)
    finally:
        if tmp.exists():
            tmp.unlink()


@contextmanager
def atomic_dir(dest: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary folder next to ``dest``; swap it in for ``dest`` when the block succeeds.

    Temporary folders of ``dest`` that a killed job left behind (hidden ``.{name}.XXXX``, often
    large: extracted archives, a shard's clips) are removed first: one job makes ``dest`` at a
    time, so no other writer can own them."""
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    own = re.compile(rf"\.{re.escape(dest.name)}\.[a-z0-9_]{{8}}")  # mkdtemp's names, exactly
    for stale in dest.parent.glob(f".{glob.escape(dest.name)}.*"):
        if own.fullmatch(stale.name) and stale.is_dir() and not stale.is_symlink():
            shutil.rmtree(stale, ignore_errors=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}.", dir=dest.parent))
    os.chmod(tmp, 0o777 & ~_UMASK)
    try:
        yield tmp
        if dest.exists():
            shutil.rmtree(dest)
        os.replace(tmp, dest)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)


def write_json(dest: str | os.PathLike, obj: Any) -> None:
    with atomic_path(dest) as tmp:
        tmp.write_text(json.dumps(obj, indent=1, sort_keys=False, default=_json_default) + "\n")


def write_parquet(dest: str | os.PathLike, df, types: dict | None = None) -> None:
    """``df`` as parquet; ``types``: arrow types of columns whose type must not depend on the
    values (a list of structs whose fields are all null in one file infers as null there)."""
    with atomic_path(dest) as tmp:
        if not types or not set(types) & set(df.columns):
            df.to_parquet(tmp, index=False)
            return
        import pyarrow as pa
        import pyarrow.parquet as pq

        schema = pa.Schema.from_pandas(df, preserve_index=False)
        for name, typ in types.items():
            if name in df.columns:
                i = schema.get_field_index(name)
                schema = schema.set(i, pa.field(name, typ))
        pq.write_table(pa.Table.from_pandas(df, schema=schema, preserve_index=False), tmp)


def write_jsonl(dest: str | os.PathLike, records) -> None:
    with atomic_path(dest) as tmp, open(tmp, "w") as fh:
        for rec in records:
            fh.write(json.dumps(rec, default=_json_default) + "\n")


def _json_default(obj: Any):
    # numpy scalars and arrays, paths
    if hasattr(obj, "tolist"):
        return obj.tolist()
    if isinstance(obj, os.PathLike):
        return os.fspath(obj)
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")
