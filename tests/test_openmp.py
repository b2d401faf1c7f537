"""odin/__init__.py: how OpenMP threads wait, chosen from the cores free as a run starts; it never changes a number."""

import json
import os
import subprocess
import sys

import pytest
from conftest import ROOT

from odin import SPIN_WHEN_FREE, cores_free, openmp_wait


@pytest.mark.parametrize(("free", "expected"), [
    (2, {"OMP_WAIT_POLICY": "PASSIVE", "GOMP_SPINCOUNT": str(SPIN_WHEN_FREE)}),  # quiet: a brief spin, then sleep
    (5, {"OMP_WAIT_POLICY": "PASSIVE", "GOMP_SPINCOUNT": str(SPIN_WHEN_FREE)}),
    (1, {"OMP_WAIT_POLICY": "PASSIVE"}),  # another process holds a core: sleep at once
    (-3, {"OMP_WAIT_POLICY": "PASSIVE"}),
    (None, {"OMP_WAIT_POLICY": "PASSIVE"}),  # nothing to tell from (not Linux)
])
def test_threads_spin_briefly_only_where_two_cores_are_free(free, expected):
    assert openmp_wait({}, lambda: free) == expected


@pytest.mark.parametrize("name", ["OMP_WAIT_POLICY", "GOMP_SPINCOUNT"])
def test_a_wait_variable_the_user_set_is_left_alone_and_no_core_is_counted(name):
    def counted():
        raise AssertionError("the cores were counted")

    assert openmp_wait({name: "ACTIVE" if name == "OMP_WAIT_POLICY" else "0"}, counted) == {}


def test_the_free_cores_are_read_from_this_machine():
    free = cores_free()
    if sys.platform.startswith("linux"):
        assert isinstance(free, int) and free <= len(os.sched_getaffinity(0))
    else:
        assert free is None


def test_the_choice_is_made_before_torch_loads_and_a_users_value_wins():
    code = ("import os, sys, odin; assert 'torch' not in sys.modules; "
            "print(os.environ.get('OMP_WAIT_POLICY'), os.environ.get('GOMP_SPINCOUNT'))")
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT")}
    chosen = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert chosen.stdout.split()[0] == "PASSIVE" and chosen.stdout.split()[1] in ("None", str(SPIN_WHEN_FREE))
    mine = subprocess.run([sys.executable, "-c", code], env={**env, "OMP_WAIT_POLICY": "ACTIVE"},
                          capture_output=True, text=True, check=True)
    assert mine.stdout.split() == ["ACTIVE", "None"]


@pytest.mark.slow
def test_spinning_or_sleeping_threads_train_the_same_numbers(tmp_path):
    """Two threads, so the threads do wait for each other; each policy in its own process (OpenMP reads it once)."""
    histories = []
    for spin in ("0", str(SPIN_WHEN_FREE)):
        out = tmp_path / f"run-{spin}"
        subprocess.run([sys.executable, str(ROOT / "run.py"), "experiment=smoke", "logger=none", "train.threads=2",
                        "train.epochs=2", f"paths.store={tmp_path / f'store-{spin}'}", f"hydra.run.dir={out}"],
                       cwd=tmp_path, check=True, capture_output=True, timeout=600,
                       env={**os.environ, "ODIN_PROGRESS": "0", "GOMP_SPINCOUNT": spin})
        metrics = json.loads((out / "metrics.json").read_text())
        assert metrics["provenance"]["openmp_wait"]["GOMP_SPINCOUNT"] == spin
        histories.append(metrics["history"])
    assert histories[0] == histories[1] and len(histories[0]) == 2
