"""post=auto: choose the post-processor whose output is closest to the real images, without their labels.

The paper leaves "finding the optimal post-processing" to future work and picks it on the test set
(the best column of its Table 3). Here each candidate (`post.candidates`, parameters from
conf/post/<name>.yaml) post-processes the same generated images and is scored against real images of
the run's classes, pooled, their class labels unused:
  criterion=detect  a real-vs-generated detector's held-out accuracy at its last epoch (task=detect's
                    measurement; 50% = indistinguishable); the lowest wins
  criterion=kid     the kernel inception distance (unbiased MMD^2, cubic polynomial kernel) between
                    each image's histograms of intensity and of gradient magnitude at the model's input
                    size (brightness, contrast, sharpness and noise, wherever the object is); the lowest
                    wins. No pretrained network: a from-scratch model has no features worth comparing
The real images come from the dataset's training split when it has one, else from its test split
(images only). Ties go to the earlier candidate. The choice and every score go to metrics.json
(post.auto); the run then proceeds with the chosen post-processor.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping

import torch
from hydra.utils import instantiate

from odin.errors import ConfigError
from odin.image_sets import real_pool, seeded_subset, whole_units
from odin.post import Chosen
from odin.store import Folder

log = logging.getLogger("odin.run")

CRITERIA = {
    "detect": "lowest held-out accuracy (last epoch) of a real-vs-generated detector; 50% = indistinguishable",
    "kid": "lowest KID (unbiased MMD^2, cubic polynomial kernel) between intensity and gradient histograms "
           "at the model's input size",
}


class AutoPost:
    """post=auto's candidates and settings; `choose` picks one once the generated images exist."""

    def __init__(self, name: str = "auto", candidates: list[str] | None = None, options: Mapping | None = None,
                 criterion: str = "detect", max_per_class: int = 100, holdout: float = 0.3,
                 apply_to_test: bool = False):
        # Checked in check(), not here: Hydra wraps what a constructor raises, and a user's mistake
        # should read as one clean message (odin/context.py calls check() before any work).
        self.name, self.configs = name, dict(options or {})
        self.candidates = list(candidates if candidates is not None else self.configs)
        self.criterion, self.max_per_class, self.holdout = criterion, max_per_class, holdout
        self.apply_to_test = apply_to_test
        self.options: dict = {}  # name -> the candidate's post stage (a PostProcessor, post=match's MatchPost)

    def check(self, ctx) -> None:
        """Every candidate named once and known (their parameters are checked by odin/validate.py), and the
        detector's model when the criterion trains one."""
        if not self.candidates:
            raise ConfigError("post.candidates is empty: list at least two, e.g. post.candidates=[none,blur,salt]")
        unknown = [c for c in self.candidates if c not in self.configs]
        if unknown:
            raise ConfigError(f"post.candidates {unknown} have no parameters in post.options (known: "
                              f"{sorted(self.configs)}); add one with '+post.options.<name>={{name: <name>, "
                              "mode: ...}}' or use those names")
        if len(set(self.candidates)) != len(self.candidates):
            raise ConfigError(f"post.candidates={self.candidates} names one candidate twice")
        if self.criterion not in CRITERIA:
            raise ConfigError(f"post.criterion={self.criterion!r} is not one of {', '.join(CRITERIA)}")
        for name in self.candidates:  # each candidate gets post=auto's apply_to_test (match refuses true)
            self.options[name] = instantiate(self.configs[name], apply_to_test=self.apply_to_test)
            self.options[name].check(ctx)
        if self.criterion == "detect":
            instantiate(ctx.cfg.model).check()

    def choose(self, ctx, images: Folder) -> Chosen:
        """The chosen processor, its config and the record of the choice, for the generated `images`."""
        cfg, plain, dataset, labels, store = ctx.cfg, ctx.config, ctx.dataset, ctx.generated_labels, ctx.store
        n = self.max_per_class
        sample = whole_units(images, labels, n, cfg.seed)
        pool, split = real_pool(dataset, labels, n, cfg.seed)
        identity = {"dataset": plain["dataset"], "labels": labels, "split": split, "n": len(pool), "seed": cfg.seed,
                    "by": "pool", "real_images": dataset.fingerprint(split, labels)}
        scores, details = {}, {}
        processors, configs = {}, {}
        for name in self.candidates:
            # a fixed processor is itself; post=match learns the real images' look here, as it would alone
            processor, configs[name], _ = self.options[name].choose(ctx, sample)
            processors[name] = processor
            folder = sample if processor.is_identity else store.post(configs[name], processor, sample)
            rows = [r for label in labels for r in [x for x in folder.rows if x["label"] == label][:n]]
            if self.criterion == "detect":
                from odin.detector import measure_gap

                found = measure_gap(ctx, folder, {"all": pool}, {"all": rows}, identity, self.holdout)
                scores[name] = found["accuracy"]
                details[name] = {k: found[k] for k in ("accuracy", "epoch", "held_out", "status")}
            else:
                side = instantiate(cfg.model).input_side()  # the paper's classifiers leave model.input_size null
                scores[name] = histogram_kid(dataset, folder, rows, pool, side, cfg.seed)
            log.info("post=auto: %s scores %.4f (%s)", name, scores[name], self.criterion)
        chosen = min(self.candidates, key=scores.__getitem__)  # min keeps the first of equals
        log.info("post=auto chose '%s' (%s)", chosen, CRITERIA[self.criterion])
        processor, config = processors[chosen], configs[chosen]
        record = {"chosen": chosen, "criterion": self.criterion, "why": CRITERIA[self.criterion], "scores": scores,
                  "real_split": split, "real_images": len(pool), "generated_per_class": n,
                  **({"details": details} if details else {})}
        return Chosen(processor, config, record)


