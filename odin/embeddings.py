"""Text embeddings for deciding what a label is and how close a prompt is to it, offline, by path.

Two sources, one call (`embed(texts) -> (n, d)` float32 rows of unit length, so a dot product is
a cosine similarity):
  vectors  a word2vec-format file read by gensim (the supplement's choice): `.bin` is binary,
           anything else text. A phrase is the mean of its known words' vectors.
  model    a sentence-transformers model: a local folder (the output of `save()` or `hf download`),
           or a hub id already in the Hugging Face cache. It embeds the whole phrase.

Construction only checks that the file or folder exists (cheap, so a typo fails before any other
work); the vectors or the model load on first use.
"""

from __future__ import annotations

import functools
import re
from pathlib import Path

import numpy as np

from odin.errors import ConfigError, UserError
from odin.hub import require_weights


class MissingVectorsError(UserError, FileNotFoundError):
    """A word-vector file that is not there: run.py prints it as one line."""


class UnknownPhraseError(UserError, KeyError):
    def __str__(self) -> str:  # KeyError quotes its message; show it as written
        return str(self.args[0])


class Embedder:
    def __init__(self, vectors: str | None = None, model: str | None = None, *, config_key: str = "embedding",
                 limit: int | None = None, device: str = "cpu", batch_size: int = 64):
        """Exactly one of `vectors` (word2vec file) or `model` (sentence-transformers folder).

        `config_key` is the config node this embedder comes from, named in every error
        (`<config_key>.vectors`). `limit` reads only the first n words of a vector file (the
        GoogleNews file lists its 3 M words by frequency: 500k cover labels and cut load time).
        """
        if (vectors is None) == (model is None):
            raise ConfigError(f"set exactly one of {config_key}.vectors (a word2vec-format file) or "
                             f"{config_key}.model (a sentence-transformers folder); got vectors={vectors!r}, "
                             f"model={model!r}")
        self.config_key, self.limit, self.device, self.batch_size = config_key, limit, device, batch_size
        self.vectors = self.model = None
        if vectors is not None:
            path = Path(vectors).expanduser()
            if not path.is_file():
                raise MissingVectorsError(f"{config_key}.vectors={vectors}: no such file. Point it at a word2vec-"
                                          "format vector file (binary if it ends in .bin, text otherwise).")
            self.vectors = str(path)
        else:
            self.model = require_weights(model, config_key=f"{config_key}.model", what="sentence-transformers model")

    @property
    def source(self) -> str:
        return self.vectors or self.model

    def embed(self, texts: list[str]) -> np.ndarray:
        if self.vectors is not None:
            rows = np.stack([self._phrase_vector(t) for t in texts]) if texts else np.zeros((0, self._dim()))
        else:
            rows = self._sentence_model().encode(list(texts), batch_size=self.batch_size, convert_to_numpy=True,
                                                 show_progress_bar=False)
        rows = np.asarray(rows, dtype=np.float32)
        norms = np.linalg.norm(rows, axis=1, keepdims=True)
        return rows / np.maximum(norms, 1e-12)

    def check(self, texts: list[str]) -> None:
        """Load the source and embed `texts`, so an unknown phrase fails before any other work."""
        self.embed(texts)

    # ---- word vectors -------------------------------------------------------------
    def _phrase_vector(self, phrase: str) -> np.ndarray:
        """The phrase as one token if the file has it ("Yorkshire_terrier"), else the mean of its known words.

        Words split on spaces and underscores; a word is looked up as written, then lower-case, then
        (if it has hyphens) as its parts. Unknown words are skipped; a phrase with no known word is an error.
        """
        kv = self._keyed_vectors()
        words = [w for w in re.split(r"[\s_]+", phrase.strip()) if w]
        for token in ("_".join(words), "_".join(words).lower()):
            if len(words) > 1 and token in kv.key_to_index:
                return kv[token]
        known = [hit for w in words for hit in self._lookup(kv, w)]
        if not known:
            raise UnknownPhraseError(
                f"'{phrase}': none of its words is in {self.config_key}.vectors={self.vectors}. Use a larger "
                f"vector file (or a larger {self.config_key}.limit), or a sentence-transformers "
                f"{self.config_key}.model, which embeds any text."
            )
        return kv.get_mean_vector(known, pre_normalize=True)  # unit word vectors: each word weighs the same

    @staticmethod
    def _lookup(kv, word: str) -> list[str]:
        for candidate in (word, word.lower()):
            if candidate in kv.key_to_index:
                return [candidate]
        if "-" in word:
            return [hit for part in word.split("-") if part for hit in Embedder._lookup(kv, part)]
        return []

    def _dim(self) -> int:
        return self._keyed_vectors().vector_size

    def _keyed_vectors(self):
        return _load_vectors(self.vectors, self.limit)

    # ---- sentence-transformers ---------------------------------------------------------
    def _sentence_model(self):
        return _load_sentence_model(self.model, self.device)


@functools.lru_cache(maxsize=2)
def _load_vectors(path: str, limit: int | None):
    from gensim.models import KeyedVectors

    return KeyedVectors.load_word2vec_format(path, binary=path.endswith(".bin"), limit=limit)


@functools.lru_cache(maxsize=2)
def _load_sentence_model(model: str, device: str):
    from sentence_transformers import SentenceTransformer

    return SentenceTransformer(model, device=device)
