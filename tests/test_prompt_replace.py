"""The prompt check asks the generator for replacements: the LLM (a real chat server on loopback), templates,
diversify around them; bounded rounds, every ask recorded, a failed ask fails only its label."""

from __future__ import annotations

import numpy as np
import pytest
from chat_server import ChatServer, Reply

from odin.embeddings import Embedder
from odin.filter import FilterError, PromptCheck
from odin.prompts import LabelPrompts
from odin.prompts.checked import CheckedPrompts
from odin.prompts.diversify import Diversified
from odin.prompts.llm import LLMPrompts
from odin.prompts.naive import NaivePrompts
from odin.prompts.template import TemplatePrompts

LABELS = ["airplanes", "helicopters"]
# Words that pull a prompt towards the other label: the paper's "a helicopter hovering over a mountain range"
OFF = "hovering rotor rotor rotor"


@pytest.fixture(scope="module")
def vectors(tmp_path_factory):
    """A word2vec text file: the two labels on their own axes, 'hovering'/'rotor' near helicopters, 'runway' near
    airplanes, the other words off both axes (so they pull a prompt towards neither label)."""
    rng = np.random.default_rng(0)
    axes = {"airplanes": np.eye(8)[0] * 3, "helicopters": np.eye(8)[1] * 3, "hovering": np.eye(8)[1] * 2,
            "rotor": np.eye(8)[1] * 2, "runway": np.eye(8)[0] * 2}
    table = dict(axes)
    for word in ["a", "an", "photo", "of", "one", "at", "on", "the", "sunset", "view", "seen", "in", "setting",
                 "number", "photo-realistic", "over", "city", "sky", "animal", "object", "old", "new", "red"]:
        table[word] = np.r_[0.0, 0.0, rng.normal(scale=0.2, size=6)]  # off both labels' axes
    path = tmp_path_factory.mktemp("vec") / "v.txt"
    path.write_text("\n".join([f"{len(table)} 8"] + [w + " " + " ".join(f"{x:.4f}" for x in v)
                                                     for w, v in table.items()]) + "\n")
    return str(path)


@pytest.fixture
def check(vectors):
    return PromptCheck(Embedder(vectors=vectors))


@pytest.fixture(autouse=True)
def env(monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)


def asked_for(body: dict) -> str:
    return "replacement" if len(body["messages"]) > 1 else "first"


def llm_reply(first_off: int, replacement: str = ""):
    """First ask per label: 10 prompts, the first `first_off` of them drifting to helicopters (airplanes only)."""
    def reply(body):
        first = body["messages"][0]["content"]
        label = "airplanes" if "airplanes" in first else "helicopters"
        if asked_for(body) == "replacement":
            return replacement if isinstance(replacement, Reply) else replacement or "\n".join(
                f"{i}. {label} on a runway at sunset, view {i}" for i in range(1, 6))
        off = first_off if label == "airplanes" else 0
        lines = [f"{i}. {label} {OFF} over a city, view {i}" if i <= off else f"{i}. {label} in the sky, view {i}"
                 for i in range(1, 11)]
        return "\n".join(lines)
    return reply


def checked(server, check, **kw) -> CheckedPrompts:
    llm = LLMPrompts(base_url=server.base_url, timeout=2.0, max_retries=0, concurrency=1)
    return CheckedPrompts(llm, check, LABELS, **kw)


