"""Units made by worker processes (a backend that says `parallel`): the same bytes and rows as made in one
process, whatever the worker or shard count; claims still keep two jobs from making a unit twice; a killed run
takes its workers with it and resumes."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from backends import SeedSquares

from odin.errors import UserError
from odin.prompts import LabelPrompts
from odin.store import Store, Unit, spread_labels

PROMPTS = {label: LabelPrompts(label, [f"{label} {i}" for i in range(5)] + [f"{label} 0"])  # a repeated text too
           for label in ["one", "two", "three"]}


class ParallelSquares(SeedSquares):
    parallel = True


class FailsOnTwo(ParallelSquares):
    """A backend with a bug that shows only for one label: the run stops with it."""

    def __call__(self, label, prompts, seeds):
        if label == "two":
            raise ZeroDivisionError("a bug in the backend")
        return super().__call__(label, prompts, seeds)


class RefusesTwo(ParallelSquares):
    """A user's mistake found while making a unit: it stays a UserError in the run's process."""

    def __call__(self, label, prompts, seeds):
        if label == "two":
            raise UserError("cannot draw 'two' here")
        return super().__call__(label, prompts, seeds)


def contents(store_root: Path) -> tuple[dict, list]:
    """Every image's bytes by file name, and the metadata rows without modification times."""
    folder = next(p for p in (store_root / "images").iterdir() if not p.name.startswith("."))
    images = {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*.png"))}
    rows = [{k: v for k, v in json.loads(line).items() if k != "mtime_ns"}
            for line in (folder / "metadata.jsonl").read_text().splitlines()]
    return images, rows


def test_workers_make_the_same_bytes_and_rows_as_one_process(tmp_path):
    alone = Store(tmp_path / "alone", workers=1).images({}, ParallelSquares(images_per_prompt=4), PROMPTS, seed=0)
    assert alone.made == 72
    expected = contents(tmp_path / "alone")
    for workers in (2, 3):
        folder = Store(tmp_path / f"w{workers}", workers=workers).images({}, ParallelSquares(images_per_prompt=4),
                                                                         PROMPTS, seed=0)
        assert (folder.made, folder.reused) == (72, 0)
        assert folder.rows == [{**r, "mtime_ns": f["mtime_ns"]} for r, f in zip(alone.rows, folder.rows, strict=True)]
        assert contents(tmp_path / f"w{workers}") == expected
    again = Store(tmp_path / "w2", workers=2).images({}, ParallelSquares(images_per_prompt=4), PROMPTS, seed=0)
    assert (again.made, again.reused) == (0, 72)


def test_shards_made_by_workers_add_up_to_the_same_folder(tmp_path):
    Store(tmp_path / "alone", workers=1).images({}, ParallelSquares(), PROMPTS, seed=0)
    for k in range(3):
        Store(tmp_path / "sharded", workers=2).images({}, ParallelSquares(), PROMPTS, seed=0, shard=(k, 3))
    whole = Store(tmp_path / "sharded", workers=2).images({}, ParallelSquares(), PROMPTS, seed=0)
    assert whole.made == 0
    assert contents(tmp_path / "sharded") == contents(tmp_path / "alone")


def test_a_backend_that_does_not_say_parallel_is_never_forked(tmp_path):
    backend = SeedSquares()  # no `parallel`: its calls stay countable in this process
    Store(tmp_path, workers=4).images({}, backend, PROMPTS, seed=0)
    assert backend.calls == 18


def test_a_bug_in_a_worker_stops_the_run_with_its_traceback(tmp_path):
    with pytest.raises(ZeroDivisionError, match="a bug in the backend"):
        Store(tmp_path, workers=2).images({}, FailsOnTwo(), PROMPTS, seed=0)
    with pytest.raises(UserError, match="cannot draw 'two' here"):
        Store(tmp_path, workers=2).images({}, RefusesTwo(), PROMPTS, seed=0)
    # what was made before the error is kept: a run with the bug fixed makes only the rest
    fixed = Store(tmp_path, workers=2).images({}, ParallelSquares(), PROMPTS, seed=0)
    assert fixed.made + fixed.reused == 54 and fixed.reused > 0


WORKER = """
import sys
sys.path.insert(0, {tests!r})
from backends import SeedSquares
from odin.prompts import LabelPrompts
from odin.store import Store, Unit, spread_labels
class ParallelSquares(SeedSquares):
    parallel = True
prompts = {{l: LabelPrompts(l, [f"{{l}} {{i}}" for i in range(6)]) for l in ["one", "two"]}}
f = Store({root!r}, workers=2).images({{}}, ParallelSquares(images_per_prompt=5, delay={delay}), prompts, seed=0)
print("MADE", f.made, flush=True)
"""


def _job(root: Path, delay: float) -> subprocess.Popen:
    code = WORKER.format(tests=str(Path(__file__).parent), root=str(root), delay=delay)
    return subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True,
                            env={**os.environ, "ODIN_PROGRESS": "0"})


def test_two_jobs_with_workers_never_make_a_unit_twice(tmp_path):
    jobs = [_job(tmp_path, delay=0.01) for _ in range(2)]
    made = [int(job.communicate(timeout=120)[0].split("MADE")[1]) for job in jobs]
    assert sum(made) == 60
    assert len(list(tmp_path.glob("images/*/*/*.png"))) == 60


def _children(pid: int) -> list[int]:
    try:
        return [int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []


def _alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    except OSError:
        return False


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc; workers die with the run on Linux")
def test_a_killed_run_takes_its_workers_along_and_resumes(tmp_path):
    job = _job(tmp_path, delay=0.03)
    deadline = time.time() + 60
    while len(list(tmp_path.glob("images/*/*/*.png"))) < 17 and time.time() < deadline:
        time.sleep(0.01)
    workers = _children(job.pid)
    assert workers, "the run had no worker processes"
    os.kill(job.pid, signal.SIGKILL)
    job.wait()
    deadline = time.time() + 30
    while any(_alive(w) for w in workers) and time.time() < deadline:
        time.sleep(0.05)
    assert not any(_alive(w) for w in workers), "a worker outlived its run"
    done_before = len(list(tmp_path.glob("images/.state/*/units/*/*.jsonl")))
    assert 0 < done_before < 12

    rerun = _job(tmp_path, delay=0.0)
    made = int(rerun.communicate(timeout=120)[0].split("MADE")[1])
    assert made == (12 - done_before) * 5  # only the unfinished units were made again
    files = sorted(tmp_path.glob("images/*/*/*.png"))
    assert len(files) == 60 and not list(tmp_path.glob("images/*/*/.*.tmp"))
    rows = (next(tmp_path.glob("images/[!.]*")) / "metadata.jsonl").read_text().splitlines()
    assert len(rows) == len({json.loads(r)["file_name"] for r in rows}) == 60


def test_workers_take_the_labels_in_turn():
    """Consecutive units are of different labels (two workers write into different folders), every unit once;
    a label with more units than the others ends the order."""
    units = [Unit(label, f"{label} {i}", 0, [i]) for label, n in (("one", 3), ("two", 1), ("three", 2))
             for i in range(n)]
    order = spread_labels(units)
    assert [u.prompt for u in order] == ["one 0", "two 0", "three 0", "one 1", "three 1", "one 2"]
    assert sorted(order, key=units.index) == units
