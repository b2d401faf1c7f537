"""LLM prompts against a real chat-completions server on loopback, through the real openai client."""

from __future__ import annotations

import json
import threading
import time

import pytest
from chat_server import ChatServer, Reply, label_of, numbered
from hydra.errors import ConfigCompositionException
from hydra.utils import instantiate
from omegaconf.errors import ConfigKeyError

from odin.prompts.llm import PAPER_QUERY, LLMPrompts, PromptError
from odin.prompts.parse import names_label, parse_prompts
from odin.run import run

KEY = "sk-test-secret-4242"
FAST = {"retry-after-ms": "5"}  # the client honours it, so retry tests need no 0.5 s backoff


@pytest.fixture(autouse=True)
def env(monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)


def llm(server, **kw) -> LLMPrompts:
    kw = {"timeout": 1.0, "max_retries": 2, "num_prompts": 10, **kw}
    return LLMPrompts(base_url=server.base_url, **kw)


def by_label(results):
    return {r.label: r for r in results}


# ---- parsing real reply shapes --------------------------------------------------------
REPLIES = {
    "numbered": "Sure! Here are 3 prompts:\n\n1. A cat on a sofa\n2) A cat in the rain\n3. A cat at dawn\n\n"
    "Let me know if you need more!",
    "bullets": "Here you go:\n- A cat on a sofa\n* A cat in the rain\n• A cat at dawn\nEnjoy!",
    "quoted": 'Of course.\n\n"A cat on a sofa"\n"A cat in the rain"\n“A cat at dawn”\n\nHappy creating!',
    "json": 'Here is JSON:\n```json\n["A cat on a sofa", "A cat in the rain", "A cat at dawn"]\n```\nDone.',
    "json_objects": '{"prompts": [{"title": "Sofa", "prompt": "A cat on a sofa"}, '
    '{"prompt": "A cat in the rain"}, {"prompt": "A cat at dawn"}]}',
    "bold_titles": '1. **Sofa**: "A cat on a sofa"\n2. **Rain**: "A cat in the rain"\n'
    "3. **Dawn:**\n   A cat at dawn\n\nThese should work well.",
    "prompt_n": "Prompt 1: A cat on a sofa\nPrompt 2: A cat in the rain\nPrompt 3: A cat at dawn",
    "plain_lines": "Here are some ideas:\nA cat on a sofa\nA cat in the rain\nA cat at dawn",
}


@pytest.mark.parametrize("shape", sorted(REPLIES))
def test_parse_reply_shapes(shape):
    got = parse_prompts(REPLIES[shape])
    if shape == "bold_titles":  # a quoted prompt wins over its title; an unquoted one keeps it
        assert got == ["A cat on a sofa", "A cat in the rain", "Dawn: A cat at dawn"]
    else:
        assert got == ["A cat on a sofa", "A cat in the rain", "A cat at dawn"]


def test_parse_no_list_keeps_lines_for_the_label_check():
    assert parse_prompts("") == []
    refusal = "I'm sorry, I can't help with that."
    assert parse_prompts(refusal) == [refusal] and not names_label(refusal, "cat")
    assert parse_prompts('{"error": 3}') == ['{"error": 3}']  # JSON without strings: just a line


@pytest.mark.parametrize(
    "prompt, label, expected",
    [
        ("A photo of an airplane over the sea", "airplanes", True),
        ("A helicopter hovering over the city", "airplanes", False),  # the paper's neighbouring class
        ("An American Pit Bull Terrier on a beach", "american_pit_bull_terrier", True),
        ("A pit bull terrier on a beach", "american_pit_bull_terrier", False),
        ("Two fluffy puppies playing", "puppy", True),
        ("A bowl of chicken tikka masala", "chicken_tikka_masala", True),
        ("The digit 7 written in ink", "7", True),
        ("The digit 17 written in ink", "7", False),
        ("A catalog page", "cat", False),
    ],
)
def test_names_label(prompt, label, expected):
    assert names_label(prompt, label) is expected


