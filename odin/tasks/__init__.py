"""The tasks: what a run does with the generated set. One module per task, named as its conf/task/<name>.yaml.

Each module defines `TASK = Task(run=...)`; `run(ctx, generated) -> metrics` gets the run's context
(odin/context.py) and the generated set (odin/generated.py; None when the task generates nothing,
e.g. train.source=real) and returns its sections of metrics.json. Adding a task is one new module
here and one yaml in conf/task/.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any


def every_label(cfg, labels: list[str]) -> list[str]:
    return list(labels)


def nothing_to_check(ctx) -> None:
    return None


@dataclass(frozen=True)
class Task:
    run: Callable[[Any, Any], dict]  # (RunContext, GeneratedSet | None) -> its sections of metrics.json
    check: Callable[[Any], None] = nothing_to_check  # fail fast on what only this task needs (a model, a split)
    generates: Callable[[Any, list[str]], list[str]] = every_label  # (cfg, labels) -> the labels to generate
    any_label: bool = False  # labels need not be classes of the dataset (nothing is tested on real images)


def task_names() -> list[str]:
    """The tasks there are: the modules of this package (listed without importing them)."""
    return sorted(m.name for m in pkgutil.iter_modules(__path__) if not m.name.startswith("_"))


def get_task(name: str) -> Task:
    return importlib.import_module(f"{__name__}.{name}").TASK
