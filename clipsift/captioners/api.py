"""Captions from remote APIs: OpenAI-compatible chat completions, or a file-upload endpoint.

- ``api`` (chat completions, OpenRouter by default): ``POST {base_url}/chat/completions`` with the
  system and user prompts and the clip's frames as base64 JPEG ``image_url`` parts (``api.frames``
  of them, longer side ``api.max_side``), or text only with ``api.frames: 0``.
- ``api_upload``: ``POST`` the clip itself as a multipart file (``api.upload.file_field``) with
  extra form fields; the caption is read from the JSON answer at a dotted path.

Both send at most ``api.concurrency`` requests at a time, give each ``api.timeout`` seconds in
all (connecting, waiting and reading the whole answer: a server that trickles its answer a byte
at a time never trips a per-read timeout, so the body is read against a deadline), and
retry 429, 5xx, timeouts and dropped connections with exponential backoff and full jitter,
waiting what ``Retry-After`` asks where the server says. Other 4xx answers are not retried: the
clip gets the error in its record. 401 and 403 stop the whole run at once with a message that
names the environment variable to fix (a wrong key would fail every clip).

Secrets: the key is read from the environment (``api.key_env``, else ``OPENROUTER_API_KEY``, else
``OPENAI_API_KEY``) into the request header and nowhere else; every message that leaves this
module goes through ``redact``.
"""

from __future__ import annotations

import base64
import email.utils
import logging
import os
import random
import tempfile
import threading
import time
from concurrent.futures import CancelledError, ThreadPoolExecutor, as_completed
from pathlib import Path
from urllib.parse import urlsplit

from ..io.decode import reason
from ..models.frames import clip_frames
from ..redaction import redact
from .base import ClipJob, Result, Timer, fit_side, format_prompt, prompt_hash, sample_frames

log = logging.getLogger(__name__)

DEFAULT_KEY_ENVS = ("OPENROUTER_API_KEY", "OPENAI_API_KEY")
RETRY_STATUS = {408, 409, 425, 429, 500, 502, 503, 504, 520, 521, 522, 523, 524, 529}


class AuthError(RuntimeError):
    """The API refused the credentials (401/403): the run stops instead of retrying."""


class ApiError(Exception):
    """One request failed (after retries where retrying makes sense)."""


class _Cancelled(Exception):
    pass


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
        self.api = api
        self._key, self.key_env = read_key(api)
        self.timeout = float(api.get("timeout", 120))
        self.retries = int(api.get("retries", 5))
        self.backoff = float(api.get("backoff", 1.0))
        self.backoff_max = float(api.get("backoff_max", 60.0))
        self.max_retry_after = float(api.get("max_retry_after", 300.0))
        self.headers = {str(k): str(v) for k, v in (api.get("headers") or {}).items()}
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
            name = self.api.get("auth_header", "Authorization")
            scheme = self.api.get("auth_scheme", "Bearer")
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
                raise _Cancelled()
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
                    raise _Cancelled()
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


def jpeg_data_url(rgb, quality: int) -> str:
    import cv2

    ok, buf = cv2.imencode(
        ".jpg", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, int(quality)]
    )
    if not ok:
        raise ValueError("JPEG encoding failed")
    return "data:image/jpeg;base64," + base64.b64encode(buf.tobytes()).decode("ascii")


