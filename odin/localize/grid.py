"""A sample grid with each image's heatmap and box drawn over it (a PNG; the logger sends it to W&B)."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only; never a window
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.patches import Rectangle  # noqa: E402
from PIL import Image  # noqa: E402

from odin.localize.boxes import heatmap_path, heatmap_to_mask, load_heatmap, mask_to_box  # noqa: E402


def heatmap_grid(
    root: str | Path,
    rows: list[dict],
    out: str | Path,
    threshold: float | str = 0.4,
    per_label: int = 6,
    labels: list[str] | None = None,
    title: str = "",
) -> Path:
    """One row per label: its first `per_label` images, heatmap overlaid (jet, half transparent) and
    the box the threshold gives outlined in white."""
    root, out = Path(root), Path(out)
    labels = list(labels) if labels is not None else list(dict.fromkeys(r["label"] for r in rows))
    by_label = {label: [r for r in rows if r["label"] == label][:per_label] for label in labels}
    cols = max(1, max((len(v) for v in by_label.values()), default=1))
    fig, axes = plt.subplots(len(labels), cols, figsize=(1.6 * cols + 1.5, 1.6 * len(labels) + 0.6), squeeze=False)
    for ax_row, label in zip(axes, labels, strict=True):
        for ax, row in zip(ax_row, by_label[label] + [None] * cols, strict=False):
            ax.set_xticks([])
            ax.set_yticks([])
            ax.axis("off" if row is None else "on")
            if row is None:
                continue
            with Image.open(root / row["file_name"]) as im:
                ax.imshow(im.convert("RGB"))
            heat = load_heatmap(heatmap_path(root / row["file_name"]))
            ax.imshow(heat, cmap="jet", alpha=0.45, vmin=0, vmax=1)
            box = mask_to_box(heatmap_to_mask(heat, threshold))
            if box is not None:  # pixel edges: imshow puts pixel centres at integers
                x0, y0, x1, y1 = box
                ax.add_patch(Rectangle((x0 - 0.5, y0 - 0.5), x1 - x0, y1 - y0, fill=False, edgecolor="white", lw=1.5))
        ax_row[0].set_ylabel(label, rotation=0, ha="right", va="center", fontsize=9)
    fig.suptitle(title or f"where the label is (heatmap; box at threshold {threshold})", fontsize=10)
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=80)
    plt.close(fig)
    return out
