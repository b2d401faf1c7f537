"""One scrubbing rule for everything ODIN or Hydra writes or prints: config dumps, the store's
config files, metrics.json, run.log, the console, W&B.

A secret is (1) the value of an environment variable whose name says secret (OPENAI_API_KEY,
WANDB_API_KEY, HF_TOKEN, ...), wherever it appears, (2) the value of a config key whose name says
secret (api_key, token, password, ...), (3) the credentials in a URL (http://user:pass@host).
"""

from __future__ import annotations

import logging
import os
import re
from pathlib import Path
from typing import Any

# "token" but not "max_tokens" or "tokenizer": counts and tools, not secrets
SECRET_KEY = re.compile(r"(api[_-]?key|token(?!s|izer)|secret|password|passwd|credential)", re.IGNORECASE)
URL_CREDENTIALS = re.compile(r"(?P<scheme>[a-z][a-z0-9+.-]*://)[^/@\s'\"]+@", re.IGNORECASE)
# `key: value`, `key=value` or `"key": "value"` where the key says secret (YAML dumps, overrides)
SECRET_ASSIGNMENT = re.compile(
    r"(?P<key>[\w.+~-]*(?:api[_-]?key|token(?!s|izer)|secret|password|passwd|credential)[\w.-]*[\"']?\s*[:=]\s*)"
    r"(?P<value>[\"']?)(?P<secret>(?!<redacted>)[^\s\"',}\]]+)",
    re.IGNORECASE,
)
# What follows `api_key:` in a sentence or a hint is a word or a placeholder, not a key: "no such key",
# `export OPENAI_API_KEY=...`, `${oc.env:...}`, `<your key>`, null. Values are masked, words are not.
NOT_A_VALUE = re.compile(r"^(?:.{0,5}|[a-z]+|.*(?:\.\.\.|\u2026).*|[<$*].*)$", re.DOTALL)
REDACTED = "<redacted>"
MIN_KNOWN = 6  # shorter values of secret keys are not masked wherever they appear (they would hit words)

_known: set[str] = set()  # secret values this process was given (command line, composed config)


def remember(value: object) -> None:
    """Mask `value` wherever it appears from now on (a secret given on the command line or in a config)."""
    if isinstance(value, str) and len(value) >= MIN_KNOWN and not value.startswith("${"):
        _known.add(value)


def remember_overrides(args: list[str]) -> None:
    """The values of `key=value` arguments whose key says secret (`prompt.api_key=sk-...`, `+x.token=...`)."""
    for arg in args:
        key, eq, value = arg.partition("=")
        if eq and SECRET_KEY.search(key):
            remember(value.strip("'\""))


def remember_config(config: Any) -> None:
    """Every value under a secret-named key of a plain config (from a conf/local file, an experiment, ...)."""
    if isinstance(config, dict):
        for k, v in config.items():
            if SECRET_KEY.search(str(k)) and isinstance(v, str):
                remember(v)
            else:
                remember_config(v)
    elif isinstance(config, list | tuple):
        for v in config:
            remember_config(v)


def env_secrets() -> list[str]:
    """Secret values in the environment and those remembered, longest first (one that contains another goes
    whole)."""
    values = {v for k, v in os.environ.items() if SECRET_KEY.search(k) and len(v) >= 8} | _known
    return sorted(values, key=len, reverse=True)


def scrub_text(text: str) -> str:
    for secret in env_secrets():
        text = text.replace(secret, REDACTED)
    text = URL_CREDENTIALS.sub(lambda m: f"{m['scheme']}{REDACTED}@", text)
    return SECRET_ASSIGNMENT.sub(
        lambda m: m[0] if NOT_A_VALUE.match(m["secret"]) else f"{m['key']}{m['value']}{REDACTED}", text)


def scrub(config: Any) -> Any:
    """A copy of a plain config (dicts, lists, values) with every secret masked."""
    if isinstance(config, dict):
        return {k: (REDACTED if SECRET_KEY.search(str(k)) and config[k] is not None else scrub(v))
                for k, v in config.items()}
    if isinstance(config, list | tuple):
        return [scrub(v) for v in config]
    if isinstance(config, str):
        return scrub_text(config)
    return config


def scrub_files(*paths: Path) -> None:
    """Rewrite text files (Hydra's .hydra/*.yaml, multirun.yaml) with their secrets masked."""
    for path in paths:
        if path.is_file():
            text = path.read_text()
            clean = scrub_text(text)
            if clean != text:
                path.write_text(clean)


class ScrubSecrets(logging.Filter):
    """A logging filter: every record's message leaves with its secrets masked (conf/hydra/job_logging)."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        clean = scrub_text(message)
        if clean != message:
            record.msg, record.args = clean, None
        return True


class MaskedStream:
    """sys.stdout or sys.stderr with secrets masked in everything written to it: Hydra's own messages
    (its override hints repeat the value given) are printed before any ODIN code runs."""

    def __init__(self, stream):
        self._stream = stream

    def write(self, text: str) -> int:
        self._stream.write(scrub_text(text) if isinstance(text, str) else text)
        return len(text)

    def writelines(self, lines) -> None:
        for line in lines:
            self.write(line)

    def __getattr__(self, name: str):
        return getattr(self._stream, name)
