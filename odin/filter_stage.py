"""The image filter (filter=clip) as a cached stage of the store, between generation and post-processing.

  filtered/<key>/metadata.jsonl                 every image judged: kept or not, its scores, the reason
  filtered/<key>/config.json                    the filter config and the images folder it judged
  filtered/.scores/<scores key>/<slug>/u<id>.json  each image's scores against every candidate

Each generated image is scored against "a photo of a {label}" for every label of the run (and
`filter.distractors`). It is kept when its own label scores best and, with a threshold, at least
the threshold (odin.filter.decide). Each dropped image is replaced by a new one of the same label:
round r makes as many as are still missing, image j from the label's prompt j % n with seed
derive_seed(seed, label, prompt, occurrence, "extra", r, j), stored in the images folder as
units of their own (rows with `extra_round`), so the same config always keeps the same images.
After `filter.max_rounds` rounds (the first included) a label still short fails, named.

Keys: the scores depend on (model, template, padding, candidates, images key), not on the
decision, so a new threshold or max_rounds re-decides from cached scores and makes only the
replacement images it needs. The filtered folder's key adds the decision and the names of the images
judged and kept (the images' key leaves the counts out). Its rows point at the
images folder (`file_name` is relative to images/<images key>/), which the Folder it returns
reads from; post-processing and training key on the filtered key.
"""

from __future__ import annotations

import json
import logging
from collections import Counter, defaultdict
from pathlib import Path

import numpy as np

from odin import keys
from odin.files import atomic_write_bytes, atomic_write_json
from odin.filter import ClipFilter, FilterError, decide
from odin.keys import derive_seed
from odin.prompts import LabelPrompts
from odin.secrets import scrub
from odin.store import Folder, Store, Unit, label_slug, open_image

log = logging.getLogger("odin.run")


def extra_units(prompts: dict[str, LabelPrompts], missing: dict[str, int], seed: int, round_: int) -> list[Unit]:
    """Round `round_`'s replacement units: `missing[label]` images per label, spread over its prompts in order."""
    units = []
    for label, count in missing.items():
        texts = prompts[label].prompts
        occurrence = [texts[:i].count(t) for i, t in enumerate(texts)]
        by_prompt: dict[int, list[int]] = defaultdict(list)
        for j in range(count):
            by_prompt[j % len(texts)].append(j)
        for p, js in sorted(by_prompt.items()):
            text, k = texts[p], occurrence[p]
            units.append(Unit(label, text, k, [derive_seed(seed, label, text, k, "extra", round_, j) for j in js],
                              round_))
    return units


def cached_scores(store: Store, scores_key: str, images: Path, rows: list[dict], clip: ClipFilter,
                  candidates: list[str]) -> dict[str, np.ndarray]:
    """file_name -> scores against `candidates`, read from the store; only images never scored are scored."""
    by_unit: dict[str, list[dict]] = defaultdict(list)
    for row in rows:
        by_unit[row["unit"]].append(row)
    found, todo = {}, []
    paths = {}
    for unit, unit_rows in by_unit.items():
        path = paths[unit] = store.root / "filtered" / ".scores" / scores_key / label_slug(unit_rows[0]["label"]) / \
            f"{unit}.json"
        cached = _read_json(path)
        for row in unit_rows:
            if cached and row["file_name"] in cached:
                found[row["file_name"]] = np.asarray(cached[row["file_name"]], dtype=np.float32)
            else:
                todo.append(row)
    if todo:
        scores = clip.scores([open_image(images / r["file_name"]) for r in todo], candidates)
        for row, score in zip(todo, scores, strict=True):
            found[row["file_name"]] = score
        for unit in {r["unit"] for r in todo}:
            record = {r["file_name"]: [round(float(x), 6) for x in found[r["file_name"]]] for r in by_unit[unit]}
            atomic_write_json(paths[unit], record)
    return found


