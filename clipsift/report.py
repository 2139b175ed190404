"""The dataset report: ``results/report/index.html`` and its pictures in ``results/report/figures/``.

- the retention funnel: a bar chart of the videos and clips left after each stage and test;
- score histograms with the thresholds drawn (:func:`clipsift.calibration.histograms`);
- contact sheets: a few kept clips, and a few rejected clips per reason, 3 frames each (read with
  :func:`clipsift.io.decode.read_frames_at`), labelled with the clip id and the reason;
- the stage counts, the rejections per reason, the models, and per rule the jobs and their time
  (from Snakemake's job records in ``.snakemake/metadata``: start and end of every job; where
  they are missing, the logs give the number of jobs).

Clips are sampled evenly in clip-id order, so the pictures of a rebuild show the same clips.
"""

from __future__ import annotations

import html
import json
import logging
import os
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from . import reasons  # noqa: E402
from .calibration import histograms, save_png  # noqa: E402
from .config import with_defaults  # noqa: E402
from .filters import REGISTRY as FILTERS  # noqa: E402
from .io.atomic import atomic_path  # noqa: E402
from .io.decode import VideoError, read_frames_at  # noqa: E402
from .selection import with_filters  # noqa: E402

log = logging.getLogger(__name__)

UNIT_COLOURS = {"videos": "#8172b3", "clips": "#4c72b0"}
FRAME_POSITIONS = (0.1, 0.5, 0.9)  # of the span from the clip's first frame to its last


# ----------------------------------------------------------------------------- funnel


def funnel_chart(funnel: list[dict], path: str | os.PathLike) -> Path:
    """Horizontal bars, one per stage, top to bottom, with the count and the share of the first
    bar of the same unit."""
    labels = [r["stage"] for r in funnel]
    counts = [int(r["count"]) for r in funnel]
    first = {}
    for r in funnel:
        first.setdefault(r["unit"], max(int(r["count"]), 1))
    fig, ax = plt.subplots(figsize=(8, 0.42 * len(funnel) + 1.2), dpi=110)
    y = np.arange(len(funnel))[::-1]
    ax.barh(y, counts, color=[UNIT_COLOURS.get(r["unit"], "#55a868") for r in funnel])
    ax.set_yticks(y, labels, fontsize=10)
    top = max(counts + [1])
    for yi, r, c in zip(y, funnel, counts, strict=True):
        share = c / first[r["unit"]]
        ax.text(c + top * 0.01, yi, f"{c} ({share:.0%} of {r['unit']})", va="center", fontsize=9)
    ax.set_xlim(0, top * 1.35)
    ax.set_xlabel("count")
    ax.set_title("Retention funnel", fontsize=12)
    handles = [plt.Rectangle((0, 0), 1, 1, color=c) for c in UNIT_COLOURS.values()]
    ax.legend(handles, list(UNIT_COLOURS), loc="lower right", fontsize=9)
    ax.spines[["top", "right"]].set_visible(False)
    return save_png(fig, path)


# ----------------------------------------------------------------------------- contact sheets


def evenly(df: pd.DataFrame, n: int) -> pd.DataFrame:
    """``n`` rows spread evenly over ``df`` in clip-id order (all of them when fewer)."""
    df = df.sort_values("clip_id")
    if len(df) <= n:
        return df
    idx = np.unique(np.linspace(0, len(df) - 1, n).round().astype(int))
    return df.iloc[idx]


def clip_frames(row: dict, dataset_dir: Path | None, width: int) -> tuple[list, list[float]]:
    """Three frames of a clip: from the exported file when there is one, else from the source
    over the clip's time range. Unreadable clips give ``None`` frames."""
    start, end = _float(row.get("start_time")), _float(row.get("end_time"))
    last = _float(row.get("last_time"))
    # over the span from the first frame to the last (end on tables without last_time): on a
    # variable frame rate a last frame that lasts long put 90 % of the duration past it, into
    # the next shot
    dur = max((last if last > start else end) - start, 0.0)
    rel = [p * dur for p in FRAME_POSITIONS]
    if dataset_dir is not None and isinstance(row.get("file"), str):
        path, times = dataset_dir / row["file"], rel
    else:
        path, times = row.get("source_path"), [start + t for t in rel]
    try:
        if not isinstance(path, (str, os.PathLike)) or not os.path.exists(path):
            raise VideoError("no file")
        return read_frames_at(path, times, size=width), [start + t for t in rel]
    except (VideoError, OSError, ValueError) as exc:
        log.info("%s: no frames (%s)", row.get("clip_id"), exc)
        return [None] * len(times), [start + t for t in rel]


