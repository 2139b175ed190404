"""The shard plan: which source videos go to which shard.

The plan is computed once (listing folders and lists is O(videos)) and written under
``{results}/plan/``; every later parse of the Snakefile, including the one in each cluster job,
reads only ``shards.json`` (O(shards)). Existing assignments never change: videos found later go
to new shards, so adding videos to a source never reshuffles (and never re-runs) existing shards.

Files:
- ``shards.json``: fingerprint of the sources config, and one entry per shard (name, source, kind,
  number of items).
- ``shards/{shard}.parquet``: the items of one shard, the ingest rule's input. Rewritten only when
  its content changes, so Snakemake's mtime check re-runs only the shards that changed.
"""

from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path

import pandas as pd

from .config import with_defaults
from .io.atomic import write_json, write_parquet
from .sources import list_archives, list_items
from .sources.base import slug_id

log = logging.getLogger(__name__)

ITEM_COLUMNS = ["source", "id", "uri", "path", "caption", "extra", "kind", "archive"]
SHOWN = 3  # paths named in a warning


class PlanError(ValueError):
    """The plan and the config disagree in a way no re-plan mends by itself."""


def plan_dir(results: str | Path) -> Path:
    return Path(results) / "plan"


def fingerprint(config: dict, *, validated: bool = False) -> str:
    """What the plan depends on: the sources, the shard size and the calibration sample size,
    with the schema's defaults filled in (so a raw and a validated config agree)."""
    if not validated:  # the Snakefile has validated it already: 0.17 s saved per cluster job
        config = _validated(config)
    sample = with_defaults("calibrate", config.get("calibrate"))["sample_size"]
    key = json.dumps(
        {"sources": config["sources"], "shard_size": config["shard_size"], "sample": sample},
        sort_keys=True,
    )
    return hashlib.sha256(key.encode()).hexdigest()[:16]


def load_shards(
    config: dict, root: str | Path = ".", *, validated: bool = False, dryrun: bool = False
) -> list[dict]:
    """Shard entries from the plan; (re)plans when there is no plan or the sources changed.
    ``dryrun``: an existing plan is never changed (a dry run with a mistaken config added its
    videos to the plan for good, a tryout); what a run would add is only said."""
    manifest = plan_dir(Path(root) / config["results"]) / "shards.json"
    if manifest.exists():
        data = json.loads(manifest.read_text())
        if data.get("fingerprint") == fingerprint(config, validated=validated):
            # O(shards): a plan written with a source since removed (before the check below
            # existed) still stops every run, with the source's name
            names = {s["name"] for s in config["sources"]}
            if any(s["source"] not in names for s in data["shards"] if "source" in s):
                items = pd.read_parquet(manifest.parent / "items.parquet")
                _check_orphans(items, config, manifest.parent)
            return data["shards"]
        if dryrun:
            new = update_plan(config, root, write=False)
            added = len(new) - len(data["shards"])
            log.warning(
                "clipsift: the sources changed since the plan was made; a dry run leaves the "
                "plan as it is and shows the jobs of its %d shard(s). A run (or `clipsift plan`) "
                "adds %d shard(s).", len(data["shards"]), added,
            )  # fmt: skip
            return data["shards"]
        log.info("sources changed since the plan was made: updating it")
    return update_plan(config, root)


def limit_shards(shards: list[dict], limit: int | None) -> dict[str, dict]:
    """Shard name -> entry, for the first ``limit`` shards by name (all when None): a first look
    at a big source, or a dataset built a few shards at a time (``--config limit_shards=N``).
    Shards are named in plan order, so the first N are the first planned; raising the limit
    adds shards and keeps what the smaller run made."""
    names = sorted(s["name"] for s in shards)
    keep = set(names[:limit] if limit else names)
    return {s["name"]: s for s in shards if s["name"] in keep}


