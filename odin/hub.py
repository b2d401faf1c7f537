"""Fail fast, and clearly, when model weights are neither a local folder nor in the HF cache.

Loading code keeps its real `from_pretrained(...)` path; this check runs first, before any
heavy import or other work, so a compute node without internet says in a second what is
missing and the one line that fixes it, instead of retrying for a minute.
"""

from __future__ import annotations

import functools
import os
from pathlib import Path

from odin.errors import UserError


class MissingWeightsError(UserError, RuntimeError):
    pass


def hub_offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").lower() in {"1", "true", "yes", "on"}


def hub_endpoint() -> str:
    return os.environ.get("HF_ENDPOINT", "https://huggingface.co").rstrip("/")


@functools.lru_cache(maxsize=1)
def hub_reachable(timeout: float = 5.0) -> bool:
    """Whether the hub answers at all (any HTTP status counts): one short probe per process."""
    import urllib.error
    import urllib.request

    try:
        urllib.request.urlopen(urllib.request.Request(hub_endpoint(), method="HEAD"), timeout=timeout).close()
        return True
    except urllib.error.HTTPError:
        return True  # it answered
    except (OSError, ValueError):
        return False


def require_weights(model: str, *, config_key: str, what: str = "model", local: str = "/path/to/local/folder") -> str:
    """Return `model` if it is a local folder or a hub id that can be loaded; raise otherwise.

    A hub id is loadable when it is fully in the local cache, or when the hub may be reached
    (HF_HUB_OFFLINE unset). `config_key` names the setting that points at local weights.
    """
    path = Path(model).expanduser()
    if path.exists():
        if not path.is_dir():
            raise MissingWeightsError(f"{config_key}={model} is a file; give the folder that holds the weights.")
        return str(path)
    if model.startswith((".", "/", "~")) or model.count("/") > 1:
        raise MissingWeightsError(
            f"{config_key}={model}: no such folder. Point {config_key} at the folder that holds the {what}'s "
            "weights (the output of save_pretrained or `hf download`)."
        )
    from huggingface_hub import snapshot_download  # light; imports no torch

    try:
        snapshot_download(model, local_files_only=True)
        return model
    except Exception:
        if not hub_offline():
            if hub_reachable():
                return model  # not cached, but the hub answers: from_pretrained downloads it
            raise MissingWeightsError(
                f"{what} '{model}' is not in the local Hugging Face cache and {hub_endpoint()} cannot be reached "
                f"(checked in a few seconds rather than after a minute of retries). Fix: on a machine with "
                f"internet run `hf download {model}` (with the same HF_HOME), or set {config_key}={local}; "
                "set HF_HUB_OFFLINE=1 on machines without internet."
            ) from None
    cache = os.environ.get("HF_HOME", "~/.cache/huggingface")
    raise MissingWeightsError(
        f"{what} '{model}' is not in the local Hugging Face cache ({cache}) and HF_HUB_OFFLINE=1 forbids "
        f"downloading it. Fix: on a machine with internet run `hf download {model}` "
        f"(with the same HF_HOME), or set {config_key}={local}."
    )
