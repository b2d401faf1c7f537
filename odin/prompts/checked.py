"""The prompt stage's optional layers around the chosen generator: diversification, then the prompt check.

    prompt -> Diversified (diversify=word2vec|sentence) -> CheckedPrompts (prompt_check=word2vec|sentence|clip)

Both run inside the store's prompt call, so what they make is cached with the prompts, under a
key that holds their configs (odin.keys.prompt_extras); off, the key is what it always was.

The check (odin.filter.PromptCheck) scores each prompt against every label of the run. A prompt
closer to another label than to its own, or below `prompt_check.threshold`, is dropped. Then:
  1. `replace` (the default): a generator that can make more (gives_more: llm, template,
     caption, and diversify around them) is asked for as many prompts as were dropped, and those are
     checked in turn, for at most `max_rounds` rounds;
  2. `refill` (the default): if still short, the kept prompts are repeated in order up to the count
     asked for, each copy with its own seeds (as prompt=naive repeats its sentence), so every label
     keeps its number of images.
Every verdict goes into the label's prompt file (`info.prompt_check`: prompt, round, scores, reason),
with each replacement ask (`info.prompt_check_asks`) and a summary. A label left with no prompt fails,
naming the label.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator

from omegaconf import DictConfig

from odin.errors import UserError
from odin.filter import FilterError, PromptCheck
from odin.prompts import LabelPrompts, PromptGenerator
from odin.prompts.parse import dedup_key

log = logging.getLogger(__name__)
ALIKE = 0.95  # cosine between two labels' anchors above which the check warns it can hardly tell them apart


class CheckedPrompts:
    def __init__(self, inner: PromptGenerator, check: PromptCheck, labels: list[str], refill: bool = True,
                 encoder_name: str = "", replace: bool = True, max_rounds: int = 2):
        self.inner, self.prompt_check, self.labels, self.refill = inner, check, list(labels), refill
        self.encoder_name, self.max_rounds = encoder_name, max_rounds
        self.replace = replace and max_rounds > 0 and inner.gives_more

    gives_more = False  # the outermost layer: its replacements are asked for inside it

    def more(self, label: str, shown: list[str], dropped: list[str], count: int) -> LabelPrompts:
        return LabelPrompts(label, [])

    def resolved(self) -> dict:
        return self.inner.resolved()

    def check(self, labels: list[str]) -> None:
        self.inner.check(labels)
        anchors = self.prompt_check.anchors(tuple(self.labels))  # loads the encoder: fails early
        alike = [(self.labels[i], self.labels[j], float(anchors[i] @ anchors[j]))
                 for i in range(len(self.labels)) for j in range(i + 1, len(self.labels))
                 if anchors[i] @ anchors[j] >= ALIKE]
        if alike:  # word vectors put "four" and "five" at 0.95: every prompt of one may look closer to the other
            alike.sort(key=lambda pair: -pair[2])
            pairs = ", ".join(f"'{a}'~'{b}' {sim:.2f}" for a, b, sim in alike[:5])
            log.warning("prompt check: %d label pair(s) are nearly the same to this encoder (%s%s), so it can hardly "
                        "tell their prompts apart; a sentence model or CLIP (prompt_check=sentence|clip) separates "
                        "them better", len(alike), pairs, ", ..." if len(alike) > 5 else "")

    def __call__(self, labels: list[str]) -> Iterator[LabelPrompts]:
        failed: dict[str, str] = {}
        for made in self.inner(labels):  # one label at a time: the store caches each as it comes
            try:
                yield self.checked(made)
            except UserError as e:  # a replacement ask that failed: the other labels still get made and cached
                if isinstance(e, FilterError):
                    raise
                failed[made.label] = str(e)
        if failed:
            lines = "\n".join(f"  {label}: {why}" for label, why in failed.items())
            raise FilterError(f"the prompt check could not replace dropped prompts for {len(failed)} label(s) "
                              f"(the others are cached):\n{lines}")

    def verdicts(self, label: str, prompts: list[str]) -> list:
        # Every label of the run is a candidate; only this one's prompts are scored.
        asked = {other: (list(prompts) if other == label else []) for other in self.labels}
        asked.setdefault(label, list(prompts))
        return self.prompt_check(asked)[label]

    def checked(self, made: LabelPrompts) -> LabelPrompts:
        label, n = made.label, len(made.prompts)
        shown = list(made.prompts)  # everything the generator gave, repeats included (its more() counts on it)
        records, kept, dropped, asks = [], [], [], []
        seen: set[str] = set()
        batch, round_ = list(made.prompts), 0
        while True:
            for prompt, verdict in zip(batch, self.verdicts(label, batch), strict=True):
                records.append({"prompt": prompt, "round": round_, **verdict.record()})
                (kept if verdict.kept else dropped).append(prompt)
                seen.add(dedup_key(prompt))
            if len(kept) >= n or not self.replace or round_ >= self.max_rounds:
                break
            round_ += 1
            extra = self.inner.more(label, list(shown), list(dropped), n - len(kept))
            shown.extend(extra.prompts)
            batch = [p for p in dict.fromkeys(extra.prompts) if dedup_key(p) not in seen]
            asks.append({"round": round_, "asked": n - len(kept), "got": len(batch), **extra.info})
            if not extra.prompts:  # the generator has nothing more to give (repeats still use up a round)
                break
        if not kept:
            reasons = "; ".join(f"'{r['prompt']}': {r['reason']}" for r in records[:3])
            more = f"; and {len(records) - 3} more" if len(records) > 3 else ""
            raise FilterError(f"the prompt check dropped every prompt of label '{label}' ({reasons}{more}). Lower "
                              "prompt_check.threshold, write the labels as the encoder knows them "
                              "(prompt_check.label_template), or use another encoder")
        kept = kept[:n]
        prompts = [kept[i % len(kept)] for i in range(n)] if self.refill else kept
        first = sum(1 for r in records if r["round"] == 0 and r["kept"])
        summary = {"kept": first, "dropped": n - first, "replaced": len(kept) - min(first, n),
                   "refilled": len(prompts) - len(kept), "rounds": round_, "threshold": self.prompt_check.threshold,
                   "encoder": self.encoder_name, "labels": self.labels}
        if summary["dropped"]:
            log.info("prompt check: %s: %d of %d prompts dropped, %d replaced, %d repeated", label,
                     summary["dropped"], n, summary["replaced"], summary["refilled"])
        info = {**made.info, "prompt_check": records, "prompt_check_asks": asks, "prompt_check_summary": summary}
        return LabelPrompts(label, prompts, info)


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
    return PromptCheck(encoder, node.threshold, node.label_template, node.context)


def wrap_prompter(cfg: DictConfig, prompter: PromptGenerator, labels: list[str]) -> PromptGenerator:
    """The run's prompt generator with diversify and prompt_check around it, those that are on."""
    if cfg.diversify.name != "none":  # built directly: Hydra's instantiate would hide a UserError in its own
        from hydra.utils import get_object
        from omegaconf import OmegaConf

        node = OmegaConf.to_container(cfg.diversify, resolve=True)
        node.pop("name")  # the option's name (conf/diversify/<name>.yaml), not a setting
        prompter = get_object(node.pop("_target_"))(inner=prompter, **node)
    if cfg.prompt_check.name != "none":
        node = cfg.prompt_check
        prompter = CheckedPrompts(prompter, build_prompt_check(node), labels, refill=node.refill,
                                  encoder_name=str(node.vectors or node.model), replace=node.replace,
                                  max_rounds=node.max_rounds)
    return prompter
