"""Progress bars on long work (tqdm). ODIN_PROGRESS=0 turns them off.

On a terminal a bar redraws in place. Anywhere else (a SLURM job's log, CI, `2> run.err`) in-place redraws
would pile up as one huge line of carriage returns, so each update is a plain line of its own, at most one per
ODIN_PROGRESS_EVERY seconds (default 30), and bars that finish sooner than that print nothing.
"""

from __future__ import annotations

import os
import sys

from tqdm.auto import tqdm

# A log line: the numbers without the bar graphic ("train: 67% 2/3 [00:04<00:02, 0.50it/s, loss=0.5]").
PLAIN = "{desc}: {percentage:3.0f}% {n_fmt}/{total_fmt} [{elapsed}<{remaining}, {rate_fmt}{postfix}]"
PLAIN_COUNT = "{desc}: {n_fmt} [{elapsed}, {rate_fmt}{postfix}]"  # no total known: no percentage


class Lines:
    """A stream for tqdm that writes each redraw ("\\r" + status, padded; cursor moves for nested bars) as
    one line, and drops the blank redraws that clear a finished bar."""

    def __init__(self, stream):
        self.stream, self.last = stream, ""

    def write(self, text: str) -> None:
        for line in text.replace("\x1b[A", "").replace("\r", "\n").split("\n"):
            line = line.rstrip()
            if line.strip() and line != self.last:  # a parent bar redraws unchanged when a nested one closes
                self.stream.write(line + "\n")
                self.last = line

    def flush(self) -> None:
        self.stream.flush()


def progress(iterable, **kwargs):
    disable = os.environ.get("ODIN_PROGRESS", "1") == "0"
    if sys.stderr.isatty():
        return tqdm(iterable, disable=disable, dynamic_ncols=True, mininterval=0.5, **kwargs)
    every = float(os.environ.get("ODIN_PROGRESS_EVERY", "30"))
    total = kwargs.get("total", len(iterable) if hasattr(iterable, "__len__") else None)
    return tqdm(iterable, disable=disable, file=Lines(sys.stderr), mininterval=every, delay=every,
                bar_format=PLAIN if total is not None else PLAIN_COUNT, **kwargs)
