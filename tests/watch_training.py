"""Watch odin.train.train while the real one runs: the model as trained and the test set it was scored on,
so a test can recompute a reported number from the model's own predictions."""

from __future__ import annotations


def watch_training(monkeypatch) -> list[dict]:
    """Each call of odin.train.train, in order: {"model", "test_set", "result"}."""
    import odin.train

    calls, real_train = [], odin.train.train

    def train(model, train_set, test_set, *args, **kwargs):
        result = real_train(model, train_set, test_set, *args, **kwargs)
        calls.append({"model": model, "test_set": test_set, "result": result})
        return result

    monkeypatch.setattr(odin.train, "train", train)  # the tasks import it when they run
    return calls


def scored_images(call) -> tuple:
    """The test set as the model saw it: a tensor of inputs and the list of labels."""
    import torch

    test_set = call["test_set"]
    return torch.stack([test_set[i][0] for i in range(len(test_set))]), [test_set[i][1] for i in range(len(test_set))]


def top1_recomputed(call) -> float:
    """The trained model's top-1 on its test set, computed here from its predictions."""
    import torch

    x, y = scored_images(call)
    with torch.no_grad():
        predicted = call["model"].eval()(x).argmax(1).tolist()
    return 100.0 * sum(p == t for p, t in zip(predicted, y, strict=True)) / len(y)
