"""The only place that wires the stages: labels -> prompts -> images -> post -> train -> report."""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import os
import time
from collections import Counter
from contextlib import contextmanager
from pathlib import Path

from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from odin import keys
from odin.config import check_keys
from odin.errors import ConfigError, UserError
from odin.files import atomic_write_json
from odin.logging import scrub
from odin.store import Folder, Store, derive_seed, export
from odin.validate import check_plan, some, validate

log = logging.getLogger(__name__)


def run(cfg: DictConfig, output_dir: str | Path | None = None, run_name: str | None = None,
        group: str | None = None) -> dict:
    started = time.perf_counter()
    check_keys(cfg)
    validate(cfg)
    task = cfg.task.name
    out = Path(output_dir or cfg.paths.output_dir or "outputs/run").resolve()
    out.mkdir(parents=True, exist_ok=True)
    plain = OmegaConf.to_container(cfg, resolve=True)

    # Build every component and let each fail on bad input before any heavy work.
    dataset = instantiate(cfg.dataset)
    if hasattr(dataset, "check"):  # a real dataset on disk: its path, before anything else
        dataset.check()
    labels = choose_labels(cfg.labels, dataset.classes, must_be_classes=task != "formulate", dataset=cfg.dataset.name)
    total = check_plan(cfg, labels)
    check_real_training(cfg, dataset, labels, task)
    prompter, backend, post = instantiate(cfg.prompt), instantiate(cfg.diffusion), instantiate(cfg.post)
    store = Store(cfg.paths.store)
    generated = generated_labels(cfg, labels, task)
    from odin.prompts.checked import wrap_prompter

    prompter = wrap_prompter(cfg, prompter, generated)  # diversify and prompt_check, when on
    image_filter = _image_filter(cfg)
    if image_filter is not None and generated:
        image_filter.check(generated)  # distractors that are labels; loads the model before any image
    uncached = store.missing_prompts(plain["prompt"], prompter, generated, keys.prompt_extras(plain, generated))
    if uncached:  # a rerun from the store needs no API key
        prompter.check(uncached)
    if generated:
        backend.check(generated)
    if hasattr(post, "check"):  # post=auto: its candidates
        post.check()
    if task in ("train", "detect") or getattr(post, "criterion", None) == "detect":
        from odin.models import check_model

        check_model(cfg.model.name, cfg.model.pretrained, cfg.model.checkpoint_path)
    log.info("plan: %d labels x %d prompts x %d images = %s images (made once, then read from %s)", len(labels),
             cfg.prompt.get("num_prompts", 1), cfg.diffusion.get("images_per_prompt", 1), f"{total:,}", store.root)
    logger = instantiate(cfg.logger)
    logger.start(plain, out, name=run_name or cfg.name, group=group, job_type=task,
                 run_id=hashlib.sha256(str(out).encode()).hexdigest()[:16])  # the run dir: stable across requeues
    try:
        metrics = _stages(cfg, plain, task, labels, dataset, prompter, backend, post, store, logger, out,
                          image_filter)
    except BaseException:
        logger.finish({}, failed=True)  # W&B marks the run failed; the error is printed after its lines
        raise
    metrics["timing"]["total_s"] = time.perf_counter() - started
    atomic_write_json(out / "metrics.json", scrub(metrics))
    logger.log({f"time/{k}": v for k, v in metrics["timing"].items()})
    logger.finish({k: metrics[k] for k in ("top1", "top3", "best_epoch") if k in metrics}
                  | {"images_made": metrics.get("images", {}).get("made", 0),
                     "post_made": metrics.get("post", {}).get("made", 0)}
                  | ({"training_status": metrics["training"]["status"]} if "training" in metrics else {}))
    from odin.report import write_run_report

    write_run_report(out, metrics, _summary(cfg))
    log.info("run dir: %s", out)
    return metrics