# ---- the generator against the server -------------------------------------------------
def test_paper_query_one_request_per_label_and_provenance():
    with ChatServer() as server:
        results = by_label(llm(server)(["Abyssinian", "Bombay", "beagle"]))
    assert sorted(results) == ["Abyssinian", "Bombay", "beagle"]
    assert len(server.requests) == 3
    for label, r in results.items():
        assert len(r.prompts) == 10 and len(set(r.prompts)) == 10
        assert all(names_label(p, label) for p in r.prompts)
        assert r.prompts[0] == f"A photo-realistic {label} seen in setting number 1."  # quotes stripped
        assert r.info["query"] == (
            "Can you recommend 10 simple prompts for image creation? "
            f"I want to generate photo-realistic {label} images with txt2img model"
        )
        assert r.info["model"] == r.info["served_model"] == "gpt-3.5-turbo"
        assert r.info["replies"] == [numbered(label)] and r.info["asks"] == 1
        assert KEY not in json.dumps(r.info)
    body = server.requests[0]
    assert body["model"] == "gpt-3.5-turbo" and body["temperature"] == 1.0
    assert body["messages"] == [{"role": "user", "content": PAPER_QUERY.format(label=label_of(body), num_prompts=10)}]
    assert server.auth == [f"Bearer {KEY}"] * 3  # the key travels only in the header


def test_prompts_missing_the_label_are_dropped_and_asked_for_again():
    def reply(body):
        if len(body["messages"]) == 1:  # first ask: 6 good, a neighbouring class, a duplicate
            good = [f"{i}. An airplane at an airport, view {i}" for i in range(1, 7)]
            bad = ["7. A helicopter over a city", "8. A hot air balloon at dawn", "9. A kite on a beach"]
            return "\n".join([*good, bad[0], bad[1], bad[2], "10. an airplane at an airport, VIEW 1!"])
        return "\n".join(f"- Airplanes in formation, shot {i}" for i in range(1, 6))

    with ChatServer(reply) as server:
        [r] = llm(server)(["airplanes"])
    assert len(server.requests) == 2
    followup = server.requests[1]["messages"]
    assert [m["role"] for m in followup] == ["user", "assistant", "user"]
    assert "6 of those" in followup[2]["content"] and "4 more" in followup[2]["content"]
    assert '"airplanes"' in followup[2]["content"]
    assert len(r.prompts) == 10 and all(names_label(p, "airplanes") for p in r.prompts)
    assert r.prompts[6:] == [f"Airplanes in formation, shot {i}" for i in range(1, 5)]
    assert r.info["rejected"] == ["A helicopter over a city", "A hot air balloon at dawn", "A kite on a beach"]
    assert r.info["asks"] == 2


def test_a_label_no_prompt_names_fails_that_label_only_after_bounded_asks():
    def reply(body):
        label = label_of(body)
        return numbered(label) if label == "cat" else "1. A cat on grass\n2. A kitten on grass"

    with ChatServer(reply) as server:
        got = []
        with pytest.raises(PromptError, match=r"1 of 2 labels.*\n  dog: no prompt names the label after 3 asks "
                                              r"\(raise prompt.max_asks, or set prompt.require_label=false"):
            for r in llm(server, max_asks=3)(["cat", "dog"]):
                got.append(r.label)  # the store caches these as they come
    assert got == ["cat"]
    assert sum(label_of(b) == "dog" for b in server.requests) == 3


def eight_of_ten(body):
    """8 prompts naming the label, then a neighbouring class twice: every reply, every ask."""
    label = label_of(body)
    named = [f"{i}. A {label} in a sunny garden, view {i}" for i in range(1, 9)]
    return "\n".join([*named, "9. A helicopter over a city", "10. A hot air balloon at dawn"])


