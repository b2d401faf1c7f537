import os

import numpy as np
import pytest
import timm
import torch
from conftest import CONF
from omegaconf import OmegaConf

from odin.errors import ConfigError
from odin.hub import MissingWeightsError
from odin.models import Preprocessing, check_model, create_model, preprocessing
from odin.train import ImageItems


def test_pretrained_weights_missing_offline_fail_fast_with_the_fix():
    with pytest.raises(MissingWeightsError) as err:
        check_model("resnext101_64x4d", pretrained=True, checkpoint_path=None)
    message = str(err.value)
    assert "download timm/resnext101_64x4d" in message
    assert "model.checkpoint_path=/path/to/weights.safetensors" in message


def test_unknown_model_name_is_named():
    with pytest.raises(ValueError, match="model.name='resnet9000'"):
        check_model("resnet9000", pretrained=False, checkpoint_path=None)


def test_local_checkpoint_loads_through_the_users_path(tmp_path):
    torch.manual_seed(1)
    source = create_model("test_resnet", num_classes=1000, in_chans=3)
    path = tmp_path / "weights.pth"
    torch.save(source.state_dict(), path)
    check_model("test_resnet", pretrained=True, checkpoint_path=str(path))
    loaded = create_model("test_resnet", num_classes=5, in_chans=3, checkpoint_path=str(path))
    kept = [k for k in loaded.state_dict() if not k.startswith("fc.")]  # timm re-heads for 5 classes
    assert kept and all(torch.equal(loaded.state_dict()[k], source.state_dict()[k]) for k in kept)
    assert loaded.get_classifier().out_features == 5
    with pytest.raises(MissingWeightsError, match="model.checkpoint_path"):
        check_model("test_resnet", pretrained=True, checkpoint_path=str(tmp_path / "nope.pth"))


# The paper's five classifiers: timm name + ImageNet-1k tag, and the parameter count at 1000 classes
# (the paper gives 83.5 M for ResNeXt101, 86.6 M for ViT-B/16, 87.9 M for Swin-v2; none for the others).
PAPER_MODELS = {"resnet": ("resnet152", 60.19e6), "resnext": ("resnext101_64x4d", 83.46e6),
                "vit": ("vit_base_patch16_224", 86.57e6), "swin": ("swinv2_base_window8_256", 87.92e6),
                "regnet": ("regnety_160", 83.59e6)}


@pytest.mark.parametrize("option", sorted(PAPER_MODELS))
def test_paper_models_are_imagenet1k_checkpoints_of_the_papers_size(option):
    node = OmegaConf.load(CONF / "model" / f"{option}.yaml")
    architecture, _, tag = node.name.partition(".")
    assert (architecture, node.pretrained) == (PAPER_MODELS[option][0], True)
    # An explicit tag: timm's default one may change, or be pre-trained on more than ImageNet-1k.
    assert tag.endswith("in1k") and not any(more in tag for more in ("in21k", "in22k", "in12k")), tag
    assert tag in [t.partition(".")[2] for t in timm.list_pretrained(f"{architecture}.*")]
    with torch.device("meta"):  # the real architecture, no weights allocated or fetched
        model = create_model(node.name, num_classes=1000)
    assert sum(p.numel() for p in model.parameters()) == pytest.approx(PAPER_MODELS[option][1], rel=1e-3)


def test_missing_weights_of_a_tagged_model_name_the_download_of_that_tag():
    with pytest.raises(MissingWeightsError, match=r"hf download timm/vit_base_patch16_224\.augreg_in1k"):
        check_model("vit_base_patch16_224.augreg_in1k", pretrained=True, checkpoint_path=None)


def test_unknown_tag_is_named_with_the_tags_that_exist():
    with pytest.raises(ConfigError, match=r"model.name='vit_base_patch16_224.in1kk'.*augreg_in1k"):
        check_model("vit_base_patch16_224.in1kk", pretrained=False, checkpoint_path=None)


def test_pretrained_input_follows_the_checkpoint_and_input_size_overrides_its_size():
    with torch.device("meta"):
        swin = create_model("swinv2_base_window8_256.ms_in1k", num_classes=3)
        vit = create_model("vit_base_patch16_224.augreg_in1k", num_classes=3)
    assert preprocessing(swin, pretrained=True, crop=True) == Preprocessing(
        256, (0.485, 0.456, 0.406), (0.229, 0.224, 0.225), "bicubic", 0.9)
    # The paper stretches every image to the input size (§4.1): no crop unless model.resize=crop asks for it.
    assert preprocessing(swin, pretrained=True).crop_pct is None
    assert preprocessing(vit, pretrained=True, input_size=None).mean == (0.5, 0.5, 0.5)
    assert preprocessing(vit, pretrained=True, input_size=384).size == 384


