"""Embeddings (word2vec file, sentence-transformers folder) and Algorithm 1's prompt diversification."""

import numpy as np
import pytest
from hydra.utils import instantiate
from omegaconf import OmegaConf
from tiny_embeddings import build_tiny_sentence_model, write_vectors

from odin.embeddings import Embedder, UnknownPhraseError
from odin.hub import MissingWeightsError
from odin.prompts import LabelPrompts
from odin.prompts.diversify import LIVING_MODIFIERS, NONLIVING_MODIFIERS, Diversified, insert_modifier
from odin.prompts.naive import NaivePrompts
from odin.prompts.template import TemplatePrompts


@pytest.fixture(scope="module")
def vectors(tmp_path_factory):
    return write_vectors(tmp_path_factory.mktemp("vec") / "tiny.bin")


@pytest.fixture(scope="module")
def sentence_model(tmp_path_factory):
    return build_tiny_sentence_model(tmp_path_factory.mktemp("st") / "tiny-st")


# ---- embeddings ------------------------------------------------------------------------
@pytest.mark.parametrize("suffix", [".bin", ".txt"])
def test_word_vectors_binary_and_text_give_unit_rows_with_the_expected_neighbours(tmp_path, suffix):
    path = write_vectors(tmp_path / f"v{suffix}")
    if suffix == ".txt":
        assert path.read_text().splitlines()[0].split()[1] == "8"  # really the text format
    rows = Embedder(vectors=str(path)).embed(["dog", "animal", "chair", "object"])
    assert rows.shape == (4, 8) and rows.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(rows, axis=1), 1.0, atol=1e-6)
    sim = rows @ rows.T
    assert sim[0, 1] > 0.8 and sim[2, 3] > 0.8 and sim[0, 2] < 0.3


def test_phrase_is_its_token_or_the_mean_of_known_words(vectors):
    emb = Embedder(vectors=str(vectors))
    kv_rows = emb.embed(["yorkshire", "terrier"])
    mean = kv_rows.sum(axis=0)
    mean /= np.linalg.norm(mean)
    # Unknown words ("miniature") are skipped; case and underscores do not matter.
    for phrase in ["yorkshire terrier", "Yorkshire_Terrier", "miniature yorkshire terrier"]:
        np.testing.assert_allclose(emb.embed([phrase])[0], mean, atol=1e-5)
    # A phrase the file holds as one token ("traffic_light") is that token; none of its words is known.
    assert emb.embed(["traffic light"])[0] @ emb.embed(["object"])[0] > 0.8
    # "man-made" is not a token: its hyphenated parts are
    np.testing.assert_allclose(emb.embed(["man-made"])[0], emb.embed(["man made"])[0], atol=1e-6)


def test_phrase_with_no_known_word_names_it_and_the_key(vectors):
    emb = Embedder(vectors=str(vectors), config_key="diversify")
    with pytest.raises(UnknownPhraseError, match=r"'chole bhature'.*diversify\.vectors"):
        emb.embed(["dog", "chole bhature"])


def test_missing_sources_fail_fast_naming_the_key(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"diversify\.vectors=.*nope\.bin"):
        Embedder(vectors=str(tmp_path / "nope.bin"), config_key="diversify")
    with pytest.raises(MissingWeightsError, match=r"diversify\.model"):
        Embedder(model=str(tmp_path / "no-model"), config_key="diversify")
    with pytest.raises(MissingWeightsError, match=r"diversify\.model"):
        Embedder(model="someone/uncached-model", config_key="diversify")
    with pytest.raises(ValueError, match="exactly one"):
        Embedder(config_key="diversify")


def test_sentence_model_loads_offline_from_its_folder(sentence_model):
    emb = Embedder(model=str(sentence_model))
    rows = emb.embed(["dog", "a photo of one chair", "zzz unknown words"])
    assert rows.shape == (3, 32)
    np.testing.assert_allclose(np.linalg.norm(rows, axis=1), 1.0, atol=1e-5)
    again = Embedder(model=str(sentence_model)).embed(["dog", "a photo of one chair", "zzz unknown words"])
    np.testing.assert_allclose(rows, again, atol=1e-6)
    assert not np.allclose(rows[0], rows[1])


# ---- Algorithm 1 -----------------------------------------------------------------------
def test_labels_are_classified_by_mean_similarity_and_recorded(vectors):
    div = Diversified(NaivePrompts(num_prompts=4), vectors=str(vectors), seed=0)
    made = {lp.label: lp for lp in div(["dog", "yorkshire terrier", "chair", "traffic_light"])}
    kinds = {label: lp.info["diversify"]["kind"] for label, lp in made.items()}
    assert kinds == {"dog": "living", "yorkshire terrier": "living", "chair": "nonliving",
                     "traffic_light": "nonliving"}
    dog = made["dog"].info["diversify"]
    assert dog["living_score"] > dog["nonliving_score"]
    assert dog["inner_prompts"] == ["a photo of one dog"] * 4 and dog["embedding"] == str(vectors)
    assert all(m in LIVING_MODIFIERS for m in dog["modifiers"])
    assert all(m in NONLIVING_MODIFIERS for m in made["chair"].info["diversify"]["modifiers"])
    for p, m in zip(made["dog"].prompts, dog["modifiers"], strict=True):
        assert p == f"a photo of one {m} dog"


