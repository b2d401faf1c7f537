import os
import sys
from pathlib import Path

import pytest

# Before any Hugging Face import: no test may reach a hub (and a miss must fail at once).
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["ODIN_PROGRESS"] = "0"
# One torch thread: the tests' subprocesses and the shared 2-core machines make more threads spin.
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("ODIN_TRAIN_THREADS", "1")  # train.threads' default; tests that set it say so
os.environ.setdefault("WANDB_MODE", "offline")
os.environ.setdefault("WANDB_SILENT", "true")

ROOT = Path(__file__).resolve().parents[1]
CONF = ROOT / "conf"
sys.path.insert(0, str(ROOT / "tests"))


@pytest.fixture
def compose(tmp_path):
    """Compose the real config (conf/) with overrides; the store and run dir live in tmp_path."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir

    from odin.config import register_configs

    register_configs()

    def _compose(*overrides: str, store: Path | None = None):
        with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
            return hydra_compose(
                "config", overrides=[f"paths.store={store or tmp_path / 'store'}", *overrides]
            )

    return _compose
