"""The journal: every accepted view is on disk before it counts or is answered.

Appends are group-committed: the records of one event-loop moment are written and
fsynced together, in a thread. Only then is each record's `apply` run, on the loop
and in the file's order, and its waiter released with what `apply` returned. So the
ledger sees exactly the history the files hold (`livecount.core.journal` replays
it), and a view whose write or fsync failed was never counted: its waiter gets
`JournalUnavailable`, the failed batch is cut off the file again, and the journal
reports itself unhealthy until a write succeeds.

When the ledger is idle (everything stored), the journal starts a new file and drops
the old ones. The files themselves (appends, cuts, the ballast for a full disk) are
`livecount.node.journal_files`; this module decides what is written when.
"""

from __future__ import annotations

import asyncio
import errno
import fcntl
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from livecount.core.errors import JournalUnavailable
from livecount.logs import error, log
from livecount.node.journal_files import Disk, JournalFiles


class JournalBusy(RuntimeError):
    pass


class ViewOutcomes(Protocol):
    """Where a view's record goes once written: the per-view path has no future and no
    closure of its own, only the token it was appended with."""

    def stored(self, token: Any) -> None: ...

    def failed(self, token: Any, failure: BaseException) -> None: ...


@dataclass(slots=True)
class _Entry:
    data: bytes | None  # None: a sync point, nothing to write
    apply: Callable[[], Any] | None
    waiter: asyncio.Future[Any] | None
    rotate: int | None = None  # start a new file with this last sequence number first
    view: Any = None  # a view's token for `Journal.views` (then `waiter` is None)


class Journal:
    def __init__(self, directory: Path, disk: Disk | None = None) -> None:
        self.directory = directory
        self.files = JournalFiles(directory, disk)
        self.healthy = True
        # Whether everything written so far is stored (the node sets it to its
        # ledger's `idle`); asked, in the file's order, before each rotation.
        self.idle: Callable[[], bool] = lambda: True
        self.views: ViewOutcomes | None = None  # the node's sockets, for `append_view`
        self._queue: list[_Entry] = []
        self._wake = asyncio.Event()
        self._lock: Any = None
        self._task: asyncio.Task[None] | None = None

    def read(self) -> Iterator[list[Any]]:
        """Every record of every file, oldest first, up to a torn last line."""
        return self.files.read()

    def lock(self) -> None:
        """Hold the directory for this process: two nodes on one journal would replay
        each other's views. The lock dies with the process, however it dies. Held
        already (`serve` takes it before anything else starts), it is kept."""
        if self._lock is not None:
            return
        self.directory.mkdir(parents=True, exist_ok=True)
        self._lock = (self.directory / "lock").open("a")
        try:
            fcntl.flock(self._lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self._lock.close()
            self._lock = None
            raise JournalBusy(
                f"{self.directory} is in use by another livecount; "
                "give each node its own --data-dir"
            ) from None

    def unlock(self) -> None:
        """Let the directory go, for a holder that never opened the journal."""
        if self._lock is not None:
            self._lock.close()
            self._lock = None

    def bind(self, store: str, unstored: bool) -> None:
        """Tie the journal to the tables it is for. Views waiting for one set of tables
        must not be stored in another (another `--table-prefix` or endpoint): refuse,
        and say how to proceed."""
        meta, store = self.directory / "store", store.strip()
        before = meta.read_text().strip() if meta.exists() else None
        if before is not None and unstored and before != store:
            raise JournalBusy(
                f"{self.directory} holds views not yet stored in {before!r}; start once "
                f"more with those settings to store them, or use another --data-dir"
            )
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
        """Start appending, to a new file, and committing what is queued."""
        self.files.open()
        self._task = asyncio.create_task(self._run())

    @property
    def queued(self) -> bool:
        """Records wait to be written (and so to be applied)."""
        return bool(self._queue)

    def append(
        self,
        record: bytes,
        apply: Callable[[], Any] | None = None,
    ) -> asyncio.Future[Any]:
        """Queue a record; the future resolves to `apply()`, run once it is on disk."""
        return self._enqueue(_Entry(record, apply, self._future()))

    def append_view(self, record: bytes, token: Any) -> None:
        """`append` for the per-view path: `views.stored(token)` once the record is on
        disk, in the file's order, or `views.failed(token, error)` if it could not be."""
        self._queue.append(_Entry(record, None, None, view=token))
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
                    any(e.data is not None for e in batch[:i]) or not self.idle()
                ):
                    entry.rotate = None
            try:
                await asyncio.to_thread(self._write, self._segments(batch))
            except OSError as exc:
                if self.healthy:
                    error("journal_failed", exc)
                self.healthy = False
                if exc.errno == errno.ENOSPC:
                    self.files.release_reserve()
                failure = JournalUnavailable(
                    f"the journal could not write ({exc.strerror or exc}); nothing counted"
                )
                for entry in batch:
                    if entry.view is not None:
                        assert self.views is not None
                        self.views.failed(entry.view, failure)
                    elif entry.waiter is not None and not entry.waiter.done():
                        entry.waiter.set_exception(failure)
                continue
            if not self.healthy:
                log("journal_recovered")
                self.healthy = True
            views = self.views
            for entry in batch:
                if entry.view is not None:
                    assert views is not None
                    views.stored(entry.view)
                else:
                    self._settle(entry)

    @staticmethod
    def _settle(entry: _Entry) -> None:
        waiter = entry.waiter
        assert waiter is not None
        if waiter.done():  # its caller went away; the record still applies
            if entry.apply is not None:
                entry.apply()
            return
        try:
            waiter.set_result(entry.apply() if entry.apply is not None else None)
        except Exception as exc:  # a bug in apply: its caller hears of it, nobody else
            waiter.set_exception(exc)

    @staticmethod
    def _segments(batch: list[_Entry]) -> list[tuple[bytes, int | None]]:
        """The batch's bytes, cut where a rotation starts the file afresh. Joined here,
        on the loop: the thread then holds the GIL for nothing but its system calls."""
        segments: list[tuple[bytes, int | None]] = []
        records: list[bytes] = []
        for entry in batch:
            if entry.rotate is not None:
                segments.append((b"".join(records), entry.rotate))
                records = []
            elif entry.data is not None:
                records += (entry.data, b"\n")
        segments.append((b"".join(records), None))
        return segments

    def _write(self, segments: list[tuple[bytes, int | None]]) -> None:
        """One batch, all or nothing (see `JournalFiles.batch`), in the queue's order:
        each segment's bytes, then the rotation that follows it, if any."""
        with self.files.batch():
            for data, rotate in segments:
                self.files.append(data)
                if rotate is not None:
                    self.files.restart(rotate)

    async def close(self) -> None:
        if self._task is not None:
            await asyncio.gather(self.sync(), return_exceptions=True)
            self._task.cancel()
        self.files.close()
        if self._lock is not None:
            self._lock.close()
