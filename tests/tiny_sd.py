"""A tiny random-weight Stable Diffusion pipeline, saved to a folder like a user's local weights.

Built from configs the way diffusers' own tests build `get_dummy_components()`, so the real
`from_pretrained` path runs offline in seconds. Its images are noise; tests assert on shape,
determinism and bookkeeping, never on content.
"""

from __future__ import annotations

import json
from pathlib import Path


def write_tokenizer_files(folder: Path) -> None:
    """A byte-level BPE vocabulary with no merges: every byte is a token, which is all CLIP needs."""
    # GPT-2/CLIP byte-to-unicode table: printable bytes map to themselves, the rest to 256+.
    printable = [
        *range(ord("!"), ord("~") + 1),
        *range(ord("¡"), ord("¬") + 1),
        *range(ord("®"), ord("ÿ") + 1),
    ]
    others = [b for b in range(256) if b not in printable]
    chars = [chr(b) for b in printable] + [chr(256 + i) for i in range(len(others))]
    tokens = chars + [c + "</w>" for c in chars] + ["<|startoftext|>", "<|endoftext|>"]
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "vocab.json").write_text(json.dumps({t: i for i, t in enumerate(tokens)}))
    (folder / "merges.txt").write_text("#version: 0.2\n")


def build_tiny_sd(folder: str | Path, *, safety_checker: bool = False, size: int = 32) -> Path:
    """Save a tiny StableDiffusionPipeline to `folder` and return it.

    `safety_checker=True` adds a tiny random StableDiffusionSafetyChecker whose thresholds are set
    so it never fires; tests move `concept_embeds_weights` to make it fire on chosen images.
    """
    import torch
    from diffusers import AutoencoderKL, DDIMScheduler, StableDiffusionPipeline, UNet2DConditionModel
    from diffusers.pipelines.stable_diffusion.safety_checker import StableDiffusionSafetyChecker
    from transformers import CLIPConfig, CLIPImageProcessor, CLIPTextConfig, CLIPTextModel, CLIPTokenizer

    folder = Path(folder)
    torch.manual_seed(0)
    unet = UNet2DConditionModel(
        block_out_channels=(32, 64),
        layers_per_block=1,
        sample_size=size // 2,
        in_channels=4,
        out_channels=4,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        cross_attention_dim=32,
        norm_num_groups=32,
    )
    vae = AutoencoderKL(
        block_out_channels=(32, 64),
        in_channels=3,
        out_channels=3,
        down_block_types=("DownEncoderBlock2D", "DownEncoderBlock2D"),
        up_block_types=("UpDecoderBlock2D", "UpDecoderBlock2D"),
        latent_channels=4,
        norm_num_groups=32,
    )
    tok_dir = folder.parent / (folder.name + "-tokenizer-src")
    write_tokenizer_files(tok_dir)
    tokenizer = CLIPTokenizer.from_pretrained(tok_dir, model_max_length=77)
    text_encoder = CLIPTextModel(
        CLIPTextConfig(
            bos_token_id=tokenizer.bos_token_id,
            eos_token_id=tokenizer.eos_token_id,
            pad_token_id=tokenizer.pad_token_id,
            hidden_size=32,
            intermediate_size=37,
            num_attention_heads=4,
            num_hidden_layers=2,
            vocab_size=len(tokenizer),
            max_position_embeddings=77,
        )
    )
    scheduler = DDIMScheduler(
        beta_start=0.00085,
        beta_end=0.012,
        beta_schedule="scaled_linear",
        clip_sample=False,
        set_alpha_to_one=False,
        steps_offset=1,
    )
    checker = extractor = None
    if safety_checker:
        tiny = {"hidden_size": 32, "intermediate_size": 37, "num_attention_heads": 4, "num_hidden_layers": 2}
        checker = StableDiffusionSafetyChecker(
            CLIPConfig(
                text_config=tiny,
                vision_config={**tiny, "image_size": 32, "patch_size": 8},
                projection_dim=16,
            )
        )
        with torch.no_grad():  # cosine scores lie in [-1, 1]: a weight of 2 never fires
            checker.concept_embeds.normal_()
            checker.concept_embeds_weights.fill_(2.0)
            checker.special_care_embeds_weights.fill_(2.0)
        extractor = CLIPImageProcessor(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32})
    pipe = StableDiffusionPipeline(
        vae=vae,
        text_encoder=text_encoder,
        tokenizer=tokenizer,
        unet=unet,
        scheduler=scheduler,
        safety_checker=checker,
        feature_extractor=extractor,
        requires_safety_checker=safety_checker,
    )
    pipe.save_pretrained(folder)
    return folder
