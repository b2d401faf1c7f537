"""Probe of the embedded default: do diverse style prompts beat the naive prompt on real digits?

Generates images per class with the glyph backend from the naive prompt and from template
prompts built from conf/dataset/digits.yaml's banks (the same rule as prompt=template), brings
them into the test domain with DigitsDataset.acquire (NIST normalisation), trains a small CNN
(and an RBF SVM) on them and reports top-1 on

  held-out generated images (template prompts the training never saw: the check used while
  designing the banks), and
  the 1,797 real load_digits images (the measure; the banks were frozen before it was looked at).

    python benchmarks/glyph_probe.py                  # ~2 min on 2 CPU cores
    python benchmarks/glyph_probe.py --prompts 40 --images 50 --workers 2
    python benchmarks/glyph_probe.py --generated-only # design loop: never touches the real digits
    python benchmarks/glyph_probe.py --toy            # seconds: 2 prompts x 3 images, 1 epoch, 1 worker
"""

from __future__ import annotations

import argparse
import time
from multiprocessing import Pool
from pathlib import Path

import numpy as np
import yaml

from odin.data.digits import DigitsDataset, acquire
from odin.generate.glyph import DIGIT_NAMES, GlyphGenerator
from odin.prompts.template import TemplatePrompts
from odin.store import derive_seed

ROOT = Path(__file__).resolve().parents[1]
NAIVE = "a photo of one {label} digit"


def _make(job):
    """One (label, prompt index) unit: its images, acquired to 8x8."""
    label, prompt, index, images, seed = job
    seeds = [derive_seed(seed, label, index, i) for i in range(images)]
    return [acquire(g.image) for g in GlyphGenerator()(label, [prompt] * images, seeds)]


def dataset(kind: str, prompts: int, images: int, seed: int, first: int, pool) -> tuple[np.ndarray, np.ndarray]:
    """(N, 8, 8) acquired images and labels; `first` offsets the prompt indices for held-out sets."""
    if kind == "naive":  # one prompt, all images from it (the paper's naive prompt)
        jobs = [(label, NAIVE.format(label=label), first, prompts * images, seed) for label in DIGIT_NAMES]
    else:
        banks = yaml.safe_load((ROOT / "conf/dataset/digits.yaml").read_text())["template_banks"]
        tp = TemplatePrompts(
            "a photo of one {label} {context}, {style}, {view}, {setting}",
            banks,
            context="digit",
            num_prompts=prompts,
            seed=seed,
        )
        jobs = [
            (label, tp.prompt(label, first + i), first + i, images, seed)
            for label in DIGIT_NAMES
            for i in range(prompts)
        ]
    x, y = [], []
    for (label, *_), out in zip(jobs, pool.map(_make, jobs, chunksize=4), strict=True):
        x += out
        y += [DIGIT_NAMES.index(label)] * len(out)
    return np.array(x, np.float32), np.array(y)


def train_cnn(x: np.ndarray, y: np.ndarray, epochs: int, seed: int):
    import torch
    from torch import nn

    torch.manual_seed(seed)
    net = nn.Sequential(  # 8x8 in, like the timm models the pipeline trains (but ~100x smaller)
        nn.Conv2d(1, 16, 3, padding=1),
        nn.ReLU(),
        nn.Conv2d(16, 32, 3, padding=1),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(32, 64, 3, padding=1),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Dropout(0.3),
        nn.Linear(64 * 4, 128),
        nn.ReLU(),
        nn.Linear(128, 10),
    )
    opt = torch.optim.Adam(net.parameters(), lr=2e-3)
    xt, yt = torch.from_numpy(x)[:, None], torch.from_numpy(y)
    steps = epochs * ((len(x) + 127) // 128)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, 2e-3, total_steps=steps)
    net.train()
    for _ in range(epochs):
        for idx in torch.randperm(len(x)).split(128):
            loss = nn.functional.cross_entropy(net(xt[idx]), yt[idx], label_smoothing=0.1)
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
    net.eval()

    def predict(z: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            return net(torch.from_numpy(z)[:, None]).argmax(1).numpy()

    return predict


def train_svm(x: np.ndarray, y: np.ndarray):
    from sklearn.svm import SVC

    svm = SVC(C=10, gamma="scale").fit(x.reshape(len(x), -1), y)
    return lambda z: svm.predict(z.reshape(len(z), -1))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--prompts", type=int, default=40, help="template prompts per class")
    ap.add_argument("--images", type=int, default=50, help="images per prompt")
    ap.add_argument("--epochs", type=int, default=12)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--generated-only", action="store_true", help="do not evaluate on the real digits")
    ap.add_argument("--toy", action="store_true", help="2 prompts x 3 images a class, 1 epoch, 1 worker")
    args = ap.parse_args()
    if args.toy:
        args.prompts, args.images, args.epochs, args.workers = 2, 3, 1, 1

    import torch

    torch.set_num_threads(1)  # tiny convolutions: more threads only fight over shared cores
    t0 = time.time()
    with Pool(args.workers) as pool:
        sets = {kind: dataset(kind, args.prompts, args.images, args.seed, 0, pool) for kind in ("naive", "template")}
        # held out: other prompts (indices past the training ones) and other seeds
        held = dataset("template", max(4, args.prompts // 3), 2 if args.toy else 20, args.seed + 1, 10_000, pool)
    t_gen = time.time() - t0
    print(
        f"generated {sum(len(v[0]) for v in sets.values())} training + {len(held[0])} held-out images "
        f"in {t_gen:.0f}s ({args.prompts} template prompts x {args.images} images per class; naive: one "
        f"prompt x {args.prompts * args.images})"
    )

    real = None
    if not args.generated_only:
        pairs = DigitsDataset().test_set(DIGIT_NAMES)
        real = (np.stack([p[0] for p in pairs]), np.array([p[1] for p in pairs]))

    print(f"{'train on':10s} {'model':5s} {'held-out generated':>18s} {'real digits':>12s}")
    for kind, (x, y) in sets.items():
        for name, fit in (("cnn", lambda x, y: train_cnn(x, y, args.epochs, args.seed)), ("svm", train_svm)):
            t = time.time()
            predict = fit(x, y)
            acc_held = (predict(held[0]) == held[1]).mean()
            acc_real = f"{(predict(real[0]) == real[1]).mean():12.3f}" if real is not None else f"{'-':>12s}"
            print(f"{kind:10s} {name:5s} {acc_held:18.3f} {acc_real} ({time.time() - t:.0f}s)")
    print(f"total {time.time() - t0:.0f}s")


if __name__ == "__main__":
    main()
