"""Progress bars on long work (tqdm; quiet when ODIN_PROGRESS=0 or not a terminal in CI logs)."""

from __future__ import annotations

import os

from tqdm.auto import tqdm


def progress(iterable, **kwargs):
    disable = os.environ.get("ODIN_PROGRESS", "1") == "0"
    return tqdm(iterable, disable=disable, dynamic_ncols=True, **kwargs)
