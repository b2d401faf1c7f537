"""Files a reader never sees half-written: write to a temp name, rename; clean up after failures.

A temp file is `.<name>.<host>-<pid>.tmp` beside its target. A failed write removes its own temp
file (on a full disk a leftover would make the retry fail again); a killed writer's is removed by
the next writer of the same target (`remove_stale_temps`) or folder (`remove_stale_temps_in`), so
no cache folder fills up with them. The host is in the name because a store is shared by jobs on
several machines: a process id says whether a writer is alive only on its own machine, so another
machine's temp file is removed only once it is older than any write takes (`STALE_AFTER_S`).
"""

from __future__ import annotations

import errno
import json
import os
import re
import shutil
import socket
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from odin.errors import UserError

HOST = re.sub(r"[^A-Za-z0-9-]+", "-", socket.gethostname()).strip("-") or "host"
NOT_WRITABLE = (errno.EACCES, errno.EPERM, errno.EROFS)
STALE_AFTER_S = 24 * 3600  # another machine's temp file this old belongs to no running write


class DiskFullError(UserError):
    pass


class NotWritableError(UserError, PermissionError):
    """A refused write, said with what would work; still a PermissionError to code that tolerates one (a note
    written as a courtesy in a read-only store)."""

    def __init__(self, message: str, cause: OSError):
        super().__init__(cause.errno, message, cause.filename)
        self.message = message

    def __str__(self) -> str:
        return self.message


def temp_path(path: Path) -> Path:
    return path.with_name(f".{path.name}.{HOST}-{os.getpid()}.tmp")


def atomic_write(path: Path, write: Callable[[Path], None]) -> None:
    """Call `write(temp_path)`, then rename the temp file over `path`."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        if error.errno in NOT_WRITABLE:
            raise not_writable(error) from error
        raise
    tmp = temp_path(path)
    try:
        write(tmp)
        os.replace(tmp, path)
    except BaseException as error:
        full = _disk_full(error, path.parent)  # asked before the temp file's space is given back
        tmp.unlink(missing_ok=True)
        if full:
            raise DiskFullError(f"no space left on {path.parent} while writing {path.name}: free some space (or "
                                "point paths.store at a larger disk) and run again; what is done is kept") from error
        refused = _refused(error, tmp)
        if refused is not None:
            raise not_writable(refused, path) from error
        raise


def not_writable(error: OSError, path: Path | None = None) -> NotWritableError:
    """A folder that refuses a write (read-only mount, `chattr +i`, permissions), named with what would work."""
    folder = Path(error.filename).parent if error.filename else Path(path or ".").parent  # the one that refused
    reason = os.strerror(error.errno) if error.errno else str(error)
    return NotWritableError(
        f"cannot write in {folder} ({reason}): make it writable (chmod, chattr -i, or remount read-write) or point "
        "the setting that names it (paths.store or ODIN_STORE for the store, hydra.run.dir for the run) at a "
        "writable folder; what is already made is kept and reused when you run again", error)


def atomic_write_bytes(path: Path, data: bytes) -> None:
    atomic_write(path, lambda tmp: tmp.write_bytes(data))


def atomic_write_json(path: Path, obj: Any) -> None:
    atomic_write_bytes(path, (json.dumps(obj, indent=1, ensure_ascii=False) + "\n").encode())


def remove_stale_temps(path: Path) -> None:
    """Remove temp files of `path` left by writers that are no longer running."""
    for tmp in path.parent.glob(f".{path.name}.*.tmp"):
        _remove_if_stale(tmp, tmp.name[len(path.name) + 2: -len(".tmp")])


def remove_stale_temps_in(folder: Path) -> None:
    """Remove every dead writer's temp file in `folder` (where writes take no lock: one look per folder)."""
    try:
        temps = list(folder.glob(".*.tmp"))
    except OSError:
        return
    for tmp in temps:
        _remove_if_stale(tmp, tmp.name[1: -len(".tmp")].rpartition(".")[2])


def _remove_if_stale(tmp: Path, writer: str) -> None:
    """`writer` is `<host>-<pid>` (or a bare pid, as older versions named it: taken for this host's)."""
    host, _, pid = writer.rpartition("-") if not writer.isdigit() else (HOST, "", writer)
    if not pid.isdigit():
        return
    if host == HOST:
        stale = int(pid) != os.getpid() and not _alive(int(pid))
    else:
        try:
            stale = time.time() - tmp.stat().st_mtime > STALE_AFTER_S
        except OSError:
            return
    if stale:
        try:
            tmp.unlink(missing_ok=True)
        except OSError:  # a read-only store: nothing to clean that this run could have left
            pass


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _refused(error: BaseException, tmp: Path) -> OSError | None:
    """The OSError of a folder that refuses writes, when that is why `error` happened. torch.save reports it
    as a RuntimeError ("open file failed"): then the folder itself is asked, with a file of our own."""
    if isinstance(error, OSError):
        return error if error.errno in NOT_WRITABLE else None
    if isinstance(error, RuntimeError) and "open file failed" in str(error):
        try:
            os.close(os.open(tmp, os.O_CREAT | os.O_WRONLY, 0o600))
            tmp.unlink(missing_ok=True)
        except OSError as refused:
            return refused if refused.errno in NOT_WRITABLE else None
    return None


def _disk_full(error: BaseException, folder: Path) -> bool:
    if isinstance(error, OSError) and error.errno in (errno.ENOSPC, errno.EDQUOT):
        return True
    # torch.save reports a full disk as "unexpected pos ..." (a RuntimeError): ask the disk itself
    if isinstance(error, RuntimeError) and "unexpected pos" in str(error):
        try:
            return os.statvfs(folder).f_bavail == 0
        except OSError:
            return False
    return False


def drawn_once(kept: Path, out: Path, draw: Callable[[Path], object]) -> Path:
    """`out`, a picture that depends only on what `kept`'s name says: copied from `kept` where it is there,
    else drawn (`draw(out)`) and kept there (a read-only store: drawn again next time)."""
    if kept.is_file():
        shutil.copyfile(kept, out)
        return out
    draw(out)
    try:
        atomic_write_bytes(kept, out.read_bytes())
    except OSError:
        pass
    return out
