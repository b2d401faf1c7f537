"""Issue 16 wired into runs: diversify and the prompt check in the prompt key, the image filter as a store stage.

The image filter's scores come from a fake scorer (every candidate gets the same content-hashed number in
[0, 1), so a threshold drops a known share; or one candidate, chosen by the image's content, scores above
the others, so an image is closer to another label by a rule the test knows) or the tiny random CLIP
(meaningless scores: mechanics only).
"""

import hashlib
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from hydra.utils import instantiate
from omegaconf import OmegaConf

from odin import keys
from odin.errors import UserError
from odin.filter import FilterError
from odin.run import run
from odin.store import Store

ROOT = Path(__file__).resolve().parents[1]
SMOKE = ["experiment=smoke", "task=formulate", "logger=none"]  # 3 digits x 2 prompts x 4 images


def content_score(image) -> float:
    return int.from_bytes(hashlib.blake2b(image.tobytes(), digest_size=4).digest(), "little") / 2**32


class FakeScorer:
    """ClipFilter's interface for filter_images: a tie between all candidates at a content-hashed score."""

    def __init__(self, distractors=()):
        self.distractors, self.scored = list(distractors), 0

    def candidates(self, labels):
        return [*labels, *(d for d in self.distractors if d not in labels)]

    def check(self, labels):
        pass

    def scores(self, images, candidates):
        self.scored += len(images)
        return np.array([[content_score(im)] * len(candidates) for im in images], dtype=np.float32)


class PreferringScorer(FakeScorer):
    """Each image scores 0.9 for one candidate, picked by its content hash, and 0.1 for the others."""

    def scores(self, images, candidates):
        self.scored += len(images)
        rows = np.full((len(images), len(candidates)), 0.1, dtype=np.float32)
        for i, im in enumerate(images):
            rows[i, preferred(im, candidates)] = 0.9
        return rows


def preferred(image, candidates) -> int:
    return int(content_score(image) * 2**32) % len(candidates)


@pytest.fixture
def fake(monkeypatch):
    scorer = FakeScorer()
    monkeypatch.setattr("odin.context.image_filter", lambda cfg: None if cfg.filter.name == "none" else scorer)
    return scorer


def digit_vectors(path: Path) -> Path:
    """A word2vec text file that knows the digits, the template's words and Algorithm 1's word lists."""
    from odin.prompts.words import LIVING_WORDS, NONLIVING_WORDS

    rng = np.random.default_rng(0)
    table = {"zero": np.eye(8)[0] * 3, "seven": np.eye(8)[1] * 3}  # the labels far apart; the rest is small noise
    for word in ["one", "a", "photo", "of", "digit", *LIVING_WORDS, *NONLIVING_WORDS]:
        table[word] = rng.normal(scale=0.3, size=8)
    lines = [f"{len(table)} 8"] + [w + " " + " ".join(f"{x:.4f}" for x in v) for w, v in table.items()]
    path.write_text("\n".join(lines) + "\n")
    return path


def filtered_rows(metrics) -> list[dict]:
    record = Path(metrics["filter"]["folder"]) / "metadata.jsonl"
    return [json.loads(line) for line in record.read_text().splitlines()]


