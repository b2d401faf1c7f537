"""Sweep tables: every job's metrics.json in a multirun dir -> one table a researcher reads.

Plain Python (no pandas, no plotting) so a Hydra callback can call it at the end of a multirun:
    records = collect(sweep_dir)
    table = pivot(records, rows=["model"], cols=["dataset", "post"], value="top1", best="post")
    print(to_markdown(table))
A job's choices come from Hydra's own files in its dir (`.hydra/hydra.yaml`: runtime.choices, every
config group's option; `.hydra/overrides.yaml`: what the sweep set), so any launcher's sweep works, and
from `choices` / `overrides` records in metrics.json when a run writes them. A job without
metrics.json (failed, killed, still running) is a record whose metrics are None: it shows as
"missing" rather than vanishing from the table.
"""

from __future__ import annotations

import csv
import json
import statistics
from dataclasses import dataclass, field
from pathlib import Path

import yaml

MISSING = "missing"  # a job ran for this cell but left no value (failed, killed, still running)
NOT_RUN = "—"  # no job of the sweep has these choices
JOB = "job"  # a pseudo-key: the job's folder name, for sweeps where nothing varies


def collect(sweep_dir: str | Path) -> list[dict]:
    """One record per job folder under `sweep_dir` (folders with `.hydra/` or metrics.json), in job order.

    Record: {"job": folder relative to sweep_dir, "dir": path, "choices": {group: option},
    "overrides": {key: value}, "metrics": dict or None}.
    """
    root = Path(sweep_dir)
    if not root.is_dir():
        raise FileNotFoundError(f"{root} is not a folder; give a multirun dir such as outputs/multirun/<date>/<time>")
    job_dirs = {p.parent.parent for p in root.rglob(".hydra/overrides.yaml")}
    job_dirs |= {p.parent for p in root.rglob("metrics.json")}
    job_dirs = [d for d in job_dirs if not {".hydra", ".submitit", "wandb"} & set(d.relative_to(root).parts)]
    return [_record(root, d) for d in sorted(job_dirs, key=lambda d: _natural(d.relative_to(root)))]


def _natural(rel: Path) -> tuple:
    """Job folders 0, 1, ..., 10 in number order, not string order."""
    return tuple((0, int(part), "") if part.isdigit() else (1, 0, part) for part in rel.parts)


def _record(root: Path, job_dir: Path) -> dict:
    hydra_dir = job_dir / ".hydra"
    choices, overrides = {}, {}
    if (hydra_dir / "hydra.yaml").exists():
        hydra_cfg = yaml.safe_load((hydra_dir / "hydra.yaml").read_text()) or {}
        runtime_choices = hydra_cfg.get("hydra", {}).get("runtime", {}).get("choices") or {}
        choices = {k: str(v) for k, v in runtime_choices.items() if not k.startswith("hydra/")}
    if (hydra_dir / "overrides.yaml").exists():
        overrides = parse_overrides(yaml.safe_load((hydra_dir / "overrides.yaml").read_text()) or [])
    metrics = None
    if (job_dir / "metrics.json").exists():
        try:
            metrics = json.loads((job_dir / "metrics.json").read_text())
        except json.JSONDecodeError:  # a half-written file from a killed job: report it as missing
            metrics = None
    if metrics:
        choices |= {k: str(v) for k, v in (metrics.get("choices") or {}).items()}
        recorded = metrics.get("overrides") or {}
        overrides |= (parse_overrides(recorded) if isinstance(recorded, list)
                      else {k: str(v) for k, v in recorded.items()})
    return {"job": job_dir.relative_to(root).as_posix(), "dir": str(job_dir), "choices": choices,
            "overrides": overrides, "metrics": metrics}


def parse_overrides(lines: list[str]) -> dict[str, str]:
    """Hydra override strings ("post=blur", "+extra=1", "~key") -> {"post": "blur", "extra": "1"}."""
    out = {}
    for line in lines:
        key, sep, value = str(line).partition("=")
        if sep and not key.startswith("~"):
            out[key.lstrip("+")] = value
    return out


def lookup(record: dict, key: str):
    """A record's value for `key`: the job folder, an override, a group's choice, or a dotted metrics key."""
    if key == JOB:
        return record["job"]
    if key in record["overrides"]:
        return record["overrides"][key]
    if key in record["choices"]:
        return record["choices"][key]
    value = record["metrics"]
    for part in key.split("."):
        if not isinstance(value, dict) or part not in value:
            return None
        value = value[part]
    return value


def varying_keys(records: list[dict]) -> list[str]:
    """The override keys whose value differs between jobs, in the order the sweep lists them."""
    keys = list(dict.fromkeys(k for r in records for k in r["overrides"]))
    return [k for k in keys if len({r["overrides"].get(k) for r in records}) > 1]


@dataclass
class Cell:
    values: list[float] = field(default_factory=list)  # one per job that reported the value
    missing: int = 0  # jobs of this cell without the value
    winner: str | None = None  # for a "best" cell: the option that won
    partial: bool = False  # for a "best" cell: some jobs it chose among are missing

    @property
    def value(self) -> float | None:
        return statistics.fmean(self.values) if self.values else None

    def text(self, digits: int = 2) -> str:
        if not self.values:
            return MISSING if self.missing else NOT_RUN
        text = f"{self.value:.{digits}f}"
        if len(self.values) > 1:
            text += f" ± {statistics.pstdev(self.values):.{digits}f} (n={len(self.values)})"
        if self.missing and self.winner is None:
            text += f" ({self.missing} missing)"
        if self.winner is not None:
            text += f" ({self.winner})" + ("*" if self.partial else "")
        return text


