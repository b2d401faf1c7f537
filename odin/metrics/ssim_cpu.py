"""The per-pair part of SSIM as one fused loop for CPUs (numba), used by odin.metrics.ssim.

On a CPU, torch runs each elementwise step of the SSIM formula as its own pass over memory (about 20
per pair); this loop does the product, the separable window filter and the formula in one sweep, in
cache, vectorised along the image row, pairs spread over threads. Every loop over `w` is innermost so
LLVM vectorises it.

Cache blocking: a pair reads two images and four statistic maps, megabytes at 224x224 RGB, so going pair
by pair streams everything from RAM for every pair. Instead the image is cut into bands of rows; every
pair is scored on one band (of one channel) before the next, so each image's band is read from RAM
once and then reused from cache by all its N-1 pairs. A band needs k-1 extra rows above its last one
(the window), which is the cost of a band.
"""

from __future__ import annotations

import numba
import numpy as np


def use_torch_threads() -> None:
    """numba uses as many threads as torch (OMP_NUM_THREADS, torch.set_num_threads): one knob for both."""
    import torch

    numba.set_num_threads(max(1, min(numba.config.NUMBA_NUM_THREADS, torch.get_num_threads())))


CACHE_BUDGET = 4 << 20  # bytes of all images' band data that should stay in cache together


def band_rows(n_images: int, width: int, k: int, itemsize: int, out_h: int) -> int:
    """Output rows per band: as many as fit CACHE_BUDGET for all images (an image row plus 2 statistic rows)."""
    per_row = n_images * (width + 2 * (width - k + 1)) * itemsize
    rows = CACHE_BUDGET // max(1, per_row) - (k - 1)
    return int(min(out_h, max(4 * (k - 1), rows)))  # never so thin that the extra k-1 rows dominate


@numba.njit(parallel=True, fastmath=True, cache=True)
def pair_ssim(x, mean, b, first, second, taps, c1, c2, two_cov_norm, band, running, out):  # pragma: no cover
    """out[p] = SSIM of images first[p] and second[p]: x [N, C, H, W]; mean, b [N, C, H', W'] (valid maps).

    `running`: the taps are equal (the uniform window) and x is float64, so the vertical filter can be a
    sliding sum (its rounding drift over a few hundred rows is ~1e-14 in float64; float32 would drift).
    """
    channels, height, width = x.shape[1], x.shape[2], x.shape[3]
    k = taps.shape[0]
    vertical = np.ones(k, x.dtype) if running else taps  # a sliding sum is unweighted; scaled once per pixel
    scale = taps[0] if running else taps[0] / taps[0]
    out_h, out_w = height - k + 1, width - k + 1
    n_pairs = first.shape[0]
    sums = np.zeros(n_pairs, np.float64)
    for c in range(channels):
        for band_top in range(0, out_h, band):
            rows = min(band, out_h - band_top)
            for p in numba.prange(n_pairs):
                i, j = first[p], second[p]
                product = np.empty(width, x.dtype)
                across = np.empty((rows + k - 1, out_w), x.dtype)  # the product filtered along each row
                e_xy = np.empty(out_w, x.dtype)
                # Per-column sums of the SSIM map in float64: one vector add per row (a scalar running sum
                # would serialise the loop on the add's latency).
                column_sums = np.zeros(out_w, np.float64)
                for r in range(rows + k - 1):
                    xi, xj = x[i, c, band_top + r], x[j, c, band_top + r]
                    for w in range(width):
                        product[w] = xi[w] * xj[w]
                    _filter_row(product, taps, across[r])
                for r in range(rows):
                    if running and r > 0:  # equal taps: slide the window sum down a row, 2 ops instead of k
                        for w in range(out_w):
                            e_xy[w] += across[r + k - 1, w] - across[r - 1, w]
                    else:
                        _filter_rows(across, r, vertical, e_xy)
                    top = band_top + r
                    mi, mj, bi, bj = mean[i, c, top], mean[j, c, top], b[i, c, top], b[j, c, top]
                    for w in range(out_w):  # all in the images' dtype, so float32 stays 8 lanes wide
                        mean_product = mi[w] * mj[w]
                        covariance = e_xy[w] * scale - mean_product
                        numerator = (mean_product + mean_product + c1) * (two_cov_norm * covariance + c2)
                        column_sums[w] += numerator / ((mi[w] * mi[w] + mj[w] * mj[w] + c1) * (bi[w] + bj[w]))
                sums[p] += column_sums.sum()
    for p in range(n_pairs):
        out[p] = sums[p] / (channels * out_h * out_w)


@numba.njit(parallel=True, fastmath=True, cache=True)
def image_stats(x, taps, c2, cov_norm, mean, b):  # pragma: no cover - compiled
    """Each image's maps [N, C, H', W'] in one pass: local mean and b = variance + c2/2 (B2 = b_i + b_j).

    Filtered in float64 whatever x's dtype: E[x^2] - E[x]^2 cancels digits.
    """
    height, width = x.shape[2], x.shape[3]
    k = taps.shape[0]
    out_h, out_w = height - k + 1, width - k + 1
    for n in numba.prange(x.shape[0] * x.shape[1]):
        image, c = n // x.shape[1], n % x.shape[1]
        row, squares = np.empty(width), np.empty(width)
        across, across_sq = np.empty((height, out_w)), np.empty((height, out_w))
        m, sq = np.empty(out_w), np.empty(out_w)
        for r in range(height):
            source = x[image, c, r]
            for w in range(width):
                row[w] = source[w]
                squares[w] = row[w] * row[w]
            _filter_row(row, taps, across[r])
            _filter_row(squares, taps, across_sq[r])
        for r in range(out_h):
            _filter_rows(across, r, taps, m)
            _filter_rows(across_sq, r, taps, sq)
            mean_row, b_row = mean[image, c, r], b[image, c, r]
            for w in range(out_w):
                mean_row[w] = m[w]
                b_row[w] = cov_norm * (sq[w] - m[w] * m[w]) + c2 / 2


@numba.njit(fastmath=True, inline="always")
def _filter_row(row, taps, out):  # pragma: no cover - compiled
    """out[w] = sum_t taps[t] * row[w + t], one vectorised pass per tap."""
    for w in range(out.shape[0]):
        out[w] = row[w] * taps[0]
    for t in range(1, taps.shape[0]):
        for w in range(out.shape[0]):
            out[w] += row[w + t] * taps[t]


@numba.njit(fastmath=True, inline="always")
def _filter_rows(rows, top, taps, out):  # pragma: no cover - compiled
    """out[w] = sum_t taps[t] * rows[top + t, w]."""
    for w in range(out.shape[0]):
        out[w] = rows[top, w] * taps[0]
    for t in range(1, taps.shape[0]):
        filtered = rows[top + t]
        for w in range(out.shape[0]):
            out[w] += filtered[w] * taps[t]
