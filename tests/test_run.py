"""The whole pipeline end to end, through the real config, store and entry point."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import ROOT
from PIL import Image

from odin.run import run

SMALL = ["experiment=smoke", "logger=none"]


def test_embedded_run_end_to_end(compose, tmp_path):
    metrics = run(compose(*SMALL), output_dir=tmp_path / "run")
    out = tmp_path / "run"
    saved = json.loads((out / "metrics.json").read_text())
    assert saved["labels"] == ["zero", "one", "seven"]
    assert saved["images"]["made"] == 3 * 2 * 4 and saved["train_images"] == {"generated": 24, "real": 0, "held_out": 0}
    assert saved["test_images"] == metrics["test_images"] == 178 + 182 + 179  # every real 0, 1 and 7
    [epoch] = saved["history"]
    assert (saved["top1"], saved["top3"], saved["best_epoch"]) == (epoch["top1"], epoch["top3"], 1)
    assert saved["training"]["status"] == "trained"
    assert Image.open(out / "samples.png").size[0] > 100 and (out / "curves.png").exists()
    again = run(compose(*SMALL), output_dir=tmp_path / "run2")
    assert again["images"]["made"] == 0 and again["images"]["reused"] == 24
    assert again["history"] == metrics["history"]  # the finished training was read, not redone ...
    assert again["training"]["status"] == "cached"  # ... and says so


@pytest.mark.slow
def test_a_cached_rerun_imports_no_model_library_and_copies_its_pictures(tmp_path):
    """The rerun reads the finished training's summary: timm, scikit-learn and matplotlib stay unimported."""
    def run_py(name):
        done = subprocess.run([sys.executable, "-X", "importtime", str(ROOT / "run.py"), *SMALL,
                               f"paths.store={tmp_path / 'store'}", f"hydra.run.dir={tmp_path / name}"],
                              cwd=tmp_path, capture_output=True, text=True, timeout=600)
        assert done.returncode == 0, done.stderr[-3000:]
        return {line.rsplit("|", 1)[-1].strip() for line in done.stderr.splitlines() if line.startswith("import time")}

    first, again = run_py("first"), run_py("again")
    assert {"timm", "sklearn", "matplotlib"} <= first  # the import list is read right
    assert not {"timm", "sklearn", "matplotlib"} & again
    assert json.loads((tmp_path / "again" / "metrics.json").read_text())["training"]["status"] == "cached"
    for picture in ("samples.png", "curves.png"):
        assert (tmp_path / "again" / picture).read_bytes() == (tmp_path / "first" / picture).read_bytes()


def test_formulate_writes_just_the_dataset(compose, tmp_path):
    from torchvision.datasets import ImageFolder

    metrics = run(compose("task=formulate", "labels=[three,seven]", "prompt.num_prompts=2",
                          "diffusion.images_per_prompt=3"), output_dir=tmp_path / "run")
    dataset = Path(metrics["dataset"])
    assert sorted(ImageFolder(str(dataset)).classes) == ["seven", "three"]
    rows = [json.loads(line) for line in (dataset / "metadata.jsonl").read_text().splitlines()]
    assert len(rows) == 12 and {r["label"] for r in rows} == {"three", "seven"}
    assert all((dataset / r["file_name"]).exists() and r["prompt"] and "seed" in r for r in rows)
    assert "top1" not in metrics


def test_post_to_test_set_switch_changes_the_test_images_only(compose, tmp_path):
    plain = run(compose(*SMALL, "post=salt", "post.amount=0.4"), output_dir=tmp_path / "a")
    both = run(compose(*SMALL, "post=salt", "post.amount=0.4", "post.apply_to_test=true"), output_dir=tmp_path / "b")
    assert plain["post"]["made"] == 24 and both["post"]["made"] == 0  # the same training images
    assert [h["train_loss"] for h in both["history"]] == [h["train_loss"] for h in plain["history"]]
    assert [(h["top1"], h["top3"]) for h in both["history"]] != [(h["top1"], h["top3"]) for h in plain["history"]]


@pytest.mark.parametrize(
    "overrides, words",
    [(["labels=[]"], ["labels", "empty"]),
     (["labels=[beagle]", "task=formulate"], ["beagle", "glyph"]),
     (["labels=[beagle]"], ["beagle", "classes"]),
     (["prompt.num_prompts=-2"], ["prompt.num_prompts"]),
     (["diffusion.images_per_prompt=0"], ["diffusion.images_per_prompt"]),
     (["train.epochs=0"], ["train.epochs"])],
)
def test_bad_input_fails_before_any_work(compose, tmp_path, overrides, words):
    with pytest.raises(ValueError) as err:
        run(compose(*SMALL, *overrides), output_dir=tmp_path / "run")
    assert all(w in str(err.value) for w in words), str(err.value)
    assert not (tmp_path / "store" / "images").exists()  # nothing was generated


