"""Tiny random pipelines of a few generator families, saved like their Hub repos, for tests and
CPU benchmarks.

No model hub is needed: each builder makes every component from a tiny config with the real
class (transformer or UNet, VAE, text or image encoder, tokenizer, scheduler), assembles the
diffusers pipeline and ``save_pretrained`` s it into a folder with the ``model_index.json`` of a
real checkpoint. The generate stage then loads it with the same
``Pipeline.from_pretrained(folder, revision=...)`` as a real model. Random weights: assert on
files, sizes, frame counts, plumbing and determinism, never on what the videos look like.

Sizes follow diffusers' own pipeline tests where they have them.
"""

from __future__ import annotations

from pathlib import Path

# the families with a builder here: text-to-video, image-to-video, text-to-image
BUILDERS = ("wan", "cogvideox", "allegro", "svd", "sd3", "flux")


def _t5(kind: str = "t5", d_model: int = 32):
    import transformers

    from fakes.tiny_vae import t5_tokenizer

    tok = t5_tokenizer()
    cfg_cls = transformers.T5Config if kind == "t5" else transformers.UMT5Config
    model_cls = transformers.T5EncoderModel if kind == "t5" else transformers.UMT5EncoderModel
    cfg = cfg_cls(vocab_size=len(tok), d_model=d_model, d_kv=8, d_ff=37, num_layers=2, num_heads=4)
    return model_cls(cfg).eval(), tok


def _clip_text(with_projection: bool = True, hidden: int = 32, projection: int = 32):
    import transformers

    from fakes.tiny_clip import clip_tokenizer

    tok = clip_tokenizer()
    tok.model_max_length = 77  # what the real CLIP tokenizers say; the pipelines pad to it
    cfg = transformers.CLIPTextConfig(
        vocab_size=len(tok),
        hidden_size=hidden,
        intermediate_size=37,
        num_hidden_layers=2,
        num_attention_heads=4,
        max_position_embeddings=77,
        projection_dim=projection,
        bos_token_id=tok.bos_token_id,
        eos_token_id=tok.eos_token_id,
        pad_token_id=tok.pad_token_id,
    )
    cls = (
        transformers.CLIPTextModelWithProjection if with_projection else transformers.CLIPTextModel
    )
    return cls(cfg).eval(), tok


def build(name: str, dest: str | Path, *, seed: int = 0) -> Path:
    """A tiny random pipeline of family ``name`` (see ``BUILDERS``) saved in ``dest``."""
    import torch

    if name not in BUILDERS:
        raise KeyError(f"no tiny builder for {name!r}; have {', '.join(BUILDERS)}")
    torch.manual_seed(seed)
    pipe = globals()[f"_build_{name}"]()
    dest = Path(dest)
    pipe.save_pretrained(dest)
    return dest


def _build_wan():
    from diffusers import (
        AutoencoderKLWan,
        FlowMatchEulerDiscreteScheduler,
        WanPipeline,
        WanTransformer3DModel,
    )

    text_encoder, tok = _t5("umt5")
    return WanPipeline(
        tokenizer=tok,
        text_encoder=text_encoder,
        vae=AutoencoderKLWan(
            base_dim=3,
            z_dim=16,
            dim_mult=[1, 1, 1, 1],
            num_res_blocks=1,
            temperal_downsample=[False, True, True],
        ),
        scheduler=FlowMatchEulerDiscreteScheduler(shift=7.0),
        transformer=WanTransformer3DModel(
            patch_size=(1, 2, 2),
            num_attention_heads=2,
            attention_head_dim=12,
            in_channels=16,
            out_channels=16,
            text_dim=32,
            freq_dim=256,
            ffn_dim=32,
            num_layers=2,
            cross_attn_norm=True,
            qk_norm="rms_norm_across_heads",
            rope_max_seq_len=32,
        ),
    )


def _build_cogvideox():
    from diffusers import (
        AutoencoderKLCogVideoX,
        CogVideoXDDIMScheduler,
        CogVideoXPipeline,
        CogVideoXTransformer3DModel,
    )

    text_encoder, tok = _t5("t5")
    return CogVideoXPipeline(
        tokenizer=tok,
        text_encoder=text_encoder,
        vae=AutoencoderKLCogVideoX(
            in_channels=3,
            out_channels=3,
            down_block_types=("CogVideoXDownBlock3D",) * 4,
            up_block_types=("CogVideoXUpBlock3D",) * 4,
            block_out_channels=(8, 8, 8, 8),
            latent_channels=4,
            layers_per_block=1,
            norm_num_groups=2,
            temporal_compression_ratio=4,
        ),
        transformer=CogVideoXTransformer3DModel(
            num_attention_heads=2,
            attention_head_dim=16,
            in_channels=4,
            out_channels=4,
            time_embed_dim=2,
            text_embed_dim=32,
            num_layers=1,
            sample_width=6,
            sample_height=4,
            sample_frames=9,
            patch_size=2,
            temporal_compression_ratio=4,
            # like CogVideoX-5b: rotary embeddings, any frame size (2b's sin-cos ones fix it)
            use_rotary_positional_embeddings=True,
        ),
        scheduler=CogVideoXDDIMScheduler(),
    )


