"""Hugging Face repo archives (tar, tar.gz/tgz, zip shards): listing, download with retries, extraction.

Each archive is one shard. Downloads go through ``huggingface_hub.hf_hub_download`` (so the Hub cache,
``HF_HUB_OFFLINE`` and ``HF_ENDPOINT`` work as usual); the token is read from the environment variable
named by ``token_env`` and is never logged or stored.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from .base import Item, SourceError, SourceUnavailable, slug_id, unique_sorted
from .extract import ARCHIVE_SUFFIXES, Limits, safe_extract
from .folder import extensions, has_ext, hidden, resolve, strip_ext
from .metalist import as_text, lookup

log = logging.getLogger(__name__)
T = TypeVar("T")

BASE_DELAY = 2.0  # seconds before the 2nd attempt; doubles after each failure
MAX_DELAY = 60.0
RETRY_STATUS = (408, 429)  # plus every 5xx


def _label(source: dict) -> str:
    return f"source {source.get('name')!r}"


def _repo(source: dict) -> str:
    if not source.get("repo"):
        raise SourceError(f"{_label(source)}: set `repo` (the Hub repo id, e.g. org/name)")
    return source["repo"]


def hub_archives(
    repo: str,
    *,
    repo_type: str = "dataset",
    revision: str = "main",
    prefix: str = "",
    token_env: str = "HF_TOKEN",
) -> tuple[str, list[str]]:
    """The resolved commit and the archive files (tar, tar.gz, zip...) of a Hub repo at
    ``revision`` under ``prefix``, sorted: what ``clipsift shards`` writes into a shards_file."""
    from huggingface_hub import HfApi

    info = HfApi().repo_info(
        repo,
        repo_type=repo_type,
        revision=revision,
        token=os.environ.get(token_env) or None,
    )
    names = [s.rfilename for s in info.siblings or []]
    archives = sorted(
        n for n in names if n.startswith(prefix) and n.lower().endswith(ARCHIVE_SUFFIXES)
    )
    return info.sha, archives


def list_archives(source: dict, *, root: Path) -> list[str]:
    """Archive paths inside the repo, from ``shards`` or ``shards_file`` (no network)."""
    _repo(source)
    label, shards, shards_file = _label(source), source.get("shards"), source.get("shards_file")
    if bool(shards) == bool(shards_file):
        raise SourceError(
            f"{label}: set exactly one of `shards` (a list) or `shards_file` (a text file)"
        )
    if shards_file:
        path = resolve(shards_file, root)
        if not path.is_file():
            raise SourceError(f"{label}: shards_file {path} does not exist; fix `shards_file`")
        shards = [line.strip() for line in path.read_text(encoding="utf-8-sig").splitlines()]
        shards = [s for s in shards if s and not s.startswith("#")]
        if not shards:
            raise SourceError(f"{label}: shards_file {path} lists no archives")
    out: list[str] = []
    for entry in shards:
        parts = str(entry).replace("\\", "/").split("/")
        if str(entry).startswith("/") or ".." in parts:
            raise SourceError(
                f"{label}: archive {entry!r} must be a path inside the repo (relative, no '..')"
            )
        name = "/".join(p for p in parts if p not in ("", "."))
        if name not in out:  # a repeated archive would be two shards with the same name
            out.append(name)
    return out


def _network_errors() -> tuple[type[BaseException], ...]:
    from huggingface_hub import errors

    errs: list = [ConnectionError, TimeoutError]
    if hasattr(errors, "XetDownloadError"):
        errs.append(errors.XetDownloadError)
    try:  # the HTTP client of huggingface_hub >= 1.0 (httpx2 in recent versions)
        import httpx2 as httpx
    except ImportError:
        try:
            import httpx
        except ImportError:
            httpx = None
    if httpx is not None:
        errs += [httpx.TimeoutException, httpx.NetworkError, httpx.RemoteProtocolError]
    try:  # huggingface_hub < 1.0 used requests
        import requests

        errs += [requests.ConnectionError, requests.Timeout]
    except ImportError:
        pass
    return tuple(errs)


def _chain(exc: BaseException):
    while exc is not None:
        yield exc
        exc = exc.__cause__  # how huggingface_hub wraps errors (raise ... from ...)


def is_retryable(exc: BaseException) -> bool:
    """Network failures, HTTP 408/429/5xx: yes. Offline mode, 401/403/404, missing files: no.

    huggingface_hub wraps a failed metadata request in LocalEntryNotFoundError, so the cause chain decides.
    """
    from huggingface_hub import errors

    network = _network_errors()
    for e in _chain(exc):
        if isinstance(e, errors.OfflineModeIsEnabled):
            return False
        if isinstance(e, errors.HfHubHTTPError):
            status = getattr(getattr(e, "response", None), "status_code", None) or 0
            return status in RETRY_STATUS or status >= 500
        if isinstance(e, network):
            return True
    return False


def with_retries(
    fn: Callable[[], T],
    retries: int,
    base_delay: float = BASE_DELAY,
    *,
    retryable: Callable[[BaseException], bool] = is_retryable,
    sleep: Callable[[float], None] = time.sleep,
) -> T:
    """``fn()``, called up to ``retries`` times while it raises a retryable error; backoff doubles each time."""
    attempts = max(1, int(retries))
    for attempt in range(1, attempts + 1):
        try:
            return fn()
        except Exception as e:
            if attempt == attempts or not retryable(e):
                raise
            delay = min(MAX_DELAY, base_delay * 2 ** (attempt - 1))
            log.warning(
                "attempt %d/%d failed (%s); retrying in %.1fs",
                attempt,
                attempts,
                type(e).__name__,
                delay,
            )
            sleep(delay)
    raise AssertionError("unreachable")


def _explain(e: Exception, where: str, token_env: str, attempts: int) -> str:
    from huggingface_hub import constants, errors

    status = getattr(getattr(e, "response", None), "status_code", None)
    if isinstance(e, errors.GatedRepoError):
        return f"{where}: the repo is gated: accept its terms on the Hub and put a token with access in ${token_env}"
    if isinstance(e, errors.RepositoryNotFoundError):
        return (
            f"{where}: repo not found or not accessible; check `repo` and `repo_type` "
            f"(a private repo needs a token in ${token_env})"
        )
    if isinstance(e, errors.RevisionNotFoundError):
        return f"{where}: revision not found in the repo; check `revision`"
    if isinstance(e, errors.LocalEntryNotFoundError):
        if constants.is_offline_mode() or any(
            isinstance(c, errors.OfflineModeIsEnabled) for c in _chain(e)
        ):
            return (
                f"{where}: not in the local Hub cache and offline mode is on (HF_HUB_OFFLINE); "
                "check the archive name, or download it first"
            )
        cause = e.__cause__ or e
        return f"{where}: not in the local Hub cache and the Hub could not be reached ({attempts} attempt(s)): {cause}"
    if isinstance(e, errors.EntryNotFoundError) or status == 404:
        return f"{where}: no such file in the repo; check `shards` / `shards_file`"
    if status in (401, 403):
        return f"{where}: access denied (HTTP {status}); put a valid token in ${token_env}"
    if isinstance(e, errors.HFValidationError):
        return f"{where}: invalid repo id, revision or file name: {e}"
    return f"{where}: download failed after {attempts} attempt(s): {type(e).__name__}: {e}"


def _sidecar_caption(dest: Path, stem: str, members: set[str], caption_key: str) -> str | None:
    """webdataset-style caption: ``{stem}.txt`` (whole text) or ``{stem}.json`` (its ``caption_key``)."""
    if f"{stem}.txt" in members:
        return as_text((dest / f"{stem}.txt").read_text(encoding="utf-8", errors="replace").strip())
    if f"{stem}.json" in members:
        try:
            meta = json.loads((dest / f"{stem}.json").read_text(encoding="utf-8"))
        except (
            ValueError
        ) as e:  # one bad sidecar should not lose the shard: the video stays, uncaptioned
            log.warning("%s.json: not valid JSON (%s): no caption", stem, e)
            return None
        if isinstance(meta, dict):
            return as_text(lookup(meta, caption_key))  # missing key: None
    return None


def fetch_archive(source: dict, archive: str, dest: Path) -> list[Item]:
    """Download one archive (Hub cache, retries), extract it safely into ``dest``, return its video items."""
    from huggingface_hub import hf_hub_download

    repo = _repo(source)
    revision = source.get("revision") or "main"
    repo_type = source.get("repo_type") or "dataset"
    token_env = source.get("token_env") or "HF_TOKEN"
    retries = int(source.get("retries") or 5)
    cache_dir = source.get("cache_dir")
    where = f"{_label(source)}: {archive} in {repo_type} repo {repo}@{revision}"

    def download() -> str:
        return hf_hub_download(
            repo_id=repo,
            filename=archive,
            repo_type=repo_type,
            revision=revision,
            token=os.environ.get(token_env) or None,  # None: huggingface_hub's own token lookup
            cache_dir=os.path.expanduser(cache_dir) if cache_dir else None,
        )

    try:
        local = with_retries(download, retries, BASE_DELAY)
    except Exception as e:
        raise SourceUnavailable(_explain(e, where, token_env, retries)) from e

    mib = 1024 * 1024
    limits = Limits(
        max_member_bytes=int(float(source.get("max_member_mb") or 4096) * mib),
        max_total_bytes=int(float(source.get("max_extracted_mb") or 65536) * mib),
        max_ratio=float(source.get("max_ratio") or 20),
    )
    dest = Path(os.path.abspath(dest))
    members = safe_extract(local, dest, limits=limits)
    names, exts = set(members), extensions(source)
    caption_key = source.get("caption_key") or "caption"
    prefix = f"hf://{repo_type}s/{repo}@{revision}/{archive}"
    items = []
    for member in members:
        # skipped as a folder source skips them: hidden files, in hidden folders or __MACOSX
        if not has_ext(member, exts) or any(hidden(p) for p in member.split("/")):
            continue
        stem = strip_ext(member)
        items.append(
            Item(
                id=slug_id(stem),
                uri=f"{prefix}#{member}",
                path=str(dest / member),
                caption=_sidecar_caption(dest, stem, names, caption_key),
                extra={"archive": archive, "member": member},
            )
        )
    return unique_sorted(items)  # a.mp4 and a.mkv share a stem
