"""Captioners: local vision-language models (one file per family) and OpenAI-compatible APIs.

``REGISTRY`` (a :class:`clipsift.plugins.Registry`) maps the name used in the config
(``caption.model``) to the family's class, named by string so that parsing the Snakefile imports
no model code. Adding a family is a
file with a ``LocalVLM`` subclass and one line here.

The shard-level flow (kept clips, source captions, resume cache, clean-up, rewrite, alignment)
is in ``shard.py``; API clients are in ``api.py``.
"""

from __future__ import annotations

from ..config import with_defaults
from ..plugins import Plugin, Registry

# every local family runs on a GPU when there is one (caption.device: cpu pins it to the CPU)
REGISTRY = Registry(
    "caption model",
    {
        "qwen2_vl": Plugin("clipsift.captioners.qwen2_vl:Qwen2VL", "gpu"),
        "qwen2_5_vl": Plugin("clipsift.captioners.qwen2_5_vl:Qwen25VL", "gpu"),
        "qwen3_vl": Plugin("clipsift.captioners.qwen3_vl:Qwen3VL", "gpu"),
        "llava_onevision": Plugin("clipsift.captioners.llava_onevision:LlavaOnevision", "gpu"),
        "llava_next_video": Plugin("clipsift.captioners.llava_next_video:LlavaNextVideo", "gpu"),
        "smolvlm2": Plugin("clipsift.captioners.smolvlm2:SmolVLM2", "gpu"),
    },
)

# caption-clip alignment models (caption.alignment.kind)
ALIGNERS = Registry(
    "alignment model",
    {
        "clip": Plugin("clipsift.captioners.alignment:ClipAligner", "gpu"),
        "videoclip_xl": Plugin("clipsift.captioners.videoclip_xl:VideoClipXLAligner", "gpu"),
    },
)


def family(name: str):
    """The ``LocalVLM`` subclass registered under ``name``."""
    return REGISTRY.load(name)


def gpus_needed(cfg: dict) -> int:
    """The caption rule's ``gpu`` resource: 1 when a local model of the stage (captioner,
    rewrite, alignment) may use a GPU (its device is not ``cpu``), else 0 (APIs, CPU runs)."""
    cfg = with_defaults("caption", cfg)
    devices = [cfg["device"]] if cfg["provider"] == "local" else []
    for part in ("rewrite", "alignment"):  # the alignment model is always local
        sub = cfg[part]
        if sub["enabled"] and (part == "alignment" or sub["provider"] == "local"):
            devices.append(sub["device"])
    return int(any(d != "cpu" for d in devices))


def make_captioner(cfg: dict, *, device: str = "cpu"):
    """The captioner the ``caption`` config asks for (not loaded yet)."""
    cfg = with_defaults("caption", cfg)
    provider = cfg["provider"]
    if provider == "local":
        from .vllm import with_backend

        return with_backend(family(cfg["model"]), cfg["backend"])(cfg, device=device)
    from .api import ApiCaptioner, UploadCaptioner

    if provider == "api":
        return ApiCaptioner(cfg)
    if provider == "api_upload":
        return UploadCaptioner(cfg)
    raise ValueError(f"unknown caption provider {provider!r}")
