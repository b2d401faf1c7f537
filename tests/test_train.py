import numpy as np
import pytest
import torch
from omegaconf import OmegaConf

from odin.models import create_model
from odin.train import ImageItems, summarize, train


def _halves(n, seed):
    """Class 0 is bright on the left, class 1 on the right: learnable in an epoch or two."""
    rng = np.random.default_rng(seed)
    items = []
    for i in range(n):
        x = rng.random((8, 8)).astype(np.float32) * 0.3
        x[:, :4] += 0.7 if i % 2 == 0 else 0.0
        x[:, 4:] += 0.7 if i % 2 == 1 else 0.0
        items.append((np.clip(x, 0, 1), i % 2))
    return items


def _cfg(epochs):
    return OmegaConf.create({"epochs": epochs, "batch_size": 16, "optimizer": "adam", "lr": 3e-3,
                             "weight_decay": 0.0, "label_smoothing": 0.0, "augment": False, "device": "cpu",
                             "num_workers": 0, "preload": True, "eval_every": 1})


def _run(epochs, checkpoint):
    torch.manual_seed(0)
    model = create_model("test_resnet", num_classes=2, in_chans=1)
    sets = [ImageItems(_halves(n, s), 16, 1, (0.5,), (0.5,)) for n, s in ((96, 0), (40, 1))]
    return train(model, *sets, _cfg(epochs), checkpoint, seed=0)


def test_learns_a_separable_task_and_reports_best_epoch(tmp_path):
    result = _run(3, tmp_path / "ck.pt")
    assert result.top1 >= 90 and result.top3 == 100.0  # top-3 of two classes is always right
    assert result.best_epoch == max(result.history, key=lambda h: h["top1"])["epoch"]
    assert (tmp_path / "ck.pt").exists()


def test_resume_continues_where_it_stopped(tmp_path):
    straight = _run(3, tmp_path / "a.pt")
    _run(2, tmp_path / "b.pt")  # "killed" after epoch 2
    resumed = _run(3, tmp_path / "b.pt")
    assert len(resumed.history) == 3
    for a, b in zip(straight.history, resumed.history, strict=True):
        assert a["train_loss"] == pytest.approx(b["train_loss"], rel=1e-4)
    done = _run(3, tmp_path / "b.pt")  # all epochs done: nothing to train
    assert done.history == resumed.history


def test_summarize_picks_best_top1():
    history = [{"epoch": 1, "top1": 50, "top3": 90}, {"epoch": 2, "top1": 70, "top3": 88},
               {"epoch": 3, "top1": 60, "top3": 95}]
    result = summarize(history)
    assert (result.top1, result.top3, result.best_epoch) == (70, 95, 2)


def test_rgb_and_grayscale_inputs_are_matched_to_the_model():
    items = [(np.zeros((10, 10, 3), np.float32), 0), (np.ones((10, 10), np.float32), 1)]
    gray = ImageItems(items, 16, 1, (0.485, 0.456, 0.406), (0.229, 0.224, 0.225))
    rgb = ImageItems(items, 16, 3, (0.5,), (0.5,))
    assert gray[0][0].shape == (1, 16, 16) and rgb[1][0].shape == (3, 16, 16)