class _ApiBase:
    provider = "api"

    def __init__(self, cfg: dict):
        self.cfg = cfg
        self.api = cfg["api"]
        self.system = cfg["prompts"]["system"]
        self.user = cfg["prompts"]["user"]
        self.client: HttpClient | None = None
        self.inputs_path = self.provider

    def prompt_hash(self) -> str:
        return prompt_hash(self.system, self.user)

    def load(self) -> None:
        self.client = HttpClient(self.api)

    def caption(self, jobs: list[ClipJob], on_result) -> None:
        """Caption ``jobs`` with at most ``api.concurrency`` requests in flight."""
        stop = threading.Event()
        workers = max(1, int(self.api.get("concurrency", 4)))
        auth_error = None
        pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="caption-api")
        try:
            futures = {pool.submit(self._safe, job, stop): job for job in jobs}
            for fut in as_completed(futures):
                job = futures[fut]
                try:
                    result = fut.result()
                except (_Cancelled, CancelledError):
                    continue
                except AuthError as exc:
                    if auth_error is None:
                        auth_error = exc
                        stop.set()
                        for f in futures:
                            f.cancel()
                    continue
                on_result(job, result)
        finally:
            stop.set()
            pool.shutdown(wait=True, cancel_futures=True)
        if auth_error is not None:
            raise auth_error
        log.info("API: %(requests)d requests, %(retries)d retries", self.client.stats)

    def _safe(self, job: ClipJob, stop) -> Result:
        with Timer() as t:
            try:
                result = self.one(job, stop)
            except (AuthError, _Cancelled):
                raise
            except ApiError as exc:
                result = Result(error=self.client.redact(str(exc)))
            except Exception as exc:  # noqa: BLE001 - failures are data
                result = Result(error=self.client.redact(f"{type(exc).__name__}: {reason(exc)}"))
        result.latency = round(t.seconds, 4)
        return result


def api_identity(api: dict) -> dict:
    """The model record of an API caller: the API names the model it ran, not a revision."""
    return {
        "provider": "api",
        "model": api["model"],
        "base_url": api["base_url"].rstrip("/"),
        "revision": None,
        "resolved_revision": api["model"],
    }


class ApiCaptioner(_ApiBase):
    """OpenAI-compatible chat completions (OpenRouter, OpenAI, vLLM / SGLang servers, ...)."""

    provider = "api"

    def identity(self) -> dict:
        return api_identity(self.api)

    def settings(self) -> dict:
        keys = ("max_new_tokens", "temperature", "top_p", "seed")
        out = {k: self.cfg.get(k) for k in keys}
        if self.cfg.get("top_k") is not None:  # only when set: older cache keys stay valid
            out["top_k"] = self.cfg["top_k"]
        out.update({k: self.api.get(k) for k in ("frames", "max_side", "jpeg_quality", "detail")})
        out["extra_body"] = self.api.get("extra_body") or {}
        return out

    def frames(self, job: ClipJob):
        n = int(self.api.get("frames", 8))
        if n <= 0:
            return [], {"n": 0, "times": [], "size": None}
        plan = sample_frames(job, rate=1e9, max_frames=n)
        size = fit_side(int(job.width), int(job.height), int(self.api.get("max_side", 512)))
        images = clip_frames(job, plan.times, size=size)
        info = {"n": len(images), "times": [round(t - job.start, 3) for t in plan.times]}
        info["size"] = list(size)
        return images, info

    def payload(self, job: ClipJob, images) -> dict:
        quality = int(self.api.get("jpeg_quality", 85))
        parts = [{"type": "text", "text": format_prompt(self.user, job)}]
        for img in images:
            url = {"url": jpeg_data_url(img, quality)}
            if self.api.get("detail"):
                url["detail"] = self.api["detail"]
            parts.append({"type": "image_url", "image_url": url})
        messages = []
        if self.system:
            messages.append({"role": "system", "content": self.system})
        messages.append({"role": "user", "content": parts if images else parts[0]["text"]})
        body = {
            "model": self.api["model"],
            "messages": messages,
            "max_tokens": int(self.cfg["max_new_tokens"]),
            "temperature": float(self.cfg.get("temperature") or 0.0),
            "top_p": float(self.cfg.get("top_p", 1.0)),
        }
        if self.cfg.get("seed") is not None:
            body["seed"] = int(self.cfg["seed"])
        if self.cfg.get("top_k") is not None:
            body["top_k"] = int(self.cfg["top_k"])
        body.update(self.api.get("extra_body") or {})
        return body

    def one(self, job: ClipJob, stop) -> Result:
        try:
            images, info = self.frames(job)
        except Exception as exc:  # noqa: BLE001
            return Result(error=f"decode: {reason(exc)}")
        url = self.api["base_url"].rstrip("/") + "/chat/completions"
        data = self.client.post(url, json=self.payload(job, images), stop=stop)
        if not isinstance(data, dict):  # valid JSON, but not a chat completion
            return Result(frames=info, error=f"unexpected answer: {str(data)[:200]!r}")
        if isinstance(data.get("error"), dict):  # some gateways answer 200 with an error
            raise ApiError(f"API error: {data['error'].get('message', data['error'])}")
        content = dotted(data, "choices.0.message.content")
        if isinstance(content, list):
            content = "".join(str(p.get("text", "")) for p in content if isinstance(p, dict))
        elif content is not None and not isinstance(content, str):
            return Result(frames=info, error=f"unexpected content: {str(content)[:200]!r}")
        usage = data.get("usage") if isinstance(data.get("usage"), dict) else {}
        if not content:
            finish = dotted(data, "choices.0.finish_reason")
            return Result(frames=info, error=f"empty answer (finish_reason {finish})")
        return Result(
            caption=content,
            frames=info,
            tokens={"prompt": usage.get("prompt_tokens"), "output": usage.get("completion_tokens")},
            revision=data.get("model") or self.api["model"],
        )


