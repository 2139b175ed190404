"""The encode stage: VAE latents and text embeddings of the kept clips, in the layouts trainers read.

One module per VAE family (``wan``, ``hunyuan``, ``cogvideox``, ``ltx``), each a small
:class:`~clipsift.encoders.base.VideoVAE` subclass registered in :data:`VAES` under its config
name (``encode.vae.name``); text encoders in ``text`` (:data:`TEXT_ENCODERS`, config
``encode.text_encoder.name``). Adding a VAE is one file and one registry line. The registries name
classes by string so that parsing the Snakefile imports neither torch nor diffusers.

- ``sampling``: which source frames (count valid for the VAE, stride, skip, target fps).
- ``buckets``: which output size (fixed, or the bucket nearest the clip's aspect ratio), and the
  crop that gets there.
- ``video``: decoding those frames, cropped and resized, ahead of the model.
- ``stage``: the per-shard job (``scripts/encode.py``) that ties them together.
"""

from __future__ import annotations

import importlib

VAES: dict[str, str] = {
    "wan2_1": "clipsift.encoders.wan:Wan21",
    "wan2_2": "clipsift.encoders.wan:Wan22",
    "hunyuan": "clipsift.encoders.hunyuan:HunyuanVideo",
    "cogvideox": "clipsift.encoders.cogvideox:CogVideoX",
    "ltx": "clipsift.encoders.ltx:LTXVideo",
}

TEXT_ENCODERS: dict[str, str] = {
    "t5": "clipsift.encoders.text:T5",
    "umt5": "clipsift.encoders.text:UMT5",
    "clip": "clipsift.encoders.text:CLIP",
    "llama": "clipsift.encoders.text:HunyuanLlama",
}


def _resolve(registry: dict[str, str], name: str, what: str):
    if name not in registry:
        raise KeyError(f"unknown {what} {name!r}; known: {', '.join(sorted(registry))}")
    module, cls = registry[name].split(":")
    return getattr(importlib.import_module(module), cls)


def vae_class(name: str):
    """The :class:`~clipsift.encoders.base.VideoVAE` subclass registered as ``name``."""
    return _resolve(VAES, name, "VAE")


def text_encoder_class(name: str):
    """The :class:`~clipsift.encoders.text.TextEncoder` subclass registered as ``name``."""
    return _resolve(TEXT_ENCODERS, name, "text encoder")
