"""Publish ``results/dataset/`` to a Hugging Face Hub dataset repo (rule ``publish``, on demand).

Everything goes through huggingface_hub's own client:

1. ``HfApi.create_repo(repo, repo_type="dataset", private=..., exist_ok=True)`` (visibility is set
   when the repo is made; an existing repo keeps its own), and ``create_branch`` when
   ``publish.revision`` names a branch other than main;
2. the upload of the folder, resumable: where ``HfApi`` has ``upload_large_folder`` (older
   huggingface_hub), that, with ``num_workers = publish.concurrency`` (its progress is kept in
   the folder's ``.cache/huggingface/``, so a re-run picks up where it stopped); in
   huggingface_hub 2.x, where that method is gone, ``upload_folder``: with ``hf_xet`` installed (a dependency of
   huggingface_hub) it uploads in a streamed pipeline of several commits, and a re-run skips
   the files already committed (the Hub returns their ids, unchanged files are dropped) and
   the chunks already uploaded (Xet deduplication). ``publish.concurrency`` then sets hf_xet's
   ``HF_XET_DATA_MAX_CONCURRENT_FILE_INGESTION`` (files read and uploaded at once) unless it is
   set already. Without hf_xet, ``upload_folder`` makes one commit: its LFS uploads are skipped
   on a re-run for the files the Hub has, but nothing is committed until all are uploaded.
3. optionally (``remove_intermediates``) the extracted archive members of every shard
   (``results/work/{shard}/extracted``, re-extracted from the Hub cache when a stage needs them
   again) are removed. Rule outputs are never removed: Snakemake would make them again.

The token comes from the environment (``publish.token_env``, default ``HF_TOKEN``), is passed to
huggingface_hub only, and is written nowhere; without it, or without the network, the job fails
with a message that says what to do. The record of the upload goes to
``results/dataset/.published.json`` (not uploaded).
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import logging
import os
import shutil
from importlib import metadata as importlib_metadata
from pathlib import Path

from .config import with_defaults
from .io.atomic import write_json
from .redaction import scrub

log = logging.getLogger(__name__)

RECORD = ".published.json"
# hidden files: the upload record, upload_large_folder's .cache/, Snakemake's timestamps, temporaries
ALWAYS_IGNORED = [".*", "*/.*"]
XET_CONCURRENCY_ENV = "HF_XET_DATA_MAX_CONCURRENT_FILE_INGESTION"


class PublishError(RuntimeError):
    """The upload cannot start or failed; the message says what to do."""


def hub_token(cfg: dict) -> str:
    name = cfg.get("token_env") or "HF_TOKEN"
    token = os.environ.get(name, "").strip()
    if not token:
        raise PublishError(
            f"publish: no Hugging Face token in ${name}. Create a token with write access at "
            f"https://huggingface.co/settings/tokens and run `{name}=hf_... snakemake publish` "
            "(the token is read from the environment only and never written anywhere)."
        )
    return token


def _reason(exc: BaseException, secrets: list[str]) -> str:
    lines = [x.strip() for x in str(exc).splitlines() if x.strip()]
    text = " ".join(lines[:3]) if lines else type(exc).__name__
    return scrub(text, secrets)[:500]


def _status(exc: BaseException) -> int | None:
    resp = getattr(exc, "response", None)
    return getattr(resp, "status_code", None)


def _hub_failure(
    exc: BaseException, what: str, repo: str, endpoint: str, token: str
) -> PublishError:
    code = _status(exc)
    reason = _reason(exc, [token])
    if code in (401, 403):
        return PublishError(
            f"publish: the Hub at {endpoint} refused the token while trying to {what} "
            f"({code}: {reason}). The token needs write access to {repo.split('/')[0]!r}."
        )
    if code is None:
        return PublishError(
            f"publish: cannot reach the Hub at {endpoint} to {what} ({type(exc).__name__}: "
            f"{reason}). Check the network (and HF_ENDPOINT), then run `snakemake publish` again: "
            "the upload resumes where it stopped."
        )
    return PublishError(
        f"publish: the Hub at {endpoint} failed to {what} ({code}: {reason}). Run `snakemake "
        "publish` again to resume: files already committed are skipped."
    )


def folder_files(folder: Path, ignore: list[str]) -> list[Path]:
    from huggingface_hub.utils import filter_repo_objects

    rel = sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file())
    return [folder / p for p in filter_repo_objects(rel, ignore_patterns=ignore)]


def xet_available() -> bool:
    """Whether huggingface_hub uploads through hf_xet (its test, without its private import)."""
    from importlib.util import find_spec

    from huggingface_hub import constants

    return find_spec("hf_xet") is not None and not getattr(constants, "HF_HUB_DISABLE_XET", False)


def network_errors() -> tuple[type[BaseException], ...]:
    """What a failed Hub call raises: huggingface_hub's HTTP errors, its HTTP client's errors
    (httpx2 in huggingface_hub 2.x, httpx in 1.x, requests before), and OS-level ones."""
    from huggingface_hub.errors import HfHubHTTPError

    out: list[type[BaseException]] = [HfHubHTTPError, OSError, ConnectionError, TimeoutError]
    for mod, name in (
        ("httpx2", "HTTPError"),
        ("httpx", "HTTPError"),
        ("requests", "RequestException"),
    ):
        with contextlib.suppress(ImportError, AttributeError):
            out.append(getattr(__import__(mod), name))
    return tuple(out)


def upload(api, repo: str, folder: Path, cfg: dict, ignore: list[str]) -> dict:
    """The resumable folder upload (see the module docstring); returns how and the commit."""
    revision = cfg.get("revision") or None
    workers = cfg["concurrency"]
    message = cfg.get("commit_message") or "Upload dataset built with clipsift"
    if hasattr(api, "upload_large_folder"):  # older huggingface_hub
        api.upload_large_folder(
            repo_id=repo, folder_path=folder, repo_type="dataset", revision=revision,
            private=cfg["private"], ignore_patterns=ignore, num_workers=workers,
        )  # fmt: skip
        info = api.repo_info(repo, repo_type="dataset", revision=revision)
        return {"method": "upload_large_folder", "commit": info.sha, "commit_url": None}
    if xet_available():
        os.environ.setdefault(XET_CONCURRENCY_ENV, str(workers))
    info = api.upload_folder(
        repo_id=repo, folder_path=folder, repo_type="dataset", revision=revision,
        commit_message=message, ignore_patterns=ignore,
    )  # fmt: skip
    method = (
        "upload_folder (streamed multi-commit, xet)"
        if xet_available()
        else "upload_folder (one commit)"
    )
    return {"method": method, "commit": info.oid, "commit_url": info.commit_url}


def remove_intermediates(results: Path, shards: list[str]) -> dict:
    """Remove the extracted archive members of ``shards`` (not rule outputs; re-extracted on
    demand). Returns the paths removed and the bytes freed."""
    removed, freed = [], 0
    for shard in shards:
        path = results / "work" / shard / "extracted"
        if path.is_dir():
            freed += sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
            shutil.rmtree(path)
            removed.append(os.fspath(path))
    return {"removed": removed, "bytes_freed": freed}


def publish(
    dataset_dir: str | os.PathLike,
    cfg: dict,
    *,
    results: str | os.PathLike | None = None,
    shards: list[str] = (),
    record_path: str | os.PathLike | None = None,
) -> dict:
    """Create the repo, upload ``dataset_dir``, optionally remove intermediates; write and return
    the record. Raises :class:`PublishError` with what to do."""
    from huggingface_hub import HfApi, constants

    cfg = with_defaults("publish", cfg)
    folder = Path(dataset_dir).resolve()
    repo = cfg["repo"]
    if not repo or "/" not in str(repo):
        raise PublishError(
            "publish: set publish.repo to the dataset repo to upload to, as 'namespace/name' "
            "(e.g. `snakemake publish --config publish='{repo: my-org/my-clips}'` or in the config file)."
        )
    token = hub_token(cfg)
    api = HfApi(token=token)
    endpoint = api.endpoint or constants.ENDPOINT
    ignore = ALWAYS_IGNORED + list(cfg["ignore_patterns"])
    files = folder_files(folder, ignore)
    log.info("publishing %d files (%d bytes) of %s to %s/datasets/%s", len(files),
             sum(p.stat().st_size for p in files), folder, endpoint, repo)  # fmt: skip
    step = "create the repo"
    try:
        url = api.create_repo(repo, repo_type="dataset", private=cfg["private"], exist_ok=True)
        if cfg.get("revision") and cfg["revision"] != "main":
            step = f"create the branch {cfg['revision']!r}"
            api.create_branch(repo, branch=cfg["revision"], repo_type="dataset", exist_ok=True)
        step = "upload the dataset"
        done = upload(api, repo, folder, cfg, ignore)
    except network_errors() as exc:
        raise _hub_failure(exc, step, repo, endpoint, token) from None
    record = {
        "repo": repo,
        "repo_type": "dataset",
        "url": str(url),
        "endpoint": endpoint,
        "revision": cfg.get("revision") or "main",
        "private": cfg["private"],
        **done,
        "files": len(files),
        "bytes": sum(p.stat().st_size for p in files),
        "huggingface_hub": importlib_metadata.version("huggingface_hub"),
        "published": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
    }
    if cfg.get("remove_intermediates") and results is not None:
        record["intermediates"] = remove_intermediates(Path(results), list(shards))
    if record_path is not None:
        write_json(record_path, record)
    log.info("published %s at %s (%s)", repo, record["commit"], record["method"])
    return record
