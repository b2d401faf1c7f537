"""Read an offline W&B run's records back (history rows, exit code, run name) for the logger tests.

wandb 0.31 moved its .wandb reader into its Go core, so this is a small reader of the format it
writes: a 7-byte header (":W&B", magic, version), then LevelDB log records in 32 KiB blocks
(4-byte checksum, 2-byte length, 1-byte type: full / first / middle / last), each a Record protobuf.
"""

from __future__ import annotations

import json
import struct
from pathlib import Path

from wandb.proto import wandb_internal_pb2

BLOCK, HEADER = 32768, 7
FULL, FIRST, MIDDLE, LAST = 1, 2, 3, 4


def records(path: Path):
    data = Path(path).read_bytes()
    assert data[:4] == b":W&B", f"{path} is not a .wandb file"
    pos, pending = HEADER, b""
    while pos + HEADER <= len(data):
        left_in_block = BLOCK - pos % BLOCK
        if left_in_block < HEADER:  # the rest of a block too small for a header is padding
            pos += left_in_block
            continue
        _checksum, length, kind = struct.unpack("<IHB", data[pos:pos + HEADER])
        chunk, pos = data[pos + HEADER:pos + HEADER + length], pos + HEADER + length
        if kind == 0 and length == 0:
            break
        pending = chunk if kind in (FULL, FIRST) else pending + chunk
        if kind in (FULL, LAST):
            record = wandb_internal_pb2.Record()
            record.ParseFromString(pending)
            yield record


def read_run(run_dir: Path) -> dict:
    """History rows, exit code, name, group, job type and id of the one offline run under run_dir."""
    [path] = list(Path(run_dir).glob("wandb/offline-run-*/run-*.wandb"))
    out: dict = {"history": [], "exit_code": None, "name": None, "group": None, "job_type": None, "id": None}
    for record in records(path):
        kind = record.WhichOneof("record_type")
        if kind == "history":
            out["history"].append({item.key or "/".join(item.nested_key): json.loads(item.value_json)
                                   for item in record.history.item})
        elif kind == "exit":
            out["exit_code"] = record.exit.exit_code
        elif kind == "run":
            run = record.run
            out |= {"name": run.display_name, "group": run.run_group, "job_type": run.job_type, "id": run.run_id}
    return out