# ---- the prompt key ------------------------------------------------------------------------
def test_prompt_key_is_unchanged_when_off_and_follows_every_setting_when_on(compose, tmp_path):
    plain = OmegaConf.to_container(compose(*SMOKE), resolve=True)
    labels = ["zero", "one"]
    assert keys.prompt_extras(plain, labels) == {}
    template = instantiate(plain["prompt"])
    assert keys.prompt_config(plain["prompt"], template, keys.prompt_extras(plain, labels)) == \
        keys.prompt_config(plain["prompt"], template)  # an existing store stays valid
    vectors = str(tmp_path / "v.txt")

    def key(*overrides):
        p = OmegaConf.to_container(compose(*SMOKE, *overrides), resolve=True)
        prompt = p["prompt"]
        return keys.config_hash(keys.prompt_config(prompt, instantiate(prompt), keys.prompt_extras(p, labels)))

    off = key()
    on = key("diversify=word2vec", f"diversify.vectors={vectors}")
    assert on != off
    assert key("diversify=word2vec", f"diversify.vectors={vectors}", "diversify.limit=10") != on
    assert key("diversify=word2vec", f"diversify.vectors={vectors}", "diversify.living_modifiers=[wet]") != on
    assert key("diversify=word2vec", f"diversify.vectors={vectors}", "diversify.batch_size=3") == on  # runtime only
    check = key("prompt_check=word2vec", f"prompt_check.vectors={vectors}")
    assert check not in (on, off)
    assert key("prompt_check=word2vec", f"prompt_check.vectors={vectors}", "prompt_check.threshold=0.1") != check
    p = OmegaConf.to_container(compose(*SMOKE, "prompt_check=word2vec", f"prompt_check.vectors={vectors}"),
                               resolve=True)
    assert keys.prompt_extras(p, ["zero", "one"]) != keys.prompt_extras(p, ["zero", "seven"])  # the other labels
    assert p["prompt_check"]["context"] == "digit" and p["prompt_check"]["label_template"] == "a {label} {context}"
    number = OmegaConf.to_container(compose(*SMOKE, "prompt_check=word2vec", f"prompt_check.vectors={vectors}",
                                            "dataset.context=number"), resolve=True)
    assert keys.prompt_extras(number, labels) != keys.prompt_extras(p, labels)  # the check's own part holds it


def test_replacement_settings_are_in_the_prompt_key_only_when_replacements_are_asked_for(compose, tmp_path):
    labels, check = ["zero", "one"], ["prompt_check=word2vec", f"prompt_check.vectors={tmp_path / 'v.txt'}"]

    def key(*overrides):
        p = OmegaConf.to_container(compose(*SMOKE, "prompt=llm", *overrides), resolve=True)
        prompt = p["prompt"]
        return keys.config_hash(keys.prompt_config(prompt, instantiate(prompt), keys.prompt_extras(p, labels)))

    ask = "prompt.replacement='{label}: {missing} more, not {dropped}'"
    assert key(ask) == key()  # check off: the LLM is never asked for replacements (older stores stay valid)
    on = key(*check)
    assert key(*check, ask) != on and key(*check, "prompt_check.max_rounds=3") != on
    off = key(*check, "prompt_check.replace=false")
    assert off != on
    assert key(*check, "prompt_check.replace=false", ask, "prompt_check.max_rounds=3") == off
    assert key(*check, "prompt_check.max_rounds=0") == off  # no rounds: nothing asked, the same prompts


def test_diversified_and_checked_prompts_are_cached_under_their_own_key(compose, tmp_path):
    vectors = digit_vectors(tmp_path / "digits.txt")
    smoke = [*SMOKE, "labels=[zero,seven]"]  # not "one": the template's "a photo of one ..." names it
    plain_run = run(compose(*smoke), output_dir=tmp_path / "plain")
    on = ["diversify=word2vec", f"diversify.vectors={vectors}", "prompt_check=word2vec",
          f"prompt_check.vectors={vectors}"]
    metrics = run(compose(*smoke, *on), output_dir=tmp_path / "on")
    folders = sorted(p for p in (tmp_path / "store" / "prompts").iterdir() if p.is_dir())
    assert len(folders) == 2  # the plain prompts' folder is untouched, the new ones have their own
    for label in ("zero", "seven"):
        made = json.loads(next(f for f in folders if (f / "config.json").read_text().count("diversify")).joinpath(
            f"{label}.json").read_text())
        assert made["info"]["diversify"]["inner_prompts"] == plain_run["prompts"][label]
        verdicts, summary = made["info"]["prompt_check"], made["info"]["prompt_check_summary"]
        first = [v for v in verdicts if v["round"] == 0]
        assert len(first) == 2 and summary["kept"] + summary["dropped"] == 2
        assert len(verdicts) == 2 + sum(a["got"] for a in made["info"]["prompt_check_asks"])
        assert summary["dropped"] == 0 or summary["rounds"] > 0  # the template was asked for its next prompts
        assert len(made["prompts"]) == 2  # replaced, then refilled from the kept ones
        assert {v["prompt"] for v in verdicts if v["kept"]} >= set(made["prompts"])
        assert all(v["reason"] for v in verdicts if not v["kept"])
        assert metrics["prompts"][label] == made["prompts"]
    again = run(compose(*smoke, *on), output_dir=tmp_path / "again")
    assert again["prompts"] == metrics["prompts"] and again["images"]["made"] == 0


