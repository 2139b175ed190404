"""A stand-in for the Hugging Face Hub on 127.0.0.1, answering huggingface_hub's own requests.

``FakeHub`` runs ``http.server.ThreadingHTTPServer`` in a thread and keeps dataset repos in
memory. Point huggingface_hub at ``hub.url`` (``HF_ENDPOINT`` for a new process, or
``huggingface_hub.constants.ENDPOINT`` / ``HfApi(endpoint=...)`` in this one). It answers the
endpoints that ``HfApi.create_repo``, ``create_branch``, ``upload_folder`` (both the streamed
multi-commit pipeline of huggingface_hub 2.x and the one-commit ``create_commit`` path) and
``repo_info`` use, minimally, the way the Hub does (huggingface_hub 2.4's hf_api.py,
_commit_api.py, _upload_pipeline.py, lfs.py):

- ``POST /api/repos/create``: 200 ``{"url"}``, 409 when the repo exists;
- ``POST /api/validate-yaml``: parses the card's front matter (400 with ``errors`` if broken);
- ``POST /api/{type}s/{repo}/preupload/{rev}``: per file ``uploadMode`` (``regular``, or ``lfs``
  for names ending in ``lfs_suffixes``), ``shouldIgnore`` false and the ``oid`` of the file the
  branch holds (git blob sha1 for regular files, sha256 for LFS), which is how a re-run skips
  what is already committed;
- ``POST /api/{type}s/{repo}/commit/{rev}``: the NDJSON commit (``header``, ``file`` base64,
  ``lfsFile`` by oid, ``deletedFile``), applied to the branch; ``{"commitUrl", "commitOid"}``;
- ``POST /api/{type}s/{repo}/branch/{branch}`` and ``GET /api/{type}s/{repo}/revision/{rev}``;
- ``POST /{type}s/{repo}.git/info/lfs/objects/batch`` (basic transfer: an upload action per
  object the server lacks) and ``PUT /lfs/{oid}`` (the object, checked against its sha256).

- ``HEAD``/``GET /{type}s/{repo}/resolve/{rev}/{path}`` (what ``hf_hub_download`` asks): the file
  a branch holds, with ``X-Repo-Commit``, ``ETag`` and ``Content-Length`` (repos to download from
  are made with :meth:`FakeHub.add_repo`).

Not answered: Xet storage (the CAS protocol of hf_xet's Rust client). With hf_xet installed,
huggingface_hub 2.x sends every ``lfs`` file through Xet, so tests of that path keep
``lfs_suffixes`` empty (every file ``regular``, committed inline).

Every request is recorded (method, path, query, whether the token was sent); commits are kept
with their files. ``fail_commit_after = N`` makes the commit after N good ones fail once with a
400 (an interruption that huggingface_hub does not retry). Write requests need ``Authorization: Bearer {token}``.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, unquote, urlsplit

import yaml


def git_blob_sha1(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


class FakeHub:
    def __init__(self, *, token: str = "hf_fake_write_token", lfs_suffixes: tuple[str, ...] = ()):
        self.token = token
        self.lfs_suffixes = tuple(lfs_suffixes)
        self.repos: dict[str, dict] = {}  # "{type}/{repo_id}" -> {"private", "branches": {...}}
        self.lfs: dict[str, bytes] = {}  # sha256 -> bytes
        self.requests: list[dict] = []
        self.commits: list[dict] = []
        self.fail_commit_after: int | None = None  # the commit after this many good ones fails
        self._lock = threading.Lock()
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}"

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.httpd.shutdown()
        self.httpd.server_close()

    # ------------------------------------------------------------------ what the repo holds

    def files(self, repo_id: str, revision: str = "main", repo_type: str = "dataset") -> dict:
        """path -> bytes of a branch."""
        branch = self.repos[f"{repo_type}/{repo_id}"]["branches"][revision]
        return {
            p: (self.lfs[f["oid"]] if f["lfs"] else f["data"]) for p, f in branch["files"].items()
        }

    def add_repo(self, repo_id: str, files: dict[str, bytes], repo_type: str = "dataset") -> str:
        """A repo whose main branch holds ``files`` (to download); returns its commit."""
        data = {p: {"lfs": False, "data": b, "oid": git_blob_sha1(b)} for p, b in files.items()}
        head = hashlib.sha1(
            json.dumps(sorted((p, f["oid"]) for p, f in data.items())).encode()
        ).hexdigest()
        self.repos[f"{repo_type}/{repo_id}"] = {
            "private": False,
            "branches": {"main": {"files": data, "head": head}},
        }
        return head

    def downloads(self) -> list[str]:
        """The paths of the files served by GET (in order)."""
        return [
            r["path"] for r in self.requests if r["method"] == "GET" and "/resolve/" in r["path"]
        ]

    def _resolve(self, method: str, path: str):
        """``(status, headers, body)`` of a resolve request, or None when ``path`` is not one."""
        m = re.fullmatch(r"/(datasets/|spaces/|)(.+?)/resolve/([^/]+)/(.+)", path)
        if not m:
            return None
        kind, repo_id, rev, name = m.groups()
        repo = self.repos.get(f"{(kind or 'models/')[:-2]}/{repo_id}")
        branch = (repo or {}).get("branches", {}).get(rev)
        f = (branch or {}).get("files", {}).get(name)
        if f is None:
            return (
                404,
                {"X-Error-Code": "EntryNotFound", "X-Error-Message": f"{name} not found"},
                b"",
            )
        data = self.lfs[f["oid"]] if f["lfs"] else f["data"]
        headers = {"X-Repo-Commit": branch["head"], "ETag": f'"{f["oid"]}"'}
        return 200, headers, data

    # ------------------------------------------------------------------ the server

    def _handler(self):
        hub = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):  # quiet
                pass

            def _body(self) -> bytes:
                if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
                    out = b""
                    while True:
                        size = int(self.rfile.readline().strip().split(b";")[0], 16)
                        if size == 0:
                            self.rfile.readline()
                            return out
                        out += self.rfile.read(size)
                        self.rfile.readline()
                n = int(self.headers.get("Content-Length") or 0)
                return self.rfile.read(n) if n else b""

            def _send(self, code: int, obj=None, headers: dict | None = None) -> None:
                data = json.dumps(obj if obj is not None else {}).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                for k, v in (headers or {}).items():
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(data)

            def _authorised(self) -> bool:
                return self.headers.get("Authorization") == f"Bearer {hub.token}"

            def _send_file(self, method: str, code: int, headers: dict, data: bytes) -> None:
                self.send_response(code)
                self.send_header("Content-Type", "application/octet-stream")
                self.send_header("Content-Length", str(len(data)))
                for k, v in headers.items():
                    self.send_header(k, v)
                self.end_headers()
                if method == "GET":
                    self.wfile.write(data)

            def _handle(self, method: str) -> None:
                parts = urlsplit(self.path)
                path, query = unquote(parts.path), parse_qs(parts.query)
                if method in ("GET", "HEAD") and (got := hub._resolve(method, path)) is not None:
                    with hub._lock:
                        hub.requests.append({"method": method, "path": path, "query": query,
                                             "auth": self._authorised(), "bytes": 0})  # fmt: skip
                    self._send_file(method, *got)
                    return
                body = self._body() if method in ("POST", "PUT") else b""
                with hub._lock:
                    hub.requests.append({"method": method, "path": path, "query": query,
                                         "auth": self._authorised(), "bytes": len(body)})  # fmt: skip
                try:
                    code, obj = hub._route(method, path, query, body, self._authorised())
                except Exception as exc:  # noqa: BLE001 - a bug in the fake answers 500
                    code, obj = 500, {"error": f"fake hub: {type(exc).__name__}: {exc}"}
                headers = (
                    {"X-Error-Message": obj["error"]} if code >= 400 and "error" in obj else None
                )
                self._send(code, obj, headers)

            def do_GET(self):
                self._handle("GET")

            def do_HEAD(self):
                self._handle("HEAD")

            def do_POST(self):
                self._handle("POST")

            def do_PUT(self):
                self._handle("PUT")

        return Handler

    def _route(self, method: str, path: str, query: dict, body: bytes, auth: bool):
        m = re.fullmatch(
            r"/api/(models|datasets|spaces)/(.+?)/(preupload|commit|revision|branch)/(.+)", path
        )
        if method == "POST" and path == "/api/repos/create":
            return self._create_repo(json.loads(body), auth)
        if method == "POST" and path == "/api/validate-yaml":
            return self._validate_yaml(json.loads(body))
        if m:
            kind, repo_id, action, rev = m.groups()
            key = f"{kind[:-1]}/{repo_id}"
            if key not in self.repos:
                return 404, {"error": f"Repository not found: {repo_id}"}
            if action != "revision" and not auth:
                return 401, {"error": "Invalid credentials in Authorization header"}
            repo = self.repos[key]
            if action == "branch":
                if rev in repo["branches"]:
                    return 409, {"error": f"Branch {rev} already exists"}
                main = repo["branches"]["main"]
                repo["branches"][rev] = {"files": dict(main["files"]), "head": main["head"]}
                return 200, {}
            if rev not in repo["branches"]:
                return 404, {"error": f"Revision not found: {rev}"}
            branch = repo["branches"][rev]
            if action == "revision":
                return 200, {"id": repo_id, "sha": branch["head"], "private": repo["private"],
                             "siblings": [{"rfilename": p} for p in sorted(branch["files"])]}  # fmt: skip
            if action == "preupload":
                return 200, {
                    "files": [self._preupload(branch, f) for f in json.loads(body)["files"]]
                }
            return self._commit(key, repo_id, kind, rev, branch, body)
        m = re.fullmatch(r"/(datasets/|spaces/|)(.+)\.git/info/lfs/objects/batch", path)
        if method == "POST" and m:
            if not auth:
                return 401, {"error": "Invalid credentials"}
            req = json.loads(body)
            objects = []
            for obj in req["objects"]:
                out = {"oid": obj["oid"], "size": obj["size"]}
                if obj["oid"] not in self.lfs:
                    out["actions"] = {"upload": {"href": f"{self.url}/lfs/{obj['oid']}"}}
                objects.append(out)
            return 200, {"transfer": "basic", "objects": objects}
        m = re.fullmatch(r"/lfs/([0-9a-f]{64})", path)
        if method == "PUT" and m:
            if hashlib.sha256(body).hexdigest() != m.group(1):
                return 400, {"error": "sha256 mismatch"}
            self.lfs[m.group(1)] = body
            return 200, {}
        return 404, {"error": f"fake hub: no route for {method} {path}"}

    def _create_repo(self, payload: dict, auth: bool):
        if not auth:
            return 401, {"error": "Invalid credentials in Authorization header"}
        kind = payload.get("type") or "model"
        repo_id = (
            f"{payload['organization']}/{payload['name']}"
            if payload.get("organization")
            else payload["name"]
        )
        url = f"{self.url}/{'' if kind == 'model' else kind + 's/'}{repo_id}"
        key = f"{kind}/{repo_id}"
        if key in self.repos:
            return 409, {"error": "You already created this repo", "url": url}
        self.repos[key] = {
            "private": payload.get("visibility", "public") == "private"
            or bool(payload.get("private")),
            "branches": {"main": {"files": {}, "head": "0" * 40}},
        }
        return 200, {"url": url, "name": repo_id}

    def _validate_yaml(self, payload: dict):
        text = payload.get("content", "")
        m = re.match(r"^---\n(.*?)\n---\n", text, re.S)
        try:
            meta = yaml.safe_load(m.group(1)) if m else {}
            if not isinstance(meta, dict):
                raise ValueError("front matter is not a mapping")
        except (yaml.YAMLError, ValueError) as exc:
            return 400, {"errors": [{"message": str(exc)}]}
        return 200, {"warnings": []}

    def _preupload(self, branch: dict, f: dict) -> dict:
        lfs = f["path"].endswith(self.lfs_suffixes) if self.lfs_suffixes else False
        have = branch["files"].get(f["path"])
        oid = None
        if have is not None:
            oid = (
                have["oid"]
                if lfs and have["lfs"]
                else (git_blob_sha1(have["data"]) if not have["lfs"] else None)
            )
        return {"path": f["path"], "uploadMode": "lfs" if lfs else "regular", "shouldIgnore": False,
                "oid": oid}  # fmt: skip

    def _commit(self, key, repo_id, kind, rev, branch, body: bytes):
        lines = [json.loads(line) for line in body.decode().splitlines() if line.strip()]
        with self._lock:
            if self.fail_commit_after is not None and len(self.commits) >= self.fail_commit_after:
                self.fail_commit_after = None
                return 400, {"error": "fake hub: commit refused (simulated interruption)"}
        header = next(x["value"] for x in lines if x["key"] == "header")
        files, deleted = [], []
        new = dict(branch["files"])
        for item in lines:
            v = item["value"]
            if item["key"] == "file":
                data = base64.b64decode(v["content"])
                new[v["path"]] = {"lfs": False, "data": data, "oid": git_blob_sha1(data)}
                files.append({"path": v["path"], "kind": "regular", "bytes": len(data),
                              "sha256": hashlib.sha256(data).hexdigest()})  # fmt: skip
            elif item["key"] == "lfsFile":
                if v["oid"] not in self.lfs:
                    return 422, {"error": f"LFS object {v['oid']} was never uploaded"}
                new[v["path"]] = {"lfs": True, "oid": v["oid"]}
                files.append({"path": v["path"], "kind": "lfs", "bytes": len(self.lfs[v["oid"]]),
                              "sha256": v["oid"]})  # fmt: skip
            elif item["key"] in ("deletedFile", "deletedFolder"):
                new = {
                    p: f
                    for p, f in new.items()
                    if p != v["path"] and not p.startswith(v["path"].rstrip("/") + "/")
                }
                deleted.append(v["path"])
        oid = hashlib.sha1(
            json.dumps([branch["head"], header, files, deleted]).encode()
        ).hexdigest()
        branch["files"], branch["head"] = new, oid
        self.commits.append({"repo": repo_id, "type": kind[:-1], "revision": rev,
                             "summary": header.get("summary"), "files": files, "deleted": deleted,
                             "oid": oid})  # fmt: skip
        prefix = "" if kind == "models" else f"{kind}/"
        return 200, {"commitUrl": f"{self.url}/{prefix}{repo_id}/commit/{oid}", "commitOid": oid,
                     "success": True}  # fmt: skip
