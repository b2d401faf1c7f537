"""Datasets: the real images a formulated dataset is tested against.

A dataset is any object built from a `_target_` node with what the `Dataset` protocol below lists:
  check()            fail fast when the data is missing (names the path and how to get it)
  test_set(labels)   -> list[(image as float32 HxW or HxWxC array in [0, 1], class index)]
  has_train_split    whether it has real training images (train.source=real, train.real_classes, captions)
  train_items(labels), sources("train", labels), train_images(label): those images, as test_set gives
                        them, as undecoded sources, as PIL images of one class; MissingSplitError without them
  fingerprint(split, labels) -> per label, the count and a hash of the images a run reads (cache keys)
  acquire(image)     -> the generated PIL image brought into the test images' domain
                        (identity for photos; NIST-style normalisation for the digits, which says so
                        in transforms_generated: post=match, which does that job itself, refuses it)
"""

from __future__ import annotations

from typing import Any, Protocol

import numpy as np
from PIL import Image


class Dataset(Protocol):
    name: str
    classes: list[str]
    context: str
    channels: int
    has_train_split: bool
    transforms_generated: bool  # acquire() does more than load: it remakes a generated image (digits: NIST)

    def check(self) -> None: ...

    def test_set(self, labels: list[str]) -> list[tuple[np.ndarray, int]]: ...

    def train_items(self, labels: list[str]) -> list[tuple[np.ndarray, int]]: ...

    def sources(self, split: str, labels: list[str]) -> list[tuple[Any, int]]: ...

    def fingerprint(self, split: str, labels: list[str]) -> dict[str, dict]: ...

    def train_images(self, label: str) -> list[Image.Image]: ...

    def acquire(self, image: Image.Image) -> np.ndarray: ...
