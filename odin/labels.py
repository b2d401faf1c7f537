"""The run's label list, checked as given: for odin.context.choose_labels, before the labels meet a dataset."""

from __future__ import annotations

from odin.errors import ConfigError


def check_labels(chosen: list[str], dataset: str) -> None:
    """An empty list, or an empty or blank label, named as what it is (and how a shell makes one of the other)."""
    if not chosen:
        raise ConfigError("labels=[] is empty: give at least one, e.g. labels='[three,seven]', or leave labels unset "
                          f"to use all classes of dataset={dataset} (a shell removes the quotes of labels=[\"\"], "
                          "which then arrives as labels=[])")
    blank = [i for i, label in enumerate(chosen) if not label.strip()]
    if blank:
        i = blank[0]
        raise ConfigError(f"labels={chosen!r}: label {i + 1} of {len(chosen)} is empty ({chosen[i]!r}); every label "
                          "names a class: drop it or write its name, e.g. labels='[three,seven]'")
