"""Training images prepared once, at the model's input size, in the store.

Decoding a 768 px PNG, bringing it into the test images' domain (`dataset.acquire`) and resizing it
to the model's input costs far more than a training step: each generated image is prepared once
and kept as float32 (C x size x size, not yet normalised), one array per store unit (the images of
one prompt: n x C x size x size) under `prepared/<key>/<label folder>/<unit>-<rows>.npy`. The key
holds the image folder's key, the dataset config (its acquisition) and the model's preprocessing;
`<rows>` is a hash of the unit's image files the array holds, in order. One file per unit rather than
per image: a 20-image unit of 16 px digits is one write instead of twenty, and preparing 20,000 digits
spent a third of its time on files. A run, a rerun and every job of a sweep over training settings
then read arrays; the numbers are the same bytes a fresh preparation gives. A missing or damaged array
(a bad header, another shape or type, values that are not finite) is prepared again; the images are
checked against their records' sha256 as they are read for preparing. Arrays are written without a
lock (two jobs prepare the same bytes), so a killed writer's temp file is removed by the next run that
prepares into its folder.
"""

from __future__ import annotations

import dataclasses
import functools
import itertools
import logging
from collections.abc import Callable
from pathlib import Path

import numpy as np

from odin.files import atomic_write, remove_stale_temps_in
from odin.keys import config_hash

log = logging.getLogger(__name__)

PREPARED_VERSION = 2  # bumped when preparation starts to give other arrays (or files) for the same inputs


@dataclasses.dataclass(frozen=True)
class PreparedUnit:
    """The rows of one store unit and where their prepared array is kept; calling it returns the array."""

    cache: Path
    sources: tuple[Path, ...]
    sha256: tuple[str | None, ...]
    dataset: object
    prep: object
    channels: int

    def __len__(self) -> int:
        return len(self.sources)

    def __call__(self, mmap: bool = False) -> np.ndarray:
        """The unit's array (n x C x size x size), read from the store or prepared and kept. `mmap`: mapped,
        not read (the caller takes single images from it and checks their values)."""
        shape = (len(self.sources), self.channels, self.prep.size, self.prep.size)
        if self.cache.exists():
            try:
                x = np.load(self.cache, allow_pickle=False, mmap_mode="r" if mmap else None)
                if x.shape != shape or x.dtype != np.float32:
                    raise ValueError(f"shape {x.shape} {x.dtype}, expected {shape} float32")
                if not mmap:
                    _check_finite(x)
                return x
            except (ValueError, OSError, EOFError) as error:
                self.damaged(error)
        return self.prepare()

    def image(self, j: int) -> np.ndarray:
        """Image j of the unit alone (train.preload=false: the loader reads one image at a time)."""
        x = np.array(self(mmap=True)[j])
        try:
            _check_finite(x)
        except ValueError as error:
            self.damaged(error)
            x = self.prepare()[j]
        return x

    def damaged(self, error: Exception) -> None:
        log.warning("prepared images %s are damaged (%s): preparing them again", self.cache, error)

    def prepare(self) -> np.ndarray:
        from odin.store import open_image

        shaper = _shaper(self.channels, self.prep)
        x = np.stack([shaper.shape(self.dataset.acquire(open_image(source, sha256))).numpy()
                      for source, sha256 in zip(self.sources, self.sha256, strict=True)])

        def save(tmp: Path) -> None:
            with open(tmp, "wb") as f:  # a file object: np.save would add ".npy" to a temp file's name
                np.save(f, x)

        atomic_write(self.cache, save)
        return x


def prepared_units(store_root: Path, folder, rows: list[dict], dataset, dataset_cfg: dict, prep,
                   channels: int) -> list[PreparedUnit]:
    """`rows` cut into their store units (a unit's rows are consecutive, as a folder lists them), in order."""
    key = config_hash(folder.key, dataset_cfg, dataclasses.asdict(prep), channels, PREPARED_VERSION)
    base = Path(store_root) / "prepared" / key
    units = []
    for unit, group in itertools.groupby(rows, key=lambda row: row.get("unit", row["file_name"])):
        group = list(group)
        names = [row["file_name"] for row in group]
        cache = base / Path(names[0]).parent / f"{Path(unit).name}-{config_hash(names)}.npy"
        units.append(PreparedUnit(cache, tuple(folder.path / name for name in names),
                                  tuple(row.get("sha256") for row in group), dataset, prep, channels))
    for folder_of_label in {unit.cache.parent for unit in units}:
        remove_stale_temps_in(folder_of_label)
    return units


def image_loaders(units: list[PreparedUnit]) -> list[Callable[[], np.ndarray]]:
    """One loader per image, in the order of the rows: each reads its image alone from its unit's array."""
    return [functools.partial(unit.image, j) for unit in units for j in range(len(unit))]


def _check_finite(x: np.ndarray) -> None:
    if not np.isfinite(x).all():  # NaN or inf would train as NaN loss without a word
        raise ValueError(f"{int((~np.isfinite(x)).sum())} values are not finite")


@functools.lru_cache(maxsize=8)
def _shaper(channels: int, prep):
    """The model's resize (odin.train.ImageItems.shape), built once per process rather than once per image."""
    from odin.train import ImageItems

    return ImageItems.for_model([], channels, prep)
