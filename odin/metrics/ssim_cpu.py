"""SSIM of many pairs as fused loops for CPUs (numba), used by odin.metrics.ssim.

On a CPU, torch runs each elementwise step of the SSIM formula as its own pass over memory (about 20
per pair); this loop does the product, the window filter and the formula row by row, in cache,
vectorised along the image row, chunks of pairs spread over threads. Every loop over `w` is innermost
so LLVM vectorises it, and `error_model="numpy"` lets it vectorise the division (Python's model checks
each divisor for zero, which keeps the loop scalar; SSIM's denominators are >= c1 * c2 > 0).

Per pair and row: the product of the two image rows enters a ring of the window's k rows; the vertical
window sum slides down (two operations a pixel for the uniform window, whatever k), then the horizontal
sum (the default 7-wide window written out, so it vectorises without a loop over taps), then the
formula, two pixels per division.

Cache: the images are cut into bands of rows, and every pair is scored on one band (of one channel)
before the next, so each image's band is read from RAM once and then reused from cache by all its
pairs; pairs go in row-major order, so one image stays in the nearest cache across consecutive pairs.
Each image's local means and variances are computed band by band too, just before the pairs use them,
into one band-sized buffer: whole maps (136 MB for 60 RGB images of 224 px) were fresh memory on every
call, and computing them took from a tenth of the pairs' time to more than all of it, depending on what
the process had allocated before (BENCHMARKS.md).
"""

from __future__ import annotations

import numba
import numpy as np


def use_torch_threads() -> None:
    """numba uses as many threads as torch (OMP_NUM_THREADS, torch.set_num_threads): one knob for both.

    numba's OpenMP layer starts on its first call and then sets the process's OpenMP thread count, torch's
    included, to its own maximum: torch's count is read before and given back after, so the first SSIM
    of a process runs on the threads asked for, and training after it keeps its own count."""
    import torch

    wanted = torch.get_num_threads()
    count = max(1, min(numba.config.NUMBA_NUM_THREADS, wanted))
    numba.set_num_threads(count)  # starts the layer (once a process)
    if torch.get_num_threads() != wanted:
        torch.set_num_threads(wanted)
        numba.set_num_threads(count)


CACHE_BUDGET = 12 << 20  # bytes of every image's band together: about what a last-level cache holds
CHUNKS_PER_THREAD = 32  # pair chunks handed out one at a time: a thread slowed by other processes does less


def band_rows(n_images: int, width: int, k: int, itemsize: int, out_h: int) -> int:
    """Output rows per band: as many as fit CACHE_BUDGET for all images (an image row plus 2 statistic rows)."""
    per_row = n_images * (width + 2 * (width - k + 1)) * itemsize
    rows = CACHE_BUDGET // max(1, per_row) - (k - 1)
    return int(min(out_h, max(4 * (k - 1), rows)))  # never so thin that the k-1 rows that start a band dominate


def pair_chunks(n_pairs: int, threads: int) -> np.ndarray:
    """Start of each chunk of consecutive pairs, and n_pairs last: about CHUNKS_PER_THREAD chunks a thread."""
    count = max(1, min(n_pairs, threads * CHUNKS_PER_THREAD))
    return np.linspace(0, n_pairs, count + 1).astype(np.int64)


def pair_ssim(x, first, second, taps, c1, c2, cov_norm, running, out) -> None:
    """out[p] = SSIM of images first[p] and second[p] (x [N, C, H, W]), band by band: each band's statistics
    of the images the pairs use, then the pairs on it; the chunks of pairs go to threads dynamically."""
    channels, height, width = x.shape[1:]
    k = len(taps)
    out_h = height - k + 1
    used = np.unique(np.concatenate([first, second]))
    band = band_rows(len(used), width, k, x.itemsize, out_h)
    mean, b = (np.empty((x.shape[0], band, width - k + 1), x.dtype) for _ in range(2))
    sums = np.zeros(len(first))
    chunks = pair_chunks(len(first), numba.get_num_threads())
    dtype = x.dtype.type  # constants in the images' precision: no float64 promotion in the loop
    with numba.parallel_chunksize(1):
        for c in range(channels):
            for top in range(0, out_h, band):
                rows = min(band, out_h - top)
                band_stats(x, used, c, top, rows, taps, c2, cov_norm, mean, b)
                _pair_band(x, c, top, rows, mean, b, first, second, chunks, taps, dtype(c1), dtype(c2),
                           dtype(2 * cov_norm), running, sums)
    out[:] = sums / (channels * out_h * (width - k + 1))


