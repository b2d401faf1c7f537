"""Tiny copies of the real datasets, in their real on-disk layouts, made of random images.

Each writer returns what a test needs to know about the copy it wrote (class names, file counts).
"""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
from PIL import Image

# Oxford-IIIT Pet: image ids "<Breed>_<n>", annotation lines "<id> <class 1..37> <species 1 cat, 2 dog> <breed id>"
OXFORD_CLASSES = [("Abyssinian", 1), ("yorkshire_terrier", 2), ("British_Shorthair", 1)]
# Caltech-101: every class conf/dataset/caltech101.yaml renames, Faces_easy and the background folder.
CALTECH_CLASSES = ["BACKGROUND_Google", "Faces", "Faces_easy", "Leopards", "Motorbikes", "airplanes", "car_side",
                   "cougar_body", "garfield", "snoopy", "water_lilly"]
CIFAR_CLASSES = ["apple", "aquarium_fish", "maple_tree"]
FOOD_CLASSES = ["aloo_gobi", "butter_chicken", "jalebi"]


def random_image(rng: np.random.Generator, size=(40, 30)) -> Image.Image:
    return Image.fromarray(rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8))


def corrupt(path: Path) -> Path:
    """Overwrite an image with bytes no decoder reads."""
    path.write_bytes(b"this is not an image\x00\x01\x02" * 8)
    return path


def oxford_pet(root: Path, trainval: int = 4, test: int = 3, seed: int = 0) -> dict[str, list[str]]:
    """<root>/oxford-iiit-pet/images/*.jpg + annotations/{trainval,test}.txt; returns split -> image ids."""
    rng = np.random.default_rng(seed)
    base = root / "oxford-iiit-pet"
    (base / "images").mkdir(parents=True, exist_ok=True)
    (base / "annotations").mkdir(parents=True, exist_ok=True)
    ids: dict[str, list[str]] = {"trainval": [], "test": []}
    breed_ids = {1: 0, 2: 0}
    for class_id, (breed, species) in enumerate(OXFORD_CLASSES, start=1):
        breed_ids[species] += 1
        for n in range(1, trainval + test + 1):
            image_id = f"{breed}_{n}"
            random_image(rng, (48 + n, 36)).save(base / "images" / f"{image_id}.jpg")
            split = "trainval" if n <= trainval else "test"
            ids[split].append(f"{image_id} {class_id} {species} {breed_ids[species]}")
    for split, lines in ids.items():
        (base / "annotations" / f"{split}.txt").write_text("\n".join(lines) + "\n")
    return {split: [line.split()[0] for line in lines] for split, lines in ids.items()}


def caltech101(root: Path, per_class: int = 6, seed: int = 0) -> Path:
    """<root>/caltech101/101_ObjectCategories/<class>/image_0001.jpg ...; returns the categories folder."""
    rng = np.random.default_rng(seed)
    categories = root / "caltech101" / "101_ObjectCategories"
    for name in CALTECH_CLASSES:
        (categories / name).mkdir(parents=True, exist_ok=True)
        for n in range(1, per_class + 1):
            random_image(rng, (30 + n, 40)).save(categories / name / f"image_{n:04d}.jpg")
    return categories


def cifar100(root: Path, train_per_class: int = 4, test_per_class: int = 2, seed: int = 0) -> dict[str, np.ndarray]:
    """<root>/cifar-100-python/{train,test,meta} pickles with the real (bytes) keys; returns split ->
    the images as N x 32 x 32 x 3 uint8, in file order."""
    rng = np.random.default_rng(seed)
    base = root / "cifar-100-python"
    base.mkdir(parents=True, exist_ok=True)
    out = {}
    for split, per_class in (("train", train_per_class), ("test", test_per_class)):
        labels = [k for _ in range(per_class) for k in range(len(CIFAR_CLASSES))]  # interleaved, as the real files
        images = rng.integers(0, 256, (len(labels), 32, 32, 3), dtype=np.uint8)
        batch = {
            b"filenames": [f"img_{i}.png".encode() for i in range(len(labels))],
            b"batch_label": f"{split} batch".encode(),
            b"fine_labels": labels,
            b"coarse_labels": [0] * len(labels),
            b"data": images.transpose(0, 3, 1, 2).reshape(len(labels), 3072),  # R plane, G plane, B plane
        }
        with open(base / split, "wb") as f:
            pickle.dump(batch, f, protocol=2)
        out[split] = images
    meta = {b"fine_label_names": [c.encode() for c in CIFAR_CLASSES], b"coarse_label_names": [b"fruit"]}
    with open(base / "meta", "wb") as f:
        pickle.dump(meta, f, protocol=2)
    return out


def image_folder(root: Path, classes: list[str], per_class: int = 5, seed: int = 0, ext: str = "jpg") -> Path:
    """<root>/<class>/<hash-like name>.<ext>, one folder per class."""
    rng = np.random.default_rng(seed)
    for name in classes:
        (root / name).mkdir(parents=True, exist_ok=True)
        for n in range(per_class):
            random_image(rng, (36, 28 + n)).save(root / name / f"{rng.integers(1 << 40):010x}.{ext}")
    return root


def indian_food(root: Path, per_class: int = 5, seed: int = 0) -> Path:
    """The Kaggle download as unzipped: <root>/Indian Food Images/Indian Food Images/<class>/*.jpg."""
    return image_folder(root / "Indian Food Images" / "Indian Food Images", FOOD_CLASSES, per_class, seed)
