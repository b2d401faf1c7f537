"""odin.metrics: pairwise SSIM equals scikit-image's structural_similarity; colorfulness by hand."""

import itertools
import math
import os
import subprocess
import sys

import numpy as np
import pytest
import torch
from skimage.metrics import structural_similarity

from odin.metrics.colorfulness import colorfulness
from odin.metrics.ssim import class_diversity, pairwise_ssim


def skimage_pairs(images: np.ndarray, **kw) -> np.ndarray:
    """The reference: scikit-image on every pair i < j, channels first (or gray [N, H, W])."""
    channel = {"channel_axis": 0} if images.ndim == 4 else {}
    return np.array([structural_similarity(images[i], images[j], **channel, **kw)
                     for i, j in itertools.combinations(range(len(images)), 2)])


def smooth_images(n: int, channels: int, size: int, seed: int) -> np.ndarray:
    """Real-looking images in [0, 1]: gradients, a disc, a rectangle, a little noise; flat areas too."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size] / size
    out = np.empty((n, channels, size, size))
    for k, c in itertools.product(range(n), range(channels)):
        a, b, cx, cy, r, x0, y0 = rng.random(7)
        image = 0.4 * (a * xx + b * yy)
        image[(xx - cx) ** 2 + (yy - cy) ** 2 < (0.3 * r) ** 2] = rng.random()
        image[int(y0 * size) // 2:int(y0 * size) // 2 + size // 4, int(x0 * size) // 2:] = 1.0  # flat white
        out[k, c] = np.clip(image + 0.02 * rng.standard_normal((size, size)), 0, 1)
    return out


@pytest.mark.parametrize("backend", ["numba", "torch"])
@pytest.mark.parametrize("kind", ["random", "smooth"])
@pytest.mark.parametrize("channels", [1, 3])
def test_pairwise_ssim_equals_skimage_defaults(backend, kind, channels):
    images = (np.random.default_rng(channels).random((7, channels, 23, 30)) if kind == "random"
              else smooth_images(7, channels, 40, seed=channels))
    images = images[:, 0] if channels == 1 else images  # gray as [N, H, W], like skimage's 2-D input
    ours = pairwise_ssim(torch.from_numpy(images), data_range=1.0, backend=backend, batch_pairs=5)
    reference = skimage_pairs(images, data_range=1.0)
    assert ours.shape == (21,)
    np.testing.assert_allclose(ours.numpy(), reference, rtol=0, atol=1e-4)
    assert reference.std() > 0.01  # the pairs differ, so a wrong order would show


@pytest.mark.parametrize("threads", [1, 2])
def test_numba_loop_across_bands_chunks_and_odd_widths_equals_skimage(monkeypatch, threads):
    """Several row bands (the ring of window rows restarts at each), chunks of pairs on each thread, an odd
    number of map columns (the pixel left over by the paired division) and the Gaussian window's path."""
    from odin.metrics import ssim_cpu

    monkeypatch.setattr(ssim_cpu, "CACHE_BUDGET", 1)  # the thinnest bands: 24 rows, so 3 bands of a 58-row map
    assert ssim_cpu.band_rows(6, 65, 7, 8, 58) == 24
    images = smooth_images(6, 3, 64, seed=11)[..., :65 - 2]  # 64 x 63 px: a 58 x 57 map
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        for options in ({}, {"gaussian_weights": True}):
            ours = pairwise_ssim(images, 1.0, **options).numpy()
            np.testing.assert_allclose(ours, skimage_pairs(images, data_range=1.0, **options), rtol=0, atol=1e-12)
    finally:
        torch.set_num_threads(previous)


@pytest.mark.parametrize("options", [{"gaussian_weights": True}, {"win_size": 5},
                                     {"gaussian_weights": True, "use_sample_covariance": False},
                                     {"win_size": 9, "use_sample_covariance": False}])
def test_pairwise_ssim_equals_skimage_with_other_windows(options):
    images = smooth_images(5, 3, 33, seed=7)
    ours = pairwise_ssim(images, data_range=1.0, **options)
    np.testing.assert_allclose(ours.numpy(), skimage_pairs(images, data_range=1.0, **options), rtol=0, atol=1e-4)


