"""The stream side of the store: shards, leases, checkpoints, presence, the reader copy.

Everything the stream consumer asks of DynamoDB and DynamoDB Streams, so the consumer
deals in shards, leases and sequence numbers, never in requests. The leases,
checkpoints and presence items are `leases` (`store_leases`); the reader copy, with
state of its own, is `copier` (`store_copy`). Failures raise livecount's store errors
(`aws.store_errors`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from livecount.aws.store_copy import ReaderCopy, article_of
from livecount.aws.store_errors import Answered, answer
from livecount.aws.store_leases import LeaseTable
from livecount.core.errors import StoreRejected
from livecount.core.replication import Shard
from livecount.core.stream_copy import ReaderWrite
from livecount.core.tables import Tables
from livecount.logs import warn

__all__ = ["TRIMMED", "Batch", "StreamStore", "article_of"]

TRIMMED = "TrimmedDataAccessException"  # the records asked for are past the 24 hours kept


@dataclass(frozen=True, slots=True)
class Batch:
    records: list[dict[str, Any]]
    next: str | None  # None: the shard is closed and now read to its end


class StreamStore:
    def __init__(self, ddb: Any, streams: Any, tables: Tables, ddb_once: Any = None) -> None:
        self.ddb = ddb
        self.streams = streams
        self.tables = tables
        self.copier = ReaderCopy(ddb, tables.reader, ddb_once)
        self.leases = LeaseTable(ddb, tables)

    # -- the stream's shards -----------------------------------------------------------
    async def stream_arn(self) -> str:
        table = await answer(
            self.ddb.describe_table(TableName=self.tables.writer), self.tables.writer
        )
        return str(table["Table"]["LatestStreamArn"])

    async def shards(self, arn: str) -> list[Shard]:
        shards: list[Shard] = []
        kwargs: dict[str, Any] = {"StreamArn": arn}
        while True:
            page = (await answer(self.streams.describe_stream(**kwargs), "DescribeStream"))[
                "StreamDescription"
            ]
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
                return str(
                    (
                        await answer(
                            self.streams.get_shard_iterator(
                                **kwargs,
                                ShardIteratorType="AFTER_SEQUENCE_NUMBER",
                                SequenceNumber=after,
                            ),
                            "GetShardIterator",
                            expected=[TRIMMED],
                        )
                    )["ShardIterator"]
                )
            except Answered:
                warn("stream_trimmed", shard=shard_id, checkpoint=after)
        return str(
            (
                await answer(
                    self.streams.get_shard_iterator(**kwargs, ShardIteratorType="TRIM_HORIZON"),
                    "GetShardIterator",
                )
            )["ShardIterator"]
        )

    async def read(self, iterator: str) -> Batch | None:
        """Up to 1,000 records; None when the iterator expired or points at trimmed
        records, so the caller asks for a new one."""
        try:
            page = await answer(
                self.streams.get_records(ShardIterator=iterator, Limit=1000),
                "GetRecords",
                expected=["ExpiredIteratorException", TRIMMED],
            )
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
