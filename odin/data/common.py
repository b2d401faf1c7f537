"""What the photo datasets share: readable class names, bounded image loading that skips unreadable
files, seeded per-class splits and subsets, and `PhotoDataset`, which turns a dataset's on-disk index
into the Dataset protocol of odin.data.

A subclass says where its files are (`_locate`, which fails fast naming the path and how to get the
data) and lists them (`_read_index`: every image as a file path, or as pixels already in memory for
CIFAR, with its class). Nothing is read from disk when a dataset is built: `check()` (or the first
use of `classes`) reads the index, and images are decoded only when a split is asked for.
"""

from __future__ import annotations

import difflib
import functools
import hashlib
import logging
import os
import random
from collections import defaultdict, deque
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from odin.errors import ConfigError, UserError

log = logging.getLogger("odin.data")

Source = Path | np.ndarray  # an image file, or HxWx3 uint8 pixels already in memory
Item = tuple[Source, int]  # (image, index into Index.raw)


class DatasetNotFoundError(UserError, FileNotFoundError):
    """The dataset is not where the config says; the message names the path and how to get it there."""


@dataclass
class Index:
    raw: list[str]  # the dataset's own class names, in its label order
    train: list[Item]
    test: list[Item]


def readable(raw: str) -> str:
    """A class name as a prompt reads it: `yorkshire_terrier` -> `yorkshire terrier`. Case is kept, so
    proper nouns the dataset capitalises (Oxford Pet's `Abyssinian`, `British_Shorthair`) stay so."""
    return " ".join(raw.replace("_", " ").split())


def shrink(image: Image.Image, size: int) -> Image.Image:
    """The image with its shorter side at most `size` (never enlarged), as RGB. JPEGs are decoded at a
    reduced scale first (PIL's draft), which is most of the time saved on large photos."""
    w, h = image.size
    scale = size / min(w, h)
    if scale < 1:
        target = (max(1, round(w * scale)), max(1, round(h * scale)))
        image.draft("RGB", target)  # only JPEG honours it; the decoded size stays >= target
        image = image.convert("RGB")
        if image.size != target:
            image = image.resize(target, Image.Resampling.BICUBIC, reducing_gap=3.0)
    return image.convert("RGB")


def to_array(image: Image.Image, size: int) -> np.ndarray:
    """float32 HxWx3 in [0, 1], shorter side at most `size`."""
    return np.asarray(shrink(image, size), dtype=np.float32) / 255.0


def open_source(source: Source, size: int) -> Image.Image:
    """The image (RGB, shorter side at most `size`); raises what PIL raises for a bad file."""
    if isinstance(source, np.ndarray):
        return shrink(Image.fromarray(source), size)
    with Image.open(source) as im:
        return shrink(im, size)


def try_open(source: Source, size: int) -> tuple[Image.Image | None, str]:
    """(image, "") or (None, why): a bad file is reported, never raised, so one cannot stop a run."""
    try:
        return open_source(source, size), ""
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as e:  # UnidentifiedImageError is OSError
        return None, f"{type(e).__name__}: {e}"


def load_source(source: Source, size: int) -> np.ndarray | None:
    """float32 HxWx3 in [0, 1] (shorter side at most `size`), or None when the file cannot be read."""
    image, _ = try_open(source, size)
    return None if image is None else np.asarray(image, dtype=np.float32) / 255.0


