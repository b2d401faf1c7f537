import json
import shutil
import subprocess
import sys

import pytest
from conftest import ROOT
from wandb_history import read_run

from odin.cli import run_name
from odin.loggers import WandbLogger
from odin.secrets import scrub


def test_scrub_removes_secret_keys_and_values(monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-very-secret-value")
    config = {"prompt": {"api_key": "x", "base_url": "http://h/v1?key=sk-very-secret-value", "model": "m"},
              "list": ["sk-very-secret-value", "fine"], "token": 3}
    clean = scrub(config)
    assert clean["prompt"]["api_key"] == "<redacted>" and clean["token"] == "<redacted>"
    assert clean["prompt"]["model"] == "m" and clean["list"][1] == "fine"
    assert "sk-very-secret-value" not in repr(clean)


def test_wandb_offline_run_has_no_secret(tmp_path, monkeypatch):
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("OPENAI_API_KEY", "sk-another-secret-1234")
    logger = WandbLogger(project="odin-test")
    logger.start({"prompt": {"model": "gpt", "note": "sk-another-secret-1234"}}, tmp_path, name="t")
    logger.log_epoch({"epoch": 1, "train_loss": 0.5, "top1": 50.0})
    logger.log_table("prompts", ["label", "prompt"], [["seven", "a seven"]])
    logger.finish({"top1": 50.0})
    files = list((tmp_path / "wandb").rglob("*"))
    assert any(f.name.endswith(".wandb") for f in files)
    for f in files:
        if f.is_file():
            assert b"sk-another-secret-1234" not in f.read_bytes()


@pytest.mark.slow
def test_wandb_history_has_every_epoch_and_the_run_is_named_after_its_overrides(tmp_path):
    """Images and tables logged between epochs must not push an epoch out of W&B's history."""
    args = ["experiment=smoke", "logger=wandb", "train.epochs=3", "post=salt", f"paths.store={tmp_path / 'store'}",
            f"hydra.run.dir={tmp_path / 'run'}"]
    done = subprocess.run([sys.executable, str(ROOT / "run.py"), *args], cwd=tmp_path, capture_output=True,
                          text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "less than the current step" not in done.stderr
    wandb = read_run(tmp_path / "run")
    epochs = [row for row in wandb["history"] if "epoch" in row]
    assert [row["epoch"] for row in epochs] == [1, 2, 3]
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert [row["test/top1"] for row in epochs] == [h["top1"] for h in metrics["history"]]
    assert wandb["name"] == "experiment=smoke train.epochs=3 post=salt" and wandb["exit_code"] == 0


def test_every_epoch_metric_reaches_wandb_and_read_back_epochs_are_marked_cached(tmp_path, monkeypatch):
    monkeypatch.setenv("WANDB_MODE", "offline")
    logger = WandbLogger(project="odin-test")
    logger.start({}, tmp_path, name="t")
    rows = [{"epoch": e, "train_loss": 1.0 / e, "top1": 10.0 * e, "top3": 30.0 + e, "val_top1": 20.0 + e}
            for e in (1, 2, 3)]
    logger.log_history(rows[:2], cached=True)  # epochs read back from a checkpoint ...
    logger.log_epoch({**rows[2], "seen_top1": 40.0})  # ... then one trained here
    logger.finish({"top1": 30.0})
    history = [row for row in read_run(tmp_path)["history"] if "epoch" in row]
    assert [row["epoch"] for row in history] == [1, 2, 3]
    assert [row["val/top1"] for row in history] == [21.0, 22.0, 23.0]  # held-out generated accuracy
    assert [row["train/cached"] for row in history] == [1, 1, 0]
    assert history[2]["test/seen_top1"] == 40.0 and history[0]["train/loss"] == 1.0


@pytest.mark.slow
def test_a_training_read_from_the_cache_logs_its_history_to_wandb(tmp_path):
    """The second run trains nothing (`training.status: cached`); its W&B run still has every epoch's
    curves, each marked `train/cached`, and the held-out generated accuracy as val/top1."""
    def run(name):
        args = ["experiment=smoke", "logger=wandb", "train.epochs=2", "train.holdout=0.5",
                f"paths.store={tmp_path / 'store'}", f"hydra.run.dir={tmp_path / name}"]
        done = subprocess.run([sys.executable, str(ROOT / "run.py"), *args], cwd=tmp_path, capture_output=True,
                              text=True, timeout=600)
        assert done.returncode == 0, done.stderr[-3000:]
        return json.loads((tmp_path / name / "metrics.json").read_text()), read_run(tmp_path / name)

    first, first_wandb = run("first")
    second, second_wandb = run("second")
    assert (first["training"]["status"], second["training"]["status"]) == ("trained", "cached")
    for metrics, wandb, cached in ((first, first_wandb, 0), (second, second_wandb, 1)):
        epochs = [row for row in wandb["history"] if "epoch" in row]
        assert [row["epoch"] for row in epochs] == [1, 2]
        assert [row["test/top1"] for row in epochs] == [h["top1"] for h in metrics["history"]]
        assert [row["val/top1"] for row in epochs] == [h["val_top1"] for h in metrics["history"]]
        assert {row["train/cached"] for row in epochs} == {cached}


def test_run_name_keeps_what_distinguishes_runs():
    assert run_name(["post=salt", "paths.store=/x", "hydra.run.dir=/y", "logger=wandb", "model=resnext"],
                    default="digits") == "post=salt model=resnext"
    assert run_name(["logger=none"], default="digits") == "digits"


@pytest.mark.slow
def test_a_sweeps_runs_share_a_group_and_a_rerun_continues_its_run(tmp_path):
    """One W&B group per sweep, job type = task; the same job dir (a requeued job) keeps its run id."""
    def sweep():
        return subprocess.run([sys.executable, str(ROOT / "run.py"), "-m", "experiment=smoke", "logger=wandb",
                               "task=formulate", "post=none,salt", f"paths.store={tmp_path / 'store'}",
                               f"hydra.sweep.dir={tmp_path / 'sweep'}"], cwd=tmp_path, capture_output=True,
                              text=True, timeout=600)

    done = sweep()
    assert done.returncode == 0, done.stderr[-3000:]
    runs = [read_run(job) for job in sorted((tmp_path / "sweep").glob("[0-9]"))]
    assert len(runs) == 2 and runs[0]["group"] == runs[1]["group"] == f"{tmp_path.name}/sweep"
    assert {r["job_type"] for r in runs} == {"formulate"} and runs[0]["id"] != runs[1]["id"]
    assert [r["name"] for r in runs] == ["experiment=smoke task=formulate post=none",
                                         "experiment=smoke task=formulate post=salt"]
    first_ids = [r["id"] for r in runs]
    for job in (tmp_path / "sweep").glob("[0-9]"):
        shutil.rmtree(job / "wandb")  # the job runs again in the same dir, as a requeued one does
    assert sweep().returncode == 0
    assert [read_run(job)["id"] for job in sorted((tmp_path / "sweep").glob("[0-9]"))] == first_ids
