"""One pass over the composed config before any work: ranges, choices, devices, sizes and counts.

Each rule names its key and what would work, so a bad value fails in a second, before a prompt is
asked for, an image made or torch imported (a cuda or mps device is the one check that needs torch).
The schemas (odin/config.py) already fix the types; this adds what a type cannot say.
tests/test_validate.py checks that every number and choice of every schema has a rule here.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

from omegaconf import DictConfig

from odin.device import check_device
from odin.errors import ConfigError
from odin.post import LOCAL_VARS, MODES
from odin.tasks import task_names

MAX_PROMPTS = 10_000  # per label
MAX_IMAGES_PER_PROMPT = 10_000
MAX_IMAGES = 10_000_000  # per run: far beyond the paper's largest table (CIFAR-100: 18,000)
DTYPES = ("auto", "float32", "fp32", "float16", "fp16", "bfloat16", "bf16")


def between(low: float, high: float) -> tuple[Callable[[Any], bool], str]:
    return (lambda v: v is not None and math.isfinite(v) and low <= v <= high), f"a number from {low} to {high}"


def positive() -> tuple[Callable[[Any], bool], str]:
    return (lambda v: v is not None and math.isfinite(v) and v > 0), "a finite number above 0"


def one_of(*choices: str) -> tuple[Callable[[Any], bool], str]:
    return (lambda v: v in choices), f"one of {', '.join(choices)}"


def device() -> tuple[Callable[[Any], bool], str]:
    return (lambda v: bool(re.fullmatch(r"auto|cpu|mps|cuda(:\d+)?", str(v)))), "auto, cpu, cuda, cuda:N or mps"


def image_side() -> tuple[Callable[[Any], bool], str]:
    works = "null (the model's own) or a multiple of 8 from 8 to 4096"
    return (lambda v: v is None or (8 <= v <= 4096 and v % 8 == 0)), works


def odd_kernel() -> tuple[Callable[[Any], bool], str]:
    return (lambda v: 1 <= v <= 99 and v % 2 == 1), "an odd number from 1 to 99"


RULES: dict[str, tuple[Callable[[Any], bool], str]] = {
    "seed": ((lambda v: 0 <= v < 2**32), "an integer from 0 to 2**32 - 1"),
    "samples_per_class": between(0, 1000),
    "num_shards": between(1, 100_000),
    "shard": ((lambda v: v >= 0), "0 to num_shards - 1"),
    "task.name": one_of(*task_names()),
    # task=diversity and task=detect
    "task.image_size": between(8, 4096),
    "task.win_size": ((lambda v: 3 <= v <= 99 and v % 2 == 1), "an odd number from 3 to 99 (skimage's default: 7)"),
    "task.data_range": positive(),
    "task.max_per_class": ((lambda v: v is None or 2 <= v <= 1_000_000), "null (all) or at least 2 (SSIM needs pairs)"),
    "task.holdout": ((lambda v: 0 < v < 1), "a fraction between 0 and 1, e.g. 0.3"),
    "logger.mode": one_of("offline", "online", "disabled"),
    "localize.name": one_of("none", "attention"),
    "localize.threshold": (
        (lambda v: str(v).strip().lower() == "otsu" or (not isinstance(v, bool) and 0 < float(v) <= 1)),
        "a fraction of each heatmap's maximum in (0, 1] (e.g. 0.4) or otsu",
    ),
    # prompts (prompts_per_label first: template and naive num_prompts interpolate it)
    "diffusion.prompts_per_label": between(1, MAX_PROMPTS),
    "prompt.num_prompts": between(1, MAX_PROMPTS),
    "prompt.seed": ((lambda v: v is None or 0 <= v < 2**63), "null or an integer from 0 to 2**63 - 1"),
    "prompt.temperature": between(0, 2),
    "prompt.max_tokens": ((lambda v: v is None or v >= 1), "null or at least 1"),
    "prompt.concurrency": between(1, 256),
    "prompt.timeout": positive(),
    "prompt.max_retries": between(0, 100),
    "prompt.max_asks": between(1, 100),
    "prompt.max_images": between(1, 100_000),
    "prompt.max_new_tokens": between(1, 1024),
    "prompt.num_beams": between(1, 64),
    "prompt.dtype": one_of(*DTYPES),
    "prompt.device": device(),
    "prompt.batch_size": between(1, 4096),
    # text-to-image
    "diffusion.images_per_prompt": between(1, MAX_IMAGES_PER_PROMPT),
    "diffusion.size": between(8, 2048),
    "diffusion.batch_size": between(1, 4096),
    "diffusion.steps": between(1, 1000),
    "diffusion.guidance_scale": between(0, 100),
    "diffusion.height": image_side(),
    "diffusion.width": image_side(),
    "diffusion.safety_retries": between(0, 100),
    "diffusion.dtype": one_of(*DTYPES),
    "diffusion.device": device(),
    # post-processing
    "post.mode": one_of(*MODES),
    "post.kernel_size": odd_kernel(),
    "post.mean": between(-1, 1),
    "post.var": between(0, 1),
    "post.amount": between(0, 1),
    "post.salt_vs_pepper": between(0, 1),
    "post.local_vars": one_of(*LOCAL_VARS),
    "post.criterion": one_of("detect", "kid"),  # post=auto
    "post.max_per_class": between(2, 1_000_000),
    "post.holdout": ((lambda v: 0 < v < 1), "a fraction between 0 and 1, e.g. 0.3"),
    # diversification, the prompt check, the image filter
    "diversify.limit": ((lambda v: v is None or v >= 1), "null (every word) or at least 1"),
    "diversify.seed": ((lambda v: 0 <= v < 2**32), "an integer from 0 to 2**32 - 1"),
    "diversify.batch_size": between(1, 4096),
    "diversify.device": device(),
    "prompt_check.kind": one_of("vectors", "sentence", "clip"),
    "prompt_check.threshold": ((lambda v: v is None or -1 <= v <= 1), "null or a cosine similarity from -1 to 1"),
    "prompt_check.limit": ((lambda v: v is None or v >= 1), "null (every word) or at least 1"),
    "prompt_check.batch_size": between(1, 4096),
    "prompt_check.device": device(),
    "prompt_check.max_rounds": between(0, 20),
    "filter.threshold": ((lambda v: v is None or -1 <= v <= 1), "null or a cosine similarity from -1 to 1"),
    "filter.max_rounds": between(1, 100),
    "filter.padding": one_of("longest", "max_length"),
    "filter.batch_size": between(1, 4096),
    "filter.device": device(),
    # model and training
    "model.resize": one_of("stretch", "crop"),
    "model.input_size": ((lambda v: v is None or 8 <= v <= 1024), "null (the checkpoint's own) or 8 to 1024"),
    "train.precision": one_of("auto", "fp32", "bf16", "fp16"),
    "train.epochs": between(1, 100_000),
    "train.batch_size": between(1, 65_536),
    "train.optimizer": one_of("adam", "adamw", "sgd"),
    "train.lr": ((lambda v: math.isfinite(v) and 0 < v <= 10), "a finite number above 0 (the paper: 2e-5)"),
    "train.weight_decay": between(0, 10),
    "train.label_smoothing": ((lambda v: math.isfinite(v) and 0 <= v < 1), "a number from 0 up to (not including) 1"),
    "train.device": device(),
    "train.num_workers": between(0, 256),
    "train.threads": between(1, 1024),
    "train.eval_every": between(1, 100_000),
    "train.holdout": between(0, 0.9),
    "train.source": one_of("generated", "real"),
    # the real datasets
    "dataset.image_size": between(8, 4096),
    "dataset.split_seed": ((lambda v: 0 <= v < 2**32), "an integer from 0 to 2**32 - 1"),
    "dataset.seed": ((lambda v: 0 <= v < 2**32), "an integer from 0 to 2**32 - 1"),
    "dataset.round": between(0, 1_000_000),
    "dataset.per_part": ((lambda v: v is None or v >= 1), "null (all classes) or at least 1"),
    "dataset.max_per_class": ((lambda v: v is None or v >= 1), "null (all) or at least 1"),
    "dataset.train_per_class": between(1, 100_000),
    "dataset.test_fraction": ((lambda v: 0 < v < 1), "a fraction between 0 and 1"),
}


def validate(cfg: DictConfig) -> None:
    """Every rule whose key the config has (post=auto's candidates by the post.* rules); then the store's
    path and the devices."""
    for key, rule in RULES.items():
        group, _, name = key.rpartition(".")
        check_rule(cfg.get(group) if group else cfg, name, key, rule)
    for option, node in (cfg.post.get("options") or {}).items():
        for key, rule in RULES.items():
            if key.startswith("post."):
                check_rule(node, key.split(".", 1)[1], f"post.options.{option}.{key.split('.', 1)[1]}", rule)
    if not cfg.shard < cfg.num_shards:
        raise ConfigError(f"shard={cfg.shard} must be below num_shards={cfg.num_shards} (shards count from 0)")
    if cfg.num_shards > 1 and cfg.task.name != "formulate":
        raise ConfigError(f"num_shards={cfg.num_shards} shards the making of images (task=formulate); train once they "
                          "are all made, without shard and num_shards: it finds them in the store")
    if cfg.num_shards > 1 and cfg.get("filter", {}).get("name", "none") != "none":
        raise ConfigError(f"filter={cfg.filter.name} with num_shards={cfg.num_shards}: the filter replaces images "
                          "per label, across shards. Make the shards without the filter (filter=none), then run "
                          "once with it: it reads their images from the store")
    check_store_path(cfg.paths.store)
    for key in ("train.device", "diffusion.device", "prompt.device", "diversify.device", "prompt_check.device",
                "filter.device"):
        group, name = key.split(".")
        check_device(key, str(cfg[group].get(name, "auto")))


def check_rule(node, name: str, key: str, rule: tuple[Callable[[Any], bool], str]) -> None:
    if node is None or name not in node:
        return
    ok, works = rule
    value = node[name]
    try:
        good = ok(value)
    except (TypeError, ValueError):
        good = False
    if not good:
        raise ConfigError(f"{key}={value!r} is out of range: use {works}")


def check_store_path(store: str | None) -> None:
    """The store gets a folder of its own: never '' (the current directory), the home folder or '/'."""
    if not store or not str(store).strip():
        raise ConfigError("paths.store is empty (is ODIN_STORE set to ''?): give the store a folder of its own, "
                          "e.g. paths.store=outputs/store")
    path = Path(store).expanduser().resolve()
    if path in (Path.home().resolve(), Path(path.anchor), Path.cwd().resolve()):
        raise ConfigError(f"paths.store={store} is {path} itself, where prompts/, images/ and post/ would be written "
                          "among your own files: give the store a folder of its own, e.g. paths.store="
                          f"{Path(store) / 'odin-store'}")


def check_plan(cfg: DictConfig, labels: list[str]) -> int:
    """The number of images a run asks for, refused when it is beyond any sensible run."""
    prompts = int(cfg.prompt.get("num_prompts", 1))
    per_prompt = int(cfg.diffusion.get("images_per_prompt", 1))
    total = len(labels) * prompts * per_prompt
    if total > MAX_IMAGES:
        raise ConfigError(f"this run would make {total:,} images ({len(labels):,} labels x prompt.num_prompts="
                          f"{prompts:,} x diffusion.images_per_prompt={per_prompt:,}), more than {MAX_IMAGES:,}: "
                          "lower the counts or split the labels over several runs")
    return total


def some(items: list, limit: int = 10) -> str:
    """A list for a message: the first `limit` items and how many more."""
    shown = ", ".join(repr(i) for i in items[:limit])
    return shown + (f" ... and {len(items) - limit:,} more" if len(items) > limit else "")
