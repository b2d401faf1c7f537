"""Files a reader never sees half-written: write to a temp name, rename; clean up after failures.

A temp file is `.<name>.<pid>.tmp` beside its target. A failed write removes its own temp file
(on a full disk a leftover would make the retry fail again); a killed writer's is removed by the
next writer of the same target (`remove_stale_temps`), so no cache folder fills up with them.
"""

from __future__ import annotations

import errno
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from odin.errors import UserError


class DiskFullError(UserError):
    pass


def atomic_write(path: Path, write: Callable[[Path], None]) -> None:
    """Call `write(temp_path)`, then rename the temp file over `path`."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        write(tmp)
        os.replace(tmp, path)
    except BaseException as error:
        full = _disk_full(error, path.parent)  # asked before the temp file's space is given back
        tmp.unlink(missing_ok=True)
        if full:
            raise DiskFullError(f"no space left on {path.parent} while writing {path.name}: free some space (or "
                                "point paths.store at a larger disk) and run again; what is done is kept") from error
        raise


def atomic_write_bytes(path: Path, data: bytes) -> None:
    atomic_write(path, lambda tmp: tmp.write_bytes(data))


def atomic_write_json(path: Path, obj: Any) -> None:
    atomic_write_bytes(path, (json.dumps(obj, indent=1, ensure_ascii=False) + "\n").encode())


def remove_stale_temps(path: Path) -> None:
    """Remove temp files of `path` left by writers on this machine that are no longer running."""
    for tmp in path.parent.glob(f".{path.name}.*.tmp"):
        pid = tmp.name[len(path.name) + 2: -len(".tmp")]
        if pid.isdigit() and int(pid) != os.getpid() and not _alive(int(pid)):
            tmp.unlink(missing_ok=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


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
