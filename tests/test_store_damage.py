"""A damaged, shared or read-only store: found where it is read, named, remade; never lost or duplicated."""

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
from backends import SeedSquares
from conftest import ROOT
from PIL import Image

from odin.post import PostProcessor
from odin.prompts import LabelPrompts
from odin.run import run
from odin.store import Store

PROMPTS = {"seven": LabelPrompts("seven", ["a seven", "a bold seven"]),
           "three": LabelPrompts("three", ["a three", "a thin three"])}
SMALL = ["experiment=smoke", "logger=none", "labels=[zero,one]", "prompt.num_prompts=1",
         "diffusion.images_per_prompt=3"]


def _truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


@pytest.mark.parametrize("stage", ["images", "post"])
def test_a_truncated_image_is_found_named_and_remade(tmp_path, stage, caplog):
    store = Store(tmp_path)
    images = store.images({}, SeedSquares(), PROMPTS, seed=0)
    post = PostProcessor("salt", "salt", amount=0.2)
    folder = store.post({"mode": "salt"}, post, images) if stage == "post" else images
    victim = folder.path / folder.rows[0]["file_name"]
    original = victim.read_bytes()
    _truncate(victim)
    again = store.images({}, SeedSquares(), PROMPTS, seed=0)
    if stage == "post":
        again = store.post({"mode": "salt"}, post, again)
    assert again.made == 3  # that image's unit (3 images), nothing else
    assert victim.read_bytes() == original  # the same seed drew the same image again
    assert str(victim) in caplog.text and "missing or truncated" in caplog.text


def test_formulate_never_exports_a_damaged_image(compose, tmp_path):
    args = ["experiment=smoke", "logger=none", "task=formulate", "labels=[two]", "prompt.num_prompts=1",
            "diffusion.images_per_prompt=2", "post=none"]
    first = run(compose(*args), output_dir=tmp_path / "a")
    victim = Path(first["images"]["folder"]) / json.loads(
        (Path(first["dataset"]) / "metadata.jsonl").read_text().splitlines()[0])["file_name"]
    _truncate(victim)
    second = run(compose(*args), output_dir=tmp_path / "b")
    assert second["images"]["made"] == 2
    for path in Path(second["dataset"]).rglob("*.png"):
        Image.open(path).load()  # every exported image decodes


@pytest.mark.parametrize("damage", [b"", b"{not json", b"\x00\x01garbage\n"])
def test_a_damaged_unit_record_is_remade(tmp_path, damage, caplog):
    store = Store(tmp_path)
    first = store.images({}, SeedSquares(), PROMPTS, seed=0)
    marker = next((tmp_path / "images" / ".state" / first.key / "units").rglob("*.jsonl"))
    marker.write_bytes(damage)
    again = store.images({}, SeedSquares(), PROMPTS, seed=0)
    assert again.made == 3 and len(again.rows) == 12
    assert str(marker) in caplog.text  # an empty record too is named
    assert len((first.path / "metadata.jsonl").read_text().splitlines()) == 12


@pytest.mark.parametrize("damage", [b"", b"{not json", b'{"label": "seven"}', b'{"label": "seven", "prompts": []}'])
def test_damaged_prompts_are_made_again(tmp_path, damage, caplog):
    from odin.prompts.template import TemplatePrompts

    gen = TemplatePrompts("a {label} {style}", {"style": ["bold", "thin"]}, num_prompts=2)
    store = Store(tmp_path)
    _, first = store.prompts({"g": 1}, gen, ["seven"])
    [path] = (tmp_path / "prompts").glob("*/seven.json")
    path.write_bytes(damage)
    _, again = store.prompts({"g": 1}, gen, ["seven"])
    assert again["seven"].prompts == first["seven"].prompts
    assert damage == b"" or str(path) in caplog.text


