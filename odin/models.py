"""Classifiers: any timm model by name (with an optional pretrained tag), from scratch or from weights.

`model.name` takes timm's `<architecture>.<tag>` form (`vit_base_patch16_224.augreg_in1k`): the tag
picks the pretrained checkpoint, and with it the input size and normalisation it was trained with.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path

from odin.errors import ConfigError
from odin.files import atomic_write_json
from odin.hub import MissingWeightsError, require_weights
from odin.keys import config_hash


@dataclass(frozen=True)
class Preprocessing:
    """How an image becomes the model's input: what training and test images are resized to."""

    size: int
    mean: tuple[float, ...]
    std: tuple[float, ...]
    interpolation: str = "bilinear"  # bilinear | bicubic | nearest (torch's interpolate modes)
    crop_pct: float | None = None  # timm's eval crop: shorter side to size / crop_pct, centre crop; None squashes


def check_model(name: str, pretrained: bool, checkpoint_path: str | None) -> None:
    """Fail fast on an unknown name or tag or missing weights, importing timm but not building the model."""
    import timm

    architecture, _, tag = name.partition(".")
    if not timm.is_model(architecture):
        close = timm.list_models(f"*{architecture.split('_')[0]}*")[:8]
        raise ConfigError(f"model.name={name!r} is not a timm model; e.g. {close} (timm.list_models('*pattern*'))")
    try:
        pretrained_cfg = timm.models.get_pretrained_cfg(name)
    except RuntimeError:  # timm's "Invalid pretrained tag"
        raise ConfigError(f"model.name={name!r}: {architecture} has no pretrained tag {tag!r}; its tags: "
                          f"{timm.list_pretrained(f'{architecture}.*')}") from None
    if checkpoint_path:
        if not Path(checkpoint_path).expanduser().is_file():
            raise MissingWeightsError(f"model.checkpoint_path={checkpoint_path}: no such file")
        return
    if pretrained:
        hub_id = pretrained_cfg.hf_hub_id if pretrained_cfg else None  # timm/<architecture>.<tag>
        if hub_id:
            require_weights(hub_id, config_key="model.checkpoint_path", what=f"timm model {name}",
                            local="/path/to/weights.safetensors")


class Classifier:
    """`model=`: a timm classifier by name (built for a run's classes) and how images are resized for it."""

    def __init__(self, name: str, pretrained: bool = False, checkpoint_path: str | None = None,
                 input_size: int | None = None, resize: str = "stretch", kwargs: dict | None = None):
        self.name, self.pretrained, self.checkpoint_path = name, pretrained, checkpoint_path
        self.input_size, self.resize, self.kwargs = input_size, resize, dict(kwargs or {})

    def check(self, memo_dir: Path | None = None, in_chans: int | None = None) -> None:
        """Fail fast on a bad name or missing weights; skipped (timm not imported) where `memo_dir` holds
        this classifier's input for `in_chans` (`input_for`): it was checked then, and its weights, a
        local file whose size and time are in the memo's name, are unchanged. Hub weights are always checked."""
        if in_chans is None or memo_dir is None or self.pretrained or self._remembered(memo_dir, in_chans) is None:
            check_model(self.name, self.pretrained, self.checkpoint_path)

    def input_for(self, in_chans: int, memo_dir: Path) -> Preprocessing:
        """`preprocessing` of this classifier for `in_chans` input channels, remembered in `memo_dir` (a JSON
        file per classifier config, timm version and weights file): a rerun needs neither timm nor a model."""
        found = self._remembered(memo_dir, in_chans)
        if found is None:
            found = self.preprocessing(self.build(2, in_chans))
            try:
                atomic_write_json(self._memo(memo_dir, in_chans), dataclasses.asdict(found))
            except OSError:  # a read-only store: worked out again next time
                pass
        return found

    def _memo(self, memo_dir: Path, in_chans: int) -> Path:
        from importlib.metadata import version

        weights = Path(self.checkpoint_path).expanduser() if self.checkpoint_path else None
        stat = weights.stat() if weights else None  # OSError where it is gone: no memo then
        identity = [self.name, self.pretrained, str(weights), stat and [stat.st_size, stat.st_mtime_ns],
                    self.input_size, self.resize, self.kwargs, in_chans, version("timm")]
        return memo_dir / f"{config_hash(identity)}.json"

    def _remembered(self, memo_dir: Path, in_chans: int) -> Preprocessing | None:
        try:
            found = json.loads(self._memo(memo_dir, in_chans).read_text())
            return Preprocessing(**{k: tuple(v) if isinstance(v, list) else v for k, v in found.items()})
        except (OSError, ValueError, TypeError):
            return None

    def build(self, num_classes: int, in_chans: int):
        return create_model(self.name, num_classes, in_chans, self.pretrained, self.checkpoint_path, self.kwargs)

    def input_side(self) -> int:
        """The side images are resized to, without building the model: model.input_size, else the
        checkpoint's own (timm's pretrained config), else 224."""
        if self.input_size:
            return int(self.input_size)
        import timm

        found = timm.models.get_pretrained_cfg(self.name)
        return int(found.input_size[-1]) if found and found.input_size else 224

    def preprocessing(self, model) -> Preprocessing:
        return preprocessing(model, self.pretrained or bool(self.checkpoint_path), self.input_size,
                             crop=self.resize == "crop")


def create_model(name: str, num_classes: int, in_chans: int = 3, pretrained: bool = False,
                 checkpoint_path: str | None = None, kwargs: dict | None = None):
    import timm

    overlay = {"file": str(Path(checkpoint_path).expanduser())} if checkpoint_path else None
    return timm.create_model(
        name, pretrained=pretrained or bool(checkpoint_path), pretrained_cfg_overlay=overlay,
        num_classes=num_classes, in_chans=in_chans, **(kwargs or {}),
    )


# timm's (PIL's) interpolation names -> torch's interpolate modes; the rare others (lanczos) -> bicubic
_TORCH_MODES = {"bilinear": "bilinear", "bicubic": "bicubic", "nearest": "nearest"}


def preprocessing(model, pretrained: bool, input_size: int | None = None, crop: bool = False) -> Preprocessing:
    """The input a model wants: a pretrained one its checkpoint's size, mean, std and interpolation, a model
    trained from scratch 0.5/0.5 and bilinear.

    Every image is stretched to size x size, as the paper does (§4.1: all images resized to 224 x 224,
    CIFAR-100's 32 x 32 ones stretched); `crop` (model.resize=crop) takes timm's eval transform instead for
    a pretrained model: shorter side to size / crop_pct, centre crop. `input_size` (model.input_size)
    overrides the size; None is the model's own.
    """
    if pretrained:
        from timm.data import resolve_model_data_config

        data = resolve_model_data_config(model)
        return Preprocessing(size=int(input_size or data["input_size"][-1]), mean=tuple(data["mean"]),
                             std=tuple(data["std"]), interpolation=_TORCH_MODES.get(data["interpolation"], "bicubic"),
                             crop_pct=float(data["crop_pct"]) if crop else None)
    own = (getattr(model, "pretrained_cfg", None) or {}).get("input_size", (3, 224, 224))
    return Preprocessing(size=int(input_size or own[-1]), mean=(0.5,), std=(0.5,))
