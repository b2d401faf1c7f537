"""Any folder of images with one sub-folder per class (torchvision's ImageFolder layout): a user's own
real images as the test set, and as the real training set where there is one.

  <root>/<class>/<image>               a seeded split: `test_fraction` of each class is tested on
  <root>/train/<class>/<image>          or the user's own split, used as it is
  <root>/test/<class>/<image>

Classes are the sub-folder names (sorted; with train/ and test/, the union of both); image files are
those torchvision's ImageFolder accepts (jpg, jpeg, png, ppm, bmp, pgm, tif, tiff, webp).
"""

from __future__ import annotations

from pathlib import Path

from odin.data.common import DatasetNotFoundError, Index, Item, PhotoDataset, check_test_fraction, split_per_class


def image_folder(root: Path) -> tuple[list[str], list[tuple[Path, str]]]:
    """(class folder names, [(file, class name)]) through torchvision's ImageFolder, sorted."""
    from torchvision.datasets import ImageFolder

    ds = ImageFolder(str(root), allow_empty=True)
    return list(ds.classes), [(Path(path), ds.classes[k]) for path, k in ds.samples]


def read_folder_index(root: Path, name: str, split_seed: int, test_fraction: float) -> Index:
    """The Index of an ImageFolder, split by its train/ and test/ sub-folders or seeded per class."""
    train_dir, test_dir = root / "train", root / "test"
    if train_dir.is_dir() != test_dir.is_dir():
        have, lack = (train_dir, test_dir) if train_dir.is_dir() else (test_dir, train_dir)
        raise DatasetNotFoundError(f"dataset={name}: {root} has {have.name}/ but no {lack.name}/; give both "
                                   "(each with one folder per class), or neither for a seeded split")
    if train_dir.is_dir():
        train_classes, train_files = image_folder(train_dir)
        test_classes, test_files = image_folder(test_dir)
        raw = sorted(set(train_classes) | set(test_classes))
        number = {c: i for i, c in enumerate(raw)}
        return Index(raw, [(p, number[c]) for p, c in train_files], [(p, number[c]) for p, c in test_files])
    raw, files = image_folder(root)
    number = {c: i for i, c in enumerate(raw)}
    items: list[Item] = [(p, number[c]) for p, c in files]
    train, test = split_per_class(items, raw, split_seed, test_fraction=test_fraction)
    return Index(raw, train, test)


def has_class_folders(root: Path) -> bool:
    return root.is_dir() and any(p.is_dir() and not p.name.startswith(".") for p in root.iterdir())


class FolderDataset(PhotoDataset):
    title = "image folder"

    def __init__(self, name: str = "folder", context: str = "", test_fraction: float = 0.2, **kwargs):
        super().__init__(name, context, **kwargs)
        self.test_fraction = check_test_fraction(test_fraction)

    def _locate(self) -> Path:
        if not has_class_folders(self.root):
            raise DatasetNotFoundError(
                f"dataset={self.name}: no class folders in {self.root.resolve()}. Set dataset.root to a folder "
                "that holds one sub-folder of images per class (<root>/<class>/*.jpg), or train/ and test/ "
                "sub-folders each laid out that way"
            )
        return self.root

    def _read_index(self, root: Path) -> Index:
        return read_folder_index(root, self.name, self.split_seed, self.test_fraction)
