"""Off-label filters: the prompt check, the CLIP image filter (tiny random CLIP) and the replacement loop."""


import numpy as np
import pytest
from PIL import Image
from tiny_clip import build_tiny_clip
from tiny_embeddings import write_vectors

from odin.embeddings import Embedder
from odin.filter import (
    ClipFilter,
    Decision,
    FilterError,
    PromptCheck,
    _load_clip,
    decide,
)
from odin.hub import MissingWeightsError
from odin.prompts import LabelPrompts
from odin.prompts.checked import CheckedPrompts

LABELS = ["dog", "cat", "airplane"]


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    return build_tiny_clip(tmp_path_factory.mktemp("clip") / "tiny-clip")


@pytest.fixture(scope="module")
def words(tmp_path_factory):
    return Embedder(vectors=str(write_vectors(tmp_path_factory.mktemp("vec") / "v.bin")))


def noise(n, seed=0, size=40, mode="RGB"):
    rng = np.random.default_rng(seed)
    shape = (size, size, 3) if mode == "RGB" else (size, size)
    return [Image.fromarray(rng.integers(0, 256, shape, dtype=np.uint8), mode) for _ in range(n)]


# ---- the rule ------------------------------------------------------------------------------
def test_decide_names_the_closer_candidate_and_the_threshold():
    kept = decide("dog", np.array([0.3, 0.1]), ["dog", "cat"], threshold=0.2)
    assert kept.kept and kept.reason == "" and kept.best == "dog"
    closer = decide("dog", np.array([0.1, 0.3, 0.5]), ["dog", "cat", "helicopter"], None, frozenset({"helicopter"}))
    assert not closer.kept and closer.best == "helicopter"
    assert closer.reason == "closer to distractor 'helicopter' (0.500 > 0.100)"
    low = decide("dog", np.array([0.15, 0.1]), ["dog", "cat"], threshold=0.2)
    assert not low.kept and low.reason == "below threshold (0.150 < 0.200)"
    both = decide("dog", np.array([0.1, 0.3]), ["dog", "cat"], threshold=0.2)
    assert both.reason == "closer to 'cat' (0.300 > 0.100); below threshold (0.100 < 0.200)"
    assert both.record() == {"kept": False, "score": 0.1, "best": "cat", "best_score": 0.3, "reason": both.reason}


# ---- prompts -------------------------------------------------------------------------------
def test_prompt_check_drops_prompts_closer_to_another_label(words):
    check = PromptCheck(words)
    made = check({"dog": ["a photo of one dog", "a photo of one chair", "a sleeping dog on a wooden chair"],
                  "chair": ["a photo of one red chair"]})
    assert [d.kept for d in made["dog"]] == [True, False, True]
    assert made["dog"][1].best == "chair" and made["dog"][1].reason.startswith("closer to 'chair'")
    assert made["chair"][0].kept
    strict = PromptCheck(words, threshold=0.99)({"dog": ["a photo of one dog"], "chair": []})
    assert not strict["dog"][0].kept and "below threshold" in strict["dog"][0].reason and strict["chair"] == []


def test_checked_prompts_keep_passing_prompts_and_record_all(words):
    class Given:  # a generator that can give no more: dropped prompts are refilled from the kept ones
        gives_more = False

        def check(self, labels):
            pass

        def resolved(self):
            return {}

        def __call__(self, labels):
            yield LabelPrompts("dog", ["a photo of one dog", "a photo of one chair"], {"model": "m"})

    [out] = CheckedPrompts(Given(), PromptCheck(words), ["dog", "chair"])(["dog"])
    assert out.prompts == ["a photo of one dog"] * 2 and out.info["model"] == "m"
    assert [r["kept"] for r in out.info["prompt_check"]] == [True, False]
    assert out.info["prompt_check"][1]["prompt"] == "a photo of one chair"
    assert out.info["prompt_check_summary"]["refilled"] == 1
    with pytest.raises(FilterError, match="every prompt of label 'dog'"):
        list(CheckedPrompts(Given(), PromptCheck(words, threshold=2.0), ["dog", "chair"])(["dog"]))


