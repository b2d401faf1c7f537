"""The gap alarm: how well a cheap classifier tells the generated images from the user's real ones.

A held-out validation split of generated images reads ~100% whatever the real images look like, so it
cannot see a domain gap. This can, in a few seconds of CPU and before any training: a logistic regression
on small gray thumbnails plus histograms of intensity and gradient magnitude, scored on held-out folds.
Generated images are held out by group (their prompt: images of one prompt are near-duplicates), real
images one by one. No label of a real image is read: only which side an image comes from.
50% = indistinguishable; near 100% = the classifier will learn what the generated images look like, not
what the real ones do.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from PIL import Image

# Held-out accuracy from which the run warns. Below it the images still differ (a linear model on pixels
# and histograms finds exact intensity levels and stroke shapes), yet on the real digits as a folder a
# classifier transferred at 86-89% top-1 with 95-97% here, and at 72-81% with 100% (BENCHMARKS.md).
ALARM = 0.98
SIZE = 16  # thumbnails: enough for polarity, size, stroke and blockiness; cheap for any image


def gap_alarm(generated: Sequence[np.ndarray], real: Sequence[np.ndarray], groups: Sequence | None = None,
              seed: int = 0, size: int = SIZE, folds: int = 3) -> dict:
    """Held-out accuracy of generated-vs-real on float images in [0, 1] (H x W or H x W x C).

    `groups`: one per generated image (e.g. its prompt or store unit), so that no group is in both the
    training and the held-out folds. The larger side is subsampled (seeded) so both sides weigh the same.
    """
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import GroupKFold
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    rng = np.random.default_rng(seed)
    n = min(len(generated), len(real))
    if n < folds * 2:
        return {"accuracy": None, "n_generated": len(generated), "n_real": len(real),
                "meaning": f"too few images to measure (at least {folds * 2} of each side)"}
    gi = np.sort(rng.choice(len(generated), n, replace=False))
    ri = np.sort(rng.choice(len(real), n, replace=False))
    g_groups = list(groups) if groups is not None else list(range(len(generated)))
    x = np.stack([features(generated[i], size) for i in gi] + [features(real[i], size) for i in ri])
    y = np.r_[np.ones(n), np.zeros(n)]
    group_ids = [f"g:{g_groups[i]}" for i in gi] + [f"r:{i}" for i in ri]
    codes = {g: k for k, g in enumerate(dict.fromkeys(group_ids))}
    folds = min(folds, len({g for g in group_ids if g.startswith("g:")}))
    if folds < 2:
        return {"accuracy": None, "n_generated": n, "n_real": n,
                "meaning": "the generated images come from a single group: nothing to hold out"}
    correct = 0
    for train, test in GroupKFold(folds).split(x, y, [codes[g] for g in group_ids]):
        model = make_pipeline(StandardScaler(), LogisticRegression(C=0.1, max_iter=2000))
        model.fit(x[train], y[train])
        correct += int((model.predict(x[test]) == y[test]).sum())
    accuracy = correct / len(y)
    return {"accuracy": round(accuracy, 4), "n_generated": n, "n_real": n, "held_out": "by group, "
            f"{folds} folds", "features": f"{size}x{size} gray thumbnail + intensity and gradient histograms",
            "meaning": meaning(accuracy), "differences": differences(generated, real)}


def features(x: np.ndarray, size: int = SIZE) -> np.ndarray:
    """A gray thumbnail (area-averaged), 16-bin histograms of intensity and of gradient magnitude at full
    size, and how colourful the image is."""
    x = np.asarray(x, dtype=np.float32)
    gray = x if x.ndim == 2 else x[..., :3].mean(axis=2) if x.shape[2] >= 3 else x[..., 0]
    thumb = np.asarray(Image.fromarray(gray, "F").resize((size, size), Image.Resampling.BOX), dtype=np.float32)
    gy, gx = np.gradient(gray)
    intensity = np.histogram(gray, 16, (0, 1))[0] / gray.size
    gradient = np.histogram(np.clip(np.hypot(gx, gy), 0, 1), 16, (0, 1))[0] / gray.size
    colour = 0.0 if x.ndim == 2 or x.shape[2] < 3 else float(np.abs(x[..., :3] - gray[..., None]).mean())
    return np.r_[thumb.ravel(), intensity, gradient, colour].astype(np.float32)


def meaning(accuracy: float) -> str:
    if accuracy >= ALARM:
        return "nearly always told apart: the generated images do not look like the real ones"
    if accuracy >= 0.7:
        return "often told apart: the images differ in details a classifier may or may not learn from"
    return "hard to tell apart (50% = indistinguishable)"


def differences(generated: Sequence[np.ndarray], real: Sequence[np.ndarray]) -> dict:
    """Plain statistics of both sides, for the warning: the frame's border level (the ground: polarity),
    mean level, size, how many are in colour."""
    def summary(images):
        gray = [x if x.ndim == 2 else x[..., :3].mean(axis=2) for x in images]
        border = [np.median(np.r_[g[0], g[-1], g[:, 0], g[:, -1]]) for g in gray]
        return {"ground": round(float(np.median(border)), 3),
                "mean": round(float(np.mean([g.mean() for g in gray])), 3),
                "size": int(np.median([g.shape[0] for g in gray])),
                "colour": round(float(np.mean([x.ndim == 3 and float(np.ptp(x[..., :3], axis=2).mean()) > 2 / 255
                                               for x in images])), 3)}

    return {"generated": summary(generated), "real": summary(real)}


def warning(result: dict, post: str = "none") -> str | None:
    """A short warning with what to try, when the generated images are nearly always told apart."""
    accuracy = result.get("accuracy")
    if accuracy is None or accuracy < ALARM:
        return None
    lines = [f"gap alarm: a simple classifier tells generated from real images {accuracy:.0%} of the time "
             "(50% = indistinguishable); a classifier trained on these generated images may fail on yours."]
    d = result.get("differences") or {}
    g, r = d.get("generated"), d.get("real")
    if g and r:
        if (g["ground"] - 0.5) * (r["ground"] - 0.5) < 0:
            lines.append(f"  the backgrounds differ: generated ~{g['ground']:.2f}, real ~{r['ground']:.2f} "
                         "(light vs dark: polarity)")
        if g["size"] != r["size"]:
            lines.append(f"  the sizes differ: generated {g['size']} px, real {r['size']} px")
        if abs(g["colour"] - r["colour"]) > 0.5:
            lines.append(f"  colour: {g['colour']:.0%} of generated and {r['colour']:.0%} of real images")
    tries = ["post=match (learns your images' look from them, labels unused: polarity, channels, size, "
             "resolution, the subject's geometry, intensities)"] if post != "match" else []
    tries += ["post=auto", "prompts that describe your images (dataset.template_banks, dataset.context)"]
    lines.append("  try: " + "; ".join(tries))
    return "\n".join(lines)
