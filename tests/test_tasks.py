"""task=diversity, task=detect and post=auto on the embedded digits and tiny image folders."""

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from odin.errors import ConfigError
from odin.run import run

TINY = ["logger=none", "prompt.num_prompts=2", "diffusion.images_per_prompt=4", "train.epochs=2"]


def test_diversity_matches_scikit_image_and_writes_its_figure(compose, tmp_path):
    from hydra.utils import instantiate
    from skimage.metrics import structural_similarity

    from odin.image_sets import real_by_class
    from odin.metrics.images import as_tensor

    cfg = compose(*TINY, "task=diversity", "labels=[zero,seven]", "task.max_per_class=6", "task.image_size=16")
    metrics = run(cfg, output_dir=tmp_path / "run")
    saved = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert saved["diversity"]["settings"] == {**saved["diversity"]["settings"], "image_size": 16, "win_size": 7,
                                              "gray": True, "data_range": 1.0, "max_per_class": 6}
    assert saved["diversity"]["generated"]["classes"]["zero"]["pairs"] == 6 * 5 // 2  # 8 made, 6 drawn
    assert saved["diversity"]["real"]["pooled"]["pairs"] == 2 * 15
    assert "skipped" in saved["colorfulness"]  # load_digits is gray
    assert (tmp_path / "run" / "diversity.png").stat().st_size > 5000 and (tmp_path / "run" / "report.md").exists()

    # One class recomputed pair by pair with scikit-image on the same images.
    real, _ = real_by_class(instantiate(cfg.dataset), ["zero", "seven"], 6, cfg.seed)
    x = as_tensor(real["seven"], 16, gray=True)[:, 0].numpy()
    pairs = [structural_similarity(x[i], x[j], data_range=1.0, win_size=7) for i in range(6) for j in range(i + 1, 6)]
    found = metrics["diversity"]["real"]["classes"]["seven"]
    assert found["mean"] == pytest.approx(np.mean(pairs), abs=1e-6)
    assert found["sd"] == pytest.approx(np.std(pairs), abs=1e-6)


def test_colorfulness_per_class_by_hand():
    from odin.tasks.diversity import colorfulness_by_class

    red = np.zeros((8, 8, 3), np.float32)
    red[..., 0] = 1.0  # rg = 255, yb = 127.5, no spread: M = 0.3 * sqrt(255^2 + 127.5^2)
    gray = np.full((8, 8, 3), 0.5, np.float32)  # no colour at all: M = 0
    found = colorfulness_by_class({"generated": {"apple": [red, red]}, "real": {"apple": [gray]}})
    assert found["generated"]["apple"]["mean"] == pytest.approx(0.3 * np.hypot(255, 127.5))
    assert found["real"]["apple"]["values"] == [pytest.approx(0.0)]


def _folder(root: Path, labels, make) -> Path:
    """A dataset=folder tree: <root>/<label>/<i>.png, 12 images each, from make(label, i) -> PIL image."""
    for label in labels:
        (root / label).mkdir(parents=True)
        for i in range(12):
            make(label, i).save(root / label / f"{i}.png")
    return root


def test_detect_separates_obviously_different_sets_and_caches_its_detector(compose, tmp_path):
    rng = np.random.default_rng(0)
    dark = _folder(tmp_path / "real", ["zero", "one"],  # dark noise: nothing like white glyph pages
                   lambda label, i: Image.fromarray(rng.integers(0, 60, (64, 64, 3), dtype=np.uint8)))
    args = [*TINY, "task=detect", "labels=[zero,one]", "dataset=folder", f"dataset.root={dark}",
            "dataset.test_fraction=0.5", "train.epochs=6"]
    metrics = run(compose(*args), output_dir=tmp_path / "run")
    gap = metrics["detect"]
    assert gap["accuracy"] >= 90 and gap["real_split"] == "test"
    assert gap["heldout_images"] == 2 * 2 * 2 and gap["train_images"] == 2 * 2 * 4  # 6 per class and source, 30%
    again = run(compose(*args), output_dir=tmp_path / "again")
    assert again["detect"]["status"] == "cached" and again["detect"]["checkpoint"] == gap["checkpoint"]


