"""The gap between generated and a user's own real images: scikit-learn's digits handed over as a folder.

Builds class folders zero..nine of grayscale PNGs from load_digits (nothing committed): bright ink on
dark as the data comes and inverted, at 32 px (the 8x8 counts upscaled with nearest neighbours: blocky)
and at the original 8x8. Each is run as a user would, `python run.py dataset=folder dataset.root=<folder>
dataset.context=digit`, with post=none, post=match and post=auto, beside the embedded `dataset=digits`.
Raw results go to benchmarks/results/folder_gap.json; a markdown table is printed.

    python benchmarks/bench_folder_gap.py                  # all cases (~1 h on 2 busy CPU cores)
    python benchmarks/bench_folder_gap.py --cases bright32 --posts none,match
    python benchmarks/bench_folder_gap.py --toy            # seconds: 3 labels, a few images, 1 epoch
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from odin.characters import DIGIT_NAMES  # noqa: E402

CASES = {  # name -> (ink, size)
    "bright32": ("bright", 32), "dark32": ("dark", 32), "bright8": ("bright", 8), "dark8": ("dark", 8),
}
TOY = ["labels=[zero,one,seven]", "prompt.num_prompts=3", "diffusion.images_per_prompt=4", "train.epochs=1",
       "post.max_per_class=6"]


def build_folder(root: Path, ink: str, size: int) -> Path:
    """load_digits as class folders of grayscale PNGs: `bright` ink on dark as the data comes, or `dark`."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    for k, (image, target) in enumerate(zip(digits.images, digits.target, strict=True)):
        x = image / 16.0 if ink == "bright" else 1.0 - image / 16.0
        png = Image.fromarray(np.rint(x * 255).astype(np.uint8), "L")
        if size != 8:
            png = png.resize((size, size), Image.Resampling.NEAREST)
        path = root / DIGIT_NAMES[int(target)] / f"{k:04d}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        png.save(path)
    return root


def run(overrides: list[str], run_dir: Path, env: dict, entry: str = "run.py") -> dict:
    """One `python run.py ...`; its metrics, or the error it ended with."""
    started = time.perf_counter()
    cmd = [sys.executable, entry, *overrides, f"hydra.run.dir={run_dir}"]
    done = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True)
    out = {"command": "python run.py " + " ".join(overrides), "rc": done.returncode,
           "wall_s": round(time.perf_counter() - started, 1)}
    metrics = run_dir / "metrics.json"
    if done.returncode == 0 and metrics.exists():
        m = json.loads(metrics.read_text())
        gap = m.get("gap") or measure_gap(run_dir, m)
        out |= {"top1": m.get("top1"), "top3": m.get("top3"), "heldout_top1": m.get("heldout_top1"),
                "gap_accuracy": gap.get("accuracy"), "post": (m.get("post") or {}).get("name"),
                "post_auto": ((m.get("post") or {}).get("auto") or {}).get("chosen"),
                "test_images": m.get("test_images")}
    else:
        out["error"] = (done.stderr or done.stdout)[-1500:]
    return out


def measure_gap(run_dir: Path, metrics: dict, per_class: int = 50) -> dict:
    """The gap alarm on a finished run's images, for runs whose metrics.json has none: the post-processed
    training images as training reads them (dataset.acquire) against the real images post=match learns
    from (the training split when there is one, else the test images pooled, labels unused)."""
    from hydra.utils import instantiate
    from omegaconf import OmegaConf

    from odin.gap import gap_alarm
    from odin.image_sets import load_generated, real_pool, whole_units
    from odin.store import Folder

    cfg = OmegaConf.load(run_dir / ".hydra" / "config.yaml")
    dataset = instantiate(cfg.dataset)
    labels = metrics["labels"]
    path = Path(metrics["post"]["folder"])
    rows = [json.loads(line) for line in (path / "metadata.jsonl").read_text().splitlines() if line.strip()]
    sample = whole_units(Folder("", path, rows), labels, per_class, int(cfg.seed))
    generated = load_generated(sample, sample.rows, dataset)
    real, split = real_pool(dataset, labels, per_class, int(cfg.seed))
    found = gap_alarm(generated, real, groups=[r["unit"] for r in sample.rows], seed=int(cfg.seed))
    return found | {"real_split": split}


