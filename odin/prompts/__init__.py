"""Prompt generators: labels -> prompts.

A generator is any object built from a `_target_` node with
  check(labels)      fail fast (missing key, label it cannot serve) before heavy work
  __call__(labels)   yield one LabelPrompts per label, in any order, as each is ready
The store caches each LabelPrompts per label as soon as it is yielded, so a failure on one
label loses nothing already made.

A generator that can make further prompts for a label also offers
  more(label, shown, dropped, count)   up to `count` new prompts for `label`, given every prompt it
                                       has shown for it so far (in order, repeats included) and
                                       those of them the prompt check dropped
which the prompt check (odin.prompts.checked) calls to replace dropped prompts: the LLM is asked
again in the conversation, a template draws its next prompts, a captioner captions further images.
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


def gives_more(generator) -> bool:
    """Whether `generator` (and every generator it wraps) can make further prompts for a label."""
    inner = getattr(generator, "inner", None)
    return callable(getattr(generator, "more", None)) and (inner is None or gives_more(inner))


def per_label(make, labels: list[str]) -> Iterator[LabelPrompts]:
    """For generators whose prompts for one label need nothing from the others."""
    for label in labels:
        yield make(label)
