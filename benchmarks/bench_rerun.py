"""What a run costs when there is nothing to compute: the default read back from its store, and a formulate run.

    python benchmarks/bench_rerun.py                    # fills a temp store with `python run.py` first
    python benchmarks/bench_rerun.py --store DIR        # a store `python run.py paths.store=DIR` has filled
    python benchmarks/bench_rerun.py --toy              # experiment=smoke, baseline HEAD; no file unless --out

Each repeat times, whole (interpreter start and imports included), this checkout and a baseline checkout
(`--baseline`, checked out with `git worktree` and run with this venv), alternating which goes first:
  rerun      `python run.py` on the filled store: the finished training is read back
  formulate  `python run.py task=formulate experiment=smoke` in an empty store, then again on it (cached)
and prints each side's median wall time and the ratio this / baseline (the median of the pairs' ratios).
The goals (issue 25): a cached rerun <= 5 s, a formulate run's fixed cost <= 5 s.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_embedded import ROOT, checkout, remove_checkout, write_raw  # noqa: E402  (the same baseline checkout)

BASELINE = "b05713e"  # main before the cached rerun skipped timm, scikit-learn and matplotlib (issue 25)
FORMULATE = ["task=formulate", "experiment=smoke"]


def timed(code: Path, args: list[str]) -> float:
    started = time.perf_counter()
    done = subprocess.run([sys.executable, str(code / "run.py"), *args], cwd=code, capture_output=True, text=True,
                          env={**os.environ, "ODIN_PROGRESS": "0", "PYTHONPATH": str(code)})
    if done.returncode:
        sys.exit(f"run.py {' '.join(args)} in {code} failed:\n{done.stderr[-3000:]}")
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--store", default=None, help="a store the default has filled (default: fill a temp one)")
    parser.add_argument("--baseline", default=BASELINE)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--out", default=None, help="raw JSON (default benchmarks/results/bench_rerun.json)")
    parser.add_argument("--toy", action="store_true", help="experiment=smoke, 2 repeats, baseline HEAD: a test runs it")
    args = parser.parse_args()
    default = []
    if args.toy:
        args.repeats, args.baseline, default = 2, "HEAD", ["experiment=smoke"]
    out = Path(args.out) if args.out else (None if args.toy else ROOT / "benchmarks/results/bench_rerun.json")
    work = Path(tempfile.mkdtemp(prefix="odin-bench-rerun-"))
    sides = {"baseline": checkout(args.baseline, work), "this": ROOT}
    store = Path(args.store) if args.store else work / "store"
    load_before = os.getloadavg()
    times: dict[str, dict[str, list[float]]] = {k: {"baseline": [], "this": []}
                                                for k in ("rerun", "formulate", "formulate cached")}
    try:
        if not args.store:
            print(f"filling {store} with python run.py {' '.join(default)} ...", flush=True)
            timed(ROOT, [*default, f"paths.store={store}", f"hydra.run.dir={work / 'fill'}"])
        for repeat in range(args.repeats):
            for side in (["baseline", "this"] if repeat % 2 == 0 else ["this", "baseline"]):
                code, tag = sides[side], f"{side}-{repeat}"
                times["rerun"][side].append(timed(code, [*default, f"paths.store={store}",
                                                         f"hydra.run.dir={work / ('rerun-' + tag)}"]))
                fresh = work / f"formulate-store-{tag}"
                for kind in ("formulate", "formulate cached"):
                    run_dir = work / f"{kind.replace(' ', '-')}-{tag}"
                    times[kind][side].append(timed(code, [*FORMULATE, f"paths.store={fresh}",
                                                          f"hydra.run.dir={run_dir}"]))
                shutil.rmtree(fresh, ignore_errors=True)
    finally:
        remove_checkout(sides["baseline"])
        shutil.rmtree(work, ignore_errors=True)
    summary = {}
    for kind, by_side in times.items():
        ratio = statistics.median(t / b for b, t in zip(by_side["baseline"], by_side["this"], strict=True))
        summary[kind] = {"this_s": statistics.median(by_side["this"]),
                         "baseline_s": statistics.median(by_side["baseline"]), "ratio": ratio}
        print(f"{kind:17s} this {summary[kind]['this_s']:5.2f} s, baseline {summary[kind]['baseline_s']:5.2f} s "
              f"(medians of {args.repeats}): ratio this / baseline {ratio:.2f}")
    if out:
        write_raw(out, {"baseline": args.baseline, "summary": summary, "seconds": times}, load_before=load_before)
        print(f"raw results: {out}")


if __name__ == "__main__":
    main()
