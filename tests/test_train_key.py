"""The training key holds what the run reads: a changed folder of real images trains anew and says why; an
untouched folder, or a heatmap pass over the same generated images, reuses the training. Through run.py."""

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
SMOKE = ["experiment=smoke", "labels=[zero,one]", "train.epochs=1", "logger=none"]


def run_py(*args, cwd) -> subprocess.CompletedProcess:
    done = subprocess.run([sys.executable, str(ROOT / "run.py"), *args], cwd=cwd, capture_output=True, text=True,
                          timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr
    return done


def add_images(root: Path, label: str, n: int, start: int = 0) -> None:
    folder = root / label
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(start + 1000 * len(label))
    for i in range(start, start + n):
        Image.fromarray(rng.integers(0, 256, (16, 16), dtype=np.uint8)).save(folder / f"{i:03d}.png")


@pytest.mark.slow
def test_a_changed_folder_trains_anew_and_says_why_an_untouched_one_is_reused(tmp_path):
    images = tmp_path / "images"
    for label in ("zero", "one"):
        add_images(images, label, 10)
    # post=none: with post=match the new images would change the generated set too, not only the real one
    args = [*SMOKE, "dataset=folder", "post=none", f"dataset.root={images}", f"paths.store={tmp_path / 'store'}"]
    first = run_py(*args, "hydra.run.dir=r1", cwd=tmp_path)
    assert "training already done" not in first.stdout + first.stderr
    again = run_py(*args, "hydra.run.dir=r2", cwd=tmp_path)
    assert "training already done" in again.stdout + again.stderr

    add_images(images, "one", 20, start=10)
    changed = run_py(*args, "hydra.run.dir=r3", cwd=tmp_path)
    out = changed.stdout + changed.stderr
    assert "training already done" not in out
    assert "the real images changed since these settings were trained" in out
    assert "test images of 'one': 2 -> 6" in out  # 20% of each class is its test split


@pytest.mark.slow
def test_a_heatmap_pass_reuses_the_training(tmp_path):
    args = [*SMOKE, f"paths.store={tmp_path / 'store'}"]
    run_py(*args, "hydra.run.dir=r1", cwd=tmp_path)
    run_py(*args, "task=formulate", "localize=attention", "hydra.run.dir=r2", cwd=tmp_path)
    again = run_py(*args, "hydra.run.dir=r3", cwd=tmp_path)
    assert "training already done" in again.stdout + again.stderr
