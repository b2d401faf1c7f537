"""Sweep tables (odin.tables, python -m odin.report) on synthetic multirun dirs, and a run's report.md."""

import csv
import json

import pytest
import yaml

from odin import tables
from odin.report import main, sweep_report, write_run_report

MODELS, DATASETS, POSTS = ["resnet", "vit"], ["pets", "food"], ["none", "blur", "salt"]


def write_job(job_dir, overrides: list[str], choices: dict, metrics: dict | None):
    """What Hydra writes into a job dir before the task runs, plus the run's metrics.json if it finished."""
    (job_dir / ".hydra").mkdir(parents=True)
    (job_dir / ".hydra" / "overrides.yaml").write_text(yaml.safe_dump(overrides))
    runtime_choices = {"hydra/launcher": "submitit_slurm", "train": "paper", **choices}
    (job_dir / ".hydra" / "hydra.yaml").write_text(yaml.safe_dump({"hydra": {"runtime": {"choices": runtime_choices}}}))
    if metrics is not None:
        (job_dir / "metrics.json").write_text(json.dumps(metrics))


def score(model, dataset, post) -> float:
    """A made-up top-1 where blur wins for resnet and salt for vit."""
    return {"resnet": 50, "vit": 60}[model] + {"pets": 10, "food": 0}[dataset] + {
        "none": 0, "blur": 5 if model == "resnet" else 1, "salt": 2 if model == "resnet" else 7}[post]


@pytest.fixture
def sweep(tmp_path):
    """model x dataset x post, 12 jobs (folders 0..11); job 7 (vit, pets, blur) failed: no metrics.json."""
    root = tmp_path / "multirun"
    jobs = [(m, d, p) for m in MODELS for d in DATASETS for p in POSTS]
    for n, (m, d, p) in enumerate(jobs):
        metrics = None if (m, d, p) == ("vit", "pets", "blur") else {"top1": score(m, d, p), "top3": 99.0}
        write_job(root / str(n), [f"model={m}", f"dataset={d}", f"post={p}", "experiment=paper/table3"],
                  {"model": m, "dataset": d, "post": p, "prompt": "chatgpt"}, metrics)
    (root / ".submitit" / "123").mkdir(parents=True)  # the submitit launcher's own folder: not a job
    (root / "multirun.yaml").write_text("hydra: {}\n")
    return root


def test_collect_reads_every_job_in_number_order_with_choices_and_failures(sweep):
    records = tables.collect(sweep)
    assert [r["job"] for r in records] == [str(n) for n in range(12)]  # 10 and 11 after 9
    assert records[0]["overrides"] == {"model": "resnet", "dataset": "pets", "post": "none",
                                       "experiment": "paper/table3"}
    assert records[0]["choices"]["prompt"] == "chatgpt" and "hydra/launcher" not in records[0]["choices"]
    assert [r["job"] for r in records if r["metrics"] is None] == ["7"]
    assert tables.varying_keys(records) == ["model", "dataset", "post"]


def test_pivot_with_best_post_column_and_a_failed_job(sweep):
    table = tables.pivot(tables.collect(sweep), rows=["model"], cols=["dataset", "post"], value="top1", best="post")
    assert table.col_labels == [("pets", "none"), ("pets", "blur"), ("pets", "salt"), ("pets", "best post"),
                                ("food", "none"), ("food", "blur"), ("food", "salt"), ("food", "best post")]
    assert table.cell(("resnet",), ("pets", "blur")).value == 65
    best = table.cell(("resnet",), ("pets", "best post"))
    assert (best.value, best.winner, best.partial) == (65, "blur", False)
    failed = table.cell(("vit",), ("pets", "blur"))
    assert failed.value is None and failed.text() == tables.MISSING
    vit_best = table.cell(("vit",), ("pets", "best post"))
    assert (vit_best.value, vit_best.winner, vit_best.partial) == (77, "salt", True)  # best of those that ran
    markdown = tables.to_markdown(table)
    assert "| model | pets / none | pets / blur | pets / salt | pets / best post |" in markdown
    assert "| vit | 70.00 | missing | 77.00 | 77.00 (salt)* |" in markdown
    assert "*: best over the post options that finished" in markdown


def test_best_outside_the_columns_reduces_each_cell(sweep):
    table = tables.pivot(tables.collect(sweep), rows=["dataset"], cols=["model"], best="post")
    cell = table.cell(("food",), ("vit",))
    assert (cell.value, cell.winner) == (67, "salt")
    assert table.cell(("pets",), ("resnet",)).text() == "65.00 (blur)"


