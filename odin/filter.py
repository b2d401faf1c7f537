"""Off-label filtering: prompts before any image is made, images after generation.

Pure components (text or images in, decisions out); the store makes them cached stages.

  PromptCheck(encoder, threshold)     scores each prompt against every label of the run with a text
                                      encoder (an odin.embeddings.Embedder, or a ClipFilter's text tower)
  ClipFilter(model, threshold, ...)   scores each image against "a photo of a {label}" for every label
                                      of the run (plus distractor names) with any transformers CLIP-like
                                      model (CLIP, SigLIP, ...: get_text_features / get_image_features)

A prompt or image is kept when its own label scores best among all candidates and, if a threshold
is set, at least the threshold (cosine similarity). A dropped one carries its reason: "closer to
'helicopter' (0.31 > 0.27)" or "below threshold (0.18 < 0.20)".
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from odin.errors import ConfigError, UserError
from odin.hub import require_weights


class TextEncoder(Protocol):
    def embed(self, texts: list[str]) -> np.ndarray: ...  # (n, d) rows of unit length


class FilterError(UserError):
    """A label the filters left with too few prompts or images: run.py prints it as one line."""


@dataclass
class Decision:
    """One prompt's or image's verdict. `score` is its own label's cosine similarity."""

    label: str
    kept: bool
    score: float
    best: str  # the best-scoring candidate (a label or a distractor)
    best_score: float
    reason: str = ""  # why it was dropped; empty when kept

    def record(self) -> dict[str, Any]:
        """What goes in metadata.jsonl / LabelPrompts.info."""
        return {"kept": self.kept, "score": round(self.score, 6), "best": self.best,
                "best_score": round(self.best_score, 6), "reason": self.reason}


def decide(label: str, scores: np.ndarray, candidates: Sequence[str], threshold: float | None,
           distractors: frozenset[str] = frozenset()) -> Decision:
    """Kept when `label` scores best among `candidates` and, if a threshold is set, at least the threshold."""
    own = float(scores[candidates.index(label)])
    best_index = int(np.argmax(scores))  # ties go to the first candidate; labels come before distractors
    best, best_score = candidates[best_index], float(scores[best_index])
    reasons = []
    if best != label and best_score > own:
        kind = "distractor " if best in distractors else ""
        reasons.append(f"closer to {kind}'{best}' ({best_score:.3f} > {own:.3f})")
    if threshold is not None and own < threshold:
        reasons.append(f"below threshold ({own:.3f} < {threshold:.3f})")
    return Decision(label, not reasons, own, best, best_score, "; ".join(reasons))


# ---- prompts -----------------------------------------------------------------------------
class PromptCheck:
    """Drop prompts that are closer to another label of the run than to their own, or below a threshold.

    `label_template` is how a label is written for the encoder, with the dataset's `context` word:
    "a {label} {context}" for word vectors or a sentence model, "a photo of a {label} {context}" for
    CLIP's text tower. With word vectors a prompt is the mean of its known words, so a prompt with no
    known word at all raises UnknownPhraseError.
    """

    def __init__(self, encoder: TextEncoder, threshold: float | None = None, label_template: str = "{label}",
                 context: str = ""):
        if "{label}" not in label_template:
            raise ConfigError(f"prompt_check.label_template={label_template!r} must contain {{label}}")
        try:
            label_template.format(label="x", context="y")
        except (KeyError, IndexError, ValueError) as e:
            raise ConfigError(f"prompt_check.label_template={label_template!r}: bad placeholder {e}; "
                             "use {label} and {context}") from None
        self.encoder, self.threshold, self.label_template, self.context = encoder, threshold, label_template, context

    def anchor(self, label: str) -> str:
        """How `label` is written for the encoder ("a {label} {context}" -> "a four digit")."""
        return " ".join(self.label_template.format(label=label.replace("_", " "), context=self.context).split())

    @functools.lru_cache(maxsize=8)  # noqa: B019 (one check per run): a label set's anchors, embedded once
    def anchors(self, labels: tuple[str, ...]) -> np.ndarray:
        return self.encoder.embed([self.anchor(label) for label in labels])

    def __call__(self, prompts: dict[str, list[str]]) -> dict[str, list[Decision]]:
        labels = list(prompts)
        anchors = self.anchors(tuple(labels))
        out = {}
        for label, texts in prompts.items():
            scores = self.encoder.embed(list(texts)) @ anchors.T if texts else np.zeros((0, len(labels)))
            out[label] = [decide(label, row, labels, self.threshold) for row in scores]
        return out


