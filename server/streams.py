"""The stream consumer: PostCountWriter's stream → PostCountReader, and live counts.

A thin loop around `replication`'s rules: list shards, read the readable ones
(parents before children), apply each record's conditional copy, then checkpoint
the last sequence number in DynamoDB. Copy first, checkpoint second: a crash in
between replays records, and the version condition makes replays no-ops.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from contextlib import suppress
from typing import Any

from botocore.exceptions import ClientError

from .logs import error, log, warn
from .replication import Copy, Shard, copy_for, counts_of, readable
from .store import Store, StoreError

OnImage = Callable[[str, int, int], None]  # articleId, totalViews, uniqueViews


class StreamConsumer:
    def __init__(self, store: Store, on_image: OnImage, poll_interval: float = 0.25,
                 discover_interval: float = 10.0) -> None:
        self.store = store
        self.on_image = on_image
        self.poll_interval = poll_interval
        self.discover_interval = discover_interval
        self.caught_up = asyncio.Event()  # set once every shard has been read to its end
        self.copied = 0
        self._arn: str | None = None
        self._shards: list[Shard] = []
        self._finished: set[str] = set()
        self._checkpoints: dict[str, str] = {}
        self._iterators: dict[str, str] = {}
        self._rounds = 0
        self._quiet_rounds = 0
        self._round_done = asyncio.Condition()

    # -- lifecycle -----------------------------------------------------------------
    async def run(self, stop: asyncio.Event) -> None:
        """Poll until `stop` is set; store errors are logged and retried, never fatal."""
        next_discovery = 0.0
        loop = asyncio.get_running_loop()
        while not stop.is_set():
            try:
                if loop.time() >= next_discovery or not self._iterators:
                    await self._discover()
                    next_discovery = loop.time() + self.discover_interval
                records = await self._poll_all()
            except StoreError as exc:
                warn("stream_error", error=str(exc))
                records = 0
            except Exception as exc:  # a bug here must not stop the copy for good
                error("stream_crash", exc)
                records = 0
            await self._end_round(records)
            if records == 0:
                with suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), self.poll_interval)

    async def settled(self) -> None:
        """Wait for two rounds that start after this call and find nothing new.

        Used on shutdown so that what was just flushed reaches the reader table;
        the caller bounds the wait.
        """
        async with self._round_done:
            start = self._rounds
            await self._round_done.wait_for(
                lambda: self._rounds >= start + 2 and self._quiet_rounds >= 2)

    async def _end_round(self, records: int) -> None:
        async with self._round_done:
            self._rounds += 1
            self._quiet_rounds = 0 if records else self._quiet_rounds + 1
            if records == 0 and self._shards and not self.caught_up.is_set():
                self.caught_up.set()
                log("stream_caught_up", shards=len(self._shards), copied=self.copied)
            self._round_done.notify_all()

    # -- shards ---------------------------------------------------------------------
    async def _discover(self) -> None:
        if self._arn is None:
            table = await self.store.ddb.describe_table(TableName=self.store.tables.writer)
            self._arn = table["Table"]["LatestStreamArn"]
        shards: list[Shard] = []
        kwargs: dict[str, Any] = {"StreamArn": self._arn}
        while True:
            page = (await self.store.streams.describe_stream(**kwargs))["StreamDescription"]
            shards += [Shard(s["ShardId"], s.get("ParentShardId")) for s in page["Shards"]]
            if not page.get("LastEvaluatedShardId"):
                break
            kwargs["ExclusiveStartShardId"] = page["LastEvaluatedShardId"]
        new = [s.id for s in shards if s.id not in self._checkpoints and s.id not in self._finished]
        await self._load_checkpoints(new)
        self._shards = shards
        for shard in readable(shards, self._finished):
            if shard.id not in self._iterators:
                self._iterators[shard.id] = await self._iterator(shard.id)

    async def _load_checkpoints(self, shard_ids: list[str]) -> None:
        for shard_id in shard_ids:
            item = (await self.store.ddb.get_item(
                TableName=self.store.tables.checkpoints, Key={"shardId": {"S": shard_id}},
                ConsistentRead=True)).get("Item")
            if item is None:
                continue
            if item.get("finished", {}).get("BOOL"):
                self._finished.add(shard_id)
            elif "sequenceNumber" in item:
                self._checkpoints[shard_id] = item["sequenceNumber"]["S"]

    async def _iterator(self, shard_id: str) -> str:
        kwargs: dict[str, Any] = {"StreamArn": self._arn, "ShardId": shard_id}
        if seq := self._checkpoints.get(shard_id):
            kwargs |= {"ShardIteratorType": "AFTER_SEQUENCE_NUMBER", "SequenceNumber": seq}
        else:
            kwargs["ShardIteratorType"] = "TRIM_HORIZON"
        try:
            answer = await self.store.streams.get_shard_iterator(**kwargs)
        except ClientError as exc:
            if exc.response["Error"]["Code"] != "TrimmedDataAccessException":
                raise
            warn("stream_trimmed", shard=shard_id, checkpoint=seq)
            kwargs = {"StreamArn": self._arn, "ShardId": shard_id,
                      "ShardIteratorType": "TRIM_HORIZON"}
            answer = await self.store.streams.get_shard_iterator(**kwargs)
        return str(answer["ShardIterator"])

    # -- records ----------------------------------------------------------------------
    async def _poll_all(self) -> int:
        counts = await asyncio.gather(*(self._poll(s) for s in list(self._iterators)))
        return sum(counts)

    async def _poll(self, shard_id: str) -> int:
        try:
            answer = await self.store.streams.get_records(
                ShardIterator=self._iterators[shard_id], Limit=1000)
        except ClientError as exc:
            if exc.response["Error"]["Code"] in ("ExpiredIteratorException",
                                                 "TrimmedDataAccessException"):
                self._iterators[shard_id] = await self._iterator(shard_id)
                return 0
            raise
        records = answer.get("Records", [])
        for record in records:
            if (copy := copy_for(record)) is not None:
                await self._apply(copy)
        if records:
            self._checkpoints[shard_id] = records[-1]["dynamodb"]["SequenceNumber"]
            await self._save(shard_id, finished=False)
        if (nxt := answer.get("NextShardIterator")) is not None:
            self._iterators[shard_id] = nxt
        else:  # the shard is closed and read to its end: its children may start
            del self._iterators[shard_id]
            self._finished.add(shard_id)
            await self._save(shard_id, finished=True)
            for child in readable(self._shards, self._finished):
                if child.id not in self._iterators:
                    self._iterators[child.id] = await self._iterator(child.id)
        return len(records)

    async def _apply(self, copy: Copy) -> None:
        try:
            if copy.action == "put":
                await self.store.ddb.put_item(**copy.request(self.store.tables.reader))
            else:
                await self.store.ddb.delete_item(**copy.request(self.store.tables.reader))
        except ClientError as exc:
            if exc.response["Error"]["Code"] != "ConditionalCheckFailedException":
                raise
            return  # the reader already holds this image or a newer one
        self.copied += 1
        if copy.item is not None and (counts := counts_of(copy.item)) is not None:
            self.on_image(*counts)

    async def _save(self, shard_id: str, finished: bool) -> None:
        item: dict[str, Any] = {
            "shardId": {"S": shard_id},
            "streamArn": {"S": self._arn},
            "finished": {"BOOL": finished},
        }
        if seq := self._checkpoints.get(shard_id):
            item["sequenceNumber"] = {"S": seq}
        await self.store.ddb.put_item(TableName=self.store.tables.checkpoints, Item=item)
