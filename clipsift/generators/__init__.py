"""Generators: diffusers pipelines that turn prompts (and first frames) into videos.

A generator is one entry of :data:`REGISTRY` (a :class:`clipsift.plugins.Registry` of data
entries), keyed by the name used in the config
(``sources[].generator``). An entry names the diffusers pipeline class, its kind (``t2v``
text-to-video, ``i2v`` image-to-video, ``t2i`` text-to-image), the default checkpoint with a
pinned revision, and the family's defaults (steps, guidance, size, frames, fps, dtype).

The families differ in data, not in code: every pipeline is loaded with
``Pipeline.from_pretrained(model, revision=...)`` and called with the same arguments under the
names it uses (``args`` maps ours to its own, e.g. LTX-Video's ``frame_rate``, SVD's
``max_guidance_scale``), so one loader and one call path (:mod:`.pipeline`) serve all of them.
Extra components (AnimateDiff's motion adapter and scheduler) and per-component dtypes (Wan's
VAE in float32) are data too. A new family is one entry here (and, if it needs new code, a
module beside this one).

This module imports neither torch nor diffusers: planning reads it to check the config.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ..plugins import Registry, UnknownPlugin

KINDS = ("t2v", "i2v", "t2i")

# our parameter -> the pipeline's argument; an entry's ``args`` overrides these (None: not passed)
DEFAULT_ARGS = {
    "prompt": "prompt",
    "negative_prompt": "negative_prompt",
    "image": "image",
    "steps": "num_inference_steps",
    "guidance": "guidance_scale",
    "width": "width",
    "height": "height",
    "frames": "num_frames",
    "fps": None,  # most pipelines do not take it; it is the mp4's frame rate
}

PARAMS = ("steps", "guidance", "width", "height", "frames", "fps", "negative_prompt")


@dataclass(frozen=True)
class Generator:
    name: str
    pipeline: str  # diffusers pipeline class
    kind: str  # t2v | i2v | t2i
    model: str  # default checkpoint (Hub id)
    revision: str  # its pinned commit; "main" where none was verified (see ``pinned``)
    defaults: dict  # steps, guidance, width, height, frames, fps, negative_prompt, dtype
    frame_step: int = 1  # valid frame counts are k * frame_step + 1 (causal video VAEs)
    size_multiple: int = 8  # width and height are rounded down to a multiple of this
    args: dict = field(default_factory=dict)  # overrides of DEFAULT_ARGS
    call: dict = field(default_factory=dict)  # fixed extra call arguments (pipeline_kwargs win)
    components: dict = field(
        default_factory=dict
    )  # name -> {class, model, revision, subfolder, kwargs}
    dtypes: dict = field(default_factory=dict)  # component -> dtype, over the pipeline's dtype
    needs: tuple = ()  # Python packages the family cannot load without
    vae_tiling: bool = False  # the family's VAE decodes only tiled (Allegro): always on
    pinned: bool = True  # False: the default revision is a branch, pin a commit in the config

    def arg(self, param: str) -> str | None:
        """The pipeline's name for one of our parameters (None: not passed)."""
        if self.kind == "t2i" and param == "frames":
            return None
        return self.args.get(param, DEFAULT_ARGS.get(param))


def _g(*args, **kw) -> tuple[str, Generator]:
    gen = Generator(*args, **kw)
    assert gen.kind in KINDS, gen
    return gen.name, gen


