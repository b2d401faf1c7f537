"""The paper's naive prompt: one fixed template per label ("a photo of one {label} {context}")."""

from __future__ import annotations

from odin.errors import ConfigError
from odin.prompts import LabelPrompts, per_label


class NaivePrompts:
    def __init__(self, template: str = "a photo of one {label} {context}", context: str = "", num_prompts: int = 1):
        if num_prompts < 1:
            raise ConfigError(f"prompt.num_prompts={num_prompts} must be at least 1")
        if "{label}" not in template:
            raise ConfigError(f"prompt.template={template!r} must contain {{label}}")
        self.template, self.context, self.num_prompts = template, context, num_prompts

    def check(self, labels: list[str]) -> None:
        pass

    def render(self, label: str) -> str:
        return " ".join(self.template.format(label=label, context=self.context).split())

    def __call__(self, labels: list[str]):
        # The same sentence repeated: the naive generator's diversity comes from the seeds alone.
        return per_label(lambda label: LabelPrompts(label, [self.render(label)] * self.num_prompts), labels)
