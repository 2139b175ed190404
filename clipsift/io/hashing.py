"""Hashing: one home for the digests of files and of JSON-able objects.

Every key that names a cached output (captions, clips, videos, latents) and every recorded
digest (provenance, manifests, heads) is made here. The JSON forms are fixed once made: a key
that changed would orphan every cache built with it, and a changed config hash would break
the byte-for-byte rebuild of a dataset, so each form keeps its exact ``json.dumps`` options.
"""

from __future__ import annotations

import hashlib
import json
import os


def file_digest(path: str | os.PathLike, algo: str = "sha256") -> str:
    """Hex digest of a file's bytes, read in 1 MiB blocks."""
    h = hashlib.new(algo)
    with open(path, "rb") as fh:
        while chunk := fh.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def canonical_json(obj) -> str:
    """Compact, key-sorted, UTF-8 JSON: the form provenance records and hashes the config in."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)


def json_digest(obj, n: int | None = None, *, ascii_only: bool = False) -> str:
    """sha256 of ``obj`` as key-sorted JSON with the default separators (the form of the cache
    keys), its first ``n`` hex digits; ``ascii_only``: non-ASCII escaped (the export's and the
    generate stage's keys were made so)."""
    blob = json.dumps(obj, sort_keys=True, ensure_ascii=ascii_only, default=str).encode()
    digest = hashlib.sha256(blob).hexdigest()
    return digest[:n] if n else digest
