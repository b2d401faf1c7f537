"""What people would rather look at than read: a sample grid per class and training curves."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only; never a window
import matplotlib.pyplot as plt  # noqa: E402
from PIL import Image  # noqa: E402


def sample_grid(folder: Path, rows: list[dict], labels: list[str], per_class: int, out: Path,
                title: str = "") -> Path:
    """One row per class, the first `per_class` images of it, the prompt of the first as a hint."""
    by_label = {label: [r for r in rows if r["label"] == label][:per_class] for label in labels}
    cols = max(1, max((len(v) for v in by_label.values()), default=1))
    fig, axes = plt.subplots(len(labels), cols, figsize=(1.3 * cols + 1.5, 1.3 * len(labels) + 0.6), squeeze=False)
    for ax_row, label in zip(axes, labels, strict=True):
        for ax, row in zip(ax_row, by_label[label] + [None] * cols, strict=False):
            ax.set_xticks([])
            ax.set_yticks([])
            ax.axis("off" if row is None else "on")
            if row is not None:
                with Image.open(folder / row["file_name"]) as im:
                    ax.imshow(im.convert("RGB"))
        ax_row[0].set_ylabel(label, rotation=0, ha="right", va="center", fontsize=9)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=80)
    plt.close(fig)
    return out


def training_curves(history: list[dict], out: Path) -> Path:
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