@pytest.mark.parametrize("damage", ["empty", "truncated", "garbage", "not a checkpoint"])
def test_a_damaged_checkpoint_is_said_and_trained_again(compose, tmp_path, damage, caplog):
    first = run(compose(*SMALL), output_dir=tmp_path / "a")
    checkpoint = Path(first["training"]["checkpoint"])
    data = checkpoint.read_bytes()
    checkpoint.write_bytes({"empty": b"", "truncated": data[: len(data) // 2], "garbage": b"\x80\x04garbage" * 100,
                            "not a checkpoint": b"\x80\x04K\x07."}[damage])  # the last: pickle of 7
    again = run(compose(*SMALL), output_dir=tmp_path / "b")
    assert again["training"]["status"] == "trained" and again["history"] == first["history"]
    assert f"checkpoint {checkpoint} is damaged" in caplog.text
    assert torch_load_ok(checkpoint)


def torch_load_ok(path: Path) -> bool:
    import torch

    return set(torch.load(path, weights_only=False)) >= {"model", "optimizer", "history"}


def test_an_unchanged_prompt_keeps_its_images_when_more_prompts_are_asked_for(compose, tmp_path):
    args = ["experiment=smoke", "logger=none", "task=formulate", "labels=[two]", "diffusion.images_per_prompt=2"]
    five = run(compose(*args, "prompt.num_prompts=5"), output_dir=tmp_path / "a")
    six = run(compose(*args, "prompt.num_prompts=6"), output_dir=tmp_path / "b")
    assert five["prompts"]["two"] == six["prompts"]["two"][:5]  # template prompts: the first five are the same
    assert (five["images"]["made"], six["images"]["made"], six["images"]["reused"]) == (10, 2, 10)


def test_naive_copies_of_one_sentence_are_distinct_units(compose, tmp_path):
    done = run(compose("experiment=smoke", "logger=none", "task=formulate", "labels=[two]", "prompt=naive",
                       "prompt.num_prompts=3", "diffusion.images_per_prompt=2"), output_dir=tmp_path / "a")
    rows = [json.loads(line) for line in (Path(done["dataset"]) / "metadata.jsonl").read_text().splitlines()]
    assert len({r["prompt"] for r in rows}) == 1 and len({r["seed"] for r in rows}) == 6
    assert sorted(r["occurrence"] for r in rows) == [0, 0, 1, 1, 2, 2]


def _snapshot(root: Path) -> dict:
    return {p: (p.stat().st_mtime_ns, p.stat().st_size) for p in root.rglob("*")}


def test_a_store_holding_everything_is_only_read(compose, tmp_path):
    """Reading must not need write access: a rerun from a complete store changes no file and adds none."""
    run(compose(*SMALL, "post=salt"), output_dir=tmp_path / "a")
    before = _snapshot(tmp_path / "store")
    again = run(compose(*SMALL, "post=salt"), output_dir=tmp_path / "b")
    assert again["training"]["status"] == "cached" and _snapshot(tmp_path / "store") == before


WORKER = """
import sys, time
sys.path.insert(0, {tests!r})
import odin.store
from backends import SeedSquares
from odin.prompts import LabelPrompts
from odin.store import Store
slow_write = odin.store.atomic_write_bytes
def stalled(path, data):  # an NFS stall while the index is written
    if path.name == "metadata.jsonl":
        time.sleep({stall})
    slow_write(path, data)
odin.store.atomic_write_bytes = stalled
prompts = {{l: LabelPrompts(l, [f"{{l}} {{i}}" for i in range(3)]) for l in {labels!r}}}
f = Store({root!r}).images({{}}, SeedSquares(images_per_prompt=4, delay={delay}), prompts, seed=0)
print("MADE", f.made, flush=True)
"""


def _worker(root, labels, stall=0.0, delay=0.0):
    code = WORKER.format(tests=str(ROOT / "tests"), root=str(root), labels=labels, stall=stall, delay=delay)
    return subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "ODIN_PROGRESS": "0"})


