"""The cost of attention heatmaps: the same pipeline with and without localization, in one run.

CPU (anywhere, seconds): the tiny random-weight Stable Diffusion of the tests.
    python benchmarks/bench_localize.py
CPU, SD 2.1's real architecture (random weights; minutes: builds a 1.3 B-parameter pipeline):
    python benchmarks/bench_localize.py --arch sd21 --size 256 --steps 2 --repeats 3
GPU: SD 2.1's architecture, bf16, 768x768 (the issue's goal: at most 15% overhead).
    python benchmarks/bench_localize.py --gpu [--steps 20] [--batch 4]
Toy (a test runs it in seconds): --toy [--store], the tiny pipeline, 1 step, 2 images, 1 pair.
Add --store to time what a run does instead: ODIN's diffusers backend making one unit of work into a
fresh store, with and without localize=attention (PNG files, and heatmap files beside them).

Both sides make the same images from the same prompts, generators and loaded pipeline; the
localized side also wraps the cross-attention processors and reads the heatmaps out at the image
size. The two alternate; the median of the per-pair time ratios is reported and, steadier on a
shared CPU, the time spent in the added work itself (`AttentionHeatmaps.add`, clocked on CPU only,
where it runs synchronously) over the plain call's time.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("ODIN_PROGRESS", "0")  # the store's progress bar would interleave with the figures
ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]  # this checkout's odin, and the tiny test models
sys.path.insert(0, str(Path(__file__).resolve().parent))

import numpy as np  # noqa: E402
import torch  # noqa: E402

from odin.localize.attention import AttentionHeatmaps  # noqa: E402

IN_ADD = [0.0]  # wall seconds inside AttentionHeatmaps.add (CPU: synchronous, so this is its cost)


def clock_add() -> None:
    add = AttentionHeatmaps.add

    def timed_add(self, *args):
        start = time.perf_counter()
        try:
            return add(self, *args)
        finally:
            IN_ADD[0] += time.perf_counter() - start

    AttentionHeatmaps.add = timed_add


def build(arch: str, tmp: Path, device: str, dtype: torch.dtype):
    from diffusers import StableDiffusionPipeline

    if arch == "tiny":
        from tiny_sd import build_tiny_sd

        pipe = StableDiffusionPipeline.from_pretrained(build_tiny_sd(tmp / "tiny-sd"))
    else:
        from bench_generate import sd21_pipeline  # SD 2.1's UNet, VAE and text encoder from configs

        pipe = sd21_pipeline(tmp / "tokenizer-src")
    pipe.set_progress_bar_config(disable=True)
    return pipe.to(device) if dtype == torch.float32 else pipe.to(device=device, dtype=dtype)


def generate(pipe, prompts: list[str], size: int, steps: int, localize: bool) -> tuple[float, float]:
    """(wall seconds, of which inside AttentionHeatmaps.add)"""
    generators = [torch.Generator("cpu").manual_seed(i) for i in range(len(prompts))]
    kwargs = {"num_inference_steps": steps, "height": size, "width": size, "guidance_scale": 7.5}
    start, inside = time.perf_counter(), IN_ADD[0]
    if localize:
        with AttentionHeatmaps(pipe, "cat", prompts) as maps:
            images = pipe(prompt=prompts, generator=generators, **kwargs).images
        heat = maps.heatmaps((size, size))
        assert len(heat) == len(images) and heat[0].shape == (size, size)
    else:
        pipe(prompt=prompts, generator=generators, **kwargs)  # PIL images: the device is done
    return time.perf_counter() - start, IN_ADD[0] - inside


def through_store(pipe, tmp: Path, size: int, steps: int, batch: int, localize: bool) -> tuple[float, float]:
    """(wall seconds, of which inside AttentionHeatmaps.add) of Store.images making one unit of `batch`
    images into a fresh store, the way `python run.py task=formulate [localize=attention]` does."""
    from odin.generate import diffusers_backend
    from odin.generate.diffusers_backend import DiffusersGenerator
    from odin.prompts import LabelPrompts
    from odin.store import Store

    gen = DiffusersGenerator(model="bench", steps=steps, height=size, width=size, images_per_prompt=batch,
                             batch_size=batch, safety_checker=False, device=str(pipe.device),
                             dtype=str(pipe.unet.dtype).removeprefix("torch."))
    diffusers_backend._loaded = (gen._settings(), pipe)  # the built pipeline, as if loaded from "bench"
    store = Store(Path(tempfile.mkdtemp(dir=tmp)))
    start, inside = time.perf_counter(), IN_ADD[0]
    folder = store.images({"model": "bench"}, gen, {"cat": LabelPrompts("cat", ["a photo of one cat"])}, seed=0,
                          heatmaps=localize)
    elapsed = time.perf_counter() - start
    assert folder.made == batch and all(bool(r.get("heatmap")) == localize for r in folder.rows)
    shutil.rmtree(store.root)
    return elapsed, IN_ADD[0] - inside


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--gpu", action="store_true", help="SD 2.1 architecture on CUDA, bf16, 768x768")
    ap.add_argument("--arch", choices=["tiny", "sd21"], default=None, help="tiny (CPU default) or sd21")
    ap.add_argument("--size", type=int, default=None, help="image side (tiny 64, sd21 256 on CPU, 768 on GPU)")
    ap.add_argument("--steps", type=int, default=None, help="denoising steps (CPU 4, GPU 20)")
    ap.add_argument("--batch", type=int, default=None, help="images per pipeline call (CPU 6, GPU 4)")
    ap.add_argument("--repeats", type=int, default=None, help="timed pairs (CPU 10, GPU 3)")
    ap.add_argument("--threads", type=int, default=1, help="CPU torch threads (1: steady on a shared box)")
    ap.add_argument("--store", action="store_true", help="time ODIN's backend + store (files included)")
    ap.add_argument("--toy", action="store_true", help="CPU, tiny pipeline, 1 step, 2 images, 1 pair")
    args = ap.parse_args()
    if args.toy:
        args.gpu, args.arch, args.steps, args.batch, args.repeats = False, "tiny", 1, 2, 1
    arch = "sd21" if args.gpu else args.arch or "tiny"
    device, dtype = ("cuda", torch.bfloat16) if args.gpu else ("cpu", torch.float32)
    size = args.size or (768 if args.gpu else 256 if arch == "sd21" else 64)
    steps, batch = args.steps or (20 if args.gpu else 4), args.batch or (4 if args.gpu else 6)
    repeats = args.repeats or (3 if args.gpu else 20)
    if args.gpu and not torch.cuda.is_available():
        raise SystemExit("--gpu needs a CUDA device")
    torch.set_num_threads(args.threads)
    tmp = Path(tempfile.mkdtemp(prefix="odin-bench-localize-"))
    try:
        pipe = build(arch, tmp, device, dtype)
        name = torch.cuda.get_device_name() if args.gpu else f"CPU, torch threads {torch.get_num_threads()}"
        prompts = [f"a photo of one cat, style {i}" for i in range(batch)]
        what = "ODIN's backend + store, one unit per call" if args.store else "the pipeline alone"
        print(f"{name}; {arch} pipeline, {size}x{size}, {steps} steps, guidance 7.5, {batch} images per call, "
              f"{what}; medians over {repeats} alternating pairs")  # fmt: skip

        def call(localize: bool) -> tuple[float, float]:
            if args.store:
                return through_store(pipe, tmp, size, steps, batch, localize)
            return generate(pipe, prompts, size, steps, localize)

        call(True)  # warm-up: kernels, caches, allocator
        call(False)
        if not args.gpu:
            clock_add()
        pairs = []
        for _ in range(repeats):
            pairs.append((call(False), call(True)))
        plain = statistics.median(a[0] for a, _ in pairs)
        located = statistics.median(b[0] for _, b in pairs)
        ratios = [round(b[0] / a[0], 3) for a, b in pairs]
        inside = np.median([b[1] / a[0] for a, b in pairs])
        added = "" if args.gpu else f"; time inside the added work {100 * inside:.1f}%"
        memory = f"; peak memory {torch.cuda.max_memory_allocated() / 2**30:.1f} GiB" if args.gpu else ""
        print(
            f"plain {batch / plain:.3f} img/s, with heatmaps {batch / located:.3f} img/s; with/without time ratio "
            f"{np.median(ratios):.3f} (per pair {ratios}): localization overhead "
            f"{100 * (np.median(ratios) - 1):+.1f}% of the plain call's time{added}{memory}"
        )
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
