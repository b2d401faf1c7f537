"""Every option of every group composes and instantiates; bad keys, types and options fail early."""

from pathlib import Path

import pytest
import torch
from conftest import CONF
from hydra.errors import ConfigCompositionException
from hydra.utils import instantiate
from omegaconf.errors import ConfigKeyError, ValidationError

GROUPS = ["dataset", "prompt", "diffusion", "post", "model", "train", "logger", "task", "paths", "experiment"]
OPTIONS = [(group, p.stem) for group in GROUPS for p in sorted((CONF / group).glob("*.yaml"))]


def test_every_group_has_options():
    assert {group for group, _ in OPTIONS} == set(GROUPS)


@pytest.mark.parametrize("group, option", OPTIONS, ids=[f"{g}={o}" for g, o in OPTIONS])
def test_every_option_composes_and_instantiates(compose, group, option):
    cfg = compose(f"{group}={option}")
    node = cfg if group == "experiment" else cfg[group]
    if group == "model":
        classifier = instantiate(node, pretrained=False)  # no hub here
        with torch.device("meta"):  # builds the real architecture without allocating its weights
            model = classifier.build(num_classes=3, in_chans=1)
        assert isinstance(model, torch.nn.Module) and classifier.preprocessing(model).size > 0
    elif "_target_" in node:
        assert instantiate(node) is not None
    else:
        assert node is not None


def test_experiments_say_how_to_run_them():
    for path in (CONF / "experiment").rglob("*.yaml"):
        head = path.read_text().splitlines()[:2]
        assert head[0] == "# @package _global_" and "python run.py" in head[1], path


@pytest.mark.parametrize(
    "override, key",
    [("train.epocs=3", "epocs"), ("train.epochs=many", "train.epochs"), ("post.amout=0.1", "post.amout"),
     ("diffusion.sizee=3", "diffusion.sizee"), ("seed=abc", "seed")],
)
def test_typos_and_wrong_types_fail_at_compose_naming_the_key(compose, override, key):
    with pytest.raises((ConfigCompositionException, ConfigKeyError, ValidationError)) as err:
        compose(override)
    message = str(err.value) + str(err.value.__cause__ or "")
    assert key in message


def test_unknown_option_lists_the_available_ones(compose):
    with pytest.raises(ConfigCompositionException) as err:
        compose("post=sparkle")
    assert "saltpepper" in str(err.value)


def test_conf_groups_mirror_options_named_in_the_design():
    names = {g: {p.stem for p in (CONF / g).glob("*.yaml")} for g in ("post", "model", "prompt")}
    assert {"none", "blur", "gaussian", "localvar", "poisson", "salt", "pepper", "saltpepper",
            "speckle"} <= names["post"]
    assert {"resnet", "resnext", "vit", "swin", "regnet"} <= names["model"]
    assert {"naive", "template"} <= names["prompt"]
    assert Path(CONF / "config.yaml").exists()


def test_train_threads_default_comes_from_the_environment_and_the_command_line_wins(compose, monkeypatch):
    from omegaconf import OmegaConf

    monkeypatch.delenv("ODIN_TRAIN_THREADS", raising=False)
    assert OmegaConf.to_container(compose(), resolve=True)["train"]["threads"] == 2
    monkeypatch.setenv("ODIN_TRAIN_THREADS", "3")
    assert OmegaConf.to_container(compose(), resolve=True)["train"]["threads"] == 3  # an int, as the schema says
    assert OmegaConf.to_container(compose("train.threads=1"), resolve=True)["train"]["threads"] == 1
    monkeypatch.setenv("ODIN_TRAIN_THREADS", "two")
    with pytest.raises(ValidationError, match="threads"):
        OmegaConf.to_container(compose(), resolve=True)
