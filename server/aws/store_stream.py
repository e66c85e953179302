"""The stream side of the store: shards, leases, checkpoints, presence, the reader copy.

Everything the stream consumer asks of DynamoDB and DynamoDB Streams, so the consumer
deals in shards, leases and sequence numbers, never in requests. Leases and
checkpoints share one table (`StreamCheckpoint`: one item per shard, and a presence
item `node#<id>` per node), as in the Kinesis Client Library; every write to a lease
is conditional on its owner or counter, so a node that lost a lease can never move
its checkpoint. The reader copy, with state of its own, is `copier` (`store_copy`).
Failures raise livecount's store errors (`aws.store_errors`).
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Any

from livecount.aws.store_copy import ReaderCopy, article_of
from livecount.aws.store_errors import Answered, ConditionFailed, answer
from livecount.aws.store_requests import plain, typed
from livecount.core.errors import StoreRejected
from livecount.core.leases import NODE_PREFIX, Lease, LeaseItem
from livecount.core.replication import Shard
from livecount.core.stream_copy import ReaderWrite
from livecount.core.tables import Tables
from livecount.logs import warn

__all__ = ["TRIMMED", "Batch", "StreamStore", "article_of"]

TRIMMED = "TrimmedDataAccessException"  # the records asked for are past the 24 hours kept
_OWNER = {"#o": "owner", "#c": "counter"}


@dataclass(frozen=True, slots=True)
class Batch:
    records: list[dict[str, Any]]
    next: str | None  # None: the shard is closed and now read to its end


class StreamStore:
    def __init__(self, ddb: Any, streams: Any, tables: Tables, ddb_once: Any = None) -> None:
        self.ddb = ddb
        self.streams = streams
        self.tables = tables
        self.table = tables.checkpoints
        self.copier = ReaderCopy(ddb, tables.reader, ddb_once)

    # -- the stream's shards -----------------------------------------------------------
    async def stream_arn(self) -> str:
        table = await answer(self.ddb.describe_table(TableName=self.tables.writer),
                             self.tables.writer)
        return str(table["Table"]["LatestStreamArn"])

    async def shards(self, arn: str) -> list[Shard]:
        shards: list[Shard] = []
        kwargs: dict[str, Any] = {"StreamArn": arn}
        while True:
            page = (await answer(self.streams.describe_stream(**kwargs),
                                 "DescribeStream"))["StreamDescription"]
            shards += [Shard(s["ShardId"], s.get("ParentShardId")) for s in page["Shards"]]
            if not page.get("LastEvaluatedShardId"):
                return shards
            kwargs["ExclusiveStartShardId"] = page["LastEvaluatedShardId"]

    async def iterator(self, arn: str, shard_id: str, after: str | None) -> str:
        """Where to read `shard_id` from: after `after`, or its oldest record (also when
        `after` has aged out of the stream's 24 hours)."""
        kwargs: dict[str, Any] = {"StreamArn": arn, "ShardId": shard_id}
        if after is not None:
            try:
                return str((await answer(self.streams.get_shard_iterator(
                    **kwargs, ShardIteratorType="AFTER_SEQUENCE_NUMBER", SequenceNumber=after),
                    "GetShardIterator", expected=[TRIMMED]))["ShardIterator"])
            except Answered:
                warn("stream_trimmed", shard=shard_id, checkpoint=after)
        return str((await answer(self.streams.get_shard_iterator(
            **kwargs, ShardIteratorType="TRIM_HORIZON"), "GetShardIterator"))["ShardIterator"])

    async def read(self, iterator: str) -> Batch | None:
        """Up to 1,000 records; None when the iterator expired or points at trimmed
        records, so the caller asks for a new one."""
        try:
            page = await answer(self.streams.get_records(ShardIterator=iterator, Limit=1000),
                                "GetRecords", expected=["ExpiredIteratorException", TRIMMED])
        except Answered:
            return None
        return Batch(list(page.get("Records", [])), page.get("NextShardIterator"))

    # -- the copy ------------------------------------------------------------------------
    @property
    def ddb_once(self) -> Any:
        """The client batches go on (not retried), None without batches."""
        return self.copier.ddb_once

    async def copy(self, write: ReaderWrite) -> bool:
        """Apply one reader write; False when the reader holds this image or a newer one."""
        return await self.copier.copy(write)

    async def copy_many(self, writes: list[ReaderWrite]) -> list[bool | StoreRejected]:
        """Apply a batch's reader writes (`ReaderCopy.copy_many`): whether each applied,
        or the refusal of one no retry can apply; raises when the store is away."""
        return await self.copier.copy_many(writes)

    async def share(self, puts: list[dict[str, Any]]) -> None:
        """Write live-feed items (`stream_copy.CopyWork.feed`)."""
        for put in puts:
            await answer(self.ddb.put_item(**put), self.tables.feed)

    # -- leases, checkpoints, presence -------------------------------------------------
    async def add_lease(self, shard_id: str, arn: str) -> None:
        """The lease item of a shard, made once by whichever node sees the shard first."""
        with contextlib.suppress(ConditionFailed):
            await answer(self.ddb.put_item(
                TableName=self.table, ConditionExpression="attribute_not_exists(#k)",
                ExpressionAttributeNames={"#k": "shardId"},
                Item=typed({"shardId": shard_id, "streamArn": arn, "finished": False,
                            "counter": 0})), self.table)

    async def announce(self, me: str) -> int:
        """Keep this node's presence alive; returns its counter."""
        item = await answer(self.ddb.update_item(
            TableName=self.table, Key=_key(NODE_PREFIX + me),
            UpdateExpression="SET #o = :me ADD #c :one", ExpressionAttributeNames=_OWNER,
            ExpressionAttributeValues=typed({":me": me, ":one": 1}),
            ReturnValues="UPDATED_NEW"), self.table)
        return int(plain(item["Attributes"])["counter"])

    async def leave(self, me: str) -> None:
        await answer(self.ddb.delete_item(TableName=self.table, Key=_key(NODE_PREFIX + me)),
                     self.table)

    async def leases(self, arn: str) -> list[LeaseItem]:
        """Every lease of the stream `arn` and every presence item. The table is one
        small item per shard and per node: a Scan, off any request path, as the Kinesis
        Client Library does it."""
        pages = self.ddb.get_paginator("scan").paginate(TableName=self.table, ConsistentRead=True)
        items = (await answer(pages.build_full_result(), self.table)).get("Items", [])
        return [_lease_item(i) for i in map(plain, items) if i.get("streamArn", arn) == arn]

    async def take(self, lease: Lease, me: str) -> LeaseItem | None:
        """Take `lease` if its counter is still the one seen; None if another node moved
        first."""
        try:
            item = await answer(self.ddb.update_item(
                TableName=self.table, Key=_key(lease.key),
                UpdateExpression="SET #o = :me ADD #c :one",
                ConditionExpression="#c = :seen", ExpressionAttributeNames=_OWNER,
                ExpressionAttributeValues=typed({":me": me, ":seen": lease.counter, ":one": 1}),
                ReturnValues="ALL_NEW"), self.table)
        except ConditionFailed:
            return None
        return _lease_item(plain(item["Attributes"]))

    async def renew(self, shard_id: str, me: str, counter: int,
                    checkpoint: str | None = None) -> int | None:
        """Bump a held lease's counter, recording `checkpoint` in the same write (a
        checkpoint costs nothing more than the renewal); None if it is no longer this
        node's."""
        update, names = "ADD #c :one", dict(_OWNER)
        values: dict[str, Any] = {":me": me, ":mine": counter, ":one": 1}
        if checkpoint:
            update += " SET #s = :s"
            names["#s"], values[":s"] = "sequenceNumber", checkpoint
        try:
            item = await answer(self.ddb.update_item(
                TableName=self.table, Key=_key(shard_id), UpdateExpression=update,
                ConditionExpression="#o = :me AND #c = :mine", ExpressionAttributeNames=names,
                ExpressionAttributeValues=typed(values), ReturnValues="UPDATED_NEW"), self.table)
        except ConditionFailed:
            return None
        return int(plain(item["Attributes"])["counter"])

    async def release(self, shard_id: str, me: str, checkpoint: str | None = None) -> None:
        """Hand a lease back at once (if it is still this node's), with its last
        checkpoint in the same write."""
        update, names, values = "REMOVE #o", {"#o": "owner"}, {":me": me}
        if checkpoint:
            update += " SET #s = :s"
            names["#s"], values[":s"] = "sequenceNumber", checkpoint
        with contextlib.suppress(ConditionFailed):
            await answer(self.ddb.update_item(
                TableName=self.table, Key=_key(shard_id), UpdateExpression=update,
                ConditionExpression="#o = :me", ExpressionAttributeNames=names,
                ExpressionAttributeValues=typed(values)), self.table)

    async def checkpoint(self, shard_id: str, me: str, sequence: str | None,
                         finished: bool = False) -> bool:
        """Record how far `shard_id` was copied; False if the lease is not `me`'s."""
        updates = ["#f = :f"]
        names = {"#f": "finished", "#o": "owner"}
        values: dict[str, Any] = {":f": finished, ":me": me}
        if sequence:
            updates.append("#s = :s")
            names["#s"], values[":s"] = "sequenceNumber", sequence
        try:
            await answer(self.ddb.update_item(
                TableName=self.table, Key=_key(shard_id),
                UpdateExpression="SET " + ", ".join(updates), ConditionExpression="#o = :me",
                ExpressionAttributeNames=names, ExpressionAttributeValues=typed(values)),
                self.table)
        except ConditionFailed:
            return False
        return True


def _key(shard_id: str) -> dict[str, Any]:
    return typed({"shardId": shard_id})


def _lease_item(item: dict[str, Any]) -> LeaseItem:
    """A lease table item, out of typed JSON (`plain`)."""
    return LeaseItem(Lease(item["shardId"], item.get("owner"), item.get("counter", 0)),
                     finished=item.get("finished", False), checkpoint=item.get("sequenceNumber"))
