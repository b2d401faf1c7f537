"""The real text-to-image backend: any diffusers text-to-image pipeline (SD 1.5, SD 2.1, SDXL, ...).

One pipeline per process: it is loaded on the first call (not in __init__ or check, so composing,
checking and `--help` stay light) and kept in a module-level slot, so every label of a run, and
every job of a sweep run in one process, reuses it; a different model replaces it (one in memory).

Each image gets its own CPU torch.Generator seeded with the store's per-image seed: the initial
noise is then the same on any device and in any batch, so batch size and sharding do not change
an image beyond float noise.
"""

from __future__ import annotations

import contextlib
import gc
import logging
from pathlib import Path
from typing import Any

from PIL import Image

from odin.device import resolve_device
from odin.errors import ConfigError, UserError
from odin.generate import GeneratedImage
from odin.hub import MissingWeightsError, require_weights

log = logging.getLogger(__name__)

DTYPES = {
    "float32": "float32",
    "fp32": "float32",
    "float16": "float16",
    "fp16": "float16",
    "bfloat16": "bfloat16",
    "bf16": "bfloat16",
}
BUILTIN_ATTENTION = ("sdpa", "eager", "xformers")

_loaded: tuple[tuple, Any] | None = None  # (load settings, pipeline): the one pipeline of this process


