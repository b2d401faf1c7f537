"""benchmarks/bench_folder_gap.py: the folders it builds, and (slow) its toy run end to end."""

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "benchmarks" / "bench_folder_gap.py"


def load_bench():
    spec = importlib.util.spec_from_file_location("bench_folder_gap", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_folders_are_the_real_digits_as_a_user_hands_them_over(tmp_path):
    bench = load_bench()
    bright = bench.build_folder(tmp_path / "b", "bright", 32)
    dark = bench.build_folder(tmp_path / "d", "dark", 8)
    assert sorted(p.name for p in bright.iterdir()) == sorted(bench.DIGIT_NAMES)
    assert sum(1 for _ in bright.rglob("*.png")) == 1797
    a = np.asarray(Image.open(bright / "zero" / "0000.png"))
    b = np.asarray(Image.open(dark / "zero" / "0000.png"))
    assert a.shape == (32, 32) and b.shape == (8, 8) and Image.open(bright / "zero" / "0000.png").mode == "L"
    assert np.abs(a[::4, ::4].astype(int) - (255 - b.astype(int))).max() <= 1  # blocks, the other polarity
    assert a[:, :4].max() == 0 and a.max() > 200  # bright ink on a dark ground, as load_digits comes


@pytest.mark.slow
def test_toy_run_end_to_end(tmp_path):
    out = tmp_path / "folder_gap.json"
    done = subprocess.run([sys.executable, str(SCRIPT), "--toy", "--cases", "bright8", "--posts", "none,match",
                           "--no-digits", "--out", str(out), "--work", str(tmp_path / "work")],
                          capture_output=True, text=True, cwd=ROOT, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    results = json.loads(out.read_text())["results"]
    assert [r["post_option"] for r in results] == ["none", "match"]
    assert all(r["rc"] == 0 and r["top1"] is not None for r in results), results
