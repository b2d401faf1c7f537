"""Caption prompts: BLIP-2 captions of a dataset's real training images, subject word -> label.

The paper captioned real training images with BLIP-2 (blip2-opt-2.7b) and replaced the coarse
subject ("a dog lying on a couch") with the class ("a beagle lying on a couch"). Captions that name
no subject word get the label added, so every prompt names its label. Any transformers
image-text-to-text model works (BLIP, BLIP-2, ...), from the hub cache or a local folder.
"""

from __future__ import annotations

import logging
import random
import re

from odin.errors import ConfigError, MissingSplitError
from odin.hub import require_weights
from odin.prompts import LabelPrompts
from odin.prompts.parse import dedup_key

log = logging.getLogger(__name__)



def replace_subject(caption: str, label: str, subjects: list[str], fallback: str = "{label}, {caption}") -> str:
    """Put `label` where the caption's first subject word is (all its occurrences, plural too)."""
    caption = " ".join(caption.split())
    forms = {s.lower(): _plural_pattern(s.lower()) for s in subjects}
    first = None
    for subject, pattern in forms.items():
        m = re.search(pattern, caption, re.I)
        if m and (first is None or m.start() < first[1]):
            first = (subject, m.start())
    if first is None:
        return fallback.format(label=label, caption=caption).strip(" ,")
    text = re.sub(forms[first[0]], lambda _: label, caption, flags=re.I)
    # "a dog" -> "an Abyssinian", "an animal" -> "a beagle"
    return re.sub(rf"\b([Aa])n? (?={re.escape(label)}\b)", lambda m: _article(m.group(1), label), text)


def _plural_pattern(word: str) -> str:
    stem = re.escape(word[:-1]) + "(?:y|ies)" if word.endswith("y") else re.escape(word) + "(?:s|es)?"
    return rf"\b{stem}\b"


def _article(a: str, label: str) -> str:
    return a + ("n " if label[:1].lower() in "aeiou" else " ")


