"""What people would rather look at than read: sample grids, training curves, sweep tables, run reports.

    python -m odin.report <multirun dir> [--rows model --cols dataset,post --value top1 --best post]
"""

from __future__ import annotations

from pathlib import Path

from PIL import Image


def pyplot():
    """matplotlib.pyplot drawing to files only (never a window); imported when a picture is drawn, not before
    (half a second of a cached rerun)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def sample_grid(folder: Path, rows: list[dict], labels: list[str], per_class: int, out: Path,
                title: str = "") -> Path:
    """One row per class, the first `per_class` images of it, the class name beside the row.

    The tiles are laid into one picture and drawn as one image: a subplot per tile took 2 s for 80 tiles."""
    import numpy as np

    plt = pyplot()
    by_label = {label: [r for r in rows if r["label"] == label][:per_class] for label in labels}
    cols = max(1, max((len(v) for v in by_label.values()), default=1))
    tile, pad = _tile_size(folder, rows), 4
    step = tile + pad
    mosaic = np.full((len(labels) * step - pad, cols * step - pad, 3), 255, np.uint8)  # white between tiles
    for i, label in enumerate(labels):
        for j, row in enumerate(by_label[label]):
            with Image.open(folder / row["file_name"]) as im:
                picture = im.convert("RGB")
            picture.thumbnail((tile, tile))  # a larger image shrinks into its tile, keeping its aspect
            top, left = i * step + (tile - picture.height) // 2, j * step + (tile - picture.width) // 2
            mosaic[top:top + picture.height, left:left + picture.width] = np.asarray(picture)
    fig, ax = plt.subplots(figsize=(1.3 * cols + 1.5, 1.3 * len(labels) + 0.6))
    ax.imshow(mosaic, interpolation="nearest")
    ax.set_xticks([])
    ax.set_yticks([i * step + tile / 2 for i in range(len(labels))], labels, fontsize=9)
    ax.tick_params(length=0)
    for side in ax.spines.values():
        side.set_visible(False)
    if title:
        ax.set_title(title, fontsize=10)
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=80)
    plt.close(fig)
    return out


def _tile_size(folder: Path, rows: list[dict], most: int = 256) -> int:
    """The side of a tile: the first image's larger side, at most `most` pixels."""
    if not rows:
        return 1
    with Image.open(folder / rows[0]["file_name"]) as im:
        return min(max(im.size), most)


def training_curves(history: list[dict], out: Path) -> Path:
    plt = pyplot()
    fig, (loss_ax, acc_ax) = plt.subplots(1, 2, figsize=(9, 3.2))
    epochs = [h["epoch"] for h in history]
    loss_ax.plot(epochs, [h["train_loss"] for h in history], marker="o")
    loss_ax.set(xlabel="epoch", ylabel="train loss (generated images)")
    scored = [h for h in history if "top1" in h]
    for key in ("top1", "top3"):
        acc_ax.plot([h["epoch"] for h in scored], [h[key] for h in scored], marker="o", label=key)
    acc_ax.set(xlabel="epoch", ylabel="accuracy on real test images (%)")
    acc_ax.legend()
    fig.tight_layout()
    fig.savefig(out, dpi=80)
    plt.close(fig)
    return out


def table_plot(table, out: Path) -> Path:
    """Grouped bars: one group per table row, one bar per column (the "best" columns left out)."""
    plt = pyplot()
    cols = [c for c in table.col_labels if not any(str(part).startswith("best ") for part in c)]
    width = 0.8 / max(1, len(cols))
    fig, ax = plt.subplots(figsize=(min(16.0, 3 + 0.3 * len(table.row_labels) * max(1, len(cols))), 3.6))
    for k, col in enumerate(cols):
        for i, row in enumerate(table.row_labels):
            cell, x = table.cell(row, col), i + (k - (len(cols) - 1) / 2) * width
            if cell.value is not None:
                ax.bar(x, cell.value, width, color=f"C{k % 10}", label=table.col_name(col) if i == 0 else None)
            elif cell.missing:  # a failed job: say so where its bar would be
                ax.text(x, 0, f" {cell.text()}", rotation=90, ha="center", va="bottom", fontsize=7)
    ax.set_xticks(range(len(table.row_labels)), [" / ".join(r) for r in table.row_labels], rotation=20, ha="right")
    ax.set(ylabel=table.value, xlabel=" / ".join(table.rows))
    if len(cols) > 1:
        ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    fig.tight_layout()
    fig.savefig(out, dpi=90)
    plt.close(fig)
    return out


def sweep_report(sweep_dir: str | Path, rows: list[str] | None = None, cols: list[str] | None = None,
                 value: str = "top1", best: str | None = None, name: str = "table") -> dict:
    """The sweep's table as <name>.md, <name>.csv and <name>.png in `sweep_dir`; returns the Markdown and paths.

    Without `rows`, the first key the sweep varies labels the rows and the others the columns.
    """
    from odin import tables

    sweep_dir = Path(sweep_dir)
    records = tables.collect(sweep_dir)
    if not records:
        raise FileNotFoundError(f"{sweep_dir} has no jobs (no <job>/.hydra/overrides.yaml or <job>/metrics.json)")
    if not rows:
        varying = [k for k in tables.varying_keys(records) if k not in (cols or []) and k != best]
        rows = varying[:1] or [tables.JOB]
        cols = cols if cols is not None else varying[1:]
    table = tables.pivot(records, rows, cols or [], value=value, best=best)
    markdown = tables.to_markdown(table)
    failed = [r["job"] for r in records if r["metrics"] is None]
    if failed:
        markdown += f"jobs without metrics.json: {', '.join(failed)}\n"
    md = sweep_dir / f"{name}.md"
    md.write_text(f"# {sweep_dir.name}: {value}\n\n{markdown}")
    return {"markdown": markdown, "table": table, "md": md, "csv": tables.write_csv(table, sweep_dir / f"{name}.csv"),
            "png": table_plot(table, sweep_dir / f"{name}.png")}


