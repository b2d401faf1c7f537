"""The gap alarm: ~50% for two samples of one distribution, ~100% for clearly different ones."""

import numpy as np

from odin.gap import gap_alarm, warning


def strokes(n: int, seed: int, bright: bool = False, size: int = 32) -> list[np.ndarray]:
    """Random bars on a plain ground: dark on light, or light on dark."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        x = np.zeros((size, size), np.float32)
        for _ in range(3):
            r, c = rng.integers(4, size - 8, 2)
            x[r:r + rng.integers(2, 8), c:c + rng.integers(2, 8)] = 1.0
        out.append(x if bright else 1 - x)
    return out


def test_one_distribution_is_near_chance():
    result = gap_alarm(strokes(120, 0), strokes(120, 1))
    assert 0.3 < result["accuracy"] < 0.7
    assert result["n_generated"] == result["n_real"] == 120
    assert warning(result) is None


def test_clearly_different_images_are_told_apart_and_warned_about():
    groups = [i // 10 for i in range(120)]  # ten images per prompt: held out together
    result = gap_alarm(strokes(120, 0), strokes(120, 1, bright=True), groups=groups)
    assert result["accuracy"] > 0.95
    text = warning(result)
    assert "post=match" in text and "polarity" in text
    assert "post=match" not in warning(result, post="match")


def test_too_few_images_say_so():
    result = gap_alarm(strokes(2, 0), strokes(2, 1))
    assert result["accuracy"] is None and "too few" in result["meaning"]
