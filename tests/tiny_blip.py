"""Tiny random-weight BLIP-2 and BLIP captioners, and a tiny ImageFolder dataset with a train split.

The model is built from configs, saved with save_pretrained and loaded back through the same
`from_pretrained` path a user's local weights take. Its captions are gibberish from a small word
vocabulary: tests assert their type and count, never their content.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from odin.errors import MissingSplitError

WORDS = ["<pad>", "</s>", "<unk>", "a", "photo", "of", "dog", "cat", "sitting", "on", "the", "grass", "bowl",
         "food", "with", "white", "black", "small", "<image>"]  # fmt: skip


def build_tiny_blip2(folder: str | Path) -> Path:
    import torch
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import (
        Blip2Config,
        Blip2ForConditionalGeneration,
        Blip2Processor,
        BlipImageProcessor,
        PreTrainedTokenizerFast,
    )

    folder = Path(folder)
    tok = Tokenizer(models.WordLevel({w: i for i, w in enumerate(WORDS)}, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=tok, bos_token="</s>", eos_token="</s>", pad_token="<pad>", unk_token="<unk>"
    )
    small = dict(hidden_size=32, num_hidden_layers=1, num_attention_heads=4)
    config = Blip2Config(
        vision_config=dict(**small, intermediate_size=37, image_size=30, patch_size=15),
        qformer_config=dict(**small, intermediate_size=37, encoder_hidden_size=32, vocab_size=len(WORDS)),
        text_config=dict(
            model_type="opt",
            **small,
            vocab_size=len(WORDS),
            ffn_dim=37,
            word_embed_proj_dim=32,
            max_position_embeddings=128,
            bos_token_id=1,
            eos_token_id=1,
            pad_token_id=0,
        ),  # fmt: skip
        num_query_tokens=4,
        image_token_index=WORDS.index("<image>"),
    )
    torch.manual_seed(0)
    model = Blip2ForConditionalGeneration(config).eval()
    with torch.no_grad():  # zero logits for special tokens, so greedy decoding writes words, not "</s>"
        model.get_output_embeddings().weight[[0, 1, 2, WORDS.index("<image>")]] = 0.0
    model.save_pretrained(folder)
    processor = Blip2Processor(BlipImageProcessor(size={"height": 30, "width": 30}), tokenizer, num_query_tokens=4)
    processor.save_pretrained(folder)
    return folder


def build_tiny_blip(folder: str | Path) -> Path:
    """BLIP (v1), to show that any image-text-to-text model loads through the same path."""
    import torch
    from transformers import BertTokenizer, BlipConfig, BlipForConditionalGeneration, BlipImageProcessor, BlipProcessor

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    words = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "[DEC]", *WORDS[3:-1]]
    (folder / "vocab.txt").write_text("\n".join(words))
    tokenizer = BertTokenizer(str(folder / "vocab.txt"), bos_token="[DEC]")
    small = dict(hidden_size=32, num_hidden_layers=1, num_attention_heads=4, intermediate_size=37)
    config = BlipConfig(
        vision_config=dict(**small, image_size=30, patch_size=15),
        text_config=dict(
            **small,
            vocab_size=len(words),
            bos_token_id=5,
            sep_token_id=3,
            pad_token_id=0,
            encoder_hidden_size=32,
            max_position_embeddings=64,
        ),  # fmt: skip
        projection_dim=32,
    )
    torch.manual_seed(0)
    BlipForConditionalGeneration(config).eval().save_pretrained(folder)
    BlipProcessor(BlipImageProcessor(size={"height": 30, "width": 30}), tokenizer).save_pretrained(folder)
    return folder


def write_image_folder(root: str | Path, counts: dict[str, int], size: int = 24) -> Path:
    """<root>/train/<label>/<n>.png: uniform noise, which gives the tiny model's captions some variety."""
    root = Path(root)
    rng = np.random.default_rng(0)
    for label, n in counts.items():
        (root / "train" / label).mkdir(parents=True, exist_ok=True)
        for i in range(n):
            pixels = rng.integers(0, 256, (size, size, 3), dtype=np.uint8)
            Image.fromarray(pixels).save(root / "train" / label / f"{i}.png")
    return root


class FolderDataset:
    """The dataset protocol's parts a caption generator uses, over <root>/<split>/<label>/*.png."""

    def __init__(self, root: str, name: str = "tiny", context: str = "", split: str = "train", template_banks=None):
        self.root, self.name, self.context, self.channels = Path(root), name, context, 3
        self.split = self.root / split
        self.classes = sorted(p.name for p in self.root.glob("*/*") if p.is_dir())

    def train_images(self, label: str) -> list[Image.Image]:
        if not self.split.is_dir():
            raise MissingSplitError(f"{self.root} has no {self.split.name}/ split")
        return [Image.open(p).convert("RGB") for p in sorted((self.split / label).glob("*.png"))]
