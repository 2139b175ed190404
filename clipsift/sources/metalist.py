"""List-file sources: metalist (json/jsonl/csv/tsv/parquet rows), HunyuanVideo meta_file.list, conversation JSON.

Relative video paths resolve against ``base_dir`` (itself relative to the workflow folder) when set, else
against the list file's folder (hunyuan: each JSON file's folder). A listed video that does not exist is
kept: probing turns it into an error row later. A listed URL (``https://``, ``s3://``: lists of web
datasets often hold them) stops the plan with what to do; clipsift reads local files (``file://``
URLs are read as their paths).

Dotted keys (``video_key``, ``id_key``, ``caption_key``): a key present as is wins; otherwise the key is
split at a dot whose left part names a nested object, trying the leftmost such dot first and recursing
into the rest, so ``raw_caption.long caption`` reaches ``row["raw_caption"]["long caption"]`` and
``meta.v1.2`` reaches ``row["meta"]["v1.2"]``.
"""

from __future__ import annotations

import csv
import difflib
import json
import math
import re
from pathlib import Path
from urllib.parse import unquote, urlparse

from .base import Item, SourceError, slug_id
from .folder import path_id, resolve, source_path

VIDEO_KEYS = ("video_path", "path", "video", "file", "filename", "file_path")
CAPTION_KEYS = ("caption", "text", "prompt", "description")
FORMATS = {
    **{".json": "json", ".jsonl": "jsonl", ".ndjson": "jsonl", ".csv": "csv", ".tsv": "tsv"},
    **{".parquet": "parquet", ".pq": "parquet"},
}
_MISSING = object()


_URL = re.compile(r"[A-Za-z][A-Za-z0-9+.-]+://")


def video_path(video: str, base: Path, where: str) -> Path:
    """A listed video's local path (relative ones against ``base``); a URL other than
    ``file://`` is a :class:`SourceError`: it became a "missing file" at a mangled path
    (``base/https:/host/a.mp4``)."""
    if _URL.match(video):
        url = urlparse(video)
        if url.scheme.lower() != "file":
            raise SourceError(
                f"{where}: {video!r} is a URL; clipsift reads local files. Download the videos "
                "and list their paths (relative ones against `base_dir`), or use an `hf_archives` "
                "source for a Hugging Face dataset of archive shards"
            )
        if url.netloc not in ("", "localhost"):  # file://host/... or a relative path so written
            raise SourceError(
                f"{where}: {video!r} names a host ({url.netloc!r}); a file:// URL here is "
                "file:///absolute/path, and a relative path is written without file://"
            )
        video = unquote(url.path)
    return resolve(video, base)


def lookup(row: dict, key: str):
    """``row[key]``, following the dotted-key rule of the module docstring; ``_MISSING`` if absent."""
    if key in row:
        return row[key]
    start = 0
    while (dot := key.find(".", start)) != -1:
        head = row.get(key[:dot], _MISSING)
        if isinstance(head, dict):
            value = lookup(head, key[dot + 1 :])
            if value is not _MISSING:
                return value
        start = dot + 1
    return _MISSING


def present(value) -> bool:
    # CSV gives "" and parquet/JSON may give NaN for an empty cell: both mean "no value"
    if value is _MISSING or value is None or value == "":
        return False
    return not (isinstance(value, float) and math.isnan(value))


def first_present(row: dict, keys) -> tuple[str | None, object]:
    for key in keys:
        value = lookup(row, key)
        if present(value):
            return key, value
    return None, None


def as_text(value) -> str | None:
    if not present(value):
        return None
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)


def scalar_extra(row: dict, exclude) -> dict:
    """Top-level scalar fields of a row, minus the ones used; only JSON-safe values are kept."""
    out = {}
    for key, value in row.items():
        if key in exclude or not isinstance(value, (str, int, float, bool, type(None))):
            continue
        if isinstance(value, float) and not math.isfinite(value):
            continue
        out[str(key)] = value
    return out


def _label(source: dict, path: Path) -> str:
    return f"source {source.get('name')!r} ({path})"


def _require_file(source: dict, path: Path, what: str) -> None:
    if not path.is_file():
        why = "is a folder, not a file" if path.is_dir() else "does not exist"
        raise SourceError(f"{_label(source, path)}: the {what} {why}; fix `path`")


