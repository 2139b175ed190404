"""Selection: every clip gets ``keep`` and every test it fails (``rejections``, as data: see
clipsift.reasons; ``reasons``, the same as text).

Thresholds come only from the ``select`` config (the select rule's params), never from the
stages that measure, so changing one re-runs selection and what follows, not a measurement.
"""

from __future__ import annotations

import difflib
import json

import numpy as np
import pandas as pd

from . import filters, reasons


def clip_table(clips: pd.DataFrame, scores: pd.DataFrame, records: dict[str, dict]) -> pd.DataFrame:
    """One row per clip: clip fields, each filter's columns from its per-clip ``records``
    (``{filter: {clip_id: record}}``, empty for a filter that is off), every score column."""
    t = clips[["clip_id", "video_id", "duration", "error", "split_reason"]].copy()
    numeric = []
    for m in filters.measures():
        recs = records.get(m.name) or {}
        for col, get, is_number in m.columns:
            t[col] = t["clip_id"].map(lambda c, get=get, recs=recs: get(recs.get(c, {})))
            numeric += [col] if is_number else []
    for col in numeric:
        t[col] = pd.to_numeric(t[col], errors="coerce")
    if len(scores):
        keep_cols = [c for c in scores.columns if c == "clip_id" or not c.endswith(".error")]
        t = t.merge(scores[keep_cols], on="clip_id", how="left")
    return t


CLIP_FIELDS = ("duration",)  # clip columns a threshold may name besides the scores


class ThresholdError(ValueError):
    """A threshold names a score that no enabled scorer or filter measures."""


# columns that were removed, with their replacement and how to convert a bound
REMOVED_COLUMNS = {
    col: (
        f"{col}_per_s",
        "motion is measured per second now (the same at any frame rate): multiply each bound by "
        f"the frame rate it was tuned at, e.g. at 30 fps {example}",
    )
    for col, example in (
        ("motion.px", "2 -> 60 (source pixels per frame -> per second)"),
        ("motion.rel", "0.0005 -> 0.015 (frame diagonals per frame -> per second)"),
        ("motion.min_region", "2 -> 60 (source pixels per frame -> per second)"),
    )
}


def check_thresholds(config: dict) -> None:
    """Every ``select.thresholds`` key must name a column that this config measures:
    ``{scorer}.{column}`` of an enabled scorer, ``{filter}.*`` of an enabled filter, or a
    clip field. Otherwise every clip would fail that test as "missing", silently: a config
    error, raised when the Snakefile is parsed. A built-in scorer declares its columns, so a
    misspelt column stops the run here too, not after the scan (``motion.rel_per_sec``);
    a filter's or an undeclared scorer's column is checked by ``select``, against what was
    written."""
    scorers = sorted(n for n, c in config.get("scorers", {}).items() if c.get("enabled"))
    on = filters.enabled(config.get("filters", {}))
    cap = config.get("select", {}).get("caption") or {}
    if cap.get("min_alignment") is not None:
        caption = config.get("caption") or {}
        if not (caption.get("enabled") and (caption.get("alignment") or {}).get("enabled")):
            raise ThresholdError(
                "select.caption.min_alignment needs the caption stage and its alignment score "
                "(caption.enabled and caption.alignment.enabled): without them every clip would "
                "be dropped as 'caption.alignment missing'."
            )
    for col, bounds in config.get("select", {}).get("thresholds", {}).items():
        if col in REMOVED_COLUMNS:
            new, how = REMOVED_COLUMNS[col]
            raise ThresholdError(f"select.thresholds: {col!r} was removed; use {new!r}: {how}.")
        _check_bounds(col, bounds or {})
        prefix, _, rest = col.partition(".")
        if col in CLIP_FIELDS:
            continue
        if rest and prefix in on:  # a filter's columns, as its measure declares them
            known = _filter_columns(prefix)
        elif rest and prefix in scorers:
            known = _scorer_columns(prefix)
        else:
            known = None
        if known is not None:
            if rest in TEXT_COLUMNS:
                raise ThresholdError(
                    f"select.thresholds: {col!r} is text, not a number: a bound on it would "
                    "reject every clip as missing."
                )
            if not known or rest in known:
                continue
            close = difflib.get_close_matches(rest, known, n=1)
            raise ThresholdError(
                f"select.thresholds: {col!r} is not a column of {prefix!r}"
                + (f" (did you mean {prefix + '.' + close[0]!r}?)" if close else "")
                + f"; it writes {', '.join(f'{prefix}.{c}' for c in known)}"
            )
        raise ThresholdError(
            f"select.thresholds: {col!r} names no measured column{_hint(col, scorers, on)}. A "
            f"threshold is '<scorer>.<column>' of an enabled scorer ({', '.join(scorers) or 'none'}"
            f"), '<filter>.<column>' of an enabled filter ({', '.join(on) or 'none'}), or one of "
            f"{', '.join(CLIP_FIELDS)}. Enable the scorer, or remove the threshold (setting "
            "select.thresholds replaces the defaults, motion.rel_per_s and technical.luma_mean)."
        )


