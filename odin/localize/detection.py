"""localize=attention in a run: the backend's fitness up front, and a detection dataset at export.

  check_backend(backend, prompts)   before any image: the backend can make heatmaps, and every prompt
                                    lets it (diffusers: the label among each prompt's tokens)
  write_detection(dataset, ...)     beside an exported ImageFolder (heatmaps beside its images):
                                    annotations.json (COCO), YOLO txt files, and a heatmap grid PNG;
                                    classes numbered as ImageFolder numbers the folders (sorted), so
                                    COCO id - 1 = YOLO class = torchvision's index = classes.txt line
"""

from __future__ import annotations

import json
from pathlib import Path

from odin.errors import ConfigError
from odin.localize.export import masks_for, write_coco, write_yolo
from odin.localize.grid import heatmap_grid
from odin.prompts import LabelPrompts


def check_backend(backend, prompts: dict[str, LabelPrompts]) -> None:
    if not hasattr(backend, "check_heatmaps"):
        raise ConfigError(
            f"localize=attention: the diffusion backend {type(backend).__name__} cannot say where the label is "
            "(it has no check_heatmaps). Use diffusion=glyph or a diffusers Stable Diffusion model, or localize=none."
        )
    backend.check_heatmaps({label: lp.prompts for label, lp in prompts.items()})


def write_detection(dataset: Path, labels: list[str], threshold: float | str, grid: Path, per_label: int,
                    title: str = "") -> dict:
    """COCO JSON and YOLO txt files for the ImageFolder `dataset` (its metadata.jsonl and heatmaps), and a
    grid of its first `per_label` images per label with heatmaps and boxes; returns what was written."""
    rows = [json.loads(line) for line in (dataset / "metadata.jsonl").read_text().splitlines() if line.strip()]
    # one numbering for the whole export: classes in the order their folders sort, as ImageFolder numbers them
    folder = {row["label"]: row["file_name"].split("/")[0] for row in rows}
    labels = sorted(labels, key=lambda label: folder.get(label, label))
    masks = masks_for(dataset, rows, threshold)
    coco = write_coco(rows, masks, dataset / "annotations.json", labels=labels)
    write_yolo(rows, masks, dataset, labels=labels)
    located = sum(bool(m.any()) for m in masks)
    grid = heatmap_grid(dataset, rows, grid, threshold=threshold, per_label=per_label, labels=labels, title=title)
    return {"coco": str(coco), "yolo_classes": str(dataset / "classes.txt"), "grid": str(grid),
            "images": len(rows), "boxes": located, "nothing_located": len(rows) - located, "threshold": threshold}