def test_eight_of_ten_naming_the_label_are_asked_again_then_repeated_with_their_own_seeds(caplog):
    from odin.store import prompt_units

    with ChatServer(eight_of_ten) as server:
        [r] = llm(server, max_asks=3)(["airplanes"])
    assert len(server.requests) == 3  # asked again, up to max_asks, before repeating
    named = [f"A airplanes in a sunny garden, view {i}" for i in range(1, 9)]
    assert r.prompts == [*named, named[0], named[1]]  # the kept ones in order, then repeated from the first
    assert r.info["refilled"] == 2 and r.info["asks"] == 3 and r.info["require_label"] is True
    assert r.info["rejected"] == ["A helicopter over a city", "A hot air balloon at dawn"] * 3
    assert "airplanes: 8 of 10 prompts name the label after 3 asks; repeating them to 10" in caplog.text
    units = prompt_units({"airplanes": r}, seed=0, n=18)  # the store's units: (label, prompt, copy)
    assert len(units) == 10 and [u.occurrence for u in units[8:]] == [1, 1]
    seeds = [s for u in units for s in u.seeds]
    assert len(set(seeds)) == 10 * 18  # each copy of a repeated prompt has its own 18 images


def test_require_label_false_uses_every_prompt_of_the_reply_as_it_comes():
    with ChatServer(eight_of_ten) as server:
        [r] = llm(server, require_label=False)(["airplanes"])
    assert len(server.requests) == 1  # ten prompts came: no second ask, as the paper
    assert r.prompts[8:] == ["A helicopter over a city", "A hot air balloon at dawn"]  # kept, in place
    assert r.prompts[:8] == [f"A airplanes in a sunny garden, view {i}" for i in range(1, 9)]
    assert r.info["unnamed"] == ["A helicopter over a city", "A hot air balloon at dawn"]
    assert r.info["refilled"] == 0 and r.info["rejected"] == [] and r.info["require_label"] is False


def test_require_label_false_asks_again_only_for_a_short_reply_and_fails_on_none():
    replies = iter(["1. A dog at dawn\n2. A cat at noon", "Sure!\n\n- A dog by a lake"])
    with ChatServer(lambda body: next(replies)) as server:
        [r] = llm(server, require_label=False, num_prompts=4, max_asks=2)(["dog"])
    assert len(server.requests) == 2 and "2 of those" in server.requests[1]["messages"][2]["content"]
    assert r.prompts == ["A dog at dawn", "A cat at noon", "A dog by a lake", "A dog at dawn"]
    assert r.info["refilled"] == 1 and r.info["unnamed"] == ["A cat at noon"]
    with ChatServer(lambda body: "") as server:
        with pytest.raises(PromptError, match="dog: the replies held no prompt after 2 asks"):
            list(llm(server, require_label=False, max_asks=2)(["dog"]))


def test_429_then_200_is_retried_by_the_client():
    calls = []

    def reply(body):
        calls.append(time.monotonic())
        return Reply(status=429, headers=FAST) if len(calls) == 1 else numbered(label_of(body))

    with ChatServer(reply) as server:
        [r] = llm(server)(["cat"])
    assert len(server.requests) == 2 and len(r.prompts) == 10


def test_500_is_retried_within_the_bound_then_fails_the_label():
    with ChatServer(lambda body: Reply(status=500, headers=FAST)) as server:
        with pytest.raises(PromptError, match="cat: .*500"):
            list(llm(server, max_retries=2)(["cat"]))
    assert len(server.requests) == 3  # one try + max_retries


def test_timeout_is_retried():
    def reply(body):
        return Reply(numbered("cat"), delay=1.5 if len(server.requests) == 1 else 0.0)

    with ChatServer(reply) as server:
        [r] = llm(server, timeout=0.3, max_retries=1)(["cat"])
    assert len(server.requests) == 2 and len(r.prompts) == 10


def test_timeouts_past_the_bound_fail_the_label():
    with ChatServer(lambda body: Reply(numbered("cat"), delay=1.0)) as server:
        with pytest.raises(PromptError, match="cat: timed out after 1 retries"):
            list(llm(server, timeout=0.2, max_retries=1)(["cat"]))
    assert len(server.requests) == 2


