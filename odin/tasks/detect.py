"""task=detect: how well a real-vs-generated classifier tells the run's generated images from real ones of the
same classes (the paper's Table 5; odin/detector.py): 50% = no gap, 100% = obvious."""

from __future__ import annotations

import logging

from hydra.utils import instantiate

from odin.detector import measure_gap
from odin.image_sets import generated_rows, real_by_class
from odin.tasks import Task

log = logging.getLogger("odin.run")


def detect(ctx, generated) -> dict:
    """task=detect: per class, balanced, on the real test split; the `detect` section of metrics.json."""
    task, labels, folder, post = ctx.cfg.task, ctx.labels, generated.post_images, generated.post
    real, split = real_by_class(ctx.dataset, labels, task.max_per_class, ctx.seed, split="test")
    rows = generated_rows(folder, labels, task.max_per_class, ctx.seed)
    identity = {"dataset": ctx.config["dataset"], "labels": labels, "split": split,
                "max_per_class": task.max_per_class, "seed": ctx.seed, "by": "class",
                "real_images": ctx.dataset.fingerprint(split, labels)}
    test_post = post if post.apply_to_test and not post.is_identity else None
    gap = measure_gap(ctx, folder, real, rows, identity, task.holdout, test_post=test_post,
                      on_epoch=ctx.logger.log_epoch)
    log.info("real vs generated: %.2f%% held-out accuracy at the last epoch (%d; 50%% = no gap; held out: %s)",
             gap["accuracy"], gap["epoch"], gap["held_out"])
    return {"detect": gap | {"real_split": split, "holdout": task.holdout}}


def check(ctx) -> None:
    instantiate(ctx.cfg.model).check()


TASK = Task(run=detect, check=check)
