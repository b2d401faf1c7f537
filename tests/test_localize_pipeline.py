"""localize=attention through the real config, store and entry point: heatmaps made and cached with
their images, and task=formulate exporting a detection dataset (COCO JSON, YOLO txt, heatmap grid)."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import ROOT
from PIL import Image
from tiny_sd import build_tiny_sd

from odin.generate.glyph import GlyphGenerator
from odin.localize.boxes import heatmap_path, ink_mask, load_heatmap
from odin.run import run

GLYPH = ["experiment=smoke", "task=formulate", "logger=none"]  # 3 labels x 2 prompts x 4 images


def rows_of(folder: Path) -> list[dict]:
    return [json.loads(line) for line in (folder / "metadata.jsonl").read_text().splitlines()]


def png_files(folder: Path) -> dict[str, tuple[bytes, int, int]]:
    """Each image's bytes, modification time and inode: what "untouched" means."""
    out = {}
    for path in sorted(folder.rglob("*.png")):
        stat = path.stat()
        out[str(path.relative_to(folder))] = (path.read_bytes(), stat.st_mtime_ns, stat.st_ino)
    return out


def box_of(mask: np.ndarray) -> tuple[int, int, int, int]:
    """(x0, y0, x1, y1), x1 and y1 exclusive: straight from the pixel coordinates."""
    ys, xs = np.nonzero(mask)
    return int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1


