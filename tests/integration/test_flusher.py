"""The flush loop on DynamoDB Local: report rows on their own cadence, flushes that
hold no other key up, and a crash with flushes in flight stored exactly once."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from livecount.aws.store import Store
from livecount.core import journal as records
from livecount.core.engine import Append, Core, Settings
from livecount.core.ledger import SITE, Counts, Flush, FlushResult, Ledger
from livecount.core.pages import Target
from livecount.core.report_rows import PERIOD_HOST, is_bucket
from livecount.node.flusher import Flusher
from livecount.node.journal import Journal
from livecount.node.metrics import Metrics

from tests.support import eventually

A, B = Target("post", "a"), Target("post", "b")
HOUR = "2026-11-24T07"


class GatedStore(Store):
    """Holds every flush that writes `gated` (a target, or "rows": any report row)
    until `gate` is set: a slow flush. With `lost`, those writes reach the table first
    and their answer never comes."""

    def __init__(self, store: Store, gated: Target | str, lost: bool = False) -> None:
        super().__init__(store.ddb, store.streams, store.tables)
        self.gated, self.lost = gated, lost
        self.gate = asyncio.Event()
        self.held = asyncio.Event()
        self.flights: list[set[Any]] = []  # the keys of each flush while it is out
        self.overlapped = False
        self._crashed = False

    def crash(self) -> None:
        """The process dies while held flushes wait: they never learn anything."""
        self._crashed = True
        self.gate.set()

    async def flush(self, flush: Flush) -> FlushResult:
        keys = {*flush.targets, *flush.rows}
        self.overlapped |= len(self.flights) > 0
        assert not any(keys & other for other in self.flights), "a key in two flushes"
        self.flights.append(keys)
        try:
            if self.gated not in flush.targets and not (self.gated == "rows" and flush.rows):
                return await super().flush(flush)
            result = await super().flush(flush) if self.lost else None
            self.held.set()
            await self.gate.wait()
            if self._crashed:
                raise asyncio.CancelledError
            return result or await super().flush(flush)
        finally:
            self.flights.remove(keys)


class Node:
    """The write path of one node: engine, journal, flusher, as `serve` wires them."""

    def __init__(self, store: Store, data: Path) -> None:
        self.core: Core[str] = Core.make(Settings())
        self.writes = self.core.writes
        self.journal = Journal(data / "journal")
        self.flusher = Flusher(
            self.writes, self.core.live, self.journal, store, Metrics("test"), data
        )
        self.core.engine.opened("page", "10.0.0.1", None, "Mozilla/5.0", time.time())

    async def view(self, target: Target, host: str | None = None) -> None:
        """A view of `target` from `host`, on its way through the engine and the journal."""
        engine = self.core.engine
        engine.loaded({target: Counts(0, 0)}, time.time(), [target])
        action = engine.receive(
            "page",
            json.dumps(
                {
                    "message": "views",
                    "articleId": target.id,
                    "referrer": f"https://{host}/" if host else None,
                }
            ),
            time.time(),
        )
        assert isinstance(action, Append)
        await self.journal.append(
            action.view.record, lambda: self.core.live.stored(action.view, time.time())
        )


@asynccontextmanager
async def node(
    store: Store,
    data: Path,
    report_interval: float | None = None,
) -> AsyncIterator[tuple[Node, Callable[[], Any]]]:
    """A started node with its flush loop; yields it and a function that stops the loop
    and drains, as a SIGTERM does."""
    n = Node(store, data)
    stop = asyncio.Event()
    await n.flusher.recover(stop, 5.0, "test")
    loop = asyncio.create_task(n.flusher.loop(stop, 0.05, report_interval))

    async def drain() -> None:
        stop.set()
        await loop
        await n.flusher.drain(10.0)

    try:
        yield n, drain
    finally:
        stop.set()
        if isinstance(store, GatedStore):
            store.gate.set()  # a test that failed while a flush was held ends all the same
        await loop
        await n.journal.close()


async def counts(store: Store, table: str, key: str) -> dict[str, int]:
    """Each item's count; of the report rows, the hours' and the all-time hosts' only (their
    rollups and periods' hosts are written with them: tests/unit/test_period_totals.py)."""
    items = (await store.ddb.scan(TableName=table, ConsistentRead=True))["Items"]
    field = "views" if table == store.tables.referrers else "totalViews"
    return {
        i[key]["S"] + (f" {i['host']['S']}" if "host" in i else ""): int(i[field]["N"])
        for i in items
        if not is_bucket(i[key]["S"]) and not i.get("host", {}).get("S", "").startswith(PERIOD_HOST)
    }


async def test_report_rows_wait_for_their_cadence_and_a_drain_writes_them(
    local_store: Store, tmp_path: Path
):
    tables = local_store.tables
    async with node(local_store, tmp_path, report_interval=3600) as (n, drain):
        for _ in range(3):
            await n.view(A, "x.org")
        await eventually(
            lambda: counts(local_store, tables.writer, "articleId"), lambda c: c == {"a": 3}
        )
        await n.view(A, "x.org")
        await eventually(
            lambda: counts(local_store, tables.writer, "articleId"), lambda c: c == {"a": 4}
        )
        # Counts went out twice; the report rows are still waiting for their hour.
        assert await counts(local_store, tables.referrers, "target") == {}
        assert await counts(local_store, tables.timeline, "target") == {}

        async def pending() -> int:  # the table may show the write before the node
            return n.writes.pending_views  # has settled its answer

        await eventually(pending, lambda p: p == 0)
        assert not n.writes.idle
        await drain()
        assert n.writes.idle
    assert await counts(local_store, tables.referrers, "target") == {
        f"{A.ref} x.org": 4,
        f"{SITE} x.org": 4,
    }
    assert await counts(local_store, tables.timeline, "target") == {A.ref: 4, SITE: 4}


