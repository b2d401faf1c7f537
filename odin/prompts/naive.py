"""The paper's naive prompt: one fixed template per label ("a photo of one {label} {context}")."""

from __future__ import annotations

from odin.errors import ConfigError
from odin.prompts import LabelPrompts, per_label


class NaivePrompts:
    gives_more = False  # one sentence: the prompt check repeats the kept ones instead

    def __init__(self, template: str = "a photo of one {label} {context}", context: str = "", num_prompts: int = 1):
        self.template, self.context, self.num_prompts = template, context, num_prompts

    def resolved(self) -> dict:
        return {}  # nothing is chosen at run time: the config is what was used

    def check(self, labels: list[str]) -> None:
        if "{label}" not in self.template:
            raise ConfigError(f"prompt.template={self.template!r} must contain {{label}}, where each label goes")

    def more(self, label: str, shown: list[str], dropped: list[str], count: int) -> LabelPrompts:
        return LabelPrompts(label, [])

    def render(self, label: str) -> str:
        return " ".join(self.template.format(label=label, context=self.context).split())

    def __call__(self, labels: list[str]):
        # The same sentence repeated: the naive generator's diversity comes from the seeds alone.
        return per_label(lambda label: LabelPrompts(label, [self.render(label)] * self.num_prompts), labels)
