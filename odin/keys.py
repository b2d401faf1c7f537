"""What each stage's cache key holds: exactly the inputs that change that stage's output.

A stale result reported as new is the worst bug ODIN can have, so every setting goes into a
stage's key unless it provably cannot change what that stage makes; each one left out is listed
here with the reason. A setting left out of one stage may still be in the next one's key
(`images_per_prompt` cannot change an image, but it changes the training set).

Values resolved at run time (`dtype: auto` -> float16 on a GPU, float32 on a CPU) are replaced by
what was really used before hashing: every prompt generator and backend says so in `resolved() -> dict`.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

# Prompts: how patiently and where the same model is asked, not what it answers.
PROMPT_IGNORED = {
    "base_url": "the address of the same model (a proxy, a mirror); the model name is in the key",
    "concurrency": "how many labels are asked at once",
    "timeout": "how long one request may take",
    "max_retries": "HTTP retries of a failed request; a reply that arrives is the same reply",
    "max_asks": "how patiently we ask: a label still short after the asks is cached filled (info.refilled); delete "
                "its prompt file to ask again",
    "device": "where the captioner runs (float noise at most); its dtype is resolved and kept",
    "batch_size": "captions per forward pass (float noise at most)",
}

# Images: speed and memory. Each image's seed comes from (seed, label, prompt, index) alone.
IMAGES_IGNORED = {
    "prompts_per_label": "it sets prompt.num_prompts, which is in the prompt key (and so in this one)",
    "images_per_prompt": "a prompt's seeds are a prefix: fewer images reuse a unit, more remake it (store._done)",
    "batch_size": "images per forward pass (float noise at most; tested with a tolerance)",
    "device": "where the model runs (float noise at most); the dtype it implies is resolved and kept",
    "attention": "sdpa, eager and xformers compute the same attention (float noise at most)",
    "compile": "torch.compile changes speed, not the computation",
    "channels_last": "a memory layout",
}

# Training: only what cannot change a number of the result.
TRAIN_IGNORED = {  # (precision is in the key, resolved: bf16 and fp32 training are different numbers)
    "device": "where the model trains (float noise at most)",
    "num_workers": "processes that load images; the batches are drawn by a seeded generator",
    "preload": "whether images are loaded up front or per batch; the same tensors either way",
    "epochs": "no schedule depends on it: a longer run resumes a shorter one, a shorter one reads its history",
    "resume": "whether a finished or interrupted run is picked up; see train.resume",
}

# Diversification and the prompt check: where their models run, not what they answer.
DIVERSIFY_IGNORED = {
    "device": "where the sentence model runs (float noise at most)",
    "batch_size": "texts per forward pass (float noise at most)",
    "name": "the option's name; vectors or model are what is used",
}
CHECK_IGNORED = {**DIVERSIFY_IGNORED, "name": "the option's name; kind, vectors or model are what is used"}

# The image filter: how fast it scores. The scores themselves are cached apart from the decision
# (threshold, max_rounds), so a new threshold re-decides without scoring or generating again.
FILTER_IGNORED = {
    "batch_size": "images per forward pass (float noise at most)",
    "device": "where the model runs (float noise at most)",
    "name": "the option's name; model and template are what is used",
}
FILTER_DECISION = ("threshold", "max_rounds")  # in the filtered folder's key, not in the scores' key

# Bumped when the trainer starts to compute other numbers for the same inputs.
TRAINER_VERSION = 1


def derive_seed(*parts: Any) -> int:
    """A 32-bit seed from (base seed, label, prompt text, occurrence, image index, ...): order-free."""
    digest = hashlib.blake2b(repr(parts).encode(), digest_size=4).digest()
    return int.from_bytes(digest, "little")


def config_hash(*parts: Any) -> str:
    """A short hash of plain, already resolved config values."""
    text = json.dumps(list(parts), sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def without(node: dict, ignored: dict[str, str]) -> dict:
    return {k: v for k, v in node.items() if k not in ignored}


def resolved(node: dict, component: Any) -> dict:
    """`node` with the values the component resolved at run time (e.g. dtype: auto -> float32)."""
    return {**node, **component.resolved()}


# Read only when the prompt check asks the generator for replacements: in the key then, and only then
# (so turning the feature on did not change the key of prompts made without it).
REPLACEMENT_ONLY = {"replacement": "the LLM's ask for replacements of prompts the prompt check dropped"}


def prompt_config(prompt: dict, generator: Any, extra: dict | None = None) -> dict:
    """`extra` (prompt_extras): diversification and the prompt check, when on; off, they add nothing to the key."""
    extra = extra or {}
    ignored = PROMPT_IGNORED if extra.get("prompt_check", {}).get("replace") else {**PROMPT_IGNORED, **REPLACEMENT_ONLY}
    key = {**without(resolved(prompt, generator), ignored), **extra}
    if key.get("require_label") is True:  # the check that was always on: prompts cached before it was a setting
        del key["require_label"]
    return key


def prompt_extras(plain: dict, labels: list[str]) -> dict:
    """What diversify and prompt_check add to the prompt key: nothing when they are off (existing stores stay
    valid). The check's verdicts depend on the other labels of the run, so its part holds them."""
    extra = {}
    diversify = plain.get("diversify") or {}
    if diversify.get("name", "none") != "none":
        extra["diversify"] = without(diversify, DIVERSIFY_IGNORED)
    check = plain.get("prompt_check") or {}
    if check.get("name", "none") != "none":
        node = without(check, CHECK_IGNORED)
        if not (node.get("replace") and node.get("max_rounds")):  # nothing is asked for: one key for "off"
            node["replace"] = False
            node.pop("max_rounds", None)
        extra["prompt_check"] = {**node, "labels": sorted(labels)}
    return extra


def filter_scores_config(filter_cfg: dict) -> dict:
    """What an image's scores depend on (with the images' key and the run's labels): not the decision."""
    return without(filter_cfg, {**FILTER_IGNORED, **dict.fromkeys(FILTER_DECISION)})


def images_config(diffusion: dict, backend: Any) -> dict:
    # A backend whose drawing changes for the same config bumps its `cache_version`.
    return {**without(resolved(diffusion, backend), IMAGES_IGNORED), "cache_version": backend.cache_version}


def post_config(processor: Any) -> dict:
    """What changes a post-processor's pixels (blur ignores `amount`; apply_to_test is the trainer's business,
    in the training key; the option's name is a label): the processor's own `key_config()`."""
    return processor.key_config()


def train_key(*, train_set: str, labels: list[str], model: dict, train: dict, dataset: dict, seed: int,
              test_post: dict | None, real_images: dict) -> str:
    """The identity of one training run.

    `train_set` names the exact generated images used (their folder's key and the file names of the
    training and held-out rows), so the prompts, counts, generator, post-processing and labels are all
    in it, and heatmaps (extra fields of a row) are not. `dataset` brings the acquisition and how the
    real images are chosen; `real_images` (Dataset.fingerprint) which real images they are, as files
    on disk now; `test_post` is the post-processing applied to the test set, if any.
    """
    return config_hash({"train_set": train_set, "labels": labels, "model": model,
                        "train": without(train, TRAIN_IGNORED), "dataset": dataset, "seed": seed,
                        "test_post": test_post, "real_images": real_images, "trainer": TRAINER_VERSION})


def rows_identity(folder_key: str, rows: list[dict]) -> str:
    """Which images of a store folder a training set uses, in order."""
    return config_hash(folder_key, [r["file_name"] for r in rows])
