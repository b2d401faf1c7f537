"""The per-pair part of SSIM as one fused loop for CPUs (numba), used by odin.metrics.ssim.

On a CPU, torch runs each elementwise step of the SSIM formula as its own pass over memory (about 20
per pair); this loop does the product, the separable window filter and the formula in one sweep per
image row, in L1 cache, vectorised along the row, pairs spread over threads. Every loop over `w` is
innermost so LLVM vectorises it.
"""

from __future__ import annotations

import numba
import numpy as np


@numba.njit(parallel=True, fastmath=True, cache=True)
def pair_ssim(x, mean, a, b, first, second, taps, c1, c2, two_cov_norm, out):  # pragma: no cover - compiled
    """out[p] = SSIM of images first[p] and second[p]: x [N, C, H, W]; mean, a, b [N, C, H', W'] (valid maps)."""
    channels, height, width = x.shape[1], x.shape[2], x.shape[3]
    k = taps.shape[0]
    out_h, out_w = height - k + 1, width - k + 1
    for p in numba.prange(first.shape[0]):
        i, j = first[p], second[p]
        product = np.empty(width, x.dtype)
        # The last k rows of the product filtered along the row: a ring that stays in L1 cache.
        ring = np.empty((k, out_w), x.dtype)
        e_xy = np.empty(out_w, x.dtype)
        # Per-column sums of the SSIM map, in float64; one vector add per row (a scalar running sum would
        # serialise the loop on the add's latency).
        column_sums = np.zeros(out_w, np.float64)
        for c in range(channels):
            for r in range(height):
                xi, xj, filtered = x[i, c, r], x[j, c, r], ring[r % k]
                for w in range(width):
                    product[w] = xi[w] * xj[w]
                for w in range(out_w):
                    filtered[w] = product[w] * taps[0]
                for t in range(1, k):
                    for w in range(out_w):
                        filtered[w] += product[w + t] * taps[t]
                top = r - k + 1  # the output row whose window ends at input row r
                if top < 0:
                    continue
                for w in range(out_w):
                    e_xy[w] = ring[top % k, w] * taps[0]
                for t in range(1, k):
                    filtered = ring[(top + t) % k]
                    for w in range(out_w):
                        e_xy[w] += filtered[w] * taps[t]
                mi, mj, ai, aj = mean[i, c, top], mean[j, c, top], a[i, c, top], a[j, c, top]
                bi, bj = b[i, c, top], b[j, c, top]
                for w in range(out_w):  # all in the images' dtype, so float32 stays 8 lanes wide
                    mean_product = mi[w] * mj[w]
                    numerator = (mean_product + mean_product + c1) * (two_cov_norm * (e_xy[w] - mean_product) + c2)
                    column_sums[w] += numerator / ((ai[w] + aj[w]) * (bi[w] + bj[w]))
        out[p] = column_sums.sum() / (channels * out_h * out_w)