def test_garbage_body_and_garbage_text_are_asked_again():
    def reply(body):
        n = len(server.requests)
        if n == 1:
            return Reply(raw=b"<html>502 Bad Gateway</html>")
        if n == 2:
            return "I'm sorry, but as an AI I cannot browse the internet."
        return numbered(label_of(body))

    with ChatServer(reply) as server:
        [r] = llm(server, max_asks=3)(["cat"])
    assert len(server.requests) == 3 and len(r.prompts) == 10
    assert r.info["replies"][0].startswith("<unreadable response")


def test_concurrency_is_bounded_and_results_come_as_ready():
    lock, state, others_done = threading.Lock(), {"now": 0, "max": 0, "done": 0}, threading.Event()
    labels = ["slow", "a", "b", "c", "d", "e"]

    def reply(body):
        label = label_of(body)
        with lock:
            state["now"] += 1
            state["max"] = max(state["max"], state["now"])
        if label == "slow":  # held until the other worker has answered every other label
            others_done.wait(5)
            time.sleep(0.3)
        else:
            time.sleep(0.05)
        with lock:
            state["now"] -= 1
            state["done"] += label != "slow"
            if state["done"] == len(labels) - 1:
                others_done.set()
        return numbered(label)

    with ChatServer(reply) as server:
        order = [r.label for r in llm(server, concurrency=2)(labels)]
    assert state["max"] == 2
    assert sorted(order) == sorted(labels) and order[-1] == "slow"