def write_run_report(run_dir: str | Path, metrics: dict, config_summary: dict) -> Path:
    """A short report.md a person reads without W&B: headline result, config, metrics, the run's figures."""
    run_dir = Path(run_dir)
    lines = [f"# Run {run_dir.name}", ""]
    if "top1" in metrics:
        lines += [f"**top-1 {metrics['top1']:.2f}%**, top-3 {metrics.get('top3', float('nan')):.2f}% "
                  f"(best epoch {metrics.get('best_epoch', '?')}) on {_count(metrics.get('test_images'))} real test "
                  f"images, trained on {trained_on(metrics.get('train_images'))}.", ""]
    gap = metrics.get("gap") or {}
    if gap.get("accuracy") is not None:
        lines += [f"Gap alarm: a simple classifier told the generated training images from real ones "
                  f"{100 * gap['accuracy']:.0f}% of the time (50% = indistinguishable; {gap['meaning']}).", ""]
        lines += ["```", gap["warning"], "```", ""] if gap.get("warning") else []
    lines += ["## Config", "", *_key_value_table(config_summary), "", "## Metrics", "",
              *_key_value_table(metrics), ""]
    figures = [f for f in ("samples.png", "curves.png") if (run_dir / f).exists()]
    if figures:
        lines += ["## Figures", ""] + [f"![{Path(f).stem}]({f})" for f in figures] + [""]
    out = run_dir / "report.md"
    out.write_text("\n".join(lines))
    return out


def trained_on(images) -> str:
    """metrics.json's train_images ({"generated", "real", "held_out"}, or a plain count) as a phrase."""
    if not isinstance(images, dict):
        return f"{_count(images)} generated images"
    generated, real, held = (images.get(k, 0) for k in ("generated", "real", "held_out"))
    parts = [f"{_count(n)} {kind}" for n, kind in ((real, "real"), (generated, "generated")) if n]
    text = f"{' and '.join(parts) or 'no'} images" + ("" if real else " only")
    return text + (f" ({_count(held)} more generated ones held out to choose an epoch)" if held else "")


def _count(n) -> str:
    return f"{n:,}" if isinstance(n, int) else "?"


def _key_value_table(data: dict) -> list[str]:
    rows = _flatten(data)
    return ["| key | value |", "|---|---|", *(f"| {k} | {v} |" for k, v in rows)] if rows else ["(none)"]


def _flatten(data, prefix: str = "", max_items: int = 12) -> list[tuple[str, str]]:
    """Nested dicts as dotted keys; long lists and large dicts (prompts, history) summarised, not dumped."""
    out = []
    for key, value in data.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict) and len(value) <= max_items:
            out += _flatten(value, f"{name}.", max_items)
        elif isinstance(value, dict):
            out.append((name, f"{len(value)} entries"))
        elif isinstance(value, list | tuple) and (len(value) > max_items or any(isinstance(v, dict | list)
                                                                                 for v in value)):
            out.append((name, f"{len(value)} items"))
        elif isinstance(value, float):
            out.append((name, f"{value:.4g}"))
        else:
            text = ", ".join(map(str, value)) if isinstance(value, list | tuple) else str(value)
            out.append((name, text.replace("|", "\\|").replace("\n", " ")))
    return out


def main(argv: list[str] | None = None) -> None:
    import argparse

    parser = argparse.ArgumentParser(
        prog="python -m odin.report",
        description="A table of a sweep's results (every job's metrics.json) as Markdown, CSV and a plot, "
                    "written into the multirun dir; the Markdown is printed.")
    parser.add_argument("sweep_dir", help="a multirun dir, e.g. outputs/multirun/<date>/<time>")
    parser.add_argument("--rows", help="keys labelling rows, comma separated (default: the first key the sweep varies)")
    parser.add_argument("--cols", help="keys labelling columns, comma separated (default: the other varied keys)")
    parser.add_argument("--value", default="top1", help="the metric in each cell; dotted for nested (timing.total_s)")
    parser.add_argument("--best", help="a key to take the best over, e.g. post: the paper's 'best post' cell")
    parser.add_argument("--name", default="table", help="file name stem of the outputs (default: table)")
    args = parser.parse_args(argv)
    rows, cols = (None if s is None else [k for k in s.split(",") if k] for s in (args.rows, args.cols))
    try:
        result = sweep_report(args.sweep_dir, rows, cols, args.value, args.best, args.name)
    except (FileNotFoundError, ValueError) as error:
        raise SystemExit(f"error: {error}") from None
    print(result["markdown"])
    print(f"written: {result['md']}, {result['csv']}, {result['png']}")


if __name__ == "__main__":
    main()
