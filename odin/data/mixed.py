"""One dataset made of several: the classes of all parts (or a seeded draw of each per round), their real
test images joined, for the paper's proof of concept (each round: 10 random Oxford Pet breeds + 10 random
Indian Food dishes, the test set balanced to its smallest class).

`classes` is already the round's draw, so a run needs no `labels=`: `python run.py dataset=pet_food
dataset.round=7` trains on round 7's classes. Generated images are stored per label (odin/store.py), so
a class drawn in many rounds is generated once: 101 rounds cost the generation of the classes drawn.
"""

from __future__ import annotations

import copy
import functools
import random
from collections.abc import Mapping, Sequence

import numpy as np
from PIL import Image

from odin.data.common import seeded_order
from odin.errors import ConfigError, MissingSplitError


def round_labels(classes_by_part: Mapping[str, Sequence[str]], per_part: int | None, round: int,  # noqa: A002
                 seed: int = 0) -> dict[str, list[str]]:
    """The classes of round `round`: `per_part` of each part's classes (None: all), drawn by (seed, round,
    part name) alone, so a part's draw does not change when another part is added, and listed in the
    part's own class order (the same labels always come in the same order, which the training key sees)."""
    chosen = {}
    for part, classes in classes_by_part.items():
        classes = list(classes)
        if per_part is None:
            chosen[part] = classes
            continue
        if not 1 <= per_part <= len(classes):
            raise ConfigError(f"dataset.per_part={per_part}: dataset.parts.{part} has {len(classes)} classes; "
                              f"draw between 1 and {len(classes)} per round (or null for all)")
        picked = set(random.Random(f"{seed}:{round}:{part}").sample(range(len(classes)), per_part))
        chosen[part] = [c for i, c in enumerate(classes) if i in picked]
    return chosen


