"""Word-embedding diversification (the supplement's Algorithm 1), layered on top of any prompt generator.

For each label:
  1. embed the label (a multi-word label is one phrase: "yorkshire terrier", "chole bhature") and
     two word lists, P (animate, animal, plant, ...) and N (inanimate, object, man-made, ...);
  2. the label is living when its mean cosine similarity to P is greater than to N, else non-living;
  3. every prompt of the inner generator gets one modifier of that kind in front of the label
     ("a photo of one beagle" -> "a photo of one sleeping beagle"), picked from (seed, label, prompt
     index) alone, so the same config gives the same prompts in any order or subset of labels.
The label is found in the prompt case-insensitively, spaces/underscores/hyphens alike, plural too
("Beagles"); an "a"/"an" right before it is fixed for the modifier. A prompt that does not name
the label (a caption whose subject was not found, an LLM's off-label line) becomes
"<modifier> <label>, <prompt>". The decision, both scores and the inner prompts go in
`LabelPrompts.info["diversify"]`, so the store keeps them with the prompts.

Config: the `diversify` group (conf/diversify/word2vec.yaml with `vectors`, a word2vec-format file;
conf/diversify/sentence.yaml with `model`, a sentence-transformers folder; `none` by default). The
wiring (odin/prompts/checked.py wrap_prompter) builds it around the run's prompt generator, and the
prompt key holds its settings only when it is on (odin/keys.py prompt_extras), so keys without it stay
as they are. `device` and `batch_size` (for a sentence model) are runtime keys.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence

import numpy as np

from odin.embeddings import Embedder
from odin.keys import derive_seed
from odin.prompts import LabelPrompts, PromptGenerator
from odin.prompts.words import LIVING_MODIFIERS, LIVING_WORDS, NONLIVING_MODIFIERS, NONLIVING_WORDS


class Diversified:
    def __init__(
        self,
        inner: PromptGenerator,
        vectors: str | None = None,
        model: str | None = None,
        living_words: Sequence[str] = tuple(LIVING_WORDS),
        nonliving_words: Sequence[str] = tuple(NONLIVING_WORDS),
        living_modifiers: Sequence[str] = tuple(LIVING_MODIFIERS),
        nonliving_modifiers: Sequence[str] = tuple(NONLIVING_MODIFIERS),
        seed: int = 0,
        limit: int | None = None,
        device: str = "cpu",
        batch_size: int = 64,
        config_key: str = "diversify",
    ):
        lists = {"living_words": living_words, "nonliving_words": nonliving_words,
                 "living_modifiers": living_modifiers, "nonliving_modifiers": nonliving_modifiers}
        empty = [f"{config_key}.{name}" for name, words in lists.items() if not words]
        if empty:
            raise ValueError(f"{', '.join(empty)} must not be empty")
        self.inner, self.seed = inner, seed
        self.words = {"living": [str(w) for w in living_words], "nonliving": [str(w) for w in nonliving_words]}
        self.modifiers = {"living": [str(w) for w in living_modifiers],
                          "nonliving": [str(w) for w in nonliving_modifiers]}
        self.embedder = Embedder(vectors, model, config_key=config_key, limit=limit, device=device,
                                 batch_size=batch_size)
        self._anchors: dict[str, np.ndarray] | None = None
        self._given: dict[str, list[str]] = {}  # label -> the inner prompts given so far, for more()

    @property
    def gives_more(self) -> bool:
        return self.inner.gives_more

    def resolved(self) -> dict:
        """The inner generator's run-time choices (caption: dtype), for the prompt key."""
        return self.inner.resolved()

    def check(self, labels: list[str]) -> None:
        self.inner.check(labels)
        # Loads the embedding and embeds every word and label: an unknown one fails before any prompt is asked for.
        self.embedder.check(self.words["living"] + self.words["nonliving"] + [_phrase(label) for label in labels])

    def classify(self, label: str) -> dict:
        """{"kind": "living" | "nonliving", "living_score": mean cos to P, "nonliving_score": mean cos to N}."""
        if self._anchors is None:
            self._anchors = {kind: self.embedder.embed(words) for kind, words in self.words.items()}
        vector = self.embedder.embed([_phrase(label)])[0]
        scores = {kind: float(np.mean(anchors @ vector)) for kind, anchors in self._anchors.items()}
        kind = "living" if scores["living"] > scores["nonliving"] else "nonliving"  # a tie is non-living
        return {"kind": kind, "living_score": scores["living"], "nonliving_score": scores["nonliving"]}

    def modifier(self, kind: str, label: str, index: int) -> str:
        choices = self.modifiers[kind]
        return choices[derive_seed(self.seed, "diversify", label, index) % len(choices)]

    def diversify(self, made: LabelPrompts, offset: int = 0) -> LabelPrompts:
        """`offset`: how many prompts of the label came before these (replacements go on with the modifiers)."""
        decision = self.classify(made.label)
        modifiers = [self.modifier(decision["kind"], made.label, offset + i) for i in range(len(made.prompts))]
        prompts = [insert_modifier(p, made.label, m) for p, m in zip(made.prompts, modifiers, strict=True)]
        info = {**made.info, "diversify": {**decision, "modifiers": modifiers, "inner_prompts": list(made.prompts),
                                           "embedding": self.embedder.source}}
        return LabelPrompts(made.label, prompts, info)

    def __call__(self, labels: list[str]) -> Iterator[LabelPrompts]:
        for made in self.inner(labels):  # one label at a time, so the store caches each as it comes
            self._given[made.label] = list(made.prompts)
            yield self.diversify(made)

    def more(self, label: str, shown: list[str], dropped: list[str], count: int) -> LabelPrompts:
        """The inner generator's further prompts, diversified. `shown` is what this layer gave, position by
        position the inner prompts it was made from: the inner generator is told about its own prompts."""
        given = self._given.setdefault(label, [])
        dropped_set = set(dropped)
        inner_dropped = [inner for inner, out in zip(given, shown, strict=True) if out in dropped_set]
        made = self.inner.more(label, list(given), inner_dropped, count)
        out = self.diversify(made, offset=len(given))
        given.extend(made.prompts)
        return out


def _phrase(label: str) -> str:
    """The text a label is embedded as: dataset folder names use underscores ("water_lilly")."""
    return " ".join(label.replace("_", " ").split())


def insert_modifier(prompt: str, label: str, modifier: str) -> str:
    """Put `modifier` right before the first mention of `label` in `prompt` (see the module docstring)."""
    words = [re.escape(w) for w in re.split(r"[\s_-]+", label.strip()) if w]
    pattern = re.compile(r"(?<!\w)(?:(?P<article>an?)\s+)?(?P<label>" + r"[\s_-]+".join(words) + r")(?:e?s)?(?!\w)",
                         re.IGNORECASE)
    m = pattern.search(prompt)
    if m is None:
        return f"{modifier} {label}, {prompt}"
    article = m.group("article")
    if article:
        fitted = "an" if modifier[:1].lower() in "aeiou" else "a"
        article = (fitted.capitalize() if article[0].isupper() else fitted) + " "
    return prompt[: m.start()] + (article or "") + f"{modifier} " + prompt[m.start("label") :]
