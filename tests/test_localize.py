"""Localization: attention heatmaps on a tiny random-weight Stable Diffusion, masks, boxes, COCO/YOLO."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image, ImageDraw
from tiny_sd import build_tiny_sd, write_tokenizer_files

from odin.errors import UserError
from odin.localize.attention import (
    AttentionHeatmaps,
    LabelNotInPromptError,
    _LabelAttention,
    check_label_in_prompts,
    generate_with_heatmaps,
    label_token_positions,
)
from odin.localize.boxes import (
    check_threshold,
    heatmap_path,
    heatmap_to_mask,
    ink_mask,
    load_heatmap,
    mask_to_box,
    save_heatmap,
)
from odin.localize.export import masks_for, write_coco, write_yolo
from odin.localize.grid import heatmap_grid

WORDS = ["a", "photo", "of", "one", "cat", "golden", "retriever", "next", "to", "dog"]


# ---- token positions -------------------------------------------------------------------------
def word_tokenizer(folder: Path):
    """The tiny byte-level CLIP tokenizer plus BPE merges that make each of WORDS one token."""
    from transformers import CLIPTokenizer

    write_tokenizer_files(folder)
    vocab = json.loads((folder / "vocab.json").read_text())
    merges = []
    for word in WORDS:
        parts = [*word[:-1], word[-1] + "</w>"]
        while len(parts) > 1:
            merges.append(f"{parts[0]} {parts[1]}")
            parts = [parts[0] + parts[1], *parts[2:]]
            vocab.setdefault(parts[0], len(vocab))
    (folder / "vocab.json").write_text(json.dumps(vocab))
    (folder / "merges.txt").write_text("#version: 0.2\n" + "\n".join(dict.fromkeys(merges)) + "\n")
    return CLIPTokenizer.from_pretrained(folder, model_max_length=77)


@pytest.fixture(scope="module")
def words(tmp_path_factory):
    return word_tokenizer(tmp_path_factory.mktemp("word-tokenizer"))


@pytest.fixture(scope="module")
def chars(tmp_path_factory):
    from transformers import CLIPTokenizer

    folder = tmp_path_factory.mktemp("char-tokenizer")
    write_tokenizer_files(folder)
    return CLIPTokenizer.from_pretrained(folder, model_max_length=77)


def test_token_positions_single_multi_repeated_and_any_case(words):
    # <start> a photo of one cat <end>: the label is one token at position 5
    assert words.convert_ids_to_tokens(words("a photo of one cat").input_ids)[5] == "cat</w>"
    assert label_token_positions(words, "a photo of one cat", "cat") == [5]
    assert label_token_positions(words, "a photo of one golden retriever", "golden retriever") == [5, 6]
    assert label_token_positions(words, "a cat next to a cat", "cat") == [2, 6]  # every occurrence
    assert label_token_positions(words, "a photo of one Golden RETRIEVER", "golden retriever") == [5, 6]
    assert label_token_positions(words, "a photo of one cat", "CAT") == [5]
    # a word containing the label is another word: "cats" is not "cat"
    with pytest.raises(LabelNotInPromptError, match="'a photo of one cats'"):
        label_token_positions(words, "a photo of one cats", "cat")


def test_token_positions_with_the_byte_level_tokenizer(chars):
    # every character is a token, the word's last one marked </w>: "cat" is three tokens
    tokens = chars.convert_ids_to_tokens(chars("one cat").input_ids)
    assert tokens == ["<|startoftext|>", "o", "n", "e</w>", "c", "a", "t</w>", "<|endoftext|>"]
    assert label_token_positions(chars, "one cat", "cat") == [4, 5, 6]
    assert label_token_positions(chars, "cat, one cat", "Cat") == [1, 2, 3, 8, 9, 10]  # c a t</w> , o n e</w> c a t</w>


def test_a_label_beyond_the_token_limit_or_absent_names_the_prompt(words):
    long = "a photo of one dog " * 20 + "cat"  # "cat" is token 101: the text encoder never sees it
    with pytest.raises(LabelNotInPromptError, match="first 77 tokens"):
        label_token_positions(words, long, "cat")
    with pytest.raises(LabelNotInPromptError, match="prompt 'a photo of one dog'.*localize=none"):
        label_token_positions(words, "a photo of one dog", "cat")


def test_checking_all_prompts_up_front_names_every_bad_one(words):
    good = ["a photo of one cat", "a cat"]
    check_label_in_prompts(words, "cat", good)  # no error
    bad = [f"a photo of one dog {i}" for i in range(7)]
    with pytest.raises(LabelNotInPromptError, match=r"7 prompt\(s\): 'a photo of one dog 0';.*and 2 more"):
        check_label_in_prompts(words, "cat", good + bad + bad)


# ---- attention heatmaps on a tiny Stable Diffusion ------------------------------------------------
PROMPTS = ["a photo of one cat", "a cat next to a cat", "cat"]
SEEDS = [1, 2, 3]


@pytest.fixture(scope="module")
def pipe(tmp_path_factory):
    from diffusers import StableDiffusionPipeline

    folder = build_tiny_sd(tmp_path_factory.mktemp("weights") / "tiny-sd")
    pipe = StableDiffusionPipeline.from_pretrained(folder)
    pipe.set_progress_bar_config(disable=True)
    return pipe


def run(pipe, prompts=PROMPTS, steps=2, **kw):
    kw = {"height": 64, "width": 48, "guidance_scale": 7.5, **kw}
    generators = [torch.Generator().manual_seed(s) for s in SEEDS[: len(prompts)]]
    return pipe(prompt=prompts, generator=generators, num_inference_steps=steps, output_type="np", **kw).images


def cross_attention_names(unet) -> list[str]:
    return [n for n in unet.attn_processors if n.endswith("attn2.processor")]


def test_one_heatmap_per_image_at_the_image_size(pipe):
    generators = [torch.Generator().manual_seed(s) for s in SEEDS]
    images, heat = generate_with_heatmaps(pipe, PROMPTS, "cat", generators, num_inference_steps=2, height=64, width=48)
    assert [im.size for im in images] == [(48, 64)] * 3
    assert [h.shape for h in heat] == [(64, 48)] * 3
    assert all(h.dtype == np.float32 and h.min() == 0.0 and h.max() == 1.0 for h in heat)
    assert not np.allclose(heat[0], heat[1])  # each image its own map


def test_same_pixels_with_and_without_localization(pipe):
    originals = pipe.unet.attn_processors
    plain = run(pipe)
    with AttentionHeatmaps(pipe, "cat", PROMPTS) as maps:
        located = run(pipe)
        inside = pipe.unet.attn_processors
    assert maps.updates > 0
    assert np.array_equal(plain, located)  # bit for bit, not within a tolerance
    # only cross-attention was wrapped, and the very same processors are back afterwards
    wrapped = {n for n, p in inside.items() if isinstance(p, _LabelAttention)}
    assert wrapped == set(cross_attention_names(pipe.unet)) and len(wrapped) < len(inside)
    assert all(pipe.unet.attn_processors[n] is p for n, p in originals.items())


class ReferenceProbs:
    """Keeps every cross-attention probability tensor, computed by diffusers' own eager path."""

    def __init__(self, original, store):
        self.original, self.store = original, store

    def __call__(self, attn, hidden_states, encoder_hidden_states=None, attention_mask=None, **kw):
        out = self.original(attn, hidden_states, encoder_hidden_states=encoder_hidden_states)
        q = attn.head_to_batch_dim(attn.to_q(hidden_states))
        k = attn.head_to_batch_dim(attn.to_k(encoder_hidden_states))
        probs = attn.get_attention_scores(q, k)  # (batch * heads, pixels, keys)
        self.store.append(probs.view(hidden_states.shape[0], attn.heads, *probs.shape[1:]))
        return out


