"""Captions from remote APIs: OpenAI-compatible chat completions, or a file-upload endpoint.

- ``api`` (chat completions, OpenRouter by default): ``POST {base_url}/chat/completions`` with the
  system and user prompts and the clip's frames as base64 JPEG ``image_url`` parts (``api.frames``
  of them, longer side ``api.max_side``), or text only with ``api.frames: 0``.
- ``api_upload``: ``POST`` the clip itself as a multipart file (``api.upload.file_field``) with
  extra form fields; the caption is read from the JSON answer at a dotted path.

Both send at most ``api.concurrency`` requests at a time through
:class:`clipsift.captioners.http.HttpClient` (timeouts, retries with backoff, the key from the
environment). A request that fails after its retries gives the clip an error in its record; 401
and 403 stop the whole run at once with a message that names the environment variable to fix.
Every message that leaves the client goes through ``redact``.
"""

from __future__ import annotations

import base64
import logging
import os
import tempfile
import threading
from concurrent.futures import CancelledError, ThreadPoolExecutor, as_completed
from pathlib import Path

from ..config import with_defaults
from ..io.decode import VideoError, open_video, reason
from ..models.frames import timed_clip_frames
from .base import ClipJob, Result, Timer, fit_side, format_prompt, prompt_hash, sample_frames
from .http import ApiError, AuthError, Cancelled, HttpClient, dotted

log = logging.getLogger(__name__)


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
    samples_frames = True  # frames by :func:`sample_frames` (part of a variable-rate clip's key)

    def __init__(self, cfg: dict):
        self.cfg = cfg = with_defaults("caption", cfg)
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
        workers = max(1, int(self.api["concurrency"]))
        auth_error = None
        pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="caption-api")
        try:
            futures = {pool.submit(self._safe, job, stop): job for job in jobs}
            for fut in as_completed(futures):
                job = futures[fut]
                try:
                    result = fut.result()
                except (Cancelled, CancelledError):
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
            except (AuthError, Cancelled):
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
        n = int(self.api["frames"])
        if n <= 0:
            return [], {"n": 0, "times": [], "size": None}
        plan = sample_frames(job, rate=1e9, max_frames=n)
        size = fit_side(int(job.width), int(job.height), int(self.api["max_side"]))
        images, times = timed_clip_frames(job, plan.indices, size=size)
        return images, plan.record(job, times) | {"size": list(size)}

    def payload(self, job: ClipJob, images) -> dict:
        quality = int(self.api["jpeg_quality"])
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
            "top_p": float(self.cfg["top_p"]),
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
    samples_frames = False  # it sends the clip's file: the cache key need not name a sampling

    @property
    def up(self) -> dict:
        return self.api["upload"]

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
            "file_field": up["file_field"],
            "response_field": up["response_field"],
            "cut": up["cut"],
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
        """The file to send: the split's clip file (``split.materialize``) where it holds just
        the clip's frames, or with ``cut: copy``; else the clip cut from its source as ``cut``
        says. A stream copy starts at the keyframe before the clip, often in the shot before
        it: sent as it was, the caption described that shot too."""
        made = job.path and job.path != job.source_path and os.path.exists(job.path)
        if made and (self.up["cut"] == "copy" or _frames_in(job.path) == job.n_frames):
            return Path(job.path)
        from ..split.clips import copy_or_reencode, reencode

        dest = tmp / f"{job.clip_id}.mp4"
        cut = copy_or_reencode if self.up["cut"] == "copy" else reencode
        variable = job.frame_rate_mode == "variable"  # each frame at its own time
        cut(job.source_path, dest, job.start, job.end, crf=23, preset="veryfast", variable=variable,
            fps=job.fps)  # fmt: skip
        return dest

    def one(self, job: ClipJob, stop) -> Result:
        with tempfile.TemporaryDirectory(prefix="clipsift-upload-") as tmp:
            try:
                path = self.clip_file(job, Path(tmp))
                blob = path.read_bytes()
            except Exception as exc:  # noqa: BLE001
                return Result(error=f"clip file: {reason(exc)}")
        field = self.up["file_field"]
        mime = self.up["mime"]

        def files():
            return {field: (f"{job.clip_id}.mp4", blob, mime)}

        data = self.client.post(self.url(), data=self.form(job), files=files, stop=stop)
        text = dotted(data, self.up["response_field"])
        info = {"n": None, "times": None, "size": None, "file_bytes": len(blob)}
        if not isinstance(text, str) or not text.strip():
            field_name = self.up["response_field"]
            return Result(frames=info, error=f"no caption at {field_name!r} in the answer")
        tokens = {}
        if self.up.get("tokens_field"):
            tokens = {"output": dotted(data, self.up["tokens_field"])}
        return Result(caption=text, frames=info, tokens=tokens, revision=self.identity()["model"])


def _frames_in(path: str) -> int | None:
    """Frames (video packets) of an MP4 clip file; None where it cannot be read."""
    import av

    try:
        with open_video(path) as (container, stream):
            return stream.frames or sum(1 for p in container.demux(stream) if p.size)
    except (VideoError, av.FFmpegError):
        return None