def test_the_llm_is_asked_for_replacements_in_the_conversation(check):
    with ChatServer(llm_reply(first_off=3)) as server:
        made = {r.label: r for r in checked(server, check)(LABELS)}
    air = made["airplanes"]
    replacement = [b for b in server.requests if asked_for(b) == "replacement"]
    assert len(server.requests) == 3 and len(replacement) == 1  # helicopters needed none
    roles = [m["role"] for m in replacement[0]["messages"]]
    assert roles == ["user", "assistant", "user"]
    listing, ask = replacement[0]["messages"][1]["content"], replacement[0]["messages"][2]["content"]
    assert listing.splitlines()[0] == f"1. airplanes {OFF} over a city, view 1" and len(listing.splitlines()) == 10
    assert "3 more" in ask and f'"airplanes {OFF} over a city, view 2"' in ask and "view 4" not in ask
    # 7 kept from the first ask, then the first 3 good replacements; nothing repeated
    assert air.prompts == [f"airplanes in the sky, view {i}" for i in range(4, 11)] + \
        [f"airplanes on a runway at sunset, view {i}" for i in range(1, 4)]
    summary = air.info["prompt_check_summary"]
    assert (summary["kept"], summary["dropped"], summary["replaced"], summary["refilled"], summary["rounds"]) == \
        (7, 3, 3, 0, 1)
    assert [r["round"] for r in air.info["prompt_check"]] == [0] * 10 + [1] * 3
    [ask_record] = air.info["prompt_check_asks"]
    assert ask_record["asked"] == 3 and ask_record["got"] == 3 and ask_record["ask"] == ask
    assert "runway" in ask_record["reply"]
    assert made["helicopters"].info["prompt_check_asks"] == []
    assert air.info["replies"] and air.info["model"] == "gpt-3.5-turbo"  # the first ask's provenance is kept


def test_replacements_that_drift_too_are_checked_and_rounds_are_bounded(check):
    drifting = "\n".join(f"{i}. airplanes {OFF}, take {i}" for i in range(1, 4))
    with ChatServer(llm_reply(first_off=3, replacement=drifting)) as server:
        [air] = [r for r in checked(server, check, max_rounds=2)(LABELS) if r.label == "airplanes"]
    assert sum(asked_for(b) == "replacement" for b in server.requests) == 2  # max_rounds asks, then stop
    summary = air.info["prompt_check_summary"]
    assert summary["replaced"] == 0 and summary["rounds"] == 2 and summary["refilled"] == 3
    assert air.prompts[7:] == air.prompts[:3]  # refilled by repeating the kept ones in order
    assert [r["kept"] for r in air.info["prompt_check"] if r["round"] > 0] == [False] * 3  # round 2 gave nothing new
    second = [b for b in server.requests if asked_for(b) == "replacement"][1]["messages"]
    assert len(second[1]["content"].splitlines()) == 13  # the listing holds the first round's prompts too


def test_replace_off_or_zero_rounds_asks_nothing(check):
    for kw in ({"replace": False}, {"max_rounds": 0}):
        with ChatServer(llm_reply(first_off=3)) as server:
            [air] = [r for r in checked(server, check, **kw)(LABELS) if r.label == "airplanes"]
        assert len(server.requests) == 2 and air.info["prompt_check_summary"]["refilled"] == 3


def test_a_failed_replacement_ask_fails_that_label_only(check):
    with ChatServer(llm_reply(first_off=3, replacement=Reply(status=500))) as server:
        gen, got = checked(server, check)(LABELS), []
        with pytest.raises(FilterError, match=r"could not replace dropped prompts for 1 label.*\n  airplanes: "):
            for made in gen:
                got.append(made.label)
    assert got == ["helicopters"]  # made (and so cached by the store) before the error


def test_bad_replacement_template_fails_at_check():
    with pytest.raises(ValueError, match="prompt.replacement: bad placeholder"):
        LLMPrompts(replacement="{lable} again").check(["cat"])


def test_template_gives_its_next_prompts(check):
    template = TemplatePrompts("a photo of one {label} {where} {when}",
                               {"where": ["in the sky", "over a city", OFF],
                                "when": ["at dawn", "at noon", "at dusk", "in rain", "in fog"]}, num_prompts=6, seed=3)
    air = next(iter(CheckedPrompts(template, check, LABELS, max_rounds=5)(["airplanes"])))
    candidates = [template.prompt("airplanes", i) for i in range(60)]
    first = [p for p in candidates[:6] if "rotor" not in p]
    assert 0 < len(first) < 6  # seed 3 draws some off-label prompts first
    assert len(air.prompts) == 6 and air.prompts[: len(first)] == first
    replaced = air.prompts[len(first) :]
    positions = [candidates.index(p, 6) for p in replaced]  # the template's next prompts, in its order
    assert positions == sorted(positions) and all("rotor" not in p for p in replaced)
    summary = air.info["prompt_check_summary"]
    assert (summary["kept"], summary["replaced"], summary["refilled"]) == (len(first), 6 - len(first), 0)
    again = next(iter(CheckedPrompts(template, check, LABELS, max_rounds=5)(["airplanes"])))
    assert again.prompts == air.prompts and again.info == air.info  # deterministic


