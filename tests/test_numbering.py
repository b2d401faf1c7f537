"""One numbering of classes in an exported dataset: torchvision's ImageFolder, classes.txt, COCO, YOLO and a
`datasets` ClassLabel all give a label the same number (ImageFolder's: its folders sorted)."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import ROOT

# "Z" and "a" are folders "z-<hash>" and "a": sorted folders give [a, seven, Z], sorted labels [Z, a, seven],
# and the run's order is [seven, Z, a]: three different numberings, of which exports must use the first.
ARGS = ["experiment=smoke", "logger=none", "task=formulate", "labels=[seven,Z,a]", "prompt.num_prompts=1",
        "diffusion.images_per_prompt=2", "localize=attention"]


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    tmp = tmp_path_factory.mktemp("numbering")
    done = subprocess.run([sys.executable, str(ROOT / "run.py"), *ARGS, f"paths.store={tmp / 'store'}",
                           f"hydra.run.dir={tmp / 'run'}"], cwd=tmp, capture_output=True, text=True, timeout=600,
                          env={**os.environ, "ODIN_PROGRESS": "0"})
    assert done.returncode == 0, done.stderr[-3000:]
    return tmp / "run" / "dataset"


def test_imagefolder_classes_txt_coco_and_yolo_number_classes_alike(dataset):
    from torchvision.datasets import ImageFolder

    rows = [json.loads(line) for line in (dataset / "metadata.jsonl").read_text().splitlines()]
    folder_of = {r["label"]: r["file_name"].split("/")[0] for r in rows}
    index = ImageFolder(str(dataset)).class_to_idx  # folder name -> number
    number = {label: index[folder] for label, folder in folder_of.items()}
    assert number == {"a": 0, "seven": 1, "Z": 2}
    assert (dataset / "classes.txt").read_text().splitlines() == ["a", "seven", "Z"]
    coco = json.loads((dataset / "annotations.json").read_text())
    assert {c["name"]: c["id"] - 1 for c in coco["categories"]} == number
    by_image = {i["id"]: i["file_name"] for i in coco["images"]}
    label_of = {r["file_name"]: r["label"] for r in rows}
    for ann in coco["annotations"]:
        assert ann["category_id"] - 1 == number[label_of[by_image[ann["image_id"]]]]
    for row in rows:
        line = (dataset / row["file_name"]).with_suffix(".txt").read_text().split()
        assert not line or int(line[0]) == number[row["label"]]


def test_datasets_reads_the_label_as_a_classlabel_with_the_same_numbers(dataset):
    """README's recipe (odin.store.export): `label` is a string column; cast it with classes.txt's names."""
    datasets = pytest.importorskip("datasets")
    ds = datasets.load_dataset("imagefolder", data_dir=str(dataset), split="train")
    assert ds.features["label"].dtype == "string"  # the metadata's label, not the folder names
    names = (dataset / "classes.txt").read_text().splitlines()
    ds = ds.cast_column("label", datasets.ClassLabel(names=names))
    assert ds.features["label"].names == ["a", "seven", "Z"]
    rows = {json.loads(line)["file_name"]: json.loads(line)["label"]
            for line in (dataset / "metadata.jsonl").read_text().splitlines()}
    assert sorted(ds["label"]) == sorted(names.index(label) for label in rows.values())
