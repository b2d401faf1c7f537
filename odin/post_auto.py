"""post=auto: choose the post-processor whose output is closest to the real images, without their labels.

The paper leaves "finding the optimal post-processing" to future work and picks it on the test set
(the best column of its Table 3). Here each candidate (`post.candidates`, parameters from
conf/post/<name>.yaml) post-processes the same generated images and is scored against real images of
the run's classes, pooled, their class labels unused:
  criterion=detect  a real-vs-generated detector's held-out accuracy at its last epoch (task=detect's
                    measurement; 50% = indistinguishable); the lowest wins
  criterion=kid     the kernel inception distance (unbiased MMD^2, cubic polynomial kernel) between the
                    pixels at the model's input size; the lowest wins
The real images come from the dataset's training split when it has one, else from its test split
(images only). Ties go to the earlier candidate. The choice and every score go to metrics.json
(post.auto); the run then proceeds with the chosen post-processor.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping

import torch

from odin.errors import ConfigError
from odin.post import PostProcessor
from odin.store import Folder, Store
from odin.tasks.images import real_pool, seeded_subset, whole_units

log = logging.getLogger("odin.run")

CRITERIA = {
    "detect": "lowest held-out accuracy (last epoch) of a real-vs-generated detector; 50% = indistinguishable",
    "kid": "lowest KID (unbiased MMD^2, cubic polynomial kernel) between pixels at the model's input size",
}


class AutoPost:
    """post=auto's candidates and settings; `choose` picks one once the generated images exist."""

    is_identity = False

    def __init__(self, name: str = "auto", candidates: list[str] | None = None,
                 options: Mapping[str, PostProcessor] | None = None, criterion: str = "detect",
                 max_per_class: int = 100, holdout: float = 0.3, apply_to_test: bool = False):
        self.name, self.options = name, dict(options or {})
        self.candidates = list(candidates if candidates is not None else self.options)
        if not self.candidates:
            raise ConfigError("post.candidates is empty: list at least two, e.g. post.candidates=[none,blur,salt]")
        unknown = [c for c in self.candidates if c not in self.options]
        if unknown:
            raise ConfigError(f"post.candidates {unknown} have no parameters in post.options (known: "
                              f"{sorted(self.options)}); add one with +post.options.<name>='{{mode: ...}}' or use "
                              "those names")
        if len(set(self.candidates)) != len(self.candidates):
            raise ConfigError(f"post.candidates={self.candidates} names one candidate twice")
        if criterion not in CRITERIA:
            raise ConfigError(f"post.criterion={criterion!r} is not one of {', '.join(CRITERIA)}")
        self.criterion, self.max_per_class, self.holdout = criterion, max_per_class, holdout
        self.apply_to_test = apply_to_test

    def choose(self, cfg, plain: dict, dataset, labels: list[str], images: Folder,
               store: Store) -> tuple[PostProcessor, dict, dict]:
        """(the chosen processor, its config, the record of the choice) for the generated `images`."""
        n = self.max_per_class
        sample = whole_units(images, labels, n, cfg.seed)
        pool, split = real_pool(dataset, labels, n, cfg.seed)
        identity = {"dataset": plain["dataset"], "labels": labels, "split": split, "n": len(pool), "seed": cfg.seed,
                    "by": "pool"}
        scores, details = {}, {}
        for name in self.candidates:
            processor, config = self.options[name], plain["post"]["options"][name]
            folder = sample if processor.is_identity else store.post(config, processor, sample)
            rows = [r for label in labels for r in [x for x in folder.rows if x["label"] == label][:n]]
            if self.criterion == "detect":
                from odin.tasks.detect import measure_gap

                found = measure_gap(cfg, plain, dataset, labels, folder, {"all": pool}, {"all": rows}, identity,
                                    store, self.holdout)
                scores[name] = found["last_accuracy"]
                details[name] = {k: found[k] for k in ("accuracy", "last_accuracy", "best_epoch", "status")}
            else:
                scores[name] = pixel_kid(dataset, folder, rows, pool, cfg.model.input_size, cfg.seed)
            log.info("post=auto: %s scores %.4f (%s)", name, scores[name], self.criterion)
        chosen = min(self.candidates, key=scores.__getitem__)  # min keeps the first of equals
        log.info("post=auto chose '%s' (%s)", chosen, CRITERIA[self.criterion])
        processor = self.options[chosen]
        processor.apply_to_test = self.apply_to_test
        config = {**plain["post"]["options"][chosen], "apply_to_test": self.apply_to_test}
        record = {"chosen": chosen, "criterion": self.criterion, "why": CRITERIA[self.criterion], "scores": scores,
                  "real_split": split, "real_images": len(pool), "generated_per_class": n,
                  **({"details": details} if details else {})}
        return processor, config, record


def pixel_kid(dataset, folder: Folder, rows: list[dict], real: list, size: int, seed: int) -> float:
    from odin.tasks.diversity import as_tensor
    from odin.tasks.images import load_generated

    n = min(len(rows), len(real))
    gray = dataset.channels == 1
    generated = as_tensor(load_generated(folder, seeded_subset(rows, n, seed, "kid"), dataset), size, gray)
    real_x = as_tensor(seeded_subset(real, n, seed, "kid"), size, gray)
    return kid(generated.flatten(1), real_x.flatten(1))


def kid(x: torch.Tensor, y: torch.Tensor) -> float:
    """Unbiased MMD^2 between samples x [N, D] and y [M, D] with k(a, b) = (a.b / D + 1)^3 (Binkowski et al. 2018)."""
    d = x.shape[1]

    def kernel(a, b):
        return (a @ b.T / d + 1) ** 3

    kxx, kyy, kxy = kernel(x, x), kernel(y, y), kernel(x, y)
    n, m = len(x), len(y)
    within = (kxx.sum() - kxx.diagonal().sum()) / (n * (n - 1)) + (kyy.sum() - kyy.diagonal().sum()) / (m * (m - 1))
    return float(within - 2 * kxy.mean())
