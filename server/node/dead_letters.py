"""Writes the store refused as invalid, set aside in `DATA_DIR/dead-letters.ndjson`.

They go there before the journal says they are done: nothing is lost, and nothing
retries them for ever (one JSON line each: key, delta, the store's error)."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

from livecount.logs import error, warn_limited
from livecount.node.metrics import Metrics

DEAD_LETTERS = "dead-letters.ndjson"


class DeadLetters:
    def __init__(self, data_dir: Path, metrics: Metrics) -> None:
        self.path = data_dir / DEAD_LETTERS
        self.metrics = metrics

    async def set_aside(self, letters: list[tuple[str, bytes]]) -> None:
        """Append each (key, JSON line) to the file, synced; a failure to write is
        logged, and the letters are counted and warned of either way."""
        lines = b"".join(line + b"\n" for _, line in letters)
        try:
            await asyncio.to_thread(_append, self.path, lines)
        except OSError as exc:
            error("dead_letters_unwritten", exc, lines=len(letters))
        self.metrics.dead_letters.inc(len(letters))
        for key, _ in letters:
            warn_limited("dead_letter", key=key, target=key, file=str(self.path))


def _append(path: Path, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
