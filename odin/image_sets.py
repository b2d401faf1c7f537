"""The images a comparison looks at, as the classifier sees them: real ones of the run's classes and
generated ones after post-processing (through `dataset.acquire`, as training reads them), each class
drawn by a seeded subset so a task's numbers are the same on every rerun.
"""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np

from odin.store import Folder, open_image


def seeded_subset(items: list, n: int | None, seed: int, *tags) -> list:
    """`n` of `items` drawn by (seed, tags), in their original order; all of them when n is None or larger."""
    if n is None or n >= len(items):
        return list(items)
    keep = sorted(random.Random(":".join(map(str, (seed, *tags)))).sample(range(len(items)), n))
    return [items[i] for i in keep]


def generated_rows(folder: Folder, labels: list[str], n: int | None, seed: int) -> dict[str, list[dict]]:
    """Up to `n` rows of each label, drawn from all its prompts' images."""
    by_label: dict[str, list[dict]] = {label: [] for label in labels}
    for row in folder.rows:
        if row["label"] in by_label:
            by_label[row["label"]].append(row)
    return {label: seeded_subset(rows, n, seed, "generated", label) for label, rows in by_label.items()}


def whole_units(folder: Folder, labels: list[str], n: int, seed: int) -> Folder:
    """A view of `folder` with at least `n` images of each label, made of whole prompts (units).

    Whole units, because the store caches post-processing per unit: a unit post-processed with only
    some of its images would be taken for the unit's first images by a later run.
    """
    units: dict[str, dict[str, list[dict]]] = {label: {} for label in labels}
    for row in folder.rows:
        if row["label"] in units:
            units[row["label"]].setdefault(row["unit"], []).append(row)
    rows = []
    for label, by_unit in units.items():
        taken = 0
        order = sorted(by_unit)  # unit names are content hashes: sorted, a fixed pseudo-random order
        random.Random(f"{seed}:units:{label}").shuffle(order)
        for unit in order:
            if taken >= n:
                break
            rows += by_unit[unit]
            taken += len(by_unit[unit])
    return Folder(folder.key, folder.path, rows)


def load_generated(folder: Folder, rows: list[dict], dataset) -> list[np.ndarray]:
    return [dataset.acquire(open_image(Path(folder.path) / row["file_name"])) for row in rows]


def real_by_class(dataset, labels: list[str], n: int | None, seed: int,
                  split: str = "test") -> tuple[dict[str, list[np.ndarray]], str]:
    """Up to `n` real images of each label from `split` ("train" when the dataset has one, else the test
    split) and the split they came from."""
    if split == "train" and dataset.has_train_split:
        from odin.data.common import load_source

        sources = dataset.sources("train", labels)
        if sources:
            by_label: dict[str, list] = {label: [] for label in labels}
            for source, index in sources:
                by_label[labels[index]].append(source)
            images = {label: [load_source(s, dataset.image_size)
                              for s in seeded_subset(found, n, seed, "real", label)]
                      for label, found in by_label.items()}
            return {label: [x for x in xs if x is not None] for label, xs in images.items()}, "train"
    by_label = {label: [] for label in labels}
    for image, index in dataset.test_set(labels):
        by_label[labels[index]].append(image)
    return {label: seeded_subset(xs, n, seed, "real", label) for label, xs in by_label.items()}, "test"


def real_pool(dataset, labels: list[str], per_class: int, seed: int) -> tuple[list[np.ndarray], str]:
    """About `per_class` x len(labels) real images of the run's classes, pooled, and their split.

    From the training split when the dataset has one (there a class may guide the draw); else from the
    test split, drawn from the pool of all its images of those classes, so no test label is used.
    """
    if dataset.has_train_split and dataset.sources("train", labels):
        by_label, split = real_by_class(dataset, labels, per_class, seed, split="train")
        return [x for xs in by_label.values() for x in xs], split
    by_label, split = real_by_class(dataset, labels, None, seed, split="test")
    return seeded_subset([x for xs in by_label.values() for x in xs], per_class * len(labels), seed, "pool"), split
