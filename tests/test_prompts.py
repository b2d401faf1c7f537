import pytest

from odin.prompts.naive import NaivePrompts
from odin.prompts.template import TemplatePrompts

BANKS = {"style": ["bold", "thin", "italic", "serif"], "view": ["centered", "tilted"], "setting": ["on paper"]}
TEMPLATE = "a photo of one {label} {context}, {style}, {view}, {setting}"


def test_naive_is_the_papers_template():
    [made] = list(NaivePrompts(context="pet", num_prompts=2)(["beagle"]))
    assert made.label == "beagle" and made.prompts == ["a photo of one beagle pet"] * 2
    [bare] = list(NaivePrompts(context="")(["seven"]))
    assert bare.prompts == ["a photo of one seven"]


def test_template_is_deterministic_diverse_and_prefix_stable():
    gen = TemplatePrompts(TEMPLATE, BANKS, context="digit", num_prompts=12, seed=3)
    [a] = list(gen(["seven"]))
    [b] = list(TemplatePrompts(TEMPLATE, BANKS, context="digit", num_prompts=12, seed=3)(["seven"]))
    assert a.prompts == b.prompts
    assert all(p.startswith("a photo of one seven digit, ") for p in a.prompts)
    assert len(set(a.prompts)) >= 4
    [short] = list(TemplatePrompts(TEMPLATE, BANKS, context="digit", num_prompts=5, seed=3)(["seven"]))
    assert short.prompts == a.prompts[:5]  # asking for more prompts keeps the first ones
    [other] = list(TemplatePrompts(TEMPLATE, BANKS, context="digit", num_prompts=12, seed=4)(["seven"]))
    assert other.prompts != a.prompts


def test_template_errors_name_what_is_missing(compose):
    from odin.validate import validate

    with pytest.raises(ValueError, match="lighting"):
        TemplatePrompts("{label}, {lighting}", BANKS)
    with pytest.raises(ValueError, match="label"):
        TemplatePrompts("a photo", BANKS)
    with pytest.raises(ValueError, match="num_prompts"):
        TemplatePrompts(TEMPLATE, BANKS, num_prompts=0)
    with pytest.raises(ValueError, match="prompt.num_prompts=-1"):  # every count is checked once, in validate
        validate(compose("prompt=naive", "prompt.num_prompts=-1"))
    with pytest.raises(ValueError, match="must contain {label}"):
        NaivePrompts(template="a photo").check(["dog"])
