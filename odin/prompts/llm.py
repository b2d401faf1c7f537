"""LLM prompts: ask a chat model (ChatGPT, or any OpenAI-compatible server) for prompts per label.

The paper asked ChatGPT "Can you recommend 10 simple prompts for image creation? I want to
generate photo-realistic {class} images with txt2img model". Replies are parsed (odin.prompts.parse).

`require_label` (prompt=llm: true) checks each prompt: one that does not name the label is dropped (the
paper saw "helicopter" for "airplanes"), and when too few remain we ask again in the same conversation,
at most `max_asks` times. A label still short is filled as the prompt check fills one
(odin.prompts.checked): the kept prompts are repeated in order up to `num_prompts`, each copy with its
own seeds (the store's units are (label, prompt, copy)), and the prompt file says so (`info.refilled`),
so every label keeps its number of images. A label with no prompt naming it fails, naming the label.

`require_label: false` (prompt=chatgpt, the paper's setting) uses every prompt of the replies as they
come, as the paper did; those not naming the label are listed in `info.unnamed`. It asks again only when
a reply holds fewer than `num_prompts` prompts at all.

The key comes from OPENAI_API_KEY only, so it never reaches a config dump, the store or a log.
HTTP retries with backoff (429, 5xx, timeouts, dropped connections) are the openai client's own,
which honours the server's Retry-After.
"""

from __future__ import annotations

import logging
import os
from concurrent.futures import ThreadPoolExecutor, as_completed
from urllib.parse import urlparse

import openai

from odin.config import LLMPromptConfig
from odin.errors import ConfigError, UserError
from odin.prompts import LabelPrompts
from odin.prompts.parse import dedup_key, names_label, parse_prompts

log = logging.getLogger(__name__)

PAPER_QUERY = LLMPromptConfig.query  # the defaults live in the schema (odin/config.py), once
OPENAI_URL = "https://api.openai.com/v1"
# base_url, concurrency, timeout, max_retries and max_asks change how, not what, we ask:
# odin.keys.PROMPT_IGNORED leaves them out of the cache key.

# Errors every label would hit alike (bad key, unknown model, server down): stop at the first.
FATAL = (
    openai.AuthenticationError,
    openai.PermissionDeniedError,
    openai.NotFoundError,
    openai.BadRequestError,
    openai.UnprocessableEntityError,
)


class PromptError(UserError, RuntimeError):
    pass


def reply_text(response) -> str:
    """The assistant's text of a chat completion ("" when the server sent no choice or no content)."""
    choices = getattr(response, "choices", None) or []
    return (choices[0].message.content if choices else None) or ""


def usable(text: str, label: str, seen: set[str], rejected: list[str]) -> list[str]:
    """The reply's prompts that name the label and are new to `seen` (which they join), in order;
    those that do not name it are appended to `rejected` (the paper's "helicopter" for "airplanes")."""
    new = []
    for prompt in parse_prompts(text):
        if not names_label(prompt, label):
            rejected.append(prompt)
        elif dedup_key(prompt) not in seen:
            seen.add(dedup_key(prompt))
            new.append(prompt)
    return new