def test_diversify_passes_the_ask_through_and_goes_on_with_its_modifiers(check, vectors):
    words = {"living_words": ["animal"], "nonliving_words": ["object"], "living_modifiers": ["old"],
             "nonliving_modifiers": ["old", "new", "red"]}
    template = TemplatePrompts("a photo of one {label} {where}",
                               {"where": ["in the sky", "at sunset", "over a city", "view", f"{OFF}"]},
                               num_prompts=4, seed=1)
    div = Diversified(template, vectors=vectors, seed=5, **words)
    assert div.gives_more and not Diversified(NaivePrompts(), vectors=vectors, **words).gives_more
    air = next(iter(CheckedPrompts(div, check, LABELS, max_rounds=6)(["airplanes"])))
    kind = air.info["diversify"]["kind"]
    shown = [r["prompt"] for r in air.info["prompt_check"]]
    for i, prompt in enumerate(shown):  # prompt i of the label carries modifier i, across rounds
        inner = template.prompt("airplanes", i)
        assert prompt.replace(f"{div.modifier(kind, 'airplanes', i)} airplanes", "airplanes") == inner
    assert any(r["round"] > 0 for r in air.info["prompt_check"]) and "rotor" not in " ".join(air.prompts)


def test_naive_cannot_give_more_and_a_label_left_with_nothing_fails_in_a_short_line(check):
    gen = CheckedPrompts(NaivePrompts(template="a photo of {label} {context}", context=OFF, num_prompts=100), check,
                         LABELS)
    assert not gen.replace
    with pytest.raises(FilterError, match="every prompt of label 'airplanes'") as error:
        next(iter(gen(["airplanes"])))
    message = str(error.value)
    assert "; and 97 more)" in message and message.count("closer to 'helicopters'") == 3 and len(message) < 800


def test_labels_written_with_the_datasets_context(vectors):
    check = PromptCheck(Embedder(vectors=vectors), label_template="a {label} {context}", context="")
    assert check.anchor("water_lilly") == "a water lilly"  # no double space when there is no context word
    assert PromptCheck(check.encoder, label_template="a photo of a {label} {context}", context="digit").anchor(
        "four") == "a photo of a four digit"
    with pytest.raises(ValueError, match=r"prompt_check.label_template=.*bad placeholder 'kind'"):
        PromptCheck(check.encoder, label_template="a {label} {kind}")


def test_labels_the_encoder_cannot_tell_apart_are_warned_about(tmp_path, caplog):
    table = {"four": np.eye(4)[0], "five": np.eye(4)[0] + 0.01, "cat": np.eye(4)[1], "a": np.eye(4)[2]}
    path = tmp_path / "v.txt"
    path.write_text("\n".join(["4 4"] + [w + " " + " ".join(f"{x:.4f}" for x in v) for w, v in table.items()]))
    labels = ["four", "five", "cat"]
    gen = CheckedPrompts(NaivePrompts(), PromptCheck(Embedder(vectors=str(path)), label_template="a {label}"), labels)
    with caplog.at_level("WARNING", logger="odin.prompts.checked"):
        gen.check(labels)
    [warning] = [r.getMessage() for r in caplog.records]
    assert "1 label pair(s) are nearly the same" in warning and "'four'~'five' 1.00" in warning
    assert "cat" not in warning


