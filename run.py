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
    main()
