"""Paths in published files as the config gave them, never this machine's absolute paths.

The plan resolves every source path to an absolute one (jobs run anywhere), but what the dataset
publishes must not depend on the working folder or the results path (the same config and inputs
give the same bytes), nor leak a home folder. So the export rewrites, in every text column of
the dataset tables (``uri``, ``source_path``, error messages...):
- a path under a source's folder (a folder source's ``path``, a list's folder or ``base_dir``) to
  that folder as the config wrote it (``sample/videos/a.mp4``, or ``/data/raw/a.mp4`` when the
  config said ``/data/raw``);
- a path under the results folder (extracted archive members, generated videos, materialized
  clips) to a path relative to the results folder (``work/hf-00000/extracted/a.mp4``);
- any other path under the working folder to a path relative to it.
Paths a meta list gives as absolute stay as the list gave them.
"""

from __future__ import annotations

import os

import numpy as np
import pandas as pd


def path_roots(sources: list[dict], results: str) -> list[tuple[str, str]]:
    """(absolute prefix, published prefix) pairs, the longest prefix first."""
    pairs: dict[str, str] = {}

    def add(given: str | None) -> None:
        if given:
            absolute = os.path.abspath(given).rstrip(os.sep) + os.sep
            pairs.setdefault(absolute, os.path.normpath(given).rstrip(os.sep) + os.sep)

    for src in sources:
        path = src.get("path")
        if path and src.get("type") == "folder":
            add(path)
        elif path:
            add(os.path.dirname(path) or ".")
        add(src.get("base_dir"))
    pairs[os.path.abspath(results).rstrip(os.sep) + os.sep] = ""
    pairs.setdefault(os.path.abspath(os.getcwd()).rstrip(os.sep) + os.sep, "")
    return sorted(((a, "" if g == "." + os.sep else g) for a, g in pairs.items()),
                  key=lambda p: -len(p[0]))  # fmt: skip


def portable_text(value, roots: list[tuple[str, str]]):
    """``value`` (a string, or a list or dict of them: the rejection records) with every absolute
    prefix replaced."""
    if isinstance(value, str):
        for absolute, given in roots:
            if absolute in value:
                value = value.replace(absolute, given)
        return value
    if isinstance(value, (list, tuple)):
        return [portable_text(v, roots) for v in value]
    if isinstance(value, np.ndarray):  # a list column read back from parquet
        return [portable_text(v, roots) for v in value.tolist()]
    if isinstance(value, dict):
        return {k: portable_text(v, roots) for k, v in value.items()}
    return value


def portable_table(df: pd.DataFrame, roots: list[tuple[str, str]]) -> pd.DataFrame:
    """``df`` with :func:`portable_text` applied to every text column."""
    out = df.copy()
    for col in out.columns:
        if out[col].dtype == object or pd.api.types.is_string_dtype(out[col].dtype):
            out[col] = out[col].map(lambda v: portable_text(v, roots))
    return out
