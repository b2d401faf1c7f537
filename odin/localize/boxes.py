"""Heatmap -> mask -> box, glyph ink masks, and heatmap files beside their images.

Boxes are (x0, y0, x1, y1) in pixel edges: the mask's pixels are columns x0..x1-1 and rows
y0..y1-1, so the width is x1 - x0 (COCO's [x, y, w, h] and YOLO's normalised centre follow directly).

Heatmaps are stored as `<image stem>.heat.npz` (uint8, deflate-compressed) beside the image: a
PNG would be taken for a training image by torchvision's ImageFolder and `datasets`' imagefolder,
which pick up every .png in a class folder; 8 bits are plenty for a smooth map that is thresholded.
"""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import numpy as np
from PIL import Image

from odin.errors import UserError
from odin.files import atomic_write_bytes

HEATMAP_SUFFIX = ".heat.npz"


def check_threshold(threshold: float | str) -> float | str:
    """`localize.threshold`: a fraction of each heatmap's maximum in (0, 1], or 'otsu'."""
    if isinstance(threshold, str):
        if threshold.strip().lower() == "otsu":
            return "otsu"
        try:
            threshold = float(threshold)
        except ValueError:
            threshold = -1.0
    if isinstance(threshold, bool) or not (0 < float(threshold) <= 1):
        raise ValueError(
            f"localize.threshold={threshold!r}: give a fraction of each heatmap's maximum in (0, 1] "
            "(e.g. 0.4) or 'otsu' (scikit-image's Otsu threshold per heatmap)"
        )
    return float(threshold)


def heatmap_to_mask(heat: np.ndarray, threshold: float | str = 0.4) -> np.ndarray:
    """Boolean mask of the pixels at or above `threshold` x the map's maximum, or above Otsu's split."""
    threshold = check_threshold(threshold)
    heat = np.asarray(heat, dtype=np.float32)
    top = float(heat.max()) if heat.size else 0.0
    if top <= 0:  # nothing attended (or no ink): an empty mask, not a full one
        return np.zeros(heat.shape, dtype=bool)
    if threshold == "otsu":
        from skimage.filters import threshold_otsu

        if float(heat.min()) == top:  # a flat map has no split: all of it or nothing
            return np.ones(heat.shape, dtype=bool)
        return heat > threshold_otsu(heat)
    return heat >= threshold * top


def mask_to_box(mask: np.ndarray) -> tuple[int, int, int, int] | None:
    """The mask's bounding box (x0, y0, x1, y1), x1 and y1 exclusive; None for an empty mask."""
    import torch
    from torchvision.ops import masks_to_boxes

    mask = np.asarray(mask, dtype=bool)
    if not mask.any():
        return None
    x0, y0, x_last, y_last = masks_to_boxes(torch.from_numpy(mask)[None])[0].long().tolist()  # inclusive corners
    return x0, y0, x_last + 1, y_last + 1


def ink_mask(image: Image.Image, background: float | None = None) -> np.ndarray:
    """Boolean mask of the ink of a glyph-like image (a character on a plain background).

    `background` is the paper's grey level (0-255); by default the median of the image's border,
    which a glyph that keeps inside the frame leaves as paper. Ink is what differs from the paper
    by more than the ISODATA split of the differences (halfway between the mean paper and the mean
    ink difference): robust to sensor noise and faint or dark ink. Otsu's criterion is flat between
    two well separated modes and may split the noise instead.
    """
    from skimage.filters import threshold_isodata

    gray = np.asarray(image.convert("L"), dtype=np.float32)
    if background is None:
        background = float(np.median(np.concatenate([gray[0], gray[-1], gray[:, 0], gray[:, -1]])))
    diff = np.abs(gray - float(background))
    if float(diff.max()) == float(diff.min()):
        return np.zeros(gray.shape, dtype=bool)
    return diff > threshold_isodata(diff)


# ---- files ---------------------------------------------------------------------------------
def heatmap_path(image_path: str | Path) -> Path:
    """`<label>/p000_i000.png` -> `<label>/p000_i000.heat.npz`."""
    image_path = Path(image_path)
    return image_path.with_name(image_path.stem + HEATMAP_SUFFIX)


def save_heatmap(path: str | Path, heat: np.ndarray) -> Path:
    """Write a [0, 1] heatmap as uint8 (atomically: a reader never sees half a file)."""
    heat = np.asarray(heat, dtype=np.float32)
    if heat.ndim != 2:
        raise ValueError(f"a heatmap is one (height, width) map; got shape {heat.shape}")
    buffer = io.BytesIO()
    np.savez_compressed(buffer, heat=np.round(np.clip(heat, 0, 1) * 255).astype(np.uint8))
    atomic_write_bytes(Path(path), buffer.getvalue())
    return Path(path)


def load_heatmap(path: str | Path) -> np.ndarray:
    """The heatmap as float32 in [0, 1] (within 1/510 of what was saved); a damaged file is an error naming it."""
    try:
        with np.load(path, allow_pickle=False) as data:
            heat = data["heat"]
            if heat.ndim != 2 or heat.dtype != np.uint8:
                raise ValueError(f"a {heat.dtype} array of shape {heat.shape}, not a uint8 map")
            return heat.astype(np.float32) / 255
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile, AttributeError) as error:
        raise UserError(f"heatmap {path} cannot be read ({type(error).__name__}: {error}): it is a damaged cache "
                        "entry. Delete it and run again: the store makes what is missing.") from error
