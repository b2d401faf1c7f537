"""A multirun ends by printing its table; the paper's experiments get the paper's layout."""

import json
import subprocess
import sys

import pytest
import yaml
from conftest import ROOT

from odin.callbacks import SweepReport, headline


def _job(sweep, name, overrides, metrics):
    (sweep / name / ".hydra").mkdir(parents=True)
    (sweep / name / ".hydra" / "overrides.yaml").write_text(yaml.safe_dump(overrides))
    if metrics is not None:
        (sweep / name / "metrics.json").write_text(json.dumps(metrics))


def test_table3_layout_shows_no_post_and_the_best_post_per_dataset(tmp_path):
    sweep = tmp_path / "sweep"
    scores = {("resnet", "none"): 50.0, ("resnet", "blur"): 60.0, ("resnet", "salt"): 55.0,
              ("vit", "none"): 70.0, ("vit", "blur"): 65.0, ("vit", "salt"): None}  # vit+salt failed
    for k, ((model, post), top1) in enumerate(scores.items()):
        _job(sweep, str(k), [f"model={model}", "dataset=caltech101", f"post={post}"],
             None if top1 is None else {"top1": top1})
    printed = SweepReport(rows=["model"], cols=["dataset", "post"], best="post", keep=["none"]).report(sweep)
    paper = (sweep / "table_paper.md").read_text()
    assert "| model | caltech101 / none | caltech101 / best post |" in paper
    assert "| resnet | 50.00 | 60.00 (blur) |" in paper and "| vit | 70.00 | 70.00 (none)* |" in paper
    assert "caltech101 / salt" in (sweep / "table.md").read_text()  # the full table is written too
    assert paper.split("\n\n")[1] in printed  # the paper layout is what the sweep prints


def test_headline_follows_the_task(tmp_path):
    _job(tmp_path / "d", "0", ["post=none"], {"detect": {"accuracy": 91.0}})
    _job(tmp_path / "d", "1", ["post=blur"], {"detect": {"accuracy": 77.0}})
    from odin.tables import collect

    assert headline(collect(tmp_path / "d")) == "detect.accuracy"
    printed = SweepReport().report(tmp_path / "d")
    assert "| blur | 77.00 |" in printed and "detect.accuracy" in printed


def test_a_broken_sweep_dir_warns_and_never_fails_the_command(tmp_path, caplog):
    from omegaconf import OmegaConf

    SweepReport().on_multirun_end(OmegaConf.create({"hydra": {"sweep": {"dir": str(tmp_path / "nothing")}}}))
    assert "no sweep table" in caplog.text


@pytest.mark.slow
def test_a_local_sweep_ends_with_its_table_and_each_job_has_report_md(tmp_path):
    done = subprocess.run(
        [sys.executable, str(ROOT / "run.py"), "-m", "post=none,salt", "experiment=smoke", "logger=none",
         f"paths.store={tmp_path / 'store'}", f"hydra.sweep.dir={tmp_path / 'sweep'}"],
        cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    table = done.stdout[done.stdout.index("== top1"):]
    assert "| post | top1 |" in table and "| none |" in table and "| salt |" in table
    assert (tmp_path / "sweep" / "table.csv").exists() and (tmp_path / "sweep" / "table.png").exists()
    for job in ("0", "1"):
        report = (tmp_path / "sweep" / job / "report.md").read_text()
        top1 = json.loads((tmp_path / "sweep" / job / "metrics.json").read_text())["top1"]
        assert f"**top-1 {top1:.2f}%**" in report
        assert "on 539 real test images, trained on 24 generated images only." in report, report[:500]


def test_a_formulate_sweep_lists_its_datasets_and_calls_no_job_failed(tmp_path):
    sweep = tmp_path / "sweep"
    done = subprocess.run(
        [sys.executable, str(ROOT / "run.py"), "-m", "task=formulate", "post=none,salt", "experiment=smoke",
         "logger=none", f"paths.store={tmp_path / 'store'}", f"hydra.sweep.dir={sweep}"],
        cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    table = done.stdout[done.stdout.index("== datasets"):]
    assert "| post | images | dataset |" in table
    assert "| none | 24 | 0/dataset |" in table and "| salt | 24 | 1/dataset |" in table
    assert "| missing" not in table and "top1" not in table
    assert (sweep / "table.csv").read_text().splitlines()[1] == "none,24,0/dataset"


def test_a_formulate_job_without_a_dataset_is_missing(tmp_path):
    sweep = tmp_path / "sweep"
    (sweep / "0" / "dataset").mkdir(parents=True)
    (sweep / "0" / "dataset" / "metadata.jsonl").write_text('{"file_name": "a/0.png"}\n{"file_name": "a/1.png"}\n')
    _job(sweep, "0", ["task=formulate", "post=none"], {"task": "formulate", "dataset": str(sweep / "0" / "dataset")})
    _job(sweep, "1", ["task=formulate", "post=salt"], None)
    (sweep / "1" / ".hydra" / "hydra.yaml").write_text(yaml.safe_dump({"hydra": {"runtime": {"choices": {
        "task": "formulate", "post": "salt"}}}}))
    printed = SweepReport().report(sweep)
    assert "| none | 2 | 0/dataset |" in printed and "| salt | missing | missing |" in printed