def filter_images(store: Store, filter_cfg: dict, clip: ClipFilter, images: Folder, prompts: dict[str, LabelPrompts],
                  labels: list[str], seed: int, make_extra) -> tuple[Folder, dict]:
    """The images of `images` that pass the filter, topped up with replacements; and what happened, for metrics.

    `make_extra(units) -> Folder` makes replacement units in the images folder (Store.image_units).
    """
    candidates = clip.candidates(labels)
    distractors = frozenset(candidates) - set(labels)
    scores_key = keys.config_hash(keys.filter_scores_config(filter_cfg), images.key, candidates)
    decision_cfg = keys.without(filter_cfg, keys.FILTER_IGNORED)
    threshold, max_rounds = filter_cfg.get("threshold"), int(filter_cfg.get("max_rounds", 3))
    need = Counter(r["label"] for r in images.rows)
    kept: dict[str, list[dict]] = {label: [] for label in need}
    judged: list[dict] = []
    rows, made, rounds = images.rows, 0, 1
    for round_ in range(max_rounds):
        if round_ > 0:
            missing = {label: need[label] - len(kept[label]) for label in need if len(kept[label]) < need[label]}
            if not missing:
                break
            rounds = round_ + 1
            extra = make_extra(extra_units(prompts, missing, seed, round_))
            made += extra.made
            rows = extra.rows
        scores = cached_scores(store, scores_key, images.path, rows, clip, candidates)
        for row in rows:
            label, score = row["label"], scores[row["file_name"]]
            verdict = decide(label, score, candidates, threshold, distractors)
            judged.append({**row, "filter_round": round_, **verdict.record(),
                           "scores": {c: round(float(s), 6) for c, s in zip(candidates, score, strict=True)}})
            if verdict.kept and len(kept[label]) < need[label]:
                kept[label].append({**row, "filter_score": round(verdict.score, 6)})
    # The key names the images kept (and judged): the images' key leaves out the counts (images_per_prompt), and
    # a run with other counts or prompts keeps other images, which post-processing must not take for these.
    chosen = [r["file_name"] for label in need for r in kept[label]]
    key = keys.config_hash(decision_cfg, images.key, candidates, chosen, [r["file_name"] for r in judged])
    _write_record(store.root / "filtered" / key, decision_cfg, images, candidates, judged)  # a failure's too
    short = [label for label in need if len(kept[label]) < need[label]]
    if short:
        raise FilterError(_short_message(short[0], len(short), kept, need, judged, max_rounds) +
                          f" Every score: {store.root / 'filtered' / key / 'metadata.jsonl'}")
    folder = Folder(key, images.path, [r for label in need for r in kept[label]], made=made,
                    heatmaps=images.heatmaps)  # made: replacement images this run made
    dropped = [r for r in judged if not r["kept"]]
    metrics = {"folder": str(store.root / "filtered" / key), "judged": len(judged), "kept": len(folder.rows),
               "dropped": len(dropped), "replacements_made": made, "rounds": rounds,
               "dropped_by_label": dict(Counter(r["label"] for r in dropped))}
    log.info("filter '%s': %d of %d images dropped, replaced in %d round(s) (%d images made); record: "
             "%s/metadata.jsonl", filter_cfg.get("name", "clip"), len(dropped), len(judged), rounds - 1, made,
             metrics["folder"])
    return folder, metrics


def _short_message(label: str, others: int, kept, need, judged, max_rounds: int) -> str:
    dropped = [r for r in judged if r["label"] == label and not r["kept"]]
    why = Counter(f"closer to '{r['best']}'" if r["best"] != label else "below threshold" for r in dropped)
    summary = ", ".join(f"{n} {reason}" for reason, n in why.most_common(3))
    more = f" ({others - 1} more label(s) too)" if others > 1 else ""
    return (f"the image filter kept only {len(kept[label])} of {need[label]} images of label '{label}' after "
            f"{max_rounds} round(s) ({len(dropped)} dropped: {summary}){more}. Lower filter.threshold, raise "
            "filter.max_rounds, or check the label's prompts.")


def _write_record(folder: Path, config: dict, images: Folder, candidates: list[str], judged: list[dict]) -> None:
    """metadata.jsonl of every judged image; rewritten only when it changed (a read-only store that holds it works)."""
    body = "".join(json.dumps(r) + "\n" for r in judged).encode()
    path = folder / "metadata.jsonl"
    if path.exists() and path.read_bytes() == body:
        return
    if not (folder / "config.json").exists():
        atomic_write_json(folder / "config.json", scrub({"filter": config, "images": images.key,
                                                          "images_folder": str(images.path),
                                                          "candidates": candidates}))
    atomic_write_bytes(path, body)


def _read_json(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None