def test_maps_equal_a_brute_force_sum_over_layers_steps_and_heads_of_the_label_tokens(pipe):
    originals = pipe.unet.attn_processors
    kept: list[torch.Tensor] = []
    pipe.unet.set_attn_processor(
        {n: ReferenceProbs(p, kept) if n.endswith("attn2.processor") else p for n, p in originals.items()}
    )
    try:
        run(pipe, steps=3)
    finally:
        pipe.unet.set_attn_processor(originals)
    with AttentionHeatmaps(pipe, "cat", PROMPTS) as maps:
        run(pipe, steps=3)

    n, (lh, lw) = len(PROMPTS), maps.latent_size
    # "cat" in each prompt: the byte-level tokenizer splits it into c, a, t</w>
    tokens = [pipe.tokenizer.convert_ids_to_tokens(pipe.tokenizer(p).input_ids) for p in PROMPTS]
    cat = ["c", "a", "t</w>"]
    positions = [[i + j for i in range(len(t)) if t[i : i + 3] == cat for j in range(3)] for t in tokens]
    assert [len(p) for p in positions] == [3, 6, 3]
    expected = torch.zeros(n, lh, lw)
    for probs in kept:  # (2n, heads, pixels, keys): unconditional first, then conditional
        cond = probs[n:].mean(1)
        side = round(cond.shape[1] ** 0.5 * lh / (lh * lw) ** 0.5)
        per_image = torch.stack([cond[i][:, positions[i]].sum(-1) for i in range(n)])
        grid = per_image.view(n, 1, side, cond.shape[1] // side)
        expected += F.interpolate(grid, size=(lh, lw), mode="bilinear", align_corners=False)[:, 0]
    assert len(kept) == 3 * len(cross_attention_names(pipe.unet)) == maps.updates
    torch.testing.assert_close(maps.accumulator, expected, rtol=1e-4, atol=1e-6)


def test_memory_is_one_map_per_image_whatever_the_step_count(pipe):
    layers = len(cross_attention_names(pipe.unet))
    for steps in (2, 6):
        pointers: list[int] = []
        with AttentionHeatmaps(pipe, "cat", PROMPTS) as maps:

            def after_each_step(*_, maps=maps, pointers=pointers):
                pointers.append(maps.accumulator.data_ptr())

            hook = pipe.unet.register_forward_hook(after_each_step)
            run(pipe, steps=steps)
            hook.remove()
        assert maps.updates == steps * layers  # added as the steps ran
        assert tuple(maps.accumulator.shape) == (3, *maps.latent_size) == (3, 32, 24)
        assert len(pointers) == steps and len(set(pointers)) == 1  # the same buffer, added in place
        tensors = [v for v in vars(maps).values() if isinstance(v, torch.Tensor)]
        assert sorted(tuple(t.shape) for t in tensors) == [(3, 32, 24), (3, 77), (3, 77)]  # map, tokens (+ device copy)


def test_without_guidance_the_whole_batch_is_conditional(pipe):
    with AttentionHeatmaps(pipe, "cat", PROMPTS[:2]) as maps:
        run(pipe, prompts=PROMPTS[:2], guidance_scale=1.0)
    heat = maps.heatmaps()
    assert [h.shape for h in heat] == [(64, 48)] * 2 and all(h.max() == 1.0 for h in heat)


def test_a_prompt_without_the_label_fails_before_denoising_and_names_it(pipe):
    calls = []
    hook = pipe.unet.register_forward_pre_hook(lambda *_: calls.append(1))
    try:
        with pytest.raises(LabelNotInPromptError, match="prompt 'a photo of one dog'"):
            generate_with_heatmaps(pipe, ["a photo of one cat", "a photo of one dog"], "cat", None)
    finally:
        hook.remove()
    assert calls == [] and not any(isinstance(p, _LabelAttention) for p in pipe.unet.attn_processors.values())


def test_processors_are_restored_when_the_pipeline_fails(pipe):
    with pytest.raises(RuntimeError, match="boom"), AttentionHeatmaps(pipe, "cat", PROMPTS):
        raise RuntimeError("boom")
    assert not any(isinstance(p, _LabelAttention) for p in pipe.unet.attn_processors.values())


# ---- masks and boxes ------------------------------------------------------------------------------
def iou(a, b) -> float:
    from torchvision.ops import box_iou

    return float(box_iou(torch.tensor([a], dtype=torch.float), torch.tensor([b], dtype=torch.float))[0, 0])


def test_a_mask_gives_exactly_its_box():
    mask = np.zeros((40, 50), dtype=bool)
    mask[5:15, 3:23] = True  # rows 5..14, columns 3..22
    mask[30, 40] = True
    assert mask_to_box(mask) == (3, 5, 41, 31)
    mask[30, 40] = False
    assert mask_to_box(mask) == (3, 5, 23, 15) and iou(mask_to_box(mask), (3, 5, 23, 15)) == 1.0
    assert mask_to_box(np.zeros((4, 4), dtype=bool)) is None


def test_thresholds_fraction_and_otsu():
    yy, xx = np.mgrid[0:60, 0:80]
    heat = np.exp(-((xx - 50) ** 2 + (yy - 20) ** 2) / (2 * 6.0**2)).astype(np.float32)
    fraction = heatmap_to_mask(heat, 0.5)  # a Gaussian is above half its peak within 1.18 sigma
    assert np.array_equal(fraction, heat >= 0.5)
    assert mask_to_box(fraction) == (43, 13, 58, 28)
    otsu = heatmap_to_mask(heat, "otsu")
    assert otsu.any() and otsu[20, 50] and not otsu[0, 0] and otsu.sum() > fraction.sum()
    assert not heatmap_to_mask(np.zeros((8, 8)), 0.4).any()  # nothing attended: no box, not the frame


@pytest.mark.parametrize("bad", [0, 1.5, -0.2, "max", True])
def test_a_bad_threshold_names_the_config_key(bad):
    with pytest.raises(ValueError, match="localize.threshold"):
        check_threshold(bad)
    assert check_threshold("OTSU") == "otsu" and check_threshold("0.3") == 0.3


def glyph_like(size=(56, 64), seed=0) -> tuple[Image.Image, tuple[int, int, int, int]]:
    """A dark '7' on light paper with sensor noise (`size` is PIL's (width, height)), and the ink's exact box."""
    ink = Image.new("L", size, 0)
    ImageDraw.Draw(ink).line([(12, 10), (40, 10), (22, 50)], fill=255, width=5)
    m = np.asarray(ink) > 0
    rng = np.random.default_rng(seed)
    gray = np.where(m, 30.0, 228.0) + rng.normal(0, 3, m.shape)
    return Image.fromarray(np.clip(gray, 0, 255).astype(np.uint8)), mask_to_box(m)


def test_ink_mask_box_is_the_inks_box():
    image, box = glyph_like()
    assert iou(mask_to_box(ink_mask(image)), box) == 1.0
    assert iou(mask_to_box(ink_mask(image.convert("RGB"), background=228)), box) == 1.0


def test_heatmap_files_round_trip_and_stay_out_of_the_imagefolder(tmp_path):
    from torchvision.datasets import ImageFolder

    heat = np.linspace(0, 1, 64 * 48, dtype=np.float32).reshape(64, 48)
    (tmp_path / "cat").mkdir()
    Image.new("L", (48, 64)).save(tmp_path / "cat" / "p000_i000.png")
    path = save_heatmap(heatmap_path(tmp_path / "cat" / "p000_i000.png"), heat)
    assert path == tmp_path / "cat" / "p000_i000.heat.npz"
    assert np.abs(load_heatmap(path) - heat).max() <= 1 / 510 + 1e-7
    assert len(ImageFolder(tmp_path)) == 1  # the heatmap is not taken for a training image


# ---- export ---------------------------------------------------------------------------------------
def glyph_folder(root: Path) -> tuple[list[dict], dict[str, tuple]]:
    """An ImageFolder of glyph-like images with their ink masks saved as heatmaps."""
    rows, boxes = [], {}
    for label in ("seven", "one"):
        for i in range(2):
            image, box = glyph_like(seed=i)
            if label == "one":  # a different place and shape
                image = image.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
                w = image.width
                box = (w - box[2], box[1], w - box[0], box[3])
            file_name = f"{label}/p000_i{i:03d}.png"
            (root / label).mkdir(parents=True, exist_ok=True)
            image.save(root / file_name)
            save_heatmap(heatmap_path(root / file_name), ink_mask(image).astype(np.float32))
            rows.append({"file_name": file_name, "label": label, "prompt": f"a {label}"})
            boxes[file_name] = box
    return rows, boxes


@pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")  # inside pycocotools' decode
def test_coco_export_loads_in_pycocotools_with_the_ink_boxes(tmp_path):
    from pycocotools.coco import COCO

    rows, boxes = glyph_folder(tmp_path)
    masks = masks_for(tmp_path, rows, threshold=0.4)
    out = write_coco(rows, masks, tmp_path / "annotations.json", labels=["one", "seven"])
    coco = COCO(str(out))
    assert {c["name"]: c["id"] for c in coco.loadCats(coco.getCatIds())} == {"one": 1, "seven": 2}
    assert len(coco.getImgIds()) == 4 and len(coco.getAnnIds()) == 4
    for image in coco.loadImgs(coco.getImgIds()):
        (ann,) = coco.loadAnns(coco.getAnnIds(imgIds=image["id"]))
        x, y, w, h = ann["bbox"]
        assert iou((x, y, x + w, y + h), boxes[image["file_name"]]) == 1.0
        row = rows[image["id"] - 1]
        assert coco.loadCats(ann["category_id"])[0]["name"] == row["label"]
        assert np.array_equal(coco.annToMask(ann).astype(bool), masks[image["id"] - 1])
        assert ann["area"] == int(masks[image["id"] - 1].sum())


def test_yolo_export_writes_normalised_boxes_beside_the_images(tmp_path):
    rows, boxes = glyph_folder(tmp_path)
    paths = write_yolo(rows, masks_for(tmp_path, rows), tmp_path)
    assert (tmp_path / "classes.txt").read_text() == "seven\none\n"
    for row, path in zip(rows, paths, strict=True):
        assert path == tmp_path / row["file_name"].replace(".png", ".txt")
        cls, cx, cy, w, h = path.read_text().split()
        x0, y0, x1, y1 = boxes[row["file_name"]]
        assert int(cls) == ["seven", "one"].index(row["label"])
        np.testing.assert_allclose(
            [float(v) for v in (cx, cy, w, h)],
            [(x0 + x1) / 2 / 56, (y0 + y1) / 2 / 64, (x1 - x0) / 56, (y1 - y0) / 64],
            atol=1e-6,
        )


def test_missing_heatmap_says_how_to_make_it(tmp_path):
    rows, _ = glyph_folder(tmp_path)
    heatmap_path(tmp_path / rows[1]["file_name"]).unlink()
    with pytest.raises(UserError, match="p000_i001.png was made without a heatmap.*localize=attention"):
        masks_for(tmp_path, rows)


def test_heatmap_grid_draws_every_image(tmp_path):
    rows, _ = glyph_folder(tmp_path)
    out = heatmap_grid(tmp_path, rows, tmp_path / "grid" / "heatmaps.png", per_label=2)
    with Image.open(out) as im:
        width, height = im.size
        colours = len(im.convert("RGB").getcolors(1 << 20))
    assert out.suffix == ".png" and width > 200 and height > 200
    assert colours > 50  # images under a colour map, not an empty figure
