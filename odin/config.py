"""Typed config schemas, registered in Hydra's ConfigStore.

Every option file in conf/<group>/ starts its defaults list with the schema of its kind
(`- /schema/<group>/<kind>@_here_`), so a misspelt key or a wrong type fails at compose
time with the key's full name. This module is light (dataclasses only) so composing a
config or printing `--help` never imports torch.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING

from odin.data.schemas import DATASET_SCHEMAS
from odin.match_schema import MatchPostConfig
from odin.prompts.words import LIVING_MODIFIERS, LIVING_WORDS, NONLIVING_MODIFIERS, NONLIVING_WORDS


# ---- dataset --------------------------------------------------------------------------
@dataclass
class DatasetConfig:
    _target_: str = MISSING
    name: str = MISSING
    context: str = ""  # the word after the label in the paper's naive prompt ("pet")
    root: str | None = None  # where a real dataset lives on disk (None: embedded)
    template_banks: dict[str, list[str]] = field(default_factory=dict)


# ---- prompts --------------------------------------------------------------------------
@dataclass
class NaivePromptConfig:
    _target_: str = "odin.prompts.naive.NaivePrompts"
    template: str = "a photo of one {label} {context}"
    context: str = "${dataset.context}"
    # The sentence repeated, each copy with its own seeds: as many images per class as the other
    # generators get from the same backend (the paper compares prompt generators at equal counts).
    num_prompts: int = "${diffusion.prompts_per_label}"  # type: ignore[assignment]


@dataclass
class TemplatePromptConfig:
    _target_: str = "odin.prompts.template.TemplatePrompts"
    template: str = "a photo of one {label} {context}, {style}, {view}, {setting}"
    context: str = "${dataset.context}"
    banks: dict[str, list[str]] = "${dataset.template_banks}"  # type: ignore[assignment]
    num_prompts: int = "${diffusion.prompts_per_label}"  # type: ignore[assignment]
    seed: int = "${seed}"  # type: ignore[assignment]


@dataclass
class LLMPromptConfig:
    """ChatGPT or any OpenAI-compatible server; the key comes from OPENAI_API_KEY only."""

    _target_: str = "odin.prompts.llm.LLMPrompts"
    model: str = "gpt-3.5-turbo"
    query: str = (
        "Can you recommend {num_prompts} simple prompts for image creation? "
        "I want to generate photo-realistic {label} images with txt2img model"
    )
    followup: str = (  # sent in the same conversation when too few prompts name the label
        "I could use {kept} of those. Please recommend {missing} more simple prompts, as a numbered list, "
        'one per line, each naming "{label}" explicitly.'
    )
    replacement: str = (  # sent when the prompt check dropped prompts (prompt_check.replace); in the key only then
        'These do not clearly show "{label}": {dropped}. Please recommend {missing} more simple prompts, '
        'as a numbered list, one per line, each naming "{label}" explicitly.'
    )
    num_prompts: int = 10
    temperature: float = 1.0
    max_tokens: int | None = None
    seed: int | None = None  # the API's best-effort determinism; None sends none
    system: str | None = None
    require_label: bool = True  # false: every prompt of the replies as it comes (the paper), none dropped
    # runtime only (left out of the store's cache key): where and how patiently we ask
    base_url: str | None = None  # None: OPENAI_BASE_URL, else api.openai.com
    concurrency: int = 4  # labels asked at once
    timeout: float = 60.0  # seconds per request
    max_retries: int = 5  # HTTP retries with backoff on 429, 5xx, timeouts
    max_asks: int = 3  # asks per label when too few prompts name it


@dataclass
class CaptionPromptConfig:
    """BLIP-2 captions of the dataset's real training images, subject word -> label."""

    _target_: str = "odin.prompts.caption.CaptionPrompts"
    model: str = "Salesforce/blip2-opt-2.7b"  # any transformers image-text-to-text model, or a folder
    dataset: Any = "${dataset}"
    subjects: list[str] = field(
        default_factory=lambda: ["dog", "puppy", "cat", "kitten", "kitty", "animal", "pet", "food", "dish",
                                 "meal", "object", "thing"]  # fmt: skip
    )
    fallback: str = "{label}, {caption}"  # for captions that name no subject word
    num_prompts: int = 10
    max_images: int = 30  # training images captioned at most, looking for distinct captions
    max_new_tokens: int = 30
    num_beams: int = 1
    dtype: str = "auto"  # auto (float16 on CUDA, float32 on CPU) | float32 | float16 | bfloat16
    # runtime only (left out of the store's cache key)
    device: str = "auto"
    batch_size: int = 8