def test_auto_post_picks_the_candidate_closest_to_real_and_records_why(compose, tmp_path):
    from odin.post import PostProcessor

    # Real images: glyphs of another seed, blurred twice. The blurred candidate is the closest to them.
    made = run(compose(*TINY, "task=formulate", "labels=[zero,one]", "seed=7", "diffusion.images_per_prompt=6",
                       store=tmp_path / "other"), output_dir=tmp_path / "formulated")
    blur = PostProcessor("blur", "blur", kernel_size=5)
    rows = [json.loads(line) for line in (Path(made["dataset"]) / "metadata.jsonl").read_text().splitlines()]
    by_label = {r["label"]: [] for r in rows}
    for r in rows:
        by_label[r["label"]].append(r["file_name"])
    real = _folder(tmp_path / "real", ["zero", "one"], lambda label, i: blur(
        blur(Image.open(Path(made["dataset"]) / by_label[label][i]).convert("RGB"), 0), 0))
    args = [*TINY, "labels=[zero,one]", "dataset=folder", f"dataset.root={real}", "dataset.test_fraction=0.5",
            "model.input_size=64", "post=auto", "post.criterion=kid", "post.max_per_class=6",
            "post.candidates=[none,salt,blur]"]
    metrics = run(compose(*args), output_dir=tmp_path / "run")
    auto = metrics["post"]["auto"]
    assert auto["chosen"] == "blur" == metrics["post"]["name"]
    assert set(auto["scores"]) == {"none", "salt", "blur"} and auto["scores"]["blur"] == min(auto["scores"].values())
    assert auto["real_split"] == "train"  # the folder's training split, not its test images
    assert metrics["post"]["made"] + metrics["post"]["reused"] == metrics["train_images"]["generated"] == 16  # blur
    assert "top1" in metrics and "auto" in (tmp_path / "run" / "report.md").read_text()


def test_auto_post_with_the_detector_scores_every_candidate(compose, tmp_path):
    # A case whose answer is known without the code's rule: salt at amount 1 turns every generated pixel
    # white (a blank digit once acquired), which no real digit looks like, so a working detector finds those
    # images more easily than the untouched ones. It is listed first, so a tie (a detector that learnt
    # nothing) would choose it. Batches of 8: enough steps for BatchNorm's running statistics to settle,
    # else the detector in eval mode calls every held-out image one class and both score alike.
    metrics = run(compose(*TINY, "experiment=smoke", "post=auto", "post.candidates=[salt,none]",
                          "post.options.salt.amount=1.0", "diffusion.images_per_prompt=8", "post.max_per_class=16",
                          "train.epochs=3", "train.batch_size=8"), output_dir=tmp_path / "run")
    auto = metrics["post"]["auto"]
    assert set(auto["details"]) == {"none", "salt"} and auto["criterion"] == "detect"
    assert auto["scores"] == {k: v["accuracy"] for k, v in auto["details"].items()}
    assert auto["scores"]["salt"] > auto["scores"]["none"] and auto["chosen"] == "none"
    assert auto["real_split"] == "test"  # digits have no training split: test images, pooled, labels unused


@pytest.mark.parametrize("override, words", [("post.candidates=[none,sparkle]", "post.candidates"),
                                             ("post.options.salt.amount=5", "post.options.salt.amount=5 is out of range")])
def test_auto_post_refuses_bad_candidates_before_any_work(compose, tmp_path, override, words):
    with pytest.raises(ConfigError, match=words):
        run(compose(*TINY, "post=auto", override), output_dir=tmp_path / "run")
    assert not (tmp_path / "store" / "images").exists()
