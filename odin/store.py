"""The content-addressed store: prompts, images and post-processed images, cached per label.

Layout under the store root (a shared filesystem on clusters):
  prompts/<key>/<slug>.json                one label's prompts and their provenance
  images/<key>/<slug>/p000_i000.png        an ImageFolder of generated images ...
  images/<key>/metadata.jsonl              ... loadable by torchvision and `datasets`
  images/.state/<key>/units/<slug>/p000.jsonl  a unit's rows; written last, so it marks it done
  images/.state/<key>/locks/               claims on units (released by the OS when the owner dies)
  post/<key>/...                           the same, for post-processed images

A key is the hash of the resolved config that determines the bytes: odin/keys.py reduces each
stage's config (and the component's run-time choices, such as dtype: auto) to exactly those
inputs. The unit of work is one
(label, prompt): its images' seeds come from (seed, label, prompt index, image index) alone, so
shards, order and resumption never change an image. Every file is written to a temp name and
renamed, so a reader never sees half a file and a killed run resumes where it stopped.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from filelock import FileLock
from PIL import Image

from odin import keys
from odin.errors import UserError
from odin.keys import config_hash
from odin.progress import progress
from odin.prompts import LabelPrompts


def derive_seed(*parts: Any) -> int:
    """A 32-bit seed from (base seed, label, prompt index, image index, ...): order-free."""
    digest = hashlib.blake2b(repr(parts).encode(), digest_size=4).digest()
    return int.from_bytes(digest, "little")


def label_slug(label: str) -> str:
    """A folder name for a label that cannot escape the store or collide with another label.

    Plain lowercase ASCII names stay as they are; anything else (a '/', '..', spaces,
    non-ASCII, upper case on case-insensitive file systems) gets a hash of the exact label.
    """
    slug = re.sub(r"[^a-z0-9_-]+", "_", label.lower()).strip("_")[:48]
    if slug == label and slug:
        return slug
    return f"{slug or 'label'}-{hashlib.sha256(label.encode()).hexdigest()[:8]}"


def atomic_write_bytes(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def atomic_write_json(path: Path, obj: Any) -> None:
    atomic_write_bytes(path, (json.dumps(obj, indent=1, ensure_ascii=False) + "\n").encode())


def atomic_save_image(path: Path, image: Image.Image) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    image.save(tmp, format="PNG")
    os.replace(tmp, path)


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


@dataclass
class Unit:
    """One (label, prompt) and the seeds of its images."""

    label: str
    prompt_index: int
    prompt: str
    seeds: list[int]

    @property
    def slug(self) -> str:
        return label_slug(self.label)

    @property
    def name(self) -> str:
        return f"p{self.prompt_index:03d}"


@dataclass
class Folder:
    """An ImageFolder in the store and what this run did to it."""

    key: str
    path: Path
    rows: list[dict] = field(default_factory=list)  # metadata of the requested labels' images
    made: int = 0  # images written by this run
    reused: int = 0  # images found already made


class Store:
    def __init__(self, root: str | Path):
        self.root = Path(root).expanduser().resolve()

    # ---- prompts -------------------------------------------------------------------
    def missing_prompts(self, cfg: dict, generator, labels: list[str]) -> list[str]:
        """The labels whose prompts are not cached yet (only they need an API key or weights)."""
        folder = self.root / "prompts" / config_hash(keys.prompt_config(cfg, generator))
        return [label for label in labels if not (folder / f"{label_slug(label)}.json").exists()]

    def prompts(self, cfg: dict, generator, labels: list[str]) -> tuple[str, dict[str, LabelPrompts]]:
        cfg = keys.prompt_config(cfg, generator)
        key = config_hash(cfg)
        folder = self.root / "prompts" / key
        path = {label: folder / f"{label_slug(label)}.json" for label in labels}
        if any(not p.exists() for p in path.values()):
            folder.mkdir(parents=True, exist_ok=True)
            atomic_write_json(folder / "config.json", cfg)
            with FileLock(folder / ".lock"):  # one job asks the LLM; the others wait and reuse
                missing = [label for label in labels if not path[label].exists()]
                for made in generator(missing) if missing else ():
                    if not made.prompts:
                        raise UserError(f"prompt generator returned no prompts for label '{made.label}'")
                    atomic_write_json(path[made.label], made.__dict__)
        result = {}
        for label in labels:
            if not path[label].exists():
                raise UserError(f"prompt generator returned nothing for label '{label}'")
            result[label] = LabelPrompts(**json.loads(path[label].read_text()))
        return key, result

    # ---- images ----------------------------------------------------------------------
    def images(self, cfg: dict, backend, prompt_key: str, prompts: dict[str, LabelPrompts], seed: int,
               generator_name: str = "") -> Folder:
        cfg = keys.images_config(cfg, backend)
        folder = Folder(config_hash(cfg, prompt_key, seed), Path())
        folder.path = self.root / "images" / folder.key
        n = backend.images_per_prompt
        units = [
            Unit(label, p, text, [derive_seed(seed, label, p, i) for i in range(n)])
            for label, lp in prompts.items()
            for p, text in enumerate(lp.prompts)
        ]

        def make(unit: Unit) -> list[tuple[Image.Image, dict]]:
            made = backend(unit.label, [unit.prompt] * len(unit.seeds), unit.seeds)
            return [
                (g.image, {"prompt": unit.prompt, "seed": s, "generator": generator_name, **g.info})
                for g, s in zip(made, unit.seeds, strict=True)
            ]

        self._fill(folder, units, make, {"generator": cfg, "prompts": prompt_key, "seed": seed}, "generate")
        return folder

    # ---- post-processing ---------------------------------------------------------------
    def post(self, cfg: dict, post: Callable[[Image.Image, int], Image.Image], images: Folder) -> Folder:
        cfg = keys.post_config(cfg, post)
        folder = Folder(config_hash(cfg, images.key), Path())
        folder.path = self.root / "post" / folder.key
        by_unit: dict[tuple[str, int], list[dict]] = {}
        for row in images.rows:
            by_unit.setdefault((row["label"], row["prompt_index"]), []).append(row)
        units = [Unit(label, p, rows[0]["prompt"], [r["seed"] for r in rows]) for (label, p), rows in by_unit.items()]

        def make(unit: Unit) -> list[tuple[Image.Image, dict]]:
            out = []
            for row in by_unit[(unit.label, unit.prompt_index)]:
                with Image.open(images.path / row["file_name"]) as im:
                    source = im.copy()
                out.append((post(source, derive_seed(row["seed"], "post")), {**_without_file(row), "post": cfg}))
            return out

        self._fill(folder, units, make, {"post": cfg, "images": images.key}, "post-process")
        return folder

    # ---- the shared machinery ----------------------------------------------------------
    def _fill(self, folder: Folder, units: list[Unit], make, config: dict, what: str) -> None:
        """Make every unit that is not done yet, claiming each so concurrent jobs never both make it."""
        atomic_write_json(folder.path / "config.json", config)
        todo = [u for u in units if not self._done(folder, u)]
        for unit in progress(todo, desc=f"{what} ({len(units) - len(todo)}/{len(units)} prompts cached)"):
            marker = self._marker(folder, unit)
            lock = _state(folder) / "locks" / unit.slug / f"{unit.name}.lock"
            lock.parent.mkdir(parents=True, exist_ok=True)
            with FileLock(lock):
                if self._done(folder, unit):  # another job made it while we waited
                    continue
                for stale in (folder.path / unit.slug).glob(f".{unit.name}_i*.tmp"):
                    stale.unlink()  # left by a job killed mid-write; we hold the unit's claim now
                rows = []
                for i, (image, info) in enumerate(make(unit)):
                    file_name = f"{unit.slug}/{unit.name}_i{i:03d}.png"
                    atomic_save_image(folder.path / file_name, image)
                    rows.append({"file_name": file_name, "label": unit.label, "prompt_index": unit.prompt_index,
                                 "image_index": i, **info})
                atomic_write_bytes(marker, "".join(json.dumps(r) + "\n" for r in rows).encode())
                folder.made += len(rows)
        for unit in units:  # a unit made with more images per prompt serves fewer: the seeds are a prefix
            folder.rows.extend(read_jsonl(self._marker(folder, unit))[: len(unit.seeds)])
        folder.reused = len(folder.rows) - folder.made
        self._write_index(folder)

    def _done(self, folder: Folder, unit: Unit) -> bool:
        """Made, with at least as many images as asked (asking for more images per prompt remakes it)."""
        marker = self._marker(folder, unit)
        return marker.exists() and len(read_jsonl(marker)) >= len(unit.seeds)

    @staticmethod
    def _marker(folder: Folder, unit: Unit) -> Path:
        return _state(folder) / "units" / unit.slug / f"{unit.name}.jsonl"

    @staticmethod
    def _write_index(folder: Folder) -> None:
        """metadata.jsonl of every finished unit in the folder (not only this run's labels)."""
        markers = sorted((_state(folder) / "units").glob("*/*.jsonl"))
        rows = [line for p in markers for line in p.read_text().splitlines()]
        atomic_write_bytes(folder.path / "metadata.jsonl", "".join(line + "\n" for line in rows).encode())


def _state(folder: Folder) -> Path:
    """Bookkeeping lives beside the ImageFolder, not in it (ImageFolder takes every folder for a class)."""
    return folder.path.parent / ".state" / folder.key


def _without_file(row: dict) -> dict:
    return {k: v for k, v in row.items() if k not in {"file_name", "label", "prompt_index", "image_index"}}


def export(folder: Folder, labels: Iterable[str], dest: Path) -> Path:
    """Write just `labels` of a store folder as a standalone ImageFolder (hard links where possible)."""
    wanted = set(labels)
    rows = [r for r in folder.rows if r["label"] in wanted]
    for row in rows:
        target = dest / row["file_name"]
        target.parent.mkdir(parents=True, exist_ok=True)
        if not target.exists():
            try:
                os.link(folder.path / row["file_name"], target)
            except OSError:  # another file system, or links not allowed
                target.write_bytes((folder.path / row["file_name"]).read_bytes())
    atomic_write_bytes(dest / "metadata.jsonl", "".join(json.dumps(r) + "\n" for r in rows).encode())
    return dest