# Revisions: commits as pinned by the model specs of xorbitsai/inference (checked against a
# second project for Wan 2.1); "main" where no commit could be verified without Hub access.
# The commit a run resolved to is recorded with every video either way.
REGISTRY = Registry(
    "generator",
    [
        # ------------------------------------------------------------- text-to-video
        _g(
            "cogvideox",
            "CogVideoXPipeline",
            "t2v",
            "THUDM/CogVideoX-2b",
            "4bbfb1de622b80bc1b77b6e9aced75f816be0e38",
            dict(steps=50, guidance=6.0, width=720, height=480, frames=49, fps=8, dtype="float16"),
            frame_step=4,
            size_multiple=16,
        ),
        _g(
            "wan",
            "WanPipeline",
            "t2v",
            "Wan-AI/Wan2.1-T2V-1.3B-Diffusers",
            "0fad780a534b6463e45facd96134c9f345acfa5b",
            dict(
                steps=50, guidance=5.0, width=832, height=480, frames=81, fps=16, dtype="bfloat16"
            ),
            frame_step=4,
            size_multiple=16,
            dtypes={"vae": "float32"},  # as the Wan model cards load it
            needs=("accelerate",),  # its transformer keeps fp32 modules: diffusers needs it
        ),
        _g(
            "ltx",
            "LTXPipeline",
            "t2v",
            "Lightricks/LTX-Video",
            "main",
            dict(
                steps=50,
                guidance=3.0,
                width=704,
                height=480,
                frames=161,
                fps=24,
                dtype="bfloat16",
                negative_prompt="worst quality, inconsistent motion, blurry, jittery, distorted",
            ),
            frame_step=8,
            size_multiple=32,
            args={"fps": "frame_rate"},  # LTX-Video is conditioned on the frame rate
            pinned=False,
        ),
        _g(
            "allegro",
            "AllegroPipeline",
            "t2v",
            "rhymes-ai/Allegro",  # Apache-2.0; Dataflow-Gen's generator
            "main",
            # its model card: 88 frames of 720p at 15 fps (6 s), 100 steps, guidance 7.5; the
            # VAE in float32, the rest in bfloat16
            dict(
                steps=100,
                guidance=7.5,
                width=1280,
                height=720,
                frames=88,
                fps=15,
                dtype="bfloat16",
            ),  # fmt: skip
            size_multiple=16,  # VAE x8, transformer patch 2
            dtypes={"vae": "float32"},
            vae_tiling=True,  # diffusers' Allegro VAE decodes only tiled
            pinned=False,
        ),
        _g(
            "animatediff",
            "AnimateDiffPipeline",
            "t2v",
            "emilianJR/epiCRealism",  # any Stable Diffusion 1.5 checkpoint
            "main",
            dict(steps=25, guidance=7.5, width=512, height=512, frames=16, fps=8, dtype="float16"),
            size_multiple=8,
            components={
                "motion_adapter": {
                    "class": "MotionAdapter",
                    "model": "guoyww/animatediff-motion-adapter-v1-5-2",
                    "revision": "main",
                },
                # the scheduler settings of the diffusers AnimateDiff guide
                "scheduler": {
                    "class": "DDIMScheduler",
                    "subfolder": "scheduler",
                    "kwargs": {
                        "clip_sample": False,
                        "timestep_spacing": "linspace",
                        "beta_schedule": "linear",
                        "steps_offset": 1,
                    },
                },
            },
            pinned=False,
        ),
        _g(
            "modelscope",
            "TextToVideoSDPipeline",
            "t2v",
            "ali-vilab/text-to-video-ms-1.7b",
            "main",
            dict(steps=25, guidance=9.0, width=256, height=256, frames=16, fps=8, dtype="float16"),
            size_multiple=8,
            pinned=False,
        ),
        # ------------------------------------------------------------- image-to-video
        _g(
            "cogvideox_i2v",
            "CogVideoXImageToVideoPipeline",
            "i2v",
            "THUDM/CogVideoX-5b-I2V",
            "main",
            dict(steps=50, guidance=6.0, width=720, height=480, frames=49, fps=8, dtype="bfloat16"),
            frame_step=4,
            size_multiple=16,
            call={"use_dynamic_cfg": True},  # as in the diffusers example
            pinned=False,
        ),
        _g(
            "svd",
            "StableVideoDiffusionPipeline",
            "i2v",
            "stabilityai/stable-video-diffusion-img2vid-xt",
            "main",
            dict(steps=25, guidance=3.0, width=1024, height=576, frames=25, fps=7, dtype="float16"),
            size_multiple=8,
            # SVD takes no prompt: the prompt is only the item's caption. It is conditioned on
            # the frame rate (fps) and a motion bucket; guidance rises from min to max over frames
            args={
                "prompt": None,
                "negative_prompt": None,
                "guidance": "max_guidance_scale",
                "fps": "fps",
            },
            call={
                "min_guidance_scale": 1.0,
                "motion_bucket_id": 127,
                "noise_aug_strength": 0.02,
                "decode_chunk_size": 8,
            },
            pinned=False,
        ),
        _g(
            "i2vgen_xl",
            "I2VGenXLPipeline",
            "i2v",
            "ali-vilab/i2vgen-xl",
            "main",
            dict(
                steps=50, guidance=9.0, width=1280, height=704, frames=16, fps=16, dtype="float16"
            ),
            size_multiple=8,
            args={"fps": "target_fps"},
            call={"decode_chunk_size": 8},
            pinned=False,
        ),
        # ------------------------------------------------------------- text-to-image
        _g(
            "flux",
            "FluxPipeline",
            "t2i",
            "black-forest-labs/FLUX.1-schnell",
            "768d12a373ed5cc9ef9a9dea7504dc09fcc14842",
            dict(steps=4, guidance=0.0, width=1024, height=1024, frames=1, fps=1, dtype="bfloat16"),
            size_multiple=16,
            # FLUX has no negative prompt without true CFG (pipeline_kwargs: true_cfg_scale)
            call={"max_sequence_length": 256},  # schnell's limit; dev takes 512
        ),
        _g(
            "sd3",
            "StableDiffusion3Pipeline",
            "t2i",
            "stabilityai/stable-diffusion-3.5-medium",
            "94b13ccbe959c51e8159d91f562c58f29fac971a",
            dict(
                steps=40, guidance=4.5, width=1024, height=1024, frames=1, fps=1, dtype="bfloat16"
            ),
            size_multiple=16,
        ),
    ],
)


class GeneratorError(ValueError):
    """The generate config cannot work (an unknown generator, a missing image model...)."""


def get(name: str | None) -> Generator:
    if not name:
        raise GeneratorError(f"set `generator` to one of {', '.join(REGISTRY)}")
    try:
        return REGISTRY.entry(name)
    except UnknownPlugin as exc:
        raise GeneratorError(str(exc)) from None


def check_source(source: dict) -> None:
    """Fail early (at planning) on a generate source that cannot work."""
    label = f"source {source.get('name')!r}"
    try:
        gen = get(source.get("generator"))
        if source.get("t2i_as") == "first_frame":
            if gen.kind != "t2i":
                raise GeneratorError(
                    f"t2i_as: first_frame needs a text-to-image generator, {gen.name} is {gen.kind}"
                )
            sub = source.get("i2v") or {}
            i2v = get(sub.get("generator"))
            if i2v.kind != "i2v":
                raise GeneratorError(f"i2v.generator {i2v.name} is {i2v.kind}, not i2v")
    except GeneratorError as exc:
        raise GeneratorError(f"{label}: {exc}") from None


def gpus_needed(source: dict) -> int:
    """The ``gpu`` resource of a generate job: 1 unless the source runs on the CPU."""
    return int((source.get("device") or "auto") != "cpu")
