"""Local vision-language models through transformers: loading, prompts, batched generation.

Each family (one file beside this one) says which model class it is, how big its frames must be,
and how its video inputs are built. There are two ways to build them, chosen by
``caption.video_inputs``:

- ``processor``: the official processor (``AutoProcessor``) with its video processor. Every
  transformers video processor needs torchvision, which GPU machines have.
- ``images``: the same tensors and the same expanded prompt, built from the model's image
  processor (or, where the image path differs from the video path, from the video processor's
  config values) without torchvision, so that CPU-only machines can caption too.
- ``auto`` (default): ``processor`` where torchvision imports, else ``images``.

Frames are decoded straight to the size the model's own resize rule gives for the clip (capped
by ``max_side`` for dynamic-resolution models), so neither path resizes again; a test checks that
both paths give the same model inputs wherever torchvision is installed.

The batch loop around ``generate`` (frames decoded ahead, batches, retries clip by clip) is in
``generation.py``.
"""

from __future__ import annotations

import importlib.util
import json
import logging
from dataclasses import dataclass

import numpy as np

from ..config import with_defaults
from ..models.frames import timed_clip_frames
from ..models.hub import load, resolved_revision
from .base import ClipJob, FramePlan, Result, Timer, format_prompt, prompt_hash, sample_frames
from .generation import answer_tokens, caption_in_batches, eos_ids, on_device

log = logging.getLogger(__name__)

CLIP_MEAN = [0.48145466, 0.4578275, 0.40821073]
CLIP_STD = [0.26862954, 0.26130258, 0.27577711]
HALF = [0.5, 0.5, 0.5]


def torchvision_available() -> bool:
    if importlib.util.find_spec("torchvision") is None:
        return False
    try:
        from transformers.utils import is_torchvision_v2_available

        return bool(is_torchvision_v2_available())
    except ImportError:
        return False


@dataclass
class Video:
    """Decoded frames of one clip, with the metadata a transformers video processor reads."""

    frames: np.ndarray  # (F, H, W, 3) uint8 RGB
    metadata: dict  # total_num_frames, fps, duration, frames_indices, width, height
    times: list[float] | None = None  # each frame's presentation time, s from the clip's start

    @property
    def timestamps(self) -> list[float]:
        """When each frame was seen: the decoded times, else ``index / fps`` (the clip's average
        rate, which transformers' processors divide by)."""
        if self.times is not None:
            return list(self.times)
        return [i / self.metadata["fps"] for i in self.metadata["frames_indices"]]


