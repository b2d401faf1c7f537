"""task=train: a timm classifier trained on the generated set (with train.source=real or train.real_classes, on
real training images for some or all classes), tested on the dataset's real test images."""

from __future__ import annotations

import dataclasses
import json
import logging
import os
from pathlib import Path

from hydra.utils import instantiate

from odin import keys
from odin.errors import ConfigError, UserError
from odin.files import atomic_write_json, drawn_once
from odin.keys import derive_seed
from odin.post import degrade_at
from odin.store import open_image
from odin.tasks import Task
from odin.validate import some

log = logging.getLogger("odin.run")


def generated_labels(cfg, labels: list[str]) -> list[str]:
    """All labels but train.real_classes (none with train.source=real): those train on generated images."""
    if cfg.train.source == "real":
        return []
    real = set(cfg.train.real_classes)
    return [label for label in labels if label not in real]


def check(ctx) -> None:
    """The model and its weights; real training images of the classes that train on them."""
    cfg = ctx.cfg
    instantiate(cfg.model).check(model_memos(ctx), ctx.dataset.channels)
    if cfg.train.source != "real" and not cfg.train.real_classes:
        return
    unknown = [c for c in cfg.train.real_classes if c not in ctx.labels]
    if unknown:
        raise ConfigError(f"train.real_classes [{some(unknown)}] are not among this run's labels "
                          f"[{some(ctx.labels, 40)}]")
    if not ctx.dataset.has_train_split:
        raise ConfigError(f"dataset={cfg.dataset.name} has no real training split, which train.source=real and "
                          "train.real_classes train on: use a dataset that has one (oxford_pet, caltech101, "
                          "cifar100, indian_food, folder)")


def train(ctx, generated) -> dict:
    """The result's sections of metrics.json, curves.png, and the result in a few log lines."""
    import torch

    from odin.device import resolve_device
    from odin.provenance import provenance
    from odin.split import holdout_prompts
    from odin.train import resolve_precision, summarize

    cfg, labels, dataset = ctx.cfg, ctx.labels, ctx.dataset
    classifier = instantiate(cfg.model)
    prep = classifier.input_for(dataset.channels, model_memos(ctx))  # no model built: a finished training needs none
    folder = generated.post_images if generated else None
    rows, held = holdout_prompts(folder.rows if folder else [], cfg.train.holdout)
    real = [label for label in labels if label not in ctx.generated_labels]
    post = generated.post if generated else None
    degrade_test = post is not None and post.apply_to_test and not post.is_identity
    precision = resolve_precision(cfg.train.precision, resolve_device(cfg.train.device))  # auto: what will run
    real_images = {"test": dataset.fingerprint("test", labels),
                   **({"train": dataset.fingerprint("train", real)} if real else {})}
    settings = dict(
        train_set=keys.rows_identity(folder.key if folder else "", rows) + keys.rows_identity("held out", held)
        + keys.config_hash(real),
        labels=labels, model={**ctx.config["model"], "input": dataclasses.asdict(prep)},
        train={**ctx.config["train"], "precision": precision}, dataset=ctx.config["dataset"], seed=cfg.seed,
        test_post=keys.post_config(post) if degrade_test else None,
    )
    key = keys.train_key(**settings, real_images=real_images)
    checkpoint = ctx.store.root / "checkpoints" / key / "last.pt"
    say_why_new(ctx.store.root / "checkpoints", keys.config_hash(settings), key, real_images)
    with ctx.timed("gap_s"):  # before training: do these images look like the real ones?
        gap = gap_check(ctx, folder) if folder else None
    done = finished(checkpoint, cfg.train.epochs) if cfg.train.resume else None
    if done:  # read back without loading an image: the checkpoint's summary says everything the result needs
        log.info("training already done: epochs 1-%d read from %s (train.resume=false retrains)", cfg.train.epochs,
                 checkpoint)
        result = summarize(done["history"][: cfg.train.epochs], status="cached", from_checkpoint=cfg.train.epochs)
        sizes = {k: done[k] for k in ("train_images", "test_images")}
    else:
        with ctx.timed("train_s"):  # preparing the images (prepare_s) included
            torch.manual_seed(cfg.seed)  # the same initial weights every time: runs differ only where configs do
            model = classifier.build(len(labels), dataset.channels)
            result, sizes = fit(ctx, model, prep, folder, rows, held, real, checkpoint,
                                post if degrade_test else None)
        stat = checkpoint.stat()  # the summary vouches for this very file: a damaged one is found by train()
        atomic_write_json(checkpoint.with_name("summary.json"), {"history": result.history, **sizes,
                                                                  "checkpoint": [stat.st_size, stat.st_mtime_ns]})
    if result.epochs_from_checkpoint:  # epochs read back from the checkpoint, not trained here: the logger gets them
        ctx.logger.log_history(result.history[:result.epochs_from_checkpoint], cached=True)
    metrics = result.to_dict()
    metrics["training"] = {"status": metrics.pop("status"), "checkpoint": str(checkpoint),
                           "epochs_from_checkpoint": metrics.pop("epochs_from_checkpoint")}
    metrics |= sizes
    if gap:
        metrics["gap"] = gap
    metrics["provenance"] = provenance(str(resolve_device(cfg.train.device)), precision)
    _tell(ctx, result, metrics, checkpoint)
    return metrics