def contact_sheet(
    rows: list[dict], path: str | os.PathLike, title: str, *, dataset_dir: Path | None = None,
    width: int = 192,
) -> Path:  # fmt: skip
    """A grid of clips x 3 frames; above each row the clip id and (for rejected clips) why."""
    n = max(len(rows), 1)
    aspect = 9 / 16
    frames = [clip_frames(r, dataset_dir, width) for r in rows]
    for imgs, _ in frames:
        img = next((i for i in imgs if i is not None), None)
        if img is not None:
            aspect = img.shape[0] / img.shape[1]
            break
    col_w = 2.6
    fig, axes = plt.subplots(
        n, 3, figsize=(3 * col_w, n * (col_w * aspect + 0.75) + 0.5), dpi=100, squeeze=False
    )
    for i in range(n):
        if i >= len(rows):
            for ax in axes[i]:
                ax.axis("off")
            axes[i][1].set_title("no clips", fontsize=10)
            continue
        row, (imgs, times) = rows[i], frames[i]
        for j, ax in enumerate(axes[i]):
            ax.set_xticks([])
            ax.set_yticks([])
            if imgs[j] is None:
                ax.imshow(np.full((int(100 * aspect), 100, 3), 230, np.uint8))
                ax.text(50, 50 * aspect, "not readable", ha="center", va="center", fontsize=8)
            else:
                ax.imshow(imgs[j])
                ax.set_xlabel(f"{times[j]:.1f} s", fontsize=8)
        label = str(row["clip_id"])
        if row.get("reason"):
            label += f"\n{_short(row['reason'], 70)}"
        elif isinstance(row.get("caption"), str) and row["caption"].strip():
            label += f"\n{_short(row['caption'], 70)}"
        axes[i][1].set_title(label, fontsize=9)
    fig.suptitle(title, fontsize=12)
    return save_png(fig, path)


def _float(v) -> float:
    try:
        f = float(v)
    except (TypeError, ValueError):
        return 0.0
    return f if np.isfinite(f) else 0.0


def _short(text: str, n: int) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= n else text[: n - 1] + "…"


def _slug(text: str) -> str:
    out = "".join(c if c.isalnum() or c in "._-" else "_" for c in text)
    return out.strip("_") or "reason"


# ----------------------------------------------------------------------------- timings


def job_timings(
    workdir: str | os.PathLike = ".", logs: str | os.PathLike | None = None
) -> pd.DataFrame:
    """Per rule: jobs, total and longest job time (s), from Snakemake's job records in
    ``.snakemake/metadata`` (start of the job, mtime of its output). Without records, the logs
    (``results/logs/{rule}/...``) give the number of jobs only."""
    jobs: dict[tuple, dict] = {}
    meta_dir = Path(workdir) / ".snakemake" / "metadata"
    if meta_dir.is_dir():
        for f in meta_dir.rglob("*"):
            if not f.is_file():
                continue
            try:
                rec = json.loads(f.read_text())
                rule, t0, t1 = rec["rule"], float(rec["starttime"]), float(rec["endtime"])
            except (ValueError, KeyError, TypeError, OSError):
                continue
            if rec.get("incomplete"):
                continue
            # a job has a record per output, each with its own start; its log is its own
            key = (rule, tuple(rec.get("log") or ()), rec.get("job_hash"))
            j = jobs.setdefault(key, {"rule": rule, "start": t0, "end": t1})
            j["start"], j["end"] = min(j["start"], t0), max(j["end"], t1)
    if jobs:
        df = pd.DataFrame(jobs.values())
        df["seconds"] = (df["end"] - df["start"]).clip(lower=0)
        out = df.groupby("rule").agg(jobs=("seconds", "size"), total_s=("seconds", "sum"),
                                     longest_s=("seconds", "max"))  # fmt: skip
        return out.reset_index().sort_values("total_s", ascending=False, ignore_index=True)
    rows = []
    if logs is not None and Path(logs).is_dir():
        for rule_dir in sorted(Path(logs).iterdir()):
            n = sum(1 for _ in rule_dir.rglob("*.log")) if rule_dir.is_dir() else 1
            rows.append({"rule": rule_dir.stem, "jobs": n, "total_s": None, "longest_s": None})
    return pd.DataFrame(rows, columns=["rule", "jobs", "total_s", "longest_s"])