@dataclass
class Table:
    rows: list[str]  # the keys that label rows
    cols: list[str]
    value: str
    best: str | None
    row_labels: list[tuple]
    col_labels: list[tuple]
    cells: dict[tuple[tuple, tuple], Cell]

    def cell(self, row: tuple, col: tuple) -> Cell:
        return self.cells.get((row, col), Cell())

    def col_name(self, col: tuple) -> str:
        return " / ".join(str(c) for c in col) if col else self.value


def pivot(records: list[dict], rows: list[str], cols: list[str], value: str = "top1",
          best: str | None = None) -> Table:
    """Cells of `value` by the `rows` keys x the `cols` keys; several jobs in one cell (seeds) are averaged.

    `best`: the paper's "best post" reduction. If `best` is one of `cols`, each group of columns that
    differ only in it gets a "best <key>" column: the highest cell and which option gave it. If it is in
    neither rows nor cols, every cell is that maximum over its options (with the winner named).
    """
    if not rows:
        raise ValueError("rows: give at least one key to label rows, e.g. --rows model")
    if best is not None and best in rows:
        raise ValueError(f"best={best!r} is a row key; put it in the columns (--cols ...,{best}) or leave it out")
    inside = best is not None and best not in cols  # reduce over `best` inside each cell
    by_option: dict[tuple, dict[str, Cell]] = {}
    row_labels, col_labels = [], []
    for record in records:
        row = tuple(_label(lookup(record, k)) for k in rows)
        col = tuple(_label(lookup(record, k)) for k in cols)
        row_labels.append(row)
        col_labels.append(col)
        option = _label(lookup(record, best)) if inside else ""
        cell = by_option.setdefault((row, col), {}).setdefault(option, Cell())
        number = lookup(record, value) if record["metrics"] is not None else None
        if isinstance(number, int | float) and not isinstance(number, bool):
            cell.values.append(float(number))
        else:
            cell.missing += 1
    row_labels, col_labels = list(dict.fromkeys(row_labels)), list(dict.fromkeys(col_labels))
    cells = {key: _best_of(options, keep_name=inside) for key, options in by_option.items()}
    if best is not None and not inside:
        col_labels = _add_best_columns(cells, row_labels, col_labels, cols.index(best), best)
    return Table(rows, cols, value, best, row_labels, col_labels, cells)


def _label(value) -> str:
    return NOT_RUN if value is None else str(value)


def _best_of(options: dict[str, Cell], keep_name: bool) -> Cell:
    if not keep_name:
        return options[""]
    scored = {name: cell for name, cell in options.items() if cell.values}
    if not scored:
        return Cell(missing=sum(c.missing for c in options.values()))
    top = max(cell.value for cell in scored.values())
    winners = " = ".join(name for name, cell in scored.items() if cell.value == top)  # ties named, not hidden
    return Cell([top], winner=winners, partial=any(c.missing for c in options.values()))


def _add_best_columns(cells: dict, row_labels: list[tuple], col_labels: list[tuple], at: int, key: str) -> list:
    """After each group of columns that differ only at position `at`, a column with the best of them."""
    groups: dict[tuple, list[tuple]] = {}
    for col in col_labels:
        groups.setdefault(col[:at] + col[at + 1:], []).append(col)
    out = []
    for rest, members in groups.items():
        best_col = rest[:at] + (f"best {key}",) + rest[at:]
        out += members + [best_col]
        for row in row_labels:
            options = {col[at]: cells[(row, col)] for col in members if (row, col) in cells}
            if options:
                cells[(row, best_col)] = _best_of(options, keep_name=True)
    return out


def to_markdown(table: Table, digits: int = 2) -> str:
    head = [*table.rows, *(table.col_name(c) for c in table.col_labels)]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for row in table.row_labels:
        cells = [table.cell(row, col).text(digits) for col in table.col_labels]
        lines.append("| " + " | ".join([*row, *cells]) + " |")
    notes = [f"{table.value}; {MISSING}: the job left no {table.value} (failed or unfinished); "
             f"{NOT_RUN}: not in the sweep"]
    if table.best and any(c.partial for c in table.cells.values()):
        notes.append(f"*: best over the {table.best} options that finished; some of them are missing")
    return "\n".join(lines) + "\n\n" + "\n".join(notes) + "\n"


def write_csv(table: Table, path: str | Path) -> Path:
    """The same table as numbers: a cell's mean, "missing" or empty; a best column is followed by its winner."""
    head, columns = [*table.rows], []
    for col in table.col_labels:
        head.append(table.col_name(col))
        columns.append((col, False))
        if (table.best and table.best not in table.cols) or any(str(c).startswith("best ") for c in col):
            head.append(f"{table.col_name(col)} (which)")
            columns.append((col, True))
    path = Path(path)
    with path.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(head)
        for row in table.row_labels:
            out = list(row)
            for col, winner in columns:
                cell = table.cell(row, col)
                out.append((cell.winner or "") if winner else
                           (cell.value if cell.value is not None else (MISSING if cell.missing else "")))
            writer.writerow(out)
    return path
