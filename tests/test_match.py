"""post=match: the learnt statistics and the images they make, on real scikit-learn digits and glyphs."""

import inspect
import json

import numpy as np
import pytest
from PIL import Image

from odin.generate.glyph import GlyphGenerator
from odin.match import MatchPost


def real_digits(n: int = 200, size: int = 32, bright: bool = True, start: int = 0) -> list[np.ndarray]:
    """load_digits as a user's folder gives them: 8x8 counts upscaled with nearest neighbours, RGB."""
    from sklearn.datasets import load_digits

    out = []
    for im in load_digits().images[start:start + n] / 16.0:
        x = im if bright else 1 - im
        u8 = Image.fromarray(np.rint(x * 255).astype(np.uint8), "L").resize((size, size), Image.Resampling.NEAREST)
        out.append(np.asarray(u8.convert("RGB"), dtype=np.float32) / 255)
    return out


@pytest.fixture(scope="module")
def glyphs() -> list[Image.Image]:
    gen = GlyphGenerator(size=64)
    return [r.image for label in ("one", "four", "seven", "eight")
            for r in gen(label, [f"a photo of one {label} digit"] * 8, list(range(8)))]


def as_array(image: Image.Image) -> np.ndarray:
    return np.asarray(image.convert("RGB"), dtype=np.float32) / 255


def fitted(real, glyphs) -> MatchPost:
    post = MatchPost()
    post.fit(real, [as_array(im) for im in glyphs[::2]])
    return post


def test_fit_reads_images_only_and_is_deterministic(glyphs):
    assert list(inspect.signature(MatchPost.fit).parameters) == ["self", "real_images", "generated_images"]
    real = real_digits()
    a, b = fitted(real, glyphs).stats, fitted([x.copy() for x in real], glyphs).stats
    assert a == b
    json.dumps(a)  # recorded in the store's config and metrics.json
    assert a["gray"] and a["size"] == [32, 32] and a["block"] == 4 and a["plain"]
    assert a["subject"] > a["ground"]  # bright ink on a dark ground


def test_key_changes_with_the_real_images_and_only_with_them(glyphs):
    key = fitted(real_digits(), glyphs).key_config()
    assert fitted(real_digits(), glyphs).key_config() == key
    assert fitted(real_digits(start=300), glyphs).key_config() != key
    assert fitted(real_digits(bright=False), glyphs).key_config() != key
    assert key["mode"] == "match" and "stats" in key
    with pytest.raises(RuntimeError, match="fit"):
        MatchPost().key_config()


@pytest.mark.parametrize("bright", [True, False])
def test_matched_images_move_toward_the_real_ones(glyphs, bright):
    real = real_digits(bright=bright)
    post = fitted(real, glyphs)
    matched = [as_array(post(im, seed)) for seed, im in enumerate(glyphs)]
    before = [as_array(im) for im in glyphs]

    def ground(images):  # the frame's sides (real digits fill its height): the polarity
        return np.median([np.median(np.r_[x[:, 0].ravel(), x[:, -1].ravel()]) for x in images])

    def quantiles(images):
        return np.quantile(np.concatenate([x.ravel() for x in images]), np.linspace(0.05, 0.95, 19))

    assert abs(ground(matched) - ground(real)) < 0.05 < abs(ground(before) - ground(real))
    distance = [np.abs(quantiles(images) - quantiles(real)).mean() for images in (matched, before)]
    assert distance[0] < 0.5 * distance[1]
    # as blocky as the real images: 32 px made of 4x4 blocks
    for x in matched:
        assert x.shape[:2] == (32, 32)
        blocks = x[..., 0].reshape(8, 4, 8, 4)
        assert np.abs(blocks - blocks.mean((1, 3), keepdims=True)).max() < 1e-6
    # the subject fills the frame's height and covers as much of it as the real ones
    cover = np.mean([np.abs(x - ground(real)).mean() for x in matched])
    assert abs(cover - np.mean([np.abs(x - ground(real)).mean() for x in real])) < 0.05


def test_original_8x8_size_is_kept(glyphs):
    post = fitted(real_digits(size=8), glyphs)
    assert post.stats["size"] == [8, 8] and post.stats["block"] == 1
    out = post(glyphs[0], 0)
    assert out.size == (8, 8) and out.mode == "L"


def test_deterministic_per_image_and_seed(glyphs):
    post = fitted(real_digits(), glyphs)
    assert post(glyphs[3], 7).tobytes() == post(glyphs[3], 7).tobytes()
    assert np.array_equal(post.apply(as_array(glyphs[3]), 7), post.apply(as_array(glyphs[3]), 7))


