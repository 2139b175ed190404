"""How many videos and clips each stage took in and let through, and why clips were dropped:
the ``counts`` of the provenance, which the card and the report show (the funnel)."""

from __future__ import annotations

import pandas as pd

from .reasons import column_of as rejections_of
from .selection import rules, with_filters


def test_names(select_cfg: dict) -> list[tuple[str, str, str]]:
    """The selection tests as (name, column, op), in cascade order."""
    return [(name, col, op) for name, col, op, _, rec in rules(select_cfg) if not rec]


def rejection_tests(meta: pd.DataFrame) -> pd.Series:
    """Per clip, the tests of its rejections (``too_short``, ``error``, ``{column}>=`` ...)."""
    return pd.Series([[r["test"] for r in rs] for rs in rejections_of(meta)], index=meta.index)


def source_captions_of_several_scenes(meta: pd.DataFrame) -> pd.Series:
    """Kept clips whose training caption is the source's caption of their whole video while the
    split found several scenes in it, each long enough to be a clip (a caption given per video
    describes every shot of it; a short intro that became no clip is left out of the count)."""
    measured = meta["scene"].where(meta["split_reason"].isna() & meta["error"].isna())
    scenes = measured.groupby(meta["video_id"]).transform("nunique")
    keep = meta["keep"].fillna(False).astype(bool)
    return keep & meta["caption_source"].eq("source") & scenes.gt(1)


def clips_per_test(reasons: pd.Series) -> dict[str, int]:
    """How many clips each test rejected (a clip counts once under each of its tests)."""
    rejected: dict[str, int] = {}
    for keys in reasons:
        for k in dict.fromkeys(keys):
            rejected[k] = rejected.get(k, 0) + 1
    return rejected


def stage_counts(
    meta: pd.DataFrame,
    sources: list[pd.DataFrame],
    config: dict,
    plan: dict | None = None,
) -> dict:
    """Videos and clips at every stage, rejections per reason (alone) and the funnel (cascade)."""
    src = pd.concat(sources, ignore_index=True) if sources else pd.DataFrame()
    sel_cfg = with_filters(config["select"], config["filters"])
    tests = test_names(sel_cfg)
    keep = meta["keep"].fillna(False).astype(bool)
    reasons = rejection_tests(meta)
    rejected = clips_per_test(reasons)
    err = meta["error"].notna() if "error" in meta else pd.Series(False, index=meta.index)
    short = meta["split_reason"].eq("too_short") if "split_reason" in meta else err & False
    dup_in_shard = src.get("duplicate_of", pd.Series([], dtype=object)).map(
        lambda v: isinstance(v, str)
    )
    video_err = src.get("error", pd.Series([], dtype=object)).notna()
    cross = (
        meta.loc[meta["duplicate_of"].notna(), "video_id"].nunique()
        if "duplicate_of" in meta
        else 0
    )
    counts = {
        "plan": {"shards": len(plan or {}), "videos": int(sum((plan or {}).values()))},
        "ingest": {
            "videos": int(len(src)),
            "ok": int((~video_err).sum()),
            "errors": int(video_err.sum()),
            "duplicates_in_shard": int(dup_in_shard.sum()),
            "duplicates_across_shards": int(cross),
        },
        "split": {
            "clips": int((~err).sum()),
            "too_short": int(short.sum()),
            "measurable": int((~err & ~short).sum()),
            "video_errors": int(err.sum()),
        },
        "select": {
            "tests": [n for n, _, _ in tests],
            "rejected_by": dict(sorted(rejected.items())),
        },
        "kept": int(keep.sum()),
        "rejected": int((~keep).sum()),
    }
    if "file" in meta:
        counts["exported"] = int((keep & meta["file"].notna()).sum())
    if "caption_source" in meta:
        counts["source_caption_of_several_scenes"] = int(
            source_captions_of_several_scenes(meta).sum()
        )
    if any(c.startswith("caption.") for c in meta.columns):  # the caption stage ran
        counts["captioned"] = int((keep & meta["caption_source"].eq("caption")).sum())
        counts["with_source_caption"] = int((keep & meta["caption_source"].eq("source")).sum())
    if "latents.status" in meta:
        st = meta.loc[keep, "latents.status"]
        counts["encoded"] = int(st.eq("ok").sum())
        counts["encode_dropped"] = int(st.eq("dropped").sum())
        counts["encode_errors"] = int(st.eq("error").sum())
    counts["funnel"] = funnel(counts, reasons, [n for n, _, _ in tests])
    return counts


def funnel(counts: dict, reasons: pd.Series, tests: list[str]) -> list[dict]:
    """The retention funnel: videos, then clips surviving each cause of rejection in turn."""
    rows = [
        {"stage": "videos planned", "unit": "videos", "count": counts["plan"]["videos"]},
        {"stage": "videos ingested", "unit": "videos", "count": counts["ingest"]["ok"]},
        {"stage": "unique videos", "unit": "videos",
         "count": counts["ingest"]["ok"] - counts["ingest"]["duplicates_in_shard"]
         - counts["ingest"]["duplicates_across_shards"]},
        {"stage": "clips", "unit": "clips", "count": counts["split"]["clips"]},
    ]  # fmt: skip
    seen = {k for keys in reasons for k in keys} - {"error"}
    order = ["too_short", *tests]
    order += sorted(seen - set(order) - {"duplicate", "export_failed"}) + [
        "duplicate",
        "export_failed",
    ]
    labels = {"too_short": "long enough", "duplicate": "not duplicates",
              "export_failed": "exported"}  # fmt: skip
    alive = reasons.map(lambda keys: "error" not in keys)
    for key in order:
        if key not in seen and key not in ("too_short", *tests):
            continue
        alive &= reasons.map(lambda keys, k=key: k not in keys)
        rows.append({"stage": labels.get(key, f"pass {key}"), "unit": "clips",
                     "count": int(alive.sum())})  # fmt: skip
    rows.append({"stage": "kept", "unit": "clips", "count": counts["kept"]})
    for key, label in (("captioned", "captioned"), ("encoded", "encoded")):
        if key in counts:
            rows.append({"stage": label, "unit": "clips", "count": counts[key]})
    return rows
