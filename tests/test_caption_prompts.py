"""Caption prompts: subject replacement on real BLIP-2 captions, and a tiny BLIP-2 through the real path."""

from __future__ import annotations

import os

os.environ["HF_HUB_OFFLINE"] = "1"  # before any Hugging Face import

import time

import pytest
from hydra.utils import instantiate
from tiny_blip import FolderDataset, build_tiny_blip, build_tiny_blip2, write_image_folder

from odin.errors import MissingSplitError
from odin.hub import MissingWeightsError
from odin.prompts.caption import CaptionPrompts, replace_subject
from odin.prompts.parse import names_label

SUBJECTS = ["dog", "puppy", "cat", "kitten", "animal", "pet", "food", "dish", "thing"]


@pytest.mark.parametrize(
    "caption, label, expected",
    [  # captions of the kind blip2-opt-2.7b writes for Oxford Pet, Caltech-101 and Indian Food
        ("a dog laying on a couch with a blanket", "beagle", "a beagle laying on a couch with a blanket"),
        (
            "a black and white cat sitting on a window sill",
            "Bombay",
            "a black and white Bombay sitting on a window sill",
        ),
        ("a cat sitting on a dog bed", "Abyssinian", "an Abyssinian sitting on a dog bed"),  # first subject only
        ("two puppies playing in the grass", "pug", "two pug playing in the grass"),
        ("an animal standing in the snow", "beagle", "a beagle standing in the snow"),
        ("Dog on the beach, dog in the water", "pug", "pug on the beach, pug in the water"),
        ("a plate of food with rice and curry", "biryani", "a plate of biryani with rice and curry"),
        ("a catalogue lying on a table", "Bengal", "Bengal, a catalogue lying on a table"),  # no subject word
        ("a close up of a person holding a phone", "pug", "pug, a close up of a person holding a phone"),
        ("", "pug", "pug"),
    ],
)
def test_replace_subject(caption, label, expected):
    assert replace_subject(caption, label, SUBJECTS) == expected


def test_replace_subject_fallback_template():
    assert replace_subject("a red car", "pug", SUBJECTS, "a photo of {label}: {caption}") == "a photo of pug: a red car"


@pytest.fixture(scope="module")
def blip2(tmp_path_factory):
    return str(build_tiny_blip2(tmp_path_factory.mktemp("blip2")))


@pytest.fixture(scope="module")
def blip(tmp_path_factory):
    return str(build_tiny_blip(tmp_path_factory.mktemp("blip")))


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return FolderDataset(str(write_image_folder(tmp_path_factory.mktemp("pets"), {"beagle": 12, "pug": 3})))


@pytest.mark.parametrize("which", ["blip2", "blip"])
def test_tiny_captioner_prompts_name_each_label(which, request, folder):
    model = request.getfixturevalue(which)
    gen = CaptionPrompts(folder, model=model, subjects=SUBJECTS, num_prompts=4, max_images=8, max_new_tokens=6,
                         batch_size=3)  # fmt: skip
    gen.check(["beagle", "pug"])
    results = {r.label: r for r in gen(["beagle", "pug"])}
    for label, r in results.items():
        assert len(r.prompts) == 4 and all(isinstance(p, str) and names_label(p, label) for p in r.prompts)
        assert r.info["model"] == model and all(isinstance(c, str) for c in r.info["captions"])
        assert len(set(r.prompts)) == 4 - r.info["repeated"]  # distinct unless said otherwise
    # gibberish captions repeat; pug has 3 images for 4 prompts, so at least one is repeated
    assert len(results["pug"].info["captions"]) == 3 and results["pug"].info["repeated"] >= 1
    assert 4 <= len(results["beagle"].info["captions"]) <= 8
    again = CaptionPrompts(folder, model=model, subjects=SUBJECTS, num_prompts=4, max_images=8, max_new_tokens=6,
                           batch_size=8)  # fmt: skip
    assert again.prompts("beagle").prompts == results["beagle"].prompts  # same images, same captions


def test_more_captions_further_images_up_to_max_images(blip2, folder):
    gen = CaptionPrompts(folder, model=blip2, subjects=SUBJECTS, num_prompts=2, max_images=8, max_new_tokens=6,
                         batch_size=2)  # fmt: skip
    first = next(iter(gen(["beagle"])))
    extra = gen.more("beagle", first.prompts, first.prompts[:1], 1)
    assert set(extra.info["images"]).isdisjoint(first.info["images"])  # the next images of the label's order
    assert len(first.info["images"]) + len(extra.info["images"]) <= 8
    assert all(names_label(p, "beagle") and p not in first.prompts for p in extra.prompts)
    while gen.more("beagle", first.prompts, [], 1).info["images"]:  # until max_images are used
        pass
    assert gen.more("beagle", first.prompts, [], 1).prompts == []


def test_dataset_without_train_split_fails_clearly(blip2, tmp_path):
    no_train = FolderDataset(str(write_image_folder(tmp_path, {"beagle": 1})), split="trainval")
    with pytest.raises(MissingSplitError, match="prompt=caption captions the real training images.*prompt=naive"):
        CaptionPrompts(no_train, model=blip2).check(["beagle"])


def test_label_outside_the_dataset_fails_clearly(blip2, folder):
    with pytest.raises(ValueError, match=r"no class \['husky'\]"):
        CaptionPrompts(folder, model=blip2).check(["beagle", "husky"])


def test_missing_weights_fail_fast_offline(folder, tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))  # an empty cache
    start = time.perf_counter()
    with pytest.raises(MissingWeightsError, match="Salesforce/blip2-opt-2.7b.*prompt.model="):
        CaptionPrompts(folder).check(["beagle"])
    with pytest.raises(MissingWeightsError, match="no such folder"):
        CaptionPrompts(folder, model=str(tmp_path / "nowhere")).check(["beagle"])
    assert time.perf_counter() - start < 2.0


def test_config_builds_the_runs_dataset_by_interpolation(compose, blip2, folder):
    overrides = ("prompt=caption", f"prompt.model={blip2}", "prompt.num_prompts=2", "prompt.max_new_tokens=4")
    cfg = compose(*overrides)  # the default dataset=digits has no train split
    gen = instantiate(cfg.prompt)
    assert type(gen.dataset).__name__ == "DigitsDataset" and gen.subjects[:2] == ["dog", "puppy"]
    with pytest.raises(MissingSplitError, match="dataset=digits has no real training images"):
        gen.check(["three"])
    cfg = compose(*overrides, "dataset._target_=tiny_blip.FolderDataset", f"dataset.root={folder.root}")
    assert cfg.prompt.dataset.root == str(folder.root)
    [r] = instantiate(cfg.prompt)(["pug"])
    assert len(r.prompts) == 2 and all(names_label(p, "pug") for p in r.prompts)