def iou(a, b) -> float:
    ix = max(0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    area = lambda r: (r[2] - r[0]) * (r[3] - r[1])  # noqa: E731
    return inter / (area(a) + area(b) - inter)


# ---- the embedded glyphs: a detection dataset offline -------------------------------------------
@pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")  # pycocotools on numpy 2
def test_glyph_formulate_exports_coco_and_yolo_with_the_exact_ink_boxes(compose, tmp_path):
    from pycocotools.coco import COCO

    metrics = run(compose(*GLYPH, "localize=attention"), output_dir=tmp_path / "run")
    dataset = Path(metrics["dataset"])
    rows = rows_of(dataset)
    assert len(rows) == 24 and metrics["localize"]["boxes"] == 24

    coco = COCO(str(dataset / "annotations.json"))
    labels = ["one", "seven", "zero"]  # the run's [zero, one, seven] numbered as ImageFolder numbers their folders
    assert [c["name"] for c in coco.loadCats(coco.getCatIds())] == labels
    glyph = GlyphGenerator(size=64)
    for image in coco.loadImgs(coco.getImgIds()):
        row = next(r for r in rows if r["file_name"] == image["file_name"])
        anns = coco.loadAnns(coco.getAnnIds(imgIds=image["id"]))
        assert len(anns) == 1 and coco.loadCats(anns[0]["category_id"])[0]["name"] == row["label"]
        # the glyph's own ink, drawn again from (label, prompt, seed)
        ink = glyph.draw(row["label"], row["prompt"], row["seed"], heatmap=True).heatmap > 0
        x, y, w, h = anns[0]["bbox"]
        assert iou((x, y, x + w, y + h), box_of(ink)) == 1.0
        assert np.array_equal(coco.annToMask(anns[0]).astype(bool), ink)  # the RLE mask is the ink itself
        # and the ink seen in the pixels alone lies inside that box
        seen = ink_mask(Image.open(dataset / row["file_name"]))
        sx0, sy0, sx1, sy1 = box_of(seen)
        assert x <= sx0 and y <= sy0 and sx1 <= x + w and sy1 <= y + h

    classes = (dataset / "classes.txt").read_text().split()
    assert classes == labels
    for row, image in zip(rows, [coco.imgs[i] for i in sorted(coco.imgs)], strict=True):
        line = (dataset / row["file_name"]).with_suffix(".txt").read_text().split()
        cls, cx, cy, w, h = int(line[0]), *map(float, line[1:])
        assert classes[cls] == row["label"] and len(line) == 5
        x, y, bw, bh = coco.loadAnns(coco.getAnnIds(imgIds=image["id"]))[0]["bbox"]
        assert (cx, cy, w, h) == pytest.approx(((x + bw / 2) / 64, (y + bh / 2) / 64, bw / 64, bh / 64), abs=1e-6)
    grid = Path(metrics["localize"]["grid"])
    assert grid == tmp_path / "run" / "heatmaps.png" and Image.open(grid).size[0] > 200


def test_heatmaps_change_no_image_and_are_made_alone_for_images_made_without_them(compose, tmp_path, caplog):
    caplog.set_level(logging.INFO, logger="odin")
    plain = run(compose(*GLYPH, store=tmp_path / "a"), output_dir=tmp_path / "plain")
    images = Path(plain["images"]["folder"])
    before = png_files(images)
    assert len(before) == 24 and not list(images.rglob("*.heat.npz"))
    assert not list(Path(plain["dataset"]).rglob("*.heat.npz")) and "localize" not in plain

    caplog.clear()
    later = run(compose(*GLYPH, "localize=attention", store=tmp_path / "a"), output_dir=tmp_path / "later")
    assert later["images"]["made"] == 0 and later["images"]["reused"] == 24
    assert png_files(images) == before  # the same bytes, never rewritten
    assert "made heatmaps only for 24 images made earlier without them" in caplog.text
    rows = rows_of(images)
    assert all((images / r["heatmap"]).stat().st_size == r["heatmap_bytes"] for r in rows)
    assert later["localize"]["boxes"] == 24

    fresh = run(compose(*GLYPH, "localize=attention", store=tmp_path / "b"), output_dir=tmp_path / "fresh")
    assert fresh["images"]["folder"].replace(str(tmp_path / "b"), "") == str(images).replace(str(tmp_path / "a"), "")
    made_with = png_files(Path(fresh["images"]["folder"]))
    assert {k: v[0] for k, v in made_with.items()} == {k: v[0] for k, v in before.items()}  # the same PNG bytes

    # a damaged heatmap is found by its recorded size, and only its unit's heatmaps are made again
    victim = images / rows[5]["heatmap"]
    victim.write_bytes(victim.read_bytes()[:20])
    caplog.clear()
    again = run(compose(*GLYPH, "localize=attention", store=tmp_path / "a"), output_dir=tmp_path / "again")
    assert again["images"]["made"] == 0 and png_files(images) == before
    assert "remaking the heatmaps of" in caplog.text and "made heatmaps only for 4 images" in caplog.text
    assert load_heatmap(victim).shape == (64, 64)

    caplog.clear()
    run(compose(*GLYPH, "localize=attention", store=tmp_path / "a"), output_dir=tmp_path / "cached")
    assert "made heatmaps only" not in caplog.text and "remaking" not in caplog.text


def test_post_processed_folders_carry_the_same_heatmaps(compose, tmp_path):
    metrics = run(compose(*GLYPH, "localize=attention", "post=blur"), output_dir=tmp_path / "run")
    images, post = Path(metrics["images"]["folder"]), Path(metrics["post"]["folder"])
    by_unit = {(r["unit"], r["image_index"]): r for r in rows_of(images)}
    post_rows = rows_of(post)
    assert len(post_rows) == 24
    for row in post_rows:
        source = by_unit[(row["unit"], row["image_index"])]
        assert np.array_equal(load_heatmap(post / row["heatmap"]), load_heatmap(images / source["heatmap"]))
        exported = heatmap_path(Path(metrics["dataset"]) / row["file_name"])
        assert np.array_equal(load_heatmap(exported), load_heatmap(post / row["heatmap"]))


def test_a_backend_that_cannot_localize_is_refused_up_front():
    from backends import SeedSquares

    from odin.errors import ConfigError
    from odin.localize.detection import check_backend
    from odin.prompts import LabelPrompts

    with pytest.raises(ConfigError, match=r"localize=attention: the diffusion backend SeedSquares .*localize=none"):
        check_backend(SeedSquares(), {"cat": LabelPrompts("cat", ["a cat"])})


def test_a_bad_threshold_names_the_key(compose, tmp_path):
    from odin.errors import ConfigError

    with pytest.raises(ConfigError, match=r"localize.threshold=1.5 .*otsu"):
        run(compose(*GLYPH, "localize=attention", "localize.threshold=1.5"), output_dir=tmp_path / "run")
    metrics = run(compose(*GLYPH, "localize=attention", "localize.threshold=otsu", "labels=[seven]"),
                  output_dir=tmp_path / "otsu")
    assert metrics["localize"]["boxes"] == 8  # a binary ink map splits at its one step


# ---- a diffusers pipeline: the label tokens' cross-attention ---------------------------------------
@pytest.fixture(scope="module")
def tiny_sd(tmp_path_factory):
    return str(build_tiny_sd(tmp_path_factory.mktemp("weights") / "tiny-sd"))


def sd(model: str) -> list[str]:
    return ["diffusion=sd2", f"diffusion.model={model}", "diffusion.height=64", "diffusion.width=64",
            "diffusion.steps=2", "diffusion.images_per_prompt=2", "labels=[seven]", *GLYPH]  # fmt: skip


def test_tiny_sd_writes_a_heatmap_per_image_at_its_size_and_the_same_images(compose, tiny_sd, tmp_path):
    metrics = run(compose(*sd(tiny_sd), "localize=attention", store=tmp_path / "a"), output_dir=tmp_path / "run")
    folder = Path(metrics["images"]["folder"])
    rows = rows_of(folder)
    assert len(rows) == 4 and metrics["images"]["made"] == 4
    for row in rows:
        heat = load_heatmap(folder / row["heatmap"])
        assert heat.shape == (64, 64) and heat.min() == 0 and heat.max() == 1  # normalised, not flat
    assert len(json.loads((Path(metrics["dataset"]) / "annotations.json").read_text())["images"]) == 4

    plain = run(compose(*sd(tiny_sd), store=tmp_path / "b"), output_dir=tmp_path / "plain")
    with_maps = {k: v[0] for k, v in png_files(folder).items()}
    assert with_maps == {k: v[0] for k, v in png_files(Path(plain["images"]["folder"])).items()}


def test_an_image_redone_for_the_safety_checker_brings_its_own_heatmap(monkeypatch):
    from odin.generate.diffusers_backend import DiffusersGenerator

    calls = []

    def generate(pipe, prompts, seeds, label):  # the first try of seed 11 is blacked out
        calls.append((list(seeds), label))
        return ([Image.new("L", (8, 8), s) for s in seeds], [s == 11 for s in seeds],
                [np.full((8, 8), s / 100, np.float32) for s in seeds])

    gen = DiffusersGenerator(model="unused", images_per_prompt=2, batch_size=2, safety_retries=1)
    monkeypatch.setattr(gen, "pipeline", lambda: None)
    monkeypatch.setattr(gen, "_generate", generate)
    out = gen("cat", ["a cat"] * 2, [11, 22], heatmaps=True)
    assert calls == [([11, 22], "cat"), ([12], "cat")]
    assert [g.heatmap[0, 0] for g in out] == pytest.approx([0.12, 0.22])
    assert [g.info["seed_used"] for g in out] == [12, 22]


@pytest.mark.slow
def test_a_prompt_without_the_label_fails_before_any_image_naming_it(tiny_sd, tmp_path):
    done = subprocess.run(
        [sys.executable, str(ROOT / "run.py"), *sd(tiny_sd), "localize=attention", "prompt=naive",
         "prompt.template='{label}s on a table'", f"paths.store={tmp_path / 'store'}",
         f"hydra.run.dir={tmp_path / 'run'}"],
        cwd=tmp_path, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 1, done.stderr[-3000:]
    assert "Traceback" not in done.stderr, done.stderr[-3000:]
    errors = [line for line in done.stderr.splitlines() if line.startswith("Error: ")]
    assert len(errors) == 1 and "label 'seven' is not among the tokens" in errors[0], done.stderr[-3000:]
    assert "'sevens on a table'" in errors[0] and "localize=none" in errors[0]
    assert not (tmp_path / "store" / "images").exists()  # no image was made
