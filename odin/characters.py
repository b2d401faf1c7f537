"""Class labels that name a character: what the digits dataset and the glyph backend both read.

A dataset must not import a generator, so the names live here.
"""

from __future__ import annotations

DIGIT_NAMES = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]


def label_to_char(label: str) -> str | None:
    """'7', 'seven', 'Seven' -> '7'; a single letter -> itself; anything else -> None."""
    text = label.strip()
    if text.lower() in DIGIT_NAMES:
        return str(DIGIT_NAMES.index(text.lower()))
    if len(text) == 1 and text.isascii() and text.isalnum():  # "²".isdigit() is True, but no font draws it
        return text
    return None