def _archive_rows(source: dict, root: Path, sample: int, known: set, shards: set) -> list[dict]:
    """Plan rows of the archives of an ``hf_archives`` source not planned yet: one shard each."""
    name = source["name"]
    kind, revision = source.get("repo_type", "dataset"), source.get("revision", "main")
    base = f"hf://{kind}s/{source['repo']}@{revision}"
    archives = _sampled(list_archives(source, root=root), name, sample, key=str)
    return [
        {"source": name, "id": archive, "uri": f"{base}/{archive}", "path": None,
         "caption": None, "extra": "{}", "kind": "archive", "archive": archive, "shard": shard}
        for archive, shard in _archive_shards(archives, name, known, shards)
    ]  # fmt: skip


def _item_rows(
    source: dict, listed: list, sample: int, known: set, start: int, config
) -> list[dict]:
    """Plan rows of the items ``listed`` not planned yet, in new shards from index ``start``."""
    name = source["name"]
    items_ = _sampled(listed, name, sample, key=lambda it: it.id)
    fresh = [it for it in items_ if it.id not in known]
    size = source.get("shard_size") or config["shard_size"]
    return [
        {
            "source": name,
            "id": it.id,
            "uri": it.uri,
            "path": it.path,
            "caption": it.caption,
            "extra": json.dumps(it.extra, sort_keys=True, default=str),
            # prompts of a generate source become videos in that shard's generate rule
            "kind": "prompt" if source["type"] == "generate" else "video",
            "archive": None,
            "shard": f"{name}-{start + i // size:05d}",
        }
        for i, it in enumerate(fresh)
    ]


def update_plan(
    config: dict, root: str | Path = ".", *, drop: tuple[str, ...] = (), write: bool = True
) -> list[dict]:
    """List every source, keep existing assignments, put new items into new shards.

    ``drop``: sources whose planned items are forgotten first, so that they are planned anew
    from what they list now (a source renamed away, or moved: its items keep the paths they were
    planned with). ``write`` False: the shards the plan would have, nothing written."""
    root = Path(root)
    pdir = plan_dir(root / config["results"])
    items_path = pdir / "items.parquet"
    old = pd.read_parquet(items_path) if items_path.exists() else _empty_items()
    sample = with_defaults("calibrate", config.get("calibrate"))["sample_size"]
    unknown = sorted(set(drop) - set(old["source"]))
    if unknown:
        raise PlanError(f"clipsift plan --drop: the plan holds no source named {unknown}; it "
                        f"holds {sorted(set(old['source']))}")  # fmt: skip
    dropped = set(old.loc[old["source"].isin(drop), "shard"])
    old = old[~old["source"].isin(drop)].reset_index(drop=True)
    _check_orphans(old, config, pdir)

    frames = [old]
    for source in config["sources"]:
        name = source["name"]
        known = set(old.loc[old["source"] == name, "id"])
        if source["type"] == "hf_archives":
            new_rows = _archive_rows(source, root, sample, known, set(old["shard"]))
        else:
            listed = list_items(source, root=root)
            _warn_unlisted(old[old["source"] == name], listed, name)
            new_rows = _item_rows(source, listed, sample, known, _next_index(old, name), config)
        if new_rows:
            log.info("source %s: %d new item(s)", name, len(new_rows))
            frames.append(pd.DataFrame(new_rows))
    items = (
        pd.concat([f for f in frames if len(f)], ignore_index=True)
        if any(len(f) for f in frames)
        else old
    )
    if items.empty:
        raise SystemExit("clipsift: the sources list no videos; check `sources` in the config")

    shards = []
    for shard, group in items.groupby("shard", sort=True):
        group = group[ITEM_COLUMNS].reset_index(drop=True)
        if write:
            _write_if_changed(pdir / "shards" / f"{shard}.parquet", group)
        shards.append(
            {
                "name": shard,
                "source": group["source"].iloc[0],
                "kind": group["kind"].iloc[0],
                "items": len(group),
            }
        )
    if not write:
        return shards
    for shard in dropped - {s["name"] for s in shards}:  # planned no more
        (pdir / "shards" / f"{shard}.parquet").unlink(missing_ok=True)
    write_parquet(items_path, items[[*ITEM_COLUMNS, "shard"]])
    write_json(pdir / "shards.json", {"fingerprint": fingerprint(config), "shards": shards})
    return shards


