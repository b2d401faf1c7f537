"""Prompt generators: labels -> prompts.

A generator is any object built from a `_target_` node with
  check(labels)      fail fast (missing key, label it cannot serve) before heavy work
  __call__(labels)   yield one LabelPrompts per label, in any order, as each is ready
The store caches each LabelPrompts per label as soon as it is yielded, so a failure on one
label loses nothing already made.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, Protocol


@dataclass
class LabelPrompts:
    label: str
    prompts: list[str]
    info: dict[str, Any] = field(default_factory=dict)  # provenance: raw replies, model, query


class PromptGenerator(Protocol):
    def check(self, labels: list[str]) -> None: ...

    def __call__(self, labels: list[str]) -> Iterable[LabelPrompts]: ...


def per_label(make, labels: list[str]) -> Iterator[LabelPrompts]:
    """For generators whose prompts for one label need nothing from the others."""
    for label in labels:
        yield make(label)
