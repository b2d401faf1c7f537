import pytest
import torch

from odin.hub import MissingWeightsError
from odin.models import check_model, create_model


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
