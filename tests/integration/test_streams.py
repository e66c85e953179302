"""The stream consumer against DynamoDB Local's real Streams."""

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest
from botocore.exceptions import EndpointConnectionError
from livecount.aws import consumer as consumer_module
from livecount.aws.consumer import StreamConsumer
from livecount.aws.store import Store
from livecount.aws.store_admin import Operations
from livecount.core import feed, sharing
from livecount.core.errors import StoreRejected, StoreUnavailable
from livecount.core.leases import NODE_PREFIX, Lease, LeaseItem
from livecount.core.ledger import Delta
from livecount.core.moves import Plan
from livecount.core.pages import Target
from livecount.core.stream_copy import ReaderWrite, copy_and_feed
from livecount.core.tables import Tables
from livecount.waits import pause as waits_pause

from tests.support import eventually, flush_of


@asynccontextmanager
async def consuming(
    store: Store,
    seen: list[tuple[str, int, int]],
) -> AsyncIterator[StreamConsumer]:
    consumer = StreamConsumer(store, lambda *image: seen.append(image), poll_interval=0.05)
    stop = asyncio.Event()
    task = asyncio.create_task(consumer.run(stop))
    try:
        yield consumer
    finally:
        stop.set()
        await task


async def reader(store: Store) -> dict[str, tuple[int, int, int]]:
    items = (await store.ddb.scan(TableName=store.tables.reader, ConsistentRead=True))["Items"]
    return {
        i["articleId"]["S"]: (
            int(i["totalViews"]["N"]),
            int(i["uniqueViews"]["N"]),
            int(i["version"]["N"]),
        )
        for i in items
    }


async def writer(store: Store) -> dict[str, tuple[int, int, int]]:
    items = (await store.ddb.scan(TableName=store.tables.writer, ConsistentRead=True))["Items"]
    return {
        i["articleId"]["S"]: (
            int(i["totalViews"]["N"]),
            int(i["uniqueViews"]["N"]),
            int(i["version"]["N"]),
        )
        for i in items
    }


async def write(store: Store, **views: int) -> None:
    await store.flush(flush_of(targets={Target("post", k): Delta(v, v) for k, v in views.items()}))


async def test_the_reader_table_follows_the_writer(local_store: Store):
    seen: list[tuple[str, int, int]] = []
    async with consuming(local_store, seen) as consumer:
        await write(local_store, a=2, b=1)
        await write(local_store, a=3)
        expected = await writer(local_store)
        await eventually(lambda: reader(local_store), lambda r: r == expected)
        assert expected["a"] == (5, 5, 2)
        await asyncio.wait_for(consumer.caught_up.wait(), 10)  # a quiet round follows
        # The reader can hold a copy before its round hands the image on (the round
        # awaits every copy of its batch first): once two more rounds ended, it has.
        await asyncio.wait_for(consumer.settled(), 10)
        assert ("a", 5, 5) in seen and ("b", 1, 1) in seen


async def test_a_count_that_went_down_is_read_again_by_the_consumers_node(local_store: Store):
    """A delete brings `a` down: the consumer's own node is told to read it again (the
    images it showed before are larger, and counts merge by maximum); `b`, counted
    on, is not."""
    down: list[list[str]] = []

    async def went_down(articles: list[str]) -> None:
        down.append(articles)

    consumer = StreamConsumer(
        local_store, lambda *image: None, poll_interval=0.05, on_down=went_down
    )
    stop = asyncio.Event()
    task = asyncio.create_task(consumer.run(stop))
    try:
        await write(local_store, a=3, b=1)
        await eventually(lambda: reader(local_store), lambda r: r.get("a", (0,))[0] == 3)
        await Operations(local_store).run(Plan("a"))
        await write(local_store, b=2)
        await eventually(lambda: reader(local_store), lambda r: r["a"][0] == 0 and r["b"][0] == 3)
        await eventually(lambda: _now(down), lambda d: d == [["a"]])
    finally:
        stop.set()
        await task


async def _now(found: list[list[str]]) -> list[list[str]]:
    return list(found)


