"""What `python run.py` does around a run: clean messages for the user's errors, a run name, no secret
on the console.

Kept light (no torch) so that `--help` and `--cfg job` stay fast.

Two places turn a user's error into one line (`Error: ...`, exit status 1): `run_job` inside a job
(so a sweep's jobs, in this process or on a cluster node, report the same way) and `main` around
Hydra itself, for what fails before or around the job: composing the config (a key no schema knows,
a config file that does not parse), the launcher's settings, a run dir that cannot be written. A bug
keeps its traceback; HYDRA_FULL_ERROR=1 shows every traceback.
"""

from __future__ import annotations

import errno
import logging
import os
import re
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from omegaconf import DictConfig

log = logging.getLogger("odin")

# Overrides that say where things go or how they are logged, not what the run is.
NOT_IN_NAME = ("paths.", "hydra.", "hydra/", "logger", "+logger")
NOT_WRITABLE = (errno.EACCES, errno.EPERM, errno.EROFS)
# what a key left at ??? usually takes (local paths: nothing is downloaded)
EXAMPLES = {"model": "/models/clip-vit-base-patch32", "vectors": "/data/GoogleNews-vectors-negative300.bin"}


def run_name(overrides: list[str], default: str) -> str:
    """A run's name from what distinguishes it: its command-line overrides ("post=salt model=resnext")."""
    kept = [o for o in overrides if not o.lstrip("+~").startswith(NOT_IN_NAME)]
    return " ".join(kept) or default


def main(hydra_main: Callable[[], Any]) -> None:
    """run.py's `__main__`: Hydra's entry with secrets masked on the console and Hydra's own errors as one line.

    Hydra prints a failed composition itself, repeating the override as given ("To append to your
    config use +prompt.api_key=sk-..."), before any job code runs: so the console streams mask what
    the command line gave under a secret's name, and Hydra is asked (HYDRA_FULL_ERROR) to raise
    instead of printing, so that its errors reach `user_message` here.
    """
    from odin.secrets import MaskedStream, remember_overrides

    remember_overrides(sys.argv[1:])
    sys.stdout, sys.stderr = MaskedStream(sys.stdout), MaskedStream(sys.stderr)
    full = os.environ.get("HYDRA_FULL_ERROR") == "1"
    os.environ["HYDRA_FULL_ERROR"] = "1"
    try:
        hydra_main()
    except Exception as error:
        message = None if full or getattr(error, "odin_bug", False) else user_message(error)
        if message is None:
            raise  # a bug: its traceback goes through the masked stderr
        print(f"Error: {message}", file=sys.stderr)
        sys.exit(1)


def run_job(cfg: DictConfig) -> float | None:
    """The body of run.py's Hydra task: a user's error becomes one line on stderr and exit status 1."""
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode
    from omegaconf import OmegaConf

    from odin.secrets import remember_config, scrub_files, scrub_text

    hydra = HydraConfig.get()
    remember_config(OmegaConf.to_container(cfg, resolve=False))  # secrets written in a config file
    # Hydra has written the config, the overrides and its own config as given: mask secrets there
    # (and in the arguments W&B records) before anything else runs.
    dumps = Path(hydra.runtime.output_dir) / str(hydra.output_subdir)
    scrub_files(dumps / "config.yaml", dumps / "overrides.yaml", dumps / "hydra.yaml",
                Path(hydra.sweep.dir) / "multirun.yaml")
    sys.argv = [scrub_text(arg) for arg in sys.argv]
    try:
        from odin.run import run  # heavy imports (torch, timm) only once a job really runs

        sweep = Path(hydra.sweep.dir) if hydra.mode == RunMode.MULTIRUN else None
        metrics = run(cfg, output_dir=hydra.runtime.output_dir,
                      run_name=scrub_text(run_name(list(hydra.overrides.task), default=str(cfg.name))),
                      group=f"{sweep.parent.name}/{sweep.name}" if sweep else None)  # a sweep's jobs, together
    except Exception as error:
        message = user_message(error, run_dir=hydra.runtime.output_dir, store=_store(cfg), in_job=True)
        if message is None:
            error.odin_bug = True  # so that `main` lets its traceback through as well
            raise
        log.error("Error: %s", message)
        sys.exit(1)
    return metrics.get("top1")  # for sweepers that optimise


def _store(cfg: DictConfig) -> str | None:
    try:
        return str(cfg.paths.store)
    except Exception:  # an unresolvable store path is reported by its own check
        return None


