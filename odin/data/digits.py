"""The embedded test set: scikit-learn's handwritten digits (UCI optdigits, 1,797 images).

Those digits went through NIST's form-processing normalisation (NISTIR 5469) before they
became 8x8 counts, so `acquire` puts a generated image through the same steps; it is the
embedded analogue of the paper's post-processing that closes the gap between generated and
real images. No downloads: the data ships inside scikit-learn.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.util
from pathlib import Path

import numpy as np
from PIL import Image

from odin.characters import DIGIT_NAMES, label_to_char
from odin.errors import ConfigError, MissingSplitError

INK_PIXELS = 312  # black pixels in a normalised 32x32 digit (the mean over load_digits)
BOX_W, BOX_H, FRAME = 20, 32, 32  # NIST stretches the character's box to 20x32 in a 32x32 frame
SUPER = 2  # work at 2x the 32x32 resolution (NIST worked at 1x) so stretching and thinning stay smooth


@functools.lru_cache(maxsize=1)
def _load() -> tuple[np.ndarray, np.ndarray]:
    """load_digits' images / 16 and targets. Read from scikit-learn's own file where it lies, parsed as
    load_digits parses it (a test checks equal arrays): importing scikit-learn costs a second, a cached
    rerun's whole budget is five (issue 25). load_digits itself where the file is not found."""
    spec = importlib.util.find_spec("sklearn")
    data_file = Path(spec.origin).parent / "datasets" / "data" / "digits.csv.gz" if spec and spec.origin else None
    if data_file is None or not data_file.is_file():
        from sklearn.datasets import load_digits

        d = load_digits()
        return (d.images / 16.0).astype(np.float32), d.target
    data = np.loadtxt(data_file, delimiter=",")
    return (data[:, :-1].reshape(-1, 8, 8) / 16.0).astype(np.float32), data[:, -1].astype(int)


@functools.lru_cache(maxsize=1)
def _opencv():
    """OpenCV on one thread: images are acquired one per process (train.preload's workers), and on 2 cores
    OpenCV's own pool spun as much as it worked (3,000 images in one process: 3.9 s CPU and 2.2 s wall on
    its default 2 threads, 1.85 s and 1.75 s on one; beside a second worker, preparing took twice as long)."""
    import cv2

    cv2.setNumThreads(1)
    return cv2


def upright_frame(binary: np.ndarray) -> np.ndarray:
    """The ink (specks removed) with its box stretched to 20x32 in the 32x32 frame (at SUPER times the
    resolution) and its slant removed: NIST's geometry, one resampling."""
    from scipy import ndimage

    # The box is stretched to 20x32 first and the slant removed after, in the stretched frame, as
    # NIST did: shearing a stretched digit changes its width, so real digits span 4 to 7 of the
    # 8 columns (a slanted stick 1 becomes a narrow upright bar, not a 20-wide block).
    ys, xs = np.nonzero(binary)
    x0, x1, y0, y1 = xs.min(), xs.max() + 1, ys.min(), ys.max() + 1
    n = FRAME * SUPER
    sy, sx = (y1 - y0) / (BOX_H * SUPER), (x1 - x0) / (BOX_W * SUPER)  # input pixels per output pixel
    left = (FRAME - BOX_W) / 2 * SUPER
    # Slant from second moments (x shift per row), measured in the stretched frame.
    yc, xc = ys.mean(), xs.mean()
    var_y = ((ys - yc) ** 2).mean()
    slope = ((xs - xc) * (ys - yc)).mean() / var_y if var_y > 0 else 0.0
    slope = float(np.clip(slope * sy / sx, -1, 1))
    # One resampling from the output frame (row v, col u) back to the input image:
    #   y = y0 + (v + .5) sy - .5,  x = x0 + (u + slope (v - vc) - left + .5) sx - .5
    # where vc is the output row of the centroid (the row the shear leaves in place).
    vc = (yc + 0.5 - y0) / sy - 0.5
    matrix = np.array([[sy, 0.0], [slope * sx, sx]])
    offset = np.array([y0 + 0.5 * sy - 0.5, x0 + (0.5 - left) * sx - 0.5 - slope * sx * vc])
    soft = ndimage.gaussian_filter(binary.astype(np.float32), 0.5)
    return ndimage.affine_transform(soft, matrix, offset, output_shape=(n, n), order=1) > 0.5


