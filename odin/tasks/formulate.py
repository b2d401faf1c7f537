"""task=formulate: write the generated set as a standalone ImageFolder (with localize on, a detection dataset:
COCO JSON, YOLO txt files and a heatmap grid beside it). Any label works: nothing is tested on real images."""

from __future__ import annotations

import logging
from pathlib import Path

from odin.store import export
from odin.tasks import Task

log = logging.getLogger("odin.run")


def formulate(ctx, generated) -> dict:
    path = export(generated.post_images, ctx.labels, ctx.out / "dataset")
    log.info("dataset: %s", path)
    metrics = {"dataset": str(path)}
    localize = ctx.cfg.localize
    if localize.name == "none":
        return metrics
    from odin.localize.detection import write_detection

    with ctx.timed("localize_export_s"):
        found = write_detection(path, ctx.labels, localize.threshold, ctx.out / "heatmaps.png",
                                per_label=max(1, ctx.cfg.samples_per_class),
                                title=f"{ctx.cfg.dataset.name}: where the label is (localize={localize.name}, "
                                      f"threshold {localize.threshold})")
    ctx.logger.log_image("heatmaps", Path(found["grid"]), caption=f"localize={localize.name}, "
                                                                  f"threshold={localize.threshold}")
    log.info("detection dataset: %d boxes and masks over %d images (%d with nothing located) in %s (COCO) and YOLO "
             "txt files beside the images; heatmaps: %s", found["boxes"], found["images"], found["nothing_located"],
             found["coco"], found["grid"])
    return metrics | {"localize": found}


TASK = Task(run=formulate, any_label=True)
