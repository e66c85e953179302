"""The journal's files on disk, apart from the order records are committed in."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import msgspec
from livecount.core.journal import start_record
from livecount.logs import error, warn

RESERVE = "reserve"  # ballast, given up when the disk is full
RESERVE_BYTES = 16 * 1024


class Disk:
    """The journal's only system calls: a seam where tests make the disk fail."""

    def open(self, path: Path) -> int:
        return os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)

    def size(self, fd: int) -> int:
        return os.fstat(fd).st_size

    def append(self, fd: int, data: bytes) -> None:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]

    def sync(self, fd: int) -> None:
        os.fsync(fd)

    def truncate(self, fd: int, size: int) -> None:
        os.ftruncate(fd, size)
        os.fsync(fd)

    def close(self, fd: int) -> None:
        os.close(fd)


class JournalFiles:
    """The `journal-*.log` files of one directory, and the one being appended to.

    The open file never holds part of a batch: `batch` cuts a failed one off again,
    back to the size after the last batch that was fully written and fsynced. Beside
    the files lies a ballast, given up when the disk is full."""

    def __init__(self, directory: Path, disk: Disk | None = None) -> None:
        self.directory = directory
        self.disk = disk or Disk()
        self._fd: int | None = None
        self._path: Path | None = None
        self._good = 0  # the file's size after the last batch that was fully written

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

    def open(self) -> None:
        """Start appending, to a new file: never after a torn line of an old one."""
        files = self._files()
        number = int(files[-1].stem.split("-")[1]) + 1 if files else 0
        self._path = self.directory / f"journal-{number:09d}.log"
        self._fd = self.disk.open(self._path)
        self._good = self.disk.size(self._fd)
        self._reserve()

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

    def release_reserve(self) -> None:
        path = self.directory / RESERVE
        if path.exists():
            path.unlink(missing_ok=True)
            warn(
                "journal_reserve_released",
                hint="the disk is full; views are refused until what the journal holds is stored",
            )

    @contextmanager
    def batch(self) -> Iterator[None]:
        """Appends and restarts within it are all or nothing: on failure the file is
        cut back to its last good size, so a replay never counts a view that was
        answered `unavailable`."""
        assert self._fd is not None
        if self.disk.size(self._fd) != self._good:  # an earlier cut failed: try again
            self.disk.truncate(self._fd, self._good)
        try:
            yield
        except OSError:
            try:
                self.disk.truncate(self._fd, self._good)
            except OSError as cut:
                error("journal_cut_failed", cut, size=self._good)
            raise

    def append(self, data: bytes) -> None:
        """Write `data` (perhaps nothing) and fsync: the file is good up to its end."""
        assert self._fd is not None
        if data:
            self.disk.append(self._fd, data)
        self.disk.sync(self._fd)
        self._good = self.disk.size(self._fd)

    def restart(self, last_seq: int) -> None:
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
        self.append(start_record(last_seq) + b"\n")
        self._reserve()
        folder = os.open(self.directory, os.O_RDONLY)
        try:
            os.fsync(folder)
        finally:
            os.close(folder)

    def close(self) -> None:
        if self._fd is not None:
            self.disk.close(self._fd)
            self._fd = None
