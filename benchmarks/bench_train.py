"""ODIN's trainer (odin.train.train) against a plain timm + torch loop: training images per second.

    python benchmarks/bench_train.py [--model resnet18] [--size 32] [--images 256] [--batch 32]
                                     [--epochs 5] [--repeats 3]
    python benchmarks/bench_train.py --gpu    # resnet50 at 224 px, 2048 images, batch 64
    python benchmarks/bench_train.py --toy    # seconds on CPU: test_resnet, 16 px, 32 images, 1 epoch, 1 pair

Both train the same timm model (same initial weights) on the same tensors (random images, made
once and converted by ODIN's ImageItems before any clock starts), with Adam, cross-entropy and the
same batch size, for `--epochs` epochs, in `--repeats` pairs of runs in alternating order (plain
then ODIN, ODIN then plain, ...). The rates are medians; the ratio is the median of the pairs'
ratios (a shared machine's load drifts). ODIN's time includes everything its trainer does (batching
through its DataLoader, the loss bookkeeping, the checkpoints it writes: their share is printed)
except evaluation on the test set, timed apart and printed on its own line (the plain loop has none).

On CPU both run in fp32 and the goal is a ratio >= 0.95. With `--gpu` the plain loop stays fp32
and NCHW while ODIN runs as configured for a GPU (train.precision=auto: bf16 autocast,
channels_last, pinned memory); the goal is >= 1.5. Threads: torch uses OMP_NUM_THREADS.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # this checkout's odin

import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from omegaconf import OmegaConf  # noqa: E402

import odin.train  # noqa: E402
from odin.models import create_model, preprocessing  # noqa: E402
from odin.train import ImageItems  # noqa: E402


def make_sets(n: int, size: int, classes: int, prep) -> tuple[ImageItems, ImageItems]:
    rng = np.random.default_rng(0)
    items = [(rng.random((size, size, 3), dtype=np.float32), i % classes) for i in range(n)]
    test = [(rng.random((size, size, 3), dtype=np.float32), i % classes) for i in range(50)]
    sets = ImageItems.for_model(items, 3, prep), ImageItems.for_model(test, 3, prep)
    for s in sets:  # convert every image now: the clocks measure training, not image preparation
        for i in range(len(s)):
            s[i]
    return sets


def new_model(args):
    torch.manual_seed(0)
    return create_model(args.model, num_classes=args.classes, in_chans=3)


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def plain_loop(args, train_set: ImageItems, device: torch.device) -> float:
    """The loop a researcher writes: fp32, NCHW, tensors moved per batch. Returns seconds."""
    x_all = torch.stack([train_set[i][0] for i in range(len(train_set))])
    y_all = torch.tensor([train_set.items[i][1] for i in range(len(train_set))])
    model = new_model(args).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=args.lr)
    sync(device)
    start = time.perf_counter()
    for epoch in range(args.epochs):
        model.train()
        order = torch.randperm(len(x_all), generator=torch.Generator().manual_seed(epoch))
        for i in range(0, len(order) - args.batch + 1, args.batch):
            idx = order[i:i + args.batch]
            loss = F.cross_entropy(model(x_all[idx].to(device)), y_all[idx].to(device))
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
    sync(device)
    return time.perf_counter() - start


def odin_trainer(args, train_set: ImageItems, test_set: ImageItems, device: torch.device) -> dict[str, float]:
    """odin.train.train as run.py calls it: seconds in all, without evaluation, and its parts."""
    cfg = OmegaConf.create({"epochs": args.epochs, "batch_size": args.batch, "optimizer": "adam", "lr": args.lr,
                            "weight_decay": 0.0, "label_smoothing": 0.0, "augment": False, "device": str(device),
                            "num_workers": 0, "preload": True, "eval_every": args.epochs, "precision": "auto"})
    # The trainer scores the test set (and a held-out set) through odin.train.predict and writes checkpoints
    # through _atomic_save: clocking those two module functions times evaluation and checkpoints apart.
    spent = {"predict": 0.0, "_atomic_save": 0.0}
    calls = dict.fromkeys(spent, 0)
    originals = {name: getattr(odin.train, name) for name in spent}

    def timer(name):
        def timed(*a, **k):
            sync(device)
            start = time.perf_counter()
            out = originals[name](*a, **k)
            sync(device)
            spent[name] += time.perf_counter() - start
            calls[name] += 1
            return out
        return timed

    model = new_model(args)
    for name in spent:
        setattr(odin.train, name, timer(name))
    try:
        with tempfile.TemporaryDirectory() as tmp:
            sync(device)
            start = time.perf_counter()
            odin.train.train(model, train_set, test_set, cfg, Path(tmp) / "last.pt", resume=False)
            sync(device)
            total = time.perf_counter() - start
    finally:
        for name, original in originals.items():
            setattr(odin.train, name, original)
    if not all(calls.values()):  # a clock that never ran would print 0.00 s and subtract nothing
        raise SystemExit(f"odin.train.train no longer calls {[n for n, c in calls.items() if not c]}: "
                         "update odin_trainer's clocks")
    return {"train": total - spent["predict"], "evaluate": spent["predict"], "checkpoint": spent["_atomic_save"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    cpu = {"model": "resnet18", "size": 32, "images": 256, "batch": 32}  # seconds per epoch on one core
    gpu = {"model": "resnet50", "size": 224, "images": 2048, "batch": 64}  # enough work to fill a GPU
    parser.add_argument("--model", help=f"a timm name (default {cpu['model']}; --gpu: {gpu['model']})")
    parser.add_argument("--size", type=int, help=f"input px (default {cpu['size']}; --gpu: {gpu['size']})")
    parser.add_argument("--images", type=int, help=f"training images (default {cpu['images']}; --gpu: {gpu['images']})")
    parser.add_argument("--batch", type=int, help=f"batch size (default {cpu['batch']}; --gpu: {gpu['batch']})")
    parser.add_argument("--classes", type=int, default=10)
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--lr", type=float, default=2e-5)
    parser.add_argument("--gpu", action="store_true", help="CUDA: plain fp32 loop vs ODIN's bf16/channels_last")
    parser.add_argument("--toy", action="store_true", help="CPU, test_resnet, 16 px, 32 images, 1 epoch, 1 pair")
    args = parser.parse_args()
    if args.toy:  # timm's test_resnet (0.4 M params), one thread: seconds even on a busy machine
        args.gpu, args.model, args.size, args.images, args.batch, args.epochs, args.repeats = (
            False, "test_resnet", 16, 32, 16, 1, 1)
        torch.set_num_threads(1)
    for key, value in (gpu if args.gpu else cpu).items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    if args.gpu and not torch.cuda.is_available():
        sys.exit("--gpu: CUDA is not available here")
    device = torch.device("cuda" if args.gpu else "cpu")
    # ODIN's trainer turns cuDNN's autotuner on; the plain loop gets it too (a baseline no weaker than it can be).
    torch.backends.cudnn.benchmark = args.gpu
    prep = preprocessing(new_model(args), pretrained=False, input_size=args.size)
    train_set, test_set = make_sets(args.images, args.size, args.classes, prep)
    seen = args.epochs * (len(train_set) // args.batch * args.batch)
    print(f"{args.model} at {args.size} px, {len(train_set)} images, batch {args.batch}, {args.epochs} epochs, "
          f"{device}{f' ({torch.cuda.get_device_name(device)})' if args.gpu else ''}, "
          f"torch threads {torch.get_num_threads()}, ODIN precision "
          f"{odin.train.resolve_precision('auto', device)}")

    plain_loop(args, train_set, device)  # warm-up: allocator, oneDNN/cuDNN kernel choice
    plain, ours = [], []
    for r in range(args.repeats):  # pairs in alternating order, so a load that drifts hits both sides
        for side in ("plain", "odin") if r % 2 == 0 else ("odin", "plain"):
            if side == "plain":
                plain.append(plain_loop(args, train_set, device))
            else:
                ours.append(odin_trainer(args, train_set, test_set, device))
    odin_train = [r["train"] for r in ours]
    plain_rate, odin_rate = seen / statistics.median(plain), seen / statistics.median(odin_train)
    print(f"plain timm + torch loop: {plain_rate:8.1f} images/s  (runs: {', '.join(f'{t:.2f}' for t in plain)} s)")
    print(f"ODIN trainer:            {odin_rate:8.1f} images/s  (runs: {', '.join(f'{t:.2f}' for t in odin_train)} s,"
          f" of which checkpoint writes {statistics.median(r['checkpoint'] for r in ours):.2f} s)")
    print(f"ODIN evaluation, apart:  {statistics.median(r['evaluate'] for r in ours):8.2f} s per run "
          f"({len(test_set)} test images)")
    ratio = statistics.median(p / o for p, o in zip(plain, odin_train, strict=True))
    goal = 1.5 if args.gpu else 0.95
    print(f"ratio ODIN / plain images/s: {ratio:.3f}, the median of the {args.repeats} pairs' (goal >= {goal})")


if __name__ == "__main__":
    main()
