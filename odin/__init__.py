"""ODIN: on-demand data formulation (see README.md)."""

import os
import time
from collections.abc import Callable, Mapping

# How torch's OpenMP threads wait for work, decided here because OpenMP reads it once, when torch loads.
# Spinning threads answer at once: on a quiet machine, training the embedded default on 2 threads takes half
# the time it takes with sleeping ones. But beside another process, a spinning thread holds a core the thread
# it waits for needs: unbounded spinning made training 17x slower there. So threads sleep
# (OMP_WAIT_POLICY=PASSIVE, every OpenMP runtime) and spin briefly first (GOMP_SPINCOUNT, GNU OpenMP: torch's
# Linux wheels) only when two cores are free as the run starts; should a process start on them later, the
# brief spin costs training about 1.5x, not 17x. The policy changes no number, only the time (the thread
# count, train.threads, decides the numbers). A variable set by the user is left as it is.
SPIN_WHEN_FREE = 2000  # spins before sleeping: 2 epochs of the default in 5.8-7.5 s quiet (10.4-11.1 asleep)
WAIT_VARIABLES = ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT")


def cores_free(samples: int = 3, gap_s: float = 0.005) -> int | None:
    """This process's cores less the other processes running now (Linux: /proc/loadavg's runnable count, the
    least of a few quick reads, so that a passing blip does not count); None where that cannot be read."""
    try:
        usable = len(os.sched_getaffinity(0))
        others = []
        for i in range(samples):
            if i:
                time.sleep(gap_s)
            with open("/proc/loadavg") as f:
                others.append(int(f.read().split()[3].split("/")[0]) - 1)  # this process is one of them
    except (OSError, AttributeError, ValueError, IndexError):
        return None
    return usable - min(others)


def openmp_wait(environ: Mapping[str, str], free: Callable[[], int | None]) -> dict[str, str]:
    """The wait variables to set: none when the user set one, else sleeping, with a brief spin first when
    `free()` says two cores are free."""
    if any(name in environ for name in WAIT_VARIABLES):
        return {}
    n = free()
    return {"OMP_WAIT_POLICY": "PASSIVE", **({"GOMP_SPINCOUNT": str(SPIN_WHEN_FREE)} if n is not None and n >= 2
                                            else {})}


os.environ.update(openmp_wait(os.environ, cores_free))
