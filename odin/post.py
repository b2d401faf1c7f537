"""Post-processors: Gaussian blur and scikit-image `random_noise`, applied per image.

The paper closes part of the gap between generated and real photos by degrading the
generated training images (blur with kernel 5; noise modes gaussian, localvar, poisson,
salt, pepper, s&p, speckle). Each image's noise comes from its own seed, so the result is
the same whatever the order or the shard.
"""

from __future__ import annotations

import numpy as np
from PIL import Image
from skimage.filters import gaussian
from skimage.util import random_noise

NOISE_MODES = ("gaussian", "localvar", "poisson", "salt", "pepper", "s&p", "speckle")
MODES = ("none", "blur", *NOISE_MODES)


class PostProcessor:
    def __init__(self, name: str, mode: str = "none", apply_to_test: bool = False, kernel_size: int = 5,
                 mean: float = 0.0, var: float = 0.01, amount: float = 0.05, salt_vs_pepper: float = 0.5):
        if mode not in MODES:
            raise ValueError(f"post.mode={mode!r} is not one of {', '.join(MODES)}")
        if kernel_size < 1 or kernel_size % 2 == 0:
            raise ValueError(f"post.kernel_size={kernel_size} must be a positive odd number")
        if var < 0 or not 0 <= amount <= 1 or not 0 <= salt_vs_pepper <= 1:
            raise ValueError("post.var must be >= 0, post.amount and post.salt_vs_pepper within [0, 1]")
        self.name, self.mode, self.apply_to_test = name, mode, apply_to_test
        self.kernel_size = kernel_size
        self.noise_args = {
            "gaussian": {"mean": mean, "var": var},
            "speckle": {"mean": mean, "var": var},
            "salt": {"amount": amount},
            "pepper": {"amount": amount},
            "s&p": {"amount": amount, "salt_vs_pepper": salt_vs_pepper},
        }.get(mode, {})
        self.var = var

    @property
    def is_identity(self) -> bool:
        return self.mode == "none"

    def __call__(self, image: Image.Image, seed: int) -> Image.Image:
        return to_image(self.apply(to_array(image), seed), image.mode)

    def apply(self, x: np.ndarray, seed: int) -> np.ndarray:
        """float array in [0, 1] (H×W or H×W×C) -> float array in [0, 1]."""
        if self.mode == "none":
            return x
        if self.mode == "blur":
            # kernel_size k <=> sigma as OpenCV picks it for sigma=0, truncated at the kernel's radius
            sigma = 0.3 * ((self.kernel_size - 1) * 0.5 - 1) + 0.8
            radius = self.kernel_size // 2
            return gaussian(x, sigma=sigma, truncate=radius / sigma, channel_axis=-1 if x.ndim == 3 else None,
                            preserve_range=True)
        args = dict(self.noise_args)
        if self.mode == "localvar":
            # skimage needs a variance per pixel: brighter pixels get more noise, as in a real sensor
            args["local_vars"] = self.var * (0.1 + x)
        return random_noise(x, mode=self.mode, rng=seed, clip=True, **args)


def to_array(image: Image.Image) -> np.ndarray:
    return np.asarray(image, dtype=np.float32) / 255.0


def to_image(x: np.ndarray, mode: str) -> Image.Image:
    return Image.fromarray(np.clip(np.rint(x * 255.0), 0, 255).astype(np.uint8)).convert(mode)
