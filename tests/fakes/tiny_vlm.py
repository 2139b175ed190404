"""Tiny random vision-language models saved the way the Hub stores the real ones.

Each builder writes a folder that ``from_pretrained`` reads like a Hub repo: the model (random
weights, tiny config), a byte-level BPE tokenizer (the 256-byte alphabet plus the family's special
tokens, built offline), the image processor (``preprocessor_config.json``), the video processor
config (``video_preprocessor_config.json``, written by hand because the video processor classes
cannot be constructed without torchvision), ``processor_config.json``, the chat template and a
generation config. Frame sizes are kept tiny so that a clip costs a few dozen vision tokens.
"""

from __future__ import annotations

import json
from pathlib import Path

from fakes.tiny_clip import bytes_to_unicode

QWEN_TEMPLATE = (
    "{% set image_count = namespace(value=0) %}{% set video_count = namespace(value=0) %}"
    "{% for message in messages %}{% if loop.first and message['role'] != 'system' %}"
    "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n{% endif %}"
    "<|im_start|>{{ message['role'] }}\n{% if message['content'] is string %}"
    "{{ message['content'] }}<|im_end|>\n{% else %}{% for content in message['content'] %}"
    "{% if content['type'] == 'image' or 'image' in content or 'image_url' in content %}"
    "{% set image_count.value = image_count.value + 1 %}<|vision_start|><|image_pad|><|vision_end|>"
    "{% elif content['type'] == 'video' or 'video' in content %}"
    "{% set video_count.value = video_count.value + 1 %}<|vision_start|><|video_pad|><|vision_end|>"
    "{% elif 'text' in content %}{{ content['text'] }}{% endif %}{% endfor %}<|im_end|>\n"
    "{% endif %}{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)

# llava-hf/llava-onevision-qwen2-*-hf
LLAVA_OV_TEMPLATE = (
    "{% for message in messages %}{{'<|im_start|>' + message['role'] + ' '}}"
    "{% for content in message['content'] | selectattr('type', 'equalto', 'image') %}{{ '<image>' }}{% endfor %}"
    "{% for content in message['content'] | selectattr('type', 'equalto', 'video') %}{{ '<video>' }}{% endfor %}"
    "{% for content in message['content'] | selectattr('type', 'equalto', 'text') %}{{ '\\n' + content['text'] }}{% endfor %}"
    "{{'<|im_end|>'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)

SMOLVLM_TEMPLATE = (
    "<|im_start|>{% for message in messages %}{{message['role'] | capitalize}}"
    "{% if message['content'][0]['type'] == 'image' %}{{':'}}{% else %}{{': '}}{% endif %}"
    "{% for line in message['content'] %}{% if line['type'] == 'text' %}{{line['text']}}"
    "{% elif line['type'] == 'image' %}{{ '<image>' }}{% elif line['type'] == 'video' %}{{ '<video>' }}"
    "{% endif %}{% endfor %}<end_of_utterance>\n{% endfor %}"
    "{% if add_generation_prompt %}{{ 'Assistant:' }}{% endif %}"
)

CHATML_TEMPLATE = (
    "{% for message in messages %}<|im_start|>{{ message['role'] }}\n"
    "{% if message['content'] is string %}{{ message['content'] }}{% else %}"
    "{% for c in message['content'] %}{{ c['text'] }}{% endfor %}{% endif %}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)

QWEN_SPECIALS = [
    "<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|vision_start|>", "<|vision_end|>",
    "<|image_pad|>", "<|video_pad|>",
]  # fmt: skip


def byte_tokenizer(specials: list[str], *, eos: str, pad: str, bos: str | None = None):
    """A byte-level BPE tokenizer over the 256-byte alphabet plus ``specials`` (ids 256...)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {c: i for i, c in enumerate(bytes_to_unicode().values())}
    tok = Tokenizer(models.BPE(vocab=vocab, merges=[]))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok, eos_token=eos, pad_token=pad, bos_token=bos
    )
    fast.add_special_tokens(
        {"additional_special_tokens": [s for s in specials if s not in (eos, pad)]}
    )
    return fast


def _write(path: Path, name: str, obj) -> None:
    (path / name).write_text(json.dumps(obj, indent=1) + "\n")


def _save_common(out: Path, model, tokenizer, template: str, generation: dict) -> None:
    from transformers import GenerationConfig

    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    (out / "chat_template.jinja").write_text(template)
    GenerationConfig(**generation).save_pretrained(out)


def _ids(tok, names):
    return {n: tok.convert_tokens_to_ids(n) for n in names}


def _save_qwen2(out: Path, model, tok, ids: dict, processor_class: str) -> Path:
    """What Qwen2-VL and Qwen2.5-VL repos hold besides the weights: the tokenizer and template,
    the image processor, the video processor config and the processor class."""
    from transformers import Qwen2VLImageProcessorPil

    _save_common(
        out, model, tok, QWEN_TEMPLATE,
        {"eos_token_id": ids["<|im_end|>"], "pad_token_id": ids["<|endoftext|>"],
         "bos_token_id": ids["<|endoftext|>"]},
    )  # fmt: skip
    Qwen2VLImageProcessorPil(min_pixels=28 * 28, max_pixels=28 * 28 * 16).save_pretrained(out)
    _write(
        out,
        "video_preprocessor_config.json",
        {
            "video_processor_type": "Qwen2VLVideoProcessor",
            "size": {"shortest_edge": 28 * 28, "longest_edge": 28 * 28 * 16},
            "patch_size": 14, "temporal_patch_size": 2, "merge_size": 2,
            "image_mean": [0.48145466, 0.4578275, 0.40821073],
            "image_std": [0.26862954, 0.26130258, 0.27577711],
        },
    )  # fmt: skip
    _write(out, "processor_config.json", {"processor_class": processor_class})
    return out


def _tiny_qwen2(
    out, seed: int, config_class: str, model_class: str, vision: dict, processor: str
) -> Path:
    """A tiny Qwen2-VL-style model (Qwen2-VL, Qwen2.5-VL): the same text side and files."""
    import torch
    import transformers

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    tok = byte_tokenizer(QWEN_SPECIALS, eos="<|im_end|>", pad="<|endoftext|>")
    ids = _ids(tok, QWEN_SPECIALS)
    cfg = getattr(transformers, config_class)(
        text_config={
            "vocab_size": len(tok), "hidden_size": 32, "intermediate_size": 64,
            "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2,
            "max_position_embeddings": 4096,
            "rope_parameters": {"rope_type": "default", "mrope_section": [1, 1, 2], "rope_theta": 1e4},
            "bos_token_id": ids["<|endoftext|>"], "eos_token_id": ids["<|im_end|>"],
            "pad_token_id": ids["<|endoftext|>"],
        },
        vision_config=vision,
        image_token_id=ids["<|image_pad|>"], video_token_id=ids["<|video_pad|>"],
        vision_start_token_id=ids["<|vision_start|>"], vision_end_token_id=ids["<|vision_end|>"],
    )  # fmt: skip
    torch.manual_seed(seed)
    model = getattr(transformers, model_class)(cfg).eval()
    return _save_qwen2(out, model, tok, ids, processor)


def tiny_qwen2_5_vl(out: str | Path, seed: int = 0) -> Path:
    vision = {
        "depth": 2, "hidden_size": 32, "intermediate_size": 64, "num_heads": 2,
        "out_hidden_size": 32, "patch_size": 14, "spatial_merge_size": 2,
        "temporal_patch_size": 2, "window_size": 56, "fullatt_block_indexes": [1],
    }  # fmt: skip
    return _tiny_qwen2(out, seed, "Qwen2_5_VLConfig", "Qwen2_5_VLForConditionalGeneration",
                       vision, "Qwen2_5_VLProcessor")  # fmt: skip


def tiny_qwen2_vl(out: str | Path, seed: int = 0) -> Path:
    vision = {
        "depth": 2, "embed_dim": 32, "hidden_size": 32, "num_heads": 2, "mlp_ratio": 2,
        "patch_size": 14, "spatial_merge_size": 2, "temporal_patch_size": 2,
    }  # fmt: skip
    return _tiny_qwen2(out, seed, "Qwen2VLConfig", "Qwen2VLForConditionalGeneration", vision,
                       "Qwen2VLProcessor")  # fmt: skip


def tiny_qwen3_vl(out: str | Path, seed: int = 0) -> Path:
    import torch
    from transformers import (
        Qwen2VLImageProcessorPil,
        Qwen3VLConfig,
        Qwen3VLForConditionalGeneration,
    )

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    tok = byte_tokenizer(QWEN_SPECIALS, eos="<|im_end|>", pad="<|endoftext|>")
    ids = _ids(tok, QWEN_SPECIALS)
    cfg = Qwen3VLConfig(
        text_config={
            "vocab_size": len(tok), "hidden_size": 32, "intermediate_size": 64,
            "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2,
            "head_dim": 8, "max_position_embeddings": 4096,
            "rope_parameters": {"rope_type": "default", "mrope_section": [1, 1, 2],
                                "mrope_interleaved": True, "rope_theta": 1e4},
            "bos_token_id": ids["<|endoftext|>"], "eos_token_id": ids["<|im_end|>"],
            "pad_token_id": ids["<|endoftext|>"],
        },
        vision_config={
            "depth": 2, "hidden_size": 32, "intermediate_size": 64, "num_heads": 2,
            "out_hidden_size": 32, "patch_size": 16, "spatial_merge_size": 2,
            "temporal_patch_size": 2, "num_position_embeddings": 64,
            "deepstack_visual_indexes": [1],
        },
        image_token_id=ids["<|image_pad|>"], video_token_id=ids["<|video_pad|>"],
        vision_start_token_id=ids["<|vision_start|>"], vision_end_token_id=ids["<|vision_end|>"],
    )  # fmt: skip
    torch.manual_seed(seed)
    model = Qwen3VLForConditionalGeneration(cfg).eval()
    _save_common(
        out, model, tok, QWEN_TEMPLATE,
        {"eos_token_id": ids["<|im_end|>"], "pad_token_id": ids["<|endoftext|>"]},
    )  # fmt: skip
    Qwen2VLImageProcessorPil(
        min_pixels=32 * 32, max_pixels=32 * 32 * 16, patch_size=16,
        image_mean=[0.5, 0.5, 0.5], image_std=[0.5, 0.5, 0.5],
    ).save_pretrained(out)  # fmt: skip
    _write(
        out,
        "video_preprocessor_config.json",
        {
            "video_processor_type": "Qwen3VLVideoProcessor",
            "size": {"shortest_edge": 32 * 32, "longest_edge": 32 * 32 * 64},
            "patch_size": 16, "temporal_patch_size": 2, "merge_size": 2,
            "image_mean": [0.5, 0.5, 0.5], "image_std": [0.5, 0.5, 0.5],
        },
    )  # fmt: skip
    _write(out, "processor_config.json", {"processor_class": "Qwen3VLProcessor"})
    return out


def tiny_llava_onevision(out: str | Path, seed: int = 0) -> Path:
    import torch
    from transformers import (
        LlavaOnevisionConfig,
        LlavaOnevisionForConditionalGeneration,
        LlavaOnevisionImageProcessorPil,
    )

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    specials = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<image>", "<video>"]
    tok = byte_tokenizer(specials, eos="<|im_end|>", pad="<|endoftext|>")
    ids = _ids(tok, specials)
    side, patch = 32, 8
    cfg = LlavaOnevisionConfig(
        vision_config={
            "model_type": "siglip_vision_model", "hidden_size": 32, "intermediate_size": 64,
            "num_hidden_layers": 2, "num_attention_heads": 2, "image_size": side,
            "patch_size": patch,
        },
        text_config={
            "model_type": "qwen2", "vocab_size": len(tok), "hidden_size": 32,
            "intermediate_size": 64, "num_hidden_layers": 2, "num_attention_heads": 4,
            "num_key_value_heads": 2, "max_position_embeddings": 4096,
            "eos_token_id": ids["<|im_end|>"], "pad_token_id": ids["<|endoftext|>"],
        },
        image_token_index=ids["<image>"], video_token_index=ids["<video>"],
        vision_feature_select_strategy="full", vision_feature_layer=-1,
        image_grid_pinpoints=[[side, side], [side, 2 * side], [2 * side, side]],
    )  # fmt: skip
    torch.manual_seed(seed)
    model = LlavaOnevisionForConditionalGeneration(cfg).eval()
    _save_common(
        out, model, tok, LLAVA_OV_TEMPLATE,
        {"eos_token_id": ids["<|im_end|>"], "pad_token_id": ids["<|endoftext|>"]},
    )  # fmt: skip
    LlavaOnevisionImageProcessorPil(
        size={"height": side, "width": side},
        image_grid_pinpoints=[[side, side], [side, 2 * side], [2 * side, side]],
    ).save_pretrained(out)
    _write(
        out,
        "video_preprocessor_config.json",
        {
            "video_processor_type": "LlavaOnevisionVideoProcessor",
            "size": {"height": side, "width": side},
            "image_mean": [0.48145466, 0.4578275, 0.40821073],
            "image_std": [0.26862954, 0.26130258, 0.27577711],
        },
    )
    _write(
        out,
        "processor_config.json",
        {
            "processor_class": "LlavaOnevisionProcessor",
            "num_image_tokens": (side // patch) ** 2,
            "vision_feature_select_strategy": "full",
            "vision_aspect_ratio": "anyres_max_9",
        },
    )
    return out


# vicuna-style turns, as llava-hf/LLaVA-NeXT-Video-7B-hf prompts (written for these tests)
LLAVA_NEXT_VIDEO_TEMPLATE = (
    "{% for message in messages %}{% if message['role'] == 'system' %}"
    "{% for c in message['content'] %}{{ c['text'] }} {% endfor %}"
    "{% else %}{{ message['role'] | upper }}: "
    "{% for c in message['content'] | selectattr('type', 'equalto', 'video') %}<video>\n{% endfor %}"
    "{% for c in message['content'] | selectattr('type', 'equalto', 'text') %}{{ c['text'] }} {% endfor %}"
    "{% endif %}{% endfor %}{% if add_generation_prompt %}ASSISTANT:{% endif %}"
)


def tiny_llava_next_video(out: str | Path, seed: int = 0) -> Path:
    import torch
    from transformers import (
        LlavaNextImageProcessorPil,
        LlavaNextVideoConfig,
        LlavaNextVideoForConditionalGeneration,
    )

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    specials = ["<unk>", "<s>", "</s>", "<image>", "<video>"]
    tok = byte_tokenizer(specials, eos="</s>", pad="<unk>", bos="<s>")
    ids = _ids(tok, specials)
    side, patch = 32, 8
    cfg = LlavaNextVideoConfig(
        vision_config={
            "model_type": "clip_vision_model", "hidden_size": 32, "intermediate_size": 64,
            "num_hidden_layers": 2, "num_attention_heads": 2, "image_size": side,
            "patch_size": patch, "projection_dim": 32,
        },
        text_config={
            "model_type": "llama", "vocab_size": len(tok), "hidden_size": 32,
            "intermediate_size": 64, "num_hidden_layers": 2, "num_attention_heads": 4,
            "num_key_value_heads": 2, "max_position_embeddings": 4096,
            "bos_token_id": ids["<s>"], "eos_token_id": ids["</s>"], "pad_token_id": ids["<unk>"],
        },
        image_token_index=ids["<image>"], video_token_index=ids["<video>"],
        vision_feature_select_strategy="default", vision_feature_layer=-2,
        spatial_pool_mode="average", spatial_pool_stride=2,
        image_grid_pinpoints=[[side, side], [side, 2 * side], [2 * side, side]],
    )  # fmt: skip
    torch.manual_seed(seed)
    model = LlavaNextVideoForConditionalGeneration(cfg).eval()
    _save_common(
        out, model, tok, LLAVA_NEXT_VIDEO_TEMPLATE,
        {"eos_token_id": ids["</s>"], "pad_token_id": ids["<unk>"], "bos_token_id": ids["<s>"]},
    )  # fmt: skip
    LlavaNextImageProcessorPil(
        size={"shortest_edge": side}, crop_size={"height": side, "width": side},
        image_grid_pinpoints=[[side, side], [side, 2 * side], [2 * side, side]],
    ).save_pretrained(out)  # fmt: skip
    _write(
        out,
        "video_preprocessor_config.json",
        {
            "video_processor_type": "LlavaNextVideoVideoProcessor",
            "size": {"shortest_edge": side}, "crop_size": {"height": side, "width": side},
            "image_mean": [0.48145466, 0.4578275, 0.40821073],
            "image_std": [0.26862954, 0.26130258, 0.27577711],
        },
    )  # fmt: skip
    _write(
        out,
        "processor_config.json",
        {"processor_class": "LlavaNextVideoProcessor", "patch_size": patch,
         "vision_feature_select_strategy": "default"},
    )  # fmt: skip
    return out


def tiny_smolvlm2(out: str | Path, seed: int = 0) -> Path:
    import torch
    from transformers import (
        SmolVLMConfig,
        SmolVLMForConditionalGeneration,
        SmolVLMImageProcessorPil,
    )

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    specials = [
        "<|endoftext|>", "<|im_start|>", "<end_of_utterance>", "<fake_token_around_image>",
        "<global-img>", "<image>",
    ]  # fmt: skip
    tok = byte_tokenizer(
        specials, eos="<end_of_utterance>", pad="<|endoftext|>", bos="<|im_start|>"
    )
    ids = _ids(tok, specials)
    side, patch = 32, 8
    cfg = SmolVLMConfig(
        vision_config={
            "hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2,
            "num_attention_heads": 2, "image_size": side, "patch_size": patch,
        },
        text_config={
            "model_type": "llama", "vocab_size": len(tok), "hidden_size": 32,
            "intermediate_size": 64, "num_hidden_layers": 2, "num_attention_heads": 4,
            "num_key_value_heads": 2, "max_position_embeddings": 4096,
            "eos_token_id": ids["<end_of_utterance>"], "pad_token_id": ids["<|endoftext|>"],
            "bos_token_id": ids["<|im_start|>"],
        },
        image_token_id=ids["<image>"], scale_factor=2,
    )  # fmt: skip
    torch.manual_seed(seed)
    model = SmolVLMForConditionalGeneration(cfg).eval()
    _save_common(
        out, model, tok, SMOLVLM_TEMPLATE,
        {"eos_token_id": ids["<end_of_utterance>"], "pad_token_id": ids["<|endoftext|>"],
         "bos_token_id": ids["<|im_start|>"]},
    )  # fmt: skip
    SmolVLMImageProcessorPil(
        size={"longest_edge": side}, max_image_size={"longest_edge": side}, do_image_splitting=False
    ).save_pretrained(out)
    _write(
        out,
        "video_preprocessor_config.json",
        {
            "video_processor_type": "SmolVLMVideoProcessor",
            "size": {"longest_edge": side},
            "max_image_size": {"longest_edge": side},
            "video_sampling": {"fps": 1, "max_frames": 64, "video_size": {"longest_edge": side}},
            "image_mean": [0.5, 0.5, 0.5],
            "image_std": [0.5, 0.5, 0.5],
        },
    )
    _write(
        out,
        "processor_config.json",
        {"processor_class": "SmolVLMProcessor", "image_seq_len": (side // patch) ** 2 // 4},
    )
    return out


def tiny_causal_lm(out: str | Path, seed: int = 0) -> Path:
    """A tiny Qwen2 text model with a ChatML template (the caption rewrite's LLM)."""
    import torch
    from transformers import Qwen2Config, Qwen2ForCausalLM

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    specials = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
    tok = byte_tokenizer(specials, eos="<|im_end|>", pad="<|endoftext|>")
    ids = _ids(tok, specials)
    cfg = Qwen2Config(
        vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=2048,
        eos_token_id=ids["<|im_end|>"], pad_token_id=ids["<|endoftext|>"],
    )  # fmt: skip
    torch.manual_seed(seed)
    model = Qwen2ForCausalLM(cfg).eval()
    tok.chat_template = CHATML_TEMPLATE
    _save_common(
        out, model, tok, CHATML_TEMPLATE,
        {"eos_token_id": ids["<|im_end|>"], "pad_token_id": ids["<|endoftext|>"]},
    )  # fmt: skip
    return out


def tiny_clip(out: str | Path, seed: int = 0) -> Path:
    """A tiny CLIP (text and vision towers) with a byte-level tokenizer (the alignment score)."""
    import torch
    from transformers import CLIPConfig, CLIPImageProcessorPil, CLIPModel

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    specials = ["<|startoftext|>", "<|endoftext|>"]
    tok = byte_tokenizer(specials, eos="<|endoftext|>", pad="<|endoftext|>", bos="<|startoftext|>")
    from tokenizers.processors import TemplateProcessing

    bos, eos = tok.bos_token_id, tok.eos_token_id
    tok.backend_tokenizer.post_processor = TemplateProcessing(
        single="<|startoftext|> $A <|endoftext|>",
        special_tokens=[("<|startoftext|>", bos), ("<|endoftext|>", eos)],
    )
    cfg = CLIPConfig(
        text_config={
            "vocab_size": len(tok), "hidden_size": 32, "intermediate_size": 64,
            "num_hidden_layers": 2, "num_attention_heads": 2, "max_position_embeddings": 77,
            "eos_token_id": tok.eos_token_id, "pad_token_id": tok.pad_token_id,
            "bos_token_id": tok.bos_token_id,
        },
        vision_config={
            "hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2,
            "num_attention_heads": 2, "image_size": 32, "patch_size": 8,
        },
        projection_dim=16,
    )  # fmt: skip
    torch.manual_seed(seed)
    CLIPModel(cfg).eval().save_pretrained(out)
    tok.save_pretrained(out)
    CLIPImageProcessorPil(
        size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32}
    ).save_pretrained(out)
    return out


BUILDERS = {
    "qwen2_vl": tiny_qwen2_vl,
    "qwen2_5_vl": tiny_qwen2_5_vl,
    "qwen3_vl": tiny_qwen3_vl,
    "llava_onevision": tiny_llava_onevision,
    "llava_next_video": tiny_llava_next_video,
    "smolvlm2": tiny_smolvlm2,
}