class CaptionPrompts:
    gives_more = True

    # device and batch_size change speed, not captions: odin.keys.PROMPT_IGNORED leaves them out of the key.

    def __init__(
        self,
        dataset,
        model: str = "Salesforce/blip2-opt-2.7b",
        subjects: list[str] = ("dog", "cat", "animal", "pet", "food", "dish", "object"),
        fallback: str = "{label}, {caption}",
        num_prompts: int = 10,
        max_images: int = 30,
        max_new_tokens: int = 30,
        num_beams: int = 1,
        dtype: str = "auto",
        device: str = "auto",
        batch_size: int = 8,
    ):
        if not hasattr(dataset, "train_images"):  # a config node, when built with _recursive_=False
            from hydra.utils import instantiate

            dataset = instantiate(dataset)
        for key, value in (("num_prompts", num_prompts), ("max_images", max_images), ("batch_size", batch_size)):
            if value < 1:
                raise ConfigError(f"prompt.{key}={value} must be at least 1")
        if "{label}" not in fallback or "{caption}" not in fallback:
            raise ConfigError(f"prompt.fallback={fallback!r} must contain {{label}} and {{caption}}")
        self.dataset, self.model, self.subjects, self.fallback = dataset, model, list(subjects), fallback
        self.num_prompts, self.max_images = num_prompts, max_images
        self.max_new_tokens, self.num_beams, self.dtype = max_new_tokens, num_beams, dtype
        self.device, self.batch_size = device, batch_size
        self._loaded = None
        self._next: dict[str, int] = {}  # label -> position in its image order where more() goes on

    def check(self, labels: list[str]) -> None:
        name = getattr(self.dataset, "name", type(self.dataset).__name__)
        unknown = [label for label in labels if label not in self.dataset.classes]
        if unknown:
            raise ConfigError(f"prompt=caption captions real images of each label, but dataset {name} has no "
                             f"class {unknown}: choose labels from dataset.classes")  # fmt: skip
        try:
            self.dataset.train_images(labels[0]) if labels else None
        except MissingSplitError as e:
            raise MissingSplitError(
                f"prompt=caption captions the real training images of each label, and dataset {name} has none "
                f"({e}). Use prompt=naive, prompt=template or prompt=chatgpt with this dataset."
            ) from e
        require_weights(self.model, config_key="prompt.model", what="captioning model")

    def __call__(self, labels: list[str]):
        self.check(labels)
        for label in labels:
            yield self.prompts(label)

    def prompts(self, label: str) -> LabelPrompts:
        captions, used, prompts = self._caption_from(label, 0, self.num_prompts, set())
        if not captions:
            raise MissingSplitError(f"prompt=caption: dataset has no training images of '{label}'")
        prompts = prompts[: self.num_prompts]
        repeated = self.num_prompts - len(prompts)
        if repeated > 0:
            # Few images or look-alike captions: repeat captions so every class still gets
            # num_prompts x images_per_prompt images (class balance), and say so.
            log.warning("caption prompts: %s: %d distinct captions from %d images; repeating %d",
                        label, len(prompts), len(used), repeated)  # fmt: skip
            prompts = [prompts[i % len(prompts)] for i in range(self.num_prompts)]
        info = {"model": self.model, "captions": captions, "images": used, "repeated": max(repeated, 0)}
        return LabelPrompts(label, prompts, info)

    def more(self, label: str, shown: list[str], dropped: list[str], count: int) -> LabelPrompts:
        """Captions of the label's next images (up to max_images in all), for prompts the prompt check dropped."""
        start = self._next.get(label, 0)
        captions, used, prompts = self._caption_from(label, start, count, {dedup_key(p) for p in shown})
        return LabelPrompts(label, prompts[:count], {"captions": captions, "images": used})

    def _caption_from(self, label: str, start: int, want: int, seen: set[str]):
        """Caption the label's images from position `start` of its fixed order, a batch at a time, until
        `want` prompts new to `seen` are made or max_images are used: (captions, image indices, new prompts)."""
        images = self.dataset.train_images(label)
        # A fixed order per label (not per run seed), spread over the whole class.
        order = list(range(len(images)))
        random.Random(f"caption:{label}").shuffle(order)
        order = order[: self.max_images]
        captions, used, prompts = [], [], []
        for begin in range(start, len(order), self.batch_size):
            batch = order[begin : begin + self.batch_size]
            for index, caption in zip(batch, self.caption([images[i] for i in batch]), strict=True):
                captions.append(caption)
                used.append(index)
                prompt = replace_subject(caption, label, self.subjects, self.fallback)
                if dedup_key(prompt) not in seen:
                    seen.add(dedup_key(prompt))
                    prompts.append(prompt)
            if len(prompts) >= want:
                break
        self._next[label] = start + len(used)
        return captions, used, prompts

    def caption(self, images) -> list[str]:
        processor, model = self._load()
        import torch

        inputs = processor(images=[im.convert("RGB") for im in images], return_tensors="pt").to(model.device)
        inputs["pixel_values"] = inputs["pixel_values"].to(model.dtype)
        with torch.inference_mode():
            out = model.generate(**inputs, max_new_tokens=self.max_new_tokens, num_beams=self.num_beams)
        return [text.strip() for text in processor.batch_decode(out, skip_special_tokens=True)]

    def _device_dtype(self) -> tuple[str, str]:
        from odin.device import resolve_device

        device = str(resolve_device(self.device))
        dtype = self.dtype
        if dtype == "auto":
            dtype = "float16" if device.startswith("cuda") else "float32"
        return device, dtype

    def resolved(self) -> dict:
        """dtype as it will really be used: float16 and float32 captions are different data (odin.keys)."""
        return {"dtype": self._device_dtype()[1]}

    def _load(self):
        if self._loaded is None:
            import torch
            from transformers import AutoModelForImageTextToText, AutoProcessor

            path = require_weights(self.model, config_key="prompt.model", what="captioning model")
            device, dtype = self._device_dtype()
            processor = AutoProcessor.from_pretrained(path)
            model = AutoModelForImageTextToText.from_pretrained(path, dtype=getattr(torch, dtype))
            self._loaded = processor, model.to(device).eval()
        return self._loaded
