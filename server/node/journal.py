"""The journal: every accepted view is on disk before its reply goes out.

A SIGKILL or a power cut must not lose a view the server has replied to, nor let a
replay add one twice. The journal is the ledger's history: each view, each flush
taken (with its sequence number) and each flush completed (with what failed), in the
order the ledger saw them. Replaying that history through a fresh `Ledger` rebuilds
exactly what was pending or unsettled; the store's sequence-number condition then
makes resending those writes harmless, whether or not they got through before.

Appends are group-committed: the records of one event-loop moment are written and
fsynced together, in a thread, and every waiter is released at once. When the ledger
is idle (everything stored), the journal starts a new file and drops the old ones.

Lines are JSON arrays: `["v", kind, id, refreshed, hour, title, host]`,
`["t", seq]`, `["c", seq, failed targets, failed rows, failed index]`, and
`["s", seq]` (the last sequence number, first in a new file).
"""

from __future__ import annotations

import asyncio
import fcntl
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import msgspec
from livecount.core.ledger import Flush, FlushResult, Ledger, Row
from livecount.core.pages import Target
from livecount.logs import error

_encoder = msgspec.json.Encoder()


# -- records (pure) -------------------------------------------------------------------
def view_record(target: Target, refreshed: bool, hour: str, title: str | None,
                host: str | None) -> bytes:
    return _encoder.encode(["v", target.kind, target.id, refreshed, hour, title, host])


def taken_record(flush: Flush) -> bytes:
    return _encoder.encode(["t", flush.seq])


def completed_record(flush: Flush, result: FlushResult) -> bytes:
    return _encoder.encode([
        "c", flush.seq, sorted(t.ref for t in result.failed_targets),
        sorted(list(r) for r in result.failed_rows), sorted(t.ref for t in result.failed_index)])


@dataclass
class Replayed:
    records: int = 0
    views: int = 0
    last_seq: int = 0


def replay(records: Iterable[list[Any]], ledger: Ledger) -> Replayed:
    """Feed a journal's history through `ledger`. A flush taken but never completed
    ends unsettled: its writes go again with the same sequence numbers."""
    summary = Replayed()
    flush: Flush | None = None
    for record in records:
        summary.records += 1
        kind = record[0]
        if kind == "v":
            _, target_kind, id_, refreshed, hour, title, host = record
            ledger.record(Target(target_kind, id_), refreshed=refreshed, hour=hour,
                          title=title, referrer=host, force=True)
            summary.views += 1
        elif kind == "t":
            summary.last_seq = max(summary.last_seq, record[1])
            flush = ledger.take(record[1])
        elif kind == "c" and flush is not None and flush.seq == record[1]:
            ledger.complete(flush, FlushResult(
                failed_targets={t for ref in record[2] if (t := Target.from_ref(ref))},
                failed_rows={Row(*r) for r in record[3]},
                failed_index={t for ref in record[4] if (t := Target.from_ref(ref))}))
            flush = None
        elif kind == "s":
            summary.last_seq = max(summary.last_seq, record[1])
    if flush is not None:
        ledger.complete(flush, FlushResult.nothing_known(flush))
    return summary


# -- files (I/O) ---------------------------------------------------------------------
class _Rotate:
    def __init__(self, last_seq: int) -> None:
        self.last_seq = last_seq


class _Sync:
    pass


class JournalBusy(RuntimeError):
    pass


class Journal:
    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.healthy = True
        self._pending: list[bytes | _Rotate | _Sync] = []
        self._waiters: list[asyncio.Future[None]] = []
        self._wake = asyncio.Event()
        self._file: Any = None
        self._lock: Any = None
        self._task: asyncio.Task[None] | None = None

    def _files(self) -> list[Path]:
        return sorted(self.directory.glob("journal-*.log"))

    def read(self) -> Iterator[list[Any]]:
        """Every record of every file, oldest first. A torn last line (a crash mid
        write, never fsynced, so never replied to) ends its file."""
        for path in self._files():
            for line in path.read_bytes().splitlines():
                try:
                    yield msgspec.json.decode(line)
                except msgspec.DecodeError:
                    break

    def lock(self) -> None:
        """Hold the directory for this process: two nodes on one journal would replay
        each other's views. The lock dies with the process, however it dies."""
        self.directory.mkdir(parents=True, exist_ok=True)
        self._lock = (self.directory / "lock").open("a")
        try:
            fcntl.flock(self._lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise JournalBusy(f"{self.directory} is in use by another livecount; "
                              "give each node its own --data-dir") from None

    def bind(self, store: str, unstored: bool) -> None:
        """Tie the journal to the tables it is for. Views waiting for one set of tables
        must not be stored in another (another `--table-prefix` or endpoint): refuse,
        and say how to proceed."""
        meta = self.directory / "store"
        if meta.exists() and unstored and (before := meta.read_text().strip()) != store:
            raise JournalBusy(
                f"{self.directory} holds views not yet stored in {before!r}; start once "
                f"more with those settings to store them, or use another --data-dir")
        temporary = meta.with_name(".store.tmp")
        temporary.write_text(store + "\n")
        os.replace(temporary, meta)

    def open(self) -> None:
        """Start appending, to a new file: never after a torn line of an old one."""
        self._file = self._next_path().open("ab")
        self._task = asyncio.create_task(self._run())

    def _next_path(self) -> Path:
        files = self._files()
        number = int(files[-1].stem.split("-")[1]) + 1 if files else 0
        return self.directory / f"journal-{number:09d}.log"

    def append(self, record: bytes) -> asyncio.Future[None]:
        """Queue a record; the future resolves once it is on disk."""
        self._pending.append(record)
        return self._waiter()

    def rotate(self, last_seq: int) -> asyncio.Future[None]:
        """Start a new file (with `last_seq`) and drop the older ones: call only when
        the ledger is idle, so nothing in them is needed any more."""
        self._pending.append(_Rotate(last_seq))
        return self._waiter()

    def sync(self) -> asyncio.Future[None]:
        """Resolves once everything appended so far is on disk."""
        self._pending.append(_Sync())
        return self._waiter()

    def _waiter(self) -> asyncio.Future[None]:
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        self._wake.set()
        return waiter

    async def _run(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            batch, self._pending = self._pending, []
            waiters, self._waiters = self._waiters, []
            try:
                await asyncio.to_thread(self._write, batch)
            except OSError as exc:
                self.healthy = False
                error("journal_failed", exc)
                for w in waiters:
                    w.set_exception(exc)
                continue
            for w in waiters:
                if not w.done():
                    w.set_result(None)

    def _write(self, batch: list[bytes | _Rotate | _Sync]) -> None:
        for item in batch:
            if isinstance(item, _Rotate):
                self._sync()
                self._new_file(item.last_seq)
            elif isinstance(item, bytes):
                self._file.write(item + b"\n")
        self._sync()

    def _sync(self) -> None:
        self._file.flush()
        os.fsync(self._file.fileno())

    def _new_file(self, last_seq: int) -> None:
        old = self._files()
        fresh = self._next_path().open("ab")
        fresh.write(_encoder.encode(["s", last_seq]) + b"\n")
        fresh.flush()
        os.fsync(fresh.fileno())
        self._file.close()
        self._file = fresh
        for stale in old:
            stale.unlink()
        folder = os.open(self.directory, os.O_RDONLY)
        try:
            os.fsync(folder)
        finally:
            os.close(folder)

    async def close(self) -> None:
        if self._task is not None:
            await asyncio.gather(self.sync(), return_exceptions=True)
            self._task.cancel()
        if self._file is not None:
            self._file.close()
        if self._lock is not None:
            self._lock.close()