async def test_a_restarted_consumer_resumes_from_its_checkpoint(local_store: Store):
    async with consuming(local_store, []) as first:
        await write(local_store, a=1)
        await eventually(lambda: reader(local_store), lambda r: "a" in r)
        await asyncio.wait_for(first.settled(), 10)
    checkpoints = (await local_store.ddb.scan(TableName=local_store.tables.checkpoints))["Items"]
    assert checkpoints and all("sequenceNumber" in c for c in checkpoints)

    await write(local_store, b=1)
    seen: list[tuple[str, int, int]] = []
    async with consuming(local_store, seen) as second:
        await eventually(lambda: reader(local_store), lambda r: "b" in r)
        await asyncio.wait_for(second.settled(), 10)
    assert second.copied == 1  # only the record after the checkpoint
    assert [s[0] for s in seen] == ["b"]


async def stream_records(store: Store) -> list[dict[str, Any]]:
    """Every record of the writer's stream so far, through the store interface."""
    arn = await store.stream.stream_arn()
    records: list[dict[str, Any]] = []
    for shard in await store.stream.shards(arn):
        batch = await store.stream.read(await store.stream.iterator(arn, shard.id, None))
        assert batch is not None
        records += batch.records
    return records


async def test_replayed_and_reordered_images_never_go_backwards(local_store: Store):
    await write(local_store, a=1)
    await write(local_store, a=1)
    work = copy_and_feed(await stream_records(local_store), local_store.tables, "n", 0.0)
    writes = work.writes
    assert [w.change for w in writes] == [("a", 1, 1), ("a", 2, 2)]
    assert await local_store.stream.copy(writes[1]) is True  # newest first (reordered)
    assert await local_store.stream.copy(writes[0]) is False  # the older image is refused
    assert await local_store.stream.copy(writes[1]) is False  # a replay is a no-op
    assert (await reader(local_store))["a"] == (2, 2, 2)


def image_record(article: str, total: int, version: int, sequence: str) -> dict[str, Any]:
    """A stream record as DynamoDB Streams delivers it."""
    image = {
        "articleId": {"S": article},
        "totalViews": {"N": str(total)},
        "uniqueViews": {"N": str(total)},
        "version": {"N": str(version)},
    }
    return {
        "eventName": "MODIFY",
        "dynamodb": {
            "Keys": {"articleId": {"S": article}},
            "NewImage": image,
            "SequenceNumber": sequence,
        },
    }


async def test_lease_writes_are_conditional_on_owner_and_counter(local_store: Store):
    stream = local_store.stream
    leases = stream.leases
    arn = await stream.stream_arn()
    shard = (await stream.shards(arn))[0].id

    async def lease_item() -> LeaseItem:
        return next(i for i in await leases.items(arn) if i.lease.key == shard)

    await leases.add_lease(shard, arn)
    await leases.add_lease(shard, arn)  # made once: the second is refused, quietly
    assert await lease_item() == LeaseItem(Lease(shard, None, 0))
    taken = await leases.take(Lease(shard, None, 0), "a")
    assert taken == LeaseItem(Lease(shard, "a", 1))
    assert await leases.take(Lease(shard, None, 0), "b") is None  # "a" moved first
    assert await leases.renew(shard, "b", 1) is None  # not b's
    assert await leases.renew(shard, "a", 1) == 2
    assert await leases.renew(shard, "a", 1) is None  # a stale counter: no longer a's to renew
    assert await leases.checkpoint(shard, "b", "100") is False
    assert await leases.checkpoint(shard, "a", "100", finished=True) is True
    assert await lease_item() == LeaseItem(Lease(shard, "a", 2), finished=True, checkpoint="100")
    await leases.release(shard, "b")  # not b's: nothing changes
    assert (await lease_item()).lease.owner == "a"
    await leases.release(shard, "a")
    assert (await lease_item()).lease.owner is None

    assert [await leases.announce("a"), await leases.announce("a")] == [1, 2]
    assert Lease(NODE_PREFIX + "a", "a", 2) in [i.lease for i in await leases.items(arn)]
    await leases.leave("a")
    assert [i.lease.key for i in await leases.items(arn)] == [shard]


