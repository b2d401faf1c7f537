"""ODIN: on-demand data formulation (see README.md)."""

import os

# Before torch loads OpenMP: threads that wait for work sleep instead of spinning. With a spinning thread
# per core, training on 2 threads while another process holds a core was 17x slower; sleeping, it keeps
# its speed, and the numbers are the same bytes (the thread count, not the wait policy, decides them).
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