def test_prompt_check_with_clips_text_tower(clip):
    check = PromptCheck(ClipFilter(str(clip), device="cpu"), label_template="a photo of a {label}")
    made = check({"dog": ["a photo of a dog", "a photo of a cat"], "cat": ["a photo of a cat"]})
    assert [d.kept for d in made["dog"]] == [True, False] and made["dog"][1].best == "cat"  # identical text wins
    with pytest.raises(ValueError, match="label_template"):
        PromptCheck(check.encoder, label_template="a photo")


# ---- images --------------------------------------------------------------------------------
def test_clip_filter_keeps_images_whose_own_label_wins(clip):
    filt = ClipFilter(str(clip), device="cpu", batch_size=3)
    images = noise(7) + noise(2, seed=1, mode="L")  # grey images (the glyph backend's) are fine
    preferred = [LABELS[i] for i in np.argmax(filt.embed_images(images) @ filt.embed(
        [f"a photo of a {label}" for label in LABELS]).T, axis=1)]
    for label in LABELS:
        made = filt(label, images, LABELS)
        assert len(made) == len(images)
        assert [d.kept for d in made] == [p == label for p in preferred]
        assert all(d.best == p for d, p in zip(made, preferred, strict=True))
    assert sum(d.kept for label in LABELS for d in filt(label, images, LABELS)) == len(images)  # one label each
    assert filt("dog", [], LABELS) == []


def test_clip_filter_is_deterministic_across_loads_and_batch_sizes(clip):
    images = noise(5)
    first = [d.score for d in ClipFilter(str(clip), device="cpu", batch_size=5)("dog", images, LABELS)]
    _load_clip.cache_clear()  # load the folder again
    again = [d.score for d in ClipFilter(str(clip), device="cpu", batch_size=2)("dog", images, LABELS)]
    np.testing.assert_allclose(first, again, atol=1e-5)


def test_clip_filter_threshold_and_distractors(clip):
    images = noise(4)
    alone = ClipFilter(str(clip), device="cpu")("dog", images, ["dog"])
    assert all(d.kept for d in alone)  # one candidate, no threshold: nothing to lose to
    high = ClipFilter(str(clip), threshold=1.01, device="cpu")("dog", images, ["dog"])
    assert not any(d.kept for d in high) and all("below threshold" in d.reason for d in high)
    with_distractors = ClipFilter(str(clip), distractors=["helicopter", "text", "blank image"], device="cpu")
    made = with_distractors("dog", images, ["dog"])
    assert {d.best for d in made} <= {"dog", "helicopter", "text", "blank image"}
    assert all(d.kept == (d.best == "dog") for d in made)
    assert all("distractor" in d.reason for d in made if not d.kept)


def test_clip_filter_errors(clip, tmp_path):
    with pytest.raises(MissingWeightsError, match=r"filter\.model"):
        ClipFilter(str(tmp_path / "no-clip"))
    with pytest.raises(MissingWeightsError, match=r"filter\.model"):
        ClipFilter("someone/uncached-clip")
    with pytest.raises(ValueError, match=r"filter\.template"):
        ClipFilter(str(clip), template="a photo")
    filt = ClipFilter(str(clip), distractors=["cat"], device="cpu")
    with pytest.raises(ValueError, match=r"filter\.distractors \['cat'\]"):
        filt.check(["dog", "cat"])
    with pytest.raises(ValueError, match="'horse' is not among"):
        filt("horse", noise(1), ["dog", "cat"])


# ---- the replacement loop ------------------------------------------------------------------
def keep_even(images):
    return [Decision("seven", x % 2 == 0, float(x), "seven" if x % 2 == 0 else "one", 0.0,
                     "" if x % 2 == 0 else "closer to 'one'") for x in images]
