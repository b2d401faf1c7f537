"""The image filter inside a run: filter_s next to generate_s from one run's metrics (embedded digits, CPU).

    OMP_NUM_THREADS=1 python benchmarks/bench_filter_run.py [--models tiny,b32] [--prompts 10] [--images 10]
    python benchmarks/bench_filter_run.py --toy     # the tiny CLIP, 1 prompt x 2 images (a test runs it)

One label (seven), so a random-weight CLIP keeps every image (its own label is the only candidate and
no threshold is set): the run scores each image once and replaces none, which is the filter's floor
cost. Each model is built from configs with random weights (tests/tiny_clip.py; b32 is CLIP ViT-B/32's
architecture), nothing downloaded. Each run has a fresh store, so generation is timed too.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("ODIN_PROGRESS", "0")
ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from hydra import compose, initialize_config_dir  # noqa: E402
from tiny_clip import build_tiny_clip  # noqa: E402

from odin.config import register_configs  # noqa: E402
from odin.run import run  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--models", default="tiny,b32")
    parser.add_argument("--prompts", type=int, default=10)
    parser.add_argument("--images", type=int, default=10)
    parser.add_argument("--toy", action="store_true", help="the tiny CLIP only, 1 prompt x 2 images")
    args = parser.parse_args()
    if args.toy:
        args.models, args.prompts, args.images = "tiny", 1, 2
    register_configs()
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.models.split(","):
            model = build_tiny_clip(Path(tmp) / f"clip-{name}", size=name)
            with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
                cfg = compose("config", overrides=[
                    "task=formulate", "labels=[seven]", f"prompt.num_prompts={args.prompts}",
                    f"diffusion.images_per_prompt={args.images}", f"paths.store={tmp}/store-{name}", "logger=none",
                    "filter=clip", f"filter.model={model}", "filter.device=cpu"])
            timing = run(cfg, output_dir=f"{tmp}/run-{name}")["timing"]
            n = args.prompts * args.images
            gen_s, filt_s = timing["generate_s"], timing["filter_s"]
            print(f"filter {name:<5} {n} images: generate {gen_s:.2f} s, filter {filt_s:.2f} s (scoring; the model "
                  f"loads before, in the run's checks), ratio filter/generation = {filt_s / gen_s:.2f}")


if __name__ == "__main__":
    main()
