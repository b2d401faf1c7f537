"""The embedded default at full size: minutes of CPU, so `pytest -m slow` runs it, not the default command."""

import json
import subprocess
import sys

import pytest
from conftest import ROOT


@pytest.mark.slow
def test_default_run_beats_80_percent_on_real_digits(tmp_path):
    done = subprocess.run([sys.executable, str(ROOT / "run.py"), f"paths.store={tmp_path / 'store'}",
                           f"hydra.run.dir={tmp_path / 'run'}"], cwd=tmp_path, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-3000:]
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["test_images"] == 1797
    assert metrics["train_images"] == {"generated": 18000, "real": 0, "held_out": 2000}  # 10% of prompts held out
    assert metrics["top1"] >= 80.0, metrics["history"]
