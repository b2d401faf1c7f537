"""The trainer: the paper's recipe (Adam, cross-entropy, best top-1/top-3 over epochs).

It checkpoints after every epoch. The checkpoint's path is the training key (odin/keys.py), so a
run started again with the same inputs resumes from the last finished epoch, or reads the result
of a finished run; the Result says which (`status`), so a reused result never looks new.
`resume=False` trains from scratch and replaces the checkpoint.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, Dataset

from odin.errors import ConfigError
from odin.files import atomic_write, remove_stale_temps
from odin.progress import progress

log = logging.getLogger(__name__)

Item = tuple[Callable[[], np.ndarray] | np.ndarray, int]  # an image (or how to load it) and its class index


@dataclass
class Result:
    top1: float  # best top-1 over epochs, in % (the paper's protocol)
    top3: float  # top-3 at the epoch of the best top-1: the pair a table prints together
    best_epoch: int  # the epoch of the best top-1 (1-based)
    best_top3: float  # the best top-3 of any epoch (maybe another epoch than best_epoch)
    last_top1: float  # at the last evaluated epoch: no choice made on the test set
    last_top3: float
    history: list[dict] = field(default_factory=list)
    status: str = "trained"  # trained | resumed (some epochs from the checkpoint) | cached (all of them)
    epochs_from_checkpoint: int = 0

    def to_dict(self) -> dict:
        return asdict(self)


class ImageItems(Dataset):
    """Images as float tensors at the model's input size; loaded once and kept when `cache`."""

    def __init__(self, items: Sequence[Item], size: int, channels: int, mean, std, cache: bool = True):
        self.items, self.size, self.channels, self.cache = items, size, channels, cache
        self.mean = torch.tensor(_per_channel(mean, channels)).view(-1, 1, 1)
        self.std = torch.tensor(_per_channel(std, channels)).view(-1, 1, 1)
        self._kept: dict[int, torch.Tensor] = {}

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        if i not in self._kept:
            image, _ = self.items[i]
            x = self._tensor(image() if callable(image) else image)
            if not self.cache:
                return x, self.items[i][1]
            self._kept[i] = x
        return self._kept[i], self.items[i][1]

    def _tensor(self, a: np.ndarray) -> torch.Tensor:
        x = torch.as_tensor(np.asarray(a, dtype=np.float32))
        x = x.unsqueeze(0) if x.ndim == 2 else x.permute(2, 0, 1)
        if x.shape[0] != self.channels:  # grayscale <-> RGB
            x = x.mean(0, keepdim=True).expand(self.channels, -1, -1)
        if x.shape[-2:] != (self.size, self.size):
            x = F.interpolate(x[None], size=(self.size, self.size), mode="bilinear", antialias=True,
                              align_corners=False)[0]
        return (x - self.mean) / self.std


def preload(loaders: Sequence[Callable[[], np.ndarray]], workers: int) -> list[np.ndarray]:
    """Run every loader once, in `workers` processes: acquiring an image costs far more than a step."""
    if workers <= 1 or len(loaders) < 512:
        return [load() for load in progress(loaders, desc="load images")]
    from concurrent.futures import ProcessPoolExecutor

    with ProcessPoolExecutor(workers) as pool:
        return list(progress(pool.map(_call, loaders, chunksize=256), desc="load images", total=len(loaders)))


def _call(load: Callable[[], np.ndarray]) -> np.ndarray:
    return load()


def _per_channel(values, channels: int) -> list[float]:
    values = list(values)
    return values[:channels] if len(values) >= channels else [float(np.mean(values))] * channels


def pick_device(device: str) -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(f"train.device={device} but CUDA is not available here; use train.device=auto or cpu")
    return torch.device(device)


def make_optimizer(name: str, params, lr: float, weight_decay: float) -> torch.optim.Optimizer:
    if name == "adam":
        return torch.optim.Adam(params, lr=lr, weight_decay=weight_decay)
    if name == "adamw":
        return torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay)
    if name == "sgd":
        return torch.optim.SGD(params, lr=lr, weight_decay=weight_decay, momentum=0.9)
    raise ConfigError(f"train.optimizer={name!r} is not one of adam, adamw, sgd")


@torch.no_grad()
def evaluate(model, loader, device) -> tuple[float, float]:
    model.eval()
    hit1 = hit3 = total = 0
    for x, y in loader:
        logits = model(x.to(device))
        top = logits.topk(min(3, logits.shape[1]), dim=1).indices.cpu()
        hit1 += (top[:, 0] == y).sum().item()
        hit3 += (top == y[:, None]).any(1).sum().item()
        total += len(y)
    return 100.0 * hit1 / total, 100.0 * hit3 / total


