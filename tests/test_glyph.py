import json

import numpy as np
import pytest

from odin.generate import GeneratedImage
from odin.generate.glyph import GlyphGenerator, label_to_char, read_style

NAIVE = "a photo of one seven digit"


def pixels(result: GeneratedImage) -> np.ndarray:
    return np.asarray(result.image, dtype=np.float32)


def ink_mask(image: np.ndarray) -> np.ndarray:
    """Pixels far from the background (the median), whichever way round ink and paper are."""
    return np.abs(image - np.median(image)) > 64


def ink(image: np.ndarray) -> float:
    return float(ink_mask(image).mean())


@pytest.fixture(scope="module")
def gen():
    return GlyphGenerator(size=64, images_per_prompt=4, batch_size=4)


def test_label_to_char():
    assert label_to_char("7") == label_to_char("seven") == label_to_char("Seven ") == "7"
    assert label_to_char("a") == "a" and label_to_char("Q") == "Q"
    assert label_to_char("beagle") is None and label_to_char("12") is None and label_to_char("") is None


def test_digit_name_and_digit_draw_the_same(gen):
    a = gen("7", [NAIVE, "handwritten"], [3, 4])
    b = gen("seven", [NAIVE, "handwritten"], [3, 4])
    assert [r.image.tobytes() for r in a] == [r.image.tobytes() for r in b]


def test_check_names_the_label_and_the_fix(gen):
    with pytest.raises(ValueError, match=r"'beagle'.*digits.*diffusion=sd2"):
        gen.check(["seven", "beagle"])
    with pytest.raises(ValueError, match="no labels"):
        gen.check([])
    gen.check(["zero", "7", "a", "Z"])  # fine
    with pytest.raises(ValueError, match="beagle"):
        gen("beagle", [NAIVE], [0])
    with pytest.raises(ValueError, match="2 prompts but 1 seeds"):
        gen("7", [NAIVE, NAIVE], [0])


def test_image_is_dark_ink_on_light_paper(gen):
    for label in ["0", "seven", "a", "Z"]:
        (r,) = gen(label, ["a photo of one x, handwritten, bold"], [1])
        im = pixels(r)
        assert r.image.mode == "L" and r.image.size == (64, 64)
        assert np.median(im) > 150 and im.min() < 100, label
        json.dumps(r.info)  # recorded in metadata.jsonl


def test_pure_function_of_label_prompt_seed(gen):
    prompts = [NAIVE, "handwritten, tilted", "bold serif font", "cursive script", "single-stroke", "open four"]
    seeds = [11, 12, 13, 14, 15, 16]
    together = gen("four", prompts, seeds)
    alone = [gen("four", [p], [s])[0] for p, s in zip(prompts, seeds, strict=True)]
    reversed_ = gen("four", prompts[::-1], seeds[::-1])[::-1]
    other_batch = GlyphGenerator(batch_size=2)("four", prompts, seeds)
    for runs in (alone, reversed_, other_batch):
        assert [r.image.tobytes() for r in runs] == [r.image.tobytes() for r in together]
    assert gen("four", [NAIVE], [11])[0].image.tobytes() == together[0].image.tobytes()
    assert gen("four", [NAIVE], [12])[0].image.tobytes() != together[0].image.tobytes()


def test_read_style_words_and_forms():
    styles, forms = read_style("a photo of one 1 digit, handwritten in the European style, long flag, sans-serif")
    assert {"hand", "sans"} <= styles and "serif" not in styles
    assert forms == {"longflag"}  # not also "flag"
    assert read_style(NAIVE) == (set(), set())
    assert read_style("Slightly TILTED, single-stroke, open top") == ({"slight", "tilted", "single"}, {"open"})


def test_style_words_change_the_drawing(gen):
    seeds = list(range(8))

    def mean_ink(prompt, label="8"):
        return np.mean([ink(pixels(r)) for r in gen(label, [prompt] * 8, seeds)])

    assert mean_ink("handwritten, bold") > 1.5 * mean_ink("handwritten, thin")
    assert mean_ink("bold font") > 1.3 * mean_ink("thin")
    assert mean_ink("font, large") > 2 * mean_ink("font, small")

    def lean(prompt):  # covariance of ink x with ink y: negative when the top leans right (y down)
        out = []
        for r in gen("1", [prompt] * 8, seeds):
            y, x = np.nonzero(ink_mask(pixels(r)))
            out.append(np.mean((x - x.mean()) * (y - y.mean())) / np.var(y))
        return np.mean(out)

    assert lean("italic") < lean("font") - 0.1
    # word-chosen sources: a handwritten form, a single-stroke font, a typeface
    assert gen("7", ["handwritten with a crossbar"], [0])[0].info["font"] == "hand:crossed"
    assert gen("7", ["single-stroke"], [0])[0].info["font"].startswith("hershey:")
    assert gen("7", ["serif font"], [0])[0].info["font"].split(":")[0] in ("font", "hershey")
    assert gen("a", ["handwritten, open top"], [0])[0].info["font"].startswith("hershey:")  # no letter skeletons


def test_a_prompt_without_style_words_varies_with_the_seed(gen):
    """As Stable Diffusion does for a plain prompt: the seed draws fonts, stroke fonts and hand-drawn
    forms, and now and then light ink on a dark ground."""
    results = gen("3", [NAIVE] * 40, list(range(40)))
    sources = [r.info["font"] for r in results]
    assert {s.split(":")[0] for s in sources} == {"font", "hershey", "hand"}
    assert len(set(sources)) >= 15
    dark_ground = [np.median(pixels(r)) < 128 for r in results]
    assert 0 < sum(dark_ground) < len(results) / 2

    def spread(prompts):
        ims = np.stack([ink_mask(pixels(r)) for r in gen("3", prompts, list(range(len(prompts))))])
        flat = ims.reshape(len(ims), -1).astype(np.float32)
        return np.mean([np.abs(a - b).mean() for i, a in enumerate(flat) for b in flat[i + 1 :]])

    # about as varied as eight prompts that each name another style
    styled = ["handwritten", "bold serif font, tilted", "cursive script, small", "single-stroke, italic",
              "messy handwriting, off center", "typewriter font, close-up", "handwritten, flat top, wide",
              "neatly handwritten, slightly tilted"]
    assert spread([NAIVE] * 8) > 0.7 * spread(styled)