def test_modifiers_are_deterministic_per_seed_label_and_prompt(vectors):
    inner = TemplatePrompts("a photo of one {label}, {style}", {"style": ["bold", "thin", "italic"]}, num_prompts=12)

    def run(labels, seed=0):
        return {lp.label: lp.prompts for lp in Diversified(inner, vectors=str(vectors), seed=seed)(labels)}

    both = run(["dog", "chair"])
    assert run(["chair"])["chair"] == both["chair"]  # a subset of labels changes nothing
    assert run(["dog", "chair"]) == both
    assert len(set(both["dog"])) > 3  # diverse
    assert run(["dog"], seed=1)["dog"] != both["dog"]


def test_custom_lists_and_errors(vectors):
    div = Diversified(NaivePrompts(), vectors=str(vectors), living_words=["chair"], nonliving_words=["dog"],
                      living_modifiers=["purple"], nonliving_modifiers=["tiny"])
    [made] = list(div(["hammer"]))  # the lists are config: "hammer" is near "chair", here the living list
    assert made.info["diversify"]["kind"] == "living" and made.prompts == ["a photo of one purple hammer"]
    with pytest.raises(ValueError, match=r"diversify\.living_modifiers"):
        Diversified(NaivePrompts(), vectors=str(vectors), living_modifiers=[])


def test_check_delegates_and_loads_the_embedding(vectors):
    seen = []

    class Inner:
        def check(self, labels):
            seen.append(list(labels))

        def __call__(self, labels):
            return (LabelPrompts(label, [f"{label} on grass"], {"model": "x"}) for label in labels)

    div = Diversified(Inner(), vectors=str(vectors))
    div.check(["dog", "yorkshire terrier"])
    assert seen == [["dog", "yorkshire terrier"]]
    with pytest.raises(UnknownPhraseError, match="chole bhature"):
        div.check(["chole bhature"])
    [made] = list(div(["dog"]))
    assert made.info["model"] == "x"  # the inner generator's provenance is kept
    assert made.prompts[0].endswith(" dog on grass") and made.prompts[0] != "dog on grass"


def test_hydra_builds_it_around_the_prompt_node(vectors, sentence_model):
    node = OmegaConf.create({
        "_target_": "odin.prompts.diversify.Diversified",
        "inner": {"_target_": "odin.prompts.naive.NaivePrompts", "template": "a photo of one {label}",
                  "num_prompts": 2},
        "model": str(sentence_model),
        "living_words": ["animal", "plant"],
        "seed": 3,
    })
    div = instantiate(node)
    [made] = list(div(["dog"]))
    assert len(made.prompts) == 2 and made.info["diversify"]["kind"] in {"living", "nonliving"}
    assert all(p.startswith("a photo of one ") and p.endswith(" dog") for p in made.prompts)
    # or around an already built prompt generator, as run.py would do with a `diversify` group
    wrapped = instantiate({k: v for k, v in node.items() if k != "inner"}, inner=NaivePrompts(num_prompts=2))
    assert [lp.prompts for lp in wrapped(["dog"])] == [made.prompts]


@pytest.mark.parametrize(
    ("prompt", "label", "modifier", "expected"),
    [
        ("a photo of one dog pet", "dog", "old", "a photo of one old dog pet"),
        ("An Apple on a table", "apple", "red", "A red Apple on a table"),
        ("a apple", "apple", "old", "an old apple"),
        ("Two Yorkshire Terriers playing", "yorkshire terrier", "sick", "Two sick Yorkshire Terriers playing"),
        ("a water lilly pond", "water_lilly", "wet", "a wet water lilly pond"),
        ("a category of things", "cat", "young", "young cat, a category of things"),  # not a mention
        ("a cat, then a cat", "cat", "male", "a male cat, then a cat"),  # the first mention only
    ],
)
def test_insert_modifier(prompt, label, modifier, expected):
    assert insert_modifier(prompt, label, modifier) == expected


def test_the_store_caches_diversified_prompts_with_their_decision(vectors, tmp_path):
    from odin.store import Store

    cfg = {"prompt": {"_target_": "odin.prompts.naive.NaivePrompts", "num_prompts": 3},
           "diversify": {"_target_": "odin.prompts.diversify.Diversified", "vectors": str(vectors)}}
    div = Diversified(NaivePrompts(num_prompts=3), vectors=str(vectors))
    key, made = Store(tmp_path).prompts(cfg, div, ["dog", "chair"])
    again_key, again = Store(tmp_path).prompts(cfg, div, ["dog", "chair"])  # read back: not asked again
    assert again_key == key and again["dog"].prompts == made["dog"].prompts
    assert again["chair"].info["diversify"]["kind"] == "nonliving"
    assert Store(tmp_path).prompts({**cfg, "diversify": None}, NaivePrompts(num_prompts=3), ["dog"])[0] != key
