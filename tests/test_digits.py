from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image, ImageDraw
from sklearn.datasets import load_digits

from odin.data import digits
from odin.data.digits import INK_PIXELS, DigitsDataset, acquire
from odin.errors import MissingSplitError
from odin.generate.glyph import GlyphGenerator, read_style

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def ds():
    return DigitsDataset(template_banks={"style": ["handwritten"]})


def test_classes_and_full_test_set(ds):
    assert ds.classes == ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]
    assert ds.channels == 1 and ds.name == "digits" and ds.context == "digit"
    test = ds.test_set(ds.classes)
    assert len(test) == 1797
    images = np.stack([x for x, _ in test])
    assert images.dtype == np.float32 and images.shape == (1797, 8, 8)
    assert images.min() == 0.0 and images.max() == 1.0
    assert np.array_equal([y for _, y in test], load_digits().target)


def test_the_test_set_is_load_digits_exactly_whether_read_from_its_file_or_through_scikit_learn(monkeypatch):
    expected = (load_digits().images / 16.0).astype(np.float32), load_digits().target
    digits._load.cache_clear()
    read = digits._load()  # scikit-learn's file, parsed here
    monkeypatch.setattr(digits.importlib.util, "find_spec", lambda name: None)  # no file found: load_digits
    digits._load.cache_clear()
    fallback = digits._load()
    digits._load.cache_clear()
    for got in (read, fallback):
        assert got[0].dtype == np.float32 and np.array_equal(got[0], expected[0])
        assert np.array_equal(got[1], expected[1])


def test_subset_indices_follow_the_order_of_labels(ds):
    target = load_digits().target
    test = ds.test_set(["seven", "1"])
    assert len(test) == (target == 7).sum() + (target == 1).sum()
    assert {y for _, y in test} == {0, 1}
    sevens = [x for x, y in test if y == 0]
    assert len(sevens) == (target == 7).sum()
    assert np.allclose(sevens[0], load_digits().images[np.argmax(target == 7)] / 16)
    with pytest.raises(ValueError, match="'beagle'"):
        ds.test_set(["seven", "beagle"])
    with pytest.raises(ValueError, match="twice"):
        ds.test_set(["seven", "7"])


def test_no_training_split(ds):
    with pytest.raises(MissingSplitError, match="caption"):
        ds.train_images("seven")


def check_8x8(a):
    assert a.shape == (8, 8) and a.dtype == np.float32
    assert a.min() >= 0 and a.max() <= 1
    assert np.allclose(a * 16, np.round(a * 16))  # counts of a 4x4 block


def test_acquire_a_generated_digit_like_nist(ds):
    gen = GlyphGenerator()
    for label, prompt in [
        ("7", "a photo of one seven digit"),
        ("1", "handwritten, tilted, small in the frame"),
        ("0", "bold serif font, off center"),
        ("4", "handwritten, open top, blurry"),
    ]:
        a = ds.acquire(gen(label, [prompt], [5])[0].image)
        check_8x8(a)
        assert abs(a.sum() * 16 - INK_PIXELS) < 0.15 * INK_PIXELS  # stroke width normalised by count
        rows, cols = (a > 0).any(1), (a > 0).any(0)
        assert rows.all()  # stretched to the full 32-pixel height
        assert not cols[0] and not cols[7] and cols[2:6].all()  # ~20 wide, centred


def test_acquire_blank_and_all_ink():
    for colour in (255, 0, 128):
        a = acquire(Image.new("L", (64, 64), colour))
        check_8x8(a)
        assert a.sum() == 0
    check_8x8(acquire(Image.new("RGB", (50, 70), (250, 250, 250))))


def test_acquire_ignores_a_far_speck():
    image = GlyphGenerator()("3", ["handwritten"], [2])[0].image
    specked = image.copy()
    ImageDraw.Draw(specked).rectangle((1, 1, 3, 3), fill=0)
    ImageDraw.Draw(specked).point([(60, 62), (2, 60)], fill=0)
    assert np.abs(acquire(image) - acquire(specked)).max() <= 1 / 16


def test_acquire_roughly_reproduces_real_digits():
    """A real 8x8 digit drawn big (dark on light) and acquired again stays close to itself:
    the geometry (orientation, box, centring) matches the one load_digits went through."""
    d = load_digits()
    corr = []
    for k in range(0, 1797, 60):
        big = Image.fromarray((255 - d.images[k] * 255 / 16).astype(np.uint8)).resize((64, 64), Image.BILINEAR)
        a, b = acquire(big).ravel(), d.images[k].ravel() / 16
        corr.append(np.corrcoef(a, b)[0, 1])
    assert np.mean(corr) > 0.8