def _hint(col: str, scorers: list[str], on: list[str]) -> str:
    """What a column of no enabled stage most likely meant: the setting that turns its scorer
    or filter on, or a close spelling of an enabled stage's column (``Motion.rel_per_s``)."""
    from .scorers import REGISTRY

    prefix = col.partition(".")[0]
    if prefix in scorers or prefix in on:  # a stage that is on, and no column of it named
        known = _scorer_columns(prefix) if prefix in scorers else _filter_columns(prefix)
        return f" (a column of {prefix!r} is '{prefix}.<column>': {', '.join(known) or '?'})"
    if prefix in REGISTRY:
        return f" (the {prefix} scorer is off: scorers.{prefix}.enabled: true)"
    if prefix in filters.REGISTRY:
        return f" (the {prefix} filter is off: filters.{prefix}.enabled: true)"
    known = [f"{n}.{c}" for n in scorers for c in _scorer_columns(n)]
    known += [f"{n}.{c}" for n in on for c in _filter_columns(n)]
    by_lower = {k.lower(): k for k in known}
    close = difflib.get_close_matches(col.lower(), list(by_lower), n=1)
    return f" (did you mean {by_lower[close[0]]!r}?)" if close else ""


# scorer columns that hold text (which model, which crop), not a measure
TEXT_COLUMNS = frozenset({"crop", "model", "head", "weights"})
# per-second motion bounds that look like per-frame ones left unmultiplied: (column, the
# smallest plausible max, the smallest plausible min); the defaults are 0.015-1.5 diagonals per
# second, and a per-frame 0.05 max is 37 px/s at 640x360
PER_FRAME_LOOKING = {"motion.rel_per_s": (0.1, 0.001)}


def threshold_warnings(config: dict) -> list[str]:
    """Bounds that pass the checks but most likely are per-frame values renamed without being
    multiplied by the frame rate (tryout 18: max 0.05 rejected 55 % of the clips as too fast,
    a 60-px/s pan among them)."""
    out = []
    for col, bounds in config.get("select", {}).get("thresholds", {}).items():
        if col not in PER_FRAME_LOOKING or not bounds:
            continue
        max_floor, min_floor = PER_FRAME_LOOKING[col]
        lo, hi = bounds.get("min"), bounds.get("max")
        low_max = hi is not None and hi < max_floor
        if low_max or (lo is not None and 0 < lo < min_floor):
            effect = (
                f"a max under {max_floor} diagonals per second rejects ordinary camera moves as "
                "too fast"
                if low_max
                else f"a min under {min_floor} keeps shots that hardly move"
            )
            out.append(
                f"select.thresholds: {col} {{min: {lo}, max: {hi}}} looks like a per-frame "
                "bound: motion is per second, so a bound tuned per frame is multiplied by the "
                f"frame rate it was tuned at (at 30 fps 0.0005 -> 0.015, 0.05 -> 1.5); {effect}."
            )
    return out


