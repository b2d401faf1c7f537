"""Pairwise SSIM in torch that equals `skimage.metrics.structural_similarity` with the same settings.

scikit-image's defaults (the paper's diversity numbers come from them): a 7x7 uniform window, sample
covariance N/(N-1), K1=0.01, K2=0.03, the map's border of (win_size-1)//2 cropped before the mean,
channels averaged. Its `gaussian_weights=True` (sigma 1.5, truncate 3.5, an 11x11 window) is supported
too. No torch library reproduces these (torchmetrics pads, pytorch-msssim is
Gaussian only, piq downsamples), hence this small port.

Why it is fast: the filters are linear and the cropped map only uses pixels inside the image, so every
local mean and second moment is a *valid* separable filter. Each image's mean and variance maps are
computed once; a pair only needs the filtered product E[xy]. Pairs go in batches of bounded size.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import torch

K1, K2 = 0.01, 0.03
GAUSSIAN_SIGMA, GAUSSIAN_TRUNCATE = 1.5, 3.5  # scikit-image's values for gaussian_weights=True
PAIR_BATCH_ELEMENTS = 1 << 22  # pixels x channels x pairs per batch: ~32 MB per float64 temporary


def window_taps(win_size: int | None, gaussian_weights: bool) -> tuple[torch.Tensor, int]:
    """1-D filter taps (float64, summing to 1) and the window size whose half is cropped, as skimage."""
    if gaussian_weights:
        radius = int(GAUSSIAN_TRUNCATE * GAUSSIAN_SIGMA + 0.5)  # scipy.ndimage's rule: 5, an 11-tap kernel
        if win_size not in (None, 2 * radius + 1):
            raise ValueError(f"win_size={win_size}: with gaussian_weights=True the window is {2 * radius + 1} "
                             "(sigma 1.5, truncate 3.5, as scikit-image); leave win_size unset")
        x = torch.arange(-radius, radius + 1, dtype=torch.float64)
        taps = torch.exp(-0.5 * (x / GAUSSIAN_SIGMA) ** 2)
        return taps / taps.sum(), 2 * radius + 1
    win_size = 7 if win_size is None else win_size
    if win_size < 1 or win_size % 2 == 0:
        raise ValueError(f"win_size={win_size} must be a positive odd number (scikit-image's default is 7)")
    return torch.full((win_size,), 1.0 / win_size, dtype=torch.float64), win_size


def valid_filter(x: torch.Tensor, taps: torch.Tensor) -> torch.Tensor:
    """Separable filter over the last two dims, output only where the window fits inside the image.

    A sum of shifted slices: exact in float32 too (unlike cumulative sums) and faster on CPU than a
    depthwise convolution for windows this small.
    """
    k = len(taps)
    for dim in (-1, -2):
        n = x.shape[dim] - k + 1
        out = x.narrow(dim, 0, n) * taps[0]
        for t in range(1, k):
            out.add_(x.narrow(dim, t, n), alpha=float(taps[t]))
        x = out
    return x


def as_images(images, name: str = "images") -> torch.Tensor:
    """[N, C, H, W] (or [N, H, W] gray) tensor or array -> a 4-D tensor; rejects anything else early."""
    t = torch.from_numpy(np.asarray(images)) if not isinstance(images, torch.Tensor) else images
    if t.ndim == 3:
        t = t.unsqueeze(1)
    if t.ndim != 4:
        raise ValueError(f"{name} must be [N, C, H, W] or [N, H, W] (gray), got shape {tuple(t.shape)}")
    return t


def resolve_data_range(images: torch.Tensor, data_range: float | None) -> float:
    if data_range is None:
        if images.dtype == torch.uint8:
            return 255.0
        raise ValueError("data_range must be given for float images (1.0 for images in [0, 1], 255.0 for 0-255), "
                         "as scikit-image's structural_similarity requires")
    if data_range <= 0:
        raise ValueError(f"data_range={data_range} must be positive")
    return float(data_range)


class ImageStats:
    """What SSIM needs of each image alone, its local means and variances: computed once here for the torch
    backend; the numba loop computes them band by band as the pairs need them (odin/metrics/ssim_cpu.py)."""

    def __init__(self, images: torch.Tensor, taps: torch.Tensor, win_size: int, data_range: float,
                 use_sample_covariance: bool, backend: str):
        n_window = win_size ** 2
        self.cov_norm = n_window / (n_window - 1) if use_sample_covariance else 1.0
        self.c1, self.c2 = (K1 * data_range) ** 2, (K2 * data_range) ** 2
        self.images, self.taps, self.backend = images, taps.to(images), backend
        self.running = bool((taps == taps[0]).all()) and images.dtype == torch.float64
        if backend == "numba":  # the maps band by band, where the pairs use them (odin/metrics/ssim_cpu.py)
            from odin.metrics.ssim_cpu import use_torch_threads

            use_torch_threads()
            return
        # In float64 whatever the pairs' dtype: E[x^2] - E[x]^2 cancels digits, and this is only O(N).
        x, taps64 = images.double(), taps.to(images.device)
        mean = valid_filter(x, taps64)
        variance = self.cov_norm * (valid_filter(x * x, taps64) - mean * mean)
        # The denominators' per-image halves: B1 = a_i + a_j, B2 = b_i + b_j.
        self.mean = mean.to(images.dtype)
        self.a = (mean * mean + self.c1 / 2).to(images.dtype)
        self.b = (variance + self.c2 / 2).to(images.dtype)

    def ssim(self, i: torch.Tensor, j: torch.Tensor) -> torch.Tensor:
        """SSIM of the pairs (i[k], j[k]): the cropped map's mean over channels and pixels."""
        return self._ssim_numba(i, j) if self.backend == "numba" else self._ssim_torch(i, j)

    def _ssim_numba(self, i: torch.Tensor, j: torch.Tensor) -> torch.Tensor:
        from odin.metrics.ssim_cpu import pair_ssim

        out = np.empty(len(i), dtype=np.float64)
        pair_ssim(self.images.numpy(), i.numpy(), j.numpy(), self.taps.numpy(), self.c1, self.c2, self.cov_norm,
                  self.running, out)
        return torch.from_numpy(out)

    def _ssim_torch(self, i: torch.Tensor, j: torch.Tensor) -> torch.Tensor:
        mean_product = self.mean[i] * self.mean[j]
        e_xy = valid_filter(self.images[i] * self.images[j], self.taps)
        numerator = (2 * mean_product + self.c1).mul_(e_xy.sub_(mean_product).mul_(2 * self.cov_norm).add_(self.c2))
        denominator = (self.a[i] + self.a[j]).mul_(self.b[i] + self.b[j])
        return numerator.div_(denominator).flatten(1).mean(1)


