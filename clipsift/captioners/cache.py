"""The resume cache: captions already made, kept OUTSIDE the rule's outputs.

Snakemake deletes a job's outputs before it runs the job again, so an interrupted or re-selected
shard would lose every caption it had made if they lived only in ``caption.json``. Each finished
clip is therefore appended to ``{results}/cache/captions/{shard}.jsonl`` at once (flushed and
fsynced), keyed by what determines the answer: the clip, the model and its resolved revision, the
prompt hash and a hash of the frame and generation settings. A rerun reads the file, keeps the
entries whose key still matches and captions only the rest.

- Failed clips are not cached, so a rerun tries them again.
- A line cut short by a killed job is skipped when read back.
- The file only grows; delete it to start over (``clipsift`` never needs it to be complete).
"""

from __future__ import annotations

import json
import logging
import os
import threading
from pathlib import Path

from .base import stable_hash

log = logging.getLogger(__name__)


def cache_key(kind: str, clip_id: str, **parts) -> str:
    return stable_hash({"kind": kind, "clip_id": clip_id, **parts}, n=24)


class CaptionCache:
    """Append-only jsonl of ``{"key", "kind", "clip_id", "record"}`` lines; thread-safe appends."""

    def __init__(self, path: str | os.PathLike | None):
        self.path = Path(path) if path else None
        self.entries: dict[str, dict] = {}
        self._lock = threading.Lock()
        self._fh = None
        if self.path and self.path.exists():
            bad = 0
            with open(self.path, encoding="utf-8") as fh:
                for line in fh:
                    if not line.strip():
                        continue
                    try:
                        entry = json.loads(line)
                        self.entries[entry["key"]] = entry["record"]
                    except (json.JSONDecodeError, KeyError, TypeError):
                        bad += 1  # a line cut short by a killed job
            log.info(
                "caption cache %s: %d entries%s",
                self.path,
                len(self.entries),
                f" ({bad} unreadable lines skipped)" if bad else "",
            )

    def get(self, key: str) -> dict | None:
        return self.entries.get(key)

    def put(self, key: str, kind: str, clip_id: str, record: dict) -> None:
        self.entries[key] = record
        if self.path is None:
            return
        line = json.dumps(
            {"key": key, "kind": kind, "clip_id": clip_id, "record": record},
            ensure_ascii=False,
            default=_default,
        )
        with self._lock:
            if self._fh is None:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                self._fh = open(self.path, "a", encoding="utf-8")  # noqa: SIM115
                if _ends_unfinished(self.path):
                    self._fh.write("\n")  # after a line cut short, start a fresh one
            self._fh.write(line + "\n")
            self._fh.flush()
            os.fsync(self._fh.fileno())

    def close(self) -> None:
        with self._lock:
            if self._fh is not None:
                self._fh.close()
                self._fh = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def _ends_unfinished(path: Path) -> bool:
    size = path.stat().st_size
    if size == 0:
        return False
    with open(path, "rb") as fh:
        fh.seek(size - 1)
        return fh.read(1) != b"\n"


def _default(obj):
    if hasattr(obj, "tolist"):
        return obj.tolist()
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")
