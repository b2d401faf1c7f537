"""The photo datasets on tiny copies in their real on-disk layouts (tests/dataset_fixtures.py)."""

import logging
import pickle
from pathlib import Path

import dataset_fixtures as fx
import numpy as np
import pytest
from hydra.errors import ConfigCompositionException
from hydra.utils import instantiate
from omegaconf.errors import ConfigKeyError, ValidationError
from PIL import Image

from odin.data.caltech101 import Caltech101
from odin.data.cifar100 import Cifar100
from odin.data.common import DatasetNotFoundError, load_source, readable, split_per_class
from odin.data.folder import FolderDataset
from odin.data.indian_food import IndianFood
from odin.data.oxford_pet import OxfordPet
from odin.data.schemas import register

NAMES = ["oxford_pet", "caltech101", "cifar100", "indian_food", "folder"]


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    """One folder with every dataset's tiny copy, laid out as the yaml files' roots expect."""
    root = tmp_path_factory.mktemp("data")
    fx.oxford_pet(root)
    fx.caltech101(root)
    fx.cifar100(root)
    fx.indian_food(root / "indian_food")
    fx.image_folder(root / "images", ["cat", "dog"], per_class=5)
    return root


def make(name: str, data: Path, **kwargs):
    roots = {"indian_food": data / "indian_food", "folder": data / "images"}
    cls = {"oxford_pet": OxfordPet, "caltech101": Caltech101, "cifar100": Cifar100, "indian_food": IndianFood,
           "folder": FolderDataset}[name]
    return cls(root=str(roots.get(name, data)), **kwargs)


def test_readable_names():
    assert readable("yorkshire_terrier") == "yorkshire terrier"
    assert readable("aquarium_fish") == "aquarium fish"
    assert readable("British_Shorthair") == "British Shorthair"
    assert readable("Abyssinian") == "Abyssinian"


def test_oxford_pet_classes_splits_and_images(data):
    ids = {split: len(v) for split, v in fx.oxford_pet(data / "again").items()}  # the counts the copy holds
    ds = make("oxford_pet", data, image_size=16)
    assert ds.classes == ["Abyssinian", "yorkshire terrier", "British Shorthair"]
    assert ds.context == "pet" and ds.channels == 3 and ds.name == "oxford_pet"
    test = ds.test_set(ds.classes)
    assert len(test) == ids["test"] and len(ds.train_items(ds.classes)) == ids["trainval"]
    for x, _ in test:  # RGB float in [0, 1], shorter side brought down to image_size, aspect kept
        assert x.dtype == np.float32 and x.ndim == 3 and x.shape[2] == 3
        assert min(x.shape[:2]) == 16 and x.shape[1] > x.shape[0]
        assert 0.0 <= x.min() and x.max() <= 1.0 and x.max() > 0.5
    assert [y for _, y in test] == [0, 0, 0, 1, 1, 1, 2, 2, 2]
    pictures = ds.train_images("yorkshire terrier")  # what caption prompts describe
    assert len(pictures) == 4 and all(im.mode == "RGB" and min(im.size) == 16 for im in pictures)


def test_a_subset_in_any_order_gets_indices_into_labels(data):
    ds = make("oxford_pet", data)
    full = ds.test_set(ds.classes)
    subset = ds.test_set(["British Shorthair", "yorkshire_terrier"])  # a readable and a raw name
    assert [y for _, y in subset] == [0, 0, 0, 1, 1, 1]
    # The same pixels as the full set's images of those classes.
    assert np.array_equal(subset[0][0], full[6][0]) and np.array_equal(subset[3][0], full[3][0])
    with pytest.raises(ValueError, match="no class 'yorkshire terier' \\(did you mean 'yorkshire terrier'"):
        ds.test_set(["yorkshire terier"])
    with pytest.raises(ValueError, match="twice"):
        ds.test_set(["Abyssinian", "Abyssinian"])


def test_names_override_and_reject_unknown_raw_names(data):
    ds = make("oxford_pet", data, names={"yorkshire_terrier": "Yorkshire Terrier"})
    assert ds.classes[1] == "Yorkshire Terrier"
    assert {y for _, y in ds.test_set(["Yorkshire Terrier"])} == {0}
    with pytest.raises(ValueError, match=r"dataset.names renames \['beagel'\]"):
        make("oxford_pet", data, names={"beagel": "beagle"}).classes  # noqa: B018


