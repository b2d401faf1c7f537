"""CIFAR-100 (100 classes, 32x32): the official 50,000 train / 10,000 test split, fine labels.

On disk (the python version of https://www.cs.toronto.edu/~kriz/cifar.html, torchvision's layout):
  <root>/cifar-100-python/{train,test}   pickles: b"data" (N x 3072 uint8, the R, G and B planes of
                                          each 32x32 image in turn), b"fine_labels"
  <root>/cifar-100-python/meta           pickle: b"fine_label_names"
`root` may also point at the cifar-100-python folder itself.

This module reads those pickles itself instead of through torchvision's CIFAR100, because that class
refuses any file whose MD5 sum is not the official one, so a small test copy in the same layout
cannot be read by it. `verify=true` checks the real files against torchvision's MD5 list first, and
`download=true` fetches them through torchvision (which verifies them). Pickles execute code when
loaded: point `root` only at files you trust, as with torchvision.

The images are 32x32, so `image_size` (default 32 in conf/dataset/cifar100.yaml) also shrinks each
generated image to 32 pixels in `acquire`: CIFAR's images are photos shrunk to 32x32, and a classifier
should see generated images through the same loss of detail (the classifier then resizes both to its
input size).
"""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np

from odin.data.common import DatasetNotFoundError, Index, PhotoDataset
from odin.errors import ConfigError

FOLDER = "cifar-100-python"
URL = "https://www.cs.toronto.edu/~kriz/cifar-100-python.tar.gz"
FILES = ("train", "test", "meta")


class Cifar100(PhotoDataset):
    title = "CIFAR-100"

    def __init__(self, name: str = "cifar100", context: str = "", verify: bool = False, **kwargs):
        kwargs.setdefault("image_size", 32)
        super().__init__(name, context, **kwargs)
        self.verify = verify

    def _base(self) -> Path:
        return self.root if self.root.name == FOLDER else self.root / FOLDER

    def _locate(self) -> Path:
        base = self._base()
        if self.download and not all((base / f).is_file() for f in FILES):
            from torchvision.datasets import CIFAR100

            CIFAR100(str(base.parent), train=False, download=True)
        missing = [f for f in FILES if not (base / f).is_file()]
        if missing:
            raise DatasetNotFoundError(
                f"dataset={self.name}: {self.title} not found: looked in {base.resolve()} and found no {missing}. "
                f"Get it with dataset.download=true (torchvision fetches {URL} into {base.parent}), or untar "
                f"that archive there, or set dataset.root to the folder that holds {FOLDER}/"
            )
        if self.verify:
            self._verify(base)
        return base

    def _verify(self, base: Path) -> None:
        from torchvision.datasets import CIFAR100
        from torchvision.datasets.utils import check_integrity

        expected = [*CIFAR100.train_list, *CIFAR100.test_list, [CIFAR100.meta["filename"], CIFAR100.meta["md5"]]]
        bad = [name for name, md5 in expected if not check_integrity(str(base / name), md5)]
        if bad:
            raise ConfigError(f"dataset={self.name}: {bad} in {base} do not have the official MD5 sums; download "
                             f"them again ({URL}) or set dataset.verify=false to read them as they are")

    def _read_index(self, base: Path) -> Index:
        names = _unpickle(base / "meta", self.name)[b"fine_label_names"]
        raw = [n.decode() if isinstance(n, bytes) else str(n) for n in names]
        splits = {}
        for split in ("train", "test"):
            batch = _unpickle(base / split, self.name)
            labels = batch[b"fine_labels"]
            images = np.asarray(batch[b"data"], dtype=np.uint8).reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)
            if len(images) != len(labels) or (labels and not 0 <= min(labels) <= max(labels) < len(raw)):
                raise ConfigError(f"dataset={self.name}: {base / split} holds {len(images)} images and "
                                 f"{len(labels)} labels in 0..{len(raw) - 1}; the file is damaged")
            splits[split] = [(image, int(k)) for image, k in zip(images, labels, strict=True)]
        return Index(raw, splits["train"], splits["test"])


def _unpickle(path: Path, name: str) -> dict:
    """A CIFAR pickle with bytes keys (it was written by Python 2; encoding="bytes" keeps its str keys
    as bytes, which is how the CIFAR page says to read it)."""
    try:
        with open(path, "rb") as f:
            return pickle.load(f, encoding="bytes")
    except (pickle.UnpicklingError, EOFError, ValueError) as e:
        raise ConfigError(f"dataset={name}: {path} is not a readable CIFAR pickle ({e}); download it again "
                         f"({URL}) or set dataset.download=true") from e
