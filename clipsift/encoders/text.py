"""Text encoders for the prompts each clip ends up with, loaded with transformers.

Each family loads its tokenizer (``AutoTokenizer``, from ``tokenizer_subfolder``) and its model
(``subfolder``) with the pinned revision, and turns a list of prompts into, per prompt:

- ``embeds``: ``[max_length, D]`` hidden states, padded to ``max_length`` with zeros past the
  prompt's tokens (what the diffusers Wan pipeline feeds its transformer);
- ``mask``: ``[max_length]`` attention mask (1 for a prompt token);
- ``pooled``: ``[D]`` pooled output where the family has one (CLIP);
- ``n_tokens`` and ``truncated`` (the prompt had more tokens than ``max_length``).

Families:

- ``t5`` (``T5EncoderModel``: LTX-Video, CogVideoX) and ``umt5`` (``UMT5EncoderModel``: Wan):
  ``last_hidden_state``.
- ``clip`` (``CLIPTextModel``: HunyuanVideo's second encoder): ``last_hidden_state`` and
  ``pooler_output``.
- ``llama`` (``LlamaModel``: HunyuanVideo's first encoder): the prompt inside HunyuanVideo's
  prompt template (diffusers' ``DEFAULT_PROMPT_TEMPLATE``), the hidden states
  ``hidden_layer_skip + 1`` layers from the top, and the template's tokens cropped off the front
  (``crop_start``), as the diffusers HunyuanVideo pipeline does.

Prompts are cleaned the same way for every family: HTML entities unescaped and runs of
whitespace collapsed (what the Wan pipeline's ``prompt_clean`` does, minus ftfy).
"""

from __future__ import annotations

import html
import logging
from typing import ClassVar

import numpy as np

from ..models.hub import load

log = logging.getLogger(__name__)


def clean_prompt(text: str | None) -> str:
    return " ".join(html.unescape(text or "").split())


class TextEncoder:
    name: ClassVar[str] = ""
    model_class: ClassVar[str] = ""  # transformers class name

    def __init__(self, tokenizer, model, record: dict, cfg: dict, device: str, dtype):
        self.tokenizer = tokenizer
        self.model = model
        self.record = record
        self.cfg = cfg
        self.device = device
        self.dtype = dtype

    @classmethod
    def load(cls, cfg: dict, device: str, dtype) -> TextEncoder:
        import transformers
        from transformers import AutoTokenizer

        model, record = load(
            getattr(transformers, cls.model_class),
            cfg["model"],
            revision=cfg.get("revision"),
            subfolder=cfg.get("subfolder") or None,
            # transformers 5 names it dtype; 4.x torch_dtype
            **{
                "dtype"
                if int(transformers.__version__.split(".")[0]) >= 5
                else "torch_dtype": dtype
            },
        )
        # the model's config tells AutoTokenizer the family: transformers 5 otherwise looks for
        # a config.json in the tokenizer's folder, which diffusers repos do not have
        tokenizer, tok_record = load(
            AutoTokenizer,
            cfg["model"],
            revision=cfg.get("revision"),
            subfolder=cfg.get("tokenizer_subfolder") or None,
            config=model.config,
        )
        model = model.to(device).eval()
        model.requires_grad_(False)
        record = record | {
            "class": cls.model_class,
            "family": cls.name,
            "tokenizer": tok_record,
            "max_length": int(cfg["max_length"]),
            "dtype": str(dtype).replace("torch.", ""),
        }
        return cls(tokenizer, model, record, cfg, device, dtype)

    @property
    def max_length(self) -> int:
        return int(self.cfg["max_length"])

    def describe(self) -> dict:
        return self.record

    # ------------------------------------------------------------------ encoding

    def tokenize(self, prompts: list[str]):
        return self.tokenizer(
            prompts,
            padding="max_length",
            max_length=self.max_length,
            truncation=True,
            add_special_tokens=True,
            return_attention_mask=True,
            return_tensors="pt",
        )

    def n_tokens(self, prompts: list[str]) -> list[int]:
        """Token counts without truncation (to record which prompts were cut)."""
        ids = self.tokenizer(prompts, add_special_tokens=True, truncation=False)["input_ids"]
        return [len(i) for i in ids]

    def forward(self, ids, mask):
        """``(hidden [B, L, D], mask [B, L], pooled [B, D] or None)`` for tokenized prompts."""
        out = self.model(input_ids=ids, attention_mask=mask)
        return out.last_hidden_state, mask, None

    def encode(self, prompts: list[str]) -> list[dict]:
        import torch

        prompts = [clean_prompt(p) for p in prompts]
        tok = self.tokenize(prompts)
        with torch.inference_mode():
            hidden, mask, pooled = self.forward(
                tok["input_ids"].to(self.device), tok["attention_mask"].to(self.device)
            )
            mask = mask.to(hidden.device)
            hidden = hidden.float() * mask[..., None].to(torch.float32)  # zeros past the prompt
            hidden = hidden.cpu().numpy()
            mask = mask.cpu().numpy().astype(np.uint8)
            pooled = pooled.float().cpu().numpy() if pooled is not None else None
        counts = self.n_tokens(prompts)
        out = []
        for i in range(len(prompts)):
            rec = {
                "embeds": hidden[i],
                "mask": mask[i],
                "n_tokens": int(mask[i].sum()),
                "truncated": bool(counts[i] > self.max_length),
            }
            if pooled is not None:
                rec["pooled"] = pooled[i]
            out.append(rec)
        return out


