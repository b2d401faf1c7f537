"""Typed config schemas of the photo datasets (dataclasses only: composing a config never imports torch).

Each conf/dataset/<name>.yaml starts with `- /schema/dataset/<name>@_here_`. The first five fields
repeat odin.config.DatasetConfig on purpose: importing odin.config from here would make the two
modules import each other once odin.config registers these.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from omegaconf import MISSING


@dataclass
class PhotoDatasetConfig:
    _target_: str = MISSING
    name: str = MISSING
    context: str = ""  # the word after the label in the paper's naive prompt ("pet")
    root: str | None = None  # where the dataset lives on disk
    template_banks: dict[str, list[str]] = field(default_factory=dict)
    names: dict[str, str] = field(default_factory=dict)  # raw class name -> the label prompts use
    download: bool = False  # torchvision's download where it has one; off: never a network call behind your back
    image_size: int = 256  # longer images are shrunk so their shorter side is this (never enlarged)
    split_seed: int = 0  # seeds every split and subset this dataset draws (not the run's seed: tests stay put)
    balance: bool = False  # trim the test set to its smallest selected class (the paper's PoC)
    max_per_class: int | None = None  # at most this many test images per class (seeded choice)


@dataclass
class OxfordPetConfig(PhotoDatasetConfig):
    _target_: str = "odin.data.oxford_pet.OxfordPet"


@dataclass
class Caltech101Config(PhotoDatasetConfig):
    _target_: str = "odin.data.caltech101.Caltech101"
    exclude: list[str] = field(default_factory=lambda: ["Faces_easy"])  # the paper drops Faces_easy
    train_per_class: int = 30  # the usual Caltech-101 protocol; the rest of each class is the test set


@dataclass
class Cifar100Config(PhotoDatasetConfig):
    _target_: str = "odin.data.cifar100.Cifar100"
    verify: bool = False  # check the pickles' MD5 sums against torchvision's list


@dataclass
class IndianFoodConfig(PhotoDatasetConfig):
    _target_: str = "odin.data.indian_food.IndianFood"
    test_fraction: float = 0.2  # the download has no split: this share of each class is tested on


@dataclass
class FolderConfig(PhotoDatasetConfig):
    _target_: str = "odin.data.folder.FolderDataset"
    test_fraction: float = 0.2  # used when root has no train/ and test/ sub-folders


@dataclass
class MixedConfig:
    """Several datasets as one (odin/data/mixed.py): the paper's proof of concept."""

    _target_: str = "odin.data.mixed.MixedDataset"
    name: str = "mixed"
    context: str = ""  # one word for all parts' classes ("" reads "a photo of one pug" in the naive prompt)
    root: str | None = None  # unused: each part has its own
    template_banks: dict[str, list[str]] = field(default_factory=dict)
    parts: dict[str, Any] = field(default_factory=dict)  # part name -> that dataset's config
    per_part: int | None = None  # classes drawn from each part per round; null: all of them
    round: int = 0  # which draw (the PoC sweeps 0..100)
    seed: int = 0  # seeds the draws and the balancing (not the run's seed)
    balance: bool = False  # trim every class's test images to the smallest selected class over all parts


DATASET_SCHEMAS: dict[str, type] = {
    "oxford_pet": OxfordPetConfig,
    "caltech101": Caltech101Config,
    "cifar100": Cifar100Config,
    "indian_food": IndianFoodConfig,
    "folder": FolderConfig,
    "mixed": MixedConfig,
}


def register() -> None:
    """Store the schemas as /schema/dataset/<name> (odin.config.register_configs stores the others)."""
    from hydra.core.config_store import ConfigStore

    cs = ConfigStore.instance()
    for name, node in DATASET_SCHEMAS.items():
        cs.store(group="schema/dataset", name=name, node=node)