class LLMPrompts:
    gives_more = True

    def __init__(
        self,
        model: str = "gpt-3.5-turbo",
        query: str = LLMPromptConfig.query,
        followup: str = LLMPromptConfig.followup,
        replacement: str = LLMPromptConfig.replacement,
        num_prompts: int = 10,
        temperature: float = 1.0,
        max_tokens: int | None = None,
        seed: int | None = None,
        system: str | None = None,
        base_url: str | None = None,
        concurrency: int = 4,
        timeout: float = 60.0,
        max_retries: int = 5,
        max_asks: int = 3,
        require_label: bool = True,
    ):
        self.model, self.query, self.followup, self.num_prompts = model, query, followup, num_prompts
        self.replacement = replacement
        self.temperature, self.max_tokens, self.seed, self.system = temperature, max_tokens, seed, system
        self.base_url, self.concurrency, self.timeout = base_url, concurrency, timeout
        self.max_retries, self.max_asks, self.require_label = max_retries, max_asks, require_label

    def url(self) -> str:
        return self.base_url or os.environ.get("OPENAI_BASE_URL") or OPENAI_URL

    def resolved(self) -> dict:
        return {}  # nothing is chosen at run time: the config is what was used

    def check(self, labels: list[str]) -> None:
        if "{label}" not in self.query:
            raise ConfigError(f"prompt.query={self.query!r} must contain {{label}}, where each label goes")
        for name in ("query", "followup", "replacement"):
            try:
                getattr(self, name).format(label="x", num_prompts=1, kept=0, missing=1, dropped="y")
            except (KeyError, IndexError, ValueError) as e:
                raise ConfigError(
                    f"prompt.{name}: bad placeholder {e}; use {{label}}, {{num_prompts}} "
                    "(in followup also {kept}, {missing}; in replacement {missing}, {dropped})"
                ) from None
        # Only OpenAI's own endpoint surely needs a key; a local vLLM/Ollama server usually takes none,
        # and one that wants a key answers 401, which we report as the same one-line fix.
        if not os.environ.get("OPENAI_API_KEY") and urlparse(self.url()).hostname == "api.openai.com":
            raise PromptError(
                f"prompt.model={self.model} at {self.url()} needs an API key: export OPENAI_API_KEY=... "
                "(or point prompt.base_url at an OpenAI-compatible server that takes none)"
            )

    def __call__(self, labels: list[str]):
        self.check(labels)
        client = self._client()
        pool = ThreadPoolExecutor(self.concurrency, thread_name_prefix="llm-prompts")
        failed: dict[str, str] = {}
        try:
            futures = {pool.submit(self.ask, client, label): label for label in dict.fromkeys(labels)}
            for future in as_completed(futures):
                label = futures[future]
                try:
                    yield future.result()
                except FATAL as e:
                    raise PromptError(self._explain(e)) from e
                except openai.RateLimitError as e:
                    if e.code == "insufficient_quota":  # retrying cannot help, nor can other labels
                        raise PromptError(f"{self.url()}: out of quota (429): {e.message}") from e
                    failed[label] = f"rate limited after {self.max_retries} retries: {e.message}"
                except openai.APIConnectionError as e:
                    if not isinstance(e, openai.APITimeoutError):
                        raise PromptError(f"cannot reach {self.url()}: {e}") from e
                    failed[label] = f"timed out after {self.max_retries} retries ({self.timeout} s each)"
                except (openai.APIError, PromptError) as e:
                    failed[label] = str(e)
        finally:
            pool.shutdown(wait=True, cancel_futures=True)
            client.close()
        if failed:  # each label's own reason: too few usable prompts, a timeout, a refusal
            lines = [f"  {label}: {why}" for label, why in list(failed.items())[:10]]
            more = [f"  ... and {len(failed) - 10} more"] if len(failed) > 10 else []
            done = len(futures) - len(failed)
            cached = f" (the prompts of the other {done} are cached: a rerun asks only for these)" if done else ""
            raise PromptError(
                f"asking {self.model} at {self.url()} for prompts failed for {len(failed)} of {len(futures)} "
                f"label{'s' if len(futures) > 1 else ''}{cached}:\n" + "\n".join(lines + more)
            )

    def _client(self) -> openai.OpenAI:
        return openai.OpenAI(
            api_key=os.environ.get("OPENAI_API_KEY") or "none",  # keyless servers still want a string
            base_url=self.url(),
            timeout=self.timeout,
            max_retries=self.max_retries,
        )

    def _opening(self, label: str) -> list[dict]:
        query = self.query.format(label=label, num_prompts=self.num_prompts)
        return ([{"role": "system", "content": self.system}] if self.system else []) + [
            {"role": "user", "content": query}
        ]

    def _extra(self) -> dict:
        return {k: v for k, v in (("max_tokens", self.max_tokens), ("seed", self.seed)) if v is not None}

    def ask(self, client: openai.OpenAI, label: str) -> LabelPrompts:
        n = self.num_prompts
        messages = self._opening(label)
        query, extra = messages[-1]["content"], self._extra()
        kept, seen = [], set()  # the prompts to use, in order; their dedup keys (require_label)
        replies, rejected, served = [], [], None
        for _ in range(self.max_asks):
            try:
                response = client.chat.completions.create(
                    model=self.model, messages=messages, temperature=self.temperature, **extra
                )
            except ValueError as e:  # a body that is not JSON (a proxy's error page): ask again
                replies.append(f"<unreadable response: {e}>")
                continue
            served = getattr(response, "model", None)
            text = reply_text(response)
            replies.append(text)
            kept += usable(text, label, seen, rejected) if self.require_label else parse_prompts(text)
            if len(kept) >= n:
                break
            followup = self.followup.format(label=label, num_prompts=n, kept=len(kept), missing=n - len(kept))
            messages = [*messages, {"role": "assistant", "content": text}, {"role": "user", "content": followup}]
        last = replies[-1][:80] if replies else ""
        if not kept and self.require_label:
            raise PromptError(
                f"no prompt names the label after {len(replies)} asks (raise prompt.max_asks, or set "
                f"prompt.require_label=false to use the replies as they come); last reply: {last!r}"
            )
        if not kept:
            raise PromptError(f"the replies held no prompt after {len(replies)} asks (raise prompt.max_asks); "
                              f"last reply: {last!r}")
        kept = kept[:n]
        prompts = [kept[i % len(kept)] for i in range(n)]  # a short label repeats its prompts: same image count
        info = {"model": self.model, "served_model": served, "query": query, "replies": replies,
                "rejected": rejected, "asks": len(replies), "require_label": self.require_label,
                "refilled": n - len(kept)}  # fmt: skip
        if not self.require_label:
            info["unnamed"] = [p for p in kept if not names_label(p, label)]
        if len(kept) < n:
            what = "name the label" if self.require_label else "came"
            log.warning("llm prompts: %s: %d of %d prompts %s after %d asks; repeating them to %d, each copy with "
                        "its own seeds", label, len(kept), n, what, len(replies), n)
        else:
            log.info("llm prompts: %s: %d prompts in %d ask(s)", label, n, len(replies))
        return LabelPrompts(label, prompts, info)

    def more(self, label: str, shown: list[str], dropped: list[str], count: int) -> LabelPrompts:
        """Replacements for prompts the prompt check dropped: one more ask, in the conversation as the check
        saw it (the opening query, the prompts given so far as the assistant's list, then `replacement`)."""
        listing = "\n".join(f"{i}. {prompt}" for i, prompt in enumerate(shown, 1))
        ask = self.replacement.format(label=label, num_prompts=self.num_prompts, kept=len(shown) - len(dropped),
                                      missing=count, dropped="; ".join(f'"{p}"' for p in dropped))
        messages = [*self._opening(label), {"role": "assistant", "content": listing}, {"role": "user", "content": ask}]
        client = self._client()
        try:
            response = client.chat.completions.create(model=self.model, messages=messages,
                                                      temperature=self.temperature, **self._extra())
        except FATAL as e:
            raise PromptError(self._explain(e)) from e
        except (openai.APIError, ValueError) as e:  # retried by the client already: this label fails
            raise PromptError(f"asking {self.url()} for replacement prompts for '{label}': {e}") from e
        finally:
            client.close()
        text, rejected = reply_text(response), []
        new = usable(text, label, {dedup_key(p) for p in shown}, rejected)
        log.info("llm prompts: %s: asked for %d replacement(s), got %d", label, count, len(new[:count]))
        return LabelPrompts(label, new[:count], {"ask": ask, "reply": text, "rejected": rejected})

    def _explain(self, e: openai.APIStatusError) -> str:
        if isinstance(e, openai.AuthenticationError):
            return f"{self.url()} refused the API key (401): export a valid OPENAI_API_KEY=..."
        if isinstance(e, openai.NotFoundError):
            return f"{self.url()} has no model '{self.model}' (404): set prompt.model (or prompt.base_url)"
        return f"{self.url()} refused the request ({e.status_code}): {e.message}"