def test_jobs_with_disjoint_labels_never_lose_index_rows(tmp_path):
    jobs = [_worker(tmp_path, ["one", "two"], stall=1.5), _worker(tmp_path, ["three", "four"], stall=0.0)]
    outs = [job.communicate(timeout=120) for job in jobs]
    assert all(job.returncode == 0 for job in jobs), [o[1][-2000:] for o in outs]
    [folder] = (tmp_path / "images").glob("[!.]*")
    rows = [json.loads(line) for line in (folder / "metadata.jsonl").read_text().splitlines()]
    assert len(rows) == len({r["file_name"] for r in rows}) == 4 * 3 * 4 == len(list(folder.rglob("*.png")))


def test_a_job_skips_units_another_job_holds_and_says_what_it_waits_for(tmp_path):
    from filelock import FileLock

    store = Store(tmp_path)
    first = store.images({}, SeedSquares(images_per_prompt=1), {"one": LabelPrompts("one", ["a one"])}, seed=0)
    unit = first.rows[0]["unit"]
    lock = FileLock(tmp_path / "images" / ".state" / first.key / "locks" / "one" / f"{unit}.lock")
    marker = tmp_path / "images" / ".state" / first.key / "units" / "one" / f"{unit}.jsonl"
    marker.unlink()  # the unit is not done, and "another job" holds its claim
    with lock:
        job = subprocess.Popen([sys.executable, "-c", f"""
import logging, sys
logging.basicConfig(level=logging.INFO, stream=sys.stdout, format="%(message)s")
sys.path.insert(0, {str(ROOT / 'tests')!r})
from backends import SeedSquares
from odin.prompts import LabelPrompts
from odin.store import Store
prompts = {{"one": LabelPrompts("one", ["a one", "another one"]), "two": LabelPrompts("two", ["a two"])}}
f = Store({str(tmp_path)!r}).images({{}}, SeedSquares(images_per_prompt=1), prompts, seed=0)
print("MADE", f.made, flush=True)
"""], stdout=subprocess.PIPE, text=True, env={**os.environ, "ODIN_PROGRESS": "0"})
        deadline = time.time() + 60
        while len(list(tmp_path.glob("images/.state/*/units/*/*.jsonl"))) < 2 and time.time() < deadline:
            time.sleep(0.05)  # the free units get made while the held one waits
        made_while_held = len(list(tmp_path.glob("images/.state/*/units/*/*.jsonl")))
        time.sleep(0.5)
    out, _ = job.communicate(timeout=60)
    assert made_while_held == 2
    assert f"waiting for one 'a one' (unit {unit})" in out and f"unit {unit} ready after" in out
    assert "MADE 3" in out


def test_a_failed_write_leaves_no_temp_file_and_a_full_disk_is_named(tmp_path):
    import errno

    from odin.files import DiskFullError, atomic_write

    def full(tmp):
        tmp.write_bytes(b"x" * 100)
        raise OSError(errno.ENOSPC, "No space left on device")

    with pytest.raises(DiskFullError, match=f"no space left on {tmp_path}"):
        atomic_write(tmp_path / "last.pt", full)
    assert list(tmp_path.iterdir()) == []


def test_a_killed_writers_temp_file_is_removed_by_the_next_writer(tmp_path):
    from odin.files import remove_stale_temps

    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    stale = tmp_path / f".last.pt.{dead.stdout.strip()}.tmp"
    stale.write_bytes(b"half a checkpoint")
    alive = tmp_path / f".last.pt.{os.getppid()}.tmp"  # a writer still running (our parent)
    alive.write_bytes(b"in progress")
    remove_stale_temps(tmp_path / "last.pt")
    assert not stale.exists() and alive.exists()


