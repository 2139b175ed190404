"""Why a clip was rejected, as data.

A rejection is a record ``{test, column, op, bound, value, detail, text}``:

- ``test``: the test or cause: a selection test's name (``flash``, ``text``, ``text_frames``,
  ``stable_text``, ``{column}>=`` / ``{column}<=`` for a threshold, ``caption.alignment>=``),
  or ``error`` (the video or clip failed), ``duplicate`` (an exact duplicate), ``export_failed``,
  or the split's reason (``too_short``);
- ``column``, ``op`` (``>=``, ``<=``, ``==``), ``bound`` and ``value``: the test as configured
  and the clip's value (``value`` null: the clip had no value, which fails every test);
- ``detail``: the error message, or the clip a duplicate repeats;
- ``text``: the same for people (``motion.rel_per_s=0.004 < 0.015``), rendered once, here.

``selection.parquet`` and the dataset tables hold them as ``rejections`` (a list of these
structs per clip) beside ``reasons`` (the list of their ``text``, as before). Everything that
counts or groups rejections (provenance, status, report, card) reads ``test``; nothing parses
the text. Tables written before this column existed are read through :func:`from_text`.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa

FIELDS = ("test", "column", "op", "bound", "value", "detail", "text")
ARROW_TYPE = pa.list_(
    pa.struct(
        [
            ("test", pa.string()),
            ("column", pa.string()),
            ("op", pa.string()),
            ("bound", pa.float64()),
            ("value", pa.float64()),
            ("detail", pa.string()),
            ("text", pa.string()),
        ]
    )
)
TYPES = {"rejections": ARROW_TYPE}  # the typed columns, for io.atomic.write_parquet


def _fmt(v) -> str:
    return f"{v:.4g}" if isinstance(v, (float, np.floating)) else str(v)


def is_missing(v) -> bool:
    return v is None or (not isinstance(v, str) and bool(pd.isna(v)))


def _num(v) -> float | None:
    return None if is_missing(v) or isinstance(v, str) else float(v)


def _record(test, column=None, op=None, bound=None, value=None, detail=None, *, text) -> dict:
    return {
        "test": test,
        "column": column,
        "op": op,
        "bound": _num(bound),
        "value": _num(value),
        "detail": detail,
        "text": text,
    }


def failed(test: str, column: str, op: str, bound, value) -> dict:
    """A clip whose ``value`` of ``column`` fails ``op bound`` (a missing value fails)."""
    missing = is_missing(value)
    if missing:
        text = f"{column} missing"
    elif op == "==":
        text = test
    else:
        text = f"{column}={_fmt(value)} {'<' if op == '>=' else '>'} {_fmt(bound)}"
    return _record(test, column, op, bound, None if missing else value, text=text)


def error(message: str) -> dict:
    return _record("error", detail=str(message), text=f"error: {message}")


DUPLICATE = "duplicate_of="  # the split's reason for an exact duplicate, and its text


def split(reason: str) -> dict:
    """A clip the split left unanalysed: ``too_short``, or ``duplicate_of=<clip>``."""
    if reason.startswith(DUPLICATE):
        return duplicate(reason.removeprefix(DUPLICATE))
    return _record(reason, text=reason)


def split_duplicate(of: str) -> str:
    """The split's reason for a video that repeats ``of`` within its shard (left unsplit)."""
    return f"{DUPLICATE}{of}"


def split_duplicates(split_reasons: pd.Series) -> pd.Series:
    """Per row, the clip a within-shard duplicate repeats (from its ``split_reason``), else
    null: the one test of "the split left this row as a duplicate", for status and export."""
    return split_reasons.astype(object).map(
        lambda r: (
            r.removeprefix(DUPLICATE) if isinstance(r, str) and r.startswith(DUPLICATE) else None
        )
    )


def duplicate(of: str) -> dict:
    return _record("duplicate", detail=str(of), text=split_duplicate(of))


def export_failed(message: str) -> dict:
    return _record("export_failed", detail=str(message), text=str(message))


def texts(rejections) -> list[str]:
    return [r["text"] for r in rejections]


def summary(r: dict) -> str:
    """The rejection without the clip's own value, to count alike ones together:
    ``motion.rel_per_s < 0.015``, ``error: cannot open``, ``duplicate``."""
    if r["test"] == "error":
        return f"error: {str(r['detail']).split(':', 1)[0].strip() or r['detail']}"
    if r["op"] in (">=", "<=") and r["value"] is not None:  # the bound as the text shows it
        return f"{r['column']} {'<' if r['op'] == '>=' else '>'} {r['text'].rsplit(' ', 1)[-1]}"
    return "duplicate" if r["test"] == "duplicate" else r["text"]


def column_of(table) -> list[list[dict]]:
    """The ``rejections`` of a selection or dataset table as lists of dicts (parquet gives
    arrays); a table written before the column existed is read from its ``reasons`` texts."""
    if "rejections" in table:
        return [[dict(r) for r in rs] if _listed(rs) else [] for rs in table["rejections"]]
    return [[from_text(t) for t in rs] if _listed(rs) else [] for rs in table["reasons"]]


def _listed(v) -> bool:
    return isinstance(v, (list, tuple, np.ndarray))


def from_text(text: str) -> dict:
    """Migration: a reason text of a table written before ``rejections`` -> its record (the
    test name of a threshold is ``{column}{op}``, as the selection names it)."""
    if text.startswith("error:"):
        return error(text.removeprefix("error:").strip())
    if text.startswith(DUPLICATE):
        return duplicate(text.removeprefix(DUPLICATE))
    if text.startswith("export failed"):
        return export_failed(text)
    if text.endswith(" missing"):
        col = text.removesuffix(" missing")
        return _record(f"{col} missing", col, text=text)
    if "=" in text and (" < " in text or " > " in text):
        col, rest = text.split("=", 1)
        value, sign, bound = rest.split(" ", 2)
        op = ">=" if sign == "<" else "<="
        return _record(f"{col}{op}", col, op, float(bound), float(value), text=text)
    return _record(text, text=text)