class T5(TextEncoder):
    name: ClassVar[str] = "t5"
    model_class: ClassVar[str] = "T5EncoderModel"


class UMT5(TextEncoder):
    name: ClassVar[str] = "umt5"
    model_class: ClassVar[str] = "UMT5EncoderModel"


class CLIP(TextEncoder):
    name: ClassVar[str] = "clip"
    model_class: ClassVar[str] = "CLIPTextModel"

    def forward(self, ids, mask):
        # HunyuanVideo and most CLIP users run CLIP without the mask (the causal mask and the
        # EOS pooling already ignore the padding)
        out = self.model(input_ids=ids)
        return out.last_hidden_state, mask, out.pooler_output


class HunyuanLlama(TextEncoder):
    """HunyuanVideo's LLaVA-Llama-3 text encoder, as the diffusers pipeline runs it."""

    name: ClassVar[str] = "llama"
    model_class: ClassVar[str] = "LlamaModel"

    def template(self) -> str:
        if self.cfg.get("template"):
            return self.cfg["template"]
        from diffusers.pipelines.hunyuan_video.pipeline_hunyuan_video import (
            DEFAULT_PROMPT_TEMPLATE,
        )

        return DEFAULT_PROMPT_TEMPLATE["template"]

    def crop_start(self) -> int:
        """Template tokens before the prompt: ``crop_start`` when set (95 for HunyuanVideo's
        tokenizer), else the token count of the template's text before ``{}``."""
        if self.cfg.get("crop_start") is not None:
            return int(self.cfg["crop_start"])
        prefix = self.template().split("{}")[0]
        return len(self.tokenizer(prefix, add_special_tokens=True)["input_ids"])

    def tokenize(self, prompts: list[str]):
        template = self.template()
        return self.tokenizer(
            [template.format(p) for p in prompts],
            padding="max_length",
            max_length=self.max_length + self.crop_start(),
            truncation=True,
            return_attention_mask=True,
            return_tensors="pt",
        )

    def n_tokens(self, prompts: list[str]) -> list[int]:
        template = self.template()
        ids = self.tokenizer([template.format(p) for p in prompts], truncation=False)["input_ids"]
        return [len(i) - self.crop_start() for i in ids]

    def forward(self, ids, mask):
        out = self.model(input_ids=ids, attention_mask=mask, output_hidden_states=True)
        hidden = out.hidden_states[-(int(self.cfg.get("hidden_layer_skip", 2)) + 1)]
        crop = self.crop_start()
        return hidden[:, crop:], mask[:, crop:], None