def test_training_images_are_prepared_once_in_the_store(compose, tmp_path, caplog):
    """Each image is decoded, acquired and resized once, kept with the other images of its unit; reruns read
    the arrays and train on the same numbers."""
    import numpy as np

    first = run(compose(*SMALL), output_dir=tmp_path / "a")
    arrays = sorted((tmp_path / "store" / "prepared").rglob("*.npy"))
    assert len(arrays) == 2  # one per unit: each label's one prompt
    assert [np.load(a).shape for a in arrays] == [(3, 1, 16, 16)] * 2 and first["train_images"]["generated"] == 2 * 3
    stamps = [p.stat().st_mtime_ns for p in arrays]
    again = run(compose(*SMALL, "train.resume=false"), output_dir=tmp_path / "b")  # trains again, from the arrays
    assert again["history"] == first["history"] and [p.stat().st_mtime_ns for p in arrays] == stamps
    arrays[0].write_bytes(arrays[0].read_bytes()[:40])  # a damaged array is prepared again
    third = run(compose(*SMALL, "train.resume=false"), output_dir=tmp_path / "c")
    assert third["history"] == first["history"] and f"prepared images {arrays[0]} are damaged" in caplog.text
    bigger = run(compose(*SMALL, "model.input_size=20"), output_dir=tmp_path / "d")  # another size: its own arrays
    assert bigger["training"]["status"] == "trained" and len(list((tmp_path / "store" / "prepared").iterdir())) == 2


def test_images_read_one_at_a_time_train_the_same_and_a_damaged_one_is_prepared_again(compose, tmp_path, caplog):
    """train.preload=false: each image is read alone from its unit's array as training asks for it."""
    import numpy as np

    first = run(compose(*SMALL), output_dir=tmp_path / "a")
    array = sorted((tmp_path / "store" / "prepared").rglob("*.npy"))[0]
    good = np.load(array)
    damaged = good.copy()
    damaged[1] = np.nan
    np.save(array, damaged)
    lazy = run(compose(*SMALL, "train.preload=false", "train.resume=false"), output_dir=tmp_path / "b")
    assert lazy["history"] == first["history"] and np.array_equal(np.load(array), good)
    assert f"prepared images {array} are damaged" in caplog.text
    assert "256 values are not finite" in caplog.text  # image 1 alone (16 x 16), read as training asked for it


# ---- through run.py: damage the unit records' sizes alone cannot see -------------------------------------------
FORMULATE = ["experiment=smoke", "logger=none", "task=formulate", "labels=[two]", "prompt.num_prompts=1",
             "diffusion.images_per_prompt=2"]


def run_py(tmp_path, *args, run="run", env=None, timeout=600):
    """`python run.py` on the test's store, its run dir `tmp_path / run`."""
    return subprocess.run([sys.executable, str(ROOT / "run.py"), *args, f"paths.store={tmp_path / 'store'}",
                           f"hydra.run.dir={tmp_path / run}"], cwd=tmp_path, capture_output=True, text=True,
                          timeout=timeout, env={**os.environ, "ODIN_PROGRESS": "0", **(env or {})})


def ok(done):
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    return json.loads((Path(done.args[-1].split("=", 1)[1]) / "metrics.json").read_text())


def _same_size_garbage(path: Path, keep_time: bool = False) -> None:
    stat = path.stat()
    path.write_bytes(os.urandom(stat.st_size))
    if keep_time:  # a disk's bit rot: same size, same modification time
        os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))


def test_a_same_size_garbage_png_is_found_remade_and_never_exported(tmp_path):
    first = ok(run_py(tmp_path, *FORMULATE, run="a"))
    victim = next(Path(first["images"]["folder"]).glob("two/*.png"))
    original = victim.read_bytes()
    _same_size_garbage(victim)
    done = run_py(tmp_path, *FORMULATE, run="b")
    second = ok(done)
    assert f"{victim} changed since it was made" in done.stderr
    assert second["images"]["made"] == 2 and victim.read_bytes() == original  # its unit, the same seeds
    for path in Path(second["dataset"]).rglob("*.png"):
        Image.open(path).load()


