"""The README's command, `python run.py`, timed whole (imports included) in an empty store, quiet and loaded.

Each repeat runs this checkout and a baseline checkout (`--baseline`, a git commit checked out with
`git worktree` in a temp folder and run with this venv) back to back, alternating which goes first, in
each condition:
  quiet   nothing else started (check `uptime` first: other users' work counts as load)
  loaded  a second process burns one core the whole run (`python -c 'while True: pass'`, in a session of
          its own, like another user's job)
Each run gets a store folder of its own under the checkout's outputs/ (where `python run.py` keeps its
store), and every store is removed only when the benchmark ends: on ext4, creating files right after
20,000 others were deleted costs far more kernel time (a formulate run: 23-30 s of workers' system time
against 2 s), which a user's run does not pay and which made one side's run slower for the other's
cleanup (BENCHMARKS.md).
It prints each run's wall time, its stage split (metrics.json `timing`; `outside run()` is the command's
wall time less `total_s`: interpreter start, imports, Hydra), CPU time (user + sys of the command and its
workers) and top-1, and per condition the ratio this / baseline of the wall times (the median over
repeats of each pair's ratio). Raw records go to --out.

    python benchmarks/bench_embedded.py                        # the default, quiet and loaded, 1 repeat
    python benchmarks/bench_embedded.py --repeats 3 --conditions loaded
    python benchmarks/bench_embedded.py --extra 'labels=[zero,one,seven]' train.epochs=2
    python benchmarks/bench_embedded.py --extra task=formulate --repeats 3   # the images alone
    python benchmarks/bench_embedded.py --toy                  # experiment=smoke, baseline HEAD; no file unless --out

The goal (issue 25): <= 60 s quiet and <= 120 s loaded on 2 cores, top-1 unchanged.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BASELINE = "be415c0622491742abff7c14b110abeda3b40c1e"  # main before units were made in parallel (issue 25)
BURN = "while True: pass"


def checkout(ref: str, work: Path) -> Path:
    """`ref` checked out beside this one (git worktree), so the same venv runs its code."""
    path = work / "baseline"
    done = subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", str(path), ref],
                          capture_output=True, text=True)
    if done.returncode:
        sys.exit(f"cannot check out the baseline {ref!r} (a commit of this repository is needed): {done.stderr}")
    return path


REFERENCE = ("import time, numpy as np\n"
             "rng = np.random.default_rng(0); a = rng.random((64, 64)); t = time.perf_counter()\n"
             "for _ in range(20000): a = np.sort(a * 1.0001, axis=None).reshape(64, 64)\n"
             "print(time.perf_counter() - t)")


def reference_s() -> float:
    """Seconds of a fixed single-core job (small numpy sorts, like the image work), timed just before a run: the
    machine's own speed at that moment. A shared host's speed drifts; a run is compared with its baseline
    only through this and the baseline run beside it."""
    done = subprocess.run([sys.executable, "-c", REFERENCE], capture_output=True, text=True, check=True)
    return float(done.stdout)


def run_once(code: Path, work: Path, name: str, extra: list[str]) -> dict:
    """`python run.py` of checkout `code` in an empty store: wall and CPU seconds, metrics.json's figures."""
    store, out = work / f"store-{name}", work / f"run-{name}"
    args = [sys.executable, str(code / "run.py"), f"paths.store={store}", f"hydra.run.dir={out}", *extra]
    env = {**os.environ, "ODIN_PROGRESS": "0", "PYTHONPATH": str(code)}  # its own odin, not this checkout's
    load_before, reference = os.getloadavg(), reference_s()
    started = time.perf_counter()
    job = subprocess.Popen(args, cwd=code, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    _, _, usage = os.wait4(job.pid, 0)  # rusage of the command and the worker processes it waited for
    wall = time.perf_counter() - started
    stdout, stderr = job.communicate()
    if not (out / "metrics.json").exists():
        sys.exit(f"{' '.join(args)} failed:\n{stdout[-2000:]}\n{stderr[-3000:]}")
    metrics = json.loads((out / "metrics.json").read_text())
    timing = metrics["timing"]
    return {"wall_s": wall, "cpu_s": usage.ru_utime + usage.ru_stime, "timing": timing,
            "outside_run_s": wall - timing["total_s"], "log_stages_s": log_stages(out / "run.log"),
            "top1": metrics.get("top1"), "top3": metrics.get("top3"), "images": metrics["images"],
            "load_before": load_before, "reference_s": reference}


# run.log lines that end a stage of task=train: the split where metrics.json's timing names fewer stages
MARKS = {"generate": "images: ", "gap": "gap alarm", "prepare": "training ", "train": "top-1 "}


def log_stages(path: Path) -> dict:
    """Seconds between the plan line and each stage's last line in run.log (each stage from the one before)."""
    stamps, times = {}, [(datetime.strptime(line[1:24], "%Y-%m-%d %H:%M:%S,%f"), line.split(" - ", 1)[-1])
                         for line in path.read_text().splitlines() if line.startswith("[20") and " - " in line]
    start = next((t for t, text in times if text.startswith("plan: ")), None)
    for stage, mark in MARKS.items():
        ends = [t for t, text in times if text.startswith(mark)]
        if start and ends:
            stamps[stage] = (ends[0] - start).total_seconds()
            start = ends[0]
    return stamps


def split(record: dict) -> str:
    stages = {k.removesuffix("_s"): v for k, v in record["timing"].items() if k != "total_s" and v >= 0.05}
    # train_s holds prepare_s (preparing the images is part of training): counted once
    rest = record["timing"]["total_s"] - sum(v for k, v in stages.items() if k != "prepare")
    parts = [f"{k} {v:.1f}" for k, v in stages.items()] + [f"rest of run() {rest:.1f}",
                                                            f"outside run() {record['outside_run_s']:.1f}"]
    logged = ", ".join(f"{k} {v:.1f}" for k, v in record["log_stages_s"].items())
    return ", ".join(parts) + (f"; from run.log: {logged}" if logged else "")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--baseline", default=BASELINE, help="git commit to compare with (default: before issue 25)")
    parser.add_argument("--conditions", default="quiet,loaded")
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--extra", nargs="*", default=[], help="overrides for every run (both sides)")
    parser.add_argument("--out", default=None, help="raw JSON (default benchmarks/results/bench_embedded.json)")
    parser.add_argument("--toy", action="store_true", help="experiment=smoke against HEAD: a test runs it")
    parser.add_argument("--work", default=str(ROOT / "outputs"), help="where the runs' stores go (removed at the end)")
    args = parser.parse_args()
    if args.toy:
        args.extra, args.baseline = ["experiment=smoke", *args.extra], "HEAD"
    out = Path(args.out) if args.out else (None if args.toy else ROOT / "benchmarks/results/bench_embedded.json")
    Path(args.work).mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="bench-embedded-", dir=args.work))
    sides = {"baseline": checkout(args.baseline, work), "this": ROOT}
    records = []
    try:
        for repeat in range(args.repeats):
            for condition in args.conditions.split(","):
                # its own session, as another user's job: where the kernel groups CPU time by session (autogroup),
                # it then takes a whole core from the run rather than a share of the run's own group
                burner = (subprocess.Popen([sys.executable, "-c", BURN], start_new_session=True)
                          if condition == "loaded" else None)
                try:
                    order = ["baseline", "this"] if repeat % 2 == 0 else ["this", "baseline"]
                    for side in order:
                        record = run_once(sides[side], work, f"{side}-{condition}-{repeat}", args.extra)
                        record |= {"side": side, "condition": condition, "repeat": repeat}
                        records.append(record)
                        write(out, args, {}, records)  # after every run: a bench cut short keeps what it measured
                        top1 = f"top-1 {record['top1']:.2f}%" if record["top1"] is not None else "no top-1"
                        print(f"{condition:6s} {side:8s} {record['wall_s']:6.1f} s wall ({split(record)}); "
                              f"cpu {record['cpu_s']:.1f} s; {top1}; reference {record['reference_s']:.2f} s",
                              flush=True)
                finally:
                    if burner:
                        burner.kill()
                        burner.wait()
    finally:
        remove_checkout(sides["baseline"])
        shutil.rmtree(work, ignore_errors=True)
    summary = {}
    for condition in args.conditions.split(","):
        pairs = [(b, t) for b in records for t in records if b["side"] == "baseline" and t["side"] == "this"
                 and b["condition"] == t["condition"] == condition and b["repeat"] == t["repeat"]]
        ratio = statistics.median(t["wall_s"] / b["wall_s"] for b, t in pairs)
        this = statistics.median(t["wall_s"] for _, t in pairs)
        same = all(b["top1"] == t["top1"] for b, t in pairs)
        summary[condition] = {"ratio": ratio, "this_wall_s": this, "same_top1": same}
        print(f"{condition}: this {this:.1f} s wall, ratio this / baseline {ratio:.2f} "
              f"(median of {len(pairs)}); top-1 {'the same' if same else 'DIFFERS'}")
    write(out, args, summary, records)
    if out:
        print(f"raw results: {out}")


def write(out: Path | None, args, summary: dict, records: list[dict]) -> None:
    if out:
        write_raw(out, {"baseline": args.baseline, "extra": args.extra, "summary": summary, "runs": records})


def write_raw(out: Path, fields: dict, **machine) -> None:
    """A benchmark's raw results as JSON: the command that made them, the machine (with `machine`), `fields`."""
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"command": " ".join([Path(sys.argv[0]).name, *sys.argv[1:]]),
                               "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), **machine}}
                              | fields, indent=1) + "\n")


def remove_checkout(path: Path) -> None:
    """The baseline's git worktree (from `checkout`), unregistered and removed."""
    subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(path)], capture_output=True)


if __name__ == "__main__":
    main()