# ---- text-to-image --------------------------------------------------------------------
@dataclass
class GlyphConfig:
    _target_: str = "odin.generate.glyph.GlyphGenerator"
    size: int = 64
    # The embedded default's counts (100 x 20 = 2,000 images per digit): glyphs cost milliseconds,
    # and a small CNN trained from scratch needs a few thousand images per class.
    prompts_per_label: int = 100  # prompt.num_prompts of the generators that can make any number (template, naive)
    images_per_prompt: int = 20
    batch_size: int = 64


@dataclass
class DiffusersConfig:
    """Any diffusers text-to-image pipeline (AutoPipelineForText2Image): SD 1.5, SD 2.1, SDXL, ..."""

    _target_: str = "odin.generate.diffusers_backend.DiffusersGenerator"
    model: str = MISSING  # hub id (must be in the HF cache offline) or a local pipeline folder
    # The paper's counts: 10 prompts x 18 images = 180 images per class. prompts_per_label is the
    # num_prompts of the generators that can make any number (template, naive); the LLM and caption
    # generators ask for their own prompt.num_prompts (10, the paper's).
    prompts_per_label: int = 10
    steps: int = 50
    guidance_scale: float = 7.5
    negative_prompt: str | None = None
    scheduler: str | None = None  # a diffusers scheduler class name; None keeps the model's own
    height: int | None = None  # None: the model's native size
    width: int | None = None
    images_per_prompt: int = 18
    safety_checker: bool = True  # keep the model's checker when it ships one
    safety_retries: int = 3  # a flagged (blacked-out) image is redone with the next seed, this often
    dtype: str = "auto"  # auto | float32 | float16 | bfloat16 (auto: bf16 or fp16 on CUDA, fp32 else)
    # runtime only (odin.keys.IMAGES_IGNORED): speed and memory, not the images beyond float noise
    batch_size: int = 6
    device: str = "auto"  # auto | cpu | cuda | cuda:N | mps
    attention: str = "sdpa"  # sdpa | eager | xformers | a diffusers attention backend name
    compile: bool = False  # torch.compile the denoiser (pays off over many batches)
    channels_last: bool = False


# ---- post-processing ------------------------------------------------------------------
@dataclass
class PostConfig:
    """`none`, `blur` and the scikit-image `random_noise` modes share one schema."""

    _target_: str = "odin.post.PostProcessor"
    name: str = MISSING
    mode: str = "none"  # none | blur | a skimage random_noise mode
    apply_to_test: bool = False  # the paper's Table 2 (right): post-process the test set too
    kernel_size: int = 5  # blur: OpenCV's GaussianBlur(img, (k, k), 0), so 5 is [1, 4, 6, 4, 1] / 16
    mean: float = 0.0  # gaussian, speckle
    var: float = 0.01  # gaussian, speckle; localvar with local_vars=brightness
    local_vars: str = "constant"  # localvar: constant (scikit-image's 0.01 everywhere) | brightness
    amount: float = 0.05  # salt, pepper, s&p
    salt_vs_pepper: float = 0.5  # s&p


# ---- localization ---------------------------------------------------------------------
@dataclass
class LocalizeConfig:
    """Where the label is in each generated image (the paper's §5.3): a heatmap beside every image, and
    task=formulate adds boxes and masks (COCO JSON, YOLO txt) to the exported ImageFolder."""

    name: str = "none"  # none | attention: the backend's heatmap of the label (SD: cross-attention; glyph: ink)
    threshold: Any = 0.4  # heatmap -> mask: a fraction of each heatmap's maximum in (0, 1], or otsu


