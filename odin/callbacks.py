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

        records = tables.collect(sweep_dir)
        if not self.values and tasks(records) == {"formulate"}:  # datasets, not scores: no metric to tabulate
            return formulate_table(sweep_dir, records, self.rows)
        values = self.values or [headline(records)]
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


def tasks(records: list[dict]) -> set[str]:
    """The tasks a sweep's jobs ran: from metrics.json, or Hydra's choices for a job that left none."""
    return {str((r["metrics"] or {}).get("task") or r["choices"].get("task")) for r in records}


def formulate_table(sweep_dir: Path, records: list[dict], rows: list[str] | None = None) -> str:
    """A task=formulate sweep: each job's dataset folder and how many images it holds (its metadata.jsonl rows),
    as table.md and table.csv in the sweep dir; the Markdown and the paths are returned."""
    import csv

    from odin.tables import JOB, lookup, varying_keys

    keys = rows or varying_keys(records)[:3] or [JOB]
    table = []
    for record in records:
        folder = (record["metrics"] or {}).get("dataset")
        if isinstance(folder, dict):
            folder = folder.get("path") or folder.get("folder")
        images, where = "missing", "missing"
        if folder and (Path(folder) / "metadata.jsonl").is_file():
            with open(Path(folder) / "metadata.jsonl", "rb") as f:
                images = str(sum(1 for line in f if line.strip()))
            where = _relative(Path(folder), sweep_dir)
        table.append([*(str(lookup(record, k)) for k in keys), images, where])
    head = [*keys, "images", "dataset"]
    markdown = "\n".join("| " + " | ".join(row) + " |" for row in [head, ["---"] * len(head), *table]) + "\n" + (
        "\nimages: rows of the exported dataset's metadata.jsonl; dataset: its folder (relative to the sweep dir); "
        "missing: the job left no dataset (failed or unfinished)\n")
    (sweep_dir / "table.md").write_text(f"# {sweep_dir.name}: datasets\n\n{markdown}")
    with (sweep_dir / "table.csv").open("w", newline="") as f:
        csv.writer(f).writerows([head, *table])
    return f"== datasets ({sweep_dir}) ==\n{markdown}written: {sweep_dir / 'table.md'}, {sweep_dir / 'table.csv'}"


def _relative(path: Path, root: Path) -> str:
    try:
        return path.resolve().relative_to(root.resolve()).as_posix()
    except ValueError:
        return str(path)


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
