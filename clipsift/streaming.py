"""Streaming shards with bounded disk (the ``streaming`` section; rules/stream.smk).

Seed users process Hub datasets of many archive shards on a machine whose disk holds a few of
them. With ``streaming.enabled``:

- the per-shard rule ``shard_metadata`` writes ``shards/{shard}/metadata.jsonl`` (+ parquet):
  the shard's rows of the dataset tables (:func:`clipsift.export.build_metadata` on that shard);
- ``upload_shard`` (``streaming.upload``) commits the shard's kept clip files and that metadata to
  ``publish.repo`` as soon as the shard is done (one commit per shard, under the same paths the
  final dataset has: ``clips/{shard}/...``, ``shards/{shard}/metadata.jsonl``); a rerun commits
  again and the Hub keeps what it has, so an interrupted upload resumes. The card, provenance and
  the global tables follow with the final ``publish``;
- ``release_shard`` removes what the shard downloaded and extracted (``work/{shard}/extracted``
  and the archives' files in the Hub cache) once every rule that reads its videos is done;
- the ingest (download) of the shard ``window`` places later in the plan waits for that release.
  So at most ``window`` shards' archives and members are on disk at once: the shards being
  processed plus those prefetched while they compute. Peak disk is about ``window x (archive +
  members)`` of one shard, plus the kept clips (``tests/test_streaming.py`` measures it).

A shard is published before later shards exist, so streaming needs the cross-shard stages off
(``export.dedupe_across_shards``, ``near_duplicates``): :func:`check_config` says so at parse time.
Exact duplicates inside a shard are still found.
"""

from __future__ import annotations

import datetime as _dt
import json
import logging
import os
import shutil
from pathlib import Path

from .config import with_defaults

log = logging.getLogger(__name__)


class StreamingConfigError(ValueError):
    pass


def check_config(config: dict) -> None:
    """What streaming cannot work with, said at parse time."""
    st = config.get("streaming") or {}
    if not st.get("enabled"):
        return
    problems = []
    export = with_defaults("export", config.get("export"))
    if export["dedupe_across_shards"]:
        problems.append(
            "export.dedupe_across_shards must be false (a shard is published before the later "
            "shards whose videos it would be compared with exist; duplicates within a shard are "
            "still found)"
        )
    if (config.get("near_duplicates") or {}).get("enabled"):
        problems.append("near_duplicates.enabled must be false (it compares every shard's clips)")
    if with_defaults("streaming", st)["upload"]:
        repo = (config.get("publish") or {}).get("repo")
        if not repo or "/" not in str(repo):
            problems.append(
                "streaming.upload needs publish.repo (namespace/name), or set streaming.upload: false"
            )
        if not export["clips"]:
            problems.append("streaming.upload needs export.clips: true (it uploads the clip files)")
    if problems:
        raise StreamingConfigError("streaming.enabled: " + "; ".join(problems))


def window_dependency(shards: list[str], shard: str, window: int) -> str | None:
    """The shard whose release the ingest of ``shard`` waits for (``window`` earlier in the
    plan), or None for the first ``window`` shards."""
    i = shards.index(shard)
    return shards[i - window] if i >= window else None


# ----------------------------------------------------------------------------- release


def _tree_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file() and not p.is_symlink())


def hub_cache_files(source: dict, archive: str) -> list[Path]:
    """The Hub-cache snapshot link and blob of one archive of an ``hf_archives`` source."""
    from huggingface_hub import try_to_load_from_cache

    cache_dir = source.get("cache_dir")
    found = try_to_load_from_cache(
        source["repo"],
        archive,
        cache_dir=os.path.expanduser(cache_dir) if cache_dir else None,
        revision=source.get("revision") or "main",
        repo_type=source.get("repo_type") or "dataset",
    )
    if not isinstance(found, str):
        return []
    link = Path(found)
    out = [link]
    if link.is_symlink():
        out.append(link.resolve())
    return out


def release_shard(
    results: str | os.PathLike, shard: str, source: dict, archives: list[str], *, downloads: bool
) -> dict:
    """Remove the shard's extracted members and (``downloads``) its archives in the Hub cache.
    Returns what was removed and the bytes freed. Only files clipsift made or downloaded are
    removed: rule outputs stay (Snakemake would make them again), and a video a later run
    needs is extracted (and downloaded) again."""
    removed, freed = [], 0
    extracted = Path(results) / "work" / shard / "extracted"
    if extracted.is_dir():
        freed += _tree_bytes(extracted)
        shutil.rmtree(extracted)
        removed.append(os.fspath(extracted))
    if downloads and source.get("type") == "hf_archives":
        for archive in archives:
            for path in hub_cache_files(source, archive):
                if path.exists() or path.is_symlink():
                    if not path.is_symlink():
                        freed += path.stat().st_size
                    path.unlink()
                    removed.append(os.fspath(path))
    log.info("released %s: %d paths, %.1f MB", shard, len(removed), freed / 1e6)
    return {"shard": shard, "removed": removed, "bytes_freed": freed, "released": _now()}


def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


# ----------------------------------------------------------------------------- upload


def shard_files(dataset: Path, shard: str, shard_dir: Path) -> dict[str, Path]:
    """Repo path -> local file of one shard's upload: its clip files (the paths the final
    dataset gives them) and its metadata."""
    files = {}
    clips = dataset / "clips" / shard
    if clips.is_dir():
        for p in sorted(clips.iterdir()):
            if p.is_file() and not p.name.startswith("."):
                files[f"clips/{shard}/{p.name}"] = p
    for name in ("metadata.jsonl", "metadata.parquet"):
        if (shard_dir / name).is_file():
            files[f"shards/{shard}/{name}"] = shard_dir / name
    return files


def upload_shard(
    dataset: str | os.PathLike, shard: str, shard_dir: str | os.PathLike, cfg: dict
) -> dict:
    """One commit of the shard's files to ``cfg["repo"]`` (the ``publish`` section); returns the
    record. Raises :class:`clipsift.publish.PublishError` with what to do."""
    from huggingface_hub import CommitOperationAdd, HfApi, constants

    from .publish import PublishError, _hub_failure, hub_token, network_errors

    cfg = with_defaults("publish", cfg)
    repo = cfg["repo"]
    if not repo or "/" not in str(repo):
        raise PublishError("streaming.upload: set publish.repo (namespace/name)")
    token = hub_token(cfg)
    api = HfApi(token=token)
    endpoint = api.endpoint or constants.ENDPOINT
    files = shard_files(Path(dataset), shard, Path(shard_dir))
    revision = cfg.get("revision") or None
    step = "create the repo"
    try:
        api.create_repo(repo, repo_type="dataset", private=cfg["private"], exist_ok=True)
        if revision and revision != "main":
            step = f"create the branch {revision!r}"
            api.create_branch(repo, branch=revision, repo_type="dataset", exist_ok=True)
        step = f"upload shard {shard}"
        info = api.create_commit(
            repo_id=repo,
            repo_type="dataset",
            revision=revision,
            operations=[
                CommitOperationAdd(path_in_repo=k, path_or_fileobj=os.fspath(v))
                for k, v in files.items()
            ],
            commit_message=f"clipsift: shard {shard}",
        )
    except network_errors() as exc:
        raise _hub_failure(exc, step, repo, endpoint, token) from None
    return {
        "shard": shard,
        "repo": repo,
        "revision": revision or "main",
        "commit": info.oid,
        "files": len(files),
        "bytes": sum(p.stat().st_size for p in files.values()),
        "uploaded": _now(),
    }


def read_record(path: str | os.PathLike) -> dict | None:
    try:
        return json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return None
