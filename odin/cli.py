"""What `python run.py` does around a run: clean messages for the user's errors, a run name.

Kept light (no torch) so that `--help` and `--cfg job` stay fast.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path

from omegaconf import DictConfig

log = logging.getLogger("odin")

# Overrides that say where things go or how they are logged, not what the run is.
NOT_IN_NAME = ("paths.", "hydra.", "hydra/", "logger", "+logger")


def run_name(overrides: list[str], default: str) -> str:
    """A run's name from what distinguishes it: its command-line overrides ("post=salt model=resnext")."""
    kept = [o for o in overrides if not o.lstrip("+~").startswith(NOT_IN_NAME)]
    return " ".join(kept) or default


def run_job(cfg: DictConfig) -> float | None:
    """The body of run.py's Hydra task: a UserError becomes one line on stderr and exit status 1."""
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    from odin.errors import UserError
    from odin.secrets import scrub_files, scrub_text

    hydra = HydraConfig.get()
    # Hydra has written the config, the overrides and its own config as given: mask secrets there
    # (and in the arguments W&B records) before anything else runs.
    dumps = Path(hydra.runtime.output_dir) / str(hydra.output_subdir)
    scrub_files(dumps / "config.yaml", dumps / "overrides.yaml", dumps / "hydra.yaml",
                Path(hydra.sweep.dir) / "multirun.yaml")
    sys.argv = [scrub_text(arg) for arg in sys.argv]
    try:
        from odin.run import run  # heavy imports (torch, timm) only once a job really runs

        sweep = Path(hydra.sweep.dir) if hydra.mode == RunMode.MULTIRUN else None
        metrics = run(cfg, output_dir=hydra.runtime.output_dir,
                      run_name=scrub_text(run_name(list(hydra.overrides.task), default=str(cfg.name))),
                      group=f"{sweep.parent.name}/{sweep.name}" if sweep else None)  # a sweep's jobs, together
    except UserError as error:
        log.error("Error: %s", error)
        sys.exit(1)
    return metrics.get("top1")  # for sweepers that optimise
