"""Optional LLM rewrite of generated captions (``caption.rewrite``, off by default).

A text-only model turns the VLM's caption into the style the target video model was trained on
(EasyAnimate rewrites InternVL2 captions this way). Either a local ``AutoModelForCausalLM`` with
its chat template, batched on one device, or an OpenAI-compatible API (text only, with the same
retries and concurrency bound as the captioning API; HTTP settings default to ``caption.api``).
The rewrite is stored beside the original; a failed rewrite keeps the original as the caption.
"""

from __future__ import annotations

import logging

from ..config import with_defaults
from ..io.decode import reason
from ..models.batching import Batcher, is_oom
from ..models.hub import load, resolved_revision
from .base import Result, Timer, chunks, prompt_hash
from .generation import answer_tokens, eos_ids

log = logging.getLogger(__name__)

DEFAULT_SYSTEM = "You rewrite video captions for training a text-to-video model."
DEFAULT_USER = (
    "Rewrite the caption below as one fluent paragraph of at most 120 words. Keep every visual "
    "detail (subjects, actions, setting, lighting, camera), add nothing that is not in it, and "
    "answer with the caption only.\n\nCaption: {caption}"
)


def rewrite_prompt(template: str, caption: str) -> str:
    return template.replace("{caption}", caption)


class LocalRewriter:
    def __init__(self, rcfg: dict, *, device: str = "cpu"):
        self.cfg = rcfg = with_defaults("caption.rewrite", rcfg)
        self.device = device
        self.model_id = str(rcfg["model_id"])
        self.revision = rcfg.get("revision") or None
        self.system = rcfg["prompts"]["system"]
        self.user = rcfg["prompts"]["user"]
        self._resolved = None

    def identity(self) -> dict:
        return {
            "provider": "local",
            "model": self.model_id,
            "revision": self.revision,
            "resolved_revision": self._resolved or resolved_revision(self.model_id, self.revision),
        }

    def prompt_hash(self) -> str:
        return prompt_hash(self.system, self.user)

    def settings(self) -> dict:
        return {k: self.cfg.get(k) for k in ("max_new_tokens", "temperature", "top_p", "seed")}

    def load(self) -> None:
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        from ..models.device import pick_dtype

        trc = bool(self.cfg["trust_remote_code"])
        self.dtype = pick_dtype(self.device, self.cfg["dtype"])
        self.model, rec = load(
            AutoModelForCausalLM,
            self.model_id,
            revision=self.revision,
            trust_remote_code=trc,
            dtype=self.dtype,
        )
        self._resolved = rec["resolved_revision"]
        self.model.to(self.device).eval()
        self.tokenizer, _ = load(
            AutoTokenizer, self.model_id, revision=self.revision, trust_remote_code=trc
        )
        self.tokenizer.padding_side = "left"
        if self.tokenizer.pad_token_id is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        self.torch = torch

    def _generate(self, captions: list[str]) -> list[Result]:
        torch = self.torch
        texts = []
        for cap in captions:
            msgs = []
            if self.system:
                msgs.append({"role": "system", "content": self.system})
            msgs.append({"role": "user", "content": rewrite_prompt(self.user, cap)})
            texts.append(
                self.tokenizer.apply_chat_template(msgs, tokenize=False, add_generation_prompt=True)
            )
        with Timer() as t:
            enc = self.tokenizer(texts, padding=True, return_tensors="pt").to(self.device)
            gen = {"max_new_tokens": int(self.cfg["max_new_tokens"])}
            temperature = float(self.cfg.get("temperature") or 0.0)
            if temperature > 0:
                gen.update(do_sample=True, temperature=temperature, top_p=float(self.cfg["top_p"]))
            else:
                gen.update(do_sample=False, temperature=None, top_p=None, top_k=None)
            torch.manual_seed(int(self.cfg["seed"]))
            with torch.inference_mode():
                out = self.model.generate(**enc, **gen)
        n_in = enc["input_ids"].shape[1]
        eos = eos_ids(self.model, self.tokenizer)
        results = []
        for i in range(len(captions)):
            kept, n_out = answer_tokens(out[i, n_in:].tolist(), eos, self.tokenizer.pad_token_id)
            results.append(
                Result(
                    caption=self.tokenizer.decode(kept, skip_special_tokens=True),
                    tokens={"prompt": int(enc["attention_mask"][i].sum()), "output": n_out},
                    latency=round(t.seconds / len(captions), 4),
                )
            )
        return results

    def rewrite(self, items: list[tuple[str, str]], on_result) -> None:
        """``items`` are ``(clip_id, caption)``; ``on_result(clip_id, Result)`` per item."""
        batcher = Batcher(int(self.cfg["batch_size"]))

        def call(chunk):
            try:
                return list(zip(chunk, self._generate([c for _, c in chunk]), strict=True))
            except Exception as exc:
                if is_oom(exc) and len(chunk) > 1:
                    raise
                return [(it, Result(error=f"rewrite: {reason(exc)}")) for it in chunk]

        for batch in chunks(items, batcher.batch_size):
            for (clip_id, _), result in batcher.map(call, batch):
                on_result(clip_id, result)