# ---- images ------------------------------------------------------------------------------
class ClipFilter:
    """Score images against every label of the run (plus distractors) with a CLIP-like model.

    `model` is a hub id in the local cache or a folder holding the model and its processor
    (`save_pretrained` or `hf download` output). `distractors` are names an off-label image may
    really show ("helicopter" for "airplane"; "text", "blank image"): an image closest to one is dropped.
    `padding` is the tokenizer's: "longest" for CLIP, "max_length" for SigLIP (trained that way).
    """

    def __init__(self, model: str, threshold: float | None = None, distractors: Sequence[str] = (),
                 template: str = "a photo of a {label}", padding: str = "longest", batch_size: int = 32,
                 device: str = "auto", config_key: str = "filter"):
        if "{label}" not in template:
            raise ValueError(f"{config_key}.template={template!r} must contain {{label}}")
        if batch_size < 1:
            raise ValueError(f"{config_key}.batch_size={batch_size} must be at least 1")
        self.model = require_weights(model, config_key=f"{config_key}.model", what="CLIP model")
        self.threshold, self.template, self.batch_size = threshold, template, batch_size
        self.distractors = [str(d) for d in distractors]
        self.device, self.config_key, self.padding = device, config_key, padding
        self._text_cache: dict[tuple[str, ...], np.ndarray] = {}

    def check(self, labels: list[str]) -> None:
        clash = sorted(set(labels) & set(self.distractors))
        if clash:
            raise ValueError(f"{self.config_key}.distractors {clash} are labels of this run; drop them from the list")
        self._loaded()

    def candidates(self, labels: Sequence[str]) -> list[str]:
        return [*labels, *(d for d in self.distractors if d not in labels)]

    def __call__(self, label: str, images: Sequence, labels: Sequence[str]) -> list[Decision]:
        """One decision per image of `label`; `labels` are all labels of the run."""
        if label not in labels:
            raise ValueError(f"label '{label}' is not among the run's labels {list(labels)}")
        if not images:
            return []
        candidates = self.candidates(labels)
        scores = self.scores(images, candidates)
        return [decide(label, row, candidates, self.threshold, frozenset(self.distractors) - set(labels))
                for row in scores]

    def scores(self, images: Sequence, candidates: Sequence[str]) -> np.ndarray:
        """(images, candidates) cosine similarities to "a photo of a {candidate}": what a decision is made from."""
        texts = self._text_rows([self.template.format(label=c.replace("_", " ")) for c in candidates])
        return self.embed_images(images) @ texts.T

    def embed(self, texts: list[str]) -> np.ndarray:
        """The text tower, as a TextEncoder for PromptCheck."""
        return self._encode(texts, "text")

    def embed_images(self, images: Sequence) -> np.ndarray:
        return self._encode([im.convert("RGB") for im in images], "image")

    def _text_rows(self, texts: list[str]) -> np.ndarray:
        """The candidates' text rows, embedded once per run: every unit of every label asks for the same."""
        key = tuple(texts)
        if key not in self._text_cache:
            self._text_cache[key] = self.embed(texts)
        return self._text_cache[key]

    def _encode(self, items: list, kind: str) -> np.ndarray:
        import torch

        model, processor, device = self._loaded()
        rows = []
        for start in range(0, len(items), self.batch_size):
            batch = items[start : start + self.batch_size]
            with torch.inference_mode():
                if kind == "text":
                    inputs = processor(text=batch, return_tensors="pt", padding=self.padding, truncation=True)
                    out = model.get_text_features(**{k: v.to(device) for k, v in inputs.items()})
                else:
                    inputs = processor(images=batch, return_tensors="pt")
                    out = model.get_image_features(pixel_values=inputs["pixel_values"].to(device, model.dtype))
            out = out if isinstance(out, torch.Tensor) else out.pooler_output  # transformers 5 returns an output
            rows.append(torch.nn.functional.normalize(out.float(), dim=-1).cpu().numpy())
        return np.concatenate(rows) if rows else np.zeros((0, 0), dtype=np.float32)

    def _loaded(self):
        return _load_clip(self.model, self.device)


@functools.lru_cache(maxsize=2)
def _load_clip(model: str, device: str):
    from transformers import AutoModel, AutoProcessor

    from odin.device import resolve_device

    device = str(resolve_device(device))
    net = AutoModel.from_pretrained(model).to(device).eval()
    return net, AutoProcessor.from_pretrained(model), device

