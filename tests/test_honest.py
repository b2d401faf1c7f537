"""Honest evaluation: an epoch chosen on held-out generated prompts, the real-data reference, seen + unseen."""

import pytest
import torch
from dataset_fixtures import image_folder

from odin.errors import ConfigError
from odin.run import run
from odin.split import holdout_prompts
from odin.train import seen_unseen

SMALL = ["experiment=smoke", "logger=none", "train.epochs=2"]


def _rows(units_per_label):
    return [{"label": label, "unit": f"u{label}{u}", "file_name": f"{label}/{u}_{i}.png"}
            for label, n in units_per_label.items() for u in range(n) for i in range(3)]


def test_whole_prompts_are_held_out_and_every_label_keeps_one():
    rows = _rows({"a": 10, "b": 2, "c": 1})
    train, held = holdout_prompts(rows, 0.2)
    assert {r["unit"] for r in train}.isdisjoint({r["unit"] for r in held})  # no prompt on both sides
    held_units = {(r["label"], r["unit"]) for r in held}
    assert sum(1 for label, _ in held_units if label == "a") == 2  # 20% of 10 prompts
    assert sum(1 for label, _ in held_units if label == "b") == 0  # 0.4 rounds to 0
    assert {r["label"] for r in train} == {"a", "b", "c"} and len(train) + len(held) == len(rows)
    assert holdout_prompts(rows, 0.2) == (train, held) and holdout_prompts(rows, 0) == (rows, [])
    assert holdout_prompts(_rows({"a": 2}), 0.9)[0]  # never every prompt of a label


def test_seen_unseen_scores_are_per_class_means_and_their_harmonic_mean():
    y = torch.tensor([0, 0, 0, 0, 1, 1, 2, 2])
    top = torch.tensor([[0], [0], [0], [1], [1], [0], [2], [2]]).expand(-1, 3).clone()
    top[:, 1:] = 5  # only the first guess matters
    scores = seen_unseen(top, y, seen={0})
    assert scores["seen_top1"] == 75.0 and scores["unseen_top1"] == (50.0 + 100.0) / 2
    assert scores["harmonic"] == pytest.approx(2 * 75 * 75 / 150)


def test_the_epoch_chosen_on_held_out_prompts_is_reported(compose, tmp_path):
    done = run(compose(*SMALL, "prompt.num_prompts=4", "train.holdout=0.5"), output_dir=tmp_path / "a")
    assert done["train_images"] == {"generated": 3 * 2 * 4, "real": 0, "held_out": 3 * 2 * 4}
    assert all("val_top1" in h for h in done["history"])
    chosen = max(done["history"], key=lambda h: h["val_top1"])
    assert (done["heldout_epoch"], done["heldout_top1"], done["heldout_top3"]) == (
        chosen["epoch"], chosen["top1"], chosen["top3"])
    assert done["last_top1"] == done["history"][-1]["top1"]
    other = run(compose(*SMALL, "prompt.num_prompts=4", "train.holdout=0.25"), output_dir=tmp_path / "b")
    assert other["training"]["status"] == "trained" and other["train_images"]["held_out"] == 3 * 1 * 4


@pytest.fixture
def letters(tmp_path):
    """A real dataset of two letters the glyph backend can draw: `a` and `b`, 6 images each."""
    image_folder(tmp_path / "letters", ["a", "b"], per_class=6)
    return ["dataset=folder", f"dataset.root={tmp_path / 'letters'}", "dataset.test_fraction=0.5",
            "prompt=naive", "prompt.num_prompts=1", "diffusion.images_per_prompt=4", "labels=null"]


def test_the_real_data_reference_trains_on_the_real_split_only(compose, tmp_path, letters):
    done = run(compose(*SMALL, *letters, "train.source=real"), output_dir=tmp_path / "run")
    assert done["train_images"] == {"generated": 0, "real": 6, "held_out": 0} and done["test_images"] == 6
    assert "images" not in done and not (tmp_path / "store" / "images").exists()  # nothing generated
    assert done["seen_unseen"] is None  # every class is real: no seen/unseen split


def test_seen_real_classes_and_unseen_generated_ones(compose, tmp_path, letters):
    done = run(compose(*SMALL, *letters, "train.real_classes=[a]"), output_dir=tmp_path / "run")
    assert done["train_images"] == {"generated": 4, "real": 3, "held_out": 0}
    assert set(done["prompts"]) == {"b"}  # only the unseen class is generated
    best = next(h for h in done["history"] if h["epoch"] == done["best_epoch"])
    assert done["seen_unseen"] == {k: best[k] for k in ("seen_top1", "unseen_top1", "harmonic")}
    generated_only = run(compose(*SMALL, *letters), output_dir=tmp_path / "gen")
    assert generated_only["training"]["checkpoint"] != done["training"]["checkpoint"]


@pytest.mark.parametrize("overrides, words", [
    (["train.source=real"], ["dataset=digits has no real training split"]),
    (["train.real_classes=[zero]", "labels=[one,two]"], ["train.real_classes ['zero']"]),
])
def test_real_training_needs_real_images(compose, tmp_path, overrides, words):
    with pytest.raises(ConfigError) as error:
        run(compose(*SMALL, *overrides), output_dir=tmp_path / "run")
    assert all(w in str(error.value) for w in words), str(error.value)
