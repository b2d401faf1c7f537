"""Caltech-101 through torchvision's Caltech101 (target_type category): its class list (without
BACKGROUND_Google, which is not a class) and its download, less the classes in `exclude`
(Faces_easy by default, as in the paper: it repeats Faces, cropped).

On disk (torchvision's layout): <root>/caltech101/101_ObjectCategories/<class>/image_0001.jpg ...
`root` may also point at the caltech101 folder itself.

Caltech-101 has no official split. The usual protocol takes a fixed number of training images per
class and tests on the rest; here `train_per_class` (default 30) images of each class, drawn with
`split_seed` from the class's files in order, are the training split and all others (at least one)
the test split. A class's split depends only on (split_seed, its name, its files).
"""

from __future__ import annotations

from pathlib import Path

from odin.data.common import DatasetNotFoundError, Index, PhotoDataset, split_per_class
from odin.errors import ConfigError

FOLDER = "caltech101"
URL = "https://data.caltech.edu/records/mzrjq-6wc02"


class Caltech101(PhotoDataset):
    title = "Caltech-101"

    def __init__(self, name: str = "caltech101", context: str = "", exclude: list[str] | None = None,
                 train_per_class: int = 30, **kwargs):
        super().__init__(name, context, **kwargs)
        if train_per_class < 1:
            raise ConfigError(f"dataset.train_per_class={train_per_class} must be at least 1")
        self.exclude = list(exclude if exclude is not None else ["Faces_easy"])
        self.train_per_class = train_per_class

    def _base(self) -> Path:
        return self.root if self.root.name == FOLDER else self.root / FOLDER

    def _locate(self) -> Path:
        base = self._base()
        categories = base / "101_ObjectCategories"
        if self.download and not categories.is_dir():
            from torchvision.datasets import Caltech101 as TorchCaltech101

            TorchCaltech101(str(base.parent), download=True)
        if not categories.is_dir():
            raise DatasetNotFoundError(
                f"dataset={self.name}: {self.title} not found: looked for {categories.resolve()}. Get it with "
                f"dataset.download=true (torchvision fetches caltech-101.zip from {URL} into {base}), or unpack "
                f"101_ObjectCategories.tar.gz into {base}, or set dataset.root to the folder that holds {FOLDER}/"
            )
        return base

    def _read_index(self, base: Path) -> Index:
        from torchvision.datasets import Caltech101 as TorchCaltech101

        # Built only after _locate found the folder (torchvision's constructor creates the root otherwise).
        ds = TorchCaltech101(str(base.parent), target_type="category", download=False)
        unknown = sorted(set(self.exclude) - set(ds.categories))
        if unknown:
            raise ConfigError(f"dataset.exclude names {unknown}, which are not {self.title} classes in {base}; "
                             f"its classes are {ds.categories}")
        raw = [c for c in ds.categories if c not in self.exclude]
        new_index = {ds.categories.index(c): i for i, c in enumerate(raw)}
        # torchvision numbers each class's files image_0001.jpg .. image_<count>.jpg, as the archive has them.
        items = [(base / "101_ObjectCategories" / ds.categories[y] / f"image_{n:04d}.jpg", new_index[y])
                 for n, y in zip(ds.index, ds.y, strict=True) if y in new_index]
        train, test = split_per_class(items, raw, self.split_seed, train_per_class=self.train_per_class)
        return Index(raw, train, test)