def test_float32_uint8_and_data_range_255():
    images = (smooth_images(6, 3, 32, seed=3) * 255).round().astype(np.uint8)
    reference = skimage_pairs(images)  # uint8: skimage takes data_range 255 from the dtype
    np.testing.assert_allclose(pairwise_ssim(images).numpy(), reference, atol=1e-4, rtol=0)
    floats = torch.from_numpy(images.astype(np.float32))
    np.testing.assert_allclose(pairwise_ssim(floats, 255.0, dtype=torch.float32).numpy(), reference, atol=1e-4, rtol=0)
    np.testing.assert_allclose(pairwise_ssim(floats, 255.0, dtype=torch.float32, backend="torch").numpy(),
                               reference, atol=1e-4, rtol=0)


def test_batches_of_any_size_give_the_same_values_in_the_same_order():
    images = torch.rand(9, 1, 12, 12, dtype=torch.float64)
    whole = pairwise_ssim(images, 1.0, batch_pairs=1000)
    for batch in (1, 4, 7, 35):
        assert torch.equal(pairwise_ssim(images, 1.0, batch_pairs=batch), whole)
    assert pairwise_ssim(images[:2], 1.0).item() == pytest.approx(whole[0].item(), abs=1e-12)  # pair (0, 1) first


def test_bad_input_fails_early_with_the_fix():
    floats = torch.rand(3, 1, 16, 16)
    with pytest.raises(ValueError, match="data_range must be given"):
        pairwise_ssim(floats)
    with pytest.raises(ValueError, match="smaller than the 7x7 window"):
        pairwise_ssim(torch.rand(3, 1, 5, 20), 1.0)
    with pytest.raises(ValueError, match="win_size=4 must be a positive odd"):
        pairwise_ssim(floats, 1.0, win_size=4)
    with pytest.raises(ValueError, match=r"must be \[N, C, H, W\]"):
        pairwise_ssim(torch.rand(16, 16), 1.0)
    with pytest.raises(ValueError, match="backend='cuda'"):
        pairwise_ssim(floats, 1.0, backend="cuda")


def test_class_diversity_per_class_pooled_and_class_means():
    same = torch.rand(1, 1, 16, 16, dtype=torch.float64).repeat(4, 1, 1, 1)  # identical images: SSIM 1
    varied = torch.rand(5, 1, 16, 16, dtype=torch.float64)
    result = class_diversity({"same": same, "varied": varied}, data_range=1.0, keep_values=True)
    assert result["classes"]["same"] == {"mean": pytest.approx(1.0), "sd": pytest.approx(0.0, abs=1e-12), "pairs": 6}
    varied_values = pairwise_ssim(varied, 1.0)
    assert result["classes"]["varied"]["mean"] == pytest.approx(varied_values.mean().item())
    assert result["classes"]["varied"]["mean"] < 0.2  # independent noise is dissimilar
    pooled = np.concatenate([np.ones(6), varied_values.numpy()])
    assert result["pooled"] == {"mean": pytest.approx(pooled.mean()), "sd": pytest.approx(pooled.std()), "pairs": 16}
    assert result["class_means"]["mean"] == pytest.approx((1.0 + varied_values.mean().item()) / 2)
    assert len(result["values"]["varied"]) == 10
    with pytest.raises(ValueError, match="class 'lonely' has 1 image"):
        class_diversity({"lonely": varied[:1]}, data_range=1.0)


def rgb(height: int, width: int, colour) -> torch.Tensor:
    return torch.tensor(colour, dtype=torch.float64).view(3, 1, 1).expand(3, height, width).clone()


def test_colorfulness_of_a_flat_colour_and_a_gray_image():
    # Flat red: rg = 255, yb = 127.5 everywhere, no spread: M = 0.3 * sqrt(255^2 + 127.5^2).
    assert colorfulness(rgb(224, 224, (255, 0, 0))).item() == pytest.approx(85.5296, abs=1e-3)
    assert colorfulness(rgb(224, 224, (90, 90, 90))).item() == pytest.approx(0.0, abs=1e-9)
    # Resized to 224x224 first (a flat image stays flat), and uint8 works like floats.
    odd = rgb(50, 80, (255, 0, 0)).to(torch.uint8)
    assert colorfulness(odd).item() == pytest.approx(85.5296, abs=1e-3)