class UploadCaptioner(_ApiBase):
    """A file-upload endpoint: the clip as a multipart file, the caption at a dotted path."""

    provider = "api_upload"

    @property
    def up(self) -> dict:
        return self.api.get("upload") or {}

    def url(self) -> str:
        url = self.up.get("url") or ""
        if url.startswith(("http://", "https://")):
            return url
        return self.api["base_url"].rstrip("/") + "/" + url.lstrip("/")

    def identity(self) -> dict:
        name = self.api.get("model") or self.url()
        return {
            "provider": "api_upload",
            "model": name,
            "base_url": self.url(),
            "revision": None,
            "resolved_revision": name,
        }

    def settings(self) -> dict:
        up = self.up
        return {
            "fields": up.get("fields") or {},
            "file_field": up.get("file_field", "file"),
            "response_field": up.get("response_field", "caption"),
            "cut": up.get("cut", "reencode"),
        }

    def form(self, job: ClipJob) -> dict:
        fields = {}
        for k, v in (self.up.get("fields") or {}).items():
            v = str(v).replace("{prompt}", format_prompt(self.user, job))
            fields[str(k)] = v.replace("{system}", self.system or "")
        if self.api.get("model") and "model" not in fields:
            fields["model"] = str(self.api["model"])
        return fields

    def clip_file(self, job: ClipJob, tmp: Path) -> Path:
        if job.path and job.path != job.source_path and os.path.exists(job.path):
            return Path(job.path)  # materialized clip (split.materialize copy/reencode)
        from ..split.clips import reencode, stream_copy

        dest = tmp / f"{job.clip_id}.mp4"
        if self.up.get("cut", "reencode") == "copy":
            stream_copy(job.source_path, dest, job.start, job.end)
        else:
            reencode(job.source_path, dest, job.start, job.end, crf=23, preset="veryfast")
        return dest

    def one(self, job: ClipJob, stop) -> Result:
        with tempfile.TemporaryDirectory(prefix="clipsift-upload-") as tmp:
            try:
                path = self.clip_file(job, Path(tmp))
                blob = path.read_bytes()
            except Exception as exc:  # noqa: BLE001
                return Result(error=f"clip file: {reason(exc)}")
        field = self.up.get("file_field", "file")
        mime = self.up.get("mime", "video/mp4")

        def files():
            return {field: (f"{job.clip_id}.mp4", blob, mime)}

        data = self.client.post(self.url(), data=self.form(job), files=files, stop=stop)
        text = dotted(data, self.up.get("response_field", "caption"))
        info = {"n": None, "times": None, "size": None, "file_bytes": len(blob)}
        if not isinstance(text, str) or not text.strip():
            field_name = self.up.get("response_field", "caption")
            return Result(frames=info, error=f"no caption at {field_name!r} in the answer")
        tokens = {}
        if self.up.get("tokens_field"):
            tokens = {"output": dotted(data, self.up["tokens_field"])}
        return Result(caption=text, frames=info, tokens=tokens, revision=self.identity()["model"])