async def test_the_feed_is_written_only_while_another_node_is_alive(local_store: Store):
    async def told() -> list[feed.Change]:
        return [c for _, payload in await local_store.feed.read(0) for c in feed.decode(payload)]

    async with consuming(local_store, []) as consumer:
        await write(local_store, a=1)
        await eventually(lambda: reader(local_store), lambda r: "a" in r)
        await asyncio.wait_for(consumer.settled(), 10)
        assert await local_store.feed.read(0) == []  # alone: nobody to tell

        # A node that comes may have read `a` before its copy, and nobody told it since:
        # the recent changes are told as soon as it is seen, with no new write.
        await local_store.stream.leases.announce("other")  # alive for a lease time from now
        assert await eventually(told, bool) == [("a", 1, 1)]
        assert consumer.nodes == 2
        await write(local_store, a=2)
        assert await eventually(told, lambda t: len(t) > 1) == [("a", 1, 1), ("a", 3, 3)]


async def test_a_copy_the_store_rejects_is_skipped_and_later_ones_apply(local_store: Store):
    long_id = "x" * 2100  # over DynamoDB's 2,048-byte partition key: refused as invalid
    poison = copy_and_feed([image_record(long_id, 1, 1, "1")], local_store.tables, "n", 0.0)
    with pytest.raises(StoreRejected, match="ValidationException"):
        await local_store.stream.copy(poison.writes[0])

    seen: list[tuple[str, int, int]] = []
    consumer = StreamConsumer(local_store, lambda *image: seen.append(image))
    await consumer._copy([image_record(long_id, 1, 1, "1"), image_record("a", 4, 1, "2")])
    assert await reader(local_store) == {"a": (4, 4, 1)}
    assert seen == [("a", 4, 4)] and consumer.copied == 1


async def test_a_renewal_carries_the_checkpoint_and_a_release_the_last_one(local_store: Store):
    stream = local_store.stream
    leases = stream.leases
    arn = await stream.stream_arn()
    shard = (await stream.shards(arn))[0].id
    await leases.add_lease(shard, arn)
    await leases.take(Lease(shard, None, 0), "a")
    assert await leases.renew(shard, "a", 1, "200") == 2
    assert await leases.renew(shard, "b", 2, "300") is None  # not b's: nothing written
    items = {i.lease.key: i for i in await leases.items(arn)}
    assert items[shard] == LeaseItem(Lease(shard, "a", 2), checkpoint="200")
    await leases.release(shard, "a", "250")
    items = {i.lease.key: i for i in await leases.items(arn)}
    assert items[shard] == LeaseItem(Lease(shard, None, 2), checkpoint="250")


async def test_a_lease_holder_renews_with_its_checkpoint_and_does_not_announce_itself(
    local_store: Store,
):
    stream = local_store.stream
    leases = stream.leases
    arn = await stream.stream_arn()
    seen: list[tuple[str, int, int]] = []
    consumer = StreamConsumer(
        local_store, lambda *image: seen.append(image), "holder", lease_time=0.6, poll_interval=0.05
    )
    stop = asyncio.Event()
    task = asyncio.create_task(consumer.run(stop))
    try:
        await write(local_store, a=1)
        await eventually(lambda: reader(local_store), lambda r: "a" in r)

        async def items() -> dict[str, LeaseItem]:
            return {i.lease.key: i for i in await leases.items(arn)}

        shard = next(iter(consumer.held))
        # The checkpoint reaches the lease item with a renewal, not a write of its own.
        await eventually(items, lambda i: i[shard].checkpoint is not None)
        presence = (await items())[NODE_PREFIX + "holder"].lease.counter
        renewals = (await items())[shard].lease.counter
        await eventually(items, lambda i: i[shard].lease.counter >= renewals + 3)
        assert (await items())[NODE_PREFIX + "holder"].lease.counter == presence

        # Another node sees it alive through the lease it renews.
        other = StreamConsumer(
            local_store, lambda *image: None, "other", lease_time=0.6, poll_interval=0.05
        )
        other_stop = asyncio.Event()
        other_task = asyncio.create_task(other.run(other_stop))

        async def nodes() -> tuple[int, int]:
            return consumer.nodes, other.nodes

        await eventually(nodes, lambda n: n == (2, 2))
        assert not other.held
        other_stop.set()
        await other_task
    finally:
        stop.set()
        await task


