"""Indian Food Images (Kaggle dataset iamsouravbanerjee/indian-food-images-dataset: 80 dishes, about
50 photos each), one folder of jpgs per class. It is the default and the only Indian Food set ODIN reads.

Which Indian Food set the paper used (its reference [27]) could not be read here: the stored copies of
the paper (arXiv 2303.06832) hold its abstract and the start of its introduction, not its dataset section
or its references. This one is Kaggle's "Indian Food Images Dataset"; another Kaggle set,
l33tc0d3r/indian-food-classification, has 20 classes (burger and pizza among them). Any download that
unzips to one folder per dish loads the same way (`dataset.root` at it), with the same seeded split.

The Kaggle download unpacks to `Indian Food Images/Indian Food Images/<class>/<image>.jpg`; `root` may
point at the folder the archive was unpacked in or at any folder on the way down to the class folders
(folders holding a single sub-folder and no images are stepped through). Class names are the folder
names (`butter_chicken` reads `butter chicken`).

The download has no split, and the paper gives none: `test_fraction` (default 0.2, so 10 of 50) of each
class, drawn with `split_seed`, is the test split, the rest the training split; a class's split depends
only on (split_seed, its name, its files).
"""

from __future__ import annotations

from pathlib import Path

from odin.data.common import DatasetNotFoundError, Index, PhotoDataset, check_test_fraction
from odin.data.folder import has_class_folders, read_folder_index
from odin.errors import ConfigError

KAGGLE = "iamsouravbanerjee/indian-food-images-dataset"


def class_root(root: Path) -> Path:
    """Step down through folders that hold only one folder (the archive's `Indian Food Images/...`)."""
    while root.is_dir():
        entries = [p for p in root.iterdir() if not p.name.startswith(".")]
        if len(entries) != 1 or not entries[0].is_dir():
            break
        root = entries[0]
    return root


class IndianFood(PhotoDataset):
    title = "Indian Food Images"

    def __init__(self, name: str = "indian_food", context: str = "dish", test_fraction: float = 0.2, **kwargs):
        super().__init__(name, context, **kwargs)
        self.test_fraction = check_test_fraction(test_fraction)

    def _locate(self) -> Path:
        if self.download:
            raise ConfigError(f"dataset={self.name}: dataset.download=true is not supported here (the data is on "
                             f"Kaggle, behind an account): {self._how_to_get()}")
        found = class_root(self.root)
        if not has_class_folders(found):
            raise DatasetNotFoundError(f"dataset={self.name}: {self.title} not found: looked for class folders in "
                                       f"{found.resolve()}. {self._how_to_get()}")
        return found

    def _how_to_get(self) -> str:
        return (f"Get it with `kaggle datasets download -d {KAGGLE} -p {self.root} --unzip` (the kaggle package and "
                "an API token in ~/.kaggle/kaggle.json), or download it from "
                f"https://www.kaggle.com/datasets/{KAGGLE} and unzip it there, or set dataset.root to the folder "
                "that holds the class folders")

    def _read_index(self, root: Path) -> Index:
        return read_folder_index(root, self.name, self.split_seed, self.test_fraction)