@dataclass
class AutoPostConfig:
    """`post=auto`: pick the candidate whose output is closest to the real images, without their labels.

    Each candidate's parameters are its conf/post/<name>.yaml, composed into `options` (conf/post/auto.yaml).
    """

    _target_: str = "odin.post_auto.AutoPost"
    _recursive_: bool = False  # AutoPost builds its candidates itself (and says what is wrong with one)
    name: str = "auto"
    candidates: list[str] = field(default_factory=lambda: ["none", "blur", "gaussian", "localvar", "poisson", "salt",
                                                           "pepper", "saltpepper", "speckle", "match"])  # fmt: skip
    options: dict[str, Any] = field(default_factory=dict)  # name -> a PostConfig, from conf/post
    criterion: str = "detect"  # detect: lowest held-out accuracy of a real-vs-generated detector | kid: lowest KID
    max_per_class: int = 100  # images per class and source that the choice looks at
    holdout: float = 0.3  # detect: the share of images held out to score the detector
    apply_to_test: bool = False  # passed on to the chosen candidate


# ---- diversification, the prompt check, the image filter (all off by default) ---------------
@dataclass
class NoneConfig:
    """A stage that is off (`diversify=none`, `prompt_check=none`, `filter=none`): nothing runs, no key changes."""

    name: str = "none"


@dataclass
class DiversifyConfig:
    """Algorithm 1 of the supplement around the chosen prompt generator (odin/prompts/diversify.py).

    Exactly one of `vectors` (a word2vec-format file) or `model` (a sentence-transformers folder).
    """

    _target_: str = "odin.prompts.diversify.Diversified"
    name: str = MISSING
    vectors: str | None = None
    model: str | None = None
    limit: int | None = None  # vectors: read only the first n words (GoogleNews: 500000 covers labels)
    living_words: list[str] = field(default_factory=lambda: list(LIVING_WORDS))
    nonliving_words: list[str] = field(default_factory=lambda: list(NONLIVING_WORDS))
    living_modifiers: list[str] = field(default_factory=lambda: list(LIVING_MODIFIERS))
    nonliving_modifiers: list[str] = field(default_factory=lambda: list(NONLIVING_MODIFIERS))
    seed: int = "${seed}"  # type: ignore[assignment]
    # runtime only (odin.keys.DIVERSIFY_IGNORED)
    device: str = "cpu"
    batch_size: int = 64


@dataclass
class PromptCheckConfig:
    """Drop prompts closer to another label of the run than to their own, or below `threshold` (cosine).

    The encoder: `vectors` (word2vec file), `model` with `kind: sentence` (sentence-transformers) or
    `kind: clip` (a CLIP-like model's text tower).
    """

    name: str = MISSING
    kind: str = MISSING  # vectors | sentence | clip
    vectors: str | None = None
    model: str | None = None
    threshold: float | None = None  # null: only "closer to another label" drops a prompt
    # How a label is written for the encoder. With the dataset's context word ("a four digit", "a Beagle pet")
    # the labels are told apart better: on the embedded digits all-MiniLM-L6-v2 drops 501 of 1000 template
    # prompts against "{label}" and 30 against "a {label} {context}" (BENCHMARKS.md).
    label_template: str = "a {label} {context}"  # clip: "a photo of a {label} {context}"
    context: str = "${dataset.context}"
    limit: int | None = None  # vectors: read only the first n words
    # Replace dropped prompts by asking the generator for more (llm: another ask in the conversation,
    # template: its next prompts, caption: further images), for at most max_rounds rounds per label.
    replace: bool = True
    max_rounds: int = 2
    refill: bool = True  # then repeat the kept prompts (each copy its own seeds) so every label keeps its count
    # runtime only (odin.keys.CHECK_IGNORED)
    device: str = "cpu"
    batch_size: int = 64


@dataclass
class ClipFilterConfig:
    """Score every generated image against all labels of the run (and distractors) with a CLIP-like model."""

    name: str = "clip"
    model: str = MISSING  # a local folder (save_pretrained / hf download) or a hub id in the HF cache
    threshold: float | None = None  # null: only "closer to another label or a distractor" drops an image
    distractors: list[str] = field(default_factory=list)  # e.g. [text, blank image, helicopter]
    template: str = "a photo of a {label}"
    padding: str = "longest"  # the tokenizer's: longest for CLIP, max_length for SigLIP
    max_rounds: int = 3  # rounds of replacement images (the first included) before a label fails
    # runtime only (odin.keys.FILTER_IGNORED)
    batch_size: int = 32
    device: str = "auto"