def test_a_label_left_without_prompts_fails_naming_it(compose, tmp_path):
    vectors = digit_vectors(tmp_path / "digits.txt")
    with pytest.raises(FilterError, match="every prompt of label 'zero'"):
        run(compose(*SMOKE, "prompt_check=word2vec", f"prompt_check.vectors={vectors}",
                    "prompt_check.threshold=1.0"), output_dir=tmp_path / "run")


# ---- the image filter ----------------------------------------------------------------------
def test_filter_drops_replaces_and_records(compose, tmp_path, fake):
    overrides = [*SMOKE, "filter=clip", "filter.model=unused", "filter.threshold=0.4", "filter.max_rounds=12"]
    metrics = run(compose(*overrides), output_dir=tmp_path / "run")
    f = metrics["filter"]
    assert f["dropped"] > 0 and f["kept"] == 24 and f["judged"] == 24 + f["replacements_made"]
    assert f["dropped"] == f["replacements_made"]  # each dropped image was replaced by one new one
    record = filtered_rows(metrics)
    assert len(record) == f["judged"] and sum(r["kept"] for r in record) >= 24
    assert all(r["reason"].startswith("below threshold") for r in record if not r["kept"])
    assert all(r["score"] >= 0.4 for r in record if r["kept"])
    assert {r["filter_round"] for r in record} == set(range(f["rounds"]))
    assert all("extra_round" in r for r in record if r["filter_round"] > 0)
    exported = (Path(metrics["dataset"]) / "metadata.jsonl").read_text().splitlines()
    assert len(exported) == 24 and all(json.loads(r)["filter_score"] >= 0.4 for r in exported)
    # The same config again: nothing made, nothing scored, the same images kept.
    fake.scored = 0
    again = run(compose(*overrides), output_dir=tmp_path / "again")
    assert fake.scored == 0 and again["images"]["made"] == 0 and again["filter"]["replacements_made"] == 0
    assert (Path(again["dataset"]) / "metadata.jsonl").read_text().splitlines() == exported


def test_an_image_closer_to_another_label_is_dropped_and_replaced(compose, tmp_path, monkeypatch):
    from odin.store import open_image

    scorer = PreferringScorer()
    monkeypatch.setattr("odin.context.image_filter", lambda cfg: scorer)
    labels = ["zero", "seven"]
    metrics = run(compose(*SMOKE, f"labels=[{','.join(labels)}]", "filter=clip", "filter.model=unused",
                          "filter.max_rounds=12"), output_dir=tmp_path / "run")  # no threshold: closeness alone
    f, record = metrics["filter"], filtered_rows(metrics)
    folder = Path(metrics["images"]["folder"])
    for row in record:  # the rule the scorer follows, applied here to each image file
        other = labels[preferred(open_image(folder / row["file_name"]), labels)]
        assert row["kept"] == (other == row["label"]) and row["best"] == other, row
        if not row["kept"]:
            assert row["reason"] == f"closer to '{other}' (0.900 > 0.100)"
    assert len(record) > 16 and f["dropped"] > 0 and f["kept"] == 16 and f["dropped"] == f["replacements_made"]
    assert f["dropped_by_label"] == {label: sum(not r["kept"] and r["label"] == label for r in record)
                                     for label in labels if any(r["label"] == label and not r["kept"] for r in record)}
    exported = [json.loads(line) for line in (Path(metrics["dataset"]) / "metadata.jsonl").read_text().splitlines()]
    assert len(exported) == 16 and {r["label"] for r in exported} == set(labels)


