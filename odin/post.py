"""Post-processors: Gaussian blur and scikit-image `random_noise`, applied per image.

The paper closes part of the gap between generated and real photos by degrading the
generated training images (blur with kernel 5; noise modes gaussian, localvar, poisson,
salt, pepper, s&p, speckle). Each image's noise comes from its own seed, so the result is
the same whatever the order or the shard.
"""

from __future__ import annotations

from typing import Any, NamedTuple, Protocol

import numpy as np
from PIL import Image


class Chosen(NamedTuple):
    """The processor a run applies, its resolved config (what cache keys hold) and how it was chosen."""

    processor: PostProcessor
    config: dict
    record: dict | None  # post=auto: every candidate's score; None for a fixed processor


class PostStage(Protocol):
    """What the wiring calls on the object conf/post builds (a PostProcessor, or post=auto's AutoPost)."""

    name: str
    apply_to_test: bool

    def check(self, ctx: Any) -> None: ...  # fail fast on bad settings, before any image

    def choose(self, ctx: Any, images: Any) -> Chosen: ...  # the processor for these generated images


LOCAL_VARS = ("constant", "brightness")
# OpenCV's kernels for sigma <= 0 and sizes 1, 3, 5, 7 (imgproc/src/smooth.dispatch.cpp: small_gaussian_tab)
SMALL_GAUSSIAN = {1: [1.0], 3: [0.25, 0.5, 0.25], 5: [1 / 16, 4 / 16, 6 / 16, 4 / 16, 1 / 16],
                  7: [2 / 64, 7 / 64, 14 / 64, 18 / 64, 14 / 64, 7 / 64, 2 / 64]}
NOISE_MODES = ("gaussian", "localvar", "poisson", "salt", "pepper", "s&p", "speckle")
MODES = ("none", "blur", *NOISE_MODES)  # odin/validate.py checks post.mode against these (so scipy and
# scikit-image are imported where an image is processed, not where a config is checked)


class PostProcessor:
    """One fixed processor. Its settings are checked by odin/validate.py (post.* and post.options.*)."""

    def __init__(self, name: str, mode: str = "none", apply_to_test: bool = False, kernel_size: int = 5,
                 mean: float = 0.0, var: float = 0.01, amount: float = 0.05, salt_vs_pepper: float = 0.5,
                 local_vars: str = "constant"):
        self.name, self.mode, self.apply_to_test = name, mode, apply_to_test
        self.kernel_size = kernel_size
        self.noise_args = {
            "gaussian": {"mean": mean, "var": var},
            "speckle": {"mean": mean, "var": var},
            "salt": {"amount": amount},
            "pepper": {"amount": amount},
            "s&p": {"amount": amount, "salt_vs_pepper": salt_vs_pepper},
        }.get(mode, {})
        self.var, self.local_vars = var, local_vars

    def key_config(self) -> dict:
        """What changes this processor's pixels: its mode and the parameters that mode reads (odin.keys)."""
        if self.mode == "blur":
            return {"mode": "blur", "kernel_size": self.kernel_size}
        if self.mode == "localvar":
            return {"mode": "localvar", "local_vars": self.local_vars,
                    **({"var": self.var} if self.local_vars == "brightness" else {})}
        return {"mode": self.mode, **self.noise_args}

    @property
    def is_identity(self) -> bool:
        return self.mode == "none"

    def check(self, ctx) -> None:
        return None

    def choose(self, ctx, images) -> Chosen:
        """Itself, with its own settings (also as one of post=auto's candidates)."""
        return Chosen(self, {"name": self.name, "apply_to_test": self.apply_to_test, **self.key_config()}, None)

    def __call__(self, image: Image.Image, seed: int) -> Image.Image:
        return to_image(self.apply(to_array(image), seed), image.mode)

    def apply(self, x: np.ndarray, seed: int) -> np.ndarray:
        """float array in [0, 1] (H×W or H×W×C) -> float array in [0, 1]."""
        if self.mode == "none":
            return x
        if self.mode == "blur":
            # The paper's "Gaussian blur with a kernel size of 5" names a kernel size, as OpenCV's
            # GaussianBlur(img, (5, 5), 0) does; this is that call exactly: the same separable kernel
            # ([1, 4, 6, 4, 1] / 16 for 5) and OpenCV's default border (reflect-101 = scipy's mirror).
            from scipy.ndimage import correlate1d

            kernel = opencv_gaussian_kernel(self.kernel_size)
            return correlate1d(correlate1d(x, kernel, axis=0, mode="mirror"), kernel, axis=1, mode="mirror")
        args = dict(self.noise_args)
        if self.mode == "localvar" and self.local_vars == "brightness":
            # an option: brighter pixels get more noise, as in a real sensor (post.local_vars=brightness)
            args["local_vars"] = self.var * (0.1 + x)
        from skimage.util import random_noise

        # localvar's default is scikit-image's own (local_vars 0.01 everywhere), what the paper's call used
        return random_noise(x, mode=self.mode, rng=seed, clip=True, **args)


def degrade_at(processor: PostProcessor, x: np.ndarray, seed: int, size: tuple[int, int]) -> np.ndarray:
    """`processor` applied to a real image (float HxW or HxWxC in [0, 1]) at the generated images' `size`
    (width, height), then brought back to its own size: post.apply_to_test degrades both sides at the same
    resolution. Noise added to a 768 px generated image is mostly averaged away when it is shrunk to the
    model's input; the same noise added to a 256 px test image would be three times as visible."""
    h, w = x.shape[:2]
    channels = [x] if x.ndim == 2 else [x[..., c] for c in range(x.shape[2])]

    def resized(planes, to):
        out = [np.asarray(Image.fromarray(p.astype(np.float32), "F").resize(to, Image.Resampling.BICUBIC
                          if to[0] >= p.shape[1] else Image.Resampling.BOX)) for p in planes]
        return out[0] if x.ndim == 2 else np.stack(out, axis=2)

    large = np.clip(resized(channels, size), 0, 1)
    degraded = processor.apply(large, seed)
    planes = [degraded] if degraded.ndim == 2 else [degraded[..., c] for c in range(degraded.shape[2])]
    return np.clip(resized(planes, (w, h)), 0, 1).astype(np.float32)


def opencv_gaussian_kernel(size: int) -> np.ndarray:
    """cv2.getGaussianKernel(size, 0): OpenCV's fixed table for sizes up to 7, else the sampled
    Gaussian with sigma = 0.3 * ((size - 1) / 2 - 1) + 0.8, normalised to sum 1 (OpenCV 4; OpenCV 5
    added a table entry for 9 that differs from the sampled one by up to 0.002)."""
    if size in SMALL_GAUSSIAN:
        return np.asarray(SMALL_GAUSSIAN[size], dtype=np.float64)
    sigma = 0.3 * ((size - 1) * 0.5 - 1) + 0.8
    offsets = np.arange(size) - (size - 1) / 2
    kernel = np.exp(-(offsets**2) / (2 * sigma**2))
    return kernel / kernel.sum()


def to_array(image: Image.Image) -> np.ndarray:
    return np.asarray(image, dtype=np.float32) / 255.0


def to_image(x: np.ndarray, mode: str) -> Image.Image:
    return Image.fromarray(np.clip(np.rint(x * 255.0), 0, 255).astype(np.uint8)).convert(mode)
