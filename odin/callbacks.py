"""Hydra callbacks: a multirun ends by printing its own table (conf/config.yaml: hydra.callbacks.report).

    python run.py -m post=none,blur,salt       ... then the table of the three jobs, and table.md/.csv/.png
                                                  in the sweep dir (odin.report.sweep_report)

The layout comes from hydra.callbacks.report.{rows, cols, value, best, keep}; the paper's experiments
set theirs (conf/experiment/paper/*.yaml). Left unset, the rows are the first key the sweep varies and
the value is the sweep's headline metric (top-1 for training, the detector's accuracy for task=detect,
the generated images' mean SSIM for task=diversity). Kept light: Hydra builds it for every command.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback

log = logging.getLogger("odin")

# The metric a sweep's table shows when none is configured: the first one its jobs report.
HEADLINES = ("top1", "detect.accuracy", "diversity.generated.pooled.mean")


class SweepReport(Callback):
    def __init__(self, rows: list[str] | None = None, cols: list[str] | None = None,
                 value: str | list[str] | None = None, best: str | None = None, keep: list[str] | None = None,
                 enabled: bool = True):
        self.rows, self.cols, self.best = _keys(rows), _keys(cols), best
        self.values = _keys(value)
        self.keep = [str(k) for k in keep] if keep else None  # with best in cols: the options shown beside "best"
        self.enabled = enabled

    def on_multirun_end(self, config: Any, **kwargs: Any) -> None:
        if not self.enabled:
            return
        sweep_dir = Path(config.hydra.sweep.dir)
        try:
            print(self.report(sweep_dir), flush=True)
        except Exception as error:  # a report must never turn a finished sweep into a failed command
            log.warning("no sweep table for %s: %s (python -m odin.report %s tries again)", sweep_dir, error, sweep_dir)

    def report(self, sweep_dir: Path) -> str:
        """The tables as Markdown (also written into `sweep_dir`)."""
        from odin import tables
        from odin.report import sweep_report

        values = self.values or [headline(tables.collect(sweep_dir))]
        parts = []
        for value in values:
            name = "table" if len(values) == 1 else f"table_{value.replace('.', '_')}"
            result = sweep_report(sweep_dir, self.rows, self.cols, value, self.best, name)
            markdown = result["markdown"]
            if self.keep and self.best in (self.cols or []):
                markdown = tables.to_markdown(kept_columns(result["table"], self.best, self.keep))
                (sweep_dir / f"{name}_paper.md").write_text(f"# {sweep_dir.name}: {value}\n\n{markdown}")
            parts.append(f"== {value} ({sweep_dir}) ==\n{markdown}written: {result['md']}, {result['csv']}, "
                         f"{result['png']}")
        return "\n".join(parts)


def headline(records: list[dict]) -> str:
    from odin.tables import lookup

    for key in HEADLINES:
        if any(r["metrics"] is not None and lookup(r, key) is not None for r in records):
            return key
    return HEADLINES[0]


def kept_columns(table, best: str, keep: list[str]):
    """The table with, of the columns that differ in `best`, only the `keep` options and the "best" column
    (the paper's Table 3: without post-processing, and the best post-processor)."""
    from dataclasses import replace

    at = table.cols.index(best)
    cols = [c for c in table.col_labels if c[at] in keep or str(c[at]).startswith("best ")]
    return replace(table, col_labels=cols)


def _keys(value) -> list[str] | None:
    if value is None:
        return None
    items = value.split(",") if isinstance(value, str) else list(value)
    return [str(k).strip() for k in items if str(k).strip()] or None