def _run_py(*args, cwd):
    return subprocess.run([sys.executable, str(ROOT / "run.py"), *args], cwd=cwd, capture_output=True,
                          text=True, timeout=600)


@pytest.mark.slow
def test_local_sweep_generates_once_and_post_processes_once_each(tmp_path):
    posts = "none,blur,gaussian,localvar,poisson,salt,pepper,saltpepper,speckle"
    done = _run_py("-m", f"post={posts}", *SMALL, f"paths.store={tmp_path / 'store'}",
                   f"hydra.sweep.dir={tmp_path / 'sweep'}", cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    jobs = [json.loads(p.read_text()) for p in sorted((tmp_path / "sweep").glob("*/metrics.json"))]
    assert len(jobs) == 9
    made = [j["images"]["made"] for j in jobs]
    assert sum(made) == 24 and made[0] == 24  # generated once, by the first job; reused by the rest
    post_made = {j["post"]["name"]: j["post"]["made"] for j in jobs}
    assert post_made.pop("none") == 0 and set(post_made.values()) == {24}
    assert len(list((tmp_path / "store" / "post").glob("[!.]*"))) == 8


def test_cli_help_and_cfg_do_not_import_torch(tmp_path):
    done = _run_py("--cfg", "job", "post=salt", "model=resnext", cwd=tmp_path)
    assert done.returncode == 0 and "resnext101_64x4d" in done.stdout and "mode: salt" in done.stdout
    probe = subprocess.run(
        [sys.executable, "-c", "import sys, runpy; sys.argv = ['run.py', '--cfg', 'job']\n"
         "try:\n    runpy.run_path('run.py', run_name='__main__')\nexcept SystemExit:\n    pass\n"
         "print('torch' in sys.modules)"],
        cwd=ROOT, capture_output=True, text=True)
    assert probe.stdout.strip().splitlines()[-1] == "False", probe.stdout[-500:] + probe.stderr[-2000:]

def test_typo_on_the_command_line_is_one_clear_error(tmp_path):
    done = _run_py("train.epocs=3", cwd=tmp_path)
    assert done.returncode != 0 and "train.epocs" in done.stderr
    assert "Traceback" not in done.stderr


def test_batch_size_changes_no_image_and_reuses_the_cache(compose, tmp_path):
    args = ["task=formulate", "labels=[two]", "prompt.num_prompts=2", "diffusion.images_per_prompt=5"]
    one = run(compose(*args, "diffusion.batch_size=1", store=tmp_path / "a"), output_dir=tmp_path / "one")
    many = run(compose(*args, "diffusion.batch_size=64", store=tmp_path / "b"), output_dir=tmp_path / "many")
    files = sorted(p.relative_to(one["dataset"]) for p in Path(one["dataset"]).rglob("*.png"))
    assert len(files) == 10
    for name in files:
        assert (Path(one["dataset"]) / name).read_bytes() == (Path(many["dataset"]) / name).read_bytes()
    reused = run(compose(*args, "diffusion.batch_size=3", store=tmp_path / "a"), output_dir=tmp_path / "again")
    assert reused["images"]["made"] == 0 and reused["images"]["folder"] == one["images"]["folder"]


def test_same_config_trains_the_same_model(compose, tmp_path):
    a = run(compose(*SMALL, "labels=[zero,one]"), output_dir=tmp_path / "a")
    b = run(compose(*SMALL, "labels=[zero,one]", store=tmp_path / "other"), output_dir=tmp_path / "b")
    assert b["images"]["made"] == a["images"]["made"] > 0  # made again in another store ...
    assert a["history"] == b["history"]  # ... and trained again from the same initial weights


def test_shards_make_exactly_the_unsharded_images(compose, tmp_path):
    args = ["experiment=smoke", "logger=none", "task=formulate", "prompt.num_prompts=3",
            "diffusion.images_per_prompt=2"]
    made = [run(compose(*args, f"shard={k}", "num_shards=4", store=tmp_path / "sharded"), output_dir=tmp_path / f"s{k}")
            ["images"]["made"] for k in range(4)]
    whole = run(compose(*args, store=tmp_path / "whole"), output_dir=tmp_path / "whole-run")
    assert sum(made) == whole["images"]["made"] == 3 * 3 * 2 and max(made) < 18  # split, and nothing twice
    again = run(compose(*args, store=tmp_path / "sharded"), output_dir=tmp_path / "after")
    assert again["images"]["made"] == 0
    def images(store):  # the generated images (the store also keeps each run's sample grid, under grids/)
        return {p.relative_to(store): p.read_bytes() for p in (store / "images").rglob("*.png")}

    sharded, unsharded = images(tmp_path / "sharded"), images(tmp_path / "whole")
    assert sorted(sharded) == sorted(unsharded)  # the same files (a short message when not)
    assert sharded == unsharded  # bit-identical, file for file
