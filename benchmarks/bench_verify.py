"""What the store's integrity checks cost per image, next to what reading and decoding cost anyway.

    python benchmarks/bench_verify.py [--images 40] [--size 768] [--units 1000]
    python benchmarks/bench_verify.py --toy      # a second: 3 images at 64 px, 10 units (a test runs it)

Writes `--images` photo-like PNGs (smooth colour fields plus noise, ~1.4 MB at 768 px, like a Stable
Diffusion output) and prepared arrays (3 x 224 x 224 float32), then times per image (best of 5, files
in the page cache): a stat (the every-run check: size and modification time), reading the bytes, reading
and hashing them (sha256, and blake2b for comparison: sha256 has CPU instructions on x86 and ARM), a full
PIL decode; np.load of a prepared array and the finite check on it; and the metadata.jsonl check
(reading `--units` unit records and comparing the index they make).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image


def best_ms(fn, items, repeats: int = 5) -> float:
    best = float("inf")
    for _ in range(repeats):
        started = time.perf_counter()
        for item in items:
            fn(item)
        best = min(best, (time.perf_counter() - started) / len(items))
    return best * 1e3


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--images", type=int, default=40)
    parser.add_argument("--size", type=int, default=768)
    parser.add_argument("--units", type=int, default=1000)
    parser.add_argument("--toy", action="store_true", help="3 images at 64 px, 10 units")
    args = parser.parse_args()
    if args.toy:
        args.images, args.size, args.units = 3, 64, 10
    rng = np.random.default_rng(0)
    y, x = np.mgrid[0:args.size, 0:args.size] / args.size
    field = np.stack([np.sin(6 * x + 3 * y), np.cos(5 * y), np.sin(4 * x * y)], -1) * 90 + 128
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        pngs, arrays = [], []
        for i in range(args.images):
            image = np.clip(np.roll(field, i, 0) + rng.normal(0, 12, field.shape), 0, 255).astype(np.uint8)
            pngs.append(root / f"{i}.png")
            Image.fromarray(image).save(pngs[-1])
            arrays.append(root / f"{i}.npy")
            np.save(arrays[-1], rng.random((3, 224, 224), dtype=np.float32))

        def decode(path):
            with Image.open(path) as im:
                im.load()

        size = pngs[0].stat().st_size
        stat = best_ms(os.stat, pngs)
        read = best_ms(Path.read_bytes, pngs)
        sha = best_ms(lambda p: hashlib.sha256(p.read_bytes()).hexdigest(), pngs)
        blake = best_ms(lambda p: hashlib.blake2b(p.read_bytes(), digest_size=16).hexdigest(), pngs)
        dec = best_ms(decode, pngs)
        load = best_ms(np.load, arrays)
        finite = best_ms(lambda p: np.isfinite(np.load(p)).all(), arrays)
        units = root / "units"
        units.mkdir()
        for u in range(args.units):
            (units / f"u{u:05d}.jsonl").write_text("".join(json.dumps({"file_name": f"x/u{u}_i{i}.png", "bytes": 1,
                                                                        "sha256": "0" * 64}) + "\n"
                                                             for i in range(18)))
        index = "".join(p.read_text() for p in sorted(units.glob("*.jsonl")))
        (root / "metadata.jsonl").write_text(index)
        started = time.perf_counter()
        same = (root / "metadata.jsonl").read_text() == "".join(p.read_text() for p in sorted(units.glob("*.jsonl")))
        index_ms = (time.perf_counter() - started) * 1e3
    print(f"{args.size} px PNG ({size / 1e6:.2f} MB), per image, best of 5:")
    print(f"  stat {stat:.4f} ms | read {read:.3f} ms | read+sha256 {sha:.3f} ms | read+blake2b {blake:.3f} ms | "
          f"decode {dec:.2f} ms")
    print(f"  sha256 over reading: +{sha - read:.3f} ms = {100 * (sha - read) / dec:.1f}% of a decode; "
          f"hash at export instead of a hard link: +{sha:.3f} ms")
    print(f"prepared 3x224x224 float32: np.load {load:.3f} ms, + finite check {finite - load:.3f} ms "
          f"({100 * (finite - load) / load:.0f}% of the load)")
    print(f"metadata.jsonl check over {args.units} unit records: {index_ms:.1f} ms per stage and run (match={same})")


if __name__ == "__main__":
    main()
