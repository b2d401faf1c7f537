"""Turn a chat model's free-form reply into a list of prompts, and tell whether a prompt names a label.

Chat models answer in many shapes: numbered lists, bullets, quoted lines, JSON arrays (often in a
code fence), with a preamble ("Sure! Here are...") and trailing chatter ("Let me know..."). We
take the most structured shape the reply has and ignore the rest, so chatter never becomes a prompt.
"""

from __future__ import annotations

import json
import re

# "1. x", "1) x", "(1) x", "Prompt 1: x", "- x", "* x", "• x"
_ITEM = re.compile(r"^\s*(?:(?:prompt\s*)?\d{1,3}\s*[.):]|\(\d{1,3}\)|[-*•–+])\s+(.*\S)\s*$", re.I)
_QUOTES = "\"'“”‘’«»"
_QUOTED = re.compile(r"[\"“«]([^\"“”«»]+)[\"”»]")


def parse_prompts(text: str) -> list[str]:
    """Prompts in `text`, in order, cleaned; duplicates are left for the caller to judge."""
    items = _json_items(text)
    if items is None:
        items = _list_items(text)
    return [p for p in (_clean(item) for item in items) if p]


def _json_items(text: str) -> list[str] | None:
    for open_, close in ("[]", "{}"):
        start, end = text.find(open_), text.rfind(close)
        if 0 <= start < end:
            try:
                strings = _strings(json.loads(text[start : end + 1]))
            except ValueError:
                continue
            if strings:
                return strings
    return None


def _strings(obj) -> list[str]:
    """The strings of a JSON reply: a list of strings, of {"prompt": ...} objects, or {"prompts": [...]}."""
    if isinstance(obj, dict):
        for value in obj.values():
            if isinstance(value, list):
                return _strings(value)
        if isinstance(obj.get("prompt"), str):
            return [obj["prompt"]]
        values = [v for v in obj.values() if isinstance(v, str)]
        return values[-1:]  # {"title": ..., "text": ...}: the prompt usually comes last
    if isinstance(obj, list):
        return [s for item in obj for s in ([item] if isinstance(item, str) else _strings(item))]
    return []


def _list_items(text: str) -> list[str]:
    lines = [line.replace("**", "").replace("__", "").replace("`", "") for line in text.splitlines()]
    items: list[str] = []
    follows_item = False
    for line in lines:
        m = _ITEM.match(line)
        if m:
            items.append(m.group(1))
        elif follows_item and line.strip() and (line[0].isspace() or items[-1].endswith(":")):
            # An indented continuation, or "1. Title:" with the prompt on the next line; an
            # unindented line right after the list is chatter ("Enjoy!").
            items[-1] += " " + line.strip()
            continue
        follows_item = bool(m)
    if items:
        return items
    lines = [line.strip() for line in lines if line.strip()]
    quoted = [line for line in lines if line[0] in _QUOTES and line[-1] in _QUOTES + ".,"]
    if quoted:
        return quoted
    return [line for line in lines if not line.endswith(":")]  # drop "Here are some prompts:"


def _clean(item: str) -> str:
    spans = _QUOTED.findall(item)
    if len(spans) == 1 and len(spans[0].split()) >= 3:
        item = spans[0]  # 'Sunny garden: "A photo of ..." - captures the light' -> the quoted prompt
    item = " ".join(item.split()).strip(_QUOTES + " ")
    return item.rstrip(",;").strip(_QUOTES + " ")


def dedup_key(prompt: str) -> str:
    return " ".join(re.findall(r"[^\W_]+", prompt.lower()))


def _words(text: str) -> list[str]:
    """Lower-case words with a crude singular, so "airplanes" names "airplane" and vice versa."""
    words = re.findall(r"[^\W_]+", text.lower())  # underscores split: "pit_bull" names "pit bull"
    out = []
    for w in words:
        if len(w) > 4 and w.endswith("ies"):
            w = w[:-3] + "y"
        elif len(w) > 3 and w.endswith("s") and not w.endswith("ss"):
            w = w[:-1]
        out.append(w)
    return out


def names_label(prompt: str, label: str) -> bool:
    """True when the label's words appear in the prompt, in order and adjacent."""
    want, have = _words(label), _words(prompt)
    n = len(want)
    return n > 0 and any(have[i : i + n] == want for i in range(len(have) - n + 1))
