"""Errors that are the user's to fix: run.py prints them as one clean message, without a traceback.

Anything else is a bug in ODIN (or a library) and keeps its traceback.
"""


class UserError(Exception):
    """Bad input, a missing file, key or weight, an unreachable server: what is wrong and what would work."""


class ConfigError(UserError, ValueError):
    """A config value ODIN cannot use; the message names its full key."""


class MissingSplitError(UserError, RuntimeError):
    """A dataset has no split of the kind asked for (real training images for captions or train.source=real)."""