def test_bit_rot_that_keeps_size_and_time_is_refused_at_export_naming_the_file(tmp_path):
    first = ok(run_py(tmp_path, *FORMULATE, run="a"))
    victim = next(Path(first["images"]["folder"]).glob("two/*.png"))
    _same_size_garbage(victim, keep_time=True)
    done = run_py(tmp_path, *FORMULATE, run="b")
    assert done.returncode == 1 and "Traceback" not in done.stderr, done.stderr[-3000:]
    assert str(victim) in done.stderr.splitlines()[-1] and "delete it and run again" in done.stderr.lower()
    victim.unlink()
    ok(run_py(tmp_path, *FORMULATE, run="c"))


@pytest.mark.slow
def test_a_prepared_array_of_nans_is_prepared_again(tmp_path):
    import numpy as np

    args = ["experiment=smoke", "logger=none", "labels=[zero,one]", "prompt.num_prompts=1",
            "diffusion.images_per_prompt=3"]
    first = ok(run_py(tmp_path, *args, run="a"))
    array = sorted((tmp_path / "store" / "prepared").rglob("*.npy"))[0]
    good = np.load(array)
    np.save(array, np.full_like(good, np.nan))  # a valid header, NaN data
    done = run_py(tmp_path, *args, "train.resume=false", run="b")
    again = ok(done)
    assert f"prepared images {array} are damaged" in done.stderr and "not finite" in done.stderr
    assert again["history"] == first["history"] and np.array_equal(np.load(array), good)


@pytest.mark.slow
def test_a_same_size_garbage_heatmap_in_post_is_remade(tmp_path):
    args = [*FORMULATE, "localize=attention", "post=salt"]
    first = ok(run_py(tmp_path, *args, run="a"))
    [heat] = sorted((tmp_path / "store" / "post").glob("[!.]*/two/*.heat.npz"))[:1]
    original = heat.read_bytes()
    _same_size_garbage(heat)
    done = run_py(tmp_path, *args, run="b")
    ok(done)
    assert f"{heat} changed since it was made" in done.stderr and heat.read_bytes() == original
    assert first["localize"]["boxes"] == json.loads((tmp_path / "b" / "metrics.json").read_text())["localize"]["boxes"]


@pytest.mark.slow
def test_a_damaged_heatmap_that_reaches_export_is_one_message(tmp_path):
    args = [*FORMULATE, "localize=attention", "post=salt"]
    ok(run_py(tmp_path, *args, run="a"))
    [heat] = sorted((tmp_path / "store" / "post").glob("[!.]*/two/*.heat.npz"))[:1]
    _same_size_garbage(heat, keep_time=True)
    done = run_py(tmp_path, *args, run="b")
    assert done.returncode == 1 and "Traceback" not in done.stderr, done.stderr[-3000:]
    assert f"{heat} is damaged" in done.stderr