async def test_report_rows_go_with_every_flush_when_their_cadence_is_no_slower(
    local_store: Store, tmp_path: Path
):
    async with node(local_store, tmp_path, report_interval=0.01) as (n, _):
        await n.view(B, "y.org")
        await eventually(
            lambda: counts(local_store, local_store.tables.referrers, "target"),
            lambda c: c == {f"{B.ref} y.org": 1, f"{SITE} y.org": 1},
        )


async def test_a_slow_report_flush_holds_up_no_count(local_store: Store, tmp_path: Path):
    gated = GatedStore(local_store, "rows")
    tables = local_store.tables
    async with node(gated, tmp_path, report_interval=0.1) as (n, drain):
        await n.view(A, "x.org")
        await asyncio.wait_for(gated.held.wait(), 10)  # the rows' flush is out, and slow
        await n.view(A, "x.org")
        await eventually(
            lambda: counts(local_store, tables.writer, "articleId"), lambda c: c == {"a": 2}
        )
        assert await counts(local_store, tables.referrers, "target") == {}
        gated.gate.set()
        await drain()
    assert await counts(local_store, tables.referrers, "target") == {
        f"{A.ref} x.org": 2,
        f"{SITE} x.org": 2,
    }


class RowsClock(GatedStore):
    """A GatedStore that notes when the first flush carrying report rows came."""

    rows_at: float | None = None

    async def flush(self, flush: Flush) -> FlushResult:
        if flush.rows and self.rows_at is None:
            self.rows_at = time.monotonic()
        return await super().flush(flush)


async def test_report_rows_wait_while_counts_are_behind_but_not_for_ever(
    local_store: Store, tmp_path: Path
):
    """The store is slow (A's count flush is out): rows give the counts the store's time,
    for one more report interval, and then go all the same."""
    every = 0.5
    gated = RowsClock(local_store, A)
    began = time.monotonic()  # the loop starts after this: its first report is later
    async with node(gated, tmp_path, report_interval=every) as (n, drain):
        await n.view(A, "x.org")
        await asyncio.wait_for(gated.held.wait(), 10)
        await eventually(
            lambda: counts(local_store, local_store.tables.referrers, "target"),
            lambda c: c == {f"{A.ref} x.org": 1, f"{SITE} x.org": 1},
        )
        assert not gated.gate.is_set()  # the counts are still behind: rows went anyway
        assert gated.rows_at is not None and gated.rows_at - began >= 2 * every
        gated.gate.set()
        await drain()
    assert await counts(local_store, local_store.tables.writer, "articleId") == {"a": 1}


async def test_a_slow_flush_holds_up_no_other_key(local_store: Store, tmp_path: Path):
    gated = GatedStore(local_store, A)
    writer = local_store.tables.writer
    async with node(gated, tmp_path) as (n, drain):
        await n.view(A)
        await asyncio.wait_for(gated.held.wait(), 10)
        await n.view(A)  # waits: its elder write of A is out
        for _ in range(2):
            await n.view(B)
        # B is written, by later flushes, while A's flush is still out.
        await eventually(lambda: counts(local_store, writer, "articleId"), lambda c: c == {"b": 2})
        assert gated.overlapped and not gated.gate.is_set()
        gated.gate.set()
        await eventually(
            lambda: counts(local_store, writer, "articleId"), lambda c: c == {"a": 2, "b": 2}
        )
        await drain()
        assert n.writes.idle


async def test_a_crash_with_flushes_in_flight_stores_every_view_once(
    local_store: Store, tmp_path: Path
):
    # A's writes reach the table, their answer never comes; B's flushes complete.
    gated = GatedStore(local_store, A, lost=True)
    writer, referrers = local_store.tables.writer, local_store.tables.referrers
    async with node(gated, tmp_path) as (n, _):
        await n.view(A, "x.org")
        await asyncio.wait_for(gated.held.wait(), 10)
        await n.view(A, "x.org")
        await n.view(B, "y.org")
        await eventually(
            lambda: counts(local_store, writer, "articleId"), lambda c: c == {"a": 1, "b": 1}
        )
        assert n.writes.in_flight >= 1
        gated.crash()
    # The process is gone (its loop and flushes with it); its journal is on disk and
    # says A's first write is of unknown outcome, its second view still to send.
    left = Ledger()
    records.replay(Journal(tmp_path / "journal").read(), left)
    pending, unknown = left.outstanding()
    assert pending[A] == (1, 1) and unknown[A].delta.total == 1 and B not in unknown
    async with node(local_store, tmp_path) as (again, drain):
        await eventually(
            lambda: counts(local_store, writer, "articleId"), lambda c: c == {"a": 2, "b": 1}
        )
        await drain()
        assert again.writes.idle
    assert await counts(local_store, writer, "articleId") == {"a": 2, "b": 1}
    assert await counts(local_store, referrers, "target") == {
        "post#a x.org": 2,
        "post#b y.org": 1,
        f"{SITE} x.org": 2,
        f"{SITE} y.org": 1,
    }
