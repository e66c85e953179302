"""The event archive: every accepted view as a line of JSON, in gzip files.

Off by default (`--archive-dir`). Files are rotated every `--archive-max-events`
views or `--archive-max-seconds`, whichever comes first, and appear whole: each is
written to a hidden temporary name, fsynced, then renamed, so a reader (Athena,
DuckDB, a shipping cron job) never sees half a file. Files sit in `dt=YYYY-MM-DD`
folders, the partition layout warehouse tools expect. What goes in a file is decided
by `livecount.core.archive`; this module only writes.
"""

from __future__ import annotations

import asyncio
import gzip
import os
import time
from pathlib import Path

from livecount.core.archive import ArchivedView, ArchiveFile, Buffer
from livecount.logs import error, log, warn
from livecount.waits import backoff, pause


def write(directory: Path, batch: ArchiveFile) -> Path:
    """Write a batch atomically: temporary file, fsync, rename, fsync the folder."""
    final = directory / batch.name
    final.parent.mkdir(parents=True, exist_ok=True)
    temporary = final.with_name("." + final.name + ".tmp")
    with temporary.open("wb") as raw:
        with gzip.GzipFile(fileobj=raw, mode="wb", mtime=int(batch.started)) as zipped:
            for line in batch.lines:
                zipped.write(line)
                zipped.write(b"\n")
        raw.flush()
        os.fsync(raw.fileno())
    os.replace(temporary, final)
    folder = os.open(final.parent, os.O_RDONLY)
    try:
        os.fsync(folder)
    finally:
        os.close(folder)
    return final


class Writer:
    """Writes batches in order, off the event loop; a failed write is retried, never
    dropped."""

    def __init__(self, directory: Path, buffer: Buffer) -> None:
        self.directory = directory
        self.buffer = buffer
        self.queue: asyncio.Queue[ArchiveFile] = asyncio.Queue()

    def add(self, view: ArchivedView, now: float) -> None:
        if batch := self.buffer.add(view, now):
            self.queue.put_nowait(batch)

    async def due_loop(self, stop: asyncio.Event) -> None:
        """Queue batches that are due by age."""
        while not await pause(stop, 1.0):
            if batch := self.buffer.due(time.time()):
                self.queue.put_nowait(batch)

    async def run(self) -> None:
        while True:
            batch = await self.queue.get()
            for delay in backoff(1.0, 30.0):
                try:
                    path = await asyncio.to_thread(write, self.directory, batch)
                    break
                except OSError as exc:
                    error("archive_failed", exc, file=batch.name, retry_in=delay)
                    await asyncio.sleep(delay)
            log("archived", file=str(path), views=len(batch.lines))
            self.queue.task_done()

    async def close(self, within: float) -> None:
        """Queue what is left and wait, bounded, for it to be written."""
        if batch := self.buffer.take():
            self.queue.put_nowait(batch)
        try:
            await asyncio.wait_for(self.queue.join(), within)
        except TimeoutError:
            warn("archive_unwritten", batches=self.queue.qsize())