class ApiRewriter:
    def __init__(self, rcfg: dict, api_defaults: dict):
        self.cfg = rcfg = with_defaults("caption.rewrite", rcfg)
        # caption.api with the rewrite's overrides (then any option still missing: its default)
        self.api = with_defaults("caption.api", {**(api_defaults or {}), **rcfg["api"]})
        self.system = rcfg["prompts"]["system"]
        self.user = rcfg["prompts"]["user"]

    def identity(self) -> dict:
        from .api import api_identity

        return api_identity(self.api)

    def prompt_hash(self) -> str:
        return prompt_hash(self.system, self.user)

    def settings(self) -> dict:
        return {k: self.cfg.get(k) for k in ("max_new_tokens", "temperature", "top_p", "seed")}

    def load(self) -> None:
        from .http import HttpClient

        self.client = HttpClient(self.api)

    def rewrite(self, items: list[tuple[str, str]], on_result) -> None:
        import threading
        from concurrent.futures import ThreadPoolExecutor

        from .http import ApiError, AuthError, dotted

        url = self.api["base_url"].rstrip("/") + "/chat/completions"
        stop = threading.Event()

        def one(item):
            clip_id, cap = item
            msgs = []
            if self.system:
                msgs.append({"role": "system", "content": self.system})
            msgs.append({"role": "user", "content": rewrite_prompt(self.user, cap)})
            body = {
                "model": self.api["model"],
                "messages": msgs,
                "max_tokens": int(self.cfg["max_new_tokens"]),
                "temperature": float(self.cfg.get("temperature") or 0.0),
                "top_p": float(self.cfg["top_p"]),
            }
            with Timer() as t:
                try:
                    data = self.client.post(url, json=body, stop=stop)
                    text = dotted(data, "choices.0.message.content")
                    usage = data.get("usage") or {}
                    res = Result(
                        caption=text if isinstance(text, str) else None,
                        tokens={
                            "prompt": usage.get("prompt_tokens"),
                            "output": usage.get("completion_tokens"),
                        },
                        error=None if isinstance(text, str) and text else "empty answer",
                        revision=data.get("model"),
                    )
                except AuthError:
                    stop.set()
                    raise
                except ApiError as exc:
                    res = Result(error=self.client.redact(str(exc)))
            res.latency = round(t.seconds, 4)
            return clip_id, res

        with ThreadPoolExecutor(max_workers=max(1, int(self.api["concurrency"]))) as pool:
            for clip_id, res in pool.map(one, items):
                on_result(clip_id, res)


def make_rewriter(caption_cfg: dict, *, device: str = "cpu"):
    caption_cfg = with_defaults("caption", caption_cfg)
    rcfg = caption_cfg["rewrite"]
    if rcfg["provider"] == "api":
        return ApiRewriter(rcfg, caption_cfg["api"])
    return LocalRewriter(rcfg, device=device)
