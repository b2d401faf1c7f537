"""The content-addressed store: prompts, images and post-processed images, cached per label.

Layout under the store root (a shared filesystem on clusters):
  prompts/<key>/<slug>.json                one label's prompts and their provenance
  images/<key>/<slug>/u<id>_i000.png       an ImageFolder of generated images ...
  images/<key>/<slug>/u<id>_i000.heat.npz  ... each with its heatmap when localization is on ...
  images/<key>/metadata.jsonl              ... loadable by torchvision and `datasets`
  images/.state/<key>/units/<slug>/u<id>.jsonl  a unit's rows; written last, so it marks it done
  images/.state/<key>/locks/               claims on units (released by the OS when the owner dies)
  post/<key>/...                           the same, for post-processed images

A key is the hash of the resolved config that determines the bytes: odin/keys.py reduces each
stage's config (and the component's run-time choices, such as dtype: auto) to exactly those
inputs. An image folder's key holds the generator and the seed, not the prompts: the unit of
work is one (label, prompt text, occurrence), named by its content, and its images' seeds come
from (seed, label, prompt text, occurrence, image index) alone. So a prompt keeps its images
whatever other prompts a run has (asking for 6 prompts instead of 5 makes only the sixth's),
and shards, order and resumption never change an image.

Every file is written to a temp name and renamed, so a reader never sees half a file and a killed
run resumes where it stopped (a killed writer's temp file goes when the file is next written).
Reading a store that holds everything writes nothing, so a read-only store works.

What is verified where (everything here can be recomputed, so damage is named and made again):
- every run, for every unit it uses: the unit's record parses and is not empty, and each image (and
  heatmap) has its recorded size; one whose modification time differs from its record is hashed
  and compared with the record's sha256 (a same-size overwrite). A stat per file: free.
- where the bytes are read anyway: the source images of post-processing and of preparing training
  arrays are hashed as they are read (+0.5 ms on a 1.4 MB 768 px PNG, 4% of its decode), and an
  export hashes what it hands out (+0.9 ms per such image): this catches damage that kept the
  modification time (a disk's bit rot), as an error naming the file.
- metadata.jsonl is compared with the unit records it is made from and written anew when it differs
  (cut short, replaced, a killed writer).
A record made before hashes were recorded has sizes only: it stays valid and is checked by size.

Heatmaps (where the label is; odin.localize) are asked for per run and change no key and no
image: a unit is made with them when asked, and a unit made without them gets only its heatmaps
made when they are asked for later (the backend draws the unit again; its images stay as they are).
"""

from __future__ import annotations

import hashlib
import io
import itertools
import json
import logging
import os
import re
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from filelock import FileLock, Timeout
from PIL import Image

from odin import keys
from odin.errors import ConfigError, UserError
from odin.files import NOT_WRITABLE, atomic_write, atomic_write_bytes, atomic_write_json, remove_stale_temps
from odin.keys import config_hash, derive_seed
from odin.localize.boxes import HEATMAP_SUFFIX, heatmap_path, load_heatmap, save_heatmap
from odin.progress import progress
from odin.prompts import LabelPrompts
from odin.secrets import scrub

log = logging.getLogger(__name__)
HEATMAP_TMP = HEATMAP_SUFFIX + ".*.tmp"


def label_slug(label: str) -> str:
    """A folder name for a label that cannot escape the store or collide with another label.

    Plain lowercase ASCII names stay as they are; anything else (a '/', '..', spaces,
    non-ASCII, upper case on case-insensitive file systems) gets a hash of the exact label.
    """
    slug = re.sub(r"[^a-z0-9_-]+", "_", label.lower()).strip("_")[:48]
    if slug == label and slug:
        return slug
    return f"{slug or 'label'}-{hashlib.sha256(label.encode()).hexdigest()[:8]}"


def atomic_save_image(path: Path, image: Image.Image) -> None:
    atomic_write(path, lambda tmp: image.save(tmp, format="PNG"))


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def open_image(path: Path, sha256: str | None = None) -> Image.Image:
    """An image of the store, fully decoded; a damaged one is an error naming it and the fix. With `sha256`
    (its record's), the bytes read are checked against it first."""
    try:
        data = Path(path).read_bytes()
        if sha256 and hashlib.sha256(data).hexdigest() != sha256:
            raise ValueError("its content differs from the sha256 its unit record holds")
        with Image.open(io.BytesIO(data)) as im:
            im.load()
            return im
    except (OSError, SyntaxError, ValueError) as error:
        raise UserError(f"{path} cannot be read ({error}): it is a damaged cache entry. Delete it and run "
                        "again: the store makes what is missing.") from error