def test_the_model_config_builds_a_classifier_that_stretches_by_default(compose):
    from hydra.utils import instantiate

    classifier = instantiate(compose("model=swin").model)
    assert classifier.resize == "stretch" and classifier.name.startswith("swinv2_base_window8_256")
    with torch.device("meta"):  # the architecture without its weights (no hub here)
        model = create_model(classifier.name, num_classes=3)
    assert classifier.preprocessing(model).crop_pct is None and classifier.preprocessing(model).size == 256
    cropping = instantiate(compose("model=swin", "model.resize=crop").model)
    assert cropping.preprocessing(model).crop_pct == 0.9


def test_a_model_trained_from_scratch_keeps_the_plain_resize():
    small = create_model("test_resnet", num_classes=3, in_chans=1)
    assert preprocessing(small, pretrained=False, input_size=16) == Preprocessing(16, (0.5,), (0.5,), "bilinear")
    assert preprocessing(small, pretrained=False, input_size=None).size == 160  # test_resnet's own


def test_crop_pct_centre_crops_a_wide_image_instead_of_squashing_it():
    wide = np.zeros((20, 40), np.float32)
    wide[:, 10:30] = 1.0  # the centre square is white, the sides black
    crop = ImageItems([(wide, 0)], 10, 1, (0.0,), (1.0,), interpolation="bicubic", crop_pct=1.0)[0][0]
    squash = ImageItems([(wide, 0)], 10, 1, (0.0,), (1.0,))[0][0]
    assert crop.shape == squash.shape == (1, 10, 10)
    assert crop[0, :, 1:-1].min() > 0.999 and crop[0, :, [0, -1]].min() > 0.9  # the edges' kernels see a little black
    assert crop.max() <= 1.0  # bicubic overshoots at the step; clamped to the images' [0, 1]
    assert squash[0, :, 0].max() < 0.1  # the squashed one keeps the black sides
    cropped = ImageItems([(wide, 0)], 10, 1, (0.0,), (1.0,), crop_pct=0.5)[0][0]  # 20 px short side, centre 10
    assert torch.allclose(cropped, torch.ones_like(cropped))


def test_every_paper_classifier_knows_its_input_side_without_weights(compose):
    """post=auto's kid criterion resizes to the classifier's input: the paper's models leave
    model.input_size null, and that once crashed the choice after every image was made."""
    from hydra.utils import instantiate

    sides = {option: instantiate(compose(f"model={option}").model).input_side() for option in PAPER_MODELS}
    assert sides == {"resnet": 224, "resnext": 224, "vit": 224, "swin": 256, "regnet": 224}
    assert instantiate(compose("model=swin", "model.input_size=64").model).input_side() == 64


def test_a_classifiers_input_is_remembered_per_config_and_weights_file(tmp_path, monkeypatch):
    from odin.models import Classifier

    torch.manual_seed(1)
    weights = tmp_path / "weights.pth"
    torch.save(create_model("test_resnet", num_classes=1000, in_chans=3).state_dict(), weights)
    memos = tmp_path / "models"
    local = Classifier("test_resnet", checkpoint_path=str(weights))
    first = local.input_for(3, memos)
    built = []
    monkeypatch.setattr(Classifier, "build", lambda self, *a: built.append(a) or create_model("test_resnet", *a))
    assert local.input_for(3, memos) == first and not built  # read back: no model built
    assert Classifier("test_resnet", checkpoint_path=str(weights)).input_for(3, memos) == first and not built
    # what changes the input makes a memo of its own
    assert Classifier("test_resnet", checkpoint_path=str(weights), input_size=96).input_for(3, memos).size == 96
    scratch = Classifier("test_resnet").input_for(1, memos)
    assert scratch.mean == (0.5,) and len(built) == 2
    stat = weights.stat()  # the same path, a file written again (a new time): worked out anew
    os.utime(weights, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
    assert local.input_for(3, memos) == first and len(built) == 3
    assert len(list(memos.glob("*.json"))) == 4
    # a check is skipped where a memo vouches for the classifier, never where its weights are gone
    monkeypatch.setattr("odin.models.check_model", lambda *a: built.append("checked"))
    local.check(memos, 3)
    assert built[-1] != "checked"
    weights.unlink()
    local.check(memos, 3)
    assert built[-1] == "checked"
