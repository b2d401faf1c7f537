"""Detection and segmentation datasets from an ImageFolder and its heatmaps: COCO JSON and YOLO txt.

`rows` are the folder's metadata.jsonl rows (`file_name` relative to the folder, `label`); `masks`
are boolean (height, width) arrays in the same order, one object per image. Categories follow
`labels` (default: the order labels first appear in `rows`): COCO ids from 1 (0 is background to
most detectors), YOLO class ids from 0.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from PIL import Image

from odin.errors import UserError
from odin.files import atomic_write_bytes
from odin.localize.boxes import heatmap_path, heatmap_to_mask, load_heatmap, mask_to_box


def masks_for(root: str | Path, rows: list[dict], threshold: float | str = 0.4) -> list[np.ndarray]:
    """Each row's mask from the heatmap saved beside its image."""
    root, masks = Path(root), []
    for row in rows:
        path = heatmap_path(root / row["file_name"])
        if not path.exists():
            raise UserError(
                f"{path} is missing: image {row['file_name']} was made without a heatmap. Rerun the "
                "generation with localization on (localize=attention) to make the missing heatmaps."
            )
        heat = load_heatmap(path)
        with Image.open(root / row["file_name"]) as im:  # reads the header only
            if heat.shape != (im.height, im.width):
                raise UserError(f"{path}: heatmap {heat.shape} but image {im.height}x{im.width}: it is a damaged "
                                "cache entry. Delete it and run again: the store makes what is missing.")
        masks.append(heatmap_to_mask(heat, threshold))
    return masks


def _categories(rows: list[dict], labels: list[str] | None) -> list[str]:
    names = list(labels) if labels is not None else list(dict.fromkeys(r["label"] for r in rows))
    missing = sorted({r["label"] for r in rows} - set(names))
    if missing:
        raise ValueError(f"rows have labels {missing} that are not in the given labels {names}")
    return names


def _check(rows: list[dict], masks: list[np.ndarray]) -> None:
    if len(rows) != len(masks):
        raise ValueError(f"{len(rows)} rows but {len(masks)} masks: give one mask per image")


def write_coco(
    rows: list[dict], masks: list[np.ndarray], out_json: str | Path, labels: list[str] | None = None
) -> Path:
    """COCO instances JSON: one annotation per image with a non-empty mask (bbox [x, y, w, h], RLE
    segmentation, area = mask pixels), `file_name` relative to the ImageFolder."""
    from pycocotools import mask as rle

    _check(rows, masks)
    names = _categories(rows, labels)
    images, annotations = [], []
    for image_id, (row, mask) in enumerate(zip(rows, masks, strict=True), start=1):
        mask = np.asarray(mask, dtype=bool)
        height, width = mask.shape
        images.append({"id": image_id, "file_name": row["file_name"], "height": height, "width": width})
        box = mask_to_box(mask)
        if box is None:  # nothing located: the image stays, as a negative
            continue
        encoded = rle.encode(np.asfortranarray(mask.astype(np.uint8)))
        x0, y0, x1, y1 = box
        annotations.append({
            "id": len(annotations) + 1,
            "image_id": image_id,
            "category_id": names.index(row["label"]) + 1,
            "bbox": [x0, y0, x1 - x0, y1 - y0],
            "area": int(mask.sum()),
            "segmentation": {"size": [height, width], "counts": encoded["counts"].decode("ascii")},
            "iscrowd": 0,
        })  # fmt: skip
    coco = {
        "info": {"description": "ODIN: boxes and masks from the generator's own heatmaps"},
        "images": images,
        "annotations": annotations,
        "categories": [{"id": i, "name": name} for i, name in enumerate(names, start=1)],
    }
    out_json = Path(out_json)
    atomic_write_bytes(out_json, json.dumps(coco).encode())
    return out_json


def write_yolo(
    rows: list[dict], masks: list[np.ndarray], root: str | Path, labels: list[str] | None = None
) -> list[Path]:
    """One `<image stem>.txt` beside each image (`class cx cy w h`, normalised; empty when nothing
    was located), and `classes.txt` (one name per line, line n = class n) at the folder's root.
    Ultralytics reads labels beside images when the path has no `images/` folder."""
    _check(rows, masks)
    names = _categories(rows, labels)
    root, written = Path(root), []
    for row, mask in zip(rows, masks, strict=True):
        mask = np.asarray(mask, dtype=bool)
        height, width = mask.shape
        box = mask_to_box(mask)
        line = ""
        if box is not None:
            x0, y0, x1, y1 = box
            cx, cy, w, h = (x0 + x1) / 2 / width, (y0 + y1) / 2 / height, (x1 - x0) / width, (y1 - y0) / height
            line = f"{names.index(row['label'])} {cx:.6f} {cy:.6f} {w:.6f} {h:.6f}\n"
        path = (root / row["file_name"]).with_suffix(".txt")
        atomic_write_bytes(path, line.encode())
        written.append(path)
    atomic_write_bytes(root / "classes.txt", "".join(n + "\n" for n in names).encode())
    return written