# ---- model and training ---------------------------------------------------------------
@dataclass
class ModelConfig:
    _target_: str = "odin.models.Classifier"
    name: str = MISSING  # a timm model name (timm.list_models)
    pretrained: bool = False
    checkpoint_path: str | None = None  # local weights instead of the hub
    input_size: int | None = None  # None: the checkpoint's own (odin.models.preprocessing)
    # stretch: every image to input_size x input_size, as the paper (§4.1); crop: timm's eval transform
    # for a pretrained model (shorter side to size / crop_pct, centre crop)
    resize: str = "stretch"
    kwargs: dict[str, Any] = field(default_factory=dict)  # extra timm.create_model arguments


@dataclass
class TrainConfig:
    epochs: int = 50
    batch_size: int = 50
    optimizer: str = "adam"  # adam | adamw | sgd
    lr: float = 2e-5
    weight_decay: float = 0.0
    label_smoothing: float = 0.0
    augment: bool = False  # small random affine jitter of training images
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    num_workers: int = 0  # processes that load images; 0: one per CPU core for preloading
    preload: bool = True  # load (and acquire) every training image once, up front, in parallel
    eval_every: int = 1
    # The honest number (no test label used): hold out this share of each label's generated prompts and
    # report the test accuracy at the epoch that is best on them. The paper trained on all images:
    # train.holdout=0 trains on exactly its set (and gives no held-out number).
    holdout: float = 0.1
    source: str = "generated"  # generated | real: the dataset's real training split, the reference to beat
    real_classes: list[str] = field(default_factory=list)  # seen + unseen: these classes train on real images
    precision: str = "auto"  # auto (bf16 on a CUDA GPU that has it, else fp16; fp32 elsewhere) | fp32 | bf16 | fp16
    # torch's CPU threads while training: a fixed count, because the count changes the numbers (kernels split
    # their sums by thread); so it is in the training key and in metrics.json (provenance). $ODIN_TRAIN_THREADS
    # sets it for every run of a shell or a cluster job (its CPUs), a command-line train.threads=N for one run
    threads: int = "${oc.env:ODIN_TRAIN_THREADS,2}"  # type: ignore[assignment]  (resolved to an int)
    resume: bool = True  # pick up an interrupted or finished run of the same key; false: train from scratch


# ---- logging --------------------------------------------------------------------------
@dataclass
class LoggerConfig:
    _target_: str = MISSING
    project: str = "odin"
    entity: str | None = None
    mode: str = "offline"  # WANDB_MODE in the environment wins
    tags: list[str] = field(default_factory=list)


# ---- top level ------------------------------------------------------------------------
@dataclass
class TaskConfig:
    name: str = "train"  # train | formulate | diversity | detect


@dataclass
class DiversityTaskConfig(TaskConfig):
    """task=diversity: within-class pairwise SSIM (the paper's Table 4, Figure 4) and colorfulness."""

    name: str = "diversity"
    image_size: int = 224  # both sources are resized to this before SSIM (colorfulness: always 224)
    gray: bool = True  # SSIM on luminance; false: per RGB channel, averaged (as channel_axis in skimage)
    win_size: int = 7  # scikit-image's default window
    data_range: float = 1.0  # the images are floats in [0, 1]
    max_per_class: int | None = 180  # images per class and source (seeded); pairs grow as n^2. null: all


@dataclass
class DetectTaskConfig(TaskConfig):
    """task=detect: a real-vs-generated classifier (the paper's Table 5); lower accuracy = smaller gap."""

    name: str = "detect"
    max_per_class: int | None = 180  # images per class and source (seeded, balanced); null: all the real ones
    holdout: float = 0.3  # the share of each class and source held out to score the detector


@dataclass
class PathsConfig:
    store: str = "outputs/store"  # content-addressed cache; a shared filesystem on clusters
    data: str = "data"  # where the real datasets live (conf/dataset/*.yaml: root: ${paths.data})