def user_message(error: BaseException, run_dir: str | None = None, store: str | None = None,
                 in_job: bool = False) -> str | None:
    """One line for an error that is the user's to fix (what is wrong, where, what would work); None for a bug.

    Hydra's and OmegaConf's own errors count as the user's only outside a job (`in_job` off): there they come
    from composing the config; inside a job they come from ODIN's code.
    """
    from odin.errors import UserError

    for cause in _chain(error):
        if isinstance(cause, UserError):
            return str(cause)
    for cause in _chain(error):
        if isinstance(cause, OSError) and cause.errno in NOT_WRITABLE + (errno.ENOTDIR,):
            return _not_writable(cause, run_dir, store)
        if type(cause).__name__ == "UnidentifiedImageError":  # PIL's, wherever an image is opened
            return (f"{cause}: the file is damaged. If it is in the store (paths.store), delete it and run again: "
                    "the store makes what is missing; if it is one of your images, replace or remove it")
    from omegaconf.errors import MissingMandatoryValue

    for cause in _chain(error):
        if isinstance(cause, MissingMandatoryValue):
            key = getattr(cause, "full_key", "") or "a key"
            return (f"{key} has no value (??? in its config): give it on the command line, e.g. "
                    f"{key}={EXAMPLES.get(key.rsplit('.', 1)[-1], '<value>')} (python run.py --cfg job shows the "
                    "composed config)")
    launcher = _launcher_key(error)
    if launcher:
        return launcher
    if in_job:
        return None
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    if isinstance(error, HydraException | OmegaConfBaseException):
        return _compose_message(error)
    if _yaml_error(error):
        return _compose_message(error)
    return None


def _chain(error: BaseException):
    seen = set()
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        yield error
        error = error.__cause__ or error.__context__


def _not_writable(error: OSError, run_dir: str | None, store: str | None) -> str:
    path = Path(error.filename or "?")
    reason = os.strerror(error.errno) if error.errno else str(error)
    if error.errno == errno.ENOTDIR:
        return (f"{path}: a part of this path is a file, not a folder ({reason}): point the setting that names it "
                "(paths.store, ODIN_STORE, hydra.run.dir) at a folder")
    where = "make it writable (chmod, chattr -i, or remount read-write)"
    if store and _under(path, store):
        where += (f", or point paths.store (or ODIN_STORE) at a writable folder; the store {store} keeps what is "
                  "made, so running again goes on from there")
    elif run_dir and _under(path, run_dir) or not run_dir:
        where += ", or give the run a writable folder with hydra.run.dir=<folder> (hydra.sweep.dir with -m)"
    return f"cannot write {path} ({reason}): {where}"


def _under(path: Path, root: str) -> bool:
    try:
        return Path(path).resolve().is_relative_to(Path(root).expanduser().resolve())
    except (OSError, ValueError):
        return False


def _launcher_key(error: BaseException) -> str | None:
    """A key the chosen launcher does not take (`+hydra.launcher.bogus_key=1`): Hydra's or submitit's refusal."""
    text = "\n".join(str(e) for e in _chain(error))
    basic = re.search(r"Error in call to target '([\w.]+)'.*?unexpected keyword argument '(\w+)'.*?full_key: "
                      r"hydra\.launcher", text, re.S)
    submitit = re.search(r"Unknown argument '(\w+)' for executor '(\w+)'.*?Valid arguments: ([^\n]*)", text, re.S)
    if basic:
        launcher, key = basic[1].rsplit(".", 1)[-1], basic[2]
        return (f"hydra.launcher.{key}: no such key for the launcher {launcher}; remove it (python run.py -m "
                "--cfg hydra --package hydra.launcher lists the launcher's keys)")
    if submitit:
        key, executor, valid = submitit[1], submitit[2], submitit[3].strip().rstrip(".")
        return (f"hydra.launcher.{key}: no such key for submitit's {executor} executor (its own keys: {valid}); "
                "remove it (python run.py -m --cfg hydra --package hydra.launcher lists the launcher's keys)")
    return None


def _yaml_error(error: BaseException) -> bool:
    return any(type(e).__module__.startswith("yaml") for e in _chain(error))


def _compose_message(error: BaseException) -> str:
    """Hydra's and OmegaConf's composition errors in one line, without Hydra's `+key=value` hint (ODIN refuses
    keys no schema knows, also with `+`) and without OmegaConf's object_type trailer."""
    lines = []
    for cause in _chain(error):
        for line in str(cause).splitlines():
            line = line.strip()
            if (not line or line.startswith(("To append to your config use", "object_type=", "full_key:",
                                              "reference_type=", "Set the environment variable"))
                    or line in lines):
                continue
            lines.append(line)
    text = " ".join(lines)
    missing_key = re.search(r"Could not override '([\w.]+)'.*?Key '(\w+)' not in '(\w+)'", text, re.S)
    if missing_key:
        key, schema = missing_key[1], missing_key[3]
        hint = ("; API keys and tokens come from the environment only (e.g. export OPENAI_API_KEY=...)"
                if _secret_name(key) else "; check the spelling (python run.py --cfg job shows every key)")
        return f"{key}: no such key in {schema}{hint}"
    if _yaml_error(error):
        path = _yaml_path(error) or (where[1] if (where := re.search(r"[\"']([^\"']+\.ya?ml)[\"']", text)) else None)
        text = text.replace(f'in "{path}", ', "") if path else text
        return f"{path or 'a config file'} does not parse as YAML ({text}): fix it (or move it away) and run again"
    return text


def _yaml_path(error: BaseException) -> str | None:
    for cause in _chain(error):
        mark = getattr(cause, "problem_mark", None) or getattr(cause, "context_mark", None)
        if mark is not None and getattr(mark, "name", None):
            return str(mark.name)
    return None


def _secret_name(key: str) -> bool:
    from odin.secrets import SECRET_KEY

    return bool(SECRET_KEY.search(key))
