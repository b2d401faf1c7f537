"""One device resolution for every stage (training, diffusers, captioner, CLIP, sentence models).

`auto` is the fastest device torch sees: a CUDA GPU, else Apple's MPS, else the CPU. An explicit
device is checked once, before any work (odin/validate.py calls `check_device` for every *.device key).
"""

from __future__ import annotations

from odin.errors import ConfigError


def resolve_device(name: str):
    """`auto`, cpu, cuda, cuda:N or mps -> the torch.device a stage runs on."""
    import torch

    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        return torch.device("mps" if torch.backends.mps.is_available() else "cpu")
    return torch.device(name)


def check_device(key: str, value: str) -> None:
    """A cuda or mps device that torch cannot see is refused, naming the key and what would work."""
    if value in ("auto", "cpu"):
        return
    import torch

    if value.startswith("cuda"):
        if not torch.cuda.is_available():
            raise ConfigError(f"{key}={value} but torch sees no CUDA device (torch {torch.__version__}, built for "
                              f"CUDA {torch.version.cuda}): run on a GPU node, check CUDA_VISIBLE_DEVICES and the "
                              f"driver, or set {key}=auto")
        index = int(value.split(":")[1]) if ":" in value else 0
        if index >= torch.cuda.device_count():
            raise ConfigError(f"{key}={value}: this machine has {torch.cuda.device_count()} CUDA device(s)")
    elif value == "mps" and not torch.backends.mps.is_available():
        raise ConfigError(f"{key}=mps but torch sees no Apple MPS device here: set {key}=auto or cpu")