@pytest.mark.parametrize("gives, asks", [([], 1), (["airplanes in the sky"], 5)])
def test_a_generator_that_runs_dry_stops_asking_one_that_repeats_itself_uses_its_rounds(check, gives, asks):
    class Dry:
        asked = 0
        gives_more = True

        def check(self, labels):
            pass

        def resolved(self):
            return {}

        def __call__(self, labels):
            for label in labels:
                yield LabelPrompts(label, [f"{label} {OFF}", f"{label} in the sky"])

        def more(self, label, shown, dropped, count):
            self.asked += 1
            return LabelPrompts(label, list(gives))  # nothing, or only what it gave already

    dry = Dry()
    air = next(iter(CheckedPrompts(dry, check, LABELS, max_rounds=5)(["airplanes"])))
    assert dry.asked == asks and air.prompts == ["airplanes in the sky"] * 2
    assert [a["got"] for a in air.info["prompt_check_asks"]] == [0] * asks


# ---- through run() and run.py -----------------------------------------------------------------
SMOKE = ["experiment=smoke", "task=formulate", "logger=none", "labels=[zero,seven]", "prompt=llm",
         "prompt.num_prompts=2"]


def digit_llm(replacement="1. zero on a runway"):
    def reply(body):
        if asked_for(body) == "replacement":
            return replacement
        label = "zero" if "zero" in body["messages"][0]["content"] else "seven"
        if label == "zero":
            return f"1. zero {OFF}\n2. zero in the sky"
        return "1. seven in the sky\n2. seven at sunset"
    return reply


@pytest.fixture(scope="module")
def digit_vectors(tmp_path_factory):
    table = {"zero": np.eye(8)[0] * 3, "seven": np.eye(8)[1] * 3, "hovering": np.eye(8)[1] * 2,
             "rotor": np.eye(8)[1] * 2, "runway": np.eye(8)[2]}
    for i, word in enumerate(["in", "the", "sky", "at", "sunset", "on", "a"]):
        table[word] = np.eye(8)[3 + i % 5]
    path = tmp_path_factory.mktemp("vec") / "digits.txt"
    path.write_text("\n".join([f"{len(table)} 8"] + [w + " " + " ".join(f"{x:.4f}" for x in v)
                                                     for w, v in table.items()]) + "\n")
    return str(path)


def test_a_run_asks_for_replacements_once_and_caches_them(compose, tmp_path, digit_vectors):
    from odin.run import run

    on = ["prompt_check=word2vec", f"prompt_check.vectors={digit_vectors}"]
    with ChatServer(digit_llm()) as server:
        overrides = [*SMOKE, f"prompt.base_url={server.base_url}", *on]
        first = run(compose(*overrides), output_dir=tmp_path / "a")
        assert len(server.requests) == 3  # two first asks, one replacement ask (zero)
        again = run(compose(*overrides), output_dir=tmp_path / "b")
    assert len(server.requests) == 3 and again["prompts"] == first["prompts"]
    assert first["prompts"] == {"zero": ["zero in the sky", "zero on a runway"],
                                "seven": ["seven in the sky", "seven at sunset"]}
    assert again["images"]["made"] == 0


def test_run_py_names_the_label_whose_replacement_ask_failed(tmp_path, digit_vectors):
    import json
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    with ChatServer(digit_llm(replacement=Reply(status=500))) as server:
        result = subprocess.run(
            [sys.executable, "run.py", *SMOKE, f"prompt.base_url={server.base_url}", "prompt.max_retries=0",
             "prompt_check=word2vec", f"prompt_check.vectors={digit_vectors}", f"paths.store={tmp_path / 'store'}",
             f"hydra.run.dir={tmp_path / 'run'}"],
            cwd=root, capture_output=True, text=True, timeout=300, env={**__import__("os").environ})
    assert result.returncode == 1, result.stderr[-2000:]
    assert "Traceback" not in result.stderr
    assert "could not replace dropped prompts for 1 label(s) (the others are cached)" in result.stderr
    assert "  zero: asking " in result.stderr and "for replacement prompts for 'zero'" in result.stderr
    [seven] = list((tmp_path / "store" / "prompts").glob("*/seven.json"))  # made before the error, kept
    assert json.loads(seven.read_text())["prompts"] == ["seven in the sky", "seven at sunset"]
    assert not list((tmp_path / "store" / "prompts").glob("*/zero.json"))