def _image_filter(cfg):
    """filter=clip: the ClipFilter the generated images pass before post-processing (None when off)."""
    if cfg.filter.name == "none":
        return None
    from odin.filter import ClipFilter

    node = cfg.filter
    return ClipFilter(node.model, node.threshold, list(node.distractors), node.template, node.padding,
                      node.batch_size, node.device, config_key="filter")


def _stages(cfg, plain, task, labels, dataset, prompter, backend, post, store, logger, out,
            image_filter=None) -> dict:
    timing: dict[str, float] = {}
    metrics = {"task": task, "labels": labels, "store": str(store.root), "timing": timing}
    generated = generated_labels(cfg, labels, task)
    train_images = None
    localize = cfg.localize.name != "none"
    if generated:
        from odin.tasks.generated import generate

        choose = None
        if hasattr(post, "choose"):  # post=auto: a candidate is chosen once the images exist
            def choose(images):
                return post.choose(cfg, plain, dataset, generated, images, store)
        made = generate(cfg, plain, generated, prompter, backend, post, store, timing, choose=choose,
                        heatmaps=localize, image_filter=image_filter)
        metrics |= {k: v for k, v in made.metrics.items() if k not in ("labels", "task")}
        prompts, train_images, post = made.prompts, made.post_images, made.post
        plain = {**plain, "post": made.post_config}
        grid = _samples(train_images, generated, cfg, out)
        logger.log_image("samples", grid, caption=f"{cfg.diffusion._target_.rsplit('.', 1)[-1]}, "
                                                  f"post={metrics['post']['name']}")
        logger.log_table("prompts", ["label", "index", "prompt"],
                         [[label, i, p] for label, lp in prompts.items() for i, p in enumerate(lp.prompts)])

    if cfg.num_shards > 1:  # a share of the work: the dataset is whole once every shard has run
        log.info("shard %d of %d: its %d images are in the store; formulate or train without shard to use "
                 "them all", cfg.shard, cfg.num_shards, len(train_images.rows))
        return metrics
    if task == "formulate":
        path = export(train_images, labels, out / "dataset")
        metrics["dataset"] = str(path)
        log.info("dataset: %s", path)
        if localize:
            from odin.localize.detection import write_detection

            with timed(timing, "localize_export_s"):
                found = write_detection(path, labels, cfg.localize.threshold, out / "heatmaps.png",
                                        per_label=max(1, cfg.samples_per_class),
                                        title=f"{cfg.dataset.name}: where the label is (localize={cfg.localize.name}, "
                                              f"threshold {cfg.localize.threshold})")
            metrics["localize"] = found
            logger.log_image("heatmaps", Path(found["grid"]), caption=f"localize={cfg.localize.name}, "
                                                                      f"threshold={cfg.localize.threshold}")
            log.info("detection dataset: %d boxes and masks over %d images (%d with nothing located) in %s "
                     "(COCO) and YOLO txt files beside the images; heatmaps: %s", found["boxes"], found["images"],
                     found["nothing_located"], found["coco"], found["grid"])
        return metrics
    if task == "diversity":
        from odin.tasks.diversity import diversity

        return metrics | diversity(cfg, dataset, labels, train_images, logger, out)
    if task == "detect":
        from odin.tasks.detect import detect

        return metrics | detect(cfg, plain, dataset, labels, train_images, post, store, logger)
    result, sizes, checkpoint = _train(cfg, plain, dataset, labels, train_images, post, store, logger)
    metrics.update(result.to_dict(), **sizes)
    metrics["training"] = {"status": metrics.pop("status"), "checkpoint": str(checkpoint),
                           "epochs_from_checkpoint": metrics.pop("epochs_from_checkpoint")}
    from odin.report import training_curves

    logger.log_image("curves", training_curves(result.history, out / "curves.png"))
    source = {"trained": "", "resumed": f" (resumed after epoch {result.epochs_from_checkpoint})",
              "cached": f" (read from the finished training in {checkpoint}; train.resume=false retrains)"}
    log.info("top-1 %.2f%%  top-3 %.2f%%  (best epoch %d) on %d real %s test images; trained on %s%s",
             result.top1, result.top3, result.best_epoch, metrics["test_images"], cfg.dataset.name,
             _trained_on(metrics), source[result.status])
    if result.heldout_top1 is not None:
        log.info("at the epoch chosen on held-out generated prompts (%d, no test label used): top-1 %.2f%%  "
                 "top-3 %.2f%%; last epoch: top-1 %.2f%%", result.heldout_epoch, result.heldout_top1,
                 result.heldout_top3, result.last_top1)
    if result.seen_unseen:
        log.info("seen (real) classes %.2f%%, unseen (generated) classes %.2f%%, harmonic mean %.2f%%",
                 *result.seen_unseen.values())
    return metrics


