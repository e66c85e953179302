"""The Lambda variant of the stream copy, fed with events recorded from DynamoDB
Local's real stream, in the shape Lambda delivers them."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from livecount.aws import lambda_copy as aws_lambda
from livecount.aws.store import Store
from livecount.core import feed
from livecount.core.ledger import Delta
from livecount.core.pages import Target

from tests.support import flush_of


async def recorded_event(store: Store) -> dict[str, Any]:
    """Every record of the writer's stream so far, as a Lambda event."""
    arn = (await store.ddb.describe_table(
        TableName=store.tables.writer))["Table"]["LatestStreamArn"]
    shards = (await store.streams.describe_stream(StreamArn=arn))["StreamDescription"]["Shards"]
    records: list[dict[str, Any]] = []
    for shard in shards:
        iterator = (await store.streams.get_shard_iterator(
            StreamArn=arn, ShardId=shard["ShardId"],
            ShardIteratorType="TRIM_HORIZON"))["ShardIterator"]
        answer = await store.streams.get_records(ShardIterator=iterator)
        for record in answer["Records"]:
            change = dict(record["dynamodb"])
            change["ApproximateCreationDateTime"] = \
                change["ApproximateCreationDateTime"].timestamp()
            records.append({**record, "dynamodb": change, "eventSource": "aws:dynamodb",
                            "eventSourceARN": arn})
    return {"Records": records}


async def reader(store: Store) -> dict[str, tuple[int, int]]:
    items = (await store.ddb.scan(TableName=store.tables.reader, ConsistentRead=True))["Items"]
    return {i["articleId"]["S"]: (int(i["totalViews"]["N"]), int(i["uniqueViews"]["N"]))
            for i in items}


async def test_the_lambda_copies_writer_to_reader_and_feeds_live_counts(
        local_store: Store, lambda_env: None):
    a, b = Target("post", "a"), Target("post", "b")
    await local_store.flush(flush_of(targets={a: Delta(2, 1), b: Delta(1, 1)}))
    await local_store.flush(flush_of(targets={a: Delta(3, 3)}))
    event = await recorded_event(local_store)
    assert len(event["Records"]) == 3

    answer = await asyncio.to_thread(aws_lambda.handler, event, None)
    assert answer == {"batchItemFailures": []}
    assert await reader(local_store) == {"a": (5, 4), "b": (1, 1)}
    items = await local_store.read_feed(0)
    assert [tuple(c) for _, payload in items for c in feed.decode(payload)] == [
        ("a", 5, 4), ("b", 1, 1)]


async def test_replayed_and_reordered_events_change_nothing(
        local_store: Store, lambda_env: None):
    a = Target("post", "a")
    for _ in range(3):
        await local_store.flush(flush_of(targets={a: Delta(1, 1)}))
    event = await recorded_event(local_store)
    backwards = {"Records": list(reversed(event["Records"]))}
    await asyncio.to_thread(aws_lambda.handler, backwards, None)
    await asyncio.to_thread(aws_lambda.handler, event, None)
    assert await reader(local_store) == {"a": (3, 3)}


async def test_a_failed_copy_is_reported_for_retry(local_store: Store, lambda_env: None,
                                                   monkeypatch: pytest.MonkeyPatch):
    await local_store.flush(flush_of(targets={Target("post", "a"): Delta(1, 1)}))
    event = await recorded_event(local_store)
    monkeypatch.setenv("LIVECOUNT_TABLE_PREFIX", "missing_")  # no such reader table
    answer = await asyncio.to_thread(aws_lambda.handler, event, None)
    assert answer == {"batchItemFailures": [
        {"itemIdentifier": event["Records"][0]["dynamodb"]["SequenceNumber"]}]}