@pytest.mark.parametrize("damage", ["cut", "garbage"])
def test_a_damaged_index_is_written_anew_from_the_unit_records(tmp_path, damage):
    first = ok(run_py(tmp_path, *FORMULATE, run="a"))
    index = Path(first["images"]["folder"]) / "metadata.jsonl"
    original = index.read_bytes()
    cut = original[: len(original) // 2].rstrip(b"\n")[:-1]  # mid-line
    index.write_bytes(cut if damage == "cut" else b"\x00garbage\n{")
    done = run_py(tmp_path, *FORMULATE, run="b")
    ok(done)
    assert f"{index} does not match the unit records" in done.stderr and index.read_bytes() == original


def test_an_empty_unit_record_is_named_and_remade(tmp_path):
    first = ok(run_py(tmp_path, *FORMULATE, run="a"))
    [marker] = (tmp_path / "store" / "images" / ".state").rglob("units/*/*.jsonl")
    marker.write_bytes(b"")
    done = run_py(tmp_path, *FORMULATE, run="b")
    assert ok(done)["images"]["made"] == 2
    assert f"its record {marker} is damaged (it is empty)" in done.stderr
    assert first["images"]["made"] == 2


KILLER = """
import os, signal
_suffix, _replace = os.environ.get("ODIN_TEST_KILL_AT_RENAME"), os.replace
def _kill_at_rename(src, dst, *args, **kwargs):  # SIGKILL between writing a temp file and renaming it
    if _suffix and str(dst).endswith(_suffix):
        os.kill(os.getpid(), signal.SIGKILL)
    return _replace(src, dst, *args, **kwargs)
os.replace = _kill_at_rename
"""


@pytest.mark.slow
@pytest.mark.parametrize("target", ["/two.json", "/metadata.jsonl", ".npy"])  # .npy: a unit's prepared array
def test_a_writer_killed_at_the_rename_leaves_no_temp_file_after_the_rerun(tmp_path, target):
    (tmp_path / "killer").mkdir()
    (tmp_path / "killer" / "sitecustomize.py").write_text(KILLER)
    args = FORMULATE if target != ".npy" else ["experiment=smoke", "logger=none", "labels=[zero,one]",
                                                  "prompt.num_prompts=1", "diffusion.images_per_prompt=3"]
    killed = run_py(tmp_path, *args, run="a", env={"PYTHONPATH": str(tmp_path / "killer"),
                                                   "ODIN_TEST_KILL_AT_RENAME": target})
    assert killed.returncode == -9, killed.stderr[-2000:]
    assert list((tmp_path / "store").rglob("*.tmp"))  # the dead writer's
    ok(run_py(tmp_path, *args, run="b"))
    assert list((tmp_path / "store").rglob("*.tmp")) == []


@pytest.mark.parametrize("lock", ["prompts", "index"])
def test_a_wait_on_the_prompts_or_the_index_lock_is_said(tmp_path, lock):
    from filelock import FileLock

    first = ok(run_py(tmp_path, *FORMULATE, run="a"))
    if lock == "prompts":
        [prompts] = (tmp_path / "store" / "prompts").glob("*/two.json")
        prompts.unlink()  # missing: this run must take the lock to make them
        path = prompts.parent / ".lock"
    else:
        (Path(first["images"]["folder"]) / "metadata.jsonl").unlink()
        [path] = (tmp_path / "store" / "images" / ".state").glob("*/index.lock")
    what = "the prompts of two" if lock == "prompts" else "the index"
    seen = []
    with FileLock(path):  # held until the job says it waits (however long its start takes), then 1.5 s more
        job = subprocess.Popen([sys.executable, str(ROOT / "run.py"), *FORMULATE, f"paths.store={tmp_path / 'store'}",
                                f"hydra.run.dir={tmp_path / 'b'}"], cwd=tmp_path, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True, env={**os.environ, "ODIN_PROGRESS": "0"})
        for line in job.stdout:
            seen.append(line)
            if f"waiting for {what}" in line:
                break
        time.sleep(1.5)
    out, err = job.communicate(timeout=120)
    out = "".join(seen) + out
    assert job.returncode == 0, err[-3000:]
    assert f"waiting for {what}" in out and re.search(rf"{what}.* ready after [1-9]\d* s", out), out


def test_a_record_made_before_hashes_were_kept_is_still_valid(tmp_path, caplog):
    """Older stores' unit records hold sizes only: read as they are, checked by size, nothing remade."""
    store = Store(tmp_path)
    first = store.images({}, SeedSquares(), PROMPTS, seed=0)
    for marker in (tmp_path / "images" / ".state" / first.key / "units").rglob("*.jsonl"):
        rows = [{k: v for k, v in json.loads(line).items() if k not in ("sha256", "mtime_ns")}
                for line in marker.read_text().splitlines()]
        marker.write_text("".join(json.dumps(r) + "\n" for r in rows))
    for path in first.path.rglob("*.png"):
        os.utime(path)  # a copied store: every time differs from what a newer record would say
    again = store.images({}, SeedSquares(), PROMPTS, seed=0)
    assert again.made == 0 and len(again.rows) == 12 and "remaking" not in caplog.text
    victim = first.path / again.rows[0]["file_name"]
    _truncate(victim)
    assert store.images({}, SeedSquares(), PROMPTS, seed=0).made == 3  # sizes are still checked
