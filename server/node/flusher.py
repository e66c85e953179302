"""The write path's edge: journal a flush, send it, settle it, set refusals aside.

Everything it decides, the engine decides; this module keeps the order the
exactly-once rule needs (a flush is on disk before any of its writes leaves, and is
taken in the journal's order) and does the waiting.
"""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path
from typing import Any

from livecount.aws.store import Store
from livecount.core import journal as records
from livecount.core.engine import Engine, Settled
from livecount.core.ledger import Flush, FlushResult
from livecount.logs import error, log, warn, warn_limited
from livecount.node.journal import Journal
from livecount.node.metrics import Metrics
from livecount.waits import backoff, pause

DEAD_LETTERS = "dead-letters.ndjson"


class Flusher:
    def __init__(self, engine: Engine[Any], journal: Journal, store: Store,
                 metrics: Metrics, data_dir: Path) -> None:
        self.engine = engine
        self.journal = journal
        self.store = store
        self.metrics = metrics
        self.dead_letters = data_dir / DEAD_LETTERS
        self._lock = asyncio.Lock()

    async def flush_once(self) -> int:
        """Write what is pending; returns how many views the store confirmed."""
        async with self._lock:
            if self.engine.ledger.idle and not self.journal.queued:
                return 0
            seq = self.engine.next_seq(time.time_ns() // 1000)
            try:
                # Taken in the journal's order, once its record is on disk: a replay
                # then resends these writes with the same sequence numbers.
                flush: Flush = await self.journal.append(
                    records.taken_record(seq), lambda: self.engine.ledger.take(seq))
            except Exception as exc:
                warn_limited("flush_not_journaled", error=str(exc))
                return 0
            if not flush:
                return 0
            try:
                with self.metrics.flush_seconds.time():
                    result = await self.store.flush(flush)
            except Exception as exc:  # whatever broke, the writes stay unsettled
                error("flush_crashed", exc)
                result = FlushResult.nothing_known(flush)
            settled = self.engine.settle(flush, result, time.time())
            if settled.dead_letters:
                await self._set_aside(settled)
            _quietly(self.journal.append(settled.record))
            if settled.rotate:
                _quietly(self.journal.rotate(seq))
            failed = len(result.failed_targets) + len(result.failed_rows)
            self.metrics.flush_failures.inc(failed)
            log("flushed", views=settled.views, targets=len(result.applied), failed=failed,
                rejected=len(settled.dead_letters), pending=self.engine.ledger.pending_views)
            return settled.views

    async def _set_aside(self, settled: Settled) -> None:
        """Writes the store refused go to a file of their own, before the journal says
        they are done: nothing is lost, and nothing retries them for ever."""
        lines = b"".join(line + b"\n" for _, line in settled.dead_letters)
        try:
            await asyncio.to_thread(_append, self.dead_letters, lines)
        except OSError as exc:
            error("dead_letters_unwritten", exc, lines=len(settled.dead_letters))
        self.metrics.dead_letters.inc(len(settled.dead_letters))
        for key, _ in settled.dead_letters:
            warn_limited("dead_letter", key=key, target=key, file=str(self.dead_letters))

    async def recover(self, stop: asyncio.Event, bound: float, store_id: str) -> None:
        """Replay the journal, then try to store what it holds for up to `bound`
        seconds; what is left is retried by the flush loop while the node serves."""
        self.journal.lock()
        replayed = records.replay(self.journal.read(), self.engine.ledger)
        self.journal.bind(store_id, unstored=not self.engine.ledger.idle)
        self.engine.replayed(replayed.last_seq)
        self.journal.open()
        if replayed.records:
            log("journal_replayed", records=replayed.records, views=replayed.views,
                unstored=self.engine.ledger.pending_views)
        deadline = time.monotonic() + bound
        for delay in backoff():
            if not self.engine.recovering or stop.is_set():
                return
            await self.flush_once()
            left = deadline - time.monotonic()
            if not self.engine.recovering or left <= 0:
                break
            await pause(stop, min(delay, left))
        if self.engine.recovering:
            warn("recovery_continues", unstored=self.engine.ledger.pending_views,
                 hint="the node serves; unstored views are retried every flush")

    async def loop(self, stop: asyncio.Event, interval: float) -> None:
        while not await pause(stop, interval):
            await self.flush_once()

    async def drain(self, within: float) -> None:
        """Flush until nothing is pending, giving up after `within` seconds."""
        deadline = time.monotonic() + within
        delays = backoff(0.2, 2.0)
        while not self.engine.ledger.idle and time.monotonic() < deadline:
            if not await self.flush_once() and not self.engine.ledger.idle:
                await asyncio.sleep(min(next(delays), max(0.0, deadline - time.monotonic())))
        if not self.engine.ledger.idle:
            warn("shutdown_unflushed", views=self.engine.ledger.pending_views)


def _append(path: Path, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)


def _quietly(future: asyncio.Future[object]) -> None:
    """A record nobody waits for: a failure is the journal's to report, not asyncio's
    'exception never retrieved'."""
    future.add_done_callback(lambda f: f.cancelled() or f.exception())