def _check_orphans(items: pd.DataFrame, config: dict, pdir: Path) -> None:
    """Stop where the plan holds sources the config no longer names: every job of their shards
    looks its source up (a renamed source stopped each run with a bare KeyError, a tryout)."""
    names = {s["name"] for s in config["sources"]}
    orphans = sorted(set(items["source"]) - names)
    if not orphans:
        return
    held = items[items["source"].isin(orphans)]
    raise PlanError(
        f"clipsift: the plan in {pdir} holds {len(held)} video(s) in "
        f"{held['shard'].nunique()} shard(s) of source(s) {', '.join(orphans)}, which "
        "`sources` no longer names. A source's name is part of its shards' and clips' ids, so "
        "a renamed source is planned anew under its new name. Put the source back as it was, "
        f"or leave its shards out of the dataset: clipsift plan --drop {' --drop '.join(orphans)} "
        "(with the run's --config files; their results stay on disk)."
    )


def _warn_unlisted(planned: pd.DataFrame, listed: list, name: str) -> None:
    """Say which planned items the source lists no more (deleted, or the source's path or list
    changed): they stay in the plan at the paths they were planned with."""
    now = {it.id: it.path for it in listed}  # paths: a prompt's uri holds its row number
    ids, paths = planned["id"], planned["path"]
    gone = planned[[p is not None and now.get(i) != p for i, p in zip(ids, paths, strict=True)]]
    if gone.empty:
        return
    paths = ", ".join(str(p) for p in gone["path"].head(SHOWN))
    log.warning(
        "clipsift: source %s no longer lists %d planned video(s) where they were planned (%s%s). "
        "They stay planned there: deleted files keep their clips (see `clipsift accept-changes "
        "--gone`); for a source moved or pointed elsewhere, `clipsift plan --drop %s` plans it "
        "anew.",
        name, len(gone), paths, ", ..." if len(gone) > SHOWN else "", name,
    )  # fmt: skip


def _validated(config: dict) -> dict:
    from copy import deepcopy

    from snakemake.utils import validate

    from .config import SCHEMA

    config = deepcopy(config)
    validate(config, str(SCHEMA))
    return config


def _sampled(items: list, source: str, n: int, key) -> list:
    """Calibration mode: a stable choice of ``n`` items (smallest hashes of source and id), in
    their original order; the same videos stay chosen as the source grows. ``n`` 0 keeps all."""
    if not n or len(items) <= n:
        return items
    rank = sorted(items, key=lambda it: hashlib.sha1(f"{source}:{key(it)}".encode()).hexdigest())
    chosen = {key(it) for it in rank[:n]}
    return [it for it in items if key(it) in chosen]


def _empty_items() -> pd.DataFrame:
    return pd.DataFrame({c: pd.Series(dtype=object) for c in [*ITEM_COLUMNS, "shard"]})


def _next_index(items: pd.DataFrame, source: str) -> int:
    names = items.loc[items["source"] == source, "shard"]
    if names.empty:
        return 0
    return max(int(n.rsplit("-", 1)[1]) for n in names) + 1


def _archive_shards(
    archives: list[str], source: str, known: set, taken: set
) -> list[tuple[str, str]]:
    """New archives and their shard names: ``{source}-{stem}``, or the whole file name when that
    stem is already taken (``000.tar`` beside ``000.zip``), so two archives never share a shard."""
    out = []
    taken = set(taken)
    for archive in archives:
        if archive in known:
            continue
        shard = f"{source}-{slug_id(_archive_stem(archive))}"
        if shard in taken:
            shard = f"{source}-{slug_id(archive)}"
        taken.add(shard)
        out.append((archive, shard))
    return out


def _archive_stem(archive: str) -> str:
    name = archive
    for ext in (".tar.gz", ".tgz", ".tar", ".zip"):
        if name.endswith(ext):
            return name[: -len(ext)]
    return name


def _write_if_changed(path: Path, df: pd.DataFrame) -> None:
    """Write the shard's items unless the file holds them already (extra columns, such as the
    stamp of ``clipsift accept-changes``, are kept: the file is the ingest rule's input)."""
    if path.exists():
        try:
            old = pd.read_parquet(path)
            if set(df.columns) <= set(old.columns) and old[list(df.columns)].equals(df):
                return
        except Exception:  # unreadable: rewrite it
            pass
    write_parquet(path, df)