class DiffusersGenerator:
    cache_version = 0  # bumped when the same config starts to make other images (odin.keys.images_config)
    parallel = False  # a GPU pipeline (or a CPU one with its own threads) is never forked

    def __init__(
        self,
        model: str,
        steps: int = 50,
        guidance_scale: float = 7.5,
        negative_prompt: str | None = None,
        scheduler: str | None = None,
        height: int | None = None,
        width: int | None = None,
        images_per_prompt: int = 18,
        prompts_per_label: int = 10,  # read by the prompt config (prompt.num_prompts), not here
        safety_checker: bool = True,
        safety_retries: int = 3,
        dtype: str = "auto",
        batch_size: int = 6,
        device: str = "auto",
        attention: str = "sdpa",
        compile: bool = False,
        channels_last: bool = False,
    ):
        if batch_size < 1 or images_per_prompt < 1 or safety_retries < 0:
            raise ConfigError("diffusion.batch_size and images_per_prompt must be >= 1, safety_retries >= 0")
        if dtype != "auto" and dtype not in DTYPES:
            raise ConfigError(f"diffusion.dtype={dtype}: use auto or one of {sorted(DTYPES)}")
        self.model = model
        self.steps = steps
        self.guidance_scale = guidance_scale
        self.negative_prompt = negative_prompt
        self.scheduler = scheduler
        self.height = height
        self.width = width
        self.images_per_prompt = images_per_prompt
        self.safety_checker = safety_checker
        self.safety_retries = safety_retries
        self.dtype = dtype
        self.batch_size = batch_size
        self.device = device
        self.attention = attention
        self.compile = compile
        self.channels_last = channels_last

    # ---- fail fast -------------------------------------------------------------------
    def check(self, labels: list[str]) -> None:
        """Weights, then names: each in about a second, before any model is loaded."""
        path = require_weights(self.model, config_key="diffusion.model", what="diffusion pipeline")
        if Path(path).is_dir() and not (Path(path) / "model_index.json").exists():
            raise MissingWeightsError(
                f"diffusion.model={self.model} has no model_index.json, so it is not a diffusers "
                "pipeline folder. Point it at the folder `save_pretrained` or `hf "
                "download <id>` wrote (the one holding model_index.json, unet/, vae/, ...)."
            )
        if self.scheduler is not None:
            import diffusers

            cls = getattr(diffusers, self.scheduler, None)
            if not (isinstance(cls, type) and issubclass(cls, diffusers.SchedulerMixin)):
                raise ConfigError(
                    f"diffusion.scheduler={self.scheduler} is not a diffusers scheduler class "
                    "(e.g. DPMSolverMultistepScheduler, EulerDiscreteScheduler, DDIMScheduler); "
                    "null keeps the model's own."
                )
        if self.attention not in BUILTIN_ATTENTION:
            from diffusers.models.attention_dispatch import AttentionBackendName

            names = [b.value for b in AttentionBackendName if not b.value.startswith("_")]
            if self.attention not in {b.value for b in AttentionBackendName}:
                raise ConfigError(f"diffusion.attention={self.attention}: use one of {[*BUILTIN_ATTENTION, *names]}")

    def check_heatmaps(self, prompts: dict[str, list[str]]) -> None:
        """localize=attention: a UNet to take cross-attention from, and each label among the tokens of
        every one of its prompts. Reads the pipeline's config and tokenizer only, before any image."""
        import diffusers

        from odin.localize.attention import LabelNotInPromptError, check_label_in_prompts

        self.check([])
        components = diffusers.DiffusionPipeline.load_config(self.model)
        if "unet" not in components:
            raise ConfigError(
                f"localize=attention needs a UNet pipeline (Stable Diffusion 1.x, 2.x, XL); diffusion.model="
                f"{self.model} has none (transformer denoisers use joint attention, not cross-attention maps). "
                "Use localize=none with this model."
            )
        if _loaded is not None and _loaded[0] == self._settings():
            tokenizer = _loaded[1].tokenizer
        else:  # the tokenizer alone, of the class the pipeline loads: the run may never need the pipeline
            import transformers

            library, name = components.get("tokenizer") or ("transformers", "AutoTokenizer")
            cls = getattr(transformers, name, None) if library == "transformers" else None
            tokenizer = (cls or transformers.AutoTokenizer).from_pretrained(self.model, subfolder="tokenizer")
        for label, texts in prompts.items():
            try:
                check_label_in_prompts(tokenizer, label, texts)
            except LabelNotInPromptError as error:
                raise UserError(str(error)) from None

    # ---- generate ----------------------------------------------------------------------
    def __call__(self, label: str, prompts: list[str], seeds: list[int],
                 heatmaps: bool = False) -> list[GeneratedImage]:
        """One image per (prompt, seed); with `heatmaps`, each with the label tokens' cross-attention map
        at the image's size (odin.localize.attention; the images are the same either way)."""
        if len(prompts) != len(seeds):
            raise ConfigError(f"{len(prompts)} prompts but {len(seeds)} seeds")
        pipe = self.pipeline()
        out: list[GeneratedImage] = []
        for start in range(0, len(prompts), self.batch_size):
            batch = slice(start, start + self.batch_size)
            out += self._batch(pipe, label, prompts[batch], seeds[batch], heatmaps)
        return out

    def _batch(self, pipe, label: str, prompts: list[str], seeds: list[int], heatmaps: bool) -> list[GeneratedImage]:
        images, flagged, heats = self._generate(pipe, prompts, seeds, label if heatmaps else None)
        tries = [0] * len(prompts)
        # The safety checker blacks out what it flags: redo those with the next seed (bounded),
        # so a black square never becomes training data and metadata.jsonl says what happened.
        for attempt in range(1, self.safety_retries + 2):
            todo = [i for i, bad in enumerate(flagged) if bad]
            if not todo:
                break
            if attempt > self.safety_retries:
                i = todo[0]
                raise UserError(
                    f"the safety checker blacked out label '{label}', prompt '{prompts[i]}' at seeds "
                    f"{seeds[i]}..{seeds[i] + self.safety_retries}. Change the prompt, raise "
                    "diffusion.safety_retries, or set diffusion.safety_checker=false."
                )
            redo, redo_flags, redo_heats = self._generate(
                pipe, [prompts[i] for i in todo], [seeds[i] + attempt for i in todo], label if heatmaps else None
            )
            for i, image, bad, heat in zip(todo, redo, redo_flags, redo_heats, strict=True):
                images[i], flagged[i], heats[i], tries[i] = image, bad, heat, attempt
        if any(tries):
            log.warning("label '%s': safety checker retries per image %s", label, tries)
        return [
            GeneratedImage(image, {"seed_used": seed + n, "safety_retries": n}, heat)
            for image, seed, n, heat in zip(images, seeds, tries, heats, strict=True)
        ]

    def _generate(self, pipe, prompts: list[str], seeds: list[int], label: str | None
                  ) -> tuple[list[Image.Image], list[bool], list]:
        """(images, safety flags, heatmaps): heatmaps of `label` when given, else Nones."""
        import torch

        from odin.localize.attention import AttentionHeatmaps

        kwargs: dict[str, Any] = {}
        if len(set(prompts)) == 1:  # the store's unit: encode the one prompt once, not once per image
            prompt, kwargs["num_images_per_prompt"] = prompts[0], len(prompts)
            negative = self.negative_prompt
        else:
            prompt, negative = prompts, self.negative_prompt and [self.negative_prompt] * len(prompts)
        if negative:
            kwargs["negative_prompt"] = negative
        maps = AttentionHeatmaps(pipe, label, prompts) if label is not None else contextlib.nullcontext()
        with maps:  # one prompt per image, in output order: num_images_per_prompt repeats it in place
            result = pipe(
                prompt=prompt,
                num_inference_steps=self.steps,
                guidance_scale=self.guidance_scale,
                height=self.height,
                width=self.width,
                generator=[torch.Generator("cpu").manual_seed(s) for s in seeds],
                output_type="pil",
                **kwargs,
            )
        images = list(result.images)
        flags = getattr(result, "nsfw_content_detected", None) or [False] * len(prompts)
        heats = maps.heatmaps(size=(images[0].height, images[0].width)) if label is not None else [None] * len(images)
        return images, [bool(f) for f in flags], heats

    def resolved(self) -> dict:
        """dtype as it will really be used: bf16 images from a GPU and fp32 images from a CPU are
        different data and must not share a cache key (odin.keys)."""
        return {"dtype": self._settings()[2]}

    # ---- load once -------------------------------------------------------------------
    def _settings(self) -> tuple:
        import torch

        device = str(resolve_device(self.device))
        dtype = DTYPES.get(self.dtype)
        if dtype is None:  # auto: half precision where the hardware is built for it
            if device.startswith("cuda"):
                dtype = "bfloat16" if torch.cuda.is_bf16_supported() else "float16"
            else:
                dtype = "float32"
        return (
            self.model,
            device,
            dtype,
            self.scheduler,
            self.safety_checker,
            self.attention,
            self.compile,
            self.channels_last,
        )

    def pipeline(self):
        """The process's pipeline for these settings, loaded on first use."""
        import torch

        global _loaded
        settings = self._settings()
        if _loaded is not None and _loaded[0] == settings:
            return _loaded[1]
        if _loaded is not None:  # drop the old pipeline before loading a new one: one in memory at a time
            _loaded = None
            gc.collect()
            if torch.cuda.is_available():
                torch.cuda.empty_cache()
        self.check([])  # fail clearly, also when called without the store
        _loaded = (settings, load_pipeline(*settings))
        return _loaded[1]


