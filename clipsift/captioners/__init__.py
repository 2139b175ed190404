"""Captioners: local vision-language models (one file per family) and OpenAI-compatible APIs.

``REGISTRY`` maps the name used in the config (``caption.model``) to the family's class. Modules
are named by string so that parsing the Snakefile imports no model code. Adding a family is a
file with a ``LocalVLM`` subclass and one line here.

The shard-level flow (kept clips, source captions, resume cache, clean-up, rewrite, alignment)
is in ``shard.py``; API clients are in ``api.py``.
"""

from __future__ import annotations

import importlib

REGISTRY: dict[str, str] = {
    "qwen2_vl": "clipsift.captioners.qwen2_vl:Qwen2VL",
    "qwen2_5_vl": "clipsift.captioners.qwen2_5_vl:Qwen25VL",
    "qwen3_vl": "clipsift.captioners.qwen3_vl:Qwen3VL",
    "llava_onevision": "clipsift.captioners.llava_onevision:LlavaOnevision",
    "llava_next_video": "clipsift.captioners.llava_next_video:LlavaNextVideo",
    "smolvlm2": "clipsift.captioners.smolvlm2:SmolVLM2",
}


def family(name: str):
    """The ``LocalVLM`` subclass registered under ``name``."""
    if name not in REGISTRY:
        raise KeyError(f"unknown caption model {name!r}; known: {', '.join(sorted(REGISTRY))}")
    module, cls = REGISTRY[name].split(":")
    return getattr(importlib.import_module(module), cls)


def gpus_needed(cfg: dict) -> int:
    """The caption rule's ``gpu`` resource: 1 when a local model of the stage (captioner,
    rewrite, alignment) may use a GPU (its device is not ``cpu``), else 0 (APIs, CPU runs)."""
    devices = []
    if cfg.get("provider", "local") == "local":
        devices.append(cfg.get("device", "auto"))
    for part in ("rewrite", "alignment"):
        sub = cfg.get(part) or {}
        if sub.get("enabled") and sub.get("provider", "local") == "local":
            devices.append(sub.get("device", "auto"))
    return int(any(d != "cpu" for d in devices))


def make_captioner(cfg: dict, *, device: str = "cpu"):
    """The captioner the ``caption`` config asks for (not loaded yet)."""
    provider = cfg.get("provider", "local")
    if provider == "local":
        from .vllm import with_backend

        return with_backend(family(cfg["model"]), cfg.get("backend"))(cfg, device=device)
    from .api import ApiCaptioner, UploadCaptioner

    if provider == "api":
        return ApiCaptioner(cfg)
    if provider == "api_upload":
        return UploadCaptioner(cfg)
    raise ValueError(f"unknown caption provider {provider!r}")
