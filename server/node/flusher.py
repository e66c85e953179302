"""The write path's edge: journal a flush, send it, settle it, set refusals aside.

Everything it decides, the engine decides; this module keeps the order the
exactly-once rule needs and does the waiting:
- a flush is taken in the journal's order, once its record is on disk, so a replay
  takes the same keys with the same sequence numbers;
- flushes overlap (a slow one never delays the next one's other keys), and the
  ledger keeps each key in one at a time;
- a flush's keys are released only once its completed record is on disk, so no later
  take can include them in a different order than a replay would;
- report rows (Timeline, Referrer) are taken every `report_interval`, in flushes of
  their own, counts every `interval`; while counts are behind, rows wait (at most one
  more interval of theirs); a drain takes everything.
"""

from __future__ import annotations

import asyncio
import functools
import time
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

from livecount.aws.store import Store
from livecount.core import journal as records
from livecount.core.ledger import Flush, FlushResult
from livecount.core.live import Live
from livecount.core.settlement import Settlement
from livecount.logs import error, log, warn, warn_limited
from livecount.node.dead_letters import DeadLetters
from livecount.node.journal import Journal
from livecount.node.metrics import Metrics
from livecount.waits import backoff, pause

MAX_IN_FLIGHT = 8  # flushes at once: beyond, a tick is skipped (the store is struggling)