def test_caltech_drops_faces_easy_and_background_and_splits_per_class(data):
    ds = make("caltech101", data, train_per_class=4, names={"Faces": "face", "car_side": "car"})
    assert ds.classes[:3] == ["face", "Leopards", "Motorbikes"] and "car" in ds.classes and len(ds.classes) == 9
    train = ds.train_items(ds.classes)
    test = ds.test_set(ds.classes)
    assert [sum(y == k for _, y in train) for k in range(9)] == [4] * 9
    assert [sum(y == k for _, y in test) for k in range(9)] == [2] * 9  # 6 files per class
    # Disjoint and complete: the split's files, not just its counts.
    index = ds._index
    train_files, test_files = {p for p, _ in index.train}, {p for p, _ in index.test}
    assert not train_files & test_files
    assert len(train_files | test_files) == 9 * 6
    assert not any("Faces_easy" in str(p) or "BACKGROUND" in str(p) for p in train_files | test_files)


def test_seeded_splits_are_deterministic_and_per_class(data):
    def split(**kwargs):
        return {str(p) for p, _ in make("caltech101", data, train_per_class=3, **kwargs)._index.test}

    assert split() == split()
    assert split() != split(split_seed=1)
    items = [(f"{c}/{n}", k) for k, c in enumerate("abc") for n in range(10)]
    _, test_all = split_per_class(items, ["a", "b", "c"], 0, test_fraction=0.3)
    _, test_b = split_per_class([i for i in items if i[1] == 1], ["a", "b", "c"], 0, test_fraction=0.3)
    assert [i for i in test_all if i[1] == 1] == test_b  # a class's split ignores the other classes
    assert len(test_b) == 3
    train, test = split_per_class(items[:2], ["a"], 0, train_per_class=30)
    assert len(train) == 1 and len(test) == 1  # a small class keeps one image to test on


def test_cifar100_reads_the_pickles_pixel_exact(data):
    images = fx.cifar100(data / "exact", seed=3)
    ds = Cifar100(root=str(data / "exact"))
    assert ds.classes == ["apple", "aquarium fish", "maple tree"]
    test = ds.test_set(ds.classes)
    apples = images["test"][0::3]  # labels are interleaved 0, 1, 2, 0, 1, 2
    assert [y for _, y in test] == [0, 0, 1, 1, 2, 2]
    assert np.array_equal(test[0][0], apples[0].astype(np.float32) / 255)
    assert np.array_equal(test[1][0], apples[1].astype(np.float32) / 255)
    assert len(ds.train_items(["maple tree"])) == 4
    # A generated image is brought to CIFAR's 32 pixels, as the real photos were.
    assert ds.acquire(Image.new("RGB", (768, 768), (255, 0, 0))).shape == (32, 32, 3)


def test_cifar100_verify_rejects_files_that_are_not_the_official_ones(data):
    with pytest.raises(ValueError, match="MD5.*dataset.verify=false"):
        Cifar100(root=str(data), verify=True).check()


def test_indian_food_finds_the_class_folders_inside_the_kaggle_archive(data):
    for root in (data / "indian_food", data / "indian_food" / "Indian Food Images" / "Indian Food Images"):
        ds = IndianFood(root=str(root))
        assert ds.classes == ["aloo gobi", "butter chicken", "jalebi"] and ds.context == "dish"
        assert len(ds.test_set(ds.classes)) == 3 and len(ds.train_items(ds.classes)) == 12  # 20% of 5 per class


def test_indian_food_holds_out_10_of_each_dishs_50_photos_by_its_own_files(tmp_path):
    fx.indian_food(tmp_path / "food", per_class=50)  # the Kaggle set's size: about 50 photos a dish
    ds = IndianFood(root=str(tmp_path / "food"))
    test = ds.test_set(ds.classes)
    assert sorted(y for _, y in test) == [0] * 10 + [1] * 10 + [2] * 10 and len(ds.train_items(ds.classes)) == 120
    held = held_out_photos(ds)
    (tmp_path / "food" / "Indian Food Images" / "Indian Food Images" / "aloo_gobi").rename(tmp_path / "gone")
    fewer = IndianFood(root=str(tmp_path / "food"))  # a dish less: the others keep their test photos
    assert held_out_photos(fewer) == {c: v for c, v in held.items() if c != "aloo gobi"}


def held_out_photos(ds) -> dict[str, list[str]]:
    sources = ds.sources("test", ds.classes)
    return {c: sorted(Path(p).name for p, y in sources if y == i) for i, c in enumerate(ds.classes)}


