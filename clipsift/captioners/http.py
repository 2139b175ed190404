"""HTTP for the API captioners and the caption rewrite: one POST with bounded retries.

Each request gets ``api.timeout`` seconds in all (connecting, waiting and reading the whole
answer: a server that trickles its answer a byte at a time never trips a per-read timeout, so the
body is read against a deadline). 429, 5xx, timeouts and dropped connections are retried with
exponential backoff and full jitter, waiting what ``Retry-After`` asks where the server says.
Other 4xx answers are not retried (:class:`ApiError`); 401 and 403 raise :class:`AuthError`,
which stops the run (a wrong key would fail every clip).

The key is read from the environment (``api.key_env``, else ``OPENROUTER_API_KEY``, else
``OPENAI_API_KEY``) into the request header and nowhere else.
"""

from __future__ import annotations

import email.utils
import logging
import os
import random
import threading
import time
from urllib.parse import urlsplit

from ..config import with_defaults
from ..redaction import redact

log = logging.getLogger(__name__)

DEFAULT_KEY_ENVS = ("OPENROUTER_API_KEY", "OPENAI_API_KEY")
RETRY_STATUS = {408, 409, 425, 429, 500, 502, 503, 504, 520, 521, 522, 523, 524, 529}


class AuthError(RuntimeError):
    """The API refused the credentials (401/403): the run stops instead of retrying."""


class ApiError(Exception):
    """One request failed (after retries where retrying makes sense)."""


class Cancelled(Exception):
    """The run stopped (an AuthError elsewhere) while this request waited to retry."""


def key_envs(api: dict) -> list[str]:
    named = api.get("key_env")
    return [named] if named else list(DEFAULT_KEY_ENVS)


def read_key(api: dict) -> tuple[str | None, str]:
    """``(key, name of the variable)``; the key is None when none of the variables is set."""
    names = key_envs(api)
    for name in names:
        value = os.environ.get(name)
        if value:
            return value.strip(), name
    return None, " or ".join(names)


def retry_after_seconds(value: str | None) -> float | None:
    """``Retry-After`` as seconds: a number, or an HTTP date."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


class HttpClient:
    """POST with bounded retries; one ``requests.Session`` per thread."""

    def __init__(self, api: dict):
        import requests

        self.requests = requests
        self.api = api = with_defaults("caption.api", api)
        self._key, self.key_env = read_key(api)
        self.timeout = float(api["timeout"])
        self.retries = int(api["retries"])
        self.backoff = float(api["backoff"])
        self.backoff_max = float(api["backoff_max"])
        self.max_retry_after = float(api["max_retry_after"])
        self.headers = {str(k): str(v) for k, v in api["headers"].items()}
        if api.get("referer"):
            self.headers["HTTP-Referer"] = str(api["referer"])
        if api.get("title"):
            self.headers["X-Title"] = str(api["title"])
        self._local = threading.local()
        self.stats = {"requests": 0, "retries": 0}
        self._stats_lock = threading.Lock()
        if self._key is None:
            log.warning("no API key in $%s: requests go without Authorization", self.key_env)

    def _session(self):
        s = getattr(self._local, "session", None)
        if s is None:
            s = self._local.session = self.requests.Session()
        return s

    def _headers(self) -> dict:
        h = dict(self.headers)
        if self._key:
            name, scheme = self.api["auth_header"], self.api["auth_scheme"]
            h[name] = f"{scheme} {self._key}" if scheme else self._key
        return h

    def redact(self, text: str) -> str:
        return redact(text, [self._key] if self._key else [])

    def delay(self, attempt: int, retry_after: float | None) -> float:
        if retry_after is not None:
            return min(retry_after, self.max_retry_after)
        cap = min(self.backoff_max, self.backoff * 2**attempt)
        return random.uniform(cap / 2, cap)  # jitter: clients that failed together spread out

    def _read_by(self, r, deadline: float) -> None:
        """Read the answer's body in chunks, giving up at ``deadline`` (``requests.Timeout``);
        the body is then the response's content, as without streaming."""
        chunks = []
        try:
            for chunk in r.iter_content(64 << 10):
                chunks.append(chunk)
                if time.monotonic() > deadline:
                    raise self.requests.Timeout("answer not complete within the deadline")
        finally:
            r.close()
        r._content = b"".join(chunks)  # what r.json() and r.text read (requests' own field)

    def post(self, url: str, *, json=None, data=None, files=None, stop=None) -> dict:
        """The JSON answer; raises ``AuthError`` (401/403) or ``ApiError`` (after retries)."""
        rq = self.requests
        last = "no attempt"
        host = urlsplit(url).netloc
        for attempt in range(self.retries + 1):
            if stop is not None and stop.is_set():
                raise Cancelled()
            retry_after = None
            with self._stats_lock:
                self.stats["requests"] += 1
                if attempt:
                    self.stats["retries"] += 1
            try:
                deadline = time.monotonic() + self.timeout
                r = self._session().post(
                    url,
                    json=json,
                    data=data,
                    files=files() if callable(files) else files,
                    headers=self._headers(),
                    timeout=self.timeout,
                    stream=True,
                )
                self._read_by(r, deadline)
            except rq.Timeout:
                last = f"timed out after {self.timeout:g} s"
            except (rq.ConnectionError, rq.exceptions.ChunkedEncodingError) as exc:
                last = f"connection failed: {type(exc).__name__}"
            else:
                if r.status_code in (401, 403):
                    raise AuthError(
                        f"{host} answered HTTP {r.status_code} ({r.reason}): the API key was "
                        f"refused or lacks access. Set a valid key in ${self.key_env} (or name "
                        "another variable in caption.api.key_env) and run again; the captions "
                        "made so far are kept in the resume cache."
                    )
                if r.status_code < 400:
                    try:
                        return r.json()
                    except ValueError:
                        raise ApiError(
                            f"HTTP {r.status_code}: answer is not JSON: "
                            f"{self.redact(r.text[:200])!r}"
                        ) from None
                last = f"HTTP {r.status_code}: {self.redact(_excerpt(r))}"
                if r.status_code not in RETRY_STATUS:
                    raise ApiError(last)
                retry_after = retry_after_seconds(r.headers.get("Retry-After"))
            if attempt == self.retries:
                break
            wait = self.delay(attempt, retry_after)
            log.info("%s: %s; retry %d/%d in %.2f s", host, last, attempt + 1, self.retries, wait)
            if stop is not None:
                if stop.wait(wait):
                    raise Cancelled()
            else:
                time.sleep(wait)
        raise ApiError(f"{last} (gave up after {self.retries + 1} attempts)")


def _excerpt(r) -> str:
    try:
        body = r.json()
        if isinstance(body, dict) and isinstance(body.get("error"), dict):
            return str(body["error"].get("message", body["error"]))[:300]
        return str(body)[:300]
    except ValueError:
        return (r.text or r.reason or "")[:300]


def dotted(obj, path: str):
    """``obj`` at a dotted path (``choices.0.message.content``); None where it is missing."""
    for part in path.split("."):
        if isinstance(obj, list):
            try:
                obj = obj[int(part)]
            except (ValueError, IndexError):
                return None
        elif isinstance(obj, dict):
            obj = obj.get(part)
        else:
            return None
    return obj