class Flusher:
    def __init__(
        self,
        writes: Settlement,
        live: Live[Any],
        journal: Journal,
        store: Store,
        metrics: Metrics,
        data_dir: Path,
        max_in_flight: int = MAX_IN_FLIGHT,
        stored: Callable[[FlushResult], None] = lambda result: None,
    ) -> None:
        self.live = live  # told what a flush's answer moved
        self.stored = stored  # told what the store said it holds now (reports)
        self.writes = writes
        self.journal = journal
        journal.idle = lambda: writes.idle  # rotations wait until all is stored
        self.store = store
        self.metrics = metrics
        self.dead_letters = DeadLetters(data_dir, metrics)
        self.flights = Flights(max_in_flight)  # the loop's flushes
        self._last_seq = 0  # the highest sequence number taken: a new journal file's first
        self._started = False  # this run's start record is on disk: takes may follow

    async def flush_once(self, rows: bool = True, counts: bool = True) -> int:
        """Write what is pending (counts if `counts`, report rows if `rows`) and is not
        in another flush; returns how many views the store confirmed."""
        writes = self.writes
        if not writes.waiting(rows, counts) and not self.journal.queued:
            return 0
        try:
            await self._start_record()
            seq = self._last_seq = writes.next_seq(time.time_ns() // 1000)
            # Taken in the journal's order, once its record is on disk: a replay
            # then resends these writes with the same sequence numbers.
            flush: Flush = await self.journal.append(
                records.taken_record(seq, rows, counts),
                lambda: writes.take(seq, rows=rows, counts=counts),
            )
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
        moved, settled = writes.settle(flush, result)
        self.live.stored_moved(moved, time.time())
        self.stored(result)
        if settled.dead_letters:  # before the journal says they are done
            await self.dead_letters.set_aside(settled.dead_letters)
        if await self._completed(settled.record, flush):
            _quietly(self.journal.rotate(self._last_seq))
        failed = len(result.failed_targets) + len(result.failed_rows)
        self.metrics.flush_failures.inc(failed)
        log(
            "flushed",
            views=settled.views,
            targets=len(result.applied),
            rows=len(flush.rows),
            failed=failed,
            rejected=len(settled.dead_letters),
            pending=writes.pending_views,
            in_flight=writes.in_flight,
        )
        return settled.views

    async def _start_record(self) -> None:
        """This run's first record, before any take: a replay ends there whatever the
        previous run left in flight, as this run's own replay did."""
        if not self._started:
            await self.journal.append(records.start_record(self._last_seq))
            self._started = True

    async def _completed(self, record: bytes, flush: Flush) -> bool:
        """Put the completed record on disk, then release the flush's keys; retried
        until the journal takes it, since releasing them before would let a later
        take differ from what a replay takes. True when everything is now stored."""
        writes = self.writes

        def release() -> bool:
            writes.release(flush)
            return writes.idle and not self.journal.queued

        for delay in backoff(0.1, 2.0):
            try:
                idle: bool = await self.journal.append(record, release)
                return idle
            except Exception as exc:  # the journal fails: views are refused meanwhile
                warn_limited("flush_not_completed", error=str(exc), seq=flush.seq)
                await asyncio.sleep(delay)
        raise AssertionError("unreachable: backoff never ends")

    async def recover(self, stop: asyncio.Event, bound: float, store_id: str) -> None:
        """Replay the journal, then try to store what it holds for up to `bound`
        seconds; what is left is retried by the flush loop while the node serves."""
        self.journal.lock()
        replayed = self.writes.replay(self.journal.read())
        self.journal.bind(store_id, unstored=not self.writes.idle)
        self._last_seq = replayed.last_seq
        self.journal.open()
        try:
            await self._start_record()
        except Exception as exc:  # the first flush tries again, before it takes anything
            warn_limited("flush_not_journaled", error=str(exc))
        if replayed.records:
            log(
                "journal_replayed",
                records=replayed.records,
                views=replayed.views,
                unstored=self.writes.pending_views,
            )
        deadline = time.monotonic() + bound
        for delay in backoff():
            if not self.writes.recovering or stop.is_set():
                return
            await self.flush_once()
            left = deadline - time.monotonic()
            if not self.writes.recovering or left <= 0:
                break
            await pause(stop, min(delay, left))
        if self.writes.recovering:
            warn(
                "recovery_continues",
                unstored=self.writes.pending_views,
                hint="the node serves; unstored views are retried every flush",
            )

    async def loop(
        self, stop: asyncio.Event, interval: float, report_interval: float | None = None
    ) -> None:
        """Counts every `interval`, each flush in its own task so a slow one holds up
        no other; report rows every `report_interval` in a flush of their own, so many
        rows hold no count up (None, or no slower than `interval`: with every flush).
        Returns once the flushes it started are over."""
        every = interval if report_interval is None else report_interval
        next_report = time.monotonic() + every
        try:
            while not await pause(stop, interval):
                now = time.monotonic()
                together = every <= interval or self.writes.recovering
                self._unjam()
                # Counts still out from an earlier tick: the store is behind. Report rows
                # then wait (up to one more report interval), so what pages and the
                # reader table show catches up first.
                behind = self.flights.counting
                self._start(rows=together, counts=True)
                due = now >= next_report and (not behind or now >= next_report + every)
                if not together and due and self._start(rows=True, counts=False):
                    next_report = now + every
        finally:
            await self.flights.settled()

    def _unjam(self) -> None:
        """A journal that failed (a full disk) while everything it holds is stored is
        emptied in place: its space comes back, and views are taken again. Without
        this, a node refusing every view would never flush, so never rotate."""
        journal = self.journal
        if not journal.healthy and self.writes.idle and not journal.queued:
            _quietly(journal.rotate(self.writes.next_seq(time.time_ns() // 1000), first=True))

    def _start(self, rows: bool, counts: bool) -> bool:
        """Start a flush unless too many are out, or (while a replayed journal waits
        for the store) any is: recovery ends on a flush that found nothing unknown,
        which says so only when it was the one flush out."""
        flush = functools.partial(self.flush_once, rows, counts)
        return self.flights.start(flush, counts, alone=self.writes.recovering)

    async def drain(self, within: float) -> None:
        """Flush until nothing is pending, report rows too, giving up after `within`
        seconds."""
        deadline = time.monotonic() + within
        await self.flights.settled(within)
        delays = backoff(0.2, 2.0)
        while not self.writes.idle and time.monotonic() < deadline:
            if not await self.flush_once() and not self.writes.idle:
                await asyncio.sleep(min(next(delays), max(0.0, deadline - time.monotonic())))
        if not self.writes.idle:
            warn("shutdown_unflushed", views=self.writes.pending_views)


async def store_accepted(flusher: Flusher, within: float) -> bool:
    """Store every view accepted so far, report rows too, however many come meanwhile
    (a backup's sync, `core/syncs.py`); False if some are still not stored after
    `within` seconds."""
    writes = flusher.writes
    barrier = writes.barrier()
    deadline = time.monotonic() + within
    delays = backoff(0.05, 1.0)
    try:
        while not barrier.done and (left := deadline - time.monotonic()) > 0:
            await flusher.flights.settled(left)  # the loop's flushes first: they hold keys
            if not barrier.done:
                await flusher.flush_once()
            if not barrier.done:
                await asyncio.sleep(min(next(delays), max(0.0, deadline - time.monotonic())))
    finally:
        writes.drop(barrier)
    return barrier.done


class Flights:
    """The flushes the loop started, each in a task of its own so a slow one holds up no
    other: at most `most` at once, waited for and never cancelled, so none is left half
    done."""

    def __init__(self, most: int) -> None:
        self.most = most
        self._tasks: set[asyncio.Task[int]] = set()
        self._counting: set[asyncio.Task[int]] = set()  # those of them that carry counts

    @property
    def counting(self) -> bool:
        """A flush of counts is still out: the store is behind."""
        return bool(self._counting)

    def start(
        self, flush: Callable[[], Coroutine[Any, Any, int]], counts: bool, alone: bool = False
    ) -> bool:
        """Start `flush` unless `most` are out, or (`alone`) any is."""
        if len(self._tasks) >= self.most or (alone and self._tasks):
            if len(self._tasks) >= self.most:
                warn_limited("flushes_piling_up", in_flight=len(self._tasks))
            return False
        task = asyncio.create_task(flush())
        self._tasks.add(task)
        if counts:
            self._counting.add(task)
        task.add_done_callback(self._done)
        return True

    def _done(self, task: asyncio.Task[int]) -> None:
        self._tasks.discard(task)
        self._counting.discard(task)
        if not task.cancelled() and (exc := task.exception()) is not None:
            error("flush_crashed", exc)

    async def settled(self, within: float | None = None) -> None:
        """Wait (at most `within` seconds) for the flushes out."""
        deadline = None if within is None else time.monotonic() + within
        while self._tasks:
            left = None if deadline is None else deadline - time.monotonic()
            if left is not None and left <= 0:
                return
            await asyncio.wait(set(self._tasks), timeout=left)


def _quietly(future: asyncio.Future[object]) -> None:
    """A record nobody waits for: a failure is the journal's to report, not asyncio's
    'exception never retrieved'."""
    future.add_done_callback(lambda f: f.cancelled() or f.exception())
