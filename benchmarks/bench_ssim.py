"""Pairwise SSIM: odin.metrics.ssim (torch, batched) vs scikit-image's structural_similarity, same run.

Both score the same N*(N-1)/2 pairs of the same images with the same settings (skimage's defaults:
7x7 uniform window, sample covariance); the script checks they agree within 1e-4 and prints pairs/s
and the ratio. The goal in issue 14 is >= 20x on CPU.
    python benchmarks/bench_ssim.py                       # 60 gray 64x64 images, then 60 RGB 224x224 ones
    python benchmarks/bench_ssim.py --sizes 224 --channels 3 --images 60 --device cuda
scikit-image is timed on a subset of the pairs when there are many (its pairs/s does not depend on N).
"""

from __future__ import annotations

import argparse
import itertools
import os
import time

import numpy as np
import torch
from skimage.metrics import structural_similarity

from odin.metrics.ssim import pairwise_ssim


def smooth_images(n: int, channels: int, size: int, seed: int = 0) -> np.ndarray:
    """Real-looking images: random gradients, a disc and some noise, in [0, 1]."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size] / size
    out = np.empty((n, channels, size, size))
    for k, c in itertools.product(range(n), range(channels)):
        a, b, cx, cy, r = rng.random(5)
        disc = ((xx - cx) ** 2 + (yy - cy) ** 2 < (0.3 * r) ** 2) * rng.random()
        out[k, c] = np.clip(0.5 * (a * xx + b * yy) + disc + 0.05 * rng.standard_normal((size, size)), 0, 1)
    return out


def bench(n: int, channels: int, size: int, device: str, dtype: torch.dtype, max_skimage_pairs: int,
          repeats: int) -> None:
    images = smooth_images(n, channels, size)
    pairs = list(itertools.combinations(range(n), 2))
    sk_pairs = pairs[:: max(1, len(pairs) // max_skimage_pairs)]
    kw = {"channel_axis": 0} if channels > 1 else {}
    ims = images if channels > 1 else images[:, 0]
    tensor = torch.from_numpy(images)
    pairwise_ssim(tensor[:3], 1.0, device=device, dtype=dtype)  # warm-up: compiles the CPU loop, CUDA context

    def skimage_side():
        return [structural_similarity(ims[i], ims[j], data_range=1.0, **kw) for i, j in sk_pairs]

    def torch_side():
        out = pairwise_ssim(tensor, 1.0, device=device, dtype=dtype)
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        return out

    # Alternate the two sides and keep each one's best run: on a shared machine the best is the one least
    # disturbed by other processes. CPU time (all threads of this process) is printed too: it measures the
    # work each side does, which other processes disturb far less than the wall clock.
    walls, cpus = {"odin": [], "skimage": []}, {"odin": [], "skimage": []}
    for _ in range(repeats):
        for side, fn in (("skimage", skimage_side), ("odin", torch_side)):
            wall, cpu = time.perf_counter(), time.process_time()
            result = fn()
            walls[side].append(time.perf_counter() - wall)
            cpus[side].append(time.process_time() - cpu)
            if side == "skimage":
                reference = result
            else:
                ours = result
    index = {p: k for k, p in enumerate(pairs)}
    diff = max(abs(ours[index[p]].item() - r) for p, r in zip(sk_pairs, reference, strict=True))
    rate = {"odin": len(pairs), "skimage": len(sk_pairs)}
    wall_rate = {side: rate[side] / min(walls[side]) for side in rate}
    cpu_rate = {side: rate[side] / min(cpus[side]) for side in rate}
    print(f"{n} images {channels}x{size}x{size}, {len(pairs)} pairs, {device} {str(dtype).split('.')[-1]}: "
          f"odin {wall_rate['odin']:,.0f} pairs/s, skimage {wall_rate['skimage']:,.0f} pairs/s "
          f"({len(sk_pairs)} pairs): wall-clock ratio {wall_rate['odin'] / wall_rate['skimage']:.1f}x, "
          f"CPU-time ratio {cpu_rate['odin'] / cpu_rate['skimage']:.1f}x (best of {repeats}); "
          f"max |diff| {diff:.1e}")
    if diff > 1e-4:
        raise SystemExit(f"torch SSIM disagrees with scikit-image by {diff:.2e} (> 1e-4)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="64,224", help="image sides, comma separated")
    parser.add_argument("--channels", default=None, help="channels per size (default: 1 for 64, 3 for 224)")
    parser.add_argument("--images", default="60", help="images per size")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--dtypes", default="float64,float32")
    parser.add_argument("--max-skimage-pairs", type=int, default=300)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    counts = [int(s) for s in args.images.split(",")]
    counts += [counts[-1]] * (len(sizes) - len(counts))
    channels = ([int(c) for c in args.channels.split(",")] if args.channels
                else [1 if s < 128 else 3 for s in sizes])
    channels += [channels[-1]] * (len(sizes) - len(channels))
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads "
          f"(OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', 'unset')}), {os.cpu_count()} CPUs")
    for size, n, c in zip(sizes, counts, channels, strict=True):
        for dtype in args.dtypes.split(","):
            bench(n, c, size, args.device, getattr(torch, dtype), args.max_skimage_pairs, args.repeats)


if __name__ == "__main__":
    main()
