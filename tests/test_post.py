import numpy as np
import pytest
from PIL import Image

from odin.post import MODES, PostProcessor


def _image(mode="L"):
    rng = np.random.default_rng(0)
    shape = (32, 32) if mode == "L" else (32, 32, 3)
    return Image.fromarray((rng.random(shape) * 200 + 28).astype(np.uint8)).convert(mode)


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("color", ["L", "RGB"])
def test_each_mode_is_deterministic_per_seed_and_keeps_range(mode, color):
    post = PostProcessor(mode, mode)
    image = _image(color)
    a, b = post(image, 7), post(image, 7)
    assert a.mode == color and a.size == image.size
    assert a.tobytes() == b.tobytes()
    x = post.apply(np.asarray(image, dtype=np.float32) / 255, 7)
    assert x.min() >= 0 and x.max() <= 1
    if mode == "none":
        assert a.tobytes() == image.tobytes()
    else:
        assert a.tobytes() != image.tobytes()
    if mode not in ("none", "blur"):
        assert post(image, 8).tobytes() != a.tobytes()  # the noise comes from the seed


def test_blur_has_a_five_pixel_kernel():
    impulse = np.zeros((15, 15), dtype=np.float32)
    impulse[7, 7] = 1.0
    response = PostProcessor("blur", "blur").apply(impulse, 0)
    rows, cols = np.nonzero(response > 1e-8)
    assert (rows.min(), rows.max(), cols.min(), cols.max()) == (5, 9, 5, 9)
    assert response.sum() == pytest.approx(1.0, abs=1e-5)


def test_salt_and_pepper_amounts_follow_config():
    grey = np.full((100, 100), 0.5, dtype=np.float32)
    salt = PostProcessor("salt", "salt", amount=0.1).apply(grey, 0)
    assert (salt == 1).mean() == pytest.approx(0.1, abs=0.02) and (salt == 0).sum() == 0
    pepper = PostProcessor("pepper", "pepper", amount=0.3).apply(grey, 0)
    assert (pepper == 0).mean() == pytest.approx(0.3, abs=0.03)


@pytest.mark.parametrize(
    "kwargs, key",
    [({"mode": "sparkle"}, "post.mode"), ({"mode": "blur", "kernel_size": 4}, "post.kernel_size"),
     ({"mode": "salt", "amount": 1.5}, "post.amount")],
)
def test_bad_parameters_name_the_key(kwargs, key):
    with pytest.raises(ValueError, match=key):
        PostProcessor("x", **kwargs)
