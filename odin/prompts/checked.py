"""The prompt stage's optional layers around the chosen generator: diversification, then the prompt check.

    prompt -> Diversified (diversify=word2vec|sentence) -> CheckedPrompts (prompt_check=word2vec|sentence|clip)

Both run inside the store's prompt call, so what they make is cached with the prompts, under a
key that holds their configs (odin.keys.prompt_extras); off, the key is what it always was.

The check (odin.filter.PromptCheck) scores each prompt against every label of the run. A prompt
closer to another label than to its own, or below `prompt_check.threshold`, is dropped; every
verdict goes into the label's prompt file (`info.prompt_check`, with the scores and the reason).
With `refill` (the default) the kept prompts are repeated in order up to the count asked for, each
copy with its own seeds (as prompt=naive repeats its sentence), so every label keeps its number of
images. A label left with no prompt fails, naming the label.
"""

from __future__ import annotations

from collections.abc import Iterator

from omegaconf import DictConfig

from odin.filter import PromptCheck, apply_prompt_check
from odin.prompts import LabelPrompts, PromptGenerator


class CheckedPrompts:
    def __init__(self, inner: PromptGenerator, check: PromptCheck, labels: list[str], refill: bool = True,
                 encoder_name: str = ""):
        self.inner, self.prompt_check, self.labels, self.refill = inner, check, list(labels), refill
        self.encoder_name = encoder_name

    def resolved(self) -> dict:
        return self.inner.resolved() if hasattr(self.inner, "resolved") else {}

    def check(self, labels: list[str]) -> None:
        self.inner.check(labels)
        self.prompt_check.encoder.embed([label.replace("_", " ") for label in self.labels])  # loads it: fails early

    def __call__(self, labels: list[str]) -> Iterator[LabelPrompts]:
        for made in self.inner(labels):  # one label at a time: the store caches each as it comes
            yield self.checked(made)

    def checked(self, made: LabelPrompts) -> LabelPrompts:
        # Every label of the run is a candidate; only this one's prompts are scored.
        asked = {label: (list(made.prompts) if label == made.label else []) for label in self.labels}
        if made.label not in asked:
            asked[made.label] = list(made.prompts)
        verdicts = self.prompt_check(asked)
        kept = apply_prompt_check({made.label: made}, {made.label: verdicts[made.label]})[made.label]
        n, k = len(made.prompts), len(kept.prompts)
        prompts = [kept.prompts[i % k] for i in range(n)] if self.refill else kept.prompts
        summary = {"kept": k, "dropped": n - k, "refilled": len(prompts) - k, "threshold": self.prompt_check.threshold,
                   "encoder": self.encoder_name, "labels": self.labels}
        return LabelPrompts(made.label, prompts, {**kept.info, "prompt_check_summary": summary})


def build_prompt_check(node: DictConfig) -> PromptCheck:
    """The PromptCheck of a prompt_check config node (word vectors, a sentence model or a CLIP text tower)."""
    if node.kind == "clip":
        from odin.filter import ClipFilter

        encoder = ClipFilter(node.model, device=node.device, batch_size=node.batch_size, config_key="prompt_check")
    else:
        from odin.embeddings import Embedder

        source = {"vectors": node.vectors} if node.kind == "vectors" else {"model": node.model}
        encoder = Embedder(**source, config_key="prompt_check", limit=node.limit, device=node.device,
                           batch_size=node.batch_size)
    return PromptCheck(encoder, node.threshold, node.label_template)


def wrap_prompter(cfg: DictConfig, prompter: PromptGenerator, labels: list[str]) -> PromptGenerator:
    """The run's prompt generator with diversify and prompt_check around it, those that are on."""
    if cfg.diversify.name != "none":  # built directly: Hydra's instantiate would hide a UserError in its own
        from hydra.utils import get_object
        from omegaconf import OmegaConf

        node = OmegaConf.to_container(cfg.diversify, resolve=True)
        prompter = get_object(node.pop("_target_"))(inner=prompter, **node)
    if cfg.prompt_check.name != "none":
        node = cfg.prompt_check
        prompter = CheckedPrompts(prompter, build_prompt_check(node), labels, refill=node.refill,
                                  encoder_name=str(node.vectors or node.model))
    return prompter
