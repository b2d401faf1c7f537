"""Experiment loggers: W&B (offline unless WANDB_MODE says otherwise) or none.

Whatever the logger, the config it receives has secrets removed (odin/secrets.py).
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

from odin.secrets import scrub


class BelowLevel(logging.Filter):
    """Lets through records below `level`: info on stdout, warnings and errors on stderr (conf/hydra/job_logging)."""

    def __init__(self, level: str | int = "WARNING"):
        super().__init__()
        self.level = logging.getLevelName(level) if isinstance(level, str) else level

    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno < self.level


class NoLogger:
    def __init__(self, **_: Any):
        pass

    def start(self, config: dict, run_dir: Path, name: str, group: str | None = None, job_type: str | None = None,
              run_id: str | None = None) -> None:
        pass

    def log(self, metrics: dict) -> None:
        pass

    def log_epoch(self, row: dict) -> None:
        pass

    def log_history(self, rows: list[dict], cached: bool = True) -> None:
        pass

    def log_image(self, key: str, path: Path, caption: str = "") -> None:
        pass

    def log_table(self, key: str, columns: list[str], rows: list[list]) -> None:
        pass

    def finish(self, summary: dict, failed: bool = False) -> None:
        pass


class WandbLogger(NoLogger):
    def __init__(self, project: str = "odin", entity: str | None = None, mode: str = "offline",
                 tags: list[str] | None = None):
        self.project, self.entity, self.tags = project, entity, list(tags or [])
        # WANDB_MODE wins; without either, wandb with a key and no network hangs for ~100 s.
        self.mode = os.environ.get("WANDB_MODE") or mode
        self.run = None

    def start(self, config: dict, run_dir: Path, name: str, group: str | None = None, job_type: str | None = None,
              run_id: str | None = None) -> None:
        """One W&B run per job: a sweep's jobs share a `group`, `job_type` is the task, and a requeued
        job (same run dir, so the same `run_id`) continues its own run instead of opening another."""
        import wandb

        self.run = wandb.init(project=self.project, entity=self.entity, mode=self.mode, tags=self.tags,
                              config=scrub({**config, "overrides": name}), dir=str(run_dir), name=name,
                              group=group, job_type=job_type, id=run_id, resume="allow" if run_id else None,
                              reinit="finish_previous")
        # Per-epoch metrics on their own axis: images and tables logged between epochs take W&B
        # steps of their own, and must not push an epoch's row out of order (W&B drops those).
        self.run.define_metric("epoch")
        for section in ("train", "val", "test"):
            self.run.define_metric(f"{section}/*", step_metric="epoch")

    def log(self, metrics: dict) -> None:
        self.run.log(metrics)

    def log_epoch(self, row: dict) -> None:
        self.run.log({**epoch_metrics(row), "train/cached": 0})

    def log_history(self, rows: list[dict], cached: bool = True) -> None:
        """Epochs this process did not train (read back from a checkpoint), so that a cached or resumed
        training has the same curves as one trained here; `train/cached` = 1 marks them. A W&B run that
        resumes (a requeued job) already holds the epochs it logged before: those are not sent twice."""
        done = self.run.summary.get("epoch", 0) if self.run.resumed else 0
        for row in rows:
            if row["epoch"] > done:
                self.run.log({**epoch_metrics(row), "train/cached": int(cached)})
        if cached and rows:
            self.run.summary["train/cached_epochs"] = len(rows)

    def log_image(self, key: str, path: Path, caption: str = "") -> None:
        import wandb

        self.run.log({key: wandb.Image(str(path), caption=caption)})

    def log_table(self, key: str, columns: list[str], rows: list[list]) -> None:
        import wandb

        self.run.log({key: wandb.Table(columns=columns, data=rows)})

    def finish(self, summary: dict, failed: bool = False) -> None:
        if self.run is None:
            return
        self.run.summary.update(summary)
        self.run.finish(exit_code=1 if failed else 0)
        self.run = None


def epoch_metrics(row: dict) -> dict:
    """A training history row (odin/train.py) as W&B keys on the epoch axis: `train_loss` -> train/loss,
    `val_top1` (held-out generated images) -> val/top1, the test scores (top1, top3, seen/unseen) -> test/*."""
    out = {"epoch": row["epoch"]}
    for key, value in row.items():
        if key == "epoch" or not isinstance(value, int | float):
            continue
        section, _, name = key.partition("_")
        out[f"{section}/{name}" if section in ("train", "val") else f"test/{key}"] = value
    return out