def _json_rows(data, label: str) -> list:
    """A JSON list of rows, or an object holding exactly one list of rows."""
    if isinstance(data, list):
        return data
    if isinstance(data, dict):
        lists = [k for k, v in data.items() if isinstance(v, list)]
        if len(lists) == 1:
            return data[lists[0]]
        raise SourceError(
            f"{label}: expected a JSON list of rows or an object with one list value, "
            f"found an object with {len(lists)} list values {lists[:5]}"
        )
    raise SourceError(f"{label}: expected a JSON list of rows, found {type(data).__name__}")


def read_rows(path: Path, fmt: str, label: str) -> list:
    try:
        if fmt == "json":
            return _json_rows(json.loads(path.read_text(encoding="utf-8-sig")), label)
        if fmt == "jsonl":
            rows = []
            with open(path, encoding="utf-8-sig") as fh:
                for lineno, line in enumerate(fh, 1):
                    if line.strip():
                        try:
                            rows.append(json.loads(line))
                        except json.JSONDecodeError as e:
                            raise SourceError(
                                f"{label}: line {lineno} is not valid JSON: {e}"
                            ) from e
            return rows
        if fmt in ("csv", "tsv"):
            with open(path, encoding="utf-8-sig", newline="") as fh:
                return list(csv.DictReader(fh, delimiter="," if fmt == "csv" else "\t"))
        if fmt == "parquet":
            import pyarrow.parquet as pq

            return pq.read_table(path).to_pylist()
    except SourceError:
        raise
    except (
        ValueError,
        OSError,
        csv.Error,
    ) as e:  # JSONDecodeError, UnicodeDecodeError, ArrowInvalid
        raise SourceError(f"{label}: cannot read it as {fmt}: {e}") from e
    raise SourceError(
        f"{label}: unknown format {fmt!r}; use auto, json, jsonl, csv, tsv or parquet"
    )


def _base_dir(source: dict, root: Path, default: Path | None) -> Path | None:
    return resolve(source["base_dir"], root) if source.get("base_dir") else default


def list_metalist(source: dict, root: Path) -> list[Item]:
    path = source_path(source, root, kind="list file")
    _require_file(source, path, "list file")
    label = _label(source, path)
    fmt = source.get("format") or "auto"
    if fmt == "auto":
        fmt = FORMATS.get(path.suffix.lower())
        if fmt is None:
            raise SourceError(f"{label}: cannot tell the format from {path.suffix!r}; set `format`")
    base = _base_dir(source, root, path.parent)
    video_key, id_key, caption_key = (source.get(k) for k in ("video_key", "id_key", "caption_key"))
    items, keys, captioned = [], {}, False
    for n, row in enumerate(read_rows(path, fmt, label), 1):
        if not isinstance(row, dict):
            raise SourceError(f"{label}: row {n} is a {type(row).__name__}, not an object")
        keys.update(dict.fromkeys(row))
        vkey, video = first_present(row, [video_key] if video_key else VIDEO_KEYS)
        if vkey is None:
            want = f"{video_key!r} (video_key)" if video_key else f"any of {', '.join(VIDEO_KEYS)}"
            raise SourceError(
                f"{label}: row {n} has no video path: no {want}; fix the row or set `video_key`"
            )
        if isinstance(video, dict) and ("bytes" in video or "path" in video):
            # a Hugging Face `datasets` Video column: {"bytes", "path"}, bytes when embedded
            if video.get("bytes"):
                raise SourceError(
                    f"{label}: row {n}: {vkey!r} holds the video's bytes (a Hugging Face "
                    "`datasets` Video column with embedded files); clipsift reads video files: "
                    "write them out and list their paths, or use an `hf_archives` source for a "
                    "dataset of archive shards"
                )
            video = video.get("path")
        if not isinstance(video, str):
            shown = repr(video)
            shown = shown if len(shown) <= 120 else shown[:120] + "..."
            raise SourceError(f"{label}: row {n}: {vkey!r} is not a path string: {shown}")
        vpath = video_path(video, base, f"{label}: row {n}")
        if id_key:
            given = lookup(row, id_key)
            if not present(given):
                raise SourceError(f"{label}: row {n} has no {id_key!r} (id_key)")
            vid = slug_id(str(given))
        else:
            vid, _ = path_id(vpath, base)
        ckey, caption = first_present(row, [caption_key] if caption_key else CAPTION_KEYS)
        captioned = captioned or (caption_key and lookup(row, caption_key) is not _MISSING)
        extra = scalar_extra(row, {vkey, ckey, video_key, id_key, caption_key})
        items.append(
            Item(vid, uri=str(vpath), path=str(vpath), caption=as_text(caption), extra=extra)
        )
    if caption_key and items and not captioned:
        # a misspelt key dropped every caption without a word (a tryout); rows without one
        # are fine (empty cells too), a key no row has is a mistake
        close = difflib.get_close_matches(caption_key, [str(k) for k in keys], n=1)
        hint = f"did you mean {close[0]!r}? " if close else ""
        raise SourceError(
            f"{label}: no row has the key {caption_key!r} (caption_key); {hint}the "
            f"rows' keys: {', '.join(map(str, keys))}"
        )
    return items


