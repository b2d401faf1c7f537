"""Progress bars on long work (tqdm). ODIN_PROGRESS=0 turns them off; in a log file (a SLURM job,
CI) they update every 30 s instead of many times a second."""

from __future__ import annotations

import os
import sys

from tqdm.auto import tqdm


def progress(iterable, **kwargs):
    disable = os.environ.get("ODIN_PROGRESS", "1") == "0"
    interval = 0.5 if sys.stderr.isatty() else 30.0
    return tqdm(iterable, disable=disable, dynamic_ncols=True, mininterval=interval, **kwargs)