def model_memos(ctx) -> Path:
    """Where a classifier's input size and normalisation are remembered (models.Classifier.input_for)."""
    return ctx.store.root / "models"


def finished(checkpoint: Path, epochs: int) -> dict | None:
    """The summary of a finished training of this key with at least `epochs` epochs, or None. It is written
    after the checkpoint and records its size and time: a summary whose checkpoint is gone or was rewritten
    (damaged, or trained again) is not trusted, and the checkpoint itself is read (and checked) instead."""
    try:
        summary = json.loads(checkpoint.with_name("summary.json").read_text())
        stat = checkpoint.stat()
        same = summary["checkpoint"] == [stat.st_size, stat.st_mtime_ns]
        return summary if same and len(summary["history"]) >= epochs else None
    except (OSError, ValueError, KeyError, TypeError):
        return None


def fit(ctx, model, prep, folder, rows: list[dict], held: list[dict], real: list[str], checkpoint: Path,
        test_post) -> tuple:
    """Load the training, held-out and test images and train (or resume); (the Result, the sizes)."""
    from odin.train import ImageItems
    from odin.train import train as run_training

    cfg, labels, dataset = ctx.cfg, ctx.labels, ctx.dataset
    with ctx.timed("prepare_s"):
        items = generated_items(ctx, folder, rows, prep)
        val = generated_items(ctx, folder, held, prep)
    if real:  # train.source=real, or the seen classes of train.real_classes
        index = {labels.index(label) for label in real}
        shaper = ImageItems.for_model([], dataset.channels, prep)
        items += [(shaper.shape(x).numpy(), y) for x, y in dataset.train_items(labels) if y in index]
    test = dataset.test_set(labels)
    if not test:
        raise UserError(f"dataset {cfg.dataset.name} has no test images for labels {labels}")
    if test_post is not None:  # the paper's Table 2 (right): the same degradation on the real images, same size
        size = open_image(folder.path / folder.rows[0]["file_name"]).size
        test = [(degrade_at(test_post, x, derive_seed(cfg.seed, "test", i), size), y) for i, (x, y) in enumerate(test)]
    log.info("training %s on %d images (%d real), choosing an epoch on %d held-out generated ones, testing on %d "
             "real ones", cfg.model.name, len(items), len(items) - len(rows), len(val), len(test))
    result = run_training(
        model, ImageItems.for_model(items, dataset.channels, prep, shaped=True),
        ImageItems.for_model(test, dataset.channels, prep), cfg.train, checkpoint, seed=cfg.seed,
        on_epoch=ctx.logger.log_epoch, resume=cfg.train.resume,
        val_set=ImageItems.for_model(val, dataset.channels, prep, shaped=True) if val else None,
        seen_classes={labels.index(label) for label in real} if real and len(real) < len(labels) else None,
    )
    sizes = {"train_images": {"generated": len(rows), "real": len(items) - len(rows), "held_out": len(val)},
             "test_images": len(test)}
    return result, sizes


GAP_PER_CLASS = 50  # images per class and side the gap alarm looks at: seconds, and enough to tell