@dataclass
class OdinConfig:
    dataset: Any = MISSING
    prompt: Any = MISSING
    diffusion: Any = MISSING
    post: Any = MISSING
    model: Any = MISSING
    train: TrainConfig = MISSING
    logger: Any = MISSING
    task: TaskConfig = MISSING
    localize: LocalizeConfig = MISSING
    diversify: Any = MISSING
    prompt_check: Any = MISSING
    filter: Any = MISSING
    paths: PathsConfig = MISSING
    labels: list[str] | None = None  # a subset of the dataset's classes, or any labels to formulate
    seed: int = 0
    shard: int = 0  # task=formulate on a cluster: this job makes the units with shard = hash(unit) % num_shards
    num_shards: int = 1
    name: str = "odin"
    samples_per_class: int = 8  # in the sample grid


SCHEMAS: dict[str, dict[str, Any]] = {
    "dataset": {"dataset": DatasetConfig},
    "prompt": {
        "naive": NaivePromptConfig,
        "template": TemplatePromptConfig,
        "llm": LLMPromptConfig,
        "caption": CaptionPromptConfig,
    },
    "diffusion": {"glyph": GlyphConfig, "diffusers": DiffusersConfig},
    "post": {"post": PostConfig, "auto": AutoPostConfig, "match": MatchPostConfig},
    "model": {"timm": ModelConfig},
    "train": {"train": TrainConfig},
    "logger": {"logger": LoggerConfig},
    "task": {"task": TaskConfig, "diversity": DiversityTaskConfig, "detect": DetectTaskConfig},
    "localize": {"localize": LocalizeConfig},
    "paths": {"paths": PathsConfig},
    "diversify": {"none": NoneConfig, "diversify": DiversifyConfig},
    "prompt_check": {"none": NoneConfig, "check": PromptCheckConfig},
    "filter": {"none": NoneConfig, "clip": ClipFilterConfig},
}


SCHEMAS["dataset"].update(DATASET_SCHEMAS)


def register_configs() -> None:
    cs = ConfigStore.instance()
    cs.store(name="odin_schema", node=OdinConfig)
    for group, nodes in SCHEMAS.items():
        for name, node in nodes.items():
            cs.store(group=f"schema/{group}", name=name, node=node)


def check_keys(cfg: Any) -> None:
    """Refuse keys no schema knows, also those added with `+`, which would otherwise be ignored silently.

    Typed nodes are checked against their dataclass; a group node against the schema of its
    `_target_` (a component of the user's own, with a `_target_` ODIN has no schema for, is free).
    """
    from omegaconf import OmegaConf

    from odin.errors import ConfigError

    def unknown(node: Any, schema: type, prefix: str) -> None:
        known = set(schema.__dataclass_fields__)
        extra = sorted(str(k) for k in node if k not in known)
        if extra:
            name = ", ".join(f"{prefix}{k}" for k in extra)
            raise ConfigError(f"{name}: no such key in {schema.__name__}; it would be ignored. Known keys: "
                              f"{', '.join(sorted(k for k in known if not k.startswith('_')))}")

    by_target = {getattr(node, "_target_", None): node for nodes in SCHEMAS.values() for node in nodes.values()}
    task = cfg.get("task")  # each task's own schema (task=diversity has keys task=train lacks)
    task_schema = SCHEMAS["task"].get(str(task.get("name")), TaskConfig) if OmegaConf.is_dict(task) else TaskConfig
    typed = {"train": TrainConfig, "task": task_schema, "localize": LocalizeConfig, "paths": PathsConfig}
    unknown(cfg, OdinConfig, "")
    for group in OdinConfig.__dataclass_fields__:
        node = cfg.get(group)
        if not OmegaConf.is_dict(node):
            continue
        target = str(node.get("_target_", ""))
        schema = typed.get(group) or by_target.get(target)
        if group in ("diversify", "prompt_check", "filter"):  # off (name: none) or the option's own schema
            on = [c for n, c in SCHEMAS[group].items() if n != "none"]
            schema = SCHEMAS[group]["none"] if node.get("name") == "none" else (by_target.get(target) or on[0])
        generic = [c for c in SCHEMAS.get(group, {}).values() if getattr(c, "_target_", None) is MISSING]
        if schema is None and len(generic) == 1 and target.startswith("odin."):
            schema = generic[0]  # the shared schema of ODIN's own options (digits, the loggers)
        if schema is not None:
            unknown(node, schema, f"{group}.")