async def test_images_a_later_one_supersedes_in_a_batch_are_not_copied(local_store: Store):
    consumer = StreamConsumer(local_store, lambda *image: None)
    await consumer._copy(
        [
            image_record("a", 1, 1, "1"),
            image_record("b", 5, 1, "2"),
            image_record("a", 2, 2, "3"),
            image_record("a", 3, 3, "4"),
        ]
    )
    assert await reader(local_store) == {"a": (3, 3, 3), "b": (5, 5, 1)}
    assert consumer.copied == 2
    removed = {
        "eventName": "REMOVE",
        "dynamodb": {
            "Keys": {"articleId": {"S": "a"}},
            "SequenceNumber": "6",
            "OldImage": image_record("a", 4, 4, "5")["dynamodb"]["NewImage"],
        },
    }
    await consumer._copy([image_record("a", 4, 4, "5"), removed, image_record("a", 1, 1, "7")])
    assert (await reader(local_store))["a"] == (1, 1, 1)  # every side of the delete applied
    assert consumer.copied == 5


async def test_alone_and_quiet_its_own_write_wakes_the_copy(
    local_store: Store, monkeypatch: pytest.MonkeyPatch
):
    waits: list[float] = []

    async def pause(
        stop: asyncio.Event,
        seconds: float,
        wake: asyncio.Event | None = None,
    ) -> bool:
        waits.append(seconds)
        return await waits_pause(stop, seconds, wake)

    monkeypatch.setattr(consumer_module, "pause", pause)
    monkeypatch.setattr(consumer_module, "QUIET_AFTER", 0.5)
    # Alone, a quiet shard's polls thin out to one per lease round (20 s here), past
    # the one a second kept while other nodes may write.
    consumer = StreamConsumer(local_store, lambda *image: None, lease_time=60.0, poll_interval=0.05)
    stop = asyncio.Event()
    task = asyncio.create_task(consumer.run(stop))

    async def longest() -> float:
        return max(waits, default=0.0)

    try:
        await eventually(longest, lambda w: w >= 3.0)  # now in a wait of 3 s or more
        await write(local_store, a=1)
        await eventually(lambda: reader(local_store), lambda r: "a" in r, timeout=2.0)
    finally:
        stop.set()
        await task


def puts(tables: Tables, version: int, articles: list[str]) -> list[ReaderWrite]:
    """The reader puts of an image per article, `version` and 10 x `version` views each."""
    return copy_and_feed(
        [image_record(a, version * 10, version, str(version)) for a in articles], tables, "n", 0.0
    ).writes


async def test_copies_go_25_a_request_and_keep_the_version_rule(local_store: Store):
    stream = local_store.stream
    tables = local_store.tables
    many = [f"p{i}" for i in range(30)]
    calls: list[int] = []
    batch = stream.ddb_once.batch_execute_statement

    async def spy(**kwargs: Any) -> Any:
        calls.append(len(kwargs["Statements"]))
        return await batch(**kwargs)

    stream.ddb_once.batch_execute_statement = spy
    assert await stream.copy_many(puts(tables, 2, many)) == [True] * 30  # new: INSERTs
    assert calls == [25, 5]
    assert await stream.copy_many(puts(tables, 2, many)) == [False] * 30  # replayed: refused
    assert await stream.copy_many(puts(tables, 1, many[:3])) == [False] * 3  # older: refused
    assert await stream.copy_many(puts(tables, 3, many[:3])) == [True] * 3  # newer: UPDATEs
    # A reader item unknown to this store's memory, and a known one that went away.
    other = Store(
        local_store.ddb, local_store.streams, tables, ddb_once=local_store.ddb_once
    ).stream
    assert await other.copy_many(puts(tables, 4, ["p0"])) == [True]  # INSERT, then UPDATE
    await local_store.ddb.delete_item(TableName=tables.reader, Key={"articleId": {"S": "p1"}})
    assert await stream.copy_many(puts(tables, 5, ["p1"])) == [True]  # UPDATE, then INSERT
    stored = await reader(local_store)
    assert stored["p0"] == (40, 40, 4) and stored["p1"] == (50, 50, 5)
    assert stored["p2"] == (30, 30, 3) and stored["p9"] == (20, 20, 2) and len(stored) == 30


