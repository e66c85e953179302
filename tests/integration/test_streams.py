"""The stream consumer against DynamoDB Local's real Streams."""

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from livecount.aws.consumer import StreamConsumer
from livecount.aws.store import Store
from livecount.core.ledger import Delta
from livecount.core.pages import Target
from livecount.core.replication import copy_for

from tests.support import eventually, flush_of


@asynccontextmanager
async def consuming(store: Store, seen: list[tuple[str, int, int]],
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
    return {i["articleId"]["S"]: (int(i["totalViews"]["N"]), int(i["uniqueViews"]["N"]),
                                  int(i["version"]["N"])) for i in items}


async def writer(store: Store) -> dict[str, tuple[int, int, int]]:
    items = (await store.ddb.scan(TableName=store.tables.writer, ConsistentRead=True))["Items"]
    return {i["articleId"]["S"]: (int(i["totalViews"]["N"]), int(i["uniqueViews"]["N"]),
                                  int(i["version"]["N"])) for i in items}


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
        assert ("a", 5, 5) in seen and ("b", 1, 1) in seen
        assert consumer.caught_up.is_set()


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


async def test_replayed_and_reordered_images_never_go_backwards(local_store: Store):
    await write(local_store, a=1)
    await write(local_store, a=1)
    arn = (await local_store.ddb.describe_table(
        TableName=local_store.tables.writer))["Table"]["LatestStreamArn"]
    shard = (await local_store.streams.describe_stream(StreamArn=arn))["StreamDescription"]
    iterator = (await local_store.streams.get_shard_iterator(
        StreamArn=arn, ShardId=shard["Shards"][0]["ShardId"],
        ShardIteratorType="TRIM_HORIZON"))["ShardIterator"]
    records = (await local_store.streams.get_records(ShardIterator=iterator))["Records"]
    copies: list[Any] = [copy_for(r) for r in records]
    assert [c.version for c in copies] == [1, 2]

    async def apply(copy: Any) -> bool:
        try:
            await local_store.ddb.put_item(**copy.request(local_store.tables.reader))
        except local_store.ddb.exceptions.ConditionalCheckFailedException:
            return False
        return True

    assert await apply(copies[1]) is True    # newest first (reordered)
    assert await apply(copies[0]) is False   # the older image is refused
    assert await apply(copies[1]) is False   # a replay is a no-op
    assert (await reader(local_store))["a"] == (2, 2, 2)