def histogram_kid(dataset, folder: Folder, rows: list[dict], real: list, size: int, seed: int) -> float:
    from odin.image_sets import load_generated
    from odin.metrics.images import as_tensor

    n = min(len(rows), len(real))
    generated = as_tensor(load_generated(folder, seeded_subset(rows, n, seed, "kid"), dataset), size, gray=True)
    real_x = as_tensor(seeded_subset(real, n, seed, "kid"), size, gray=True)
    fake, true = histogram_features(generated), histogram_features(real_x)
    # In units of the real images' spread (the same for every candidate), so every bin counts: raw shares
    # are tiny beside the kernel's +1. The floor (1% of the pixels) keeps empty real bins finite.
    mean, spread = true.mean(0), true.std(0).clamp(min=0.01)
    return kid((fake - mean) / spread, (true - mean) / spread)


def histogram_features(x: torch.Tensor, bins: int = 16) -> torch.Tensor:
    """[N, 1, H, W] in [0, 1] -> [N, 2 * bins]: the share of pixels in each intensity bin and in each bin of
    gradient magnitude (forward differences, clipped at 1)."""
    g = x[:, 0]
    dx, dy = g[:, :-1, 1:] - g[:, :-1, :-1], g[:, 1:, :-1] - g[:, :-1, :-1]
    gradient = torch.sqrt(dx**2 + dy**2).clamp(max=1)

    def shares(v: torch.Tensor) -> torch.Tensor:
        index = (v.flatten(1) * bins).long().clamp(0, bins - 1)
        return torch.nn.functional.one_hot(index, bins).to(v.dtype).mean(1)

    return torch.cat([shares(g), shares(gradient)], dim=1)


def kid(x: torch.Tensor, y: torch.Tensor) -> float:
    """Unbiased MMD^2 between samples x [N, D] and y [M, D] with k(a, b) = (a.b / D + 1)^3 (Binkowski et al. 2018)."""
    d = x.shape[1]

    def kernel(a, b):
        return (a @ b.T / d + 1) ** 3

    kxx, kyy, kxy = kernel(x, x), kernel(y, y), kernel(x, y)
    n, m = len(x), len(y)
    within = (kxx.sum() - kxx.diagonal().sum()) / (n * (n - 1)) + (kyy.sum() - kyy.diagonal().sum()) / (m * (m - 1))
    return float(within - 2 * kxy.mean())