class MixedDataset:
    """The Dataset protocol (odin.data) over the union of `parts` (name -> a dataset, built by Hydra from
    each part's own config). A class name two parts share becomes `<class> (<part>)` in both, so every
    label is unique; the part answers for its own classes under its own name."""

    has_train_split = False  # captions read the parts' train_images; real training runs per part

    @property
    def transforms_generated(self) -> bool:
        return any(ds.transforms_generated for ds in self.parts.values())

    def __init__(self, parts: Mapping[str, object], name: str = "mixed", context: str = "",
                 per_part: int | None = None, round: int = 0, seed: int = 0,  # noqa: A002
                 balance: bool = False, root: str | None = None, template_banks: dict | None = None):
        # root and template_banks belong to the shared dataset schema; each part has its own root.
        if not parts:
            raise ConfigError("dataset.parts is empty: give at least one dataset, e.g. "
                              "dataset.parts: {oxford_pet: <its config>, indian_food: <its config>}")
        if round < 0:
            raise ConfigError(f"dataset.round={round} must be >= 0")
        self.parts = dict(parts)
        self.name, self.context, self.template_banks = name, context, dict(template_banks or {})
        self.per_part, self.round, self.seed, self.balance = per_part, round, seed, balance
        channels = {part: getattr(ds, "channels", None) for part, ds in self.parts.items()}
        if len(set(channels.values())) != 1:
            raise ConfigError(f"dataset.parts have different channel counts {channels}: a classifier takes one")
        self.channels = next(iter(channels.values()))
        sizes = {part: getattr(ds, "image_size", None) for part, ds in self.parts.items()}
        if len(set(sizes.values())) != 1:  # acquire() sees an image, not its class: one way for all parts
            raise ConfigError(f"dataset.parts have different image_size {sizes}: set the same for all, "
                              f"e.g. dataset.parts.<name>.image_size=256")

    def check(self) -> None:
        for ds in self.parts.values():
            ds.check()
        self.classes  # noqa: B018 (per_part is checked against the parts' classes here)

    @functools.cached_property
    def _members(self) -> dict[str, tuple[str, str]]:
        """label -> (part, the part's own class name), for the round's classes, in order."""
        drawn = round_labels({part: ds.classes for part, ds in self.parts.items()}, self.per_part, self.round,
                             self.seed)
        everywhere = [c for part_classes in drawn.values() for c in part_classes]
        shared = {c for c in everywhere if everywhere.count(c) > 1}
        return {(f"{c} ({part})" if c in shared else c): (part, c) for part, cs in drawn.items() for c in cs}

    @functools.cached_property
    def classes(self) -> list[str]:
        return list(self._members)

    def _by_part(self, labels: Sequence[str]) -> dict[str, list[tuple[int, str]]]:
        """part -> [(position in labels, the part's class name)]."""
        grouped: dict[str, list[tuple[int, str]]] = {}
        for i, label in enumerate(labels):
            if label not in self._members:
                raise ConfigError(f"dataset={self.name} (round {self.round}) has no class {label!r}; "
                                  f"its classes are {self.classes}")
            part, own = self._members[label]
            grouped.setdefault(part, []).append((i, own))
        return grouped

    def test_set(self, labels: Sequence[str]) -> list[tuple[np.ndarray, int]]:
        """Each part's real test images of its labels, with the index in `labels`, grouped by label. With
        `balance`, every class is trimmed (a seeded choice) to the smallest selected class over all parts."""
        grouped = self._by_part(labels)
        quota = self._smallest_class(grouped) if self.balance else None
        by_label: dict[int, list[np.ndarray]] = {i: [] for i in range(len(labels))}
        for part, members in grouped.items():
            ds = self.parts[part]
            if quota is not None and hasattr(ds, "max_per_class"):  # read no more images than will be kept
                ds = copy.copy(ds)  # shares the part's index; only the copy's quota changes
                ds.max_per_class = min(quota, ds.max_per_class or quota)
            images = ds.test_set([own for _, own in members])
            for image, k in images:
                by_label[members[k][0]].append(image)
        if self.balance:  # an unreadable file can leave a class short: the shortest sets the size for all
            smallest = min(len(v) for v in by_label.values())
            by_label = {i: [v[j] for j in sorted(seeded_order(range(len(v)), self.seed, "balance", labels[i])
                                                 [:smallest])]
                        for i, v in by_label.items()}
        return [(image, i) for i in range(len(labels)) for image in by_label[i]]

    def _smallest_class(self, grouped: dict[str, list[tuple[int, str]]]) -> int | None:
        """The smallest test class over all parts, counted without decoding (None if a part cannot count)."""
        counts = []
        for part, members in grouped.items():
            ds = self.parts[part]
            if not hasattr(ds, "sources"):
                return None
            found = [k for _, k in ds.sources("test", [own for _, own in members])]
            counts += [found.count(k) for k in range(len(members))]
        return min(counts) if counts else None

    def fingerprint(self, split: str, labels: Sequence[str]) -> dict[str, dict]:
        found = {}
        for part, members in self._by_part(labels).items():
            prints = self.parts[part].fingerprint(split, [own for _, own in members])
            found |= {labels[i]: prints[own] for i, own in members}
        return {label: found[label] for label in labels}

    def train_items(self, labels: Sequence[str]) -> list[tuple[np.ndarray, int]]:
        raise MissingSplitError(f"dataset={self.name}: training on the parts' real images is not supported "
                                "(train.source=real, train.real_classes); run each part as its own dataset")

    def sources(self, split: str, labels: Sequence[str]) -> list:
        return self.train_items(labels) if split == "train" else []

    def train_images(self, label: str) -> list[Image.Image]:
        self._by_part([label])  # a label outside this round fails here, naming the round's classes
        part, own = self._members[label]
        return self.parts[part].train_images(own)

    def acquire(self, image: Image.Image) -> np.ndarray:
        # The parts were checked to share image_size and channels, so the first part's acquisition is all's.
        return next(iter(self.parts.values())).acquire(image)
