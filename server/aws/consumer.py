"""The stream consumer: PostCountWriter's stream → PostCountReader, and live counts.

A thin loop around `replication` (what to copy, in which shard order) and `leases`
(which shards are this node's). Each round it keeps its presence and leases alive,
takes what the planner says, reads the shards it holds, applies each record's
conditional copy, and checkpoints. Copy first, checkpoint second: a crash in between
replays records, and the version condition makes replays no-ops.

Leases and checkpoints live in one table (`StreamCheckpoint`, one item per shard),
as in the Kinesis Client Library; every write to them is conditional on the owner,
so a node that lost a lease can never move its checkpoint.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from contextlib import suppress
from typing import Any

from botocore.exceptions import ClientError
from livecount.aws.store import Store, StoreError
from livecount.core.leases import NODE_PREFIX, Lease, Observer, plan
from livecount.core.replication import Copy, Shard, copy_for, counts_of, readable
from livecount.logs import error, log, warn

OnImage = Callable[[str, int, int], None]  # articleId, totalViews, uniqueViews
CHECKPOINT_INTERVAL = 5.0  # seconds between checkpoints of a busy shard
IDLE_POLL_INTERVAL = 1.0  # the longest wait between polls of a quiet shard
QUIET_AFTER = 5.0  # seconds without a record before a shard counts as quiet


def _conditional_failure(exc: ClientError) -> bool:
    return bool(exc.response["Error"]["Code"] == "ConditionalCheckFailedException")


class StreamConsumer:
    def __init__(self, store: Store, on_image: OnImage, node_id: str = "node",
                 lease_time: float = 10.0, poll_interval: float = 0.25,
                 discover_interval: float = 10.0) -> None:
        self.store = store
        self.on_image = on_image
        self.node_id = node_id
        self.lease_time = lease_time
        self.poll_interval = poll_interval
        self.discover_interval = discover_interval
        self.caught_up = asyncio.Event()  # set once the shards it holds are read to the end
        self.copied = 0
        self.lag: dict[str, float] = {}  # shard → seconds behind, at the last record read
        self.nodes = 1  # live nodes seen, this one included
        self._arn: str | None = None
        self._shards: list[Shard] = []
        self._finished: set[str] = set()
        self._held: dict[str, int] = {}  # shard → my lease counter
        self._checkpoints: dict[str, str] = {}
        self._checkpointed: dict[str, float] = {}
        self._iterators: dict[str, str] = {}
        self._observer = Observer(lease_time)
        self._presence = 0
        self._rounds = 0
        self._quiet_rounds = 0
        self._round_done = asyncio.Condition()

    @property
    def table(self) -> str:
        return self.store.tables.checkpoints

    @property
    def held(self) -> set[str]:
        return set(self._held)

    # -- lifecycle -----------------------------------------------------------------
    async def run(self, stop: asyncio.Event) -> None:
        """Poll until `stop` is set; store errors are logged and retried, never fatal."""
        loop = asyncio.get_running_loop()
        next_discovery = next_leasing = 0.0
        idle = self.poll_interval
        last_record = loop.time()
        while not stop.is_set():
            try:
                if loop.time() >= next_discovery:
                    await self._discover()
                    next_discovery = loop.time() + self.discover_interval
                if loop.time() >= next_leasing:
                    await self._lease_round()
                    next_leasing = loop.time() + self.lease_time / 3
                records = await self._poll_all()
            except StoreError as exc:
                warn("stream_error", error=str(exc))
                records = 0
            except Exception as exc:  # a bug here must not stop the copy for good
                error("stream_crash", exc)
                records = 0
            await self._end_round(records)
            # Shards quiet for a while are polled less and less often, down to once a
            # second: GetRecords calls are billed, and most of a blog's seconds are
            # quiet. Within a few seconds of a record (flushes come every second) the
            # poll stays quick, so copies and pushes stay prompt.
            if records:
                last_record = loop.time()
            quiet = loop.time() - last_record > QUIET_AFTER
            idle = min(idle * 2, IDLE_POLL_INTERVAL) if quiet else self.poll_interval
            if records == 0:
                with suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), idle)
        await self._release()

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
            if records == 0 and self._shards and self._rounds > 1 \
                    and not self.caught_up.is_set():
                self.caught_up.set()
                log("stream_caught_up", shards=len(self._shards), held=len(self._held),
                    copied=self.copied)
            self._round_done.notify_all()

    async def _release(self) -> None:
        """Hand leases back at once on a clean stop, rather than after `lease_time`."""
        for shard_id in list(self._held):
            with suppress(*StoreError):
                await self._checkpoint(shard_id, force=True)
                await self.store.ddb.update_item(
                    TableName=self.table, Key={"shardId": {"S": shard_id}},
                    UpdateExpression="REMOVE #o", ConditionExpression="#o = :me",
                    ExpressionAttributeNames={"#o": "owner"},
                    ExpressionAttributeValues={":me": {"S": self.node_id}})
        with suppress(*StoreError):
            await self.store.ddb.delete_item(
                TableName=self.table, Key={"shardId": {"S": NODE_PREFIX + self.node_id}})
        self._held.clear()

    # -- shards and leases ------------------------------------------------------------
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
        known = {s.id for s in self._shards}
        for shard in shards:
            if shard.id not in known:  # a lease item for every shard, made once
                with suppress(ClientError):
                    await self.store.ddb.put_item(
                        TableName=self.table, ConditionExpression="attribute_not_exists(#k)",
                        ExpressionAttributeNames={"#k": "shardId"},
                        Item={"shardId": {"S": shard.id}, "streamArn": {"S": self._arn},
                              "finished": {"BOOL": False}, "counter": {"N": "0"}})
        self._shards = shards

    async def _lease_round(self) -> None:
        """Keep presence and leases alive, then take and steal what the plan says."""
        answer = await self.store.ddb.update_item(
            TableName=self.table, Key={"shardId": {"S": NODE_PREFIX + self.node_id}},
            UpdateExpression="SET #o = :me ADD #c :one",
            ExpressionAttributeNames={"#o": "owner", "#c": "counter"},
            ExpressionAttributeValues={":me": {"S": self.node_id}, ":one": {"N": "1"}},
            ReturnValues="UPDATED_NEW")
        self._presence = int(answer["Attributes"]["counter"]["N"])
        for shard_id, counter in list(self._held.items()):
            await self._renew(shard_id, counter)
        items = await self._lease_items()
        leases = []
        for item in items:
            key = item["shardId"]["S"]
            if item.get("finished", {}).get("BOOL"):
                self._finished.add(key)
            if "sequenceNumber" in item and key not in self._held:
                self._checkpoints[key] = item["sequenceNumber"]["S"]
            leases.append(Lease(key, item.get("owner", {}).get("S"),
                                int(item.get("counter", {}).get("N", 0))))
        now = asyncio.get_running_loop().time()
        wanted = {s.id for s in readable(self._shards, self._finished)}
        decision = plan(self.node_id, leases, wanted, set(self._held), self._observer, now)
        self.nodes = 1 + sum(1 for lease in leases if lease.key.startswith(NODE_PREFIX)
                             and lease.owner != self.node_id
                             and self._observer.alive(lease, now))
        for shard_id in decision.lost:
            self._drop(shard_id, "lease_lost")
        for lease in decision.take + decision.steal:
            await self._take(lease, stolen=lease in decision.steal)

    async def _lease_items(self) -> list[dict[str, Any]]:
        """The lease table is one small item per shard and per node: a Scan, off any
        request path, as the Kinesis Client Library does it."""
        items: list[dict[str, Any]] = []
        kwargs: dict[str, Any] = {"TableName": self.table, "ConsistentRead": True}
        while True:
            page = await self.store.ddb.scan(**kwargs)
            items += [i for i in page.get("Items", [])
                      if i.get("streamArn", {}).get("S", self._arn) == self._arn]
            if "LastEvaluatedKey" not in page:
                return items
            kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]

    async def _take(self, lease: Lease, stolen: bool) -> None:
        try:
            answer = await self.store.ddb.update_item(
                TableName=self.table, Key={"shardId": {"S": lease.key}},
                UpdateExpression="SET #o = :me ADD #c :one",
                ConditionExpression="#c = :seen",
                ExpressionAttributeNames={"#o": "owner", "#c": "counter"},
                ExpressionAttributeValues={":me": {"S": self.node_id}, ":one": {"N": "1"},
                                           ":seen": {"N": str(lease.counter)}},
                ReturnValues="ALL_NEW")
        except ClientError as exc:
            if _conditional_failure(exc):
                return  # someone else moved first
            raise
        item = answer["Attributes"]
        self._held[lease.key] = int(item["counter"]["N"])
        if "sequenceNumber" in item:
            self._checkpoints[lease.key] = item["sequenceNumber"]["S"]
        self._iterators[lease.key] = await self._iterator(lease.key)
        log("lease_taken", shard=lease.key, stolen=stolen, previous=lease.owner)

    async def _renew(self, shard_id: str, counter: int) -> None:
        try:
            answer = await self.store.ddb.update_item(
                TableName=self.table, Key={"shardId": {"S": shard_id}},
                UpdateExpression="ADD #c :one",
                ConditionExpression="#o = :me AND #c = :mine",
                ExpressionAttributeNames={"#o": "owner", "#c": "counter"},
                ExpressionAttributeValues={":me": {"S": self.node_id}, ":one": {"N": "1"},
                                           ":mine": {"N": str(counter)}},
                ReturnValues="UPDATED_NEW")
            self._held[shard_id] = int(answer["Attributes"]["counter"]["N"])
        except ClientError as exc:
            if not _conditional_failure(exc):
                raise
            self._drop(shard_id, "lease_lost")

    def _drop(self, shard_id: str, why: str) -> None:
        self._held.pop(shard_id, None)
        self._iterators.pop(shard_id, None)
        self.lag.pop(shard_id, None)
        log(why, shard=shard_id)

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
            made = records[-1]["dynamodb"].get("ApproximateCreationDateTime")
            self.lag[shard_id] = max(0.0, time.time() - made.timestamp()) if made else 0.0
            await self._checkpoint(shard_id)
        else:
            self.lag[shard_id] = 0.0
        if shard_id not in self._iterators:
            return len(records)  # the lease was lost while reading
        if (nxt := answer.get("NextShardIterator")) is not None:
            self._iterators[shard_id] = nxt
        else:  # closed and read to its end: its children may start
            self._finished.add(shard_id)
            await self._checkpoint(shard_id, force=True, finished=True)
            self._drop(shard_id, "shard_finished")
        return len(records)

    async def _apply(self, copy: Copy) -> None:
        try:
            if copy.action == "put":
                await self.store.ddb.put_item(**copy.request(self.store.tables.reader))
            else:
                await self.store.ddb.delete_item(**copy.request(self.store.tables.reader))
        except ClientError as exc:
            if not _conditional_failure(exc):
                raise
            return  # the reader already holds this image or a newer one
        self.copied += 1
        if copy.item is not None and (counts := counts_of(copy.item)) is not None:
            self.on_image(*counts)

    async def _checkpoint(self, shard_id: str, force: bool = False,
                          finished: bool = False) -> None:
        """Record progress, at most every CHECKPOINT_INTERVAL unless forced, and only
        while this node owns the lease."""
        now = asyncio.get_running_loop().time()
        if not force and now - self._checkpointed.get(shard_id, 0.0) < CHECKPOINT_INTERVAL:
            return
        updates = ["#f = :f"]
        names = {"#f": "finished", "#o": "owner"}
        values = {":f": {"BOOL": finished}, ":me": {"S": self.node_id}}
        if seq := self._checkpoints.get(shard_id):
            updates.append("#s = :s")
            names["#s"] = "sequenceNumber"
            values[":s"] = {"S": seq}
        try:
            await self.store.ddb.update_item(
                TableName=self.table, Key={"shardId": {"S": shard_id}},
                UpdateExpression="SET " + ", ".join(updates), ConditionExpression="#o = :me",
                ExpressionAttributeNames=names, ExpressionAttributeValues=values)
        except ClientError as exc:
            if not _conditional_failure(exc):
                raise
            self._drop(shard_id, "lease_lost")
            return
        self._checkpointed[shard_id] = now
