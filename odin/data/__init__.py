"""Datasets: the real images a formulated dataset is tested against.

A dataset is any object built from a `_target_` node with
  name, classes, context, channels
  test_set(labels)   -> list[(image as float32 HxW or HxWxC array in [0, 1], class index)]
  train_images(label)-> real training images of one class (for caption prompts); raise
                        MissingSplitError when the dataset has none
  acquire(image)     -> the generated PIL image brought into the test images' domain
                        (identity for photos; NIST-style normalisation for the digits)
"""

from __future__ import annotations

from typing import Protocol

import numpy as np
from PIL import Image

from odin.errors import UserError


class MissingSplitError(UserError, RuntimeError):
    pass


class Dataset(Protocol):
    name: str
    classes: list[str]
    context: str
    channels: int

    def test_set(self, labels: list[str]) -> list[tuple[np.ndarray, int]]: ...

    def train_images(self, label: str) -> list[Image.Image]: ...

    def acquire(self, image: Image.Image) -> np.ndarray: ...