def pairwise_ssim(images, data_range: float | None = None, *, win_size: int | None = None,
                  gaussian_weights: bool = False, use_sample_covariance: bool = True,
                  batch_pairs: int | None = None, device: str | torch.device | None = None,
                  dtype: torch.dtype = torch.float64, backend: str = "auto") -> torch.Tensor:
    """SSIM of every pair i < j of `images` ([N, C, H, W] or [N, H, W]), in the order (0,1), (0,2), ..., (1,2), ...

    Equals `structural_similarity(images[i], images[j], data_range=..., channel_axis=0)` (or without
    channel_axis for gray) with the same `win_size`, `gaussian_weights` and `use_sample_covariance`
    (True by default, even with the Gaussian window, as in scikit-image; Wang et al.'s original SSIM is
    gaussian_weights=True, use_sample_covariance=False). Returns a
    float64 CPU tensor of N*(N-1)/2 values. `batch_pairs` bounds memory (default: about 4M pixels per
    batch; the numba loop needs none). `dtype=torch.float32` is faster but E[xy] - E[x]E[y] loses digits
    in float32: ~1e-6 off on textured images, up to ~4e-4 on mostly flat ones (plain backgrounds), so
    float64, the default, is the one that keeps the 1e-4 agreement.
    `backend`: "numba" (a fused CPU loop, the default on CPU), "torch" (any device, the default elsewhere).
    """
    images = as_images(images)
    data_range = resolve_data_range(images, data_range)
    taps, win = window_taps(win_size, gaussian_weights)
    if min(images.shape[-2:]) < win:
        raise ValueError(f"images of {tuple(images.shape[-2:])} pixels are smaller than the {win}x{win} window")
    images = images.to(device=device, dtype=dtype).contiguous()
    if backend == "auto":
        backend = "numba" if images.device.type == "cpu" else "torch"
    if backend not in ("numba", "torch") or (backend == "numba" and images.device.type != "cpu"):
        raise ValueError(f"backend={backend!r}: use 'numba' (CPU only), 'torch' (any device) or 'auto'")
    stats = ImageStats(images, taps, win, data_range, use_sample_covariance, backend)
    n = len(images)
    if batch_pairs is None:  # the numba loop needs no memory per pair: one batch, so bands are shared by all
        batch_pairs = n * n if backend == "numba" else max(1, PAIR_BATCH_ELEMENTS // images[0].numel())
    out = torch.empty(n * (n - 1) // 2, dtype=torch.float64)
    done = 0
    for i, j in pair_batches(n, batch_pairs, images.device):
        out[done:done + len(i)] = stats.ssim(i, j).to("cpu", torch.float64)
        done += len(i)
    return out


def pair_batches(n: int, batch_pairs: int, device) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Index pairs i < j in row-major order, `batch_pairs` at a time (never all N^2 at once)."""
    if batch_pairs < 1:
        raise ValueError(f"batch_pairs={batch_pairs} must be at least 1")
    if batch_pairs >= n * (n - 1) // 2:  # one batch: the same pairs, without a search per pair
        i, j = torch.triu_indices(n, n, 1)
        yield i.to(device), j.to(device)
        return
    # Row i holds pairs first[i] .. first[i+1]-1; a flat pair index k falls in the last row starting at or before it.
    first = torch.cumsum(torch.arange(n - 1, 0, -1), 0) - torch.arange(n - 1, 0, -1)
    for start in range(0, n * (n - 1) // 2, batch_pairs):
        k = torch.arange(start, min(start + batch_pairs, n * (n - 1) // 2))
        i = torch.searchsorted(first, k, right=True) - 1
        j = k - first[i] + i + 1
        yield i.to(device), j.to(device)


def class_diversity(images_by_class: dict[str, object], data_range: float | None = None,
                    keep_values: bool = False, **ssim_kwargs) -> dict:
    """The paper's diversity measure: mean pairwise SSIM within each class (lower = more diverse).

    Returns per-class mean, SD (population, ddof=0) and pair count; `pooled`: over all pairs of all
    classes; `class_means`: mean and SD of the per-class means. With `keep_values`, also every pair's
    SSIM per class (for a distribution plot).
    """
    per_class, values = {}, {}
    for label, images in images_by_class.items():
        images = as_images(images, name=f"images of class {label!r}")
        if len(images) < 2:
            raise ValueError(f"class {label!r} has {len(images)} image(s); SSIM diversity needs at least 2 per class")
        v = pairwise_ssim(images, data_range, **ssim_kwargs)
        values[label] = v
        per_class[label] = {"mean": v.mean().item(), "sd": v.std(correction=0).item(), "pairs": len(v)}
    if not per_class:
        raise ValueError("class_diversity got no classes")
    pooled = torch.cat(list(values.values()))
    means = torch.tensor([c["mean"] for c in per_class.values()], dtype=torch.float64)
    result = {
        "classes": per_class,
        "pooled": {"mean": pooled.mean().item(), "sd": pooled.std(correction=0).item(), "pairs": len(pooled)},
        "class_means": {"mean": means.mean().item(), "sd": means.std(correction=0).item() if len(means) > 1 else 0.0},
    }
    if keep_values:
        result["values"] = {label: v.tolist() for label, v in values.items()}
    return result