class LocalVLM:
    """A local VLM family. Subclasses set the class attributes and the ``images`` path hooks."""

    name = ""  # registry key (caption.model)
    model_class = ""  # transformers class name
    video_token = "<video>"
    # the official video processor's class defaults (mirrored: the class cannot be imported
    # without torchvision); the model's stored video processor config overrides them
    video_defaults: dict = {}
    temporal_multiple = 1  # frames per temporal patch (the frame count is a multiple of it)
    vllm_video_metadata = False  # caption.backend vllm: the video goes with its metadata
    prompt_times = False  # the prompt states each frame's time (part of the cache key)
    samples_frames = True  # frames by :func:`sample_frames` (part of a variable-rate clip's key)

    def __init__(self, cfg: dict, *, device: str = "cpu"):
        self.cfg = cfg = with_defaults("caption", cfg)
        self.device = device
        self.model_id = str(cfg["model_id"])
        self.revision = cfg.get("revision") or None
        self.system = cfg["prompts"]["system"]
        self.user = cfg["prompts"]["user"]
        self.model = None
        self.processor = None
        self.image_processor = None
        self.inputs_path = None
        self.video_cfg = dict(self.video_defaults)
        self._resolved = None

    # ------------------------------------------------------------------ identity and loading

    def identity(self) -> dict:
        """What the records and the resume cache name (known before the weights load)."""
        if self._resolved is None:
            rev = resolved_revision(self.model_id, self.revision)
        else:
            rev = self._resolved
        return {
            "provider": "local",
            "model": self.name,
            "model_id": self.model_id,
            "revision": self.revision,
            "resolved_revision": rev,
        }

    def load(self) -> None:
        import torch
        import transformers
        from transformers import AutoImageProcessor, AutoProcessor, AutoTokenizer

        from ..models.device import pick_dtype

        trc = bool(self.cfg["trust_remote_code"])
        dtype = pick_dtype(self.device, self.cfg["dtype"])
        kwargs = {"dtype": dtype}
        if self.cfg.get("attn_implementation"):
            kwargs["attn_implementation"] = self.cfg["attn_implementation"]
        cls = getattr(transformers, self.model_class)
        self.model, record = load(
            cls, self.model_id, revision=self.revision, trust_remote_code=trc, **kwargs
        )
        self._resolved = record["resolved_revision"]
        self.model.to(self.device).eval()
        self.dtype = dtype
        self.tokenizer, _ = load(
            AutoTokenizer, self.model_id, revision=self.revision, trust_remote_code=trc
        )
        self.tokenizer.padding_side = "left"
        want = self.cfg["video_inputs"]
        has_tv = torchvision_available()
        if want == "processor" and not has_tv:
            raise RuntimeError(
                "caption.video_inputs is 'processor', but torchvision is not installed (every "
                "transformers video processor needs it); use 'images' or 'auto' on this machine"
            )
        self.video_cfg = {**self.video_defaults, **self._stored_video_config()}
        if want == "processor" or (want == "auto" and has_tv):
            self.processor, _ = load(
                AutoProcessor, self.model_id, revision=self.revision, trust_remote_code=trc
            )
            self.processor.tokenizer.padding_side = "left"
            self.inputs_path = "processor"
        else:
            self.image_processor, _ = load(
                AutoImageProcessor, self.model_id, revision=self.revision, trust_remote_code=trc
            )
            self.inputs_path = "images"
        self.chat_template = self._stored_chat_template()
        self.torch = torch
        log.info(
            "%s: %s (revision %s) on %s, %s, inputs via %s",
            self.name,
            self.model_id,
            self._resolved,
            self.device,
            str(dtype).replace("torch.", ""),
            self.inputs_path,
        )

    def _file(self, name: str) -> str | None:
        from transformers.utils import cached_file

        try:
            return cached_file(
                self.model_id,
                name,
                revision=self.revision,
                _raise_exceptions_for_missing_entries=False,
                _raise_exceptions_for_connection_errors=False,
            )
        except OSError:
            return None

    def _stored_video_config(self) -> dict:
        """The video processor's stored config, found the way transformers finds it."""
        from transformers.video_processing_utils import BaseVideoProcessor

        try:
            data, _ = BaseVideoProcessor.get_video_processor_dict(
                self.model_id, revision=self.revision
            )
        except OSError:
            return {}
        data = dict(data)
        # legacy keys (Qwen): min_pixels / max_pixels stand for size.shortest/longest_edge
        size = dict(data.get("size") or self.video_defaults.get("size") or {})
        if data.get("min_pixels") is not None:
            size["shortest_edge"] = data.pop("min_pixels")
        if data.get("max_pixels") is not None:
            size["longest_edge"] = data.pop("max_pixels")
        if size:
            data["size"] = size
        return data

    def _stored_chat_template(self) -> str | None:
        """The processor's chat template (chat_template.jinja/.json, processor config), else the
        tokenizer's."""
        path = self._file("chat_template.jinja")
        if path:
            with open(path, encoding="utf-8") as fh:
                return fh.read()
        for name in ("chat_template.json", "processor_config.json"):
            path = self._file(name)
            if path:
                with open(path, encoding="utf-8") as fh:
                    template = json.load(fh).get("chat_template")
                if template:
                    return template
        return getattr(self.tokenizer, "chat_template", None)

    def processor_config(self) -> dict:
        path = self._file("processor_config.json")
        if not path:
            return {}
        with open(path, encoding="utf-8") as fh:
            data = json.load(fh)
        return data.get("processor", data) if isinstance(data, dict) else {}

    # ------------------------------------------------------------------ frames and prompts

    def plan(self, job: ClipJob) -> FramePlan:
        base = sample_frames(
            job, self.cfg["fps"], self.cfg["max_frames"], multiple=self.temporal_multiple
        )
        return FramePlan(base.times, base.indices, self.frame_size(job, len(base.times)))

    def frame_size(self, job: ClipJob, n_frames: int) -> tuple[int, int]:
        raise NotImplementedError

    def messages(self, job: ClipJob) -> list[dict]:
        msgs = []
        if self.system:
            msgs.append({"role": "system", "content": [{"type": "text", "text": self.system}]})
        msgs.append(
            {
                "role": "user",
                "content": [
                    {"type": "video"},
                    {"type": "text", "text": format_prompt(self.user, job)},
                ],
            }
        )
        return msgs

    def template_for_images_path(self) -> str | None:
        return self.chat_template

    def render(self, job: ClipJob) -> str:
        if self.inputs_path == "processor":
            return self.processor.apply_chat_template(
                self.messages(job), tokenize=False, add_generation_prompt=True
            )
        return self.tokenizer.apply_chat_template(
            self.messages(job),
            chat_template=self.template_for_images_path(),
            tokenize=False,
            add_generation_prompt=True,
        )

    def decode(self, job: ClipJob, plan: FramePlan) -> Video:
        frames, times = timed_clip_frames(job, plan.indices, size=plan.size)
        return Video(
            np.stack(frames),
            {
                "total_num_frames": int(job.n_frames),
                "fps": float(job.fps),
                "duration": float(job.duration),
                "frames_indices": plan.positions(job, times),
                "width": plan.size[0],
                "height": plan.size[1],
            },
            times,
        )

    # ------------------------------------------------------------------ model inputs

    def build_inputs(self, texts: list[str], videos: list[Video]) -> dict:
        """Model inputs for a batch (left-padded), by the chosen path."""
        if self.inputs_path == "processor":
            return dict(self.inputs_from_processor(texts, videos))
        return self.inputs_from_images(texts, videos)

    def processor_call_kwargs(self) -> dict:
        return {}

    def processor_videos(self, videos: list[Video]) -> tuple[list, list]:
        """``videos`` and ``video_metadata`` as the processor takes them: one entry per clip."""
        from transformers.video_utils import VideoMetadata

        return [v.frames for v in videos], [VideoMetadata(**v.metadata) for v in videos]

    def inputs_from_processor(self, texts: list[str], videos: list[Video]):
        frames, metadata = self.processor_videos(videos)
        return self.processor(
            text=texts,
            videos=frames,
            video_metadata=metadata,
            do_sample_frames=False,
            padding=True,
            return_tensors="pt",
            **self.processor_call_kwargs(),
        )

    def inputs_from_images(self, texts: list[str], videos: list[Video]) -> dict:
        tensors, replacements = self.video_tensors(videos)
        expanded = []
        for text, rep in zip(texts, replacements, strict=True):
            if self.video_token not in text:
                raise ValueError(f"the chat template did not place {self.video_token!r}")
            expanded.append(text.replace(self.video_token, rep, 1))
        enc = self.tokenizer(
            expanded, padding=True, return_tensors="pt", return_token_type_ids=False
        )
        out = dict(enc)
        out.update(tensors)
        return out

    def video_tensors(self, videos: list[Video]) -> tuple[dict, list[str]]:
        """The ``images`` path: tensors for the batch and each video's placeholder text."""
        raise NotImplementedError

    # ------------------------------------------------------------------ generation

    def generation_kwargs(self) -> dict:
        gen = {"max_new_tokens": int(self.cfg["max_new_tokens"])}
        temperature = float(self.cfg.get("temperature") or 0.0)
        if temperature > 0:
            gen.update(do_sample=True, temperature=temperature, top_p=float(self.cfg["top_p"]))
            if self.cfg.get("top_k") is not None:
                gen["top_k"] = int(self.cfg["top_k"])
        else:
            gen.update(do_sample=False, temperature=None, top_p=None, top_k=None)
        if self.cfg["repetition_penalty"] != 1.0:
            gen["repetition_penalty"] = float(self.cfg["repetition_penalty"])
        return gen

    def generate(self, items: list[tuple[ClipJob, FramePlan, Video]]) -> list[Result]:
        """One batched ``generate`` call; raises on failure (the caller retries clip by clip)."""
        torch = self.torch
        texts = [self.render(job) for job, _, _ in items]
        with Timer() as t:
            inputs = self.build_inputs(texts, [v for _, _, v in items])
            inputs = on_device(inputs, self.device, self.dtype)
            torch.manual_seed(int(self.cfg["seed"]))
            with torch.inference_mode():
                out = self.model.generate(**inputs, **self.generation_kwargs())
        n_in = inputs["input_ids"].shape[1]
        eos = eos_ids(self.model, self.tokenizer)
        pad = self.tokenizer.pad_token_id
        results = []
        for i, (job, plan, video) in enumerate(items):
            kept, n_out = answer_tokens(out[i, n_in:].tolist(), eos, pad)
            text = self.tokenizer.decode(kept, skip_special_tokens=True)
            results.append(
                Result(
                    caption=text,
                    frames=plan.record(job, video.timestamps),
                    tokens={
                        "prompt": int(inputs["attention_mask"][i].sum()),
                        "output": n_out,
                    },
                    latency=round(t.seconds / len(items), 4),
                )
            )
        return results

    def batch_key(self, plan: FramePlan):
        """Clips that may share a batch (LLaVA-OneVision stacks frames: equal counts only)."""
        return None

    def caption(self, jobs: list[ClipJob], on_result) -> None:
        """Caption ``jobs`` in batches; frames are decoded ahead in threads."""
        caption_in_batches(self, jobs, on_result)

    def settings(self) -> dict:
        """Everything besides model and prompt that changes the answer (part of the cache key)."""
        keys = ("fps", "max_frames", "max_side", "max_new_tokens", "temperature", "top_p", "seed",
                "repetition_penalty")  # fmt: skip
        out = {k: self.cfg.get(k) for k in keys}
        if self.cfg.get("top_k") is not None:  # only when set: older cache keys stay valid
            out["top_k"] = self.cfg["top_k"]
        return out

    def prompt_hash(self) -> str:
        return prompt_hash(self.system, self.user)
