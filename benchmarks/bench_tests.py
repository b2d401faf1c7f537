"""The README's test command (`python -m pytest`), timed whole, quiet and beside a process burning one core.

    python benchmarks/bench_tests.py                          # this checkout against --baseline, loaded
    python benchmarks/bench_tests.py --conditions quiet,loaded --baseline none
    python benchmarks/bench_tests.py --toy                    # one test file, baseline HEAD; no file unless --out

Each side runs in its own checkout's folder with this venv (the baseline a `git worktree` of a commit), so
each runs its own tests with its own conftest. It prints each run's wall time, pytest's last line and the
ratio this / baseline; raw records (pytest's summary and its 25 slowest tests) go to --out.
The goal (issue 25): <= 8 minutes on 2 cores with one other busy process, nothing weakened.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_embedded import BURN, ROOT, checkout, remove_checkout, write_raw  # noqa: E402  (shared with it)

BASELINE = "b05713e"  # main before the tests trained on one thread and the slowest moved to -m slow (issue 25)
TOY = ["tests/test_gap.py"]


def run_tests(code: Path, toy: bool) -> dict:
    args = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--durations=25", *(TOY if toy else [])]
    started = time.perf_counter()
    done = subprocess.run(args, cwd=code, capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": str(code)})
    wall = time.perf_counter() - started
    last = next((line for line in reversed(done.stdout.splitlines()) if re.search(r"\d+ passed", line)), "")
    slowest = [line for line in done.stdout.splitlines() if re.match(r"\d+\.\d+s (call|setup|teardown)", line)]
    failed = [line for line in done.stdout.splitlines() if line.startswith(("FAILED ", "ERROR "))]
    return {"wall_s": wall, "returncode": done.returncode, "summary": last.strip("= "), "failed": failed,
            "slowest": slowest}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--baseline", default=BASELINE, help="a commit, or none")
    parser.add_argument("--conditions", default="loaded")
    parser.add_argument("--out", default=None, help="raw JSON (default benchmarks/results/bench_tests.json)")
    parser.add_argument("--toy", action="store_true", help="one test file against HEAD: a test runs it")
    args = parser.parse_args()
    if args.toy:
        args.baseline = "HEAD"
    out = Path(args.out) if args.out else (None if args.toy else ROOT / "benchmarks/results/bench_tests.json")
    work = Path(tempfile.mkdtemp(prefix="odin-bench-tests-"))
    sides = {"this": ROOT} | ({"baseline": checkout(args.baseline, work)} if args.baseline != "none" else {})
    records = []
    try:
        for condition in args.conditions.split(","):
            burner = (subprocess.Popen([sys.executable, "-c", BURN], start_new_session=True)
                      if condition == "loaded" else None)
            try:
                for side, code in sides.items():
                    record = run_tests(code, args.toy) | {"side": side, "condition": condition,
                                                          "load_before": os.getloadavg()}
                    records.append(record)
                    print(f"{condition:6s} {side:8s} {record['wall_s']:6.1f} s wall: {record['summary']}", flush=True)
                    for line in record["failed"]:
                        print(f"    {line}", flush=True)
            finally:
                if burner:
                    burner.kill()
                    burner.wait()
    finally:
        if "baseline" in sides:
            remove_checkout(sides["baseline"])
        shutil.rmtree(work, ignore_errors=True)
    for condition in args.conditions.split(","):
        wall = {r["side"]: r["wall_s"] for r in records if r["condition"] == condition}
        if "baseline" in wall:
            print(f"{condition}: ratio this / baseline {wall['this'] / wall['baseline']:.2f} "
                  f"({wall['this']:.0f} s against {wall['baseline']:.0f} s)")
    if out:
        write_raw(out, {"baseline": args.baseline, "runs": records})
        print(f"raw results: {out}")


if __name__ == "__main__":
    main()