def _trained_on(metrics: dict) -> str:
    generated, real = metrics["train_images"]["generated"], metrics["train_images"]["real"]
    if not real:
        return f"{generated} generated images only"
    return f"{real} real images" + (f" and {generated} generated ones" if generated else "")


def check_real_training(cfg, dataset, labels: list[str], task: str) -> None:
    """train.source=real and train.real_classes need real training images of those classes."""
    if task != "train" or (cfg.train.source != "real" and not cfg.train.real_classes):
        return
    unknown = [c for c in cfg.train.real_classes if c not in labels]
    if unknown:
        raise ConfigError(f"train.real_classes [{some(unknown)}] are not among this run's labels "
                          f"[{some(labels, 40)}]")
    if not hasattr(dataset, "train_items"):
        raise ConfigError(f"dataset={cfg.dataset.name} has no real training split, which train.source=real and "
                          "train.real_classes train on: use a dataset that has one (oxford_pet, caltech101, "
                          "cifar100, indian_food, folder)")


def generated_labels(cfg, labels: list[str], task: str) -> list[str]:
    """The labels whose training images are generated: all of them but train.real_classes (or none with
    train.source=real). Formulating generates every label."""
    if task != "train":
        return labels
    if cfg.train.source == "real":
        return []
    real = set(cfg.train.real_classes)
    return [label for label in labels if label not in real]


@contextmanager
def timed(timing: dict[str, float], key: str):
    started = time.perf_counter()
    yield
    timing[key] = time.perf_counter() - started


def _train(cfg, plain, dataset, labels, train_images: Folder | None, post, store: Store, logger):
    import torch

    from odin.models import preprocessing
    from odin.split import holdout_prompts
    from odin.train import ImageItems, pick_device, resolve_precision, train

    torch.manual_seed(cfg.seed)  # the same initial weights every time: runs differ only where configs do
    model = instantiate(cfg.model, num_classes=len(labels), in_chans=dataset.channels)
    prep = preprocessing(model, cfg.model.pretrained or bool(cfg.model.checkpoint_path), cfg.model.input_size)
    rows, held = holdout_prompts(train_images.rows if train_images else [], cfg.train.holdout)
    real = [label for label in labels if label not in generated_labels(cfg, labels, "train")]
    items = _generated_items(cfg, plain, dataset, labels, train_images, rows, prep, store)
    val = _generated_items(cfg, plain, dataset, labels, train_images, held, prep, store)
    if real:  # train.source=real, or the seen classes of train.real_classes
        index = {labels.index(label) for label in real}
        shaper = ImageItems.for_model([], dataset.channels, prep)
        items += [(shaper.shape(x).numpy(), y) for x, y in dataset.train_items(labels) if y in index]
    test = dataset.test_set(labels)
    if not test:
        raise UserError(f"dataset {cfg.dataset.name} has no test images for labels {labels}")
    if post.apply_to_test:  # the paper's Table 2 (right): the same degradation on the real images
        test = [(post.apply(x, derive_seed(cfg.seed, "test", i)), y) for i, (x, y) in enumerate(test)]
    precision = resolve_precision(cfg.train.precision, pick_device(cfg.train.device))  # auto: what will run
    key = keys.train_key(
        train_set=keys.rows_identity(train_images.key if train_images else "", rows) + keys.config_hash(held, real),
        labels=labels, model={**plain["model"], "input": dataclasses.asdict(prep)},
        train={**plain["train"], "precision": precision}, dataset=plain["dataset"], seed=cfg.seed,
        test_post=keys.post_config(plain["post"], post) if post.apply_to_test and not post.is_identity else None,
    )
    checkpoint = store.root / "checkpoints" / key / "last.pt"
    log.info("training %s on %d images (%d real), choosing an epoch on %d held-out generated ones, testing on %d "
             "real ones", cfg.model.name, len(items), len(items) - len(rows), len(val), len(test))
    result = train(
        model, ImageItems.for_model(items, dataset.channels, prep, shaped=True),
        ImageItems.for_model(test, dataset.channels, prep), cfg.train, checkpoint, seed=cfg.seed,
        on_epoch=logger.log_epoch, resume=cfg.train.resume,
        val_set=ImageItems.for_model(val, dataset.channels, prep, shaped=True) if val else None,
        seen_classes={labels.index(label) for label in real} if real and len(real) < len(labels) else None,
    )
    sizes = {"train_images": {"generated": len(rows), "real": len(items) - len(rows), "held_out": len(val)},
             "test_images": len(test)}
    return result, sizes, checkpoint