def test_missing_key_fails_before_any_request(monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY")
    gen = LLMPrompts()  # api.openai.com
    with pytest.raises(PromptError, match="export OPENAI_API_KEY"):
        gen.check(["cat"])
    with ChatServer() as server:  # a local server that takes no key: fine without one
        LLMPrompts(base_url=server.base_url).check(["cat"])
        monkeypatch.setenv("OPENAI_BASE_URL", server.base_url)  # the environment's address counts too
        [r] = LLMPrompts(timeout=1.0)(["cat"])
    assert server.auth == ["Bearer none"] and len(r.prompts) == 10


def test_401_is_fatal_with_the_fix():
    with ChatServer(lambda body: Reply(status=401, content="Incorrect API key")) as server:
        with pytest.raises(PromptError, match="refused the API key.*OPENAI_API_KEY") as err:
            list(llm(server, concurrency=1)(["a", "b", "c", "d"]))
    assert len(server.requests) <= 2  # no retry; at most the one label a free worker had started
    assert KEY not in str(err.value)


def test_bad_templates_fail_at_check_before_any_request():
    with pytest.raises(ValueError, match="must contain"):
        LLMPrompts(query="ten prompts please").check(["cat"])
    with pytest.raises(ValueError, match="bad placeholder"):
        LLMPrompts(query="prompts for {label} in {style}").check(["cat"])


def test_chatgpt_config_is_the_papers_and_takes_no_key(compose):
    gen = instantiate(compose("~experiment", "prompt=chatgpt").prompt)  # the embedded one asks for 100
    assert gen.model == "gpt-3.5-turbo" and gen.num_prompts == 10 and gen.base_url is None
    assert gen.query.format(label="beagle", num_prompts=10) == (
        "Can you recommend 10 simple prompts for image creation? "
        "I want to generate photo-realistic beagle images with txt2img model"
    )
    with pytest.raises((ConfigCompositionException, ConfigKeyError)):
        compose("prompt=chatgpt", "prompt.api_key=sk-oops")  # the key has no place in a config
    cfg = compose("prompt=llm", "prompt.base_url=http://127.0.0.1:9/v1", "prompt.model=llama3")
    assert (cfg.prompt.base_url, cfg.prompt.model) == ("http://127.0.0.1:9/v1", "llama3")


def test_chatgpt_takes_the_replies_as_they_come_and_llm_checks_them(compose):
    from omegaconf import OmegaConf

    from odin import keys

    chat, checked = compose("prompt=chatgpt").prompt, compose("prompt=llm").prompt
    assert chat.require_label is False and instantiate(chat).require_label is False
    assert checked.require_label is True and instantiate(checked).require_label is True

    def key(node):
        return keys.config_hash(keys.prompt_config(OmegaConf.to_container(node, resolve=True), instantiate(node)))

    assert key(compose("prompt=llm", "prompt.require_label=false").prompt) != key(checked)  # other prompts


# ---- through the store and the whole pipeline -----------------------------------------
PETS = ["Abyssinian", "American Bulldog", "American Pit Bull Terrier", "Basset Hound", "Beagle", "Bengal",
        "Birman", "Bombay", "Boxer", "British Shorthair", "Chihuahua", "Egyptian Mau", "English Cocker Spaniel",
        "English Setter", "German Shorthaired", "Great Pyrenees", "Havanese", "Japanese Chin", "Keeshond",
        "Leonberger", "Maine Coon", "Miniature Pinscher", "Newfoundland", "Persian", "Pomeranian", "Pug",
        "Ragdoll", "Russian Blue", "Saint Bernard", "Samoyed", "Scottish Terrier", "Shiba Inu", "Siamese",
        "Sphynx", "Staffordshire Bull Terrier", "Wheaten Terrier", "Yorkshire Terrier"]  # fmt: skip


def test_store_asks_once_per_label_37_labels(compose, tmp_path):
    from omegaconf import OmegaConf

    from odin.store import Store

    def ask(server, **overrides):
        cfg = compose("prompt=llm", f"prompt.base_url={server.base_url}", "prompt.num_prompts=10",
                      *(f"prompt.{k}={v}" for k, v in overrides.items()))  # fmt: skip
        plain = OmegaConf.to_container(cfg.prompt, resolve=True)
        return Store(tmp_path / "store").prompts(plain, instantiate(cfg.prompt), PETS)

    with ChatServer() as first:
        key, made = ask(first)
        assert len(first.requests) == 37 and len(made) == 37
        assert ask(first)[0] == key and len(first.requests) == 37  # the rerun asks nothing
    # Another server address and other runtime settings (not in the cache key): still nothing asked.
    with ChatServer() as second:
        key2, again = ask(second, concurrency=8, timeout=5, max_retries=1, max_asks=2)
    assert second.requests == [] and key2 == key
    assert {k: v.prompts for k, v in again.items()} == {k: v.prompts for k, v in made.items()}
    assert again["Pug"].info["replies"] == [numbered("Pug")]  # the raw reply is kept
    stored = "".join(p.read_text() for p in (tmp_path / "store").rglob("*.json"))
    assert KEY not in stored and "Can you recommend 10 simple prompts" in stored


def test_pipeline_with_llm_prompts_never_asks_twice(compose, tmp_path):
    overrides = ["experiment=smoke", "logger=none", "task=formulate", "prompt=llm", "prompt.num_prompts=2"]
    with ChatServer() as server:
        first = run(compose(*overrides, f"prompt.base_url={server.base_url}"), output_dir=tmp_path / "a")
        assert len(server.requests) == 3  # zero, one, seven
        again = run(compose(*overrides, f"prompt.base_url={server.base_url}"), output_dir=tmp_path / "b")
    assert len(server.requests) == 3 and again["prompts"] == first["prompts"]
    assert first["prompts"]["seven"] == [f"A photo-realistic seven seen in setting number {i}." for i in (1, 2)]
    assert again["images"]["made"] == 0 and again["images"]["reused"] == first["images"]["made"] > 0


def test_out_of_quota_is_fatal_not_retried_per_label():
    body = json.dumps({"error": {"message": "You exceeded your current quota", "code": "insufficient_quota"}})
    quota = Reply(status=429, raw=body.encode(), headers=FAST)
    with ChatServer(lambda b: quota) as server:
        with pytest.raises(PromptError, match="out of quota"):
            list(llm(server, concurrency=1, max_retries=2)(["a", "b", "c", "d"]))
    assert len(server.requests) <= 6  # the client's 3 tries for "a" (and "b" if already started), not 12