def test_a_new_threshold_scores_only_new_images(compose, tmp_path, fake):
    base = [*SMOKE, "filter=clip", "filter.model=unused", "filter.max_rounds=12"]
    first = run(compose(*base, "filter.threshold=0.3"), output_dir=tmp_path / "a")
    fake.scored = 0
    second = run(compose(*base, "filter.threshold=0.5"), output_dir=tmp_path / "b")
    assert second["images"]["made"] == 0  # the run's own images are reused ...
    assert fake.scored <= second["filter"]["replacements_made"] < second["filter"]["judged"]  # ... and not rescored
    assert second["filter"]["folder"] != first["filter"]["folder"]
    assert second["filter"]["dropped"] >= first["filter"]["dropped"]


def test_filter_off_changes_nothing(compose, tmp_path, fake):
    plain = run(compose(*SMOKE), output_dir=tmp_path / "a")
    assert "filter" not in plain and fake.scored == 0
    assert not (tmp_path / "store" / "filtered").exists()


def test_a_label_that_keeps_failing_is_named(compose, tmp_path, fake):
    with pytest.raises(FilterError, match=r"kept only \d+ of 8 images of label 'zero' after 2 round") as error:
        run(compose(*SMOKE, "filter=clip", "filter.model=unused", "filter.threshold=0.999", "filter.max_rounds=2"),
            output_dir=tmp_path / "run")
    record = Path(str(error.value).rsplit("Every score: ", 1)[1])  # the failure's record, to see why
    rows = [json.loads(line) for line in record.read_text().splitlines()]
    assert len(rows) > 24 and {r["filter_round"] for r in rows} == {0, 1} and not all(r["kept"] for r in rows)


def test_filter_with_shards_is_refused(compose, tmp_path):
    with pytest.raises(UserError, match="num_shards"):
        run(compose(*SMOKE, "filter=clip", "filter.model=unused", "num_shards=2"), output_dir=tmp_path / "run")


@pytest.mark.slow
def test_run_py_prints_a_filter_error_as_one_line(tmp_path):
    from tiny_clip import build_tiny_clip

    clip = build_tiny_clip(tmp_path / "clip")
    result = subprocess.run(
        [sys.executable, "run.py", *SMOKE, f"paths.store={tmp_path / 'store'}", f"hydra.run.dir={tmp_path / 'run'}",
         "filter=clip", f"filter.model={clip}", "filter.threshold=0.999", "filter.max_rounds=1"],
        cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 1, result.stderr[-2000:]
    errors = [line for line in result.stderr.splitlines() if "Error" in line]
    assert len(errors) == 1 and "image filter kept only" in errors[0] and "filter.threshold" in errors[0]
    assert "Traceback" not in result.stderr
    assert Store(tmp_path / "store").root.joinpath("filtered", ".scores").exists()  # the scores are kept


def test_other_counts_keep_other_images_under_another_key(compose, tmp_path, fake):
    base = [*SMOKE, "filter=clip", "filter.model=unused", "filter.threshold=0.4", "filter.max_rounds=12", "post=blur"]
    four = run(compose(*base), output_dir=tmp_path / "a")
    two = run(compose(*base, "diffusion.images_per_prompt=2"), output_dir=tmp_path / "b")
    assert two["filter"]["kept"] == 12 and two["filter"]["folder"] != four["filter"]["folder"]
    assert two["post"]["folder"] != four["post"]["folder"]  # post never reads the other run's choice
    kept = {r["seed"] for r in filtered_rows(two) if r["kept"]}
    exported = [json.loads(line) for line in (Path(two["dataset"]) / "metadata.jsonl").read_text().splitlines()]
    assert len(exported) == 12 and {r["seed"] for r in exported} <= kept
