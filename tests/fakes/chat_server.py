"""A real HTTP server on 127.0.0.1 that answers like an OpenAI-compatible API (for tests).

``FakeChatServer`` runs ``http.server.ThreadingHTTPServer`` in a thread. It answers
``POST .../chat/completions`` with a chat-completions JSON and ``POST .../upload`` (any other
path) with ``{"result": {"text": ...}}``, and can be told what to do with each request:

- ``server.script``: a list of actions taken by the next requests in order (then ``default``):
  ``"ok"``, ``"429"`` (with ``Retry-After: {retry_after}``), ``"500"``, ``"503"``, ``"401"``,
  ``"403"``, ``"400"`` (echoes the request's headers in the error, like careless servers do),
  ``"slow"`` (answers after ``slow_seconds``), ``"hang"`` (never answers until ``release()``),
  ``"list"`` (200 with a JSON list, not an object), ``"trickle"`` (sends the headers at once, then the body a byte every ``trickle_seconds``, so
  that no single read waits long);
- ``server.hang_after = N``: requests after the first N successful answers hang;
- ``server.delay``: seconds every answer takes (to measure concurrency).

It records every request (path, headers, JSON body or multipart parts, arrival time) and the
most requests it had in flight at once.
"""

from __future__ import annotations

import contextlib
import email.parser
import email.policy
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class FakeChatServer:
    def __init__(self, *, default: str = "ok", delay: float = 0.0, retry_after: str = "1"):
        self.default = default
        self.delay = delay
        self.retry_after = retry_after
        self.slow_seconds = 2.0
        self.trickle_seconds = 0.2
        self.script: list[str] = []
        self.hang_after: int | None = None
        self.requests: list[dict] = []
        self.in_flight = 0
        self.max_in_flight = 0
        self.ok_count = 0
        self.caption = "The video shows a red square moving across a grey background."
        self._lock = threading.Lock()
        self._release = threading.Event()
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.release()
        self.httpd.shutdown()
        self.httpd.server_close()

    def release(self) -> None:
        self._release.set()

    def count(self, path_part: str = "") -> int:
        return sum(1 for r in self.requests if path_part in r["path"])

    def _next_action(self) -> str:
        with self._lock:
            if self.script:
                return self.script.pop(0)
            if self.hang_after is not None and self.ok_count >= self.hang_after:
                return "hang"
            return self.default

    def _handler(self):
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):  # keep test output quiet
                pass

            def do_POST(self):  # noqa: N802 - http.server's naming
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length)
                req = {"path": self.path, "headers": dict(self.headers.items()), "t": time.time()}
                ctype = self.headers.get("Content-Type", "")
                if ctype.startswith("application/json"):
                    req["json"] = json.loads(raw)
                elif ctype.startswith("multipart/form-data"):
                    req["parts"] = _multipart(ctype, raw)
                with server._lock:
                    server.requests.append(req)
                    server.in_flight += 1
                    server.max_in_flight = max(server.max_in_flight, server.in_flight)
                try:
                    self._answer(server._next_action(), req)
                finally:
                    with server._lock:
                        server.in_flight -= 1

            def _send(self, code: int, body: dict, headers: dict | None = None):
                data = json.dumps(body).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                for k, v in (headers or {}).items():
                    self.send_header(k, v)
                self.end_headers()
                with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                    self.wfile.write(data)

            def _answer(self, action: str, req: dict):
                if action == "hang":
                    server._release.wait()
                    return self._send(503, {"error": {"message": "released"}})
                if action == "slow":
                    time.sleep(server.slow_seconds)
                    action = "ok"
                if action == "list":
                    return self._send(200, ["not", "a", "completion"])
                if action == "trickle":
                    data = json.dumps({"choices": [{"message": {"content": "late"}}]}).encode()
                    self.send_response(200)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                        for i in range(len(data)):
                            self.wfile.write(data[i : i + 1])
                            self.wfile.flush()
                            time.sleep(server.trickle_seconds)
                    return None
                if server.delay:
                    time.sleep(server.delay)
                if action == "429":
                    return self._send(
                        429,
                        {"error": {"message": "rate limited"}},
                        {"Retry-After": server.retry_after},
                    )
                if action in ("500", "503"):
                    return self._send(int(action), {"error": {"message": "upstream error"}})
                if action in ("401", "403"):
                    return self._send(int(action), {"error": {"message": "invalid key"}})
                if action == "400":
                    echo = json.dumps(req["headers"])
                    return self._send(400, {"error": {"message": f"bad request: {echo}"}})
                with server._lock:
                    server.ok_count += 1
                if "chat/completions" in self.path:
                    model = (req.get("json") or {}).get("model", "fake")
                    return self._send(
                        200,
                        {
                            "id": f"cmpl-{server.ok_count}",
                            "object": "chat.completion",
                            "model": f"{model}-2025-01-01",
                            "choices": [
                                {
                                    "index": 0,
                                    "message": {"role": "assistant", "content": server.caption},
                                    "finish_reason": "stop",
                                }
                            ],
                            "usage": {"prompt_tokens": 1234, "completion_tokens": 17},
                        },
                    )
                return self._send(200, {"result": {"text": server.caption, "tokens": 17}})

        return Handler


def _multipart(ctype: str, raw: bytes) -> dict:
    """Parts of a multipart/form-data body: name -> {"filename", "content_type", "data"}."""
    msg = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
        f"Content-Type: {ctype}\r\n\r\n".encode() + raw
    )
    parts = {}
    for part in msg.iter_parts():
        name = part.get_param("name", header="content-disposition")
        parts[name] = {
            "filename": part.get_filename(),
            "content_type": part.get_content_type(),
            "data": part.get_payload(decode=True),
        }
    return parts
