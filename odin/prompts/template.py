"""Offline diverse prompts: a template filled with one phrase per bank (style, view, setting...).

The banks come from the dataset config (writing styles for digits, photo settings for pets),
and prompt i of a label depends on (seed, label, i) alone, so adding prompts keeps the old ones.
"""

from __future__ import annotations

import string

import numpy as np

from odin.errors import ConfigError
from odin.keys import derive_seed
from odin.prompts import LabelPrompts, per_label


class TemplatePrompts:
    gives_more = True

    def __init__(self, template: str, banks: dict[str, list[str]], context: str = "", num_prompts: int = 10,
                 seed: int = 0):
        example = "e.g. prompt.template='a photo of one {label} {context}'"
        try:
            fields = {f for _, f, _, _ in string.Formatter().parse(template) if f}
        except ValueError as error:  # "a {label" or a stray "}"
            raise ConfigError(f"prompt.template={template!r} is not a template ({error}; a literal brace is written "
                              f"{{{{ or }}}}): {example}") from error
        if "label" not in fields:
            raise ConfigError(f"prompt.template={template!r} must contain {{label}}, where each label goes: {example}")
        missing = sorted(fields - {"label", "context"} - set(banks))
        if missing:
            raise ConfigError(f"prompt.template uses {missing} but prompt.banks has only {sorted(banks)}: "
                             "add those banks (dataset.template_banks) or drop them from the template")
        empty = [name for name in fields & set(banks) if not banks[name]]
        if empty:
            raise ConfigError(f"prompt.banks {empty} are empty")
        if num_prompts < 1:
            raise ConfigError(f"prompt.num_prompts={num_prompts} must be at least 1")
        self.template, self.context, self.num_prompts, self.seed = template, context, num_prompts, seed
        self.banks = {name: list(banks[name]) for name in fields & set(banks)}

    def resolved(self) -> dict:
        return {}  # nothing is chosen at run time: the config is what was used

    def check(self, labels: list[str]) -> None:
        pass

    def prompt(self, label: str, index: int) -> str:
        rng = np.random.default_rng(derive_seed(self.seed, "template", label, index))
        picks = {name: phrases[rng.integers(len(phrases))] for name, phrases in sorted(self.banks.items())}
        text = self.template.format(label=label, context=self.context, **picks)
        return " ".join(text.replace(" ,", ",").split())

    def more(self, label: str, shown: list[str], dropped: list[str], count: int) -> LabelPrompts:
        """The template's next prompts: prompt i depends on (seed, label, i) alone, so these are reproducible."""
        return LabelPrompts(label, [self.prompt(label, i) for i in range(len(shown), len(shown) + count)])

    def __call__(self, labels: list[str]):
        return per_label(
            lambda label: LabelPrompts(label, [self.prompt(label, i) for i in range(self.num_prompts)]), labels
        )
