"""The encode stage: VAE latents and text embeddings of the kept clips, in the layouts trainers read.

One module per VAE family (``wan``, ``hunyuan``, ``cogvideox``, ``ltx``), each a small
:class:`~clipsift.encoders.base.VideoVAE` subclass registered in :data:`VAES` (a
:class:`clipsift.plugins.Registry`) under its config name (``encode.vae.name``); text encoders in ``text`` (:data:`TEXT_ENCODERS`, config
``encode.text_encoder.name``). Adding a VAE is one file and one registry line. The registries name
classes by string so that parsing the Snakefile imports neither torch nor diffusers.

- ``sampling``: which source frames (count valid for the VAE, stride, skip, target fps).
- ``buckets``: which output size (fixed, or the bucket nearest the clip's aspect ratio), and the
  crop that gets there.
- ``video``: decoding those frames, cropped and resized, ahead of the model.
- ``stage``: the per-shard job (``scripts/encode.py``) that ties them together.
"""

from __future__ import annotations

from ..plugins import Plugin, Registry

VAES = Registry(
    "VAE",
    {
        "wan2_1": Plugin("clipsift.encoders.wan:Wan21", "gpu"),
        "wan2_2": Plugin("clipsift.encoders.wan:Wan22", "gpu"),
        "hunyuan": Plugin("clipsift.encoders.hunyuan:HunyuanVideo", "gpu"),
        "cogvideox": Plugin("clipsift.encoders.cogvideox:CogVideoX", "gpu"),
        "ltx": Plugin("clipsift.encoders.ltx:LTXVideo", "gpu"),
    },
)

TEXT_ENCODERS = Registry(
    "text encoder",
    {
        "t5": Plugin("clipsift.encoders.text:T5", "gpu"),
        "umt5": Plugin("clipsift.encoders.text:UMT5", "gpu"),
        "clip": Plugin("clipsift.encoders.text:CLIP", "gpu"),
        "llama": Plugin("clipsift.encoders.text:HunyuanLlama", "gpu"),
    },
)


def vae_class(name: str):
    """The :class:`~clipsift.encoders.base.VideoVAE` subclass registered as ``name``."""
    return VAES.load(name)


def text_encoder_class(name: str):
    """The :class:`~clipsift.encoders.text.TextEncoder` subclass registered as ``name``."""
    return TEXT_ENCODERS.load(name)