def test_folder_with_its_own_train_and_test(tmp_path):
    fx.image_folder(tmp_path / "train", ["cat", "dog"], per_class=3)
    fx.image_folder(tmp_path / "test", ["cat", "dog", "fox"], per_class=2)
    ds = FolderDataset(root=str(tmp_path))
    assert ds.classes == ["cat", "dog", "fox"]
    assert len(ds.train_items(ds.classes)) == 6 and len(ds.test_set(ds.classes)) == 6
    assert ds.train_items(["fox"]) == [] and len(ds.test_set(["fox"])) == 2
    (tmp_path / "only").mkdir()
    fx.image_folder(tmp_path / "only" / "train", ["cat"], per_class=1)
    with pytest.raises(DatasetNotFoundError, match="has train/ but no test/"):
        FolderDataset(root=str(tmp_path / "only")).check()


def test_folder_seeded_split_with_test_fraction(data):
    ds = make("folder", data, test_fraction=0.4)
    assert ds.classes == ["cat", "dog"]
    assert [len(ds.test_set([c])) for c in ds.classes] == [2, 2]
    with pytest.raises(ValueError, match="dataset.test_fraction=1.5"):
        make("folder", data, test_fraction=1.5)


def test_a_corrupt_file_is_skipped_and_counted(tmp_path, caplog):
    fx.image_folder(tmp_path, ["cat", "dog"], per_class=5)
    ds = FolderDataset(root=str(tmp_path), test_fraction=0.4)
    ds.check()
    bad = fx.corrupt(ds._index.test[0][0])  # a cat test image
    with caplog.at_level(logging.WARNING, logger="odin.data"):
        test = ds.test_set(["cat", "dog"])
    assert [y for _, y in test] == [0, 1, 1]
    assert "skipped 1 of 4 test images" in caplog.text and str(bad) in caplog.text
    # With a quota, a bad file is replaced by another image of its class.
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="odin.data"):
        one = FolderDataset(root=str(tmp_path), test_fraction=0.4, max_per_class=2, split_seed=0)
        assert [y for _, y in one.test_set(["cat", "dog"])] == [0, 1, 1]  # the cat has only 1 good test image
    assert "skipped 1 of" in caplog.text
    assert len(FolderDataset(root=str(tmp_path), test_fraction=0.4).train_images("cat")) == 3


def test_balance_and_max_per_class_pick_a_seeded_subset(tmp_path, caplog):
    fx.image_folder(tmp_path / "train", ["a", "b"], per_class=1)
    fx.image_folder(tmp_path / "test", ["a"], per_class=6, seed=1)
    fx.image_folder(tmp_path / "test", ["b"], per_class=3, seed=2)
    counts = lambda test: [sum(y == k for _, y in test) for k in range(2)]  # noqa: E731
    assert counts(FolderDataset(root=str(tmp_path)).test_set(["a", "b"])) == [6, 3]
    balanced = FolderDataset(root=str(tmp_path), balance=True)
    assert counts(balanced.test_set(["a", "b"])) == [3, 3]
    assert counts(FolderDataset(root=str(tmp_path), max_per_class=4).test_set(["a", "b"])) == [4, 3]
    first = FolderDataset(root=str(tmp_path), max_per_class=2).test_set(["a"])
    again = FolderDataset(root=str(tmp_path), max_per_class=2).test_set(["a"])
    other = FolderDataset(root=str(tmp_path), max_per_class=2, split_seed=5).test_set(["a"])
    assert all(np.array_equal(x, y) for (x, _), (y, _) in zip(first, again, strict=True))
    assert not all(np.array_equal(x, y) for (x, _), (y, _) in zip(first, other, strict=True))
    # A file lost in the smaller class lowers every class to its count.
    fx.corrupt(sorted((tmp_path / "test" / "b").iterdir())[0])
    with caplog.at_level(logging.WARNING, logger="odin.data"):
        assert counts(FolderDataset(root=str(tmp_path), balance=True).test_set(["a", "b"])) == [2, 2]
    assert "skipped 1 of" in caplog.text


@pytest.mark.parametrize("name, fix", [
    ("oxford_pet", "dataset.download=true"), ("caltech101", "dataset.download=true"),
    ("cifar100", "dataset.download=true"), ("indian_food", "kaggle datasets download -d "
                                                            "iamsouravbanerjee/indian-food-images-dataset"),
    ("folder", "one sub-folder of images per class"),
])
def test_a_missing_dataset_fails_fast_naming_the_path_and_the_fix(tmp_path, name, fix):
    ds = make(name, tmp_path / "nowhere")  # building reads nothing: this must not fail yet
    with pytest.raises(DatasetNotFoundError) as err:
        ds.check()
    assert str((tmp_path / "nowhere").resolve()) in str(err.value) and fix in str(err.value)
    with pytest.raises(DatasetNotFoundError):
        ds.classes  # noqa: B018
    assert not (tmp_path / "nowhere").exists()  # and nothing was created there