def test_config_banks_are_read_by_the_glyph_backend():
    cfg = yaml.safe_load((ROOT / "conf/dataset/digits.yaml").read_text())
    assert cfg["_target_"] == "odin.data.digits.DigitsDataset"
    banks = cfg["template_banks"]
    assert set(banks) == {"style", "view", "setting"}
    read = [read_style(p) for p in banks["style"]]
    assert all(styles or forms for styles, forms in read)  # every style phrase means something
    forms = set().union(*(f for _, f in read))
    assert {"longflag", "open", "crossed", "straight"} <= forms
    DigitsDataset(**{k: v for k, v in cfg.items() if k != "defaults" and k != "_target_"})


def scipy_acquire(image: Image.Image) -> np.ndarray:
    """acquire as first written, with scipy's exact distance transform, scikit-image's labels and two partitions:
    the reference whose bytes the faster one must give (a flipped 4x4 block would move top-1)."""
    from scipy import ndimage
    from skimage import measure

    from odin.data.digits import FRAME, SUPER, upright_frame

    ink = ndimage.gaussian_filter(1.0 - np.asarray(image.convert("L"), dtype=np.float32) / 255.0,
                                  sigma=max(image.size) / 90)
    background, darkest = np.median(ink), np.percentile(ink, 99.5)
    if darkest - background < 0.15:
        return np.zeros((8, 8), np.float32)
    labels = measure.label(ink > (background + darkest) / 2, connectivity=2)
    areas = np.bincount(labels.ravel())
    areas[0] = 0
    binary = areas[labels] >= 0.1 * areas.max()
    frame = upright_frame(binary)  # the geometry is shared: the reference differs in components and distances
    if frame.any():
        signed = ndimage.distance_transform_edt(~frame) - ndimage.distance_transform_edt(frame)
        target = INK_PIXELS * SUPER**2
        frame = signed <= np.partition(signed.ravel(), target)[target]
    bitmap = frame.reshape(FRAME, SUPER, FRAME, SUPER).mean((1, 3)) > 0.5
    return (bitmap.reshape(8, 4, 8, 4).sum((1, 3)) / 16.0).astype(np.float32)


def generated_digits(prompts_per_label: int, seeds: int) -> list[Image.Image]:
    """Glyphs of every digit from the default's own prompts (template banks of conf/dataset/digits.yaml)."""
    from odin.prompts.template import TemplatePrompts

    cfg = yaml.safe_load((ROOT / "conf/dataset/digits.yaml").read_text())
    prompter = TemplatePrompts("a photo of one {label} {context}, {style}, {view}, {setting}", cfg["template_banks"],
                               "digit", prompts_per_label)
    gen, labels = GlyphGenerator(), ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]
    return [g.image for lp in prompter(labels) for p in lp.prompts
            for g in gen(lp.label, [p] * seeds, [hash((p, s)) % 2**32 for s in range(seeds)])]


def degraded(images: list[Image.Image]) -> list[Image.Image]:
    """The same glyphs through every post-processor, plus noise, specks, odd sizes and colour."""
    from odin.post import PostProcessor

    rng = np.random.default_rng(0)
    posts = [PostProcessor(mode, mode) for mode in ("gaussian", "salt", "pepper", "s&p", "speckle", "poisson",
                                                    "localvar", "blur")]
    return ([post(im, i) for i, im in enumerate(images) for post in posts]
            + [Image.fromarray(rng.integers(0, 256, (64, 64), dtype=np.uint8)) for _ in range(20)]
            + [Image.fromarray((rng.random((48, 80)) > 0.97).astype(np.uint8) * 255) for _ in range(20)]
            + [im.convert("RGB").resize((71, 33)) for im in images[:20]])


def same_bytes(images: list[Image.Image]) -> None:
    fast = np.stack([acquire(im) for im in images])
    reference = np.stack([scipy_acquire(im) for im in images])
    differ = np.flatnonzero((fast != reference).any((1, 2)))
    assert fast.tobytes() == reference.tobytes(), f"{len(differ)} of {len(images)} differ, first {differ[:5]}"


def test_acquire_gives_the_bytes_of_the_scipy_reference():
    images = generated_digits(prompts_per_label=6, seeds=4)
    same_bytes(images + degraded(images[::12]))


@pytest.mark.slow
def test_acquire_gives_the_bytes_of_the_scipy_reference_on_many_images():
    images = generated_digits(prompts_per_label=100, seeds=5)
    same_bytes(images + degraded(images[::25]))
