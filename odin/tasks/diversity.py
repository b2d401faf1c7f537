"""task=diversity: how alike a class's images are, generated (after post) vs real (the paper's Table 4, Figure 4).

Mean pairwise SSIM over every pair within a class (lower = more diverse), per class and overall, with
scikit-image's structural_similarity settings (odin.metrics.ssim equals it); and Hasler-Suesstrunk
colorfulness of every image at 224 px (the supplement's Figure 3). Both sources are compared as the
classifier sees them: the real images as the dataset loads them, the generated ones through
`dataset.acquire` (for the digits, the NIST normalisation), resized to `task.image_size`.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import torch

from odin.image_sets import generated_rows, load_generated, real_by_class
from odin.metrics.colorfulness import PAPER_SIZE, colorfulness
from odin.metrics.images import as_tensor
from odin.metrics.ssim import class_diversity
from odin.tasks import Task

log = logging.getLogger("odin.run")

SOURCES = ("generated", "real")


def diversity(ctx, generated) -> dict:
    """The `diversity` and `colorfulness` sections of metrics.json, and diversity.png / colorfulness.png."""
    cfg, dataset, labels, logger, out = ctx.cfg, ctx.dataset, ctx.labels, ctx.logger, ctx.out
    folder = generated.post_images
    task = cfg.task
    rows = generated_rows(folder, labels, task.max_per_class, cfg.seed)
    images = {"generated": {label: load_generated(folder, r, dataset) for label, r in rows.items()}}
    images["real"], split = real_by_class(dataset, labels, task.max_per_class, cfg.seed, split="test")
    settings = {"image_size": task.image_size, "gray": task.gray, "win_size": task.win_size,
                "data_range": task.data_range, "max_per_class": task.max_per_class, "real_split": split,
                "ssim": "skimage.metrics.structural_similarity defaults (uniform window, sample covariance, "
                        "border cropped); channels averaged when gray=false",
                "colorfulness_size": PAPER_SIZE}
    result: dict = {"settings": settings}
    values: dict[str, dict[str, list[float]]] = {}
    for source in SOURCES:
        usable = {label: xs for label, xs in images[source].items() if len(xs) >= 2}
        few = sorted(set(images[source]) - set(usable))
        if few:
            log.warning("diversity: %s images of %s are fewer than 2: left out (SSIM needs pairs)", source, few)
        if not usable:
            continue
        tensors = {label: as_tensor(xs, task.image_size, task.gray) for label, xs in usable.items()}
        found = class_diversity(tensors, task.data_range, keep_values=True, win_size=task.win_size)
        values[source] = found.pop("values")
        result[source] = found | {"images": {label: len(xs) for label, xs in usable.items()}}
        log.info("diversity (mean pairwise SSIM, lower = more diverse) of %s images: %.4f ± %.4f over %d pairs",
                 source, found["pooled"]["mean"], found["pooled"]["sd"], found["pooled"]["pairs"])
    figure = ssim_figure(values, out / "diversity.png", settings)
    logger.log_image("diversity", figure, caption="pairwise SSIM within each class")
    logger.log({f"diversity/{s}_mean": result[s]["pooled"]["mean"] for s in SOURCES if s in result})
    metrics = {"diversity": result, "colorfulness": colorfulness_by_class(images)}
    if "skipped" not in metrics["colorfulness"]:
        logger.log_image("colorfulness", colorfulness_figure(metrics["colorfulness"], out / "colorfulness.png"),
                         caption="Hasler-Suesstrunk colorfulness at 224 px")
    return metrics


def colorfulness_by_class(images: dict[str, dict[str, list[np.ndarray]]]) -> dict:
    """Each image's colorfulness, per source and class, with per-class means and SDs; gray images have none."""
    first = next((x for by_class in images.values() for xs in by_class.values() for x in xs), None)
    if first is None or first.ndim != 3 or first.shape[2] != 3:
        return {"skipped": "the images are grayscale: colorfulness is 0 for every one"}
    out: dict = {}
    for source, by_class in images.items():
        out[source] = {}
        for label, xs in by_class.items():
            if not xs:
                continue
            batch = torch.stack([torch.as_tensor(np.asarray(x, dtype=np.float64)).permute(2, 0, 1) * 255 for x in xs])
            m = colorfulness(batch, size=PAPER_SIZE)
            out[source][label] = {"mean": m.mean().item(), "sd": m.std(correction=0).item(), "values": m.tolist()}
    return out


def ssim_figure(values: dict[str, dict[str, list[float]]], path: Path, settings: dict) -> Path:
    """Figure 4's kind: the distribution of pairwise SSIM per source, and each class's mean per source."""
    from odin.report import pyplot

    plt = pyplot()
    fig, (hist, per_class) = plt.subplots(1, 2, figsize=(10, 3.6))
    bins = np.linspace(min(min(v) for s in values.values() for v in s.values()), 1.0, 50) if values else 10
    for k, (source, by_class) in enumerate(values.items()):
        pooled = np.concatenate([np.asarray(v) for v in by_class.values()])
        hist.hist(pooled, bins=bins, density=True, alpha=0.5, color=f"C{k}",
                  label=f"{source} (mean {pooled.mean():.3f})")
        hist.axvline(pooled.mean(), color=f"C{k}", linestyle="--")
        labels = list(by_class)
        per_class.plot(range(len(labels)), [np.mean(by_class[label]) for label in labels], "o", color=f"C{k}",
                       label=source)
        per_class.set_xticks(range(len(labels)), labels, rotation=60, ha="right", fontsize=7)
    hist.set(xlabel="SSIM of an image pair within a class", ylabel="density")
    per_class.set(ylabel="mean pairwise SSIM", xlabel="class")
    for ax in (hist, per_class):
        ax.legend(fontsize=8)
    fig.suptitle(f"diversity (lower SSIM = more diverse): {settings['image_size']} px, "
                 f"{'gray' if settings['gray'] else 'RGB'}, window {settings['win_size']}", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


def colorfulness_figure(found: dict, path: Path) -> Path:
    """Box plots of colorfulness per class, generated and real side by side."""
    from odin.report import pyplot

    plt = pyplot()
    labels = list(dict.fromkeys(label for source in SOURCES for label in found.get(source, {})))
    fig, ax = plt.subplots(figsize=(min(16.0, 3 + 0.5 * len(labels)), 3.6))
    for k, source in enumerate(SOURCES):
        data = [found.get(source, {}).get(label, {}).get("values", []) for label in labels]
        positions = [i + (k - 0.5) * 0.38 for i in range(len(labels))]
        boxes = ax.boxplot(data, positions=positions, widths=0.34, patch_artist=True, showfliers=False)
        for box in boxes["boxes"]:
            box.set_facecolor(f"C{k}")
        ax.plot([], [], "s", color=f"C{k}", label=source)
    ax.set_xticks(range(len(labels)), labels, rotation=60, ha="right", fontsize=7)
    ax.set(ylabel="colorfulness (Hasler-Suesstrunk)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


TASK = Task(run=diversity)
