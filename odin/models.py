"""Classifiers: any timm model by name, from scratch or from local/pretrained weights."""

from __future__ import annotations

from pathlib import Path

from odin.errors import ConfigError
from odin.hub import MissingWeightsError, require_weights


def check_model(name: str, pretrained: bool, checkpoint_path: str | None) -> None:
    """Fail fast on an unknown name or missing weights, importing timm but not building the model."""
    import timm

    if not timm.is_model(name):
        close = timm.list_models(f"*{name.split('_')[0]}*")[:8]
        raise ConfigError(f"model.name={name!r} is not a timm model; e.g. {close} (timm.list_models('*pattern*'))")
    if checkpoint_path:
        if not Path(checkpoint_path).expanduser().is_file():
            raise MissingWeightsError(f"model.checkpoint_path={checkpoint_path}: no such file")
        return
    if pretrained:
        hub_id = timm.models.get_pretrained_cfg(name).hf_hub_id
        if hub_id:
            require_weights(hub_id, config_key="model.checkpoint_path", what=f"timm model {name}",
                            local="/path/to/weights.safetensors")


def create_model(name: str, num_classes: int, in_chans: int = 3, pretrained: bool = False,
                 checkpoint_path: str | None = None, input_size: int = 224, kwargs: dict | None = None):
    import timm

    overlay = {"file": str(Path(checkpoint_path).expanduser())} if checkpoint_path else None
    return timm.create_model(
        name, pretrained=pretrained or bool(checkpoint_path), pretrained_cfg_overlay=overlay,
        num_classes=num_classes, in_chans=in_chans, **(kwargs or {}),
    )


def normalization(model, pretrained: bool) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """A pretrained model wants its own mean/std; a model trained from scratch gets 0.5/0.5."""
    if pretrained:
        cfg = model.pretrained_cfg
        return tuple(cfg.get("mean", (0.5,))), tuple(cfg.get("std", (0.5,)))
    return (0.5,), (0.5,)