def _generated_items(cfg, plain, dataset, labels, folder: Folder | None, rows: list[dict], prep, store) -> list:
    """(image, class index) of generated rows, prepared at the model's input size once and kept in the
    store (odin/prepared.py); loaded in parallel."""
    from odin.prepared import prepared_loaders
    from odin.train import preload

    if not rows:
        return []
    loaders = prepared_loaders(store.root, folder, rows, dataset, plain["dataset"], prep, dataset.channels)
    if cfg.train.preload:
        loaders = preload(loaders, cfg.train.num_workers or os.cpu_count() or 1)
    return [(x, labels.index(r["label"])) for x, r in zip(loaders, rows, strict=True)]


def _summary(cfg) -> dict:
    """What report.md says the run was: the task and each group's choice, in a line each."""
    target = {g: str(cfg[g].get("_target_", "")).rsplit(".", 1)[-1] for g in ("prompt", "diffusion")}
    return {"task": cfg.task.name, "dataset": cfg.dataset.name, "labels": len(cfg.labels or []) or "all",
            "prompt": target["prompt"], "diffusion": generator_name(OmegaConf.to_container(cfg.diffusion)),
            "post": cfg.post.name, "model": cfg.model.name, "train": f"{cfg.train.epochs} epochs, lr {cfg.train.lr}",
            "seed": cfg.seed}


def _samples(folder: Folder, labels: list[str], cfg, out: Path) -> Path:
    from odin.report import sample_grid

    return sample_grid(folder.path, folder.rows, labels, cfg.samples_per_class, out / "samples.png",
                       title=f"{cfg.dataset.name}: prompt={cfg.prompt._target_.rsplit('.', 1)[-1]}, "
                             f"post={cfg.post.name}")


def choose_labels(labels, classes: list[str], must_be_classes: bool, dataset: str) -> list[str]:
    chosen = list(classes) if labels is None else [str(label) for label in labels]
    if not chosen:
        raise ConfigError("labels=[] is empty: give at least one, e.g. labels='[three,seven]', "
                         f"or leave labels unset to use all classes of dataset={dataset}")
    counts = Counter(chosen)
    duplicates = sorted(label for label, n in counts.items() if n > 1)
    if duplicates:
        raise ConfigError(f"labels has duplicates: {some(duplicates)}")
    known = set(classes)
    unknown = [label for label in chosen if label not in known]
    if must_be_classes and unknown:
        raise ConfigError(f"labels [{some(unknown)}] are not classes of dataset={dataset}, so there are no real "
                          f"images to test on; its classes are [{some(list(classes), 40)}] (task=formulate takes "
                          "any label)")
    return chosen


def generator_name(diffusion: dict) -> str:
    return str(diffusion.get("model") or diffusion["_target_"].rsplit(".", 1)[-1])