@numba.njit(parallel=True, fastmath=True, error_model="numpy", cache=True)
def _pair_band(x, c, band_top, rows, mean, b, first, second, chunks, taps, c1, c2, two_cov_norm, running,
               sums):  # pragma: no cover
    """Adds to sums[p] the SSIM map's sum over output rows band_top .. band_top+rows-1 of channel c for pair p;
    mean, b [N, >= rows, W']: the band's statistics (row r of the band at r). Pairs chunks[q] .. chunks[q+1]-1
    form chunk q, handed to a thread as a whole.

    `running`: the taps are equal (the uniform window) and x is float64, so the vertical filter can be a
    sliding sum (its rounding drift over a few hundred rows is ~1e-14 in float64; float32 would drift)
    and the taps' common value is applied once per pixel.
    """
    width = x.shape[3]
    k = taps.shape[0]
    out_w = width - k + 1
    scale = taps[0] * taps[0] if running else taps[0] / taps[0]
    weights = np.ones(k, x.dtype) if running else taps
    paired = x.itemsize == 8  # float64: two pixels share a division (see _row_sum)
    for q in numba.prange(chunks.shape[0] - 1):
        ring = np.empty((k, width), x.dtype)  # the window's k product rows; row t sits in slot t % k
        vertical = np.empty(width, x.dtype)
        e_xy = np.empty(out_w, x.dtype)
        for p in range(chunks[q], chunks[q + 1]):
            i, j = first[p], second[p]
            for t in range(k - 1):
                _product(x[i, c, band_top + t], x[j, c, band_top + t], ring[t])
            total = 0.0
            for r in range(rows):
                new, slot = band_top + r + k - 1, ring[(r + k - 1) % k]  # the slot of the row leaving
                if running and r > 0:
                    _slide(x[i, c, new], x[j, c, new], slot, vertical)
                else:
                    _product(x[i, c, new], x[j, c, new], slot)
                    _weighted_rows(ring, r, weights, vertical)
                if running and k == 7:
                    _sum7(vertical, e_xy)
                else:
                    _filter_row(vertical, weights, e_xy)
                total += _row_sum(e_xy, mean[i, r], mean[j, r], b[i, r], b[j, r], scale, c1, c2, two_cov_norm,
                                  paired)
            sums[p] += total  # each pair belongs to one chunk: no two threads add to the same sum


_inline = numba.njit(fastmath=True, error_model="numpy", inline="always")


@_inline
def _product(xi, xj, out):  # pragma: no cover - compiled
    for w in range(out.shape[0]):
        out[w] = xi[w] * xj[w]


@_inline
def _slide(xi, xj, slot, vertical):  # pragma: no cover - compiled
    """The window moves down a row: add the new row's product, subtract the leaving one's, keep the new."""
    for w in range(vertical.shape[0]):
        new = xi[w] * xj[w]
        vertical[w] += new - slot[w]
        slot[w] = new


@_inline
def _weighted_rows(ring, top, weights, out):  # pragma: no cover - compiled
    """out[w] = sum_t weights[t] * (product row top + t)[w], the rows taken from the ring."""
    k = weights.shape[0]
    for w in range(out.shape[0]):
        out[w] = ring[top % k, w] * weights[0]
    for t in range(1, k):
        row = ring[(top + t) % k]
        for w in range(out.shape[0]):
            out[w] += row[w] * weights[t]


@_inline
def _sum7(row, out):  # pragma: no cover - compiled
    """The default window's horizontal sum written out: a fixed sum vectorises, a loop over taps does not."""
    for w in range(out.shape[0]):
        out[w] = row[w] + row[w + 1] + row[w + 2] + row[w + 3] + row[w + 4] + row[w + 5] + row[w + 6]


