"""Text-to-image backends: (label, prompts, seeds) -> images.

A backend is any object built from a `_target_` node with
  images_per_prompt  how many images each prompt gets
  cache_version      (optional) bumped when the same config starts to draw other images
  parallel           (optional, False when absent) True when the store may make units in worker processes
                     (fork on Linux, a pickled copy elsewhere): plain CPU code with no threads, GPU or open
                     connections of its own; a unit's images must depend on the unit alone
  check(labels)      fail fast (missing weights, no CUDA, a label it cannot draw)
  __call__(label, prompts, seeds) -> list[GeneratedImage], one per (prompt, seed) pair
  check_heatmaps(prompts)  (optional) the backend can say where the label is in each image: it
                     fails fast on prompts it cannot localize ({label: prompts}), and then
                     __call__(..., heatmaps=True) fills GeneratedImage.heatmap (localize=attention)
The store hands the backend one unit of work at a time (one label and one prompt, all its
seeds); the backend cuts it into batches by its own config, never by the shard, so the
same seed gives the same image however the work is split.
"""

from __future__ import annotations

from typing import Any, NamedTuple, Protocol

import numpy as np
from PIL import Image


class GeneratedImage(NamedTuple):
    image: Image.Image
    info: dict[str, Any]  # recorded in metadata.jsonl (e.g. safety-checker retries)
    heatmap: np.ndarray | None = None  # (height, width) in [0, 1]: where the label is; asked for only


class TextToImage(Protocol):
    images_per_prompt: int
    parallel: bool

    def check(self, labels: list[str]) -> None: ...

    def __call__(self, label: str, prompts: list[str], seeds: list[int]) -> list[GeneratedImage]: ...
