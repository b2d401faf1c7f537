"""A tiny random-weight CLIP (model + tokenizer + image processor), saved to a folder like a user's local weights.

Built from configs, saved with save_pretrained and loaded back by ClipFilter through the same
`from_pretrained` path a real CLIP takes. Its scores are meaningless: tests assert mechanics only.
`size="b32"` builds the real ViT-B/32 architecture (random weights) for timing.
"""

from __future__ import annotations

from pathlib import Path

from tiny_sd import write_tokenizer_files

TINY = {"hidden_size": 32, "intermediate_size": 37, "num_attention_heads": 4, "num_hidden_layers": 2}
# openai/clip-vit-base-patch32's text and vision towers
B32_TEXT = {"hidden_size": 512, "intermediate_size": 2048, "num_attention_heads": 8, "num_hidden_layers": 12,
            "vocab_size": 49408}  # the byte-level test tokenizer uses only its first ~500 ids
B32_VISION = {"hidden_size": 768, "intermediate_size": 3072, "num_attention_heads": 12, "num_hidden_layers": 12}


def build_tiny_clip(folder: str | Path, size: str = "tiny") -> Path:
    import torch
    from transformers import CLIPConfig, CLIPImageProcessor, CLIPModel, CLIPProcessor, CLIPTokenizer

    folder = Path(folder)
    tok_dir = folder.parent / (folder.name + "-tokenizer-src")
    write_tokenizer_files(tok_dir)
    tokenizer = CLIPTokenizer.from_pretrained(tok_dir, model_max_length=77)
    ids = {"bos_token_id": tokenizer.bos_token_id, "eos_token_id": tokenizer.eos_token_id,
           "pad_token_id": tokenizer.pad_token_id, "vocab_size": len(tokenizer), "max_position_embeddings": 77}
    if size == "tiny":
        text, vision, image_size, patch, projection = TINY, TINY, 32, 8, 16
    elif size == "b32":
        text, vision, image_size, patch, projection = B32_TEXT, B32_VISION, 224, 32, 512
    else:
        raise ValueError(f"size={size!r}: tiny or b32")
    torch.manual_seed(0)
    config = CLIPConfig(text_config={**ids, **text},
                        vision_config={**vision, "image_size": image_size, "patch_size": patch},
                        projection_dim=projection)
    CLIPModel(config).eval().save_pretrained(folder)
    image_processor = CLIPImageProcessor(size={"shortest_edge": image_size},
                                         crop_size={"height": image_size, "width": image_size})
    CLIPProcessor(image_processor=image_processor, tokenizer=tokenizer).save_pretrained(folder)
    return folder
