"""Calibration: where to put the thresholds, computed from stored scores only.

Writes under ``results/report/calibration/``: quantiles of every score, a histogram per score
with the current bounds drawn, the retention of each test alone and in cascade, and a what-if
table (retention at candidate thresholds: the score's own quantiles).
"""

from __future__ import annotations

import html
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from .io.atomic import atomic_path  # noqa: E402
from .selection import filter_tests, passes, rules, select  # noqa: E402


def score_columns(table: pd.DataFrame) -> list[str]:
    skip = {"clip_id", "video_id", "error", "split_reason"}
    return [
        c for c in table.columns
        if c not in skip and pd.api.types.is_numeric_dtype(table[c]) and not pd.api.types.is_bool_dtype(table[c])
    ]  # fmt: skip


def quantiles(table: pd.DataFrame, qs: list[float]) -> pd.DataFrame:
    cols = score_columns(table)
    q = table[cols].quantile(qs).T
    q.columns = [f"q{int(round(x * 100)):02d}" for x in qs]
    q.insert(0, "count", table[cols].notna().sum())
    q.insert(1, "mean", table[cols].mean())
    return q.rename_axis("score").reset_index()


def retention(table: pd.DataFrame, cfg: dict) -> pd.DataFrame:
    """Share of measurable clips that pass each test alone, and after each step of the cascade."""
    measurable = table["error"].isna() & table["split_reason"].isna()
    base = table[measurable]
    n = max(len(base), 1)
    alive = pd.Series(True, index=base.index)
    rows = []
    for name, col, op, bound, record_only in rules(cfg):
        values = base[col] if col in base else pd.Series(np.nan, index=base.index)
        ok = passes(values, op, bound)
        if not record_only:
            alive &= ok
        rows.append(
            {"test": name, "column": col, "op": op, "bound": bound, "record_only": record_only,
             "alone": ok.sum() / n, "cascade": alive.sum() / n}
        )  # fmt: skip
    rows.append(
        {"test": "all (clips kept / measurable)", "alone": None, "cascade": alive.sum() / n}
    )
    return pd.DataFrame(rows)


def whatif(table: pd.DataFrame, cfg: dict, qs: list[float]) -> pd.DataFrame:
    """For every bound, the retention (alone and overall) if it were moved to each quantile."""
    measurable = table["error"].isna() & table["split_reason"].isna()
    n = max(int(measurable.sum()), 1)
    rows = []
    tests = [t for t in rules(cfg) if t[2] != "=="]
    for name, col, op, bound, _ in tests:
        if col not in table:
            continue
        vals = pd.to_numeric(table.loc[measurable, col], errors="coerce")
        for cand in sorted(set(np.round(vals.quantile(qs).dropna().to_numpy(), 8)) | {bound}):
            alone = passes(vals, op, cand).sum() / n
            trial = _with_bound(cfg, name, col, op, cand)
            overall = select(table, trial)["keep"][measurable.to_numpy()].sum() / n
            rows.append({"test": name, "column": col, "op": op, "bound": cand, "current": cand == bound,
                         "retention_alone": alone, "retention_overall": overall})  # fmt: skip
    return pd.DataFrame(rows)


def _with_bound(cfg: dict, name: str, col: str, op: str, value: float) -> dict:
    trial = {k: (dict(v) if isinstance(v, dict) else v) for k, v in cfg.items()}
    for m, t, _ in filter_tests(cfg):
        if t.name == name:  # a filter's test: its bound is a key of select.{filter}
            trial[m.name][t.key] = value
            return trial
    trial["thresholds"] = {k: dict(v) for k, v in cfg["thresholds"].items()}
    trial["thresholds"][col]["min" if op == ">=" else "max"] = value
    return trial


def save_png(fig, path) -> Path:
    """Lay out ``fig``, write it to ``path`` as PNG (atomically) and close it; returns the path."""
    fig.tight_layout()
    path = Path(path)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png")
    plt.close(fig)
    return path


def _span(vals: pd.Series) -> tuple[float, float] | None:
    """The histogram's range: numpy's own (None), except for values equal but for float noise,
    which leave it no finite bins ("Too many bins for data range"): clips cut to one length
    last 3.0 and 3.000000000000001 s. Those are drawn as numpy draws a constant, +-0.5."""
    lo, hi = float(vals.min()), float(vals.max())
    return None if hi - lo > 1e-9 * max(1.0, abs(hi)) else (lo - 0.5, hi + 0.5)


def histograms(table: pd.DataFrame, cfg: dict, out_dir: Path) -> list[Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    bounds: dict[str, list[float]] = {}
    for _, col, op, bound, _ in rules(cfg):
        if op != "==":
            bounds.setdefault(col, []).append(bound)
    paths = []
    measurable = table["error"].isna() & table["split_reason"].isna()
    for col in score_columns(table):
        vals = pd.to_numeric(table.loc[measurable, col], errors="coerce").dropna()
        fig, ax = plt.subplots(figsize=(5, 3), dpi=100)
        if len(vals):
            ax.hist(vals, bins=min(40, max(5, len(vals) // 2)), range=_span(vals), color="#4c72b0")
        for b in bounds.get(col, []):
            ax.axvline(b, color="#c44e52", linestyle="--", label=f"threshold {b:g}")
        if col in bounds:
            ax.legend(fontsize=8)
        ax.set_title(f"{col} (n={len(vals)})", fontsize=10)
        paths.append(save_png(fig, out_dir / f"{col}.png"))
    return paths


def write_report(table: pd.DataFrame, select_cfg: dict, qs: list[float], out_dir: Path) -> None:
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    parts = {
        "quantiles": quantiles(table, qs),
        "retention": retention(table, select_cfg),
        "whatif": whatif(table, select_cfg, qs),
    }
    for name, df in parts.items():
        with atomic_path(out_dir / f"{name}.csv") as tmp:
            df.to_csv(tmp, index=False)
    pngs = histograms(table, select_cfg, out_dir / "histograms")
    body = [f"<h1>clipsift calibration</h1><p>{len(table)} clips, "
            f"{int((table['error'].isna() & table['split_reason'].isna()).sum())} measurable.</p>"]  # fmt: skip
    for name, df in parts.items():
        body.append(
            f"<h2>{name}</h2>"
            + df.to_html(index=False, float_format=lambda v: f"{v:.4g}", na_rep="")
        )
    body.append(
        "<h2>histograms</h2>"
        + "".join(f'<img src="histograms/{html.escape(p.name)}">' for p in pngs)
    )
    with atomic_path(out_dir / "index.html") as tmp:
        tmp.write_text(
            "<html><head><meta charset='utf-8'><title>clipsift calibration</title></head><body>"
            + "\n".join(body)
            + "</body></html>"
        )
