"""Every bad value is caught before any work, named by its full key, with what would work."""

import dataclasses
import math
import typing

import pytest
from omegaconf import open_dict

from odin.config import SCHEMAS, OdinConfig
from odin.errors import ConfigError
from odin.run import run
from odin.validate import RULES, validate

# The group options whose schemas hold each rule's key (the default config has the others).
OPTIONS = {"prompt": ["prompt=llm", "prompt=caption", "prompt=template"],
           "diffusion": ["diffusion=sd2", "diffusion=glyph"],
           "dataset": ["dataset=caltech101", "dataset=indian_food", "dataset=pet_food"], "logger": ["logger=wandb"],
           "task": ["task=diversity", "task=detect"], "post": ["post=auto"], "localize": ["localize=attention"],
           "diversify": ["diversify=word2vec"], "prompt_check": ["prompt_check=word2vec"], "filter": ["filter=clip"]}


def _numeric_and_choice_fields():
    """(key, type) of every number of every schema: each needs a rule."""
    schemas = [("", OdinConfig)] + [(group, cls) for group, nodes in SCHEMAS.items() for cls in nodes.values()]
    for group, cls in schemas:
        hints = typing.get_type_hints(cls)
        for f in dataclasses.fields(cls):
            kinds = [a for a in (typing.get_args(hints[f.name]) or (hints[f.name],)) if a is not type(None)]
            if any(k in (int, float) for k in kinds):
                yield (f"{group}.{f.name}" if group else f.name), kinds


def test_every_number_of_every_schema_has_a_rule():
    missing = sorted({key for key, _ in _numeric_and_choice_fields()} - set(RULES))
    assert missing == []


def _bad_value(key, ok):
    for candidate in (-(10**9), 10**12, math.nan, math.inf, "banana", -1):
        try:
            if not ok(candidate):
                return candidate
        except (TypeError, ValueError):
            return candidate
    raise AssertionError(f"no bad value found for {key}")


@pytest.mark.parametrize("key", sorted(RULES))
def test_each_rule_names_its_key(compose, key):
    ok, works = RULES[key]
    group, _, name = key.rpartition(".")
    for option in [None, *OPTIONS.get(group, [])]:
        cfg = compose(*([option] if option else []))
        node = cfg[group] if group else cfg
        if name in node:
            break
    else:
        pytest.fail(f"no option of group {group} has {name}")
    bad = _bad_value(key, ok)
    with open_dict(cfg):
        try:
            node[name] = bad
        except Exception:  # a type the schema refuses at once: try the number candidates instead
            bad = next(v for v in (-(10**9), 10**12, -1) if not ok(v))
            node[name] = bad
    with pytest.raises(ConfigError) as error:
        validate(cfg)
    assert str(error.value).startswith(f"{key}=") and works in str(error.value)


@pytest.mark.parametrize("overrides, words", [
    (["train.eval_every=0"], ["train.eval_every=0"]),
    (["seed=1000000000000000000"], ["seed=", "2**32"]),
    (["diffusion.size=0"], ["diffusion.size=0"]),
    (["diffusion.size=100000"], ["diffusion.size=100000"]),
    (["model.input_size=100000"], ["model.input_size=100000"]),
    (["labels=['²']", "task=formulate"], ["glyph cannot draw label '²'"]),
    (["prompt.num_prompts=1000000000"], ["prompt.num_prompts=1000000000"]),
    (["diffusion.images_per_prompt=1000000000"], ["diffusion.images_per_prompt=1000000000"]),
    (["prompt.num_prompts=5000", "diffusion.images_per_prompt=5000"], ["would make 75,000,000 images"]),
    (["train.optimizer=rmsprop"], ["train.optimizer='rmsprop'", "adam, adamw, sgd"]),
    (["train.device=cuda"], ["train.device=cuda", "no CUDA device"]),
    (["train.device=banana"], ["train.device='banana'", "auto, cpu, cuda"]),
    (["train.label_smoothing=5"], ["train.label_smoothing=5"]),
    (["train.weight_decay=-1"], ["train.weight_decay=-1"]),
    (["train.lr=nan"], ["train.lr=nan"]),
    (["train.lr=inf"], ["train.lr=inf"]),
    (["paths.store=''"], ["paths.store is empty"]),
    (["paths.store='~'"], ["paths.store=~", "a folder of its own"]),
])
def test_bad_values_fail_before_any_work(compose, tmp_path, overrides, words):
    cfg = compose("experiment=smoke", "logger=none", *overrides)
    with pytest.raises(ConfigError) as error:
        run(cfg, output_dir=tmp_path / "run")
    assert all(w in str(error.value) for w in words), str(error.value)
    assert not (tmp_path / "store" / "prompts").exists()  # nothing was made


@pytest.mark.slow
def test_ten_thousand_unknown_labels_give_a_short_message(compose, tmp_path):
    labels = "[" + ",".join(f"label{i}" for i in range(10_000)) + "]"
    with pytest.raises(ConfigError) as error:
        run(compose("experiment=smoke", "logger=none", f"labels={labels}"), output_dir=tmp_path / "run")
    assert "and 9,990 more" in str(error.value) and len(str(error.value)) < 1000
