"""Pairwise SSIM: odin.metrics.ssim against scikit-image's structural_similarity, in the same run.

Both score the same images with the same settings (skimage's defaults: 7x7 uniform window, sample
covariance, border cropped); odin scores all N*(N-1)/2 pairs in one call (its per-image statistics
included), scikit-image a spread subset of them (its pairs/s does not depend on N). The two sides
alternate (skimage first, then odin first, ...) and the ratio printed is the median over repeats of
each repeat's pairs/s ratio, so a load that drifts on a shared machine touches both sides alike.
Each case runs with 1 and with 2 threads (torch's count, which numba follows; scikit-image uses one
whatever the count). The values must agree to 1e-12 in float64. Raw timings go to --out.

    python benchmarks/bench_ssim.py                      # 100 gray 64x64 images, 60 RGB 224x224 ones
    python benchmarks/bench_ssim.py --threads 1 --repeats 11
    python benchmarks/bench_ssim.py --toy                # seconds: tiny images, 2 repeats, no file unless --out

The goal (issue 25): >= 20x at both sizes, with 1 thread and with 2.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch
from skimage.metrics import structural_similarity

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from odin.metrics.ssim import pairwise_ssim  # noqa: E402

TOLERANCE = {"float64": 1e-12, "float32": 1e-4}


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


def bench(n: int, channels: int, size: int, threads: int, dtype: str, skimage_pairs: int, repeats: int) -> dict:
    """One case: alternating timed repeats of both sides; returns the raw record."""
    torch.set_num_threads(threads)
    images = smooth_images(n, channels, size)
    pairs = list(itertools.combinations(range(n), 2))
    sk_pairs = pairs[:: max(1, len(pairs) // skimage_pairs)]
    kw = {"channel_axis": 0} if channels > 1 else {}
    ims = images if channels > 1 else images[:, 0]
    tensor = torch.from_numpy(images)
    pairwise_ssim(tensor[:3], 1.0, dtype=getattr(torch, dtype))  # compiles (or loads) the numba loops

    def skimage_side():
        return [structural_similarity(ims[i], ims[j], data_range=1.0, **kw) for i, j in sk_pairs]

    def odin_side():
        return pairwise_ssim(tensor, 1.0, dtype=getattr(torch, dtype))

    sides = {"skimage": skimage_side, "odin": odin_side}
    times: dict[str, list[float]] = {"skimage": [], "odin": []}
    cpu: dict[str, list[float]] = {"skimage": [], "odin": []}
    results = {}
    for repeat in range(repeats):
        for side in (("skimage", "odin") if repeat % 2 == 0 else ("odin", "skimage")):
            wall, process = time.perf_counter(), time.process_time()
            results[side] = sides[side]()
            times[side].append(time.perf_counter() - wall)
            cpu[side].append(time.process_time() - process)
    index = {p: k for k, p in enumerate(pairs)}
    diff = max(abs(results["odin"][index[p]].item() - r) for p, r in zip(sk_pairs, results["skimage"], strict=True))
    ratios = [(len(pairs) / o) / (len(sk_pairs) / s) for o, s in zip(times["odin"], times["skimage"], strict=True)]
    return {"images": n, "channels": channels, "size": size, "threads": threads, "dtype": dtype,
            "pairs": len(pairs), "skimage_pairs": len(sk_pairs), "repeats": repeats,
            "odin_s": times["odin"], "skimage_s": times["skimage"],
            "odin_cpu_s": cpu["odin"], "skimage_cpu_s": cpu["skimage"],
            "ratios": ratios, "ratio": statistics.median(ratios),
            "odin_pairs_per_s": len(pairs) / statistics.median(times["odin"]),
            "skimage_pairs_per_s": len(sk_pairs) / statistics.median(times["skimage"]),
            "max_abs_diff": diff}


def line(r: dict) -> str:
    return (f"{r['images']} images {r['channels']}x{r['size']}x{r['size']}, {r['threads']} thread(s), {r['dtype']}: "
            f"odin {r['odin_pairs_per_s']:,.0f} pairs/s ({r['pairs']} pairs), skimage "
            f"{r['skimage_pairs_per_s']:,.0f} pairs/s ({r['skimage_pairs']} pairs): ratio {r['ratio']:.1f}x "
            f"(median of {r['repeats']}, range {min(r['ratios']):.1f}-{max(r['ratios']):.1f}); "
            f"max |diff| {r['max_abs_diff']:.1e}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="64,224", help="image sides, comma separated")
    parser.add_argument("--channels", default=None, help="channels per size (default: 1 below 128 px, else 3)")
    parser.add_argument("--images", default="100,60", help="images per size (the last one repeats)")
    parser.add_argument("--threads", default="1,2", help="thread counts, comma separated")
    parser.add_argument("--dtypes", default="float64", help="float64 (the default's), float32")
    parser.add_argument("--skimage-pairs", type=int, default=300, help="pairs scikit-image scores per repeat")
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--out", default=None, help="raw results (default: benchmarks/results/bench_ssim.json; "
                                                     "with --toy, none)")
    parser.add_argument("--toy", action="store_true", help="tiny images and 2 repeats: a test runs it in seconds")
    args = parser.parse_args()
    if args.toy:
        args.sizes, args.channels, args.images, args.repeats, args.skimage_pairs = "16,24", "1,3", "6", 2, 5
    out = args.out or (None if args.toy else str(ROOT / "benchmarks" / "results" / "bench_ssim.json"))
    sizes = [int(s) for s in args.sizes.split(",")]
    counts = [int(s) for s in args.images.split(",")]
    counts += [counts[-1]] * (len(sizes) - len(counts))
    channels = ([int(c) for c in args.channels.split(",")] if args.channels
                else [1 if s < 128 else 3 for s in sizes])
    channels += [channels[-1]] * (len(sizes) - len(channels))
    load_before = os.getloadavg()
    print(f"torch {torch.__version__}, {os.cpu_count()} CPUs, load {load_before[0]:.2f} {load_before[1]:.2f} "
          f"{load_before[2]:.2f} (1, 5, 15 min)", flush=True)
    records = []
    for (size, n, c), threads, dtype in itertools.product(zip(sizes, counts, channels, strict=True),
                                                           [int(t) for t in args.threads.split(",")],
                                                           args.dtypes.split(",")):
        records.append(bench(n, c, size, threads, dtype, args.skimage_pairs, args.repeats))
        print(line(records[-1]), flush=True)
    load_after = os.getloadavg()
    print(f"load after: {load_after[0]:.2f} {load_after[1]:.2f} {load_after[2]:.2f}")
    if out:
        Path(out).parent.mkdir(parents=True, exist_ok=True)
        Path(out).write_text(json.dumps({
            "command": " ".join(sys.argv), "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
            "machine": {"cpus": os.cpu_count(), "processor": platform.processor() or platform.machine(),
                        "load_before": load_before, "load_after": load_after},
            "versions": {"torch": torch.__version__, "numpy": np.__version__,
                         "skimage": __import__("skimage").__version__, "numba": __import__("numba").__version__},
            "results": records}, indent=2) + "\n")
        print(f"raw results: {out}")
    bad = [r for r in records if r["max_abs_diff"] > TOLERANCE.get(r["dtype"], 1e-4)]
    if bad:
        raise SystemExit(f"odin's SSIM disagrees with scikit-image: {[line(r) for r in bad]}")


if __name__ == "__main__":
    main()
