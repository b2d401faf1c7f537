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


def test_blur_is_opencvs_kernel_size_5():
    """The paper's blur: OpenCV GaussianBlur(img, (5, 5), 0), whose kernel is [1, 4, 6, 4, 1] / 16."""
    impulse = np.zeros((15, 15), dtype=np.float32)
    impulse[7, 7] = 1.0
    response = PostProcessor("blur", "blur").apply(impulse, 0)
    k = np.array([1, 4, 6, 4, 1]) / 16
    expected = np.zeros((15, 15))
    expected[5:10, 5:10] = np.outer(k, k)
    np.testing.assert_allclose(response, expected, atol=1e-7)


@pytest.mark.parametrize("size", [1, 3, 5, 7, 11])
def test_blur_matches_opencv_on_images_and_borders(size):
    import cv2  # a test dependency (pyproject's [test] extra)

    x = np.random.default_rng(size).random((23, 31, 3)).astype(np.float32)
    ours = PostProcessor("blur", "blur", kernel_size=size).apply(x, 0)
    np.testing.assert_allclose(ours, cv2.GaussianBlur(x, (size, size), 0), atol=1e-6)
    gray = PostProcessor("blur", "blur", kernel_size=size).apply(x[..., 0], 0)
    np.testing.assert_allclose(gray, cv2.GaussianBlur(x[..., 0], (size, size), 0), atol=1e-6)


def test_localvar_defaults_to_scikit_images_own_variance():
    from skimage.util import random_noise

    x = np.random.default_rng(0).random((20, 20)).astype(np.float32)
    ours = PostProcessor("localvar", "localvar").apply(x, 5)
    np.testing.assert_array_equal(ours, random_noise(x, mode="localvar", rng=5, clip=True))
    bright = PostProcessor("localvar", "localvar", local_vars="brightness", var=0.05).apply(x, 5)
    assert not np.allclose(bright, ours)  # the brightness-dependent variance stays an option


def test_salt_and_pepper_amounts_follow_config():
    grey = np.full((100, 100), 0.5, dtype=np.float32)
    salt = PostProcessor("salt", "salt", amount=0.1).apply(grey, 0)
    assert (salt == 1).mean() == pytest.approx(0.1, abs=0.02) and (salt == 0).sum() == 0
    pepper = PostProcessor("pepper", "pepper", amount=0.3).apply(grey, 0)
    assert (pepper == 0).mean() == pytest.approx(0.3, abs=0.03)


@pytest.mark.parametrize(
    "overrides, key",
    [(["post.mode=sparkle"], "post.mode='sparkle'"), (["post=blur", "post.kernel_size=4"], "post.kernel_size=4"),
     (["post=salt", "post.amount=1.5"], "post.amount=1.5"),
     (["post=auto", "post.options.salt.amount=1.5"], "post.options.salt.amount=1.5")],
)
def test_bad_parameters_name_the_key(compose, overrides, key):
    from odin.validate import validate

    with pytest.raises(ValueError, match=key):
        validate(compose(*overrides))


def test_apply_to_test_degrades_a_real_image_at_the_generated_images_resolution():
    """Salt at 768 px is mostly averaged away at the model's 224 px input; on a 256 px test image it would
    change 5% of the input's pixels. degrade_at adds it at 768 px too, so both sides match."""
    import torch
    import torch.nn.functional as F

    from odin.post import degrade_at

    def changed(before, after):  # share of the 224 px input's pixels moved by more than 0.25
        at224 = [F.interpolate(torch.as_tensor(x).permute(2, 0, 1)[None], size=(224, 224), mode="bilinear",
                               antialias=True)[0] for x in (before, after)]
        return float(((at224[0] - at224[1]).abs() > 0.25).float().mean())

    rng = np.random.default_rng(0)
    salt = PostProcessor("salt", "salt")
    generated = (rng.random((768, 768, 3)) * 0.5).astype(np.float32)
    real = (rng.random((256, 256, 3)) * 0.5).astype(np.float32)
    on_training = changed(generated, salt.apply(generated, 1))
    assert changed(real, salt.apply(real, 1)) > 0.03 > 0.001 > on_training  # the mismatch degrade_at removes
    degraded = degrade_at(salt, real, 1, (768, 768))
    assert degraded.shape == real.shape and degraded.dtype == np.float32
    assert abs(changed(real, degraded) - on_training) < 0.001
    assert np.array_equal(degraded, degrade_at(salt, real, 1, (768, 768)))  # seeded
