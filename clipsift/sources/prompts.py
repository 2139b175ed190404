"""Prompt lists: the input of a ``generate`` source (videos made by a diffusers pipeline).

A list is a text file (one prompt per line; empty lines and lines starting with ``#`` are
skipped), or rows in jsonl, json, csv, tsv or parquet with the prompt in ``prompt_key``
(default ``prompt``), optionally a first-frame image path in ``image_key`` (relative paths
resolve against ``base_dir``, else the list's folder) and an id in ``id_key``.

Each prompt is one item (``kind: prompt`` in the plan); the shard's ``generate`` job turns it
into a video. Ids: ``id_key`` when given; otherwise the first words of the prompt and a hash of
prompt and image, so that ids (and the seeds derived from them) do not depend on the order of
the list, and adding prompts never changes an existing video. A prompt listed twice gets ``-2``
(a second sample with its own seed).
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

from .base import Item, SourceError, slug_id
from .folder import resolve, source_path
from .metalist import FORMATS, as_text, lookup, present, read_rows, scalar_extra

_WORDS = re.compile(r"[^a-z0-9]+")


def prompt_id(prompt: str | None, image: str | None) -> str:
    words = _WORDS.sub("_", (prompt or "").lower()).strip("_")[:32].rstrip("_") or "prompt"
    digest = hashlib.sha1(f"{prompt or ''}\0{image or ''}".encode()).hexdigest()[:10]
    return f"{words}-{digest}"


def _rows(path: Path, fmt: str, label: str) -> list:
    if fmt == "txt":
        rows = []
        for line in path.read_text(encoding="utf-8-sig").splitlines():
            text = line.strip()
            rows.append({"prompt": text} if text and not text.startswith("#") else None)
        return rows
    return read_rows(path, fmt, label)


def list_prompts(source: dict, root: Path) -> list[Item]:
    from ..generators import GeneratorError, check_source

    try:
        check_source(source)
    except GeneratorError as exc:
        raise SourceError(str(exc)) from None
    path = source_path(source, Path(root), kind="prompt list")
    label = f"source {source.get('name')!r} ({path})"
    if not path.is_file():
        why = "is a folder, not a file" if path.is_dir() else "does not exist"
        raise SourceError(f"{label}: the prompt list {why}; fix `path`")
    fmt = source.get("format") or "auto"
    if fmt == "auto":
        fmt = "txt" if path.suffix.lower() == ".txt" else FORMATS.get(path.suffix.lower())
        if fmt is None:
            raise SourceError(f"{label}: cannot tell the format from {path.suffix!r}; set `format`")
    base = resolve(source["base_dir"], Path(root)) if source.get("base_dir") else path.parent
    prompt_key = source.get("prompt_key") or "prompt"
    image_key, id_key = source.get("image_key"), source.get("id_key")
    items = []
    for n, row in enumerate(_rows(path, fmt, label), 1):
        if row is None:  # a blank or comment line of a text list
            continue
        if not isinstance(row, dict):
            raise SourceError(f"{label}: row {n} is a {type(row).__name__}, not an object")
        prompt = as_text(lookup(row, prompt_key))
        image = None
        if image_key:
            value = lookup(row, image_key)
            if present(value):
                if not isinstance(value, str):
                    raise SourceError(f"{label}: row {n}: {image_key!r} is not a path: {value!r}")
                image = str(resolve(value, base))
        if not prompt and not image:
            want = f"{prompt_key!r} (prompt_key)" + (f" or {image_key!r}" if image_key else "")
            raise SourceError(f"{label}: row {n} has no prompt: no {want}")
        if id_key:
            given = lookup(row, id_key)
            if not present(given):
                raise SourceError(f"{label}: row {n} has no {id_key!r} (id_key)")
            pid = slug_id(str(given))
        else:
            pid = prompt_id(prompt, image)
        extra = {"image": image} | scalar_extra(row, {prompt_key, image_key, id_key})
        items.append(Item(pid, uri=f"prompt:{path}#{n}", path=None, caption=prompt, extra=extra))
    if not items:
        raise SourceError(f"{label}: the prompt list is empty")
    return items
