"""What every stage and task of a run receives: the config resolved once and the components built from it.

`build_context` is where a run fails fast: the config is checked, every component is built and asked
to check its own inputs (a dataset's folder, an API key, weights) before any image is made.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from odin import keys
from odin.config import check_keys
from odin.data import Dataset
from odin.errors import ConfigError
from odin.generate import TextToImage
from odin.labels import check_labels
from odin.loggers import NoLogger
from odin.post import PostStage
from odin.prompts import PromptGenerator
from odin.store import Store
from odin.tasks import Task, get_task
from odin.validate import check_plan, some, validate

log = logging.getLogger("odin.run")


@dataclass
class RunContext:
    cfg: DictConfig  # as composed: for instantiate and typed access
    config: dict  # the same, resolved once: what cache keys and logs are made of
    task: Task
    labels: list[str]  # the run's classes; a label's class index is its position here
    generated_labels: list[str]  # the labels whose training images are generated (task.generates)
    dataset: Dataset
    store: Store
    out: Path  # the run dir
    prompter: PromptGenerator
    backend: TextToImage
    post: PostStage
    image_filter: Any  # odin.filter.ClipFilter with filter=clip, else None
    logger: NoLogger | None = None  # started once every check has passed (NoLogger: the interface of all)
    timing: dict[str, float] = field(default_factory=dict)

    @property
    def seed(self) -> int:
        return int(self.cfg.seed)

    @contextmanager
    def timed(self, key: str):
        started = time.perf_counter()
        yield
        self.timing[key] = time.perf_counter() - started


def build_context(cfg: DictConfig, out: Path) -> RunContext:
    """Check the config, build every component and let each refuse bad input before any heavy work."""
    check_keys(cfg)
    validate(cfg)
    task = get_task(cfg.task.name)
    dataset = instantiate(cfg.dataset)
    dataset.check()  # a real dataset on disk: its path, before anything else
    labels = choose_labels(cfg.labels, dataset.classes, any_label=task.any_label, dataset=cfg.dataset.name)
    total = check_plan(cfg, labels)
    generated = task.generates(cfg, labels)
    from odin.prompts.checked import wrap_prompter

    ctx = RunContext(
        cfg=cfg, config=OmegaConf.to_container(cfg, resolve=True), task=task, labels=labels,
        generated_labels=generated, dataset=dataset, store=Store(cfg.paths.store), out=out,
        prompter=wrap_prompter(cfg, instantiate(cfg.prompt), generated), backend=instantiate(cfg.diffusion),
        post=instantiate(cfg.post), image_filter=image_filter(cfg),
    )
    if ctx.image_filter is not None and generated:
        ctx.image_filter.check(generated)  # distractors that are labels; loads the model before any image
    uncached = ctx.store.missing_prompts(ctx.config["prompt"], ctx.prompter, generated,
                                         keys.prompt_extras(ctx.config, generated))
    if uncached:  # a rerun from the store needs no API key
        ctx.prompter.check(uncached)
    if generated:
        ctx.backend.check(generated)
    ctx.post.check(ctx)
    task.check(ctx)
    log.info("plan: %d labels x %d prompts x %d images = %s images (made once, then read from %s)", len(labels),
             cfg.prompt.get("num_prompts", 1), cfg.diffusion.get("images_per_prompt", 1), f"{total:,}",
             ctx.store.root)
    return ctx


def image_filter(cfg: DictConfig):
    """filter=clip: the ClipFilter the generated images pass before post-processing (None when off)."""
    if cfg.filter.name == "none":
        return None
    from odin.filter import ClipFilter

    node = cfg.filter
    return ClipFilter(node.model, node.threshold, list(node.distractors), node.template, node.padding,
                      node.batch_size, node.device, config_key="filter")


def choose_labels(labels, classes: list[str], any_label: bool, dataset: str) -> list[str]:
    """The run's labels: `labels` as given, else every class; classes of the dataset unless `any_label`."""
    chosen = list(classes) if labels is None else [str(label) for label in labels]
    check_labels(chosen, dataset)
    counts = Counter(chosen)
    duplicates = sorted(label for label, n in counts.items() if n > 1)
    if duplicates:
        raise ConfigError(f"labels has duplicates: {some(duplicates)}")
    known = set(classes)
    unknown = [label for label in chosen if label not in known]
    if not any_label and unknown:
        raise ConfigError(f"labels [{some(unknown)}] are not classes of dataset={dataset}, so there are no real "
                          f"images to test on; its classes are [{some(list(classes), 40)}] (task=formulate takes "
                          "any label)")
    return chosen


def generator_name(diffusion: dict) -> str:
    """How metadata and captions name the text-to-image model: its model id, else its class."""
    return str(diffusion.get("model") or diffusion["_target_"].rsplit(".", 1)[-1])
