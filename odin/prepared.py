"""Training images prepared once, at the model's input size, in the store.

Decoding a 768 px PNG, bringing it into the test images' domain (`dataset.acquire`) and resizing it
to the model's input costs far more than a training step: each generated image is prepared once
and kept as a float32 array (C x size x size, not yet normalised) under
`prepared/<key>/<image file>.npy`, where the key holds the image folder's key, the dataset config
(its acquisition) and the model's preprocessing. A run, a rerun and every job of a sweep over
training settings then read arrays; the numbers are the same bytes a fresh preparation gives. A
missing or damaged array (a bad header, another shape or type, values that are not finite) is
prepared again; the image is checked against its record's sha256 as it is read for preparing.
Arrays are written without a lock (two jobs prepare the same bytes), so a killed writer's temp file
is removed by the next run that prepares into its folder.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
from pathlib import Path

import numpy as np

from odin.files import atomic_write, remove_stale_temps_in
from odin.keys import config_hash

log = logging.getLogger(__name__)

PREPARED_VERSION = 1  # bumped when preparation starts to give other arrays for the same inputs


def prepared_loaders(store_root: Path, folder, rows: list[dict], dataset, dataset_cfg: dict, prep,
                     channels: int) -> list:
    """One loader per row: it returns the row's image prepared (from the store, or made and kept)."""
    key = config_hash(folder.key, dataset_cfg, dataclasses.asdict(prep), channels, PREPARED_VERSION)
    base = Path(store_root) / "prepared" / key
    for folder_of_label in {(base / row["file_name"]).parent for row in rows}:
        remove_stale_temps_in(folder_of_label)
    return [functools.partial(load_or_prepare, base / f"{row['file_name']}.npy", folder.path / row["file_name"],
                              dataset, prep, channels, row.get("sha256")) for row in rows]


def load_or_prepare(cache: Path, source: Path, dataset, prep, channels: int, sha256: str | None = None) -> np.ndarray:
    shape = (channels, prep.size, prep.size)
    if cache.exists():
        try:
            x = np.load(cache, allow_pickle=False)
            if x.shape != shape or x.dtype != np.float32:
                raise ValueError(f"shape {x.shape} {x.dtype}, expected {shape} float32")
            if not np.isfinite(x).all():  # NaN or inf would train as NaN loss without a word
                raise ValueError(f"{int((~np.isfinite(x)).sum())} values are not finite")
            return x
        except (ValueError, OSError, EOFError) as error:
            log.warning("prepared image %s is damaged (%s): preparing it again", cache, error)
    from odin.store import open_image

    x = _shaper(channels, prep).shape(dataset.acquire(open_image(source, sha256))).numpy()

    def save(tmp: Path) -> None:
        with open(tmp, "wb") as f:  # a file object: np.save would add ".npy" to a temp file's name
            np.save(f, x)

    atomic_write(cache, save)
    return x


@functools.lru_cache(maxsize=8)
def _shaper(channels: int, prep):
    """The model's resize (odin.train.ImageItems.shape), built once per process rather than once per image."""
    from odin.train import ImageItems

    return ImageItems.for_model([], channels, prep)
