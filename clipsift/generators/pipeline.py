"""Loading and calling a generator's diffusers pipeline: one code path for every family.

- :func:`settings` merges a source's keys over the registry defaults and makes the sizes and
  frame counts valid for the family (frame counts of the form ``k * frame_step + 1`` for causal
  video VAEs, sizes a multiple of the VAE and patch stride): a count the model cannot take does
  not raise in diffusers, it silently drops frames, so the count is chosen here and recorded.
- :func:`load` is ``Pipeline.from_pretrained(model, revision=..., dtype=...)`` (through
  :func:`clipsift.models.hub.load`) plus the family's extra components, then the memory options:
  ``cpu_offload`` (model or sequential, GPU only), VAE tiling and slicing where the VAE has them.
- :func:`run` calls the pipeline with our parameters under its own argument names and returns
  ``uint8`` frames ``[F, H, W, 3]`` (an image is one frame).

Determinism: every call gets ``torch.Generator("cpu").manual_seed(seed)``. diffusers draws the
initial noise on the generator's device and moves it, so the noise of a seed is the same on every
machine; the same seed, config and device give the same frames (GPU kernels may still differ
from the CPU's, so outputs are compared on one device).
"""

from __future__ import annotations

import hashlib
import importlib.util
import inspect
import logging
import time
from dataclasses import asdict, dataclass, field

import numpy as np

from . import PARAMS, Generator, GeneratorError

log = logging.getLogger(__name__)


def item_seed(seed: int, item_id: str) -> int:
    """The seed of one item: from the global seed and the item id, not from its position, so
    that adding prompts, reordering them or resharding never changes an existing video."""
    digest = hashlib.sha256(f"{int(seed)}:{item_id}".encode()).hexdigest()
    return int(digest[:16], 16) & ((1 << 63) - 1)


def valid_frames(n: int, step: int) -> int:
    """Largest count ``<= n`` of the form ``k * step + 1`` (at least 1)."""
    n = max(1, int(n))
    return (n - 1) // step * step + 1 if step > 1 else n