def open_many(sources: Sequence[Source], size: int) -> list[tuple[Image.Image | None, str]]:
    """try_open over many sources in threads (PIL decodes and resizes without the GIL)."""
    workers = min(8, os.cpu_count() or 1, max(1, len(sources) // 16))
    if workers <= 1:
        return [try_open(s, size) for s in sources]
    with ThreadPoolExecutor(workers) as pool:
        return list(pool.map(functools.partial(try_open, size=size), sources))


def seeded_order(items: Sequence, seed: int, *tags: object) -> list:
    """items shuffled by (seed, tags): the same on every machine and Python run, and the same for a class
    whatever other classes are selected (tags name the class, not its position). `items` must come in a
    fixed order (the index readers list files sorted or in the dataset's own order)."""
    order = list(items)
    random.Random(":".join(map(str, (seed, *tags)))).shuffle(order)
    return order


def check_test_fraction(value: float) -> float:
    """dataset.test_fraction of the datasets without an official split, checked."""
    if not 0 < value < 1:
        raise ConfigError(f"dataset.test_fraction={value} must be between 0 and 1 (exclusive)")
    return value


def split_per_class(items: Sequence[Item], raw: Sequence[str], seed: int, *, train_per_class: int | None = None,
                    test_fraction: float | None = None) -> tuple[list[Item], list[Item]]:
    """A seeded split of each class on its own: `train_per_class` images for training (at least one
    image stays for testing), or `test_fraction` of each class (at least one image) for testing. Both
    parts keep the order of `items`."""
    by_class: dict[int, list[int]] = defaultdict(list)
    for position, (_, c) in enumerate(items):
        by_class[c].append(position)
    in_train: set[int] = set()
    for c, positions in by_class.items():
        n = len(positions)
        if train_per_class is not None:
            n_train = min(train_per_class, n - 1)
        else:
            n_train = n - min(n, max(1, round(n * test_fraction)))
        in_train.update(seeded_order(positions, seed, "split", raw[c])[:n_train])
    train = [item for position, item in enumerate(items) if position in in_train]
    test = [item for position, item in enumerate(items) if position not in in_train]
    return train, test


class PhotoDataset:
    """The Dataset protocol (odin.data) over an Index of RGB photos. Subclasses set `title` and
    implement `_locate()` -> the data's folder, and `_read_index(folder)` -> Index."""

    title = "dataset"
    channels = 3

    def __init__(self, name: str, context: str = "", root: str | None = None, template_banks: dict | None = None,
                 names: dict | None = None, download: bool = False, image_size: int = 256, split_seed: int = 0,
                 balance: bool = False, max_per_class: int | None = None):
        if image_size < 1:
            raise ConfigError(f"dataset.image_size={image_size} must be at least 1")
        if max_per_class is not None and max_per_class < 1:
            raise ConfigError(f"dataset.max_per_class={max_per_class} must be at least 1 (or null for all)")
        self.name, self.context, self.template_banks = name, context, dict(template_banks or {})
        self.root = Path(root if root is not None else "data").expanduser()
        self.names = {str(k): str(v) for k, v in (names or {}).items()}
        self.download, self.image_size, self.split_seed = download, image_size, split_seed
        self.balance, self.max_per_class = balance, max_per_class

    has_train_split = True  # the official split, or a seeded one (odin.data.common.split_per_class)
    transforms_generated = False  # acquire only loads a generated image as the test images are loaded

    def __getstate__(self) -> dict:
        # run.py hands `dataset.acquire` to worker processes with every image: send the settings, not
        # the index (CIFAR's index holds all its pixels); a worker reads it again if it ever needs it.
        return {k: v for k, v in self.__dict__.items() if k not in ("_index", "classes")}

    # -- what a subclass provides --------------------------------------------------------
    def _locate(self) -> Path:
        raise NotImplementedError

    def _read_index(self, folder: Path) -> Index:
        raise NotImplementedError

    # -- the index, read once --------------------------------------------------------------
    def check(self) -> None:
        """Fail fast, before any heavy work, when the data is missing (names the path and the fix)."""
        self._index  # noqa: B018 (reading it is the check)

    @functools.cached_property
    def _index(self) -> Index:
        index = self._read_index(self._locate())
        unknown = sorted(set(self.names) - set(index.raw))
        if unknown:
            raise ConfigError(f"dataset.names renames {unknown}, which are not classes of dataset={self.name}; "
                             f"its raw class names are {index.raw}")
        return index

    @functools.cached_property
    def classes(self) -> list[str]:
        """The labels prompts use: `dataset.names` where given, else the readable raw name."""
        classes = [self.names.get(raw, readable(raw)) for raw in self._index.raw]
        twice = sorted({c for c in classes if classes.count(c) > 1})
        if twice:
            raise ConfigError(f"dataset={self.name}: classes {twice} come from more than one raw class name; "
                             "give them distinct names in dataset.names")
        return classes

    def _class_of(self, label: str) -> int:
        """The raw class index of a label: its readable name, or the dataset's raw name."""
        lookup = {raw: i for i, raw in enumerate(self._index.raw)} | {c: i for i, c in enumerate(self.classes)}
        if label in lookup:
            return lookup[label]
        close = difflib.get_close_matches(str(label), self.classes, n=3)
        hint = f" (did you mean {' or '.join(map(repr, close))}?)" if close else ""
        raise ConfigError(f"dataset={self.name} has no class {label!r}{hint}; its classes are {self.classes}")

    def _positions(self, labels: Sequence[str]) -> dict[int, int]:
        positions: dict[int, int] = {}
        for i, label in enumerate(labels):
            c = self._class_of(str(label))
            if c in positions:
                raise ConfigError(f"dataset={self.name} got class {label!r} twice in labels={list(labels)}")
            positions[c] = i
        return positions

    # -- the protocol ------------------------------------------------------------------------
    def test_set(self, labels: Sequence[str]) -> list[tuple[np.ndarray, int]]:
        """Real test images of `labels` (any subset, in any order) as (float32 HxWx3 in [0, 1], index
        in labels), grouped by label. `max_per_class` and `balance` pick a seeded subset per class."""
        return self._load(self._index.test, labels, "test", self.max_per_class, self.balance)

    def train_items(self, labels: Sequence[str]) -> list[tuple[np.ndarray, int]]:
        """Real training images of `labels`, the same way as test_set (for train.source=real and for
        seen + unseen experiments). Every image of the split: no subset, no balancing."""
        return self._load(self._index.train, labels, "train", None, False)

    def sources(self, split: str, labels: Sequence[str]) -> list[tuple[Source, int]]:
        """(file path or in-memory pixels, index in labels) of every image of a split ("train" or
        "test"), grouped by label like test_set, nothing decoded: for preparing images elsewhere (once,
        at a model's input size, in the store). `load_source(source, dataset.image_size)` reads one
        (None for an unreadable file). max_per_class and balance are not applied here."""
        if split not in ("train", "test"):
            raise ConfigError(f"split={split!r} must be 'train' or 'test'")
        positions = self._positions(labels)
        chosen = [(s, positions[c]) for s, c in getattr(self._index, split) if c in positions]
        return sorted(chosen, key=lambda pair: pair[1])  # stable: the dataset's order within a label

    def fingerprint(self, split: str, labels: Sequence[str]) -> dict[str, dict]:
        """What identifies the real images of `split` a run reads, per label: their count and a hash of each
        file's path (below root), size and modification time, or of the pixels held in memory (CIFAR).

        A stat per file, not a read: 100,000 files in about a second where hashing their bytes takes
        minutes (benchmarks/bench_fingerprint.py). A file rewritten with the same bytes counts as changed:
        a needless retrain at worst, never a stale result."""
        positions = self._positions(labels)
        found = {c: (0, hashlib.sha256()) for c in positions}
        for source, c in getattr(self._index, split):
            if c not in positions:
                continue
            n, digest = found[c]
            if isinstance(source, Path):
                stat = source.stat()
                digest.update(f"{os.path.relpath(source, self.root)}\0{stat.st_size}\0{stat.st_mtime_ns}\n".encode())
            else:
                digest.update(np.ascontiguousarray(source).tobytes())
            found[c] = (n + 1, digest)
        return {labels[i]: {"images": found[c][0], "hash": found[c][1].hexdigest()[:16]}
                for c, i in sorted(positions.items(), key=lambda pair: pair[1])}

    def train_images(self, label: str) -> list[Image.Image]:
        """One class's real training images as PIL images (for caption prompts); unreadable ones skipped."""
        c = self._class_of(label)
        sources = [s for s, k in self._index.train if k == c]
        opened = open_many(sources, self.image_size)
        self._report_skipped("train", sources, opened)
        return [im for im, _ in opened if im is not None]

    def acquire(self, image: Image.Image) -> np.ndarray:
        """A generated image as the test images are loaded: RGB, the same size bound (photos need no
        more: the classifier resizes both to its input size)."""
        return to_array(image, self.image_size)

    # -- loading -------------------------------------------------------------------------------
    def _load(self, items: Sequence[Item], labels: Sequence[str], split: str, quota: int | None,
              balance: bool) -> list[tuple[np.ndarray, int]]:
        positions = self._positions(labels)
        by_class: dict[int, list[int]] = {c: [] for c in positions}  # class -> positions in items
        for position, (_, c) in enumerate(items):
            if c in by_class:
                by_class[c].append(position)
        empty = [self.classes[c] for c, members in by_class.items() if not members]
        if empty:
            log.warning("%s: no %s images of %s", self.name, split, empty)
        if balance:
            quota = min([len(m) for m in by_class.values()] + ([quota] if quota else []), default=0)
        # When only some are kept, candidates come in a seeded order and a bad file is replaced by the next.
        pending = {c: deque(m if quota is None else seeded_order(m, self.split_seed, split, self._index.raw[c]))
                   for c, m in by_class.items()}
        kept: dict[int, list[tuple[int, Image.Image]]] = {c: [] for c in by_class}
        tried, failed = 0, []
        while True:
            batch = []
            for c, queue in pending.items():
                need = len(queue) if quota is None else quota - len(kept[c])
                batch += [(c, queue.popleft()) for _ in range(min(need, len(queue)))]
            if not batch:
                break
            opened = open_many([items[p][0] for _, p in batch], self.image_size)
            tried += len(batch)
            for (c, p), (image, why) in zip(batch, opened, strict=True):
                if image is None:
                    failed.append((items[p][0], why))
                else:
                    kept[c].append((p, image))
        self._log_failed(split, tried, failed)
        if balance:  # a class that lost files sets the size for all
            smallest = min((len(k) for k in kept.values()), default=0)
            kept = {c: k[:smallest] for c, k in kept.items()}  # each k is in its seeded order here
        out = []
        for c in sorted(kept, key=positions.__getitem__):
            for _, image in sorted(kept[c], key=lambda pair: pair[0]):  # the dataset's own order
                out.append((np.asarray(image, dtype=np.float32) / 255.0, positions[c]))
        return out

    def _report_skipped(self, split: str, sources: Sequence[Source], opened) -> None:
        self._log_failed(split, len(sources), [(s, why) for s, (im, why) in zip(sources, opened, strict=True)
                                               if im is None])

    def _log_failed(self, split: str, total: int, failed: list[tuple[Source, str]]) -> None:
        if failed:
            first, why = failed[0]
            where = first if isinstance(first, Path) else "an in-memory image"
            log.warning("%s: skipped %d of %d %s images that could not be read (first: %s: %s)",
                        self.name, len(failed), total, split, where, why)