def file_sha256(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def file_record(path: Path, prefix: str = "") -> dict:
    """What a unit record holds of a file it made: size, content hash and modification time."""
    stat = path.stat()
    return {f"{prefix}bytes": stat.st_size, f"{prefix}sha256": file_sha256(path), f"{prefix}mtime_ns": stat.st_mtime_ns}


def damage(path: Path, row: dict, prefix: str = "") -> str | None:
    """Why `path` is not the file its record describes, or None. Size from a stat; the hash only when the
    modification time moved (a same-size overwrite), so an intact store costs one stat per file."""
    try:
        stat = path.stat()
    except FileNotFoundError:
        return "is missing or truncated"
    if stat.st_size != row.get(f"{prefix}bytes"):
        return "is missing or truncated"
    sha = row.get(f"{prefix}sha256")  # records made before hashes were kept: size only
    if sha and stat.st_mtime_ns != row.get(f"{prefix}mtime_ns") and file_sha256(path) != sha:
        return "changed since it was made (same size, other content than its record's sha256)"
    return None


def check_root(root: Path) -> None:
    """The store's root must be a folder (or not exist yet, under a folder)."""
    for path in (root, *root.parents):
        if path.exists():
            if path.is_dir():
                return
            env = os.environ.get("ODIN_STORE")
            given = (f"ODIN_STORE={env} (paths.store's default)" if env and Path(env).expanduser().resolve() == root
                     else f"paths.store={root}")
            raise ConfigError(f"{given}: {path} is a file, not a folder; point it at a folder for the store, e.g. "
                              f"paths.store={root.parent / 'odin-store'}")


@dataclass
class Unit:
    """One (label, prompt text, occurrence) and the seeds of its images, named by its content."""

    label: str
    prompt: str
    occurrence: int  # which copy of this text among the label's prompts (naive repeats one sentence)
    seeds: list[int]
    round: int = 0  # r > 0: the image filter's r-th round of replacements for this prompt (odin/filter_stage.py)

    @property
    def slug(self) -> str:
        return label_slug(self.label)

    @property
    def name(self) -> str:
        identity = [self.label, self.prompt, self.occurrence] + (["extra", self.round] if self.round else [])
        identity = json.dumps(identity, ensure_ascii=False)
        return "u" + hashlib.sha256(identity.encode()).hexdigest()[:12]


def in_shard(units: list[Unit], shard: tuple[int, int]) -> list[Unit]:
    """The units of shard k of n: by their content's hash, so the split never depends on order or labels."""
    k, n = shard
    return [u for u in units if int(u.name[1:], 16) % n == k] if n > 1 else units


def prompt_units(prompts: dict[str, LabelPrompts], seed: int, n: int) -> list[Unit]:
    """The units of a run's prompts, each with the seeds of its n images."""
    units = []
    for label, lp in prompts.items():
        seen: dict[str, int] = {}
        for text in lp.prompts:
            k = seen[text] = seen.get(text, -1) + 1
            units.append(Unit(label, text, k, [derive_seed(seed, label, text, k, i) for i in range(n)]))
    return units


@dataclass
class Folder:
    """An ImageFolder in the store and what this run did to it."""

    key: str
    path: Path
    rows: list[dict] = field(default_factory=list)  # metadata of the requested labels' images
    made: int = 0  # images written by this run
    reused: int = 0  # images found already made
    heatmaps: bool = False  # every image has its heatmap beside it (localize=attention): made, checked, exported
    heatmaps_added: int = 0  # heatmaps this run made for images made before without them


class Store:
    def __init__(self, root: str | Path, workers: int | None = None):
        """`workers`: processes that make units of a backend that says it can be forked (`parallel`); None: one
        per CPU core this process may run on, 1: all in this process."""
        self.root = Path(root).expanduser().resolve()
        self.workers = workers
        check_root(self.root)

    # ---- prompts -------------------------------------------------------------------
    def missing_prompts(self, cfg: dict, generator, labels: list[str], extra: dict | None = None) -> list[str]:
        """The labels whose prompts are not cached yet (only they need an API key or weights)."""
        folder = self.root / "prompts" / config_hash(keys.prompt_config(cfg, generator, extra))
        return [label for label in labels if _read_prompts(folder / f"{label_slug(label)}.json") is None]

    def prompts(self, cfg: dict, generator, labels: list[str],
                extra: dict | None = None) -> tuple[str, dict[str, LabelPrompts]]:
        """`extra`: keys.prompt_extras (diversify, prompt_check), when on."""
        cfg = keys.prompt_config(cfg, generator, extra)
        key = config_hash(cfg)
        folder = self.root / "prompts" / key
        path = {label: folder / f"{label_slug(label)}.json" for label in labels}
        result = {label: made for label in labels if (made := _read_prompts(path[label])) is not None}
        if len(result) < len(labels):
            _write_config(folder / "config.json", cfg)
            waiting_for = "the prompts of " + ", ".join(label for label in labels if label not in result)
            with _waiting_lock(folder / ".lock", waiting_for):  # one job asks the LLM; the others wait and reuse
                missing = [label for label in labels if _read_prompts(path[label]) is None]
                for made in generator(missing) if missing else ():
                    if not made.prompts:
                        raise UserError(f"prompt generator returned no prompts for label '{made.label}'")
                    remove_stale_temps(path[made.label])  # a killed writer's; we hold the lock
                    atomic_write_json(path[made.label], scrub(made.__dict__))
            for label in labels:
                if (made := _read_prompts(path[label])) is None:
                    raise UserError(f"prompt generator returned nothing for label '{label}'")
                result[label] = made
        return key, {label: result[label] for label in labels}

    # ---- images ----------------------------------------------------------------------
    def images(self, cfg: dict, backend, prompts: dict[str, LabelPrompts], seed: int,
               generator_name: str = "", shard: tuple[int, int] = (0, 1), heatmaps: bool = False) -> Folder:
        units = in_shard(prompt_units(prompts, seed, backend.images_per_prompt), shard)
        return self.image_units(cfg, backend, units, seed, generator_name, heatmaps)

    def image_units(self, cfg: dict, backend, units: list[Unit], seed: int, generator_name: str = "",
                    heatmaps: bool = False, what: str = "generate") -> Folder:
        """The images of `units` in the folder of (generator, seed): a run's units, or the image filter's
        replacements (units with round > 0, whose rows say `extra_round`)."""
        cfg = keys.images_config(cfg, backend)
        folder = Folder(config_hash(cfg, seed), Path(), heatmaps=heatmaps)
        folder.path = self.root / "images" / folder.key
        make = MakeImages(backend, generator_name, heatmaps)
        self._fill(folder, units, make, {"generator": cfg, "seed": seed}, what,
                   parallel=getattr(backend, "parallel", False))
        return folder

    # ---- post-processing ---------------------------------------------------------------
    def post(self, cfg: dict, post: Callable[[Image.Image, int], Image.Image], images: Folder) -> Folder:
        cfg = keys.post_config(post)
        folder = Folder(config_hash(cfg, images.key), Path(), heatmaps=images.heatmaps)
        folder.path = self.root / "post" / folder.key
        by_unit: dict[str, list[dict]] = {}
        for row in images.rows:
            by_unit.setdefault(row["unit"], []).append(row)
        units = [Unit(rows[0]["label"], rows[0]["prompt"], rows[0]["occurrence"], [r["seed"] for r in rows],
                      rows[0].get("extra_round", 0)) for rows in by_unit.values()]

        def make(unit: Unit) -> list[tuple[Image.Image, dict, Any]]:  # post moves no pixel: the same heatmaps
            return [(post(open_image(images.path / row["file_name"], row.get("sha256")),
                          derive_seed(row["seed"], "post")),
                     {**_without_file(row), "post": cfg},
                     load_heatmap(images.path / row["heatmap"]) if folder.heatmaps else None)
                    for row in by_unit[unit.name]]

        self._fill(folder, units, make, {"post": cfg, "images": images.key}, "post-process")
        return folder

    # ---- the shared machinery ----------------------------------------------------------
    def _fill(self, folder: Folder, units: list[Unit], make, config: dict, what: str, parallel: bool = False) -> None:
        """Make every unit that is not done yet, claiming each so concurrent jobs never both make it.

        A unit another job is making is skipped and come back to once the free ones are done. With `parallel`
        (the backend can be forked: no GPU, no threads of its own), the free units are made by worker processes,
        each under its own claim exactly as here: a unit's bytes depend on the unit alone, never on the worker.
        """
        todo = [u for u in units if not self._done(folder, u)]
        if todo:
            _write_config(folder.path / "config.json", config)
        bar = progress(None, total=len(todo), desc=f"{what} ({len(units) - len(todo)}/{len(units)} prompts cached)")
        workers = min(self.workers or usable_cores(), len(todo)) if parallel else 1
        if workers > 1:
            held = self._make_in_workers(folder, spread_labels(todo), make, workers, bar)
        else:
            held = []
            for unit in todo:
                if not self._claim_and_make(folder, unit, make, wait=False):
                    held.append(unit)
                bar.update()
        for unit in held:
            log.info("waiting for %s '%s' (unit %s), which another job is making", unit.label, unit.prompt,
                     unit.name)
            started = time.perf_counter()
            self._claim_and_make(folder, unit, make, wait=True)
            log.info("unit %s ready after %.0f s", unit.name, time.perf_counter() - started)
        bar.close()
        for unit in units:  # a unit made with more images per prompt serves fewer: the seeds are a prefix
            folder.rows.extend(read_jsonl(self._marker(folder, unit))[: len(unit.seeds)])
        folder.reused = len(folder.rows) - folder.made
        if folder.heatmaps_added:
            log.info("%s: made heatmaps only for %d images made earlier without them (the images stay as they "
                     "are)", what, folder.heatmaps_added)
        if folder.made or folder.heatmaps_added:
            self._write_index(folder)
        else:
            self._check_index(folder)

    def _make_in_workers(self, folder: Folder, todo: list[Unit], make, workers: int, bar) -> list[Unit]:
        """Make `todo` in `workers` processes; the units another job holds, left for this process to wait for."""
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor

        # fork where the platform has it: the workers start at once with the backend as it is (fonts loaded);
        # elsewhere (macOS, Windows) they start fresh and get it pickled.
        method = "fork" if "fork" in multiprocessing.get_all_start_methods() else None
        held = []
        pool = ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context(method), initializer=_start_worker,
                                   initargs=(self, folder, make, os.getpid()))
        try:
            for unit, (claimed, made, added) in zip(todo, pool.map(_make_unit, todo), strict=True):
                folder.made += made
                folder.heatmaps_added += added
                if not claimed:
                    held.append(unit)
                bar.update()
        finally:  # on an error, the units not started yet are not made (the ones in flight finish)
            pool.shutdown(wait=True, cancel_futures=True)
        return held

    def _claim_and_make(self, folder: Folder, unit: Unit, make, wait: bool) -> bool:
        """Make `unit` under its claim; False when another job holds the claim and `wait` is off."""
        lock_path = _state(folder) / "locks" / unit.slug / f"{unit.name}.lock"
        lock_path.parent.mkdir(parents=True, exist_ok=True)
        lock = FileLock(lock_path)
        try:
            lock.acquire(timeout=-1 if wait else 0)
        except Timeout:
            return False
        try:
            status, kept = self._status(folder, unit)
            if status == "done":  # another job made it while we waited
                return True
            marker = self._marker(folder, unit)
            for stale in (folder.path / unit.slug).glob(f".{unit.name}_i*.tmp"):
                stale.unlink()  # left by a job killed mid-write (an image or a heatmap); we hold the unit's claim
            remove_stale_temps(marker)
            made = make(unit)
            if status == "heatmaps":  # the images are intact: write their heatmaps, never the images again
                rows = [{**row, **_save_heatmap(folder, row["file_name"], heat, image)}
                        for row, (image, _, heat) in zip(kept, made, strict=False)] + kept[len(made):]
                folder.heatmaps_added += len(made)
            else:
                rows = []
                for i, (image, info, heat) in enumerate(made):
                    file_name = f"{unit.slug}/{unit.name}_i{i:03d}.png"
                    atomic_save_image(folder.path / file_name, image)
                    rows.append({"file_name": file_name, "label": unit.label, "unit": unit.name,
                                 "occurrence": unit.occurrence, "image_index": i,
                                 **file_record(folder.path / file_name), **info,
                                 **(_save_heatmap(folder, file_name, heat, image) if folder.heatmaps else {})})
                folder.made += len(rows)
            atomic_write_bytes(marker, "".join(json.dumps(r) + "\n" for r in rows).encode())
            return True
        finally:
            lock.release()

    def _done(self, folder: Folder, unit: Unit) -> bool:
        return self._status(folder, unit)[0] == "done"

    def _status(self, folder: Folder, unit: Unit) -> tuple[str, list[dict]]:
        """("done", rows): made, with at least as many images as asked (more images per prompt remake
        it), every one of them present at its recorded size, and so is its heatmap when heatmaps are
        asked for. ("heatmaps", every row of the marker): the images are intact but some of the asked
        heatmaps are missing (made without them, or damaged). ("make", []): anything else; a damaged
        unit is said so and made again."""
        marker = self._marker(folder, unit)
        if not marker.exists():
            return "make", []
        try:
            rows = read_jsonl(marker)
            if not rows:
                raise ValueError("it is empty")
            damaged = [(r["file_name"], why) for r in rows[: len(unit.seeds)]
                       if (why := damage(folder.path / r["file_name"], r))]
        except (ValueError, KeyError, TypeError, OSError) as error:
            log.warning("remaking %s '%s': its record %s is damaged (%s)", unit.label, unit.prompt, marker, error)
            return "make", []
        if damaged:
            log.warning("remaking %s '%s': %s %s", unit.label, unit.prompt, folder.path / damaged[0][0], damaged[0][1])
            return "make", []
        if len(rows) < len(unit.seeds):
            return "make", []
        if folder.heatmaps:
            heatless = [r for r in rows[: len(unit.seeds)] if not r.get("heatmap")]
            broken = [(r["heatmap"], why) for r in rows[: len(unit.seeds)]
                      if r.get("heatmap") and (why := damage(folder.path / r["heatmap"], r, "heatmap_"))]
            if broken:
                log.warning("remaking the heatmaps of %s '%s': %s %s", unit.label, unit.prompt,
                            folder.path / broken[0][0], broken[0][1])
            if heatless or broken:
                return "heatmaps", rows
        return "done", rows

    @staticmethod
    def _marker(folder: Folder, unit: Unit) -> Path:
        return _state(folder) / "units" / unit.slug / f"{unit.name}.jsonl"

    @staticmethod
    def _index_text(folder: Folder, warn: bool) -> str:
        rows = []
        for marker in sorted((_state(folder) / "units").glob("*/*.jsonl")):
            try:
                rows += [json.dumps(r) for r in read_jsonl(marker)]
            except ValueError:
                if warn:
                    log.warning("metadata.jsonl leaves out %s: it is damaged (its unit is remade when asked for)",
                                marker)
        return "".join(line + "\n" for line in rows)

    def _check_index(self, folder: Folder) -> None:
        """metadata.jsonl must be what the unit records say (it may have been cut short, replaced, or left
        behind by a killed writer): written anew when it differs; a store that holds everything is only read."""
        index = folder.path / "metadata.jsonl"
        expected = self._index_text(folder, warn=False)
        try:
            current = index.read_text() if index.exists() else None
        except (OSError, UnicodeDecodeError):
            current = "\x00"  # unreadable: damaged
        if current == expected:
            return
        wanted = set(expected.splitlines())
        if current is None:
            pass  # never written (a run killed before it): written now, nothing to say
        elif current and current.endswith("\n") and all(line in wanted for line in current.splitlines()):
            log.info("%s lacks rows of units made since it was written: writing it anew", index)  # another job's
        else:
            log.warning("%s does not match the unit records in %s (cut short or damaged): writing it anew", index,
                        _state(folder) / "units")
        try:
            self._write_index(folder)
        except OSError as error:
            if error.errno not in NOT_WRITABLE:
                raise
            log.warning("%s cannot be written anew (%s): this run does not need it, but torchvision and datasets "
                        "read it; make the store writable and run again", index, os.strerror(error.errno))
        except UserError as error:  # the same, from atomic_write
            log.warning("%s cannot be written anew: %s", index, error)

    @staticmethod
    def _write_index(folder: Folder) -> None:
        """metadata.jsonl of every finished unit in the folder (not only this run's labels).

        Listing the markers and writing the index happen under one lock: each job writes its
        markers before it takes the lock, so the last job to write the index lists every unit.
        """
        folder.path.mkdir(parents=True, exist_ok=True)
        index = folder.path / "metadata.jsonl"
        with _waiting_lock(_state(folder) / "index.lock", f"the index {index}"):
            remove_stale_temps(index)  # a killed writer's; we hold the lock
            atomic_write_bytes(index, Store._index_text(folder, warn=True).encode())


