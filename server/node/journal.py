"""The journal files: every accepted view is on disk before it counts or is answered.

Appends are group-committed: the records of one event-loop moment are written and
fsynced together, in a thread. Only then is each record's `apply` run, on the loop
and in the file's order, and its waiter released with what `apply` returned. So the
ledger sees exactly the history the files hold (`livecount.core.journal` replays
it), and a view whose write or fsync failed was never counted: its waiter gets
`JournalUnavailable`, the failed batch is cut off the file again, and the journal
reports itself unhealthy until a write succeeds.

When the ledger is idle (everything stored), the journal starts a new file and drops
the old ones.
"""

from __future__ import annotations

import asyncio
import errno
import fcntl
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import msgspec
from livecount.core.errors import JournalUnavailable
from livecount.core.journal import start_record
from livecount.logs import error, log, warn

RESERVE = "reserve"  # ballast, given up when the disk is full
RESERVE_BYTES = 16 * 1024


class JournalBusy(RuntimeError):
    pass


class Disk:
    """The journal's only system calls: a seam where tests make the disk fail."""

    def open(self, path: Path) -> int:
        return os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)

    def size(self, fd: int) -> int:
        return os.fstat(fd).st_size

    def append(self, fd: int, data: bytes) -> None:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]

    def sync(self, fd: int) -> None:
        os.fsync(fd)

    def truncate(self, fd: int, size: int) -> None:
        os.ftruncate(fd, size)
        os.fsync(fd)

    def close(self, fd: int) -> None:
        os.close(fd)


Then = Callable[[Any, BaseException | None], None]  # (what apply returned, or the failure)


@dataclass(slots=True)
class _Entry:
    data: bytes | None  # None: a sync point, nothing to write
    apply: Callable[[], Any] | None
    waiter: asyncio.Future[Any] | Then
    rotate: int | None = None  # start a new file with this last sequence number first