def _check_bounds(col: str, bounds: dict) -> None:
    """A threshold with no bound tests nothing (and, as any ``select.thresholds`` replaces the
    defaults, drops those too); one whose ``min`` is over its ``max`` rejects every clip, which
    the run would say only at the export, after every shard was scanned (tryout 18)."""
    lo, hi = bounds.get("min"), bounds.get("max")
    if lo is None and hi is None:
        raise ThresholdError(
            f"select.thresholds: {col!r} has no bound: give min, max or both, or remove it "
            "(setting select.thresholds replaces the defaults, motion.rel_per_s and "
            "technical.luma_mean)."
        )
    if lo is not None and hi is not None and lo > hi:
        raise ThresholdError(
            f"select.thresholds: {col!r} has min {lo} over max {hi}: no clip can pass (swapped?)."
        )


def _filter_columns(name: str) -> tuple[str, ...]:
    """The columns the filter ``name``'s measure declares, without its ``{name}.`` prefix."""
    return tuple(c.partition(".")[2] for c, *_ in filters.REGISTRY.load(name).columns)


def _scorer_columns(name: str) -> tuple[str, ...]:
    """The columns the scorer ``name`` declares (() for one that does not, or is unknown)."""
    from .scorers import REGISTRY

    return tuple(getattr(REGISTRY.get(name), "columns", ()) or ())


def check_columns(table: pd.DataFrame, cfg: dict) -> None:
    """A test on a column its scorer did not write (``motion.rell``) is a typo: stop, listing
    the columns the scorer wrote. (A scorer that wrote nothing at all, every clip an error, is
    not a typo: those clips fail the test as missing.)"""
    for _, col, *_ in rules(cfg):
        if col in table:
            continue
        prefix = col.split(".", 1)[0] + "."
        written = sorted(
            c for c in table.columns if c.startswith(prefix) and not c.endswith(".error")
        )
        if written:
            raise ThresholdError(
                f"select.thresholds: {col!r} is not a column of {prefix[:-1]!r}; "
                f"it wrote {', '.join(written)}"
            )


def with_filters(select_cfg: dict, filters_cfg: dict) -> dict:
    """The select config with each filter's on/off switch, so a disabled filter judges nothing."""
    out = dict(select_cfg)
    for name in filters.REGISTRY:
        out[name] = {**select_cfg[name], "enabled": filters_cfg[name]["enabled"]}
    return out


def filter_tests(cfg: dict) -> list[tuple[filters.Measure, filters.Test, object]]:
    """The tests of the enabled filters that ``cfg`` (the select config) turns on, with bounds."""
    out = []
    for m in filters.measures():
        fcfg = cfg[m.name]
        if not fcfg.get("enabled", True):
            continue
        out += [(m, t, b) for t in m.tests if (b := t.bound_in(fcfg)) is not None]
    return out


def rules(cfg: dict) -> list[tuple[str, str, str, float, bool]]:
    """The configured tests as (name, column, op, bound, record_only), in cascade order: the
    filters' tests, then ``thresholds``."""
    out = [(t.name, t.column, t.op, b, cfg[m.name]["record_only"]) for m, t, b in filter_tests(cfg)]
    for col, bounds in cfg["thresholds"].items():
        rec = bool(bounds.get("record_only", False))
        if bounds.get("min") is not None:
            out.append((f"{col}>=", col, ">=", bounds["min"], rec))
        if bounds.get("max") is not None:
            out.append((f"{col}<=", col, "<=", bounds["max"], rec))
    return out


def passes(values: pd.Series, op: str, bound) -> pd.Series:
    """True where the test passes; missing values fail (a clip without a score cannot be judged)."""
    if op == "==":
        return values.fillna(not bound).astype(bool) == bound
    v = pd.to_numeric(values, errors="coerce")
    ok = v >= bound if op == ">=" else v <= bound
    return ok & v.notna()