def gap_check(ctx, folder) -> dict:
    """The gap alarm (odin/gap.py): how well a cheap classifier tells the generated training images, as
    training reads them (dataset.acquire), from real images of the run's classes, pooled, no label read
    (the training split when the dataset has one, else the test images); a warning when nearly always."""
    from odin.gap import gap_alarm, warning
    from odin.image_sets import load_generated, real_pool, whole_units

    labels, dataset = ctx.generated_labels, ctx.dataset
    prints = dataset.fingerprint("train", labels) if dataset.has_train_split else {}
    if not any(p["images"] for p in prints.values()):  # no training split: real_pool takes the test images
        prints = dataset.fingerprint("test", labels)
    identity = keys.config_hash(folder.key, labels, ctx.seed, GAP_PER_CLASS, ctx.config["dataset"], prints)
    cached = ctx.store.root / "gap" / f"{identity}.json"  # a rerun reads it: no image decoded
    try:
        found = json.loads(cached.read_text())
    except (OSError, ValueError):
        sample = whole_units(folder, labels, GAP_PER_CLASS, ctx.seed)
        generated = load_generated(sample, sample.rows, dataset)
        real, split = real_pool(dataset, labels, GAP_PER_CLASS, ctx.seed)
        found = gap_alarm(generated, real, groups=[r["unit"] for r in sample.rows], seed=ctx.seed)
        found["real_split"] = split
        try:
            atomic_write_json(cached, found)
        except OSError:  # a read-only store: measured again next time
            pass
    text = warning(found, post=ctx.cfg.post.name)
    if text:
        log.warning(text)
        found["warning"] = text
    elif found["accuracy"] is not None:
        log.info("gap alarm: generated and real images told apart %.0f%% of the time (50%% = indistinguishable)",
                 100 * found["accuracy"])
    return found


def say_why_new(checkpoints: Path, settings: str, key: str, real_images: dict) -> None:
    """Say so when the same settings were trained before on other real images (a folder that changed), and
    remember which real images these settings train and test on now."""
    record = checkpoints / ".by_settings" / f"{settings}.json"
    try:
        before = json.loads(record.read_text())
    except (OSError, ValueError):
        before = None
    if before and before.get("key") != key and before.get("real_images") != real_images:
        changed = [f"{split} images of '{label}': {old.get('images')} -> {now['images']}"
                   + ("" if old.get("images") != now["images"] else " (files changed)")
                   for split, by_label in real_images.items() for label, now in by_label.items()
                   if (old := before["real_images"].get(split, {}).get(label, {})) != now]
        log.info("the real images changed since these settings were trained (%s): %s; training anew (the earlier "
                 "training stays in %s)", checkpoints / before["key"], "; ".join(changed[:5])
                 + (f"; and {len(changed) - 5} more" if len(changed) > 5 else ""), checkpoints / before["key"])
    if before != {"key": key, "real_images": real_images}:
        try:
            atomic_write_json(record, {"key": key, "real_images": real_images})
        except OSError:  # a read-only store: the note is a courtesy, never a reason to fail
            pass


def generated_items(ctx, folder, rows: list[dict], prep) -> list:
    """(image, class index) of generated rows, prepared at the model's input size once and kept in the
    store, one array per store unit (odin/prepared.py); loaded in parallel up front (train.preload), else
    one image at a time as training asks."""
    from odin.prepared import image_loaders, prepared_units
    from odin.train import preload

    if not rows:
        return []
    units = prepared_units(ctx.store.root, folder, rows, ctx.dataset, ctx.config["dataset"], prep,
                           ctx.dataset.channels)
    if ctx.cfg.train.preload:
        images = [x for unit in preload(units, ctx.cfg.train.num_workers or os.cpu_count() or 1, len(rows))
                  for x in unit]
    else:
        images = image_loaders(units)
    index = {label: i for i, label in enumerate(ctx.labels)}
    return [(x, index[r["label"]]) for x, r in zip(images, rows, strict=True)]


def _tell(ctx, result, metrics: dict, checkpoint) -> None:
    from odin.report import trained_on, training_curves

    kept = ctx.store.root / "curves" / f"{keys.config_hash(result.history)}.png"  # a cached rerun copies it
    ctx.logger.log_image("curves", drawn_once(kept, ctx.out / "curves.png",
                                              lambda out: training_curves(result.history, out)))
    source = {"trained": "", "resumed": f" (resumed after epoch {result.epochs_from_checkpoint})",
              "cached": f" (read from the finished training in {checkpoint}; train.resume=false retrains)"}
    log.info("top-1 %.2f%%  top-3 %.2f%%  (best epoch %d) on %d real %s test images; trained on %s%s",
             result.top1, result.top3, result.best_epoch, metrics["test_images"], ctx.cfg.dataset.name,
             trained_on(metrics["train_images"]), source[result.status])
    if result.heldout_top1 is not None:
        log.info("at the epoch chosen on held-out generated prompts (%d, no test label used): top-1 %.2f%%  "
                 "top-3 %.2f%%; last epoch: top-1 %.2f%%", result.heldout_epoch, result.heldout_top1,
                 result.heldout_top3, result.last_top1)
    if result.seen_unseen:
        log.info("seen (real) classes %.2f%%, unseen (generated) classes %.2f%%, harmonic mean %.2f%%",
                 *result.seen_unseen.values())


TASK = Task(run=train, check=check, generates=generated_labels)
