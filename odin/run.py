"""One run, top to bottom: check and build (odin/context.py), generate (odin/generated.py), the task
(odin/tasks/<task.name>.py), then metrics.json, the logger's summary and report.md."""

from __future__ import annotations

import hashlib
import logging
import time
from pathlib import Path

from hydra.utils import instantiate
from omegaconf import DictConfig

from odin.context import RunContext, build_context, generator_name
from odin.files import atomic_write_json
from odin.generated import make_generated
from odin.secrets import scrub

log = logging.getLogger(__name__)


def run(cfg: DictConfig, output_dir: str | Path | None = None, run_name: str | None = None,
        group: str | None = None) -> dict:
    started = time.perf_counter()
    out = Path(output_dir or "outputs/run").resolve()
    out.mkdir(parents=True, exist_ok=True)
    ctx = build_context(cfg, out)
    ctx.logger = logger = instantiate(cfg.logger)
    logger.start(ctx.config, out, name=run_name or cfg.name, group=group, job_type=cfg.task.name,
                 run_id=hashlib.sha256(str(out).encode()).hexdigest()[:16])  # the run dir: stable across requeues
    metrics = {"task": cfg.task.name, "labels": ctx.labels, "store": str(ctx.store.root), "timing": ctx.timing}
    try:
        generated = make_generated(ctx) if ctx.generated_labels else None
        metrics |= generated.metrics if generated else {}
        if cfg.num_shards > 1:  # a share of the work: the dataset is whole once every shard has run
            log.info("shard %d of %d: its %d images are in the store; formulate or train without shard to use "
                     "them all", cfg.shard, cfg.num_shards, len(generated.post_images.rows))
        else:
            metrics |= ctx.task.run(ctx, generated)
    except BaseException:
        logger.finish({}, failed=True)  # W&B marks the run failed; the error is printed after its lines
        raise
    ctx.timing["total_s"] = time.perf_counter() - started
    finish(ctx, metrics)
    return metrics


def finish(ctx: RunContext, metrics: dict) -> None:
    """metrics.json, the logger's timings and summary, report.md."""
    from odin.report import write_run_report

    atomic_write_json(ctx.out / "metrics.json", scrub(metrics))
    ctx.logger.log({f"time/{k}": v for k, v in ctx.timing.items()})
    ctx.logger.finish({k: metrics[k] for k in ("top1", "top3", "best_epoch") if k in metrics}
                      | {"images_made": metrics.get("images", {}).get("made", 0),
                         "post_made": metrics.get("post", {}).get("made", 0)}
                      | ({"training_status": metrics["training"]["status"]} if "training" in metrics else {}))
    write_run_report(ctx.out, metrics, summary(ctx.cfg))
    log.info("run dir: %s", ctx.out)


def summary(cfg: DictConfig) -> dict:
    """What report.md says the run was: the task and each group's choice, in a line each."""
    return {"task": cfg.task.name, "dataset": cfg.dataset.name, "labels": len(cfg.labels or []) or "all",
            "prompt": cfg.prompt._target_.rsplit(".", 1)[-1], "diffusion": generator_name(cfg.diffusion),
            "post": cfg.post.name, "model": cfg.model.name, "train": f"{cfg.train.epochs} epochs, lr {cfg.train.lr}",
            "seed": cfg.seed}

