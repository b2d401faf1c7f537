"""Cache keys in both directions: what changes a stage's output makes it anew; what cannot, reuses it.

Each case runs the real pipeline (run()) twice on one store and reads what it reports, so the
wiring is tested, not only odin/keys.py.
"""

import pytest
from conftest import CONF

from odin import keys
from odin.run import run

BASE = ["experiment=smoke", "logger=none", "labels=[zero,one]", "prompt.num_prompts=1",
        "diffusion.images_per_prompt=3", "train.epochs=1"]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """One finished training in a store shared by this module's cases."""
    from hydra import compose, initialize_config_dir

    from odin.config import register_configs

    register_configs()
    root = tmp_path_factory.mktemp("keys")
    counter = iter(range(1000))

    def train(*overrides):
        with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
            cfg = compose("config", overrides=[f"paths.store={root / 'store'}", *BASE, *overrides])
        return run(cfg, output_dir=root / f"run{next(counter)}")

    base = train()
    assert base["training"]["status"] == "trained"
    return train, base


@pytest.mark.parametrize("override", [
    "train.batch_size=2", "train.lr=0.01", "train.optimizer=sgd", "train.weight_decay=0.1",
    "train.label_smoothing=0.1", "train.augment=false", "train.eval_every=2", "seed=1",
    "diffusion.images_per_prompt=2", "prompt.num_prompts=2", "labels=[one,zero]", "model.input_size=12",
    "post=salt", "diffusion.size=48", "prompt=naive", "model.name=resnet10t",
])
def test_what_changes_the_result_trains_anew(trained, override):
    train, base = trained
    again = train(override)
    assert again["training"]["status"] == "trained", override
    assert again["training"]["checkpoint"] != base["training"]["checkpoint"]


@pytest.mark.parametrize("override, status", [
    ("train.device=cpu", "cached"), ("train.num_workers=1", "cached"), ("train.preload=false", "cached"),
    ("diffusion.batch_size=1", "cached"), ("samples_per_class=2", "cached"), ("name=other", "cached"),
    ("post.apply_to_test=true", "cached"),  # post=none: the test set is the same either way
    ("train.epochs=2", "resumed"),
])
def test_what_cannot_change_the_result_reuses_it(trained, override, status):
    train, base = trained
    again = train(override)
    assert again["training"]["status"] in (status, "cached"), override  # epochs=2 is cached once extended
    assert again["training"]["checkpoint"] == base["training"]["checkpoint"]
    assert again["history"][:1] == base["history"]


def test_a_shorter_run_reads_the_first_epochs_of_a_longer_one(trained):
    train, base = trained
    train("train.epochs=2")
    short = train()
    assert short["training"]["status"] == "cached" and short["history"] == base["history"]
    assert (short["top1"], short["top3"]) == (base["top1"], base["top3"])


def test_resume_false_trains_from_scratch_and_says_so(trained):
    train, base = trained
    fresh = train("train.resume=false")
    assert fresh["training"] == {**base["training"], "status": "trained"}
    assert fresh["history"] == base["history"]  # seeded: retraining gives the same numbers


def test_post_applied_to_the_test_set_is_another_result(trained):
    train, _ = trained
    salt = train("post=salt")
    both = train("post=salt", "post.apply_to_test=true")
    assert both["training"]["status"] == "trained"
    assert both["training"]["checkpoint"] != salt["training"]["checkpoint"]
    assert both["post"]["made"] == 0 and both["post"]["folder"] == salt["post"]["folder"]  # same training images


@pytest.mark.parametrize("override, same_images, same_post", [
    ("diffusion.batch_size=1", True, True),
    ("diffusion.images_per_prompt=2", True, True),  # a prefix of the same seeds
    ("post.name=renamed", True, True),
    ("post.apply_to_test=true", True, True),
    ("post.var=0.5", True, True),  # salt does not read var
    ("post.amount=0.2", True, False),
    ("diffusion.size=48", False, False),
    ("seed=3", False, False),
    ("prompt.template='a {label}, {style}'", False, False),
])
def test_image_and_post_keys(compose, tmp_path, override, same_images, same_post):
    formulate = ["experiment=smoke", "logger=none", "task=formulate", "labels=[two]", "prompt.num_prompts=1",
                 "diffusion.images_per_prompt=3", "post=salt"]
    run(compose(*formulate), output_dir=tmp_path / "a")
    again = run(compose(*formulate, override), output_dir=tmp_path / "b")
    assert (again["images"]["made"] == 0) is same_images, again["images"]
    assert (again["post"]["made"] == 0) is same_post, again["post"]


def test_blur_key_ignores_noise_parameters():
    from odin.post import PostProcessor

    blur = PostProcessor("blur", "blur", amount=0.05)
    assert keys.post_config(blur) == keys.post_config(PostProcessor("x", "blur", amount=0.9, var=3))
    assert keys.post_config(blur) != keys.post_config(PostProcessor("blur", "blur", kernel_size=3))


def test_auto_dtype_is_resolved_before_hashing(tmp_path):
    """bf16 images from a GPU and fp32 images from a CPU are different data: auto is what was used."""
    from odin.generate.diffusers_backend import DiffusersGenerator

    node = {"model": str(tmp_path), "steps": 2, "device": "cpu"}
    auto = keys.images_config({**node, "dtype": "auto"}, DiffusersGenerator(**node, dtype="auto"))
    fp32 = keys.images_config({**node, "dtype": "float32"}, DiffusersGenerator(**node, dtype="float32"))
    bf16 = keys.images_config({**node, "dtype": "bfloat16"}, DiffusersGenerator(**node, dtype="bfloat16"))
    assert auto["dtype"] == "float32" and keys.config_hash(auto) == keys.config_hash(fp32)
    assert keys.config_hash(bf16) != keys.config_hash(fp32)
    assert "device" not in auto and "batch_size" not in auto  # speed, not bytes
