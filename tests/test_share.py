"""Handing a colleague an experiment: one file, dropped into conf/experiment/ (or a folder given with
--config-dir) and run by name; group options and sweeps still work on top of it (conf/experiment/example.yaml)."""

import json
import shutil
import subprocess
import sys

import pytest
import yaml
from conftest import CONF, ROOT

# What a colleague writes: group options as `override /<group>`, keys as on the command line, no paths.
HANDOVER = """# @package _global_
# python run.py experiment=handover
defaults:
  - override /prompt: naive
  - override /post: blur

labels: [zero, seven]
diffusion:
  prompts_per_label: 2
  images_per_prompt: 3
train:
  epochs: 1
seed: 3
"""


def _sweep(tmp_path, *config_args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(ROOT / "run.py"), *config_args, "-m", "experiment=handover", "post=none,salt",
         "logger=none", f"paths.store={tmp_path / 'store'}", f"hydra.sweep.dir={tmp_path / 'sweep'}"],
        cwd=tmp_path, capture_output=True, text=True, timeout=600)


@pytest.mark.slow
@pytest.mark.parametrize("where", ["conf/experiment", "--config-dir"])
def test_a_handed_over_experiment_runs_by_name_and_sweeps_on_top(tmp_path, where):
    if where == "conf/experiment":  # the colleague's checkout (a copy, so the test leaves conf/ as it is)
        shutil.copytree(CONF, tmp_path / "conf", ignore=shutil.ignore_patterns("local"))
        (tmp_path / "conf" / "experiment" / "handover.yaml").write_text(HANDOVER)
        args = ["--config-path", str(tmp_path / "conf")]
    else:  # kept in a folder of their own
        (tmp_path / "mine" / "experiment").mkdir(parents=True)
        (tmp_path / "mine" / "experiment" / "handover.yaml").write_text(HANDOVER)
        args = ["--config-dir", str(tmp_path / "mine")]
    done = _sweep(tmp_path, *args)
    assert done.returncode == 0, done.stderr[-3000:]
    for job, post in (("0", "none"), ("1", "salt")):
        metrics = json.loads((tmp_path / "sweep" / job / "metrics.json").read_text())
        choices = yaml.safe_load((tmp_path / "sweep" / job / ".hydra" / "hydra.yaml").read_text())["hydra"]["runtime"][
            "choices"]
        assert (choices["experiment"], choices["prompt"], choices["post"]) == ("handover", "naive", post)
        assert metrics["labels"] == ["zero", "seven"] and metrics["post"]["name"] == post
        assert len(metrics["history"]) == 1
    assert sum(json.loads((tmp_path / "sweep" / j / "metrics.json").read_text())["images"]["made"]
               for j in ("0", "1")) == 2 * 2 * 3  # 2 labels x 2 prompts x 3 images, made once for both jobs


def test_the_example_experiment_composes_with_no_machine_paths():
    text = (CONF / "experiment" / "example.yaml").read_text()
    assert text.startswith("# @package _global_\n# python run.py experiment=example")
    done = subprocess.run([sys.executable, str(ROOT / "run.py"), "experiment=example", "post=salt", "--cfg", "job"],
                          cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    cfg = yaml.safe_load(done.stdout)
    assert cfg["post"]["name"] == "salt" and cfg["labels"] == ["zero", "one", "seven"]
    body = yaml.safe_load(text)
    assert "paths" not in body and "hydra" not in body and "/" not in json.dumps(
        {k: v for k, v in body.items() if k != "defaults"})