def table(results: list[dict]) -> str:
    def pct(v):
        return "" if v is None else f"{v:.1f}"

    lines = ["| real images | post | top-1 | top-3 | held-out-chosen top-1 | gap alarm (real vs generated) |",
             "|---|---|---|---|---|---|"]
    for r in results:
        post = r["post_option"] + (f" (chose {r['post_auto']})" if r.get("post_auto") else "")
        gap = "" if r.get("gap_accuracy") is None else f"{100 * r['gap_accuracy']:.0f}%"
        if r["rc"] != 0:
            lines.append(f"| {r['case']} | {post} | failed (rc {r['rc']}) | | | |")
            continue
        lines.append(f"| {r['case']} | {post} | {pct(r['top1'])} | {pct(r['top3'])} | {pct(r['heldout_top1'])} "
                     f"| {gap} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--toy", action="store_true", help="tiny counts and one epoch: a test runs it in seconds")
    parser.add_argument("--cases", default=",".join(CASES), help=f"comma-separated, of {', '.join(CASES)}")
    parser.add_argument("--posts", default="none,match,auto", help="post options for the folder cases")
    parser.add_argument("--digits", action=argparse.BooleanOptionalAction, default=True,
                        help="also run dataset=digits (the embedded default)")
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "folder_gap.json"))
    parser.add_argument("--work", default=None, help="where folders and run dirs go (default: a temp dir)")
    parser.add_argument("--jobs", default=None, help="case:post pairs in the order to run, e.g. bright32:match,"
                        "digits:none (instead of --cases x --posts)")
    parser.add_argument("--set", nargs="*", default=[], help="overrides added to every run, e.g. train.threads=1")
    parser.add_argument("--entry", default="run.py", help="the script that runs one job (run.py)")
    args = parser.parse_args()

    work = Path(args.work or tempfile.mkdtemp(prefix="odin_folder_gap_"))
    env = {**os.environ, "ODIN_PROGRESS": "0", "HF_HUB_OFFLINE": "1", "WANDB_MODE": "disabled"}
    extra = (list(TOY) if args.toy else []) + list(args.set)
    if args.toy:
        env["ODIN_STORE"] = str(work / "store")
        extra.append(f"paths.store={work / 'store'}")
    results = []
    jobs = [(case, post) for case in args.cases.split(",") if case for post in args.posts.split(",") if post]
    if args.digits:
        jobs.append(("digits", "none"))
    if args.jobs:
        jobs = [tuple(job.split(":")) for job in args.jobs.split(",") if job]
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    for case, post in jobs:
        if case == "digits":
            overrides = ["dataset=digits", f"post={post}"]
        else:
            ink, size = CASES[case]
            folder = work / "folders" / case
            if not folder.exists():
                build_folder(folder, ink, size)
            overrides = ["dataset=folder", f"dataset.root={folder}", "dataset.context=digit", f"post={post}"]
        toy = [o for o in extra if not (o.startswith("post.") and post != "auto" and post != "match")]
        result = run(overrides + toy, work / "runs" / f"{case}_{post}", env, args.entry)
        result |= {"case": case, "post_option": post}
        results.append(result)
        print(f"{case} post={post}: " + (f"top-1 {result['top1']:.2f}%" if result.get("top1") is not None
                                         else f"rc {result['rc']}"), flush=True)
        # after every job: a long benchmark stopped early keeps what it measured
        out.write_text(json.dumps({"toy": args.toy, "work": str(work), "results": results}, indent=2) + "\n")
    print(table(results))
    print(f"raw results: {out}")


if __name__ == "__main__":
    main()