# ----------------------------------------------------------------------------- the report


def score_table(meta: pd.DataFrame, config: dict) -> pd.DataFrame:
    """The calibration table (clip fields, filter summaries, score columns) out of the metadata."""
    scorers = {n for n, c in (config.get("scorers") or {}).items() if c.get("enabled")}
    prefixes = tuple(f"{n}." for n in [*FILTERS, *sorted(scorers)])
    cols = [c for c in meta.columns if c.startswith(prefixes) and meta[c].notna().any()]
    return meta[["clip_id", "video_id", "error", "split_reason", *cols]]


def rejected_rows(meta: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """Rejected clips per reason key (a clip with several reasons is in each group), biggest
    group first; each row's ``reason`` is the reason text of that group."""
    groups: dict[str, list[dict]] = {}
    rej = meta[~meta["keep"].fillna(False).astype(bool)]
    for row, rs in zip(rej.to_dict("records"), reasons.column_of(rej), strict=True):
        for r in rs:
            groups.setdefault(r["test"], []).append(row | {"reason": r["text"]})
    ordered = sorted(groups.items(), key=lambda kv: (-len(kv[1]), kv[0]))
    return {k: pd.DataFrame(v) for k, v in ordered}


def _img(src: str, alt: str) -> str:
    return f'<img src="{html.escape(src)}" alt="{html.escape(alt)}" style="max-width:100%">'


def _df_html(df: pd.DataFrame) -> str:
    return df.to_html(index=False, float_format=lambda v: f"{v:.4g}", na_rep="", escape=True)


def write_report(
    meta: pd.DataFrame,
    prov: dict,
    out_html: str | os.PathLike,
    fig_dir: str | os.PathLike,
    *,
    cfg: dict | None = None,
    dataset_dir: str | os.PathLike | None = None,
    workdir: str | os.PathLike = ".",
    logs: str | os.PathLike | None = None,
    fig_final: str | os.PathLike | None = None,
) -> dict:
    """Write the report; returns what it holds (figure paths by kind). Figures go to
    ``fig_dir``; the page links them where they end up, ``fig_final`` (default ``fig_dir``)."""
    cfg = with_defaults("report", cfg)
    out_html, fig_dir = Path(out_html), Path(fig_dir)
    fig_dir.mkdir(parents=True, exist_ok=True)
    dataset_dir = Path(dataset_dir) if dataset_dir else None
    config = prov["config"]
    counts = prov["counts"]
    sel_cfg = with_filters(config["select"], config["filters"])
    width = cfg["frame_width"]
    rel = Path(os.path.relpath(fig_final or fig_dir, out_html.parent)).as_posix()
    figs: dict[str, list[Path]] = {}

    figs["funnel"] = [funnel_chart(counts["funnel"], fig_dir / "funnel.png")]
    figs["histograms"] = histograms(score_table(meta, config), sel_cfg, fig_dir / "histograms")
    figs["kept"] = [_kept_sheet(meta, cfg, fig_dir, dataset_dir, width)]
    figs["rejected"] = _rejected_sheets(meta, cfg, fig_dir, width)
    timings = job_timings(workdir, logs)
    _write_page(out_html, _report_body(prov, figs, timings, rel))
    return {k: [os.fspath(p) for p in v] for k, v in figs.items()}


def _kept_sheet(
    meta: pd.DataFrame, cfg: dict, fig_dir: Path, dataset_dir: Path | None, width: int
) -> Path:
    """The contact sheet of a few kept clips, read from the exported dataset when there is one."""
    kept = meta[meta["keep"].fillna(False).astype(bool)]
    n_kept = cfg["sample_clips"]
    return contact_sheet(
        evenly(kept, n_kept).to_dict("records"),
        fig_dir / "kept.png",
        f"Kept clips ({min(n_kept, len(kept))} of {len(kept)})",
        dataset_dir=dataset_dir,
        width=width,
    )  # fmt: skip


def _rejected_sheets(meta: pd.DataFrame, cfg: dict, fig_dir: Path, width: int) -> list[Path]:
    """One contact sheet per rejection reason, biggest group first, up to ``max_reasons``."""
    sheets = []
    per_reason = cfg["rejected_per_reason"]
    groups = rejected_rows(meta)
    for key, rows in list(groups.items())[: cfg["max_reasons"]]:
        # rejected clips are not exported: their frames come from the sources
        sheets.append(
            contact_sheet(
                evenly(rows, per_reason).to_dict("records"),
                fig_dir / f"rejected_{_slug(key)}.png",
                f"Rejected: {key} ({min(per_reason, len(rows))} of {len(rows)})",
                dataset_dir=None,
                width=width,
            )  # fmt: skip
        )
    return sheets


def _report_body(
    prov: dict, figs: dict[str, list[Path]], timings: pd.DataFrame, rel: str
) -> list[str]:
    """The page's HTML fragments, in order; figures are linked under ``rel``."""
    counts = prov["counts"]
    return [
        "<h1>clipsift dataset report</h1>",
        f"<p>{counts['kept']} kept clips of {counts['split']['clips']} clips from "
        f"{counts['ingest']['ok']} videos. Config sha256 <code>{prov['config_sha256'][:16]}</code>, "
        f"clipsift {html.escape(str(prov['code']['clipsift']))} "
        f"<code>{html.escape(str(prov['code'].get('git_describe') or ''))}</code>. "
        'See also the <a href="calibration/index.html">calibration report</a>.</p>',
        "<h2>Retention funnel</h2>",
        _img(f"{rel}/funnel.png", "retention funnel"),
        _df_html(pd.DataFrame(counts["funnel"])),
        "<h2>Rejections per reason</h2><p>A clip may fail several tests.</p>",
        _df_html(
            pd.DataFrame(
                sorted(counts["select"]["rejected_by"].items(), key=lambda kv: -kv[1]),
                columns=["reason", "clips"],
            )
        ),  # fmt: skip
        "<h2>Stage counts</h2>",
        "<pre>"
        + html.escape(json.dumps({k: v for k, v in counts.items() if k != "funnel"}, indent=1))
        + "</pre>",
        "<h2>Kept clips</h2>",
        _img(f"{rel}/kept.png", "kept clips"),
        "<h2>Rejected clips, per reason</h2>",
        *[_img(f"{rel}/{p.name}", p.stem) for p in figs["rejected"]],
        "<h2>Score histograms</h2><p>Dashed lines: the thresholds.</p>",
        "".join(_img(f"{rel}/histograms/{p.name}", p.stem) for p in figs["histograms"]),
        "<h2>Models</h2>",
        _models_html(prov),
        "<h2>Jobs and time per rule</h2>",
        _df_html(timings) if len(timings) else "<p>No job records.</p>",
    ]


def _models_html(prov: dict) -> str:
    """The table of learned models, or a line saying there are none."""
    if not prov.get("models"):
        return "<p>No learned model.</p>"
    return _df_html(
        pd.DataFrame(prov["models"], columns=["stage", "id", "revision", "resolved_revision"])
    )


def _write_page(out_html: Path, body: list[str]) -> None:
    """Write ``body`` as the report page (atomic)."""
    with atomic_path(out_html) as tmp:
        tmp.write_text(
            "<html><head><meta charset='utf-8'><title>clipsift dataset report</title>"
            "<style>body{font-family:sans-serif;max-width:1100px;margin:auto}"
            "table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:2px 6px}</style>"
            "</head><body>" + "\n".join(body) + "</body></html>",
            encoding="utf-8",
        )
