"""ODIN entry point: `python run.py [group=option ...] [key=value ...]` (see conf/config.yaml)."""

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

from odin.config import register_configs

register_configs()


@hydra.main(version_base="1.3", config_path="conf", config_name="config")
def main(cfg: DictConfig) -> float | None:
    from odin.run import run  # heavy imports (torch, timm) only once a job really runs

    metrics = run(cfg, output_dir=HydraConfig.get().runtime.output_dir)
    return metrics.get("top1")  # for sweepers that optimise


if __name__ == "__main__":
    main()