def list_hunyuan(source: dict, root: Path) -> list[Item]:
    listfile = source_path(source, root, kind="meta_file.list")
    _require_file(source, listfile, "meta_file.list")
    label = _label(source, listfile)
    base = _base_dir(source, root, None)
    items = []
    for lineno, line in enumerate(listfile.read_text(encoding="utf-8-sig").splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        # HunyuanVideo's tools open the list's paths from their working directory (base_dir);
        # lists written for clipsift name them from the list's folder
        jpath = resolve(line, listfile.parent)
        if base is not None and resolve(line, base).is_file():
            jpath = resolve(line, base)
        where = f"{label}: line {lineno} ({jpath})"
        try:
            meta = json.loads(jpath.read_text(encoding="utf-8-sig"))
        except FileNotFoundError as e:
            raise SourceError(f"{where}: the JSON file does not exist") from e
        except (ValueError, OSError) as e:
            raise SourceError(f"{where}: cannot read the JSON file: {e}") from e
        if not isinstance(meta, dict):
            raise SourceError(f"{where}: expected a JSON object")
        if not present(meta.get("video_path")) or not isinstance(meta["video_path"], str):
            raise SourceError(f"{where}: no video_path")
        vpath = video_path(meta["video_path"], base or jpath.parent, where)
        raw = meta.get("raw_caption")
        _, caption = (
            first_present(raw, ("long caption", "short caption"))
            if isinstance(raw, dict)
            else (None, raw)
        )
        _, given = first_present(meta, ("video_id", "id"))
        vid = slug_id(str(given)) if given is not None else slug_id(jpath.stem)
        extra = scalar_extra(meta, {"video_path", "video_id", "id"}) | {"meta_json": str(jpath)}
        items.append(
            Item(vid, uri=str(vpath), path=str(vpath), caption=as_text(caption), extra=extra)
        )
    return items


def conversation_rows(path: Path, label: str) -> list:
    """A list of conversation records, or one record on its own (``{"id", "video",
    "conversations"}``, as OmniVideo's example file is laid out): not its ``conversations``
    list, which would otherwise pass for the one list of rows of an object."""
    try:
        data = json.loads(path.read_text(encoding="utf-8-sig"))
    except (ValueError, OSError) as e:
        raise SourceError(f"{label}: cannot read it as json: {e}") from e
    if isinstance(data, dict) and "video" in data:
        return [data]
    return _json_rows(data, label)


def list_conversation(source: dict, root: Path) -> list[Item]:
    path = source_path(source, root, kind="conversation JSON file")
    _require_file(source, path, "conversation JSON file")
    label = _label(source, path)
    base = _base_dir(source, root, path.parent)
    items = []
    for n, row in enumerate(conversation_rows(path, label), 1):
        if not isinstance(row, dict):
            raise SourceError(f"{label}: row {n} is a {type(row).__name__}, not an object")
        video = row.get("video")
        if not present(video) or not isinstance(video, str):
            raise SourceError(f"{label}: row {n} has no 'video' path")
        vpath = video_path(video, base, f"{label}: row {n}")
        vid = slug_id(str(row["id"])) if present(row.get("id")) else path_id(vpath, base)[0]
        # the caption is the first answer; "<video>" tokens only ever sit in the human turn
        turns = row.get("conversations") or []
        caption = next(
            (
                t.get("value")
                for t in turns
                if isinstance(t, dict) and t.get("from") in ("gpt", "assistant")
            ),
            None,
        )
        extra = scalar_extra(row, {"id", "video"})
        items.append(
            Item(vid, uri=str(vpath), path=str(vpath), caption=as_text(caption), extra=extra)
        )
    return items
