"""Hold out whole prompts of the generated training set, to choose an epoch without the test set.

Images of one prompt are near-duplicates, so a held-out split of single images would leak; the
split is by unit (label, prompt), chosen by the unit's content hash: the same units whatever the
run, at least one unit of each label kept for training.
"""

from __future__ import annotations

import math


def holdout_prompts(rows: list[dict], fraction: float) -> tuple[list[dict], list[dict]]:
    """(training rows, held-out rows): about `fraction` of each label's prompts held out."""
    if fraction <= 0:
        return rows, []
    units_by_label: dict[str, list[str]] = {}
    for row in rows:
        units = units_by_label.setdefault(row["label"], [])
        if row["unit"] not in units:
            units.append(row["unit"])
    held = set()
    for units in units_by_label.values():
        n = min(math.floor(fraction * len(units) + 0.5), len(units) - 1)
        held |= set(sorted(units)[:n])  # unit names are content hashes: an arbitrary, stable choice
    return [r for r in rows if r["unit"] not in held], [r for r in rows if r["unit"] in held]