class MakeImages:
    """A unit's images with their metadata and heatmaps, from the backend; a plain object, so worker
    processes that start fresh (no fork) can be handed it."""

    def __init__(self, backend, generator_name: str, heatmaps: bool):
        self.backend, self.generator_name = backend, generator_name
        self.asked = {"heatmaps": True} if heatmaps else {}  # a backend that cannot localize is never asked

    def __call__(self, unit: Unit) -> list[tuple[Image.Image, dict, Any]]:
        made = self.backend(unit.label, [unit.prompt] * len(unit.seeds), unit.seeds, **self.asked)
        return [
            (g.image, {"prompt": unit.prompt, "seed": s, "generator": self.generator_name,
                       **({"extra_round": unit.round} if unit.round else {}), **g.info}, g.heatmap)
            for g, s in zip(made, unit.seeds, strict=True)
        ]


def usable_cores() -> int:
    """The CPU cores this process may run on (a SLURM job's or a container's share, not the machine's)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS, Windows
        return os.cpu_count() or 1


_WORKER: tuple[Store, Folder, Callable] | None = None  # what a unit-making worker process works on


def _start_worker(store: Store, folder: Folder, make, parent: int) -> None:
    global _WORKER
    _WORKER = store, folder, make
    if sys.platform.startswith("linux"):  # a worker dies with its run (a killed run must not leave units made)
        import ctypes
        import signal

        ctypes.CDLL(None).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
        if os.getppid() != parent:  # the run died before that took effect
            os._exit(1)


def spread_labels(units: list[Unit]) -> list[Unit]:
    """The units with their labels taken in turn, so that workers taking them in order write into different
    label folders: a file system locks a folder while it creates or renames a file in it, and a second
    writer in the same folder waits (on Linux, spinning: measured in BENCHMARKS.md). A unit's bytes do not
    depend on when it is made."""
    by_label: dict[str, list[Unit]] = {}
    for unit in units:
        by_label.setdefault(unit.slug, []).append(unit)
    return [unit for turn in itertools.zip_longest(*by_label.values()) for unit in turn if unit is not None]


def _make_unit(unit: Unit) -> tuple[bool, int, int]:
    """In a worker: make `unit` under its claim; (claimed, images made, heatmaps added)."""
    store, folder, make = _WORKER
    made, added = folder.made, folder.heatmaps_added
    try:
        claimed = store._claim_and_make(folder, unit, make, wait=False)
    except BaseException as error:
        raise _portable(error) from None  # the worker's traceback comes along as the cause
    return claimed, folder.made - made, folder.heatmaps_added - added


def _portable(error: BaseException) -> BaseException:
    """`error`, or an exception of the same kind that survives the trip back to the run's process (an
    exception whose constructor takes other arguments than it keeps cannot be unpickled there)."""
    import pickle
    import traceback

    try:
        pickle.loads(pickle.dumps(error))
        return error
    except Exception:
        text = "".join(traceback.format_exception(error))
        return UserError(str(error)) if isinstance(error, UserError) else RuntimeError(f"in a worker process:\n{text}")


def _read_prompts(path: Path) -> LabelPrompts | None:
    """A label's cached prompts, or None when missing or damaged (then they are made again)."""
    if not path.exists():
        return None
    try:
        made = LabelPrompts(**json.loads(path.read_text()))
        if made.prompts and all(isinstance(p, str) for p in made.prompts):
            return made
        raise ValueError("no prompts in it")
    except (ValueError, TypeError, OSError) as error:
        log.warning("prompts %s are damaged (%s): making them again", path, error)
        return None