def acquire(image: Image.Image) -> np.ndarray:
    """A generated image -> float32 8x8 in [0, 1], the way NIST made load_digits: binarise,
    drop specks, stretch the box to 20x32 (aspect not kept) centred in 32x32, remove slant,
    normalise stroke width by pixel count, count ink in 4x4 blocks (0..16) and divide by 16."""
    from scipy import ndimage

    cv2 = _opencv()

    ink = 1.0 - np.asarray(image.convert("L"), dtype=np.float32) / 255.0
    # A little smoothing first, so single-pixel noise (pepper, grain) cannot pass the threshold.
    ink = ndimage.gaussian_filter(ink, sigma=max(ink.shape) / 90)
    ranked = np.sort(ink, axis=None)  # one sort serves both: each reads order statistics only (the same values)
    background, darkest = np.median(ranked), np.percentile(ranked, 99.5)
    if darkest - background < 0.15:  # blank (or all ink): nothing written
        return np.zeros((8, 8), np.float32)
    binary = ink > (background + darkest) / 2

    # Specks: components (8-connected) much smaller than the largest one (the glyph) would stretch its box.
    _, labels, stats, _ = cv2.connectedComponentsWithStats(binary.view(np.uint8), connectivity=8)
    areas = stats[:, cv2.CC_STAT_AREA]
    areas[0] = 0  # the background
    binary = areas[labels] >= 0.1 * areas.max()

    frame = upright_frame(binary)

    # Stroke width: grow or shrink the ink by a distance so it has INK_PIXELS pixels at 32x32
    # (NIST erodes or dilates by pixel count; a signed distance does the same in finer steps). Only the
    # order of the signed distances matters, so their exact squares (whole numbers: OpenCV's exact
    # Euclidean transform is within 1e-5 of them) rank the pixels as the distances do, ties included.
    if frame.any():
        inside = frame.view(np.uint8)
        out_d = cv2.distanceTransform(1 - inside, cv2.DIST_L2, cv2.DIST_MASK_PRECISE)  # to the nearest ink
        in_d = cv2.distanceTransform(inside, cv2.DIST_L2, cv2.DIST_MASK_PRECISE)  # to the nearest paper
        signed = np.rint(out_d * out_d).astype(np.int32) - np.rint(in_d * in_d).astype(np.int32)
        target = INK_PIXELS * SUPER**2
        frame = signed <= np.partition(signed.ravel(), target)[target]
    bitmap = frame.reshape(FRAME, SUPER, FRAME, SUPER).sum((1, 3)) * 2 > SUPER**2  # more than half the block
    counts = bitmap.reshape(8, 4, 8, 4).sum((1, 3))
    return (counts / 16.0).astype(np.float32)


class DigitsDataset:
    """load_digits as the test set; classes are the digit names ("zero".."nine")."""

    has_train_split = False  # load_digits is the test set; the data ships with scikit-learn
    transforms_generated = True  # acquire remakes a generated digit the way NIST made the real ones

    def __init__(self, name: str = "digits", context: str = "digit", root: str | None = None,
                 template_banks: dict | None = None):
        # root and template_banks are keys of the shared dataset schema, so they are in this dataset's cache
        # keys; prompt=template reads the banks from the config. The data itself ships with scikit-learn.
        if root is not None:
            raise ConfigError(f"dataset.root={root}: dataset=digits ships inside scikit-learn and reads no folder; "
                              "for your own images use dataset=folder dataset.root=...")
        self.name, self.context, self.template_banks = name, context, dict(template_banks or {})
        self.classes = list(DIGIT_NAMES)
        self.channels = 1

    def check(self) -> None:
        return None  # nothing on disk to look for

    def _digit(self, label: str) -> int:
        char = label_to_char(str(label))
        if char is None or not char.isdigit():
            raise ConfigError(f"digits has no class {label!r}: its classes are {self.classes} (or 0-9)")
        return int(char)

    def test_set(self, labels: list[str]) -> list[tuple[np.ndarray, int]]:
        """Every load_digits image whose class is in labels, with the class's index in labels."""
        index = {}
        for i, label in enumerate(labels):
            if self._digit(label) in index:
                raise ConfigError(f"digits got class {label!r} twice in labels={list(labels)}")
            index[self._digit(label)] = i
        images, targets = _load()
        return [(images[k].copy(), index[int(t)]) for k, t in enumerate(targets) if int(t) in index]

    def fingerprint(self, split: str, labels: list[str]) -> dict[str, dict]:
        """Per label: its number of images and a hash of their pixels (load_digits as this scikit-learn has it)."""
        if split != "test":
            return self.train_items(labels)
        by_label: dict[int, list[np.ndarray]] = {i: [] for i in range(len(labels))}
        for x, i in self.test_set(labels):
            by_label[i].append(x)
        return {label: {"images": len(by_label[i]),
                        "hash": hashlib.sha256(np.ascontiguousarray(by_label[i]).tobytes()).hexdigest()[:16]}
                for i, label in enumerate(labels)}

    def train_items(self, labels: list[str]) -> list[tuple[np.ndarray, int]]:
        raise MissingSplitError("dataset=digits has no real training images (load_digits is only the test set "
                                "here): train on generated images (train.source=generated, no train.real_classes)")

    def sources(self, split: str, labels: list[str]) -> list:
        return self.train_items(labels) if split == "train" else []  # its test images are arrays (test_set)

    def train_images(self, label: str) -> list[Image.Image]:
        raise MissingSplitError(
            f"dataset=digits has no real training images for {label!r} (load_digits is only the test "
            "set here), so caption prompts cannot run on it; use prompt=naive or prompt=template, or a "
            "dataset that has a training split"
        )

    def acquire(self, image: Image.Image) -> np.ndarray:
        return acquire(image)
