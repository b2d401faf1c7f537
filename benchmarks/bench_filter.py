"""The image filter's cost next to generation's: CLIP scoring vs the glyph backend, same images, CPU.

    python benchmarks/bench_filter.py [--images 200] [--size 64] [--models tiny,b32] [--repeats 3]
    python benchmarks/bench_filter.py --toy     # seconds: 10 images at 32 px, the tiny CLIP, 1 repeat

Makes `--images` glyph images of the ten digits (the embedded default's backend, 64 px), then
scores the same images against the ten labels with ClipFilter: a tiny random CLIP and CLIP
ViT-B/32's real architecture (151.3 M params, random weights: speed does not depend on them),
both built from configs and saved to a temp folder, nothing downloaded. Prints the median
seconds of each and the ratio filter / generation. Model loading is timed apart (once per run).
Threads: torch uses OMP_NUM_THREADS (set it, e.g. 1, to compare with the single-threaded glyph
backend on a shared machine).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]  # this checkout's odin, and the tiny test models

import torch  # noqa: E402
from tiny_clip import build_tiny_clip  # noqa: E402

from odin.filter import ClipFilter, _load_clip  # noqa: E402
from odin.generate.glyph import DIGIT_NAMES, GlyphGenerator  # noqa: E402
from odin.store import derive_seed  # noqa: E402

STYLES = ["handwritten", "bold font", "italic serif", "thin pencil, tilted", "messy marker"]


def generate(n: int, size: int) -> tuple[list, list[str], float]:
    backend = GlyphGenerator(size=size, images_per_prompt=1, batch_size=64)
    per_label = -(-n // len(DIGIT_NAMES))
    images, labels = [], []
    start = time.perf_counter()
    for label in DIGIT_NAMES:
        prompts = [f"a photo of one {label} digit, {STYLES[i % len(STYLES)]}" for i in range(per_label)]
        seeds = [derive_seed(0, label, i) for i in range(per_label)]
        images += [g.image for g in backend(label, prompts, seeds)]
        labels += [label] * per_label
    return images[:n], labels[:n], time.perf_counter() - start


def score(filt: ClipFilter, images: list, labels: list[str]) -> tuple[float, int]:
    start = time.perf_counter()
    kept = 0
    for label in DIGIT_NAMES:
        mine = [im for im, lab in zip(images, labels, strict=True) if lab == label]
        kept += sum(d.kept for d in filt(label, mine, DIGIT_NAMES))
    return time.perf_counter() - start, kept


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--images", type=int, default=200)
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--models", default="tiny,b32")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--toy", action="store_true", help="10 images at 32 px, the tiny CLIP only, 1 repeat")
    args = parser.parse_args()
    if args.toy:
        args.images, args.size, args.models, args.repeats, args.device = 10, 32, "tiny", 1, "cpu"
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, device {args.device}; "
          f"{args.images} glyph images at {args.size} px, 10 labels; medians of {args.repeats}")

    runs = [generate(args.images, args.size) for _ in range(args.repeats)]
    images, labels = runs[0][:2]
    gen_s = statistics.median(r[2] for r in runs)
    print(f"{'glyph generation':<28} {gen_s:8.2f} s  ({1000 * gen_s / args.images:.1f} ms/image)")

    with tempfile.TemporaryDirectory() as tmp:
        for name in args.models.split(","):
            folder = build_tiny_clip(Path(tmp) / f"clip-{name}", size=name)
            start = time.perf_counter()
            filt = ClipFilter(str(folder), batch_size=args.batch_size, device=args.device)
            model = _load_clip(filt.model, args.device)[0]
            load_s = time.perf_counter() - start
            params = sum(p.numel() for p in model.parameters()) / 1e6
            if name == "b32":
                assert abs(params - 151.3) < 0.2, f"not CLIP ViT-B/32: {params:.1f} M params"
            score(filt, images[:4], labels[:4])  # warm-up (first-call allocations)
            times = [score(filt, images, labels) for _ in range(args.repeats)]
            filt_s = statistics.median(t for t, _ in times)
            print(f"{'filter ' + name + f' ({params:.1f} M)':<28} {filt_s:8.2f} s  "
                  f"({1000 * filt_s / args.images:.1f} ms/image, load {load_s:.1f} s, kept {times[0][1]}/"
                  f"{args.images} - random weights)  ratio filter/generation = {filt_s / gen_s:.2f}")


if __name__ == "__main__":
    main()
