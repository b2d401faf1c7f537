import numpy as np
import pytest
import torch
import torch.nn.functional as F
from omegaconf import OmegaConf

import odin.train
from odin.errors import ConfigError
from odin.models import create_model
from odin.train import CheckpointPacer, ImageItems, augment, evaluate, resolve_precision, summarize, train


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
    assert result.top1 >= 90 and result.status == "trained"
    assert result.best_epoch == max(result.history, key=lambda h: h["top1"])["epoch"]
    assert (tmp_path / "ck.pt").exists()


class FixedLogits(torch.nn.Module):
    """A 'model' whose logits are given: sample i's true class has rank ranks[i] (1 = top) of 6."""

    def __init__(self, ranks):
        super().__init__()
        self.logits = torch.stack([torch.roll(torch.arange(6.0, 0.0, -1.0), r - 1) for r in ranks])

    def forward(self, x):
        return self.logits[x.long().view(-1)]


def test_top3_counts_the_true_class_among_the_three_best_of_many():
    from torch.utils.data import DataLoader, TensorDataset

    ranks = [1, 2, 3, 4, 5, 6, 3, 2]
    # sample i is the index i; its label is the class whose logit has rank ranks[i]
    model = FixedLogits(ranks)
    labels = torch.tensor([int(torch.argsort(model.logits[i], descending=True)[r - 1]) for i, r in enumerate(ranks)])
    loader = DataLoader(TensorDataset(torch.arange(len(ranks)).float(), labels), batch_size=3)
    top1, top3 = evaluate(model, loader, "cpu")
    assert top1 == 100 * 1 / 8 and top3 == 100 * 5 / 8  # a top-2 bug gives 3/8, a top-4 bug 6/8


def test_resume_continues_where_it_stopped(tmp_path):
    straight = _run(3, tmp_path / "a.pt")
    _run(2, tmp_path / "b.pt")  # "killed" after epoch 2
    resumed = _run(3, tmp_path / "b.pt")
    assert len(resumed.history) == 3
    for a, b in zip(straight.history, resumed.history, strict=True):
        assert a["train_loss"] == pytest.approx(b["train_loss"], rel=1e-4)
    assert resumed.status == "resumed" and resumed.epochs_from_checkpoint == 2
    done = _run(3, tmp_path / "b.pt")  # all epochs done: nothing to train
    assert done.history == resumed.history and done.status == "cached"
    shorter = _run(2, tmp_path / "b.pt")  # a shorter run is the first epochs of the longer one
    assert shorter.history == resumed.history[:2] and shorter.status == "cached"


def test_summarize_reports_top3_at_the_epoch_of_the_best_top1():
    history = [{"epoch": 1, "top1": 50, "top3": 90}, {"epoch": 2, "top1": 70, "top3": 88},
               {"epoch": 3, "top1": 60, "top3": 95}, {"epoch": 4, "train_loss": 1.0}]
    result = summarize(history)
    assert (result.top1, result.top3, result.best_epoch) == (70, 88, 2)  # the pair a table prints together
    assert result.best_top3 == 95 and (result.last_top1, result.last_top3) == (60, 95)


def test_rgb_and_grayscale_inputs_are_matched_to_the_model():
    items = [(np.zeros((10, 10, 3), np.float32), 0), (np.ones((10, 10), np.float32), 1)]
    gray = ImageItems(items, 16, 1, (0.485, 0.456, 0.406), (0.229, 0.224, 0.225))
    rgb = ImageItems(items, 16, 3, (0.5,), (0.5,))
    assert gray[0][0].shape == (1, 16, 16) and rgb[1][0].shape == (3, 16, 16)


def test_precision_auto_is_fp32_on_cpu_and_a_wrong_value_names_the_key(compose):
    from odin.validate import validate

    cpu = torch.device("cpu")
    assert resolve_precision("auto", cpu) == "fp32"
    assert resolve_precision("bf16", cpu) == "bf16"  # asked for explicitly: CPU autocast has bf16
    with pytest.raises(ConfigError, match="train.precision='half'.*fp16"):
        validate(compose("train.precision=half"))


