"""ODIN entry point: `python run.py [group=option ...] [key=value ...]` (see conf/config.yaml)."""

import hydra
from omegaconf import DictConfig

from odin.config import register_configs

register_configs()


@hydra.main(version_base="1.3", config_path="conf", config_name="config")
def main(cfg: DictConfig) -> float | None:
    from odin.cli import run_job

    return run_job(cfg)


if __name__ == "__main__":
    from odin.cli import main as clean_errors  # Hydra's own errors as one line, secrets masked on the console

    clean_errors(main)