def _write_config(path: Path, config: dict) -> None:
    """A folder's config.json, for people reading the store: written once, secrets masked."""
    if not path.exists():
        atomic_write_json(path, scrub(config))


@contextmanager
def _waiting_lock(path: Path, what: str) -> Iterator[None]:
    """A file lock that says what it waits for, and for how long, when another job holds it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    lock = FileLock(path)
    try:
        lock.acquire(timeout=0)
    except Timeout:
        log.info("waiting for %s, which another job holds (lock %s)", what, path)
        started = time.perf_counter()
        lock.acquire()
        log.info("%s ready after %.0f s", what, time.perf_counter() - started)
    try:
        yield
    finally:
        lock.release()


def _state(folder: Folder) -> Path:
    """Bookkeeping lives beside the ImageFolder, not in it (ImageFolder takes every folder for a class)."""
    return folder.path.parent / ".state" / folder.key


def _without_file(row: dict) -> dict:
    return {k: v for k, v in row.items() if k not in FILE_FIELDS}


# a row's fields that describe its own files (a post-processed copy records its own)
FILE_FIELDS = {"file_name", "label", "image_index", "bytes", "sha256", "mtime_ns", "heatmap", "heatmap_bytes",
               "heatmap_sha256", "heatmap_mtime_ns"}
STORE_ONLY = {"mtime_ns", "heatmap_mtime_ns"}  # meaningless beside a copy: left out of an export


def _save_heatmap(folder: Folder, file_name: str, heat, image: Image.Image) -> dict:
    """Write an image's heatmap beside it; the row's fields that record it (for the integrity check)."""
    if heat is None or getattr(heat, "shape", None) != (image.height, image.width):
        raise RuntimeError(f"the backend was asked for a heatmap of {file_name} ({image.height}x{image.width}) and "
                           f"returned {'none' if heat is None else f'one of shape {heat.shape}'}")
    path = save_heatmap(heatmap_path(folder.path / file_name), heat)
    return {"heatmap": str(heatmap_path(file_name)), **file_record(path, "heatmap_")}


def class_order(labels: Iterable[str]) -> list[str]:
    """The labels in the order their folders sort: how torchvision's ImageFolder and datasets' imagefolder number
    classes, and so the one numbering of an export (classes.txt line n = class n, COCO id n + 1, YOLO class n).
    ODIN's own classifier numbers its outputs in the run's label order; metrics.json names labels, not numbers."""
    return sorted(labels, key=label_slug)


def export(folder: Folder, labels: Iterable[str], dest: Path) -> Path:
    """Write just `labels` of a store folder as a standalone ImageFolder (hard links where possible),
    with each image's heatmap beside it when the folder was asked for heatmaps, and `classes.txt`.

    metadata.jsonl's `label` is the label as given (`datasets` reads it as a string column; folder names are
    slugs of it): for a ClassLabel, cast it with the names of classes.txt, which number as ImageFolder does:
        ds = load_dataset("imagefolder", data_dir=path, split="train")
        ds = ds.cast_column("label", ClassLabel(names=(path / "classes.txt").read_text().splitlines()))
    """
    labels = list(labels)
    wanted = set(labels)
    rows = [r for r in folder.rows if r["label"] in wanted]
    if not folder.heatmaps:  # heatmaps that some units may have are not part of this dataset
        rows = [{k: v for k, v in r.items() if not k.startswith("heatmap")} for r in rows]
    for row in rows:
        for name, prefix in ((row["file_name"], ""), (row.get("heatmap"), "heatmap_")):
            if name is not None:
                _check_content(folder.path / name, row.get(f"{prefix}sha256"))
                _link(folder.path / name, dest / name)
    rows = [{k: v for k, v in r.items() if k not in STORE_ONLY} for r in rows]
    atomic_write_bytes(dest / "metadata.jsonl", "".join(json.dumps(r) + "\n" for r in rows).encode())
    atomic_write_bytes(dest / "classes.txt", "".join(f"{label}\n" for label in class_order(wanted)).encode())
    return dest


def _check_content(path: Path, sha256: str | None) -> None:
    """What an export hands out is what was made (a hash per file: damage that kept the file's time)."""
    if sha256 and file_sha256(path) != sha256:
        raise UserError(f"{path} is damaged: its content differs from the sha256 its unit record holds. Delete it "
                        "and run again: the store makes what is missing.")


def _link(source: Path, target: Path) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    if not target.exists():
        try:
            os.link(source, target)
        except OSError:  # another file system, or links not allowed
            target.write_bytes(source.read_bytes())