def _reference_history(cfg, train_items, test_items, seed):
    """The trainer's loop before precision and channels_last existed: what a CPU run must still give."""
    from torch.utils.data import DataLoader

    torch.manual_seed(0)
    model = create_model("test_resnet", num_classes=2, in_chans=1)
    optimizer = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    test_loader = DataLoader(test_items, batch_size=256)
    history = []
    for epoch in range(cfg.epochs):
        model.train()
        order = torch.Generator().manual_seed(seed * 1000 + epoch)
        loader = DataLoader(train_items, batch_size=cfg.batch_size, shuffle=True, generator=order,
                            drop_last=len(train_items) > cfg.batch_size)
        total = seen = 0.0
        for x, y in loader:
            x = augment(x, order) if cfg.augment else x
            loss = F.cross_entropy(model(x), y, label_smoothing=cfg.label_smoothing)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            total, seen = total + loss.item() * len(y), seen + len(y)
        top1, top3 = evaluate(model, test_loader, "cpu")
        history.append({"epoch": epoch + 1, "train_loss": total / seen, "top1": top1, "top3": top3})
    return history


@pytest.mark.parametrize("precision", ["auto", "fp32"])
def test_cpu_training_gives_exactly_the_history_it_gave_before(tmp_path, precision):
    # 100 images in batches of 16: shuffled, a partial batch dropped, augmented with the order's generator
    cfg = OmegaConf.merge(_cfg(3), {"augment": True, "label_smoothing": 0.1, "precision": precision})
    sets = [ImageItems(_halves(n, s), 16, 1, (0.5,), (0.5,)) for n, s in ((100, 0), (40, 1))]
    torch.manual_seed(0)
    model = create_model("test_resnet", num_classes=2, in_chans=1)
    result = train(model, *sets, cfg, tmp_path / "ck.pt", seed=3)
    assert result.history == _reference_history(cfg, *sets, seed=3)  # equal floats, not approximately


def test_bf16_is_really_used_when_asked_for(tmp_path):
    # The dtype each convolution computes in, in training and in evaluation. A loss comparison would
    # hang on the CPU's bf16 kernels: on some CPUs oneDNN's bf16 path gives NaN losses in this model.
    sets = [ImageItems(_halves(n, s), 16, 1, (0.5,), (0.5,)) for n, s in ((32, 0), (16, 1))]
    seen = {}
    for precision in ("fp32", "bf16"):
        torch.manual_seed(0)
        model = create_model("test_resnet", num_classes=2, in_chans=1)
        dtypes = seen[precision] = set()
        for conv in (m for m in model.modules() if isinstance(m, torch.nn.Conv2d)):
            conv.register_forward_hook(lambda m, i, out, dtypes=dtypes: dtypes.add((m.training, out.dtype)))
        cfg = OmegaConf.merge(_cfg(1), {"precision": precision})
        train(model, *sets, cfg, tmp_path / f"{precision}.pt")
    assert seen["fp32"] == {(True, torch.float32), (False, torch.float32)}
    assert seen["bf16"] == {(True, torch.bfloat16), (False, torch.bfloat16)}


def test_checkpoints_are_written_every_epoch_unless_writing_costs_over_5_percent(monkeypatch):
    clock = [0.0]
    monkeypatch.setattr(odin.train.time, "perf_counter", lambda: clock[0])
    pacer = CheckpointPacer()
    clock[0] = 2.0
    assert pacer.due(last=False)  # nothing written yet, cheap: every epoch (a preempted job loses none)
    with pacer:
        clock[0] += 0.01  # a cheap write
    clock[0] += 1.0
    assert pacer.due(last=False)  # 1 s of training >= 20 x 0.01 s
    with pacer:
        clock[0] += 10.0  # a slow write (a big model on a network file system)
    clock[0] += 150.0
    assert not pacer.due(last=False) and pacer.due(last=True)  # 20 x 10 s not yet reached; the last always
    clock[0] += 60.0
    assert pacer.due(last=False)


@pytest.mark.parametrize("name", ["adam", "adamw", "sgd"])
def test_on_a_cpu_the_optimizer_updates_all_tensors_at_once_to_the_same_bits(name):
    """make_optimizer asks for torch's multi-tensor (foreach) update on a CPU, for speed: the weights it gives
    must be the very bits of the one-tensor-at-a-time loop that torch uses there by default."""
    cpu = torch.device("cpu")
    weights = []
    for device in (None, cpu):  # None: torch's own choice (the loop, on a CPU)
        torch.manual_seed(0)
        model = create_model("test_resnet", num_classes=2, in_chans=1)
        optimizer = odin.train.make_optimizer(name, model.parameters(), 3e-3, 1e-4, device)
        assert optimizer.defaults["foreach"] is (True if device else None)
        for x, y in [(torch.rand(16, 1, 16, 16, generator=torch.Generator().manual_seed(i)), torch.arange(16) % 2)
                     for i in range(3)]:
            optimizer.zero_grad()
            F.cross_entropy(model(x), y).backward()
            optimizer.step()
        weights.append([p.detach().clone() for p in model.parameters()])
    assert all(torch.equal(a, b) for a, b in zip(*weights, strict=True))
