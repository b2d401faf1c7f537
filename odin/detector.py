"""The real-vs-generated detector: the gap between generated and real images, as a classifier sees it.

A binary classifier (`model`, trained with `train`) learns to tell real from generated images of the
same classes, balanced (as many of each, per class), and is scored on a held-out share: 50% means the
two are indistinguishable, 100% that they are obviously different. Run it after each post-processor
(`python run.py -m task=detect post=none,blur,salt`, odin/tasks/detect.py) to see which one narrows
the gap; post=auto uses the same measurement to choose a post-processor (odin/post_auto.py).

The detector's checkpoint is cached in the store under `detect_key`, like a training's.
"""

from __future__ import annotations

import dataclasses
import logging

import numpy as np
from hydra.utils import instantiate

from odin import keys
from odin.device import resolve_device
from odin.errors import UserError
from odin.image_sets import load_generated, seeded_subset
from odin.keys import derive_seed
from odin.store import Folder

log = logging.getLogger("odin.run")

REAL, GENERATED = 0, 1  # the detector's classes


def detect_key(*, generated: str, real: dict, model: dict, train: dict, seed: int, holdout: float) -> str:
    """The identity of one detector: the exact generated images (their folder's key and file names), the
    real images' identity (dataset config, labels, split, how many, how drawn), the model, every
    optimisation setting that can change a number (odin.keys.TRAIN_IGNORED), the seed and the split."""
    return keys.config_hash({"task": "detect", "generated": generated, "real": real, "model": model,
                             "train": keys.without(train, keys.TRAIN_IGNORED), "seed": seed, "holdout": holdout,
                             "trainer": keys.TRAINER_VERSION})


def holdout_split(items: list, holdout: float, seed: int, *tags) -> tuple[list, list]:
    """(kept for training, held out): a seeded `holdout` share of `items`, at least one of each when there are two."""
    n_held = min(len(items) - 1, max(1, round(holdout * len(items)))) if len(items) > 1 else 0
    held = seeded_subset(list(range(len(items))), n_held, seed, "holdout", *tags)
    held_set = set(held)
    return [x for i, x in enumerate(items) if i not in held_set], [items[i] for i in held]


def balanced_groups(real: dict[str, list], generated: dict[str, list[dict]],
                    seed: int) -> dict[str, tuple[list, list]]:
    """As many real as generated images in each group (a class, or one pool when labels are not used),
    the larger side drawn at random (its list may be ordered by class)."""
    groups = {}
    for group in real:
        n = min(len(real[group]), len(generated.get(group, [])))
        if n < 2:
            raise UserError(f"detect: group {group!r} has {len(real[group])} real and {len(generated.get(group, []))} "
                            "generated images; it needs at least 2 of each (more images per class, or fewer labels)")
        groups[group] = (seeded_subset(real[group], n, seed, "real", group),
                         seeded_subset(generated[group], n, seed, "generated", group))
    return groups


def measure_gap(ctx, folder: Folder, real: dict[str, list[np.ndarray]], generated: dict[str, list[dict]],
                real_identity: dict, holdout: float, test_post=None, on_epoch=None) -> dict:
    """Train the detector on balanced groups of real arrays and generated rows of `folder`; its held-out accuracy.

    `real` and `generated` are keyed alike: by class (task=detect), or one pool (post=auto, which does
    not use the real images' labels). `test_post`: a post-processor the real images go through too.
    """
    import torch

    from odin.models import preprocessing
    from odin.train import ImageItems, resolve_precision, train

    cfg, plain, dataset = ctx.cfg, ctx.config, ctx.dataset
    groups = balanced_groups(real, generated, cfg.seed)
    fit, held, used_rows = [], [], []
    for group, (real_images, rows) in groups.items():
        used_rows += rows
        images = load_generated(folder, rows, dataset)
        for source, xs in ((REAL, real_images), (GENERATED, images)):
            kept, out = holdout_split([(x, source) for x in xs], holdout, cfg.seed, source, group)
            fit += kept
            held += out
    if test_post is not None:  # post.apply_to_test: the real images get the same degradation
        fit, held = ([(test_post.apply(x, derive_seed(cfg.seed, "detect", i)), y) if y == REAL else (x, y)
                      for i, (x, y) in enumerate(part)] for part in (fit, held))
    torch.manual_seed(cfg.seed)
    model = instantiate(cfg.model, num_classes=2, in_chans=dataset.channels)
    prep = preprocessing(model, cfg.model.pretrained or bool(cfg.model.checkpoint_path), cfg.model.input_size)
    precision = resolve_precision(cfg.train.precision, resolve_device(cfg.train.device))  # auto: what will run
    key = detect_key(generated=keys.rows_identity(folder.key, used_rows),
                     model={**plain["model"], "input": dataclasses.asdict(prep)},
                     train={**plain["train"], "precision": precision},
                     real={**real_identity, "per_group": {g: len(r) for g, (r, _) in groups.items()},
                           "test_post": keys.post_config(test_post) if test_post is not None else None},
                     seed=cfg.seed, holdout=holdout)
    checkpoint = ctx.store.root / "checkpoints" / key / "last.pt"
    log.info("detector %s: %d real + %d generated images to learn from, %d held out", cfg.model.name,
             sum(y == REAL for _, y in fit), sum(y == GENERATED for _, y in fit), len(held))
    result = train(model, ImageItems.for_model(fit, dataset.channels, prep),
                   ImageItems.for_model(held, dataset.channels, prep), cfg.train, checkpoint, seed=cfg.seed,
                   on_epoch=on_epoch, resume=cfg.train.resume)
    return {"accuracy": result.top1, "last_accuracy": result.last_top1, "best_epoch": result.best_epoch,
            "train_images": len(fit), "heldout_images": len(held), "status": result.status,
            "checkpoint": str(checkpoint), "history": result.history}
