"""Prompt generators: labels -> prompts.

A generator is any object built from a `_target_` node with what `PromptGenerator` lists:
  check(labels)      fail fast (missing key, label it cannot serve) before heavy work
  __call__(labels)   yield one LabelPrompts per label, in any order, as each is ready
  resolved()         the values it chose at run time (caption: dtype), for the prompt key (odin.keys)
  gives_more, more(label, shown, dropped, count)
                     whether it can make further prompts for a label, and up to `count` of them, given
                     every prompt it has shown for it so far (in order, repeats included) and those of
                     them the prompt check dropped
The store caches each LabelPrompts per label as soon as it is yielded, so a failure on one
label loses nothing already made. The prompt check (odin.prompts.checked) calls `more` to replace
dropped prompts: the LLM is asked again in the conversation, a template draws its next prompts, a
captioner captions further images; the naive sentence has nothing more to give.
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
    gives_more: bool

    def check(self, labels: list[str]) -> None: ...

    def __call__(self, labels: list[str]) -> Iterable[LabelPrompts]: ...

    def resolved(self) -> dict: ...

    def more(self, label: str, shown: list[str], dropped: list[str], count: int) -> LabelPrompts: ...


def per_label(make, labels: list[str]) -> Iterator[LabelPrompts]:
    """For generators whose prompts for one label need nothing from the others."""
    for label in labels:
        yield make(label)
