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
    r"(?P<value>[\"']?)(?!<redacted>)[^\s\"',}\]]+",
    re.IGNORECASE,
)
REDACTED = "<redacted>"


def env_secrets() -> list[str]:
    """Secret values in the environment, longest first (so one that contains another goes whole)."""
    values = {v for k, v in os.environ.items() if SECRET_KEY.search(k) and len(v) >= 8}
    return sorted(values, key=len, reverse=True)


def scrub_text(text: str) -> str:
    for secret in env_secrets():
        text = text.replace(secret, REDACTED)
    text = URL_CREDENTIALS.sub(lambda m: f"{m['scheme']}{REDACTED}@", text)
    return SECRET_ASSIGNMENT.sub(lambda m: f"{m['key']}{m['value']}{REDACTED}", text)


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
