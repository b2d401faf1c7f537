import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from backends import SeedSquares
from PIL import Image

from odin.post import PostProcessor
from odin.prompts import LabelPrompts
from odin.store import Store, config_hash, derive_seed, label_slug

PROMPTS = {
    "seven": LabelPrompts("seven", ["a seven", "a bold seven"]),
    "three": LabelPrompts("three", ["a three", "a thin three"]),
}


def test_label_slugs_stay_inside_and_never_collide():
    labels = ["seven", "a/b", "a_b", "..", ".", "../../etc", "golden retriever", "crème brûlée", "A", "a", ""]
    slugs = [label_slug(label) for label in labels]
    assert len(set(slugs)) == len(labels)
    for slug in slugs:
        assert slug and "/" not in slug and "\\" not in slug and slug not in {".", ".."}
        assert slug.isascii() and not slug.startswith(".")
    assert label_slug("seven") == "seven"  # plain names stay readable


def test_seed_depends_on_identity_not_position():
    assert derive_seed(0, "seven", 1, 2) == derive_seed(0, "seven", 1, 2)
    assert len({derive_seed(0, "seven", p, i) for p in range(10) for i in range(10)}) == 100
    assert derive_seed(1, "seven", 1, 2) != derive_seed(0, "seven", 1, 2)


def test_speed_settings_do_not_change_the_image_key_but_settings_do():
    from odin.keys import images_config

    backend = SeedSquares()
    small, large = images_config({"a": 1, "batch_size": 4}, backend), images_config({"a": 1, "batch_size": 64}, backend)
    assert config_hash(small) == config_hash(large)
    assert config_hash(images_config({"a": 1}, backend)) != config_hash(images_config({"a": 2}, backend))


def test_images_are_made_once_and_reused(tmp_path):
    store, backend = Store(tmp_path), SeedSquares()
    first = store.images({"b": 1}, backend, PROMPTS, seed=0)
    assert (first.made, first.reused) == (12, 0)
    again = store.images({"b": 1}, SeedSquares(), PROMPTS, seed=0)
    assert (again.made, again.reused) == (0, 12)
    assert [r["file_name"] for r in again.rows] == [r["file_name"] for r in first.rows]
    # a subset of labels reuses the same folder; another seed is another folder
    subset = store.images({"b": 1}, SeedSquares(), {"three": PROMPTS["three"]}, seed=0)
    assert (subset.made, subset.path) == (0, first.path)
    assert store.images({"b": 1}, SeedSquares(), PROMPTS, seed=1).path != first.path


def test_folder_is_an_imagefolder_with_metadata(tmp_path):
    from torchvision.datasets import ImageFolder

    folder = Store(tmp_path).images({"b": 1}, SeedSquares(), PROMPTS, seed=0)
    dataset = ImageFolder(str(folder.path))
    assert sorted(dataset.classes) == ["seven", "three"] and len(dataset) == 12
    rows = [json.loads(line) for line in (folder.path / "metadata.jsonl").read_text().splitlines()]
    assert len(rows) == 12
    assert {"file_name", "label", "prompt", "seed", "generator"} <= set(rows[0])
    assert all((folder.path / r["file_name"]).exists() for r in rows)


def test_image_seeds_do_not_depend_on_which_labels_run_together(tmp_path):
    both = Store(tmp_path / "a").images({}, SeedSquares(), PROMPTS, seed=0)
    alone = Store(tmp_path / "b").images({}, SeedSquares(), {"three": PROMPTS["three"]}, seed=0)
    for row in alone.rows:
        a = (both.path / row["file_name"]).read_bytes()
        assert a == (alone.path / row["file_name"]).read_bytes()


def test_post_is_cached_per_images_and_post_config(tmp_path):
    store = Store(tmp_path)
    images = store.images({}, SeedSquares(), PROMPTS, seed=0)
    salt = PostProcessor("salt", "salt", amount=0.2)
    out = store.post({"mode": "salt"}, salt, images)
    assert (out.made, len(out.rows)) == (12, 12)
    assert store.post({"mode": "salt"}, salt, images).made == 0
    original = Image.open(images.path / images.rows[0]["file_name"])
    noisy = Image.open(out.path / out.rows[0]["file_name"])
    assert original.size == noisy.size and original.tobytes() != noisy.tobytes()
    assert out.rows[0]["post"] == {"mode": "salt", "amount": 0.2} and out.rows[0]["prompt"] == images.rows[0]["prompt"]


def _count_pngs(root: Path) -> int:
    return len(list(root.glob("images/*/*/*.png")))


WORKER = """
import sys
sys.path.insert(0, {tests!r})
from backends import SeedSquares
from odin.prompts import LabelPrompts
from odin.store import Store
prompts = {{l: LabelPrompts(l, [f"{{l}} {{i}}" for i in range(6)]) for l in ["one", "two"]}}
f = Store({root!r}).images({{}}, SeedSquares(images_per_prompt=5, delay={delay}), prompts, seed=0)
print("MADE", f.made, flush=True)
"""


def _worker(root: Path, delay: float) -> subprocess.Popen:
    code = WORKER.format(tests=str(Path(__file__).parent), root=str(root), delay=delay)
    return subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True,
                            env={**os.environ, "ODIN_PROGRESS": "0"})


def test_sigkill_in_the_middle_resumes_without_loss_or_duplicates(tmp_path):
    job = _worker(tmp_path, delay=0.03)
    deadline = time.time() + 30
    while _count_pngs(tmp_path) < 17 and time.time() < deadline:  # a few units done, one in flight
        time.sleep(0.01)
    os.kill(job.pid, signal.SIGKILL)
    job.wait()
    done_before = len(list(tmp_path.glob("images/.state/*/units/*/*.jsonl")))
    assert 0 < done_before < 12

    rerun = _worker(tmp_path, delay=0.0)
    out, _ = rerun.communicate(timeout=60)
    made = int(out.split("MADE")[1])
    assert made == (12 - done_before) * 5  # only the unfinished units were made again
    files = sorted(tmp_path.glob("images/*/*/*.png"))
    assert len(files) == 60 and not list(tmp_path.glob("images/*/*/.*.tmp"))
    for f in files:
        Image.open(f).verify()  # no truncated image survived the kill
    rows = (next(tmp_path.glob("images/[!.]*")) / "metadata.jsonl").read_text().splitlines()
    assert len(rows) == len({json.loads(r)["file_name"] for r in rows}) == 60


def test_concurrent_jobs_never_make_the_same_unit_twice(tmp_path):
    jobs = [_worker(tmp_path, delay=0.01) for _ in range(2)]
    made = [int(job.communicate(timeout=60)[0].split("MADE")[1]) for job in jobs]
    assert sum(made) == 60
    assert len(list(tmp_path.glob("images/*/*/*.png"))) == 60


def test_more_images_per_prompt_extends_fewer_reuses_a_prefix(tmp_path):
    store = Store(tmp_path)
    three = store.images({}, SeedSquares(images_per_prompt=3), PROMPTS, seed=0)
    five = store.images({}, SeedSquares(images_per_prompt=5), PROMPTS, seed=0)
    assert five.path == three.path and five.made == 20 and len(five.rows) == 20
    two = store.images({}, SeedSquares(images_per_prompt=2), PROMPTS, seed=0)
    assert two.made == 0 and len(two.rows) == 8 and {r["image_index"] for r in two.rows} == {0, 1}
    for row in three.rows:  # the same seeds drew the same first images
        assert row["seed"] in {r["seed"] for r in five.rows}
