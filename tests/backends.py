"""A tiny deterministic text-to-image backend for store tests: a grey level drawn from the seed.

Real (it writes real images through the real store), just fast and without fonts or weights;
`delay` makes generation slow enough to kill a process in the middle of it.
"""

import time

import numpy as np
from PIL import Image

from odin.generate import GeneratedImage


class SeedSquares:
    cache_version = 0

    def __init__(self, images_per_prompt: int = 3, delay: float = 0.0):
        self.images_per_prompt, self.delay, self.calls = images_per_prompt, delay, 0

    def check(self, labels):
        pass

    def resolved(self):
        return {}

    def __call__(self, label, prompts, seeds):
        self.calls += 1
        out = []
        for prompt, seed in zip(prompts, seeds, strict=True):
            time.sleep(self.delay)
            pixels = np.random.default_rng(seed).integers(0, 256, (16, 16), dtype=np.uint8)
            out.append(GeneratedImage(Image.fromarray(pixels), {"len": len(prompt)}))
        return out


class Broken:
    """A backend with a bug in it: what a genuine bug looks like to the user (a traceback)."""

    images_per_prompt = 2
    cache_version = 0

    def __init__(self, **_):
        pass

    def check(self, labels):
        pass

    def resolved(self):
        return {}

    def __call__(self, label, prompts, seeds):
        return 1 // 0
