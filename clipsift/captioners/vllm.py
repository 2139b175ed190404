"""vLLM backend for the local captioners (``caption.backend: vllm``), GPU only.

Dataflow-Gen serves its captioners with vLLM (``tensor_parallel_size``, ``max_model_len``,
``max_num_seqs``). This backend keeps everything of a family but the generation: the same frame
sampling and frame sizes (:meth:`LocalVLM.plan`, :meth:`LocalVLM.decode`), the same chat template
and prompt text (:meth:`LocalVLM.render` on the images path), the same sampling settings; then
one offline ``vllm.LLM.generate`` call per batch, each request ``{"prompt": text,
"multi_modal_data": {"video": frames}}`` (``frames``: ``[F, H, W, 3]`` uint8 RGB), which vLLM's
processor for the model expands into its video tokens.

vLLM is not a dependency of clipsift (it pins its own torch and needs CUDA): install it on the
GPU machine (``pip install vllm``). On the CPU the requests are built and checked by the tests;
``load`` says what is missing.
"""

from __future__ import annotations

import logging

from ..models.hub import resolved_revision
from .base import Result, Timer

log = logging.getLogger(__name__)


class VllmBackend:
    """Mixed into a :class:`~clipsift.captioners.local.LocalVLM` family (``with_backend``)."""

    backend = "vllm"

    def settings(self) -> dict:
        return super().settings() | {"backend": "vllm"}  # another backend, another cache key

    def identity(self) -> dict:
        return super().identity() | {"backend": "vllm"}

    def load_prompting(self) -> None:
        """The text side only: tokenizer, chat template and the video processor's config."""
        from transformers import AutoTokenizer

        from ..models.hub import load

        trc = bool(self.cfg["trust_remote_code"])
        self.tokenizer, _ = load(
            AutoTokenizer, self.model_id, revision=self.revision, trust_remote_code=trc
        )
        self.video_cfg = {**self.video_defaults, **self._stored_video_config()}
        self.chat_template = self._stored_chat_template()
        self.inputs_path = "images"  # render() with the tokenizer and the template
        self._resolved = resolved_revision(self.model_id, self.revision)

    def load(self) -> None:
        if not str(self.device).startswith("cuda"):
            raise RuntimeError(
                f"caption.backend: vllm runs on a GPU, not on {self.device!r}; use "
                "caption.backend: transformers on this machine"
            )
        try:
            import vllm
        except ImportError:
            raise RuntimeError(
                "caption.backend: vllm needs the vllm package on the GPU machine "
                "(pip install vllm); it is not one of clipsift's dependencies"
            ) from None
        self.load_prompting()
        opts = self.cfg["vllm"]
        kwargs = {
            "model": self.model_id,
            "revision": self.revision,
            "trust_remote_code": bool(self.cfg["trust_remote_code"]),
            "tensor_parallel_size": int(opts["tensor_parallel_size"]),
            "max_num_seqs": int(opts["max_num_seqs"]),
            "gpu_memory_utilization": float(opts["gpu_memory_utilization"]),
            "limit_mm_per_prompt": {"video": 1},
            "seed": int(self.cfg["seed"]),
        }
        if opts.get("max_model_len"):
            kwargs["max_model_len"] = int(opts["max_model_len"])
        if self.cfg.get("dtype") not in (None, "auto"):
            kwargs["dtype"] = self.cfg["dtype"]
        self.llm = vllm.LLM(**kwargs)
        self.sampling = vllm.SamplingParams(**self.sampling_kwargs())
        log.info("%s via vLLM: %s (revision %s), %s", self.name, self.model_id, self._resolved,
                 {k: v for k, v in kwargs.items() if k != "model"})  # fmt: skip

    def sampling_kwargs(self) -> dict:
        """``vllm.SamplingParams`` arguments: the transformers path's generation settings."""
        temperature = float(self.cfg.get("temperature") or 0.0)
        out = {
            "max_tokens": int(self.cfg["max_new_tokens"]),
            "temperature": temperature,  # 0: greedy in vLLM too
            "seed": int(self.cfg["seed"]),
            "repetition_penalty": float(self.cfg["repetition_penalty"]),
        }
        if temperature > 0:
            out["top_p"] = float(self.cfg["top_p"])
            if self.cfg.get("top_k") is not None:
                out["top_k"] = int(self.cfg["top_k"])
        return out

    def request(self, job, video) -> dict:
        """One ``LLM.generate`` request. Qwen3-VL's vLLM processor takes a video only with its
        metadata, ``(frames, metadata)`` (its data parser needs it: bare frames fail every
        clip), and writes each temporal patch's ``<t seconds>`` from it as ``index / fps``;
        ``do_sample_frames`` False keeps it from sampling the sampled frames again."""
        frames = video.frames
        if self.vllm_video_metadata:
            frames = (frames, {**video.metadata, "do_sample_frames": False})
        return {"prompt": self.render(job), "multi_modal_data": {"video": frames}}

    def generate(self, items) -> list[Result]:
        requests = [self.request(job, video) for job, _, video in items]
        with Timer() as t:
            outs = self.llm.generate(requests, self.sampling, use_tqdm=False)
        results = []
        for (job, plan, video), out in zip(items, outs, strict=True):
            gen = out.outputs[0]
            results.append(
                Result(
                    caption=gen.text,
                    frames=plan.record(job, video.timestamps),
                    tokens={
                        "prompt": len(out.prompt_token_ids or []),
                        "output": len(gen.token_ids),
                    },
                    latency=round(t.seconds / len(items), 4),
                )
            )
        return results


def with_backend(family: type, backend: str) -> type:
    """The family's class for ``caption.backend`` (transformers: the family itself)."""
    if backend in (None, "transformers"):
        return family
    if backend != "vllm":
        raise ValueError(f"unknown caption backend {backend!r}; use transformers or vllm")
    return type(f"Vllm{family.__name__}", (VllmBackend, family), {})