def augment(x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """A small random affine jitter (rotation, scale, shift) of a batch, seeded."""
    n = x.shape[0]
    angle = (torch.rand(n, generator=generator) - 0.5) * 0.3
    scale = 1 + (torch.rand(n, generator=generator) - 0.5) * 0.2
    shift = (torch.rand(n, 2, generator=generator) - 0.5) * 0.15
    cos, sin = torch.cos(angle) / scale, torch.sin(angle) / scale
    theta = torch.stack([torch.stack([cos, -sin, shift[:, 0]], 1), torch.stack([sin, cos, shift[:, 1]], 1)], 1)
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    background = x.amin(dim=(1, 2, 3), keepdim=True)
    return F.grid_sample(x - background, grid, align_corners=False) + background


def train(model, train_set: ImageItems, test_set: ImageItems, cfg, checkpoint: Path, seed: int = 0,
          on_epoch: Callable[[dict], None] | None = None, resume: bool = True) -> Result:
    device = pick_device(cfg.device)
    model.to(device)
    optimizer = make_optimizer(cfg.optimizer, model.parameters(), cfg.lr, cfg.weight_decay)
    history: list[dict] = []
    state = load_checkpoint(checkpoint, device) if resume else None
    if state is not None:
        history = state["history"]
        if len(history) >= cfg.epochs:  # finished before: no schedule depends on epochs, so read it
            log.info("training already done: epochs 1-%d read from %s (train.resume=false retrains)",
                     cfg.epochs, checkpoint)
            return summarize(history[: cfg.epochs], status="cached", from_checkpoint=cfg.epochs)
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        log.info("resuming from %s after epoch %d", checkpoint, len(history))
    elif checkpoint.exists() and not resume:
        log.info("train.resume=false: training from scratch, replacing %s", checkpoint)
    from_checkpoint = len(history)
    workers = 0 if cfg.preload else cfg.num_workers  # preloaded images are already in this process
    test_loader = DataLoader(test_set, batch_size=max(cfg.batch_size, 256))
    bar = progress(range(len(history), cfg.epochs), desc="train", initial=len(history), total=cfg.epochs)
    for epoch in bar:
        model.train()
        order = torch.Generator().manual_seed(seed * 1000 + epoch)  # same batches when resumed
        loader = DataLoader(train_set, batch_size=cfg.batch_size, shuffle=True, generator=order,
                            num_workers=workers, drop_last=len(train_set) > cfg.batch_size)
        total_loss = seen = 0.0
        for x, y in progress(loader, desc=f"epoch {epoch + 1}", leave=False):
            if cfg.augment:
                x = augment(x, order)
            loss = F.cross_entropy(model(x.to(device)), y.to(device), label_smoothing=cfg.label_smoothing)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            total_loss += loss.item() * len(y)
            seen += len(y)
        row = {"epoch": epoch + 1, "train_loss": total_loss / max(seen, 1)}
        if (epoch + 1) % cfg.eval_every == 0 or epoch + 1 == cfg.epochs:
            row["top1"], row["top3"] = evaluate(model, test_loader, device)
        history.append(row)
        _atomic_save({"model": model.state_dict(), "optimizer": optimizer.state_dict(), "history": history},
                     checkpoint)
        bar.set_postfix({k: round(v, 2) for k, v in row.items() if k != "epoch"})
        if on_epoch:
            on_epoch(row)
    return summarize(history, status="resumed" if from_checkpoint else "trained", from_checkpoint=from_checkpoint)


def summarize(history: list[dict], status: str = "trained", from_checkpoint: int = 0) -> Result:
    scored = [h for h in history if "top1" in h]
    if not scored:
        return Result(0.0, 0.0, 0, 0.0, 0.0, 0.0, history, status, from_checkpoint)
    best = max(scored, key=lambda h: h["top1"])  # the first of equals: the earliest epoch
    return Result(best["top1"], best["top3"], best["epoch"], max(h["top3"] for h in scored),
                  scored[-1]["top1"], scored[-1]["top3"], history, status, from_checkpoint)


def load_checkpoint(path: Path, device) -> dict | None:
    """The checkpoint's state, or None when there is none; a damaged one is said so and trained anew
    (it is a cache: the same key trains the same model again)."""
    if not path.exists():
        return None
    try:
        state = torch.load(path, map_location=device, weights_only=False)
        if not isinstance(state, dict) or not {"model", "optimizer", "history"} <= set(state):
            raise ValueError("not an ODIN checkpoint")
        return state
    except Exception as error:  # torch reports damage as RuntimeError, EOFError, UnpicklingError, ...
        log.warning("checkpoint %s is damaged (%s: %s): training from scratch", path, type(error).__name__,
                    str(error)[:200])
        return None


def _atomic_save(obj, path: Path) -> None:
    remove_stale_temps(path)  # a killed save's leftover (MBs) goes before the next one is written
    atomic_write(path, lambda tmp: torch.save(obj, tmp))