def test_colorfulness_uses_signed_opponent_channels():
    # Red left half, green right half: rg = +255 / -255 (mean 0, SD 255), yb = 127.5 everywhere (mean 127.5,
    # SD 0): M = 255 + 0.3 * 127.5 = 293.25. With |rg| (the widely copied snippet) rg would be a flat 255 and M
    # would equal the flat red's 85.53.
    halves = torch.cat([rgb(224, 112, (255, 0, 0)), rgb(224, 112, (0, 255, 0))], dim=2)
    assert colorfulness(halves).item() == pytest.approx(293.25, abs=1e-9)
    # Yellow over blue: rg = 0, yb = +255 / -255: M = 255.
    yellow_blue = torch.cat([rgb(112, 224, (255, 255, 0)), rgb(112, 224, (0, 0, 255))], dim=1)
    assert colorfulness(yellow_blue).item() == pytest.approx(255.0, abs=1e-9)


def test_colorfulness_of_an_unequal_split_batched():
    # A quarter red, the rest black: rg is 255 on 1/4 of the pixels (mean 63.75, SD 255*sqrt(3)/4), yb is
    # half of that (mean 31.875, SD 255*sqrt(3)/8).
    quarter = torch.zeros(3, 200, 200, dtype=torch.float64)
    quarter[0, :, :50] = 255
    expected = math.hypot(255 * math.sqrt(3) / 4, 255 * math.sqrt(3) / 8) + 0.3 * math.hypot(63.75, 31.875)
    values = colorfulness(torch.stack([quarter, rgb(200, 200, (0, 0, 0))]), size=None)
    assert values.tolist() == pytest.approx([expected, 0.0], abs=1e-9)
    assert expected == pytest.approx(144.83, abs=0.01)  # worked out by hand: 123.45 + 0.3 * 71.27
    with pytest.raises(ValueError, match=r"RGB images as \[N, 3, H, W\]"):
        colorfulness(torch.zeros(2, 1, 8, 8))


def test_mostly_flat_images_stay_exact_in_the_default_float64():
    """Plain backgrounds are where float32 loses the 1e-4 agreement (E[xy] - E[x]E[y] cancels); float64 keeps it."""
    rng = np.random.default_rng(5)
    images = np.full((4, 3, 40, 40), 0.7)
    for k in range(1, 4):
        images[k, :, 5 * k:5 * k + 10, 8:20] = rng.random((3, 10, 12))
    reference = skimage_pairs(images, data_range=1.0)
    np.testing.assert_allclose(pairwise_ssim(images, 1.0).numpy(), reference, rtol=0, atol=1e-9)
    np.testing.assert_allclose(pairwise_ssim(images, 1.0, backend="torch").numpy(), reference, rtol=0, atol=1e-9)


def test_load_images_resizes_and_feeds_both_metrics(tmp_path):
    from PIL import Image

    from odin.metrics.images import load_images

    paths = []
    for k, colour in enumerate([(255, 0, 0), (0, 0, 255), (30, 30, 30)]):
        paths.append(tmp_path / f"{k}.png")
        Image.new("RGB", (40 + 10 * k, 30), colour).save(paths[-1])
    rgb_images = load_images(paths, size=16)
    assert rgb_images.shape == (3, 3, 16, 16) and rgb_images.dtype == torch.uint8
    assert rgb_images[0, :, 5, 5].tolist() == [255, 0, 0]
    assert colorfulness(rgb_images)[2].item() == pytest.approx(0.0, abs=1e-9)
    gray = load_images(paths, size=16, gray=True)
    assert gray.shape == (3, 1, 16, 16)
    assert pairwise_ssim(gray).shape == (3,)  # uint8: data_range 255 from the dtype
    with pytest.raises(ValueError, match="differ in size"):
        load_images(paths)


@pytest.mark.parametrize("threads", [1, 2])
def test_the_first_ssim_of_a_process_runs_on_torchs_thread_count_and_leaves_it(threads):
    """numba's OpenMP layer starts with the first SSIM and resets the process's OpenMP thread count: a fresh
    process asks for `threads`, and both numba and torch still have that count after the call."""
    code = ("import sys, numba, torch\n"
            f"torch.set_num_threads({threads})\n"
            "from odin.metrics.ssim import pairwise_ssim\n"
            "pairwise_ssim(torch.rand(4, 1, 16, 16, dtype=torch.float64), 1.0)\n"
            "print(numba.get_num_threads(), torch.get_num_threads())\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300,
                          env={**os.environ, "NUMBA_NUM_THREADS": "2"})
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == [str(threads), str(threads)]
