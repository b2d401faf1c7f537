"""Every script in benchmarks/ runs at toy size and prints its result line, so none rots unnoticed.

The scripts are globbed: a new one fails here until it has a `--toy` flag and its result line is listed
in RESULT below. Scripts whose toy run still takes tens of seconds (a pipeline or a whole `run.py`) are
marked slow; the fast ones run by default.
"""

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPTS = sorted(p.name for p in (ROOT / "benchmarks").glob("*.py"))

# What each script prints once it has measured: its ratio or its result. Extra arguments (given the test's
# temp folder) keep raw outputs out of benchmarks/results/.
RESULT = {
    "bench_embedded.py": r"ratio this / baseline \d+\.\d\d",
    "bench_filter.py": r"ratio filter/generation = \d+\.\d\d",
    "bench_filter_run.py": r"ratio filter/generation = \d+\.\d\d",
    "bench_folder_gap.py": r"raw results: \S+folder_gap\.json",
    "bench_generate.py": r"odin/plain wall time \d+\.\d{3}",
    "bench_localize.py": r"with/without time ratio \d+\.\d{3}",
    "bench_rerun.py": r"formulate cached\s+this\s+\d+\.\d\d s, baseline\s+\d+\.\d\d s .*ratio this / baseline \d",
    "bench_seeds.py": r"ratio template / naive mean top-1: \d+\.\d{3}",
    "bench_ssim.py": r"ratio \d+\.\dx",
    "bench_tests.py": r"loaded: ratio this / baseline \d+\.\d\d",
    "bench_train.py": r"ratio ODIN / plain images/s: \d+\.\d{3}",
    "bench_verify.py": r"sha256 over reading: \+-?\d+\.\d{3} ms = -?\d+\.\d% of a decode",
    "embedded.py": r"ratio default / naive top-1: \d+\.\d{3}(.|\n)*ratio \d+\.\d\d",
    "glyph_probe.py": r"template\s+cnn\s+\d\.\d{3}\s+\d\.\d{3}",
    "living_table.py": r"All: \d+ of \d+ labels judged differ",
    "spacy_vectors.py": r"4 words, 3 distinct 4-d vectors",
}
EXTRA = {
    "bench_folder_gap.py": lambda tmp: ["--cases", "bright8", "--posts", "none", "--no-digits",
                                        "--out", str(tmp / "folder_gap.json"), "--work", str(tmp / "work")],
    "bench_ssim.py": lambda tmp: ["--out", str(tmp / "bench_ssim.json")],
    "bench_embedded.py": lambda tmp: ["--out", str(tmp / "bench_embedded.json"), "--work", str(tmp / "work")],
}
SLOW = {"bench_embedded.py", "bench_filter_run.py", "bench_folder_gap.py", "bench_generate.py", "bench_localize.py",
        "bench_rerun.py", "bench_seeds.py", "bench_tests.py", "embedded.py"}


def run_toy(name: str, tmp: Path) -> subprocess.CompletedProcess:
    args = [sys.executable, str(ROOT / "benchmarks" / name), "--toy", *EXTRA.get(name, lambda _: [])(tmp)]
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1", "ODIN_PROGRESS": "0"}
    return subprocess.run(args, cwd=tmp, env=env, capture_output=True, text=True, timeout=900)


def test_every_script_has_a_toy_flag_and_a_result_line():
    assert "bench_ssim.py" in SCRIPTS  # the glob looks where the scripts are
    missing = [n for n in SCRIPTS if n not in RESULT or "--toy" not in (ROOT / "benchmarks" / n).read_text()]
    assert not missing, f"{missing}: give each a --toy flag (seconds, CPU) and list its result line in RESULT"


def check_ssim_raw_output(tmp: Path, stdout: str) -> None:
    """bench_ssim keeps every repeat of both sides, per size and thread count, and prints the median ratio."""
    raw = json.loads((tmp / "bench_ssim.json").read_text())
    assert {(r["size"], r["channels"], r["threads"]) for r in raw["results"]} == {
        (16, 1, 1), (16, 1, 2), (24, 3, 1), (24, 3, 2)}
    for r in raw["results"]:
        assert len(r["odin_s"]) == len(r["skimage_s"]) == len(r["ratios"]) == r["repeats"] == 2
        assert r["max_abs_diff"] < 1e-12
        assert f"ratio {r['ratio']:.1f}x" in stdout
    assert len(raw["machine"]["load_before"]) == 3


CHECKS = {"bench_ssim.py": check_ssim_raw_output}


@pytest.mark.parametrize("name", [pytest.param(n, marks=pytest.mark.slow) if n in SLOW else n for n in SCRIPTS])
def test_script_runs_at_toy_size(name, tmp_path):
    done = run_toy(name, tmp_path)
    assert done.returncode == 0, f"{name} --toy failed:\n{done.stdout[-2000:]}\n{done.stderr[-3000:]}"
    assert name in RESULT, f"{name}: list the line it prints when it has measured in RESULT"
    assert re.search(RESULT[name], done.stdout), f"{name} --toy printed no result line:\n{done.stdout[-3000:]}"
    if name in CHECKS:
        CHECKS[name](tmp_path, done.stdout)


@pytest.mark.slow
def test_bench_localize_through_the_store_at_toy_size(tmp_path):
    """--store times ODIN's backend and store (Store.images with heatmaps): the path a refactor can break."""
    done = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "bench_localize.py"), "--toy", "--store"],
                          cwd=tmp_path, env={**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"},
                          capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "ODIN's backend + store" in done.stdout and re.search(RESULT["bench_localize.py"], done.stdout)
