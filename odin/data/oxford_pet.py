"""Oxford-IIIT Pet (37 breeds of cats and dogs) through torchvision's OxfordIIITPet: its official
trainval (3,680 images) / test (3,669) split, its label order, its download.

On disk (torchvision's layout, the two archives of https://www.robots.ox.ac.uk/~vgg/data/pets/):
  <root>/oxford-iiit-pet/images/<Breed_name>_<n>.jpg
  <root>/oxford-iiit-pet/annotations/{trainval,test}.txt   lines "<image id> <class 1..37> <species> <breed id>"
`root` may also point at the oxford-iiit-pet folder itself. Raw class names are the image ids'
prefixes (`Abyssinian`, `yorkshire_terrier`: the dataset capitalises cats, not dogs); their readable
forms (`yorkshire terrier`) are the labels.
"""

from __future__ import annotations

from pathlib import Path

from odin.data.common import DatasetNotFoundError, Index, PhotoDataset
from odin.errors import ConfigError

FOLDER = "oxford-iiit-pet"
URL = "https://www.robots.ox.ac.uk/~vgg/data/pets/"


class OxfordPet(PhotoDataset):
    title = "Oxford-IIIT Pet"

    def __init__(self, name: str = "oxford_pet", context: str = "pet", **kwargs):
        super().__init__(name, context, **kwargs)

    def _base(self) -> Path:
        return self.root if self.root.name == FOLDER else self.root / FOLDER

    def _locate(self) -> Path:
        base = self._base()
        if self.download and not (base / "images").is_dir():
            from torchvision.datasets import OxfordIIITPet

            OxfordIIITPet(str(base.parent), split="test", download=True)
        needed = [base / "images", base / "annotations" / "trainval.txt", base / "annotations" / "test.txt"]
        missing = [str(p) for p in needed if not p.exists()]
        if missing:
            raise DatasetNotFoundError(
                f"dataset={self.name}: {self.title} not found: looked in {base.resolve()} and found no {missing}. "
                f"Get it with dataset.download=true (torchvision fetches images.tar.gz and annotations.tar.gz "
                f"from {URL} into {base}), or set dataset.root to the folder that holds {FOLDER}/"
            )
        return base

    def _read_index(self, base: Path) -> Index:
        from torchvision.datasets import OxfordIIITPet

        splits = {}
        raw_of: dict[int, str] = {}
        for split in ("trainval", "test"):
            ds = OxfordIIITPet(str(base.parent), split=split, download=False)
            # torchvision keeps the split's files and labels in _images and _labels (no public list
            # that avoids decoding every image); its class names are title-cased, ours the file prefixes.
            paths, labels = list(ds._images), list(ds._labels)
            for path, label in zip(paths, labels, strict=True):
                raw_of.setdefault(label, Path(path).stem.rsplit("_", 1)[0])
            splits[split] = [(Path(p), int(k)) for p, k in zip(paths, labels, strict=True)]
        if sorted(raw_of) != list(range(len(raw_of))):
            raise ConfigError(f"dataset={self.name}: class ids in {base / 'annotations'} are not 1..{len(raw_of)}")
        return Index([raw_of[k] for k in range(len(raw_of))], splits["trainval"], splits["test"])