def select(
    table: pd.DataFrame, cfg: dict, near_duplicates: pd.DataFrame | None = None
) -> pd.DataFrame:
    """``keep``, ``rejections`` and ``reasons`` per clip, plus each filter's ``{filter}_verdict``
    (``pass``/``fail`` of its verdict tests, None when the filter is off or the clip unmeasurable).

    ``near_duplicates`` (clip_id, duplicate_of) comes from the cross-shard near-duplicate stage.
    """
    check_columns(table, cfg)
    rejections: list[list[dict]] = [[] for _ in range(len(table))]
    for i, (err, split) in enumerate(zip(table["error"], table["split_reason"], strict=True)):
        if isinstance(err, str):
            rejections[i].append(reasons.error(err))
        elif isinstance(split, str):
            rejections[i].append(reasons.split(split))
    measurable = table["error"].isna() & table["split_reason"].isna()
    verdict_of = {t.name: m.name for m, t, _ in filter_tests(cfg) if t.verdict}
    verdicts: dict[str, pd.Series] = {}
    # a missing score is one reason, not one per bound on it (a min and a max rejected a clip
    # twice as "motion.rel_per_s missing", and the funnel counted it twice: tryout 15)
    missing: set[tuple[int, str]] = set()
    for name, col, op, bound, record_only in rules(cfg):
        values = table[col] if col in table else pd.Series(np.nan, index=table.index)
        ok = passes(values, op, bound)
        if name in verdict_of:  # a filter's verdict: all its verdict tests pass
            key = verdict_of[name]
            verdicts[key] = ok if key not in verdicts else verdicts[key] & ok
        if record_only:
            continue
        for i in np.flatnonzero(measurable.to_numpy() & ~ok.to_numpy()):
            value = values.iloc[i]
            if reasons.is_missing(value):
                if (i, col) in missing:
                    continue
                missing.add((i, col))
            rejections[i].append(reasons.failed(name, col, op, bound, value))
    if near_duplicates is not None and len(near_duplicates):
        dup_of = dict(zip(near_duplicates["clip_id"], near_duplicates["duplicate_of"], strict=True))
        for i, cid in enumerate(table["clip_id"]):
            if cid in dup_of:
                rejections[i].append(reasons.duplicate(dup_of[cid]))
    out = {
        "clip_id": table["clip_id"],
        "keep": [not r for r in rejections],
        "reasons": [reasons.texts(r) for r in rejections],
        "rejections": rejections,
    }
    for name in filters.REGISTRY:
        ok = verdicts.get(name)
        out[f"{name}_verdict"] = (
            None if ok is None else np.where(measurable, np.where(ok, "pass", "fail"), None)
        )
    return pd.DataFrame(out)


def select_captions(selection: pd.DataFrame, captions: dict, cfg: dict) -> pd.DataFrame:
    """The selection after the caption stage (rule ``select_captions``): kept clips whose caption
    aligns less than ``cfg["min_alignment"]`` with the clip (``caption.json``'s ``alignment``,
    CLIP image-text cosine) are dropped, as EasyAnimate drops misaligned pairs; a kept clip with
    no score (no caption, a failed alignment) fails the test. ``record_only`` adds the column
    ``caption_alignment`` without rejecting."""
    records = (captions or {}).get("clips", captions or {})
    out = selection.copy()
    scores = [
        (records.get(cid) or {}).get("alignment") if isinstance(records.get(cid), dict) else None
        for cid in out["clip_id"]
    ]
    out["caption_alignment"] = pd.to_numeric(pd.Series(scores, index=out.index), errors="coerce")
    bound = cfg.get("min_alignment")
    if bound is None or cfg.get("record_only"):
        return out
    keep = out["keep"].fillna(False).astype(bool)
    rejections = reasons.column_of(out)
    for i in np.flatnonzero(keep.to_numpy()):
        v = out["caption_alignment"].iloc[i]
        if pd.isna(v) or v < bound:
            rejections[i].append(
                reasons.failed("caption.alignment>=", "caption.alignment", ">=", bound, v)
            )
    return out.assign(
        keep=[not r for r in rejections],
        reasons=[reasons.texts(r) for r in rejections],
        rejections=rejections,
    )


def load_json(path) -> dict:
    with open(path) as fh:
        return json.load(fh)


def filter_records(inputs, n: int = 1) -> list[dict[str, dict]]:
    """Per shard, each filter's per-clip records (:func:`clip_table`'s ``records``), read from a
    job's named inputs: one list of ``{filter}.json`` paths per filter, or one path when
    ``n`` is 1; a filter that is off has none."""
    out: list[dict[str, dict]] = [{} for _ in range(n)]
    for name in filters.REGISTRY:
        paths = getattr(inputs, name, None) or []
        for i, path in enumerate([paths] if isinstance(paths, str) else paths):
            out[i][name] = load_json(path)
    return out
