"""A node that may have been judged dead reads what it shows from the store again.

`make test`'s cover for the e2e test of a node SIGSTOPped past its lease (in `make
soak`: its fault is half a minute long): here the node's consumer says it was counted
out (`ShardLeases.take_out`, whose rule `core/leases.counted_out` has its unit test),
and the feed's loop must read the catalog from DynamoDB Local."""

from __future__ import annotations

import asyncio
from typing import Any, cast

import pytest
from livecount.aws import store_scan
from livecount.aws.store import Store
from livecount.core.errors import StoreUnavailable
from livecount.core.ledger import Counts
from livecount.node import livefeed as livefeed_module
from livecount.node.livefeed import LiveFeed

from tests.support import eventually
from tests.unit.test_engine import A, T, engine


class Leases:
    """What the feed's loop asks of a consumer's leases: counted out once, then not;
    and told again when its read of the store failed."""

    def __init__(self) -> None:
        self.out = True

    def take_out(self) -> bool:
        out, self.out = self.out, False
        return out

    def mark_out(self) -> None:
        self.out = True


class Consumer:
    """What `LiveFeed` asks of the node's stream consumer."""

    node_id = "me"
    lease_time = 10.0
    nodes = 1  # alone: what the others told it is all that is missed

    def __init__(self) -> None:
        self.leases = Leases()


async def stored(store: Store, total: int, unique: int) -> None:
    await store.ddb.put_item(
        TableName=store.tables.reader,
        Item={
            "articleId": {"S": A.id},
            "totalViews": {"N": str(total)},
            "uniqueViews": {"N": str(unique)},
        },
    )
    await store.pages.register([A], None)


async def counted_out_then_shown(store: Store, monkeypatch: pytest.MonkeyPatch) -> Consumer:
    """A node that showed (2, 1) is counted out while the others counted to (9, 6): its
    feed's loop runs until the node shows the store's counts."""
    e = engine()
    e.engine.loaded({A: Counts(2, 1)}, T)  # what it showed before it was stopped
    e.engine.receive("s", '{"message":"subscribe","articleIds":["a"]}', T)
    await stored(store, 9, 6)  # what the others counted meanwhile
    consumer = Consumer()
    monkeypatch.setattr(livefeed_module, "INTERVAL", 0.05)
    live = LiveFeed(store, e.live, e.readers, cast(Any, consumer), "me", 10.0)
    stop = asyncio.Event()
    loop = asyncio.create_task(live.loop(stop))
    try:
        await eventually(lambda: asyncio.sleep(0, e.live.shown(A)), Counts(9, 6).__eq__)
    finally:
        stop.set()
        await loop
    return consumer


async def test_a_node_counted_out_shows_what_the_store_holds(
    local_store: Store, monkeypatch: pytest.MonkeyPatch
):
    consumer = await counted_out_then_shown(local_store, monkeypatch)
    assert not consumer.leases.out  # read once, and not asked again


async def test_a_failed_read_is_tried_again_at_the_next_interval(
    local_store: Store, monkeypatch: pytest.MonkeyPatch
):
    failures = [StoreUnavailable("the store is away")]
    catalog = store_scan.catalog

    async def flaky(store: Store) -> Any:
        if failures:
            raise failures.pop()
        return await catalog(store)

    monkeypatch.setattr(store_scan, "catalog", flaky)
    await counted_out_then_shown(local_store, monkeypatch)
    assert failures == []  # the first read did fail