def valid_size(n: int, multiple: int) -> int:
    return max(multiple, int(n) // multiple * multiple)


@dataclass
class Settings:
    """What one generator is run with, after defaults and validity rules (recorded per video)."""

    generator: str
    pipeline: str
    kind: str
    model: str
    revision: str | None
    variant: str | None
    params: dict  # steps, guidance, width, height, frames, fps, negative_prompt
    pipeline_kwargs: dict = field(default_factory=dict)
    components: dict = field(default_factory=dict)
    dtype: str = "auto"

    def record(self) -> dict:
        return asdict(self)


def settings(cfg: dict, gen: Generator, *, size_from: Generator | None = None) -> Settings:
    """``cfg`` (a source, or its ``i2v`` block) over ``gen``'s defaults.

    ``revision`` is the revision of ``model``; without ``model`` the generator's default
    checkpoint is used at its pinned commit, unless ``revision`` names something other than the
    schema default ``main``.
    """
    if cfg.get("model"):
        model, revision = str(cfg["model"]), cfg.get("revision") or "main"
    else:
        asked = cfg.get("revision")
        model = gen.model
        revision = asked if asked and asked != "main" else gen.revision
        if not gen.pinned and revision == "main":
            log.warning(
                "%s: the default checkpoint %s is not pinned to a commit (revision main); "
                "set `revision` for a reproducible dataset (the resolved commit is recorded)",
                gen.name,
                model,
            )
    params = {k: cfg[k] if cfg.get(k) is not None else gen.defaults.get(k) for k in PARAMS}
    multiple = max(gen.size_multiple, size_from.size_multiple if size_from else 1)
    for k in ("width", "height"):
        asked = int(params[k])
        params[k] = valid_size(asked, multiple)
        if params[k] != asked:
            log.info("%s: %s %d -> %d (a multiple of %d)", gen.name, k, asked, params[k], multiple)
    if gen.kind == "t2i":
        params["frames"] = 1
    else:
        asked = int(params["frames"])
        params["frames"] = valid_frames(asked, gen.frame_step)
        if params["frames"] != asked:
            log.info(
                "%s: frames %d -> %d (%s takes k*%d+1)",
                gen.name,
                asked,
                params["frames"],
                gen.pipeline,
                gen.frame_step,
            )
    params["steps"] = int(params["steps"])
    params["guidance"] = float(params["guidance"])
    params["fps"] = float(params["fps"])
    components = {**gen.components, **(cfg.get("components") or {})}
    return Settings(
        generator=gen.name,
        pipeline=gen.pipeline,
        kind=gen.kind,
        model=model,
        revision=revision,
        variant=cfg.get("variant"),
        params=params,
        pipeline_kwargs=dict(cfg.get("pipeline_kwargs") or {}),
        components={k: v for k, v in components.items() if v},
        dtype=cfg.get("dtype") or "auto",  # auto: the family's dtype on GPU, fp32 on the CPU
    )


# ----------------------------------------------------------------------------- loading


@dataclass
class Loaded:
    pipe: object
    gen: Generator
    settings: Settings
    record: dict  # model, revision, resolved_revision, dtype, device, memory options
    accepted: frozenset  # the pipeline's call arguments
    takes_any: bool  # its __call__ has **kwargs


def _dtype_kwarg() -> str:
    """diffusers renamed ``torch_dtype`` to ``dtype`` (the old name warns); older ones lack it."""
    try:
        from diffusers.utils.deprecation_utils import _resolve_dtype  # noqa: F401
    except ImportError:
        return "torch_dtype"
    return "dtype"


def resolve_dtype(device: str, asked: str, default: str):
    """fp32 on the CPU unless a dtype is asked for; on GPUs the family's dtype (bf16 falls back
    to fp16 on GPUs without bf16)."""
    import torch

    if asked and asked != "auto":
        return getattr(torch, asked)
    if not device.startswith("cuda"):
        return torch.float32
    if default == "bfloat16" and not torch.cuda.is_bf16_supported():
        return torch.float16
    return getattr(torch, default if default and default != "auto" else "float16")


def _class(name: str):
    import diffusers

    if hasattr(diffusers, name):
        return getattr(diffusers, name)
    import transformers

    if hasattr(transformers, name):
        return getattr(transformers, name)
    raise GeneratorError(f"no diffusers or transformers class {name!r}")


def _resolved_revision(model: str, revision: str | None) -> str:
    from ..models.hub import is_local, resolved_revision

    if is_local(model):
        return resolved_revision(model, revision)
    try:  # a pipeline repo has model_index.json at its root (not config.json)
        from pathlib import Path

        from huggingface_hub import try_to_load_from_cache

        path = try_to_load_from_cache(model, "model_index.json", revision=revision)
        if isinstance(path, str):
            return Path(path).parent.name
    except Exception:  # noqa: BLE001 - the record then says what was asked for
        pass
    return revision or "unknown"


def _check_needs(gen: Generator, cpu_offload: str | None) -> None:
    """Fail before loading anything when a package the family or the offload needs is missing."""
    for pkg in gen.needs:
        if importlib.util.find_spec(pkg) is None:
            raise RuntimeError(
                f"generator {gen.name} ({gen.pipeline}) needs the {pkg!r} package to load; "
                f"install it (pip install {pkg})"
            )
    if cpu_offload not in (None, "none") and importlib.util.find_spec("accelerate") is None:
        raise RuntimeError("cpu_offload needs the 'accelerate' package (pip install accelerate)")


def _load_component(name: str, spec: dict, s: Settings, gen: Generator, dtype) -> tuple:
    """One extra component of the pipeline and its record (from ``s.model`` unless it names one)."""
    import torch

    from ..models.hub import load as hub_load

    cls = _class(spec["class"])
    sub_kwargs = dict(spec.get("kwargs") or {})
    if issubclass(cls, torch.nn.Module):  # models take a dtype, schedulers do not
        sub_kwargs[_dtype_kwarg()] = (
            getattr(torch, gen.dtypes[name]) if name in gen.dtypes else dtype
        )
    comp, rec = hub_load(
        cls,
        spec.get("model") or s.model,
        revision=spec.get("revision") or (None if spec.get("model") else s.revision),
        subfolder=spec.get("subfolder"),
        **sub_kwargs,
    )
    return comp, {"class": spec["class"], **rec}


def _pretrained_kwargs(s: Settings, gen: Generator, dtype) -> tuple[dict, dict]:
    """``from_pretrained``'s keywords (dtypes, variant, components) and the components' records."""
    import torch

    dtypes = (
        {"default": dtype, **{k: getattr(torch, v) for k, v in gen.dtypes.items()}}
        if gen.dtypes
        else dtype
    )
    kwargs = {_dtype_kwarg(): dtypes}
    if s.variant:
        kwargs["variant"] = s.variant
    records = {}
    for name, spec in s.components.items():
        kwargs[name], records[name] = _load_component(name, spec, s, gen, dtype)
    return kwargs, records


def _to_device(pipe, device: str, cpu_offload: str | None) -> str:
    """Move the pipeline to ``device`` or offload it; returns the offload actually used."""
    offload = cpu_offload or "none"
    if offload != "none" and not device.startswith("cuda"):
        log.info("cpu_offload %s ignored: the pipeline runs on %s", offload, device)
        offload = "none"
    if offload == "model":
        pipe.enable_model_cpu_offload(device=device)
    elif offload == "sequential":
        pipe.enable_sequential_cpu_offload(device=device)
    else:
        pipe.to(device)
    return offload


def _vae_memory(pipe, gen: Generator, vae_tiling: bool, vae_slicing: bool) -> None:
    """VAE tiling and slicing where the VAE has them (an option it lacks is logged, not fatal)."""
    vae = getattr(pipe, "vae", None)
    for flag, method in ((vae_tiling, "enable_tiling"), (vae_slicing, "enable_slicing")):
        if not flag:
            continue
        if hasattr(vae, method):
            getattr(vae, method)()
        else:
            log.info("%s: the VAE has no %s; ignored", gen.name, method)


def load(
    s: Settings,
    gen: Generator,
    *,
    device: str,
    cpu_offload: str = "none",
    vae_tiling: bool = False,
    vae_slicing: bool = False,
) -> Loaded:
    from ..models.hub import load as hub_load

    _check_needs(gen, cpu_offload)
    t0 = time.perf_counter()
    dtype = resolve_dtype(device, s.dtype, gen.defaults.get("dtype", "auto"))
    kwargs, records = _pretrained_kwargs(s, gen, dtype)
    cls = _class(s.pipeline)
    pipe, rec = hub_load(cls, s.model, revision=s.revision, **kwargs)
    rec["resolved_revision"] = _resolved_revision(s.model, s.revision)
    if hasattr(pipe, "set_progress_bar_config"):
        pipe.set_progress_bar_config(disable=True)

    offload = _to_device(pipe, device, cpu_offload)
    vae_tiling = vae_tiling or gen.vae_tiling
    _vae_memory(pipe, gen, vae_tiling, vae_slicing)
    params = inspect.signature(pipe.__call__).parameters
    record = {
        **rec,
        "pipeline": s.pipeline,
        "dtype": str(dtype).replace("torch.", ""),
        "device": device,
        "cpu_offload": offload,
        "vae_tiling": bool(vae_tiling),
        "vae_slicing": bool(vae_slicing),
        "load_s": round(time.perf_counter() - t0, 3),
    }
    if records:
        record["components"] = records
    log.info(
        "loaded %s %s@%s (resolved %s) on %s, %s",
        gen.name,
        s.model,
        s.revision,
        record["resolved_revision"],
        device,
        record["dtype"],
    )
    return Loaded(
        pipe=pipe,
        gen=gen,
        settings=s,
        record=record,
        accepted=frozenset(params),
        takes_any=any(p.kind is p.VAR_KEYWORD for p in params.values()),
    )


# ----------------------------------------------------------------------------- calling


def call_kwargs(loaded: Loaded, prompt: str | None, image=None) -> dict:
    """Our parameters under the pipeline's argument names; what it does not take is left out."""
    gen, s = loaded.gen, loaded.settings
    values = {**s.params, "prompt": prompt, "image": image if gen.kind == "i2v" else None}
    kw, skipped = {}, []
    for key, value in values.items():
        arg = gen.arg(key)
        if arg is None or value is None:
            continue
        if arg in loaded.accepted:
            kw[arg] = value
        else:
            skipped.append(key)
    if skipped:
        log.debug("%s does not take %s", s.pipeline, ", ".join(skipped))
    for key, value in gen.call.items():
        if key in loaded.accepted or loaded.takes_any:
            kw[key] = value
    kw.update(s.pipeline_kwargs)  # the config's own arguments, passed as they are
    return kw


def run(loaded: Loaded, prompt: str | None, seed: int, image=None) -> np.ndarray:
    """One video (``[F, H, W, 3]`` uint8) or image (one frame) for ``prompt`` and ``seed``."""
    import torch

    kw = call_kwargs(loaded, prompt, image)
    kw["generator"] = torch.Generator("cpu").manual_seed(int(seed))
    kw["output_type"] = "np"
    with torch.inference_mode():
        out = loaded.pipe(**kw)
    # video pipelines return frames [B, F, H, W, C]; image pipelines images [B, H, W, C]
    frames = out.frames[0] if hasattr(out, "frames") else np.asarray(out.images[0])[None]
    return to_uint8(frames)


def to_uint8(frames) -> np.ndarray:
    """Float frames in [0, 1] (what ``output_type="np"`` gives) -> uint8, rounded like diffusers'
    own ``numpy_to_pil``."""
    if hasattr(frames, "detach"):
        frames = frames.detach().float().cpu().numpy()
    arr = np.asarray(frames)
    if arr.dtype == np.uint8:
        return arr
    return (np.clip(arr, 0.0, 1.0) * 255).round().astype(np.uint8)


def prepare_image(image, width: int, height: int):
    """A first frame at the video's size: centre-cropped to its aspect, then resized (diffusers
    would stretch it)."""
    from PIL import Image

    if isinstance(image, np.ndarray):
        image = Image.fromarray(image)
    image = image.convert("RGB")
    w, h = image.size
    target = width / height
    if abs(w / h - target) > 1e-3:
        if w / h > target:
            cw = round(h * target)
            box = ((w - cw) // 2, 0, (w - cw) // 2 + cw, h)
        else:
            ch = round(w / target)
            box = (0, (h - ch) // 2, w, (h - ch) // 2 + ch)
        image = image.crop(box)
    if image.size != (width, height):
        image = image.resize((width, height), Image.Resampling.LANCZOS)
    return image