async def test_a_copy_refused_as_invalid_is_told_apart_and_the_rest_apply(local_store: Store):
    writes = puts(local_store.tables, 1, ["x" * 2100, "a"])
    poison, fine = await local_store.stream.copy_many(writes)
    assert isinstance(poison, StoreRejected) and fine is True
    assert await reader(local_store) == {"a": (10, 10, 1)}


async def test_alone_and_busy_an_articles_newest_image_is_copied_once(local_store: Store):
    async with consuming(local_store, []) as consumer:  # polls every 0.05 s when busy
        await asyncio.wait_for(consumer.caught_up.wait(), 20)
        await write(local_store, a=1)
        await eventually(lambda: reader(local_store), lambda r: "a" in r)
        for _ in range(4):  # a write every 0.2 s: paced load, within one gathering
            await write(local_store, a=1)
            await asyncio.sleep(0.2)
        await eventually(lambda: reader(local_store), lambda r: r.get("a") == (5, 5, 5))
        assert consumer.copied <= 3  # not each image: the newest of a gathering


async def test_once_copies_batch_one_lost_is_raised_for_the_records_to_be_read_again(
    local_store: Store,
):
    stream = local_store.stream
    batch = stream.ddb_once.batch_execute_statement
    lose = False

    async def maybe_lost(**kwargs: Any) -> Any:
        answered = await batch(**kwargs)
        if lose:
            raise EndpointConnectionError(endpoint_url="http://lost")
        return answered

    stream.ddb_once.batch_execute_statement = maybe_lost
    assert await stream.copy_many(puts(local_store.tables, 1, ["a"])) == [True]
    lose = True
    with pytest.raises(StoreUnavailable):
        await stream.copy_many(puts(local_store.tables, 2, ["a", "b"]))
    lose = False
    # Read again: the copies that got through are refused as the reader's own.
    assert await stream.copy_many(puts(local_store.tables, 2, ["a", "b"])) == [False, False]
    assert await reader(local_store) == {"a": (20, 20, 2), "b": (20, 20, 2)}


async def test_changes_whose_telling_failed_are_told_however_long_the_feed_was_away(
    local_store: Store, monkeypatch: pytest.MonkeyPatch
):
    """Found by a hostile trial: after a failed feed write the consumer told only the
    recent past again, so a change older than that when the feed came back was never
    told, and the other nodes (alive, so never reading the store again) showed less."""
    monkeypatch.setattr(sharing, "RECENT", 0.0)  # the recent past: a third of the lease
    away = asyncio.Event()
    away.set()
    share = local_store.stream.share

    async def failing(items: list[dict[str, Any]]) -> None:
        if away.is_set():
            raise StoreUnavailable("the feed is away")
        await share(items)

    monkeypatch.setattr(local_store.stream, "share", failing)

    async def told() -> list[feed.Change]:
        return [c for _, payload in await local_store.feed.read(0) for c in feed.decode(payload)]

    async with consuming(local_store, []) as consumer:
        await local_store.stream.leases.announce("other")

        async def nodes() -> int:
            return consumer.nodes

        await eventually(nodes, lambda n: n == 2)
        await write(local_store, a=1)
        await eventually(lambda: reader(local_store), lambda r: "a" in r)
        await asyncio.sleep(consumer.lease_time / 3 + 1)  # away past the recent past
        await local_store.stream.leases.announce("other")  # still alive
        away.clear()
        assert await eventually(told, bool) == [("a", 1, 1)]