def test_a_scene_is_resized_and_tone_mapped():
    rng = np.random.default_rng(0)
    # real "photos": dark colour textures at 24 px; generated: bright ones at 64 px
    real = [np.clip(0.8 * rng.random((24, 24, 3)), 0, 1).astype(np.float32) for _ in range(40)]
    generated = [np.clip(0.5 + 0.5 * rng.random((64, 64, 3)), 0, 1).astype(np.float32) for _ in range(5)]
    post = MatchPost()
    stats = post.fit(real)
    assert not stats["plain"] and not stats["gray"] and stats["size"] == [24, 24]
    out = post.apply(generated[0], 0)
    assert out.shape == (24, 24, 3)
    assert abs(out.mean() - np.mean(real)) < 0.03
    assert post.apply(generated[0], 0).tobytes() == out.tobytes()


def test_apply_to_test_is_refused():
    with pytest.raises(ValueError, match="apply_to_test"):
        MatchPost(apply_to_test=True).check()


def test_choose_learns_from_the_training_split_with_its_labels_unused(tmp_path, glyphs):
    """post=match in a run: the folder's training share is read as images; the test images are not."""
    from types import SimpleNamespace

    from odin.data.folder import FolderDataset

    for k, x in enumerate(real_digits(60, size=8)):
        path = tmp_path / ("one" if k % 2 else "seven") / f"{k}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(np.rint(x * 255).astype(np.uint8)).save(path)
    dataset = FolderDataset(root=str(tmp_path), context="digit")
    dataset.test_set = None  # a run's test images: reading them here would fail
    ctx = SimpleNamespace(dataset=dataset, generated_labels=["one", "seven"], seed=0)
    post = MatchPost(max_per_class=10)
    chosen = post.choose(ctx, None)
    assert chosen.processor is post and chosen.record["real_split"] == "train"
    assert chosen.record["real_images"] == 20 and chosen.record["learnt"]["size"] == [8, 8]
    assert chosen.config["stats"] == post.key_config()["stats"] and chosen.config["name"] == "match"
    assert chosen.record["stats"] == post.stats


def _digit_folder(root, labels=("zero", "one"), per_class=12, bright=True):
    """A user's folder of real digits (scikit-learn's, 32 px blocky), one sub-folder per label."""
    from sklearn.datasets import load_digits

    data = load_digits()
    for label, digit in zip(labels, (0, 1), strict=False):
        images = data.images[data.target == digit][:per_class] / 16.0
        for k, im in enumerate(images):
            x = im if bright else 1 - im
            path = root / label / f"{k}.png"
            path.parent.mkdir(parents=True, exist_ok=True)
            u8 = Image.fromarray(np.rint(x * 255).astype(np.uint8), "L")
            u8.resize((32, 32), Image.Resampling.NEAREST).save(path)
    return root


def test_match_is_a_post_auto_candidate_and_wins_against_a_polarity_gap(compose, tmp_path):
    """Bright ink on black, 32 px blocks: the glyphs as drawn are far from that, matched ones close; post=auto
    (kid, labels unused) picks match, and the run trains on the matched images."""
    from odin.run import run

    real = _digit_folder(tmp_path / "real")
    metrics = run(compose("labels=[zero,one]", "dataset=folder", f"dataset.root={real}", "dataset.context=digit",
                          "dataset.test_fraction=0.5", "prompt.num_prompts=2", "diffusion.images_per_prompt=4",
                          "train.epochs=1", "model.input_size=32", "post=auto", "post.criterion=kid",
                          "post.max_per_class=4", "post.candidates=[none,match]", "logger=none"),
                  output_dir=tmp_path / "run")
    auto = metrics["post"]["auto"]
    assert set(auto["scores"]) == {"none", "match"} and auto["chosen"] == "match" == metrics["post"]["name"]
    assert auto["scores"]["match"] < auto["scores"]["none"]
    assert metrics["post"]["made"] + metrics["post"]["reused"] == metrics["train_images"]["generated"]


def test_match_refuses_a_dataset_that_remakes_generated_images(compose, tmp_path):
    from odin.errors import ConfigError
    from odin.run import run

    with pytest.raises(ConfigError, match="post=match with dataset=digits"):
        run(compose("experiment=smoke", "post=match"), output_dir=tmp_path / "run")
    assert not (tmp_path / "store" / "images").exists()  # refused before any image