@_inline
def _filter_row(row, taps, out):  # pragma: no cover - compiled
    """out[w] = sum_t taps[t] * row[w + t], one vectorised pass per tap."""
    for w in range(out.shape[0]):
        out[w] = row[w] * taps[0]
    for t in range(1, taps.shape[0]):
        for w in range(out.shape[0]):
            out[w] += row[w + t] * taps[t]


@_inline
def _row_sum(e_xy, mi, mj, bi, bj, scale, c1, c2, two_cov_norm, paired):  # pragma: no cover - compiled
    """Sum of one row of the SSIM map; `paired`: pixels w and w + half share a division, n1/d1 + n2/d2 =
    (n1 d2 + n2 d1) / (d1 d2), as a vector division takes as long as several multiplications.

    Each d lies between (K1 K2)^2 and ~2 times data_range^4, so d1 d2 stays inside float64's range for any
    data_range up to ~1e38; float32's range is too short for 16-bit data, so float32 divides pixel by pixel.
    """
    half = e_xy.shape[0] // 2 if paired else 0
    total = 0.0
    for w in range(half):
        n1, d1 = _terms(e_xy, mi, mj, bi, bj, w, scale, c1, c2, two_cov_norm)
        n2, d2 = _terms(e_xy, mi, mj, bi, bj, w + half, scale, c1, c2, two_cov_norm)
        total += (n1 * d2 + n2 * d1) / (d1 * d2)
    for w in range(2 * half, e_xy.shape[0]):
        n1, d1 = _terms(e_xy, mi, mj, bi, bj, w, scale, c1, c2, two_cov_norm)
        total += n1 / d1
    return total


@_inline
def _terms(e_xy, mi, mj, bi, bj, w, scale, c1, c2, two_cov_norm):  # pragma: no cover - compiled
    """Numerator and denominator of the SSIM map at w, in the images' dtype (float32 stays 8 lanes wide)."""
    mean_product = mi[w] * mj[w]
    covariance = e_xy[w] * scale - mean_product
    numerator = (mean_product + mean_product + c1) * (two_cov_norm * covariance + c2)
    return numerator, (mi[w] * mi[w] + mj[w] * mj[w] + c1) * (bi[w] + bj[w])


@numba.njit(parallel=True, fastmath=True, cache=True)
def band_stats(x, images, c, band_top, rows, taps, c2, cov_norm, mean, b):  # pragma: no cover - compiled
    """For each image n of `images`, channel c: mean[n, r] = the local mean of output row band_top + r and
    b[n, r] = its variance + c2/2 (B2 = b_i + b_j), for r < rows.

    Filtered in float64 whatever x's dtype: E[x^2] - E[x]^2 cancels digits.
    """
    width = x.shape[3]
    k = taps.shape[0]
    out_w = width - k + 1
    for q in numba.prange(images.shape[0]):
        image = images[q]
        row, squares = np.empty(width), np.empty(width)
        across, across_sq = np.empty((rows + k - 1, out_w)), np.empty((rows + k - 1, out_w))
        m, sq = np.empty(out_w), np.empty(out_w)
        for r in range(rows + k - 1):
            source = x[image, c, band_top + r]
            for w in range(width):
                row[w] = source[w]
                squares[w] = row[w] * row[w]
            _filter_row(row, taps, across[r])
            _filter_row(squares, taps, across_sq[r])
        for r in range(rows):
            _filter_rows(across, r, taps, m)
            _filter_rows(across_sq, r, taps, sq)
            mean_row, b_row = mean[image, r], b[image, r]
            for w in range(out_w):
                mean_row[w] = m[w]
                b_row[w] = cov_norm * (sq[w] - m[w] * m[w]) + c2 / 2


@_inline
def _filter_rows(rows, top, taps, out):  # pragma: no cover - compiled
    """out[w] = sum_t taps[t] * rows[top + t, w]."""
    for w in range(out.shape[0]):
        out[w] = rows[top, w] * taps[0]
    for t in range(1, taps.shape[0]):
        filtered = rows[top + t]
        for w in range(out.shape[0]):
            out[w] += filtered[w] * taps[t]
