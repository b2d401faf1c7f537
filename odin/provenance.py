"""What a reader needs to reproduce a number in metrics.json: package versions, torch's build and thread
count, the device and precision that ran, the Python, and the commit of the code (with whether the tree
had changes). The same top-1 needs the same packages (constraints.txt) and the same thread count: torch's
CPU kernels split work by thread, and float sums in another order round differently.

Cheap: versions come from the installed packages' metadata (importlib.metadata), git is two short
commands, and torch is already imported by the run. Nothing here can fail a run: a package that is not
installed reads None, and so does the commit outside a git checkout or without git.
"""

from __future__ import annotations

import importlib.metadata
import os
import platform
import subprocess
from pathlib import Path

from odin import WAIT_VARIABLES

PACKAGES = ("torch", "torchvision", "timm", "numpy", "diffusers", "scikit-learn", "scikit-image", "odin")
ROOT = Path(__file__).resolve().parent.parent  # the checkout that holds this package (site-packages if installed)


def package_versions(names: tuple[str, ...] = PACKAGES) -> dict[str, str | None]:
    versions = {}
    for name in names:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def git_state(root: Path = ROOT) -> dict | None:
    """{"commit": HEAD, "dirty": whether tracked or new files differ from it} of the git checkout at `root`;
    None when `root` is not one, git is missing, or git refuses (a repository owned by another user)."""
    if not (root / ".git").exists():  # a folder (a checkout) or a file (a worktree)
        return None

    def git(*args: str) -> str | None:
        try:
            done = subprocess.run(["git", *args], cwd=root, capture_output=True, text=True, timeout=20)
        except (OSError, subprocess.SubprocessError):
            return None
        return done.stdout if done.returncode == 0 else None

    commit, status = git("rev-parse", "HEAD"), git("status", "--porcelain")
    if commit is None or status is None:
        return None
    return {"commit": commit.strip(), "dirty": bool(status.strip())}


def provenance(device: str, precision: str) -> dict:
    """The record for metrics.json; `device` and `precision` as resolved for the run (cuda:0, bf16; not auto)."""
    import torch

    record = {
        "packages": package_versions(),
        "torch_build": torch.__version__,  # the local tag (+cu130, +cpu) that the package metadata may leave out
        "cuda": torch.version.cuda,
        "torch_threads": torch.get_num_threads(),
        "device": device,
        "precision": precision,
        # how OpenMP threads wait (odin/__init__.py): it changes the time a run takes, never its numbers
        "openmp_wait": {name: os.environ.get(name) for name in WAIT_VARIABLES},
        "python": platform.python_version(),
        "platform": platform.platform(),
        "git": git_state(),
    }
    if device.startswith("cuda") and torch.cuda.is_available():
        record["gpu"] = torch.cuda.get_device_name(torch.device(device))
        record["cudnn"] = torch.backends.cudnn.version()
    return record