class Journal:
    def __init__(self, directory: Path, disk: Disk | None = None) -> None:
        self.directory = directory
        self.disk = disk or Disk()
        self.healthy = True
        # Whether everything written so far is stored (the node sets it to its
        # ledger's `idle`); asked, in the file's order, before each rotation.
        self.idle: Callable[[], bool] = lambda: True
        self._queue: list[_Entry] = []
        self._wake = asyncio.Event()
        self._fd: int | None = None
        self._path: Path | None = None
        self._good = 0  # the file's size after the last batch that was fully written
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
        meta, store = self.directory / "store", store.strip()
        before = meta.read_text().strip() if meta.exists() else None
        if before is not None and unstored and before != store:
            raise JournalBusy(
                f"{self.directory} holds views not yet stored in {before!r}; start once "
                f"more with those settings to store them, or use another --data-dir")
        if before == store:
            return
        temporary = meta.with_name(".store.tmp")
        try:
            temporary.write_text(store + "\n")
            os.replace(temporary, meta)
        except OSError as exc:
            temporary.unlink(missing_ok=True)
            raise JournalBusy(f"cannot write {meta}: {exc.strerror or exc}") from None

    def open(self) -> None:
        """Start appending, to a new file: never after a torn line of an old one."""
        self._path = self._next_path()
        self._fd = self.disk.open(self._path)
        self._good = self.disk.size(self._fd)
        self._reserve()
        self._task = asyncio.create_task(self._run())

    def _reserve(self) -> None:
        """Keep RESERVE_BYTES of ballast beside the journal. On a full disk it is given
        up, so the flushes' own small records still fit: what the journal holds gets
        stored, the journal empties itself, and the ballast comes back."""
        path = self.directory / RESERVE
        try:
            if not path.exists() or path.stat().st_size < RESERVE_BYTES:
                with path.open("wb") as ballast:
                    os.posix_fallocate(ballast.fileno(), 0, RESERVE_BYTES)
        except OSError:
            path.unlink(missing_ok=True)  # no room even for that: do without

    def _release_reserve(self) -> None:
        path = self.directory / RESERVE
        if path.exists():
            path.unlink(missing_ok=True)
            warn("journal_reserve_released", hint="the disk is full; views are refused "
                 "until what the journal holds is stored")

    def _next_path(self) -> Path:
        files = self._files()
        number = int(files[-1].stem.split("-")[1]) + 1 if files else 0
        return self.directory / f"journal-{number:09d}.log"

    @property
    def queued(self) -> bool:
        """Records wait to be written (and so to be applied)."""
        return bool(self._queue)

    def append(self, record: bytes, apply: Callable[[], Any] | None = None,
               ) -> asyncio.Future[Any]:
        """Queue a record; the future resolves to `apply()`, run once it is on disk."""
        return self._enqueue(_Entry(record, apply, self._future()))

    def append_then(self, record: bytes, apply: Callable[[], Any], then: Then) -> None:
        """`append` without a future, for the per-view path: `then(apply(), None)` once
        the record is on disk, or `then(None, error)` if it could not be written."""
        self._queue.append(_Entry(record, apply, then))
        self._wake.set()

    def rotate(self, last_seq: int, first: bool = False) -> asyncio.Future[Any]:
        """Start a new file (with `last_seq`) and drop the older ones: call only when
        the ledger is idle, so nothing in them is needed any more. `first` puts it
        before records queued since (they go into the new file), so that on a full
        disk the space is freed before they are written."""
        entry = _Entry(None, None, self._future(), rotate=last_seq)
        if first:
            self._queue.insert(0, entry)
            self._wake.set()
            assert isinstance(entry.waiter, asyncio.Future)
            return entry.waiter
        return self._enqueue(entry)

    def sync(self) -> asyncio.Future[Any]:
        """Resolves once everything appended so far is on disk."""
        return self._enqueue(_Entry(None, None, self._future()))

    def _future(self) -> asyncio.Future[Any]:
        return asyncio.get_running_loop().create_future()

    def _enqueue(self, entry: _Entry) -> asyncio.Future[Any]:
        self._queue.append(entry)
        self._wake.set()
        assert isinstance(entry.waiter, asyncio.Future)
        return entry.waiter

    async def _run(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            batch, self._queue = self._queue, []
            for i, entry in enumerate(batch):
                # Rotation drops what the file holds: only right if, in the file's
                # order, everything before it is stored. Records ahead of it in this
                # batch, or views of earlier batches not stored yet, say otherwise; a
                # later rotation will do.
                if entry.rotate is not None and (
                        any(e.data is not None for e in batch[:i]) or not self.idle()):
                    entry.rotate = None
            try:
                await asyncio.to_thread(self._write, batch)
            except OSError as exc:
                if self.healthy:
                    error("journal_failed", exc)
                self.healthy = False
                if exc.errno == errno.ENOSPC:
                    self._release_reserve()
                failure = JournalUnavailable(
                    f"the journal could not write ({exc.strerror or exc}); nothing counted")
                for entry in batch:
                    if isinstance(entry.waiter, asyncio.Future):
                        if not entry.waiter.done():
                            entry.waiter.set_exception(failure)
                    else:
                        entry.waiter(None, failure)
                continue
            if not self.healthy:
                log("journal_recovered")
                self.healthy = True
            for entry in batch:
                self._settle(entry)

    @staticmethod
    def _settle(entry: _Entry) -> None:
        waiter = entry.waiter
        if not isinstance(waiter, asyncio.Future):
            try:
                result = entry.apply() if entry.apply is not None else None
            except Exception as exc:  # a bug in apply: its caller hears of it
                waiter(None, exc)
            else:
                waiter(result, None)
            return
        if waiter.done():  # its caller went away; the record still applies
            if entry.apply is not None:
                entry.apply()
            return
        try:
            waiter.set_result(entry.apply() if entry.apply is not None else None)
        except Exception as exc:  # a bug in apply: its caller hears of it, nobody else
            waiter.set_exception(exc)

    def _write(self, batch: list[_Entry]) -> None:
        """One batch, all or nothing: on failure the file is cut back to its last good
        size, so a replay never counts a view that was answered `unavailable`."""
        assert self._fd is not None
        if self.disk.size(self._fd) != self._good:  # an earlier cut failed: try again
            self.disk.truncate(self._fd, self._good)
        data = bytearray()
        try:
            for entry in batch:
                if entry.rotate is not None:
                    self._flush(data)
                    self._new_file(entry.rotate)
                elif entry.data is not None:
                    data += entry.data + b"\n"
            self._flush(data)
        except OSError:
            try:
                self.disk.truncate(self._fd, self._good)
            except OSError as cut:
                error("journal_cut_failed", cut, size=self._good)
            raise

    def _flush(self, data: bytearray) -> None:
        assert self._fd is not None
        if data:
            self.disk.append(self._fd, bytes(data))
            data.clear()
        self.disk.sync(self._fd)
        self._good = self.disk.size(self._fd)

    def _new_file(self, last_seq: int) -> None:
        """Everything the files hold is stored: keep only the current file, emptied,
        starting with the last sequence number. Space is freed before anything is
        written, so this also works on a full disk (and is how a journal that filled
        its disk gets going again). A crash mid-way leaves an empty file: nothing is
        lost but the last sequence number, and the clock stands in for it."""
        assert self._fd is not None and self._path is not None
        for stale in self._files():
            if stale != self._path:
                stale.unlink()
        self.disk.truncate(self._fd, 0)
        self._good = 0
        self.disk.append(self._fd, start_record(last_seq) + b"\n")
        self.disk.sync(self._fd)
        self._good = self.disk.size(self._fd)
        self._reserve()
        folder = os.open(self.directory, os.O_RDONLY)
        try:
            os.fsync(folder)
        finally:
            os.close(folder)

    async def close(self) -> None:
        if self._task is not None:
            await asyncio.gather(self.sync(), return_exceptions=True)
            self._task.cancel()
        if self._fd is not None:
            self.disk.close(self._fd)
            self._fd = None
        if self._lock is not None:
            self._lock.close()
