"""The trainer: the paper's recipe (Adam, cross-entropy, best top-1/top-3 over epochs).

It checkpoints after every epoch, unless writing costs more than ~5% of the training time; then as
often as that allows, and always after the last epoch (CheckpointPacer). The checkpoint's path is
the training key (odin/keys.py), so a run started again with the same inputs resumes from the last
saved epoch, or reads the result of a finished run; the Result says which (`status`), so a reused
result never looks new.
`resume=False` trains from scratch and replaces the checkpoint.

On a CUDA GPU it trains with mixed precision (train.precision, `auto`: bf16, or fp16 with loss
scaling where bf16 is missing), channels_last and pinned memory; on a CPU in fp32.
"""

from __future__ import annotations

import contextlib
import logging
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, Dataset

from odin.device import resolve_device
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
    # test accuracy at the epoch with the best top-1 on held-out generated images (train.holdout): the
    # honest number when no real data may be looked at; 0 / None without a held-out split
    heldout_epoch: int = 0
    heldout_top1: float | None = None
    heldout_top3: float | None = None
    seen_unseen: dict | None = None  # at the best epoch, with train.real_classes: seen, unseen, harmonic

    def to_dict(self) -> dict:
        return asdict(self)


class ImageItems(Dataset):
    """Images as float tensors at the model's input size; loaded once and kept when `cache`.

    Resizing follows the model's `Preprocessing` (odin.models): with a `crop_pct`, timm's eval
    transform (shorter side to size / crop_pct, centre crop), else a plain resize to size x size.
    """

    def __init__(self, items: Sequence[Item], size: int, channels: int, mean, std, cache: bool = True,
                 interpolation: str = "bilinear", crop_pct: float | None = None, shaped: bool = False):
        self.items, self.size, self.channels, self.cache, self.shaped = items, size, channels, cache, shaped
        self.interpolation, self.crop_pct = interpolation, crop_pct
        self.mean = torch.tensor(_per_channel(mean, channels)).view(-1, 1, 1)
        self.std = torch.tensor(_per_channel(std, channels)).view(-1, 1, 1)
        self._kept: dict[int, torch.Tensor] = {}

    @classmethod
    def for_model(cls, items: Sequence[Item], channels: int, prep, cache: bool = True,
                  shaped: bool = False) -> ImageItems:
        """`prep`: the model's odin.models.Preprocessing; `shaped`: the items are already C x size x size
        (odin.prepared), so only normalisation is left."""
        return cls(items, prep.size, channels, prep.mean, prep.std, cache, prep.interpolation, prep.crop_pct, shaped)

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
        x = torch.as_tensor(np.asarray(a, dtype=np.float32)) if self.shaped else self.shape(a)
        return (x - self.mean) / self.std

    def shape(self, a: np.ndarray) -> torch.Tensor:
        """An image (H x W or H x W x C in [0, 1]) at the model's channels and size, not yet normalised."""
        x = torch.as_tensor(np.asarray(a, dtype=np.float32))
        x = x.unsqueeze(0) if x.ndim == 2 else x.permute(2, 0, 1)
        if x.shape[0] != self.channels:  # grayscale <-> RGB
            x = x.mean(0, keepdim=True).expand(self.channels, -1, -1)
        return self._resize(x) if self.crop_pct is None else self._resize_and_crop(x)

    def _resize(self, x: torch.Tensor, size: tuple[int, int] | None = None) -> torch.Tensor:
        size = size or (self.size, self.size)
        if x.shape[-2:] == size:
            return x
        mode = self.interpolation
        x = F.interpolate(x[None], size=size, mode=mode, antialias=mode != "nearest",
                          align_corners=False if mode != "nearest" else None)[0]
        return x.clamp(0, 1) if mode == "bicubic" else x  # bicubic overshoots; images are in [0, 1]

    def _resize_and_crop(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        short = math.floor(self.size / self.crop_pct)
        x = self._resize(x, (short, round(w * short / h)) if h <= w else (round(h * short / w), short))
        top, left = (x.shape[-2] - self.size) // 2, (x.shape[-1] - self.size) // 2
        return x[:, top:top + self.size, left:left + self.size]


def preload(loaders: Sequence[Callable[[], Any]], workers: int, images: int | None = None) -> list:
    """Run every loader once, in `workers` processes: acquiring an image costs far more than a step.
    `images`: how many images the loaders make in all (one each when not given); below 512 a pool of
    processes costs more than it saves."""
    images = len(loaders) if images is None else images
    if workers <= 1 or images < 512:
        return [load() for load in progress(loaders, desc="load images")]
    from concurrent.futures import ProcessPoolExecutor

    chunk = max(1, min(256, len(loaders) // (8 * workers)))  # a few chunks per worker: they finish together
    with ProcessPoolExecutor(workers) as pool:
        return list(progress(pool.map(_call, loaders, chunksize=chunk), desc="load images", total=len(loaders)))


def _call(load: Callable[[], np.ndarray]) -> np.ndarray:
    return load()


def _per_channel(values, channels: int) -> list[float]:
    values = list(values)
    return values[:channels] if len(values) >= channels else [float(np.mean(values))] * channels


def make_optimizer(name: str, params, lr: float, weight_decay: float, device: torch.device | None = None
                   ) -> torch.optim.Optimizer:
    """train.optimizer (odin/validate.py checks the name): adam, adamw, or sgd with momentum 0.9.

    On a CPU torch's default is a loop over the parameters, one small operation at a time; its multi-tensor
    (foreach) form computes the same update in fewer, larger ones (the embedded default's history is equal to
    the last bit, and its training 15% faster). On a GPU torch picks that form itself."""
    foreach = True if device is not None and device.type == "cpu" else None
    if name == "sgd":
        return torch.optim.SGD(params, lr=lr, weight_decay=weight_decay, momentum=0.9, foreach=foreach)
    return {"adam": torch.optim.Adam, "adamw": torch.optim.AdamW}[name](params, lr=lr, weight_decay=weight_decay,
                                                                       foreach=foreach)


_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


def resolve_precision(precision: str, device: torch.device) -> str:
    """`auto`: bf16 on a CUDA GPU that has it, else fp16 on CUDA (with loss scaling), fp32 elsewhere.

    It changes the numbers, so the resolved value (not `auto`) belongs in the training key. The name is
    checked by odin/validate.py; whether the GPU has bf16 only here, where the device is known.
    """
    cuda = device.type == "cuda"
    if precision == "auto":
        if not cuda:
            return "fp32"
        return "bf16" if torch.cuda.is_bf16_supported() else "fp16"
    if precision == "bf16" and cuda and not torch.cuda.is_bf16_supported():
        raise ConfigError(f"train.precision=bf16 but {torch.cuda.get_device_name(device)} has no bf16; "
                          "use train.precision=fp16 (or auto)")
    return precision


def autocast(device: torch.device, precision: str):
    """Mixed precision for the forward pass; nothing for fp32."""
    if precision not in _DTYPES:
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=_DTYPES[precision])


def _to_device(x: torch.Tensor, device: torch.device) -> torch.Tensor:
    # On CUDA, NHWC (channels_last) is what tensor-core convolutions want; pinned memory copies async.
    if device.type == "cuda":
        return x.to(device, non_blocking=True, memory_format=torch.channels_last)
    return x.to(device)


@torch.no_grad()
@torch.no_grad()
def predict(model, loader, device, precision: str = "fp32") -> tuple[torch.Tensor, torch.Tensor]:
    """The three best classes of every sample (most likely first) and the true classes."""
    model.eval()
    device = torch.device(device)
    tops, ys = [], []
    for x, y in loader:
        with autocast(device, precision):
            logits = model(_to_device(x, device))
        tops.append(logits.topk(min(3, logits.shape[1]), dim=1).indices.cpu())
        ys.append(y)
    return torch.cat(tops), torch.cat(ys)


def scores(top: torch.Tensor, y: torch.Tensor) -> tuple[float, float]:
    """top-1 and top-3 accuracy in %."""
    hit1, hit3 = (top[:, 0] == y).sum().item(), (top == y[:, None]).any(1).sum().item()
    return 100.0 * hit1 / len(y), 100.0 * hit3 / len(y)


def evaluate(model, loader, device, precision: str = "fp32") -> tuple[float, float]:
    return scores(*predict(model, loader, device, precision))


def seen_unseen(top: torch.Tensor, y: torch.Tensor, seen: set[int]) -> dict[str, float]:
    """Generalised zero-shot scores: top-1 averaged over the classes trained on real images (seen) and
    over those trained on generated ones (unseen), each the mean of per-class accuracies, and their
    harmonic mean."""
    hits = top[:, 0] == y
    per_class = {int(c): 100.0 * hits[y == c].sum().item() / (y == c).sum().item() for c in y.unique()}
    s = [a for c, a in per_class.items() if c in seen]
    u = [a for c, a in per_class.items() if c not in seen]
    seen_acc, unseen_acc = (sum(s) / len(s) if s else 0.0), (sum(u) / len(u) if u else 0.0)
    harmonic = 2 * seen_acc * unseen_acc / (seen_acc + unseen_acc) if seen_acc + unseen_acc else 0.0
    return {"seen_top1": seen_acc, "unseen_top1": unseen_acc, "harmonic": harmonic}


def augment(x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """A small random affine jitter (rotation, scale, shift) of a batch, seeded."""
    n = x.shape[0]
    angle = (torch.rand(n, generator=generator) - 0.5) * 0.3
    scale = 1 + (torch.rand(n, generator=generator) - 0.5) * 0.2
    shift = (torch.rand(n, 2, generator=generator) - 0.5) * 0.15
    cos, sin = torch.cos(angle) / scale, torch.sin(angle) / scale
    theta = torch.stack([torch.stack([cos, -sin, shift[:, 0]], 1), torch.stack([sin, cos, shift[:, 1]], 1)], 1)
    grid = F.affine_grid(theta.to(x.device), list(x.shape), align_corners=False)
    background = x.amin(dim=(1, 2, 3), keepdim=True)
    return F.grid_sample(x - background, grid, align_corners=False) + background


class EpochBatches:
    """The batch sampler of a DataLoader built once: `shuffle(generator)` deals the next epoch's batches.

    A loader built once keeps its worker processes between epochs (persistent_workers); the order
    is drawn from the epoch's generator exactly as DataLoader(shuffle=True, generator=...) draws it
    (one number for the worker seed, then a permutation), so histories match earlier versions.
    """

    def __init__(self, n: int, batch_size: int):
        self.n, self.batch_size, self.batches = n, batch_size, []
        self.drop_last = n > batch_size  # a last partial batch would be noisy; a tiny set keeps its one batch

    def shuffle(self, generator: torch.Generator) -> None:
        torch.empty((), dtype=torch.int64).random_(generator=generator)  # DataLoader's base seed draw
        order = torch.randperm(self.n, generator=generator).tolist()
        end = self.n - self.n % self.batch_size if self.drop_last else self.n
        self.batches = [order[i:i + self.batch_size] for i in range(0, end, self.batch_size)]

    def __iter__(self):
        return iter(self.batches)

    def __len__(self) -> int:
        return len(self.batches)


def loader_options(device: torch.device, workers: int) -> dict:
    """On a GPU: pinned memory (async copies) and workers kept alive between epochs; on a CPU neither."""
    cuda = device.type == "cuda"
    return {"num_workers": workers, "pin_memory": cuda, "persistent_workers": cuda and workers > 0}


class CheckpointPacer:
    """When to write the checkpoint: after every epoch (a preempted job resumes from the last one),
    unless writing costs more than ~1/ratio of the training time; then once `ratio` times the last
    write's duration has passed since it (and always after the last epoch).

    A checkpoint of a big model (ResNeXt101 with Adam's moments: 1 GB) can take longer to write than
    a small epoch takes to train. A run killed in between redoes the epochs since the last write:
    they give the same numbers (each epoch's order is seeded), at the cost of about a minute.
    """

    def __init__(self, every_s: float = 0.0, ratio: float = 20.0):
        self.every_s, self.ratio, self.cost, self.since = every_s, ratio, 0.0, time.perf_counter()

    def due(self, last: bool) -> bool:
        return last or time.perf_counter() - self.since >= max(self.every_s, self.ratio * self.cost)

    def __enter__(self) -> None:
        self.started = time.perf_counter()

    def __exit__(self, *exc) -> None:
        self.since = time.perf_counter()
        self.cost = self.since - self.started


def train(model, train_set: ImageItems, test_set: ImageItems, cfg, checkpoint: Path, seed: int = 0,
          on_epoch: Callable[[dict], None] | None = None, resume: bool = True, val_set: ImageItems | None = None,
          seen_classes: set[int] | None = None) -> Result:
    """`val_set`: held-out generated images, evaluated each epoch (val_top1) to choose an epoch without
    the test set; `seen_classes`: the classes trained on real images, for seen / unseen / harmonic scores."""
    device = resolve_device(cfg.device)
    precision = resolve_precision(cfg.get("precision", "auto"), device)
    if cfg.get("threads"):  # train.threads (the schema's 2): the count changes the numbers, so the config fixes it
        torch.set_num_threads(cfg.threads)
    if device.type == "cuda":  # NHWC weights to match NHWC batches (_to_device)
        model.to(device, memory_format=torch.channels_last)
        torch.backends.cudnn.benchmark = True  # fixed input size: pick the fastest kernels once (float noise)
    else:
        model.to(device)
    optimizer = make_optimizer(cfg.optimizer, model.parameters(), cfg.lr, cfg.weight_decay, device)
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
    options = loader_options(device, workers)
    batches = EpochBatches(len(train_set), cfg.batch_size)
    # Its own generator: the loader draws worker seeds from it, never from torch's global RNG.
    loader = DataLoader(train_set, batch_sampler=batches, generator=torch.Generator(), **options)
    test_loader = DataLoader(test_set, batch_size=max(cfg.batch_size, 256), **options)
    val_loader = DataLoader(val_set, batch_size=max(cfg.batch_size, 256), **options) if val_set is not None else None
    scaler = torch.amp.GradScaler(device.type, enabled=precision == "fp16")  # fp16 gradients underflow unscaled
    # On a GPU the loss stays there until the epoch ends: .item() per batch would wait for every step.
    loss_dtype = torch.float32 if device.type == "mps" else torch.float64
    saves = CheckpointPacer()
    bar = progress(range(len(history), cfg.epochs), desc="train", initial=len(history), total=cfg.epochs)
    for epoch in bar:
        model.train()
        order = torch.Generator().manual_seed(seed * 1000 + epoch)  # same batches when resumed
        batches.shuffle(order)
        total_loss, seen = torch.zeros((), dtype=loss_dtype, device=device), 0
        for x, y in progress(loader, desc=f"epoch {epoch + 1}", leave=False):
            x = _to_device(x, device)
            if cfg.augment:  # where the batch is (on a GPU, not in the loader); drawn from the epoch's generator
                x = _to_device(augment(x, order), device)
            with autocast(device, precision):
                loss = F.cross_entropy(model(x), y.to(device, non_blocking=True), label_smoothing=cfg.label_smoothing)
            optimizer.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()
            total_loss += loss.detach().to(loss_dtype) * len(y)
            seen += len(y)
        row = {"epoch": epoch + 1, "train_loss": total_loss.item() / max(seen, 1)}
        if (epoch + 1) % cfg.eval_every == 0 or epoch + 1 == cfg.epochs:
            top, y = predict(model, test_loader, device, precision)
            row["top1"], row["top3"] = scores(top, y)
            if seen_classes:
                row.update(seen_unseen(top, y, seen_classes))
            if val_set is not None and len(val_set):
                row["val_top1"] = evaluate(model, val_loader, device, precision)[0]
        history.append(row)
        if saves.due(last=epoch + 1 == cfg.epochs):
            with saves:
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
    result = Result(best["top1"], best["top3"], best["epoch"], max(h["top3"] for h in scored),
                    scored[-1]["top1"], scored[-1]["top3"], history, status, from_checkpoint)
    validated = [h for h in scored if "val_top1" in h]
    if validated:  # the epoch chosen on held-out generated images: no test label involved
        chosen = max(validated, key=lambda h: h["val_top1"])
        result.heldout_epoch, result.heldout_top1, result.heldout_top3 = chosen["epoch"], chosen["top1"], chosen["top3"]
    if "harmonic" in best:
        result.seen_unseen = {k: best[k] for k in ("seen_top1", "unseen_top1", "harmonic")}
    return result


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