def _build_allegro():
    from diffusers import (
        AllegroPipeline,
        AllegroTransformer3DModel,
        AutoencoderKLAllegro,
        DDIMScheduler,
    )

    text_encoder, tok = _t5("t5", d_model=24)
    return AllegroPipeline(
        tokenizer=tok,
        text_encoder=text_encoder,
        vae=AutoencoderKLAllegro(
            in_channels=3,
            out_channels=3,
            down_block_types=("AllegroDownBlock3D",) * 4,
            up_block_types=("AllegroUpBlock3D",) * 4,
            block_out_channels=(8, 8, 8, 8),
            latent_channels=4,
            layers_per_block=1,
            norm_num_groups=2,
            temporal_compression_ratio=4,
        ),
        transformer=AllegroTransformer3DModel(
            num_attention_heads=2,
            attention_head_dim=12,
            in_channels=4,
            out_channels=4,
            num_layers=1,
            cross_attention_dim=24,
            caption_channels=24,  # the T5's width
            sample_width=8,
            sample_height=8,
            sample_frames=8,
        ),
        scheduler=DDIMScheduler(),
    )


def _build_svd():
    import transformers
    from diffusers import (
        AutoencoderKLTemporalDecoder,
        EulerDiscreteScheduler,
        StableVideoDiffusionPipeline,
        UNetSpatioTemporalConditionModel,
    )

    image_encoder = transformers.CLIPVisionModelWithProjection(
        transformers.CLIPVisionConfig(
            hidden_size=32,
            projection_dim=32,
            num_hidden_layers=2,
            num_attention_heads=4,
            image_size=224,  # SVD resizes the conditioning image to 224 before CLIP
            intermediate_size=37,
            patch_size=32,
        )
    ).eval()
    return StableVideoDiffusionPipeline(
        vae=AutoencoderKLTemporalDecoder(
            block_out_channels=[32, 64],
            in_channels=3,
            out_channels=3,
            down_block_types=["DownEncoderBlock2D", "DownEncoderBlock2D"],
            latent_channels=4,
        ),
        image_encoder=image_encoder,
        unet=UNetSpatioTemporalConditionModel(
            block_out_channels=(32, 64),
            layers_per_block=1,
            sample_size=16,
            in_channels=8,
            out_channels=4,
            down_block_types=("CrossAttnDownBlockSpatioTemporal", "DownBlockSpatioTemporal"),
            up_block_types=("UpBlockSpatioTemporal", "CrossAttnUpBlockSpatioTemporal"),
            cross_attention_dim=32,
            num_attention_heads=4,
            projection_class_embeddings_input_dim=96,
            addition_time_embed_dim=32,
        ),
        scheduler=EulerDiscreteScheduler(
            beta_start=0.00085,
            beta_end=0.012,
            beta_schedule="scaled_linear",
            interpolation_type="linear",
            num_train_timesteps=1000,
            prediction_type="v_prediction",
            sigma_max=700.0,
            sigma_min=0.002,
            steps_offset=1,
            timestep_spacing="leading",
            timestep_type="continuous",
            use_karras_sigmas=True,
        ),
        feature_extractor=transformers.CLIPImageProcessor(crop_size=32, size=32),
    )


def _build_sd3():
    from diffusers import (
        FlowMatchEulerDiscreteScheduler,
        SD3Transformer2DModel,
        StableDiffusion3Pipeline,
    )

    text_encoder, tok = _clip_text()
    text_encoder_2, tok_2 = _clip_text()
    text_encoder_3, tok_3 = _t5("t5")
    return StableDiffusion3Pipeline(
        transformer=SD3Transformer2DModel(
            sample_size=32,
            patch_size=1,
            in_channels=4,
            num_layers=1,
            attention_head_dim=8,
            num_attention_heads=4,
            caption_projection_dim=32,
            joint_attention_dim=32,
            pooled_projection_dim=64,
            out_channels=4,
        ),
        scheduler=FlowMatchEulerDiscreteScheduler(),
        vae=_sd3_style_vae(latent_channels=4),
        text_encoder=text_encoder,
        tokenizer=tok,
        text_encoder_2=text_encoder_2,
        tokenizer_2=tok_2,
        text_encoder_3=text_encoder_3,
        tokenizer_3=tok_3,
    )


def _sd3_style_vae(latent_channels: int):
    """The image VAE of SD 3.5 and FLUX, tiny (their shift and scaling factors)."""
    from diffusers import AutoencoderKL

    return AutoencoderKL(
        sample_size=32,
        in_channels=3,
        out_channels=3,
        down_block_types=("DownEncoderBlock2D",) * 2,
        up_block_types=("UpDecoderBlock2D",) * 2,
        block_out_channels=(4, 8),
        layers_per_block=1,
        latent_channels=latent_channels,
        norm_num_groups=1,
        use_quant_conv=False,
        use_post_quant_conv=False,
        shift_factor=0.0609,
        scaling_factor=1.5035,
    )


def _build_flux():
    from diffusers import (
        FlowMatchEulerDiscreteScheduler,
        FluxPipeline,
        FluxTransformer2DModel,
    )

    text_encoder, tok = _clip_text(with_projection=False)
    text_encoder_2, tok_2 = _t5("t5")
    return FluxPipeline(
        scheduler=FlowMatchEulerDiscreteScheduler(),
        vae=_sd3_style_vae(latent_channels=1),
        text_encoder=text_encoder,
        tokenizer=tok,
        text_encoder_2=text_encoder_2,
        tokenizer_2=tok_2,
        transformer=FluxTransformer2DModel(
            patch_size=1,
            in_channels=4,
            num_layers=1,
            num_single_layers=1,
            attention_head_dim=16,
            num_attention_heads=2,
            joint_attention_dim=32,
            pooled_projection_dim=32,
            axes_dims_rope=[4, 4, 8],
        ),
    )
