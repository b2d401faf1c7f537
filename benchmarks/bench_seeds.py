"""Seed noise of the embedded default and the naive baseline: the same code, N seeds, mean ± SD.

    python benchmarks/bench_seeds.py                 # seeds 0-4, prompt=template (the default) and naive
    python benchmarks/bench_seeds.py --seeds 5 --extra train.threads=1
    python benchmarks/bench_seeds.py --toy           # experiment=smoke, 2 seeds; no file unless --out
    python benchmarks/bench_seeds.py --show benchmarks/results/bench_seeds.json   # the summary of kept runs

One Hydra sweep (`python run.py -m seed=0,...,N-1 prompt=template,naive`) in an empty store: `seed` moves
every draw of the run (prompts, images, the training order and initial weights). Each point's
metrics.json is kept in --out with the summary: per prompt the mean, the sample SD (n - 1) and the range
of top-1 (at the test-best epoch, at the epoch chosen on held-out prompts, at the last) and top-3, and the
ratio of the means template / naive.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_embedded import ROOT, write_raw  # noqa: E402  (one layout for every benchmark's raw results)

PROMPTS = ("template", "naive")


def sweep(seeds: int, extra: list[str], work: Path) -> tuple[list[dict], float]:
    args = [sys.executable, str(ROOT / "run.py"), "-m", f"seed={','.join(map(str, range(seeds)))}",
            f"prompt={','.join(PROMPTS)}", f"paths.store={work / 'store'}", f"hydra.sweep.dir={work / 'sweep'}",
            "hydra.callbacks.report.enabled=false", *extra]
    started = time.perf_counter()
    done = subprocess.run(args, cwd=ROOT, env={**os.environ, "ODIN_PROGRESS": "0"}, capture_output=True, text=True)
    if done.returncode:
        sys.exit(f"{' '.join(args)} failed:\n{done.stdout[-2000:]}\n{done.stderr[-3000:]}")
    runs = []
    for path in sorted((work / "sweep").glob("*/metrics.json"), key=lambda p: int(p.parent.name)):
        metrics = json.loads(path.read_text())
        overrides = (path.parent / ".hydra" / "overrides.yaml").read_text()
        prompt = next(p for p in PROMPTS if f"prompt={p}" in overrides)
        seed = next(int(line.split("=")[1]) for line in overrides.splitlines() if "seed=" in line)
        runs.append({"prompt": prompt, "seed": seed, "metrics": metrics})
    return runs, time.perf_counter() - started


# top1 / top3: at the epoch best on the test set (the paper's reading); heldout_top1: at the epoch chosen on
# held-out generated prompts (no test label used); last_top1: the last epoch's
FIGURES = ("top1", "top3", "heldout_top1", "last_top1")


def summarize(runs: list[dict]) -> dict:
    summary = {}
    for prompt in PROMPTS:
        mine = [r["metrics"] for r in runs if r["prompt"] == prompt]
        summary[prompt] = {"n": len(mine)} | {
            key: {"mean": statistics.mean(v), "sd": statistics.stdev(v), "min": min(v), "max": max(v), "values": v}
            for key in FIGURES if all(m.get(key) is not None for m in mine) for v in [[m[key] for m in mine]]}
    summary["ratio_top1"] = summary["template"]["top1"]["mean"] / summary["naive"]["top1"]["mean"]
    return summary


def show(summary: dict) -> None:
    for prompt in PROMPTS:
        s = summary[prompt]
        print(f"{prompt:8s} over {s['n']} seeds: " + "; ".join(
            f"{key} {s[key]['mean']:.2f} ± {s[key]['sd']:.2f}% ({s[key]['min']:.2f}-{s[key]['max']:.2f})"
            for key in FIGURES if key in s))
    print(f"ratio template / naive mean top-1: {summary['ratio_top1']:.3f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--extra", nargs="*", default=[], help="overrides for every run")
    parser.add_argument("--out", default=None, help="raw JSON (default benchmarks/results/bench_seeds.json)")
    parser.add_argument("--toy", action="store_true", help="experiment=smoke and 2 seeds: a test runs it")
    parser.add_argument("--show", default=None, help="print the summary of a raw JSON this script wrote")
    args = parser.parse_args()
    if args.show:
        show(summarize(json.loads(Path(args.show).read_text())["runs"]))
        return
    if args.toy:
        args.seeds, args.extra = 2, ["experiment=smoke", *args.extra]
    out = Path(args.out) if args.out else (None if args.toy else ROOT / "benchmarks/results/bench_seeds.json")
    work = Path(tempfile.mkdtemp(prefix="odin-bench-seeds-"))
    load_before = os.getloadavg()
    try:
        runs, seconds = sweep(args.seeds, args.extra, work)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    summary = summarize(runs)
    show(summary)
    print(f"{seconds:.0f} s for the sweep")
    if out:
        write_raw(out, {"extra": args.extra, "sweep_s": seconds, "summary": summary, "runs": runs},
                  load_before=load_before)
        print(f"raw results: {out}")


if __name__ == "__main__":
    main()
