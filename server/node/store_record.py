"""`DATA_DIR/store.json`: where a running node's store is, for livecount's own tools.

The embedded DynamoDB Local listens on loopback, on a port that changes at every
start. `livecount backup`, `export`, `admin` and the others run beside the node and
find its store here, with the table prefix and the region, given only `--data-dir`.
The node (or the parent of `--workers`) writes it atomically once the store is up,
and removes it when it stops cleanly. One left by a crash says nothing: the data
dir's lock (`claims.in_use`) tells whether a node holds it now.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

import msgspec

FILE = "store.json"


class StoreRecord(msgspec.Struct, frozen=True, rename="camel"):
    endpoint: str  # the URL a tool asks (`aws`: the SDK's endpoint for `region`)
    region: str
    table_prefix: str
    node_id: str
    lease_time: float  # how long a silent node stays counted as alive (`--lease-time`)
    pid: int


def write(data_dir: Path, record: StoreRecord) -> None:
    path = data_dir / FILE
    partial = path.with_name(f".{FILE}.partial")
    try:
        partial.write_bytes(msgspec.json.encode(record) + b"\n")
        os.replace(partial, path)
    finally:
        partial.unlink(missing_ok=True)


def read(data_dir: Path) -> StoreRecord | None:
    """The record, or None when there is none or it cannot be read."""
    try:
        return msgspec.json.decode((data_dir / FILE).read_bytes(), type=StoreRecord)
    except (OSError, msgspec.DecodeError):
        return None


def remove(data_dir: Path) -> None:
    with contextlib.suppress(OSError):
        (data_dir / FILE).unlink()