def load_pipeline(model, device, dtype, scheduler, safety_checker, attention, compile, channels_last):
    import diffusers
    import torch

    log.info("loading %s on %s (%s)", model, device, dtype)
    kwargs = {} if safety_checker else {"safety_checker": None, "requires_safety_checker": False}
    pipe = diffusers.AutoPipelineForText2Image.from_pretrained(model, dtype=getattr(torch, dtype), **kwargs)
    if scheduler is not None:
        pipe.scheduler = getattr(diffusers, scheduler).from_config(pipe.scheduler.config)
    pipe.to(device)
    pipe.set_progress_bar_config(disable=True)  # the store shows progress per unit
    models = [m for m in pipe.components.values() if isinstance(m, diffusers.ModelMixin)]
    if attention == "eager":  # plain matmul-softmax attention: a reference for debugging SDPA
        from diffusers.models.attention_processor import AttnProcessor

        for m in models:
            if hasattr(m, "set_attn_processor"):
                m.set_attn_processor(AttnProcessor())
    elif attention == "xformers":
        pipe.enable_xformers_memory_efficient_attention()
    elif attention != "sdpa":  # sdpa is what diffusers uses by default on torch 2
        for m in models:
            m.set_attention_backend(attention)
        # Older attention processors (SD's UNet) ignore the dispatcher: say so rather than run sdpa.
        if not any(getattr(p, "_attention_backend", None) for m in models for p in _processors(m)):
            raise ConfigError(f"diffusion.attention={attention} is not supported by {model}; use sdpa or xformers")
    denoiser = getattr(pipe, "unet", None) or getattr(pipe, "transformer", None)
    if channels_last:
        for m in models:
            m.to(memory_format=torch.channels_last)
    if compile and denoiser is not None:
        denoiser.compile()  # in place, so pipe.unet keeps its type and config
    return pipe


def _processors(model) -> list:
    return list(model.attn_processors.values()) if hasattr(model, "attn_processors") else []