def test_repeated_jobs_are_averaged_and_unrun_cells_are_marked(tmp_path):
    root = tmp_path / "seeds"
    for n, (seed, post, top1) in enumerate([(0, "none", 50.0), (1, "none", 54.0), (0, "blur", 60.0)]):
        write_job(root / str(n), [f"seed={seed}", f"post={post}"], {"post": post, "model": "small"},
                  {"top1": top1})
    write_job(root / "3", ["seed=1", "post=salt", "model=vit"], {"post": "salt", "model": "vit"}, None)
    table = tables.pivot(tables.collect(root), rows=["post"], cols=["model"])
    assert table.cell(("none",), ("small",)).text() == "52.00 ± 2.00 (n=2)"
    assert table.cell(("salt",), ("small",)).text() == tables.NOT_RUN  # no job had post=salt with model=small
    assert table.cell(("salt",), ("vit",)).text() == tables.MISSING


def test_cli_writes_markdown_csv_and_plot_into_the_sweep(sweep, capsys):
    main([str(sweep), "--rows", "model", "--cols", "dataset,post", "--best", "post"])
    printed = capsys.readouterr().out
    assert "| resnet | 60.00 | 65.00 | 62.00 | 65.00 (blur) |" in printed and "jobs without metrics.json: 7" in printed
    assert (sweep / "table.md").read_text().count("| vit |") == 1
    with (sweep / "table.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert rows[1]["model"] == "vit" and rows[1]["pets / blur"] == "missing"
    assert float(rows[0]["food / best post"]) == 55 and rows[0]["food / best post (which)"] == "blur"
    assert (sweep / "table.png").stat().st_size > 5000


def test_default_layout_and_other_values(sweep):
    result = sweep_report(sweep, value="top3", name="top3")  # rows: the first varied key; columns: the others
    assert result["table"].rows == ["model"] and result["table"].cols == ["dataset", "post"]
    assert "| resnet | 99.00 |" in result["markdown"] and (sweep / "top3.csv").exists()


def test_metrics_json_records_stand_in_for_hydra_files(tmp_path):
    """A launcher that leaves no .hydra folder: the run's own `overrides` / `choices` records are used."""
    for n, post in enumerate(["none", "blur"]):
        (tmp_path / str(n)).mkdir()
        (tmp_path / str(n) / "metrics.json").write_text(json.dumps(
            {"top1": 10.0 + n, "overrides": [f"post={post}"], "choices": {"model": "small"}}))
    table = tables.pivot(tables.collect(tmp_path), rows=["post"], cols=["model"])
    assert table.cell(("blur",), ("small",)).value == 11.0


def test_bad_sweep_dirs_and_layouts_are_clear_errors(tmp_path, sweep):
    (tmp_path / "empty").mkdir()
    with pytest.raises(SystemExit, match="no jobs"):
        main([str(tmp_path / "empty")])
    with pytest.raises(SystemExit, match="is not a folder"):
        main([str(tmp_path / "nope")])
    with pytest.raises(SystemExit, match="best='post' is a row key"):
        main([str(sweep), "--rows", "post", "--best", "post"])


def test_run_report_has_result_config_metrics_and_figures(tmp_path):
    (tmp_path / "samples.png").write_bytes(b"png")
    metrics = {"top1": 81.234, "top3": 95.0, "best_epoch": 3, "train_images": 240, "test_images": 539,
               "prompts": {str(k): ["a photo"] * 3 for k in range(20)}, "history": [{"epoch": 1}] * 5,
               "labels": ["zero", "one"], "timing": {"total_s": 12.5}}
    path = write_run_report(tmp_path, metrics, {"model": "small", "post": "blur", "train": {"lr": 2e-5}})
    text = path.read_text()
    assert path == tmp_path / "report.md"
    assert "**top-1 81.23%**, top-3 95.00% (best epoch 3) on 539 real test images" in text
    assert "| post | blur |" in text and "| train.lr | 2e-05 |" in text
    assert "| prompts | 20 entries |" in text and "| history | 5 items |" in text and "| labels | zero, one |" in text
    assert "![samples](samples.png)" in text and "curves.png" not in text  # only figures that exist


@pytest.mark.slow
def test_table_of_a_real_local_sweep(tmp_path):
    """The files Hydra really writes (basic launcher, run.py), not our imitation of them."""
    import subprocess
    import sys

    from conftest import ROOT

    done = subprocess.run([sys.executable, str(ROOT / "run.py"), "-m", "post=none,blur", "experiment=smoke",
                           "logger=none", f"paths.store={tmp_path / 'store'}", f"hydra.sweep.dir={tmp_path / 'sweep'}"],
                          cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    result = sweep_report(tmp_path / "sweep", rows=["model"], cols=["dataset", "post"], best="post")
    jobs = {json.loads((tmp_path / "sweep" / n / "metrics.json").read_text())["post"]["name"]:
            json.loads((tmp_path / "sweep" / n / "metrics.json").read_text())["top1"] for n in ("0", "1")}
    best = result["table"].cell(("small",), ("digits", "best post"))
    assert best.value == max(jobs.values()) and jobs[best.winner.split(" = ")[0]] == best.value
    assert result["table"].cell(("small",), ("digits", "blur")).value == jobs["blur"]