def test_bad_settings_fail_naming_the_key(data):
    with pytest.raises(ValueError, match="dataset.image_size=0"):
        make("oxford_pet", data, image_size=0)
    with pytest.raises(ValueError, match="dataset.max_per_class=0"):
        make("oxford_pet", data, max_per_class=0)
    with pytest.raises(ValueError, match="dataset.train_per_class=0"):
        make("caltech101", data, train_per_class=0)
    with pytest.raises(ValueError, match=r"dataset.exclude names \['Faces_ez'\]"):
        make("caltech101", data, exclude=["Faces_ez"]).check()


@pytest.mark.parametrize("name", NAMES)
def test_the_yaml_composes_and_instantiates(compose, data, name):
    register()
    root = {"indian_food": data / "indian_food", "folder": data / "images"}.get(name, data)
    cfg = compose(f"dataset={name}", f"dataset.root={root}")
    ds = instantiate(cfg.dataset)
    ds.check()
    assert ds.name == name and ds.channels == 3 and len(ds.classes) >= 2
    assert len(ds.test_set(ds.classes)) >= len(ds.classes)
    # The default prompt=template finds its style, view and setting banks in every photo dataset.
    prompts = next(iter(instantiate(cfg.prompt)([ds.classes[1]])))
    assert all(p.startswith(f"a photo of one {ds.classes[1]} {ds.context}".strip()) for p in prompts.prompts)
    if name == "caltech101":  # the yaml's readable names
        assert ds.classes == ["face", "leopard", "motorbike", "airplane", "car", "cougar", "Garfield", "Snoopy",
                              "water lily"]


def test_the_yaml_rejects_a_misspelt_key(compose):
    register()
    with pytest.raises((ConfigCompositionException, ConfigKeyError, ValidationError)) as err:
        compose("dataset=oxford_pet", "dataset.imagesize=3")
    assert "imagesize" in str(err.value) + str(err.value.__cause__ or "")


def test_sources_list_a_split_without_decoding_and_load_source_reads_one(data, tmp_path):
    ds = make("caltech101", data, train_per_class=4, image_size=20)
    sources = ds.sources("test", ["Leopards", "Faces"])
    assert len(sources) == 4 and [y for _, y in sources] == [0, 0, 1, 1]  # grouped by label, indices into labels
    assert all(isinstance(s, Path) and "Faces" in str(s) for s, y in sources if y == 1)
    x = load_source(sources[0][0], 20)
    assert min(x.shape[:2]) == 20 and x.shape[2] == 3 and x.dtype == np.float32
    assert np.array_equal(x, ds.test_set(["Leopards"])[0][0])
    assert load_source(fx.corrupt(tmp_path / "bad.jpg"), 20) is None
    with pytest.raises(ValueError, match="'val'"):
        ds.sources("val", ["Faces"])


def test_a_dataset_pickles_without_its_index(data):
    """run.py sends dataset.acquire to worker processes with every generated image."""
    ds = Cifar100(root=str(data))
    ds.check()
    assert len(pickle.dumps(ds)) < 2000  # CIFAR's index alone holds every pixel of the dataset
    copy = pickle.loads(pickle.dumps(ds))
    assert copy.acquire(Image.new("RGB", (64, 64))).shape == (32, 32, 3)
    assert copy.classes == ds.classes


def test_download_goes_through_torchvision_into_the_root(tmp_path, monkeypatch):
    import torchvision.datasets

    calls = []

    class FakeOxford(torchvision.datasets.OxfordIIITPet):  # stands in for the network: writes the copy
        def __init__(self, root, split="trainval", download=False, **kwargs):
            if download:
                calls.append((root, split))
                fx.oxford_pet(Path(root))
            super().__init__(root, split=split, download=False, **kwargs)

    monkeypatch.setattr(torchvision.datasets, "OxfordIIITPet", FakeOxford)
    ds = OxfordPet(root=str(tmp_path / "pets"), download=True)
    assert ds.classes[0] == "Abyssinian" and calls == [(str(tmp_path / "pets"), "test")]
    OxfordPet(root=str(tmp_path / "pets"), download=True).check()  # there already: no second download
    assert len(calls) == 1
