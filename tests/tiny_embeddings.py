"""Tiny embedding sources for tests: a hand-made word2vec file and a random-weight sentence-transformers model.

The vector file is built so the relations Algorithm 1 relies on hold: living things ("dog",
"terrier", "tree") lie near the living words ("animal", "animate", "plant"), made things ("chair",
"hammer") near the non-living ones ("object", "tool"). The sentence-transformers model is a tiny
random BERT: its embeddings are meaningless, tests assert mechanics only.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

# Two directions (living, non-living) plus a little noise per word, in 8 dimensions.
LIVING = ["animate", "animal", "plant", "living", "creature", "organism", "dog", "cat", "terrier", "yorkshire",
          "tree", "bird", "young", "sick", "sleeping"]  # fmt: skip
NONLIVING = ["inanimate", "object", "man", "made", "artifact", "thing", "tool", "chair", "hammer", "table",
             "broken", "wooden", "red", "car", "stone"]  # fmt: skip
NEUTRAL = ["a", "photo", "of", "one", "the", "old", "new"]
PHRASES = {"traffic_light": "nonliving"}  # a phrase token, as in the GoogleNews vectors


def vector_table(dim: int = 8, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    living, nonliving = np.eye(dim)[0], np.eye(dim)[1]
    table = {}
    for words, axis in ((LIVING, living), (NONLIVING, nonliving), (NEUTRAL, np.zeros(dim))):
        for word in words:
            table[word] = axis * 3.0 + rng.normal(scale=0.3, size=dim)
    for phrase, kind in PHRASES.items():
        table[phrase] = (living if kind == "living" else nonliving) * 3.0 + rng.normal(scale=0.3, size=dim)
    return table


def write_vectors(path: str | Path, binary: bool | None = None) -> Path:
    """A word2vec-format file (binary when the name ends in .bin, as Embedder reads it)."""
    from gensim.models import KeyedVectors

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    table = vector_table()
    kv = KeyedVectors(vector_size=len(next(iter(table.values()))))
    kv.add_vectors(list(table), np.stack(list(table.values())).astype(np.float32))
    for rank, word in enumerate(table):  # word2vec files list words by frequency; say so, as gensim expects
        kv.set_vecattr(word, "count", len(table) - rank)
    kv.save_word2vec_format(str(path), binary=path.suffix == ".bin" if binary is None else binary)
    return path


WORDS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *LIVING, *NONLIVING, *NEUTRAL]


def build_tiny_sentence_model(folder: str | Path) -> Path:
    """A tiny random BERT + mean pooling, saved with SentenceTransformer.save() to `folder`."""
    import torch
    from sentence_transformers import SentenceTransformer
    try:  # sentence-transformers >= 6; older versions name the package `models`
        from sentence_transformers.sentence_transformer.modules import Pooling, Transformer
    except ImportError:
        from sentence_transformers.models import Pooling, Transformer
    from transformers import BertConfig, BertModel, BertTokenizer

    folder = Path(folder)
    bert_dir = folder.parent / (folder.name + "-bert-src")
    bert_dir.mkdir(parents=True, exist_ok=True)
    (bert_dir / "vocab.txt").write_text("\n".join(WORDS) + "\n")
    BertTokenizer(str(bert_dir / "vocab.txt")).save_pretrained(bert_dir)
    torch.manual_seed(0)
    config = BertConfig(vocab_size=len(WORDS), hidden_size=32, num_hidden_layers=1, num_attention_heads=4,
                        intermediate_size=37, max_position_embeddings=64)
    BertModel(config).eval().save_pretrained(bert_dir)
    encoder = Transformer(str(bert_dir), max_seq_length=32)
    dim = config.hidden_size
    model = SentenceTransformer(modules=[encoder, Pooling(dim, "mean")], device="cpu")
    model.save(str(folder))
    return folder
