"""Tiny random models of every family, saved like their Hub repos, for tests and CPU benchmarks.

No model hub is needed: each builder makes a model from a tiny config with the real class,
``save_pretrained`` s it (and a tokenizer built offline) into ``root/<subfolder>``, and returns
the config section that points the encode stage at it. The stage then loads it through the same
``from_pretrained(root, revision=..., subfolder=...)`` as a real model. The compression ratios
are the real ones (x8/x4 for Wan 2.1, HunyuanVideo and CogVideoX, x16/x4 for Wan 2.2, x32/x8 for
LTX-Video); only widths and depths shrink. Random weights: assert on shapes, files and
determinism, never on what the latents look like.
"""

from __future__ import annotations

from pathlib import Path

VAE_CONFIGS: dict[str, tuple[str, dict]] = {
    "wan2_1": (
        "AutoencoderKLWan",
        dict(
            base_dim=8,
            z_dim=16,
            dim_mult=[1, 1, 1, 1],
            num_res_blocks=1,
            temperal_downsample=[False, True, True],
        ),
    ),
    "wan2_2": (
        "AutoencoderKLWan",
        dict(
            base_dim=8,
            z_dim=48,
            dim_mult=[1, 1, 1, 1],
            num_res_blocks=1,
            temperal_downsample=[False, True, True],
            is_residual=True,
            in_channels=12,
            out_channels=12,
            patch_size=2,
            scale_factor_spatial=16,
            latents_mean=[0.01 * i for i in range(48)],
            latents_std=[1.0 + 0.02 * i for i in range(48)],
        ),
    ),
    "hunyuan": (
        "AutoencoderKLHunyuanVideo",
        dict(block_out_channels=(8,) * 4, layers_per_block=1, norm_num_groups=4),
    ),
    "cogvideox": (
        "AutoencoderKLCogVideoX",
        dict(block_out_channels=(8,) * 4, layers_per_block=1, norm_num_groups=2),
    ),
    "ltx": (
        "AutoencoderKLLTXVideo",
        dict(
            block_out_channels=(8,) * 4,
            decoder_block_out_channels=(8,) * 4,
            layers_per_block=(1,) * 5,
            decoder_layers_per_block=(1,) * 5,
            spatio_temporal_scaling=(True, True, True, False),
            decoder_spatio_temporal_scaling=(True, True, True, False),
            patch_size=4,
        ),
    ),
}

WORDS = (  # noqa: SIM905 - a sentence reads better than a 50-item list
    "a the of and in on with at over under cat dog bird car person man woman child runs walks "
    "flies drives jumps red blue green white black bright dark sky city street grass water "
    "night day slow fast camera pans zooms video clip scene shot close wide view moving"
).split()


def build_vae(name: str, root: str | Path, *, seed: int = 0, subfolder: str = "vae") -> dict:
    """A tiny random VAE of family ``name`` saved under ``root/subfolder``; returns the
    ``encode.vae`` config section for it."""
    import diffusers
    import torch

    cls_name, kwargs = VAE_CONFIGS[name]
    torch.manual_seed(seed)
    model = getattr(diffusers, cls_name)(**kwargs)
    if name == "ltx":  # non-trivial normalisation buffers, to see them applied
        c = model.latents_mean.numel()
        model.latents_mean.copy_(torch.linspace(-0.5, 0.5, c))
        model.latents_std.copy_(torch.linspace(0.5, 1.5, c))
    model.save_pretrained(Path(root) / subfolder)
    return {"name": name, "model": str(root), "revision": None, "subfolder": subfolder}


def t5_tokenizer():
    """A T5 (Unigram) tokenizer over a small English vocabulary, built without the Hub."""
    from transformers import T5Tokenizer

    vocab = [("<pad>", 0.0), ("</s>", 0.0), ("<unk>", 0.0)]
    vocab += [("\u2581" + w, -1.0 - 0.01 * i) for i, w in enumerate(WORDS)]
    vocab += [(c, -8.0) for c in "abcdefghijklmnopqrstuvwxyz0123456789.,'-"]
    vocab += [("\u2581", -9.0)]
    return T5Tokenizer(vocab=vocab, extra_ids=0)


def bpe_tokenizer(kind: str):
    """A byte-level BPE tokenizer (CLIP- or Llama-style special tokens), built offline."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE(unk_token=None))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    specials = (
        ["<|startoftext|>", "<|endoftext|>"]
        if kind == "clip"
        else ["<|begin_of_text|>", "<|eot_id|>", "<|start_header_id|>", "<|end_header_id|>"]
    )
    trainer = trainers.BpeTrainer(
        vocab_size=400,
        special_tokens=specials,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator([" ".join(WORDS)] * 4, trainer)
    if kind == "clip":
        from tokenizers import processors

        tok.post_processor = processors.TemplateProcessing(
            single="<|startoftext|> $A <|endoftext|>",
            special_tokens=[("<|startoftext|>", 0), ("<|endoftext|>", 1)],
        )
        return PreTrainedTokenizerFast(
            tokenizer_object=tok,
            bos_token="<|startoftext|>",
            eos_token="<|endoftext|>",
            pad_token="<|endoftext|>",
        )
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token="<|begin_of_text|>",
        eos_token="<|eot_id|>",
        pad_token="<|eot_id|>",
    )


def build_text_encoder(
    name: str,
    root: str | Path,
    *,
    seed: int = 0,
    subfolder: str = "text_encoder",
    tokenizer_subfolder: str = "tokenizer",
    max_length: int = 16,
) -> dict:
    """A tiny random text encoder of family ``name`` (t5, umt5, clip, llama) and its tokenizer
    under ``root``; returns the ``encode.text_encoder`` config section for it."""
    import torch
    import transformers

    torch.manual_seed(seed)
    root = Path(root)
    if name in ("t5", "umt5"):
        tok = t5_tokenizer()
        cfg_cls = transformers.T5Config if name == "t5" else transformers.UMT5Config
        model_cls = transformers.T5EncoderModel if name == "t5" else transformers.UMT5EncoderModel
        config = cfg_cls(
            vocab_size=len(tok), d_model=32, d_kv=8, d_ff=64, num_layers=2, num_heads=4
        )
    elif name == "clip":
        tok = bpe_tokenizer("clip")
        model_cls = transformers.CLIPTextModel
        config = transformers.CLIPTextConfig(
            vocab_size=len(tok),
            hidden_size=32,
            intermediate_size=64,
            num_hidden_layers=2,
            num_attention_heads=4,
            max_position_embeddings=max(77, max_length),
            bos_token_id=tok.bos_token_id,
            eos_token_id=tok.eos_token_id,
            pad_token_id=tok.pad_token_id,
        )
    elif name == "llama":
        tok = bpe_tokenizer("llama")
        model_cls = transformers.LlamaModel
        config = transformers.LlamaConfig(
            vocab_size=len(tok),
            hidden_size=32,
            intermediate_size=64,
            num_hidden_layers=4,
            num_attention_heads=4,
            num_key_value_heads=2,
            max_position_embeddings=1024,
        )
    else:
        raise KeyError(name)
    model_cls(config).save_pretrained(root / subfolder)
    tok.save_pretrained(root / tokenizer_subfolder)
    return {
        "name": name,
        "model": str(root),
        "revision": None,
        "subfolder": subfolder,
        "tokenizer_subfolder": tokenizer_subfolder,
        "max_length": max_length,
    }
