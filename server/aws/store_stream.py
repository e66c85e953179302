"""The stream side of the store: shards, leases, checkpoints, presence, the reader copy.

Everything the stream consumer asks of DynamoDB and DynamoDB Streams, so the consumer
deals in shards, leases and sequence numbers, never in requests. Leases and
checkpoints share one table (`StreamCheckpoint`: one item per shard, and a presence
item `node#<id>` per node), as in the Kinesis Client Library; every write to a lease
is conditional on its owner or counter, so a node that lost a lease can never move
its checkpoint. Failures raise livecount's store errors (`aws.store_errors`).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import Counter
from dataclasses import dataclass
from typing import Any

from livecount.aws.store_errors import Answered, ConditionFailed, answer
from livecount.core.errors import StoreRefused, StoreRejected, StoreUnavailable
from livecount.core.leases import NODE_PREFIX, Lease, LeaseItem
from livecount.core.replication import Shard
from livecount.core.stream_copy import ReaderWrite
from livecount.core.tables import Tables
from livecount.logs import warn

TRIMMED = "TrimmedDataAccessException"  # the records asked for are past the 24 hours kept
BATCH = 25  # statements a BatchExecuteStatement takes
KNOWN_READERS = 200_000  # reader items remembered as existing: UPDATE first, not INSERT
BATCHES_AT_ONCE = 8  # a copy's batches out at once (each 25 writes)
_OWNER = {"#o": "owner", "#c": "counter"}
_ONE = {":one": {"N": "1"}}


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
        self.ddb_once = ddb_once  # batches, not retried: a failed one goes one a request
        self._readers: dict[str, None] = {}  # reader items known to exist, oldest first
        self._limit = asyncio.Semaphore(BATCHES_AT_ONCE)  # batches of one copy at once
        self._batched_once = False  # a batch got an answer: the endpoint takes them

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
    async def copy(self, write: ReaderWrite) -> bool:
        """Apply one reader write; False when the reader holds this image or a newer one."""
        try:
            if write.action == "put":
                await answer(self.ddb.put_item(**write.request), self.tables.reader)
            else:
                await answer(self.ddb.delete_item(**write.request), self.tables.reader)
        except ConditionFailed:
            return False
        return True

    async def copy_many(self, writes: list[ReaderWrite]) -> list[bool | StoreRejected]:
        """Apply a batch's reader writes: whether each applied, or the refusal of one no
        retry can apply. Puts of distinct articles go 25 to a BatchExecuteStatement
        (PartiQL: an UPDATE on condition of `version` when the reader item is known to
        exist, else an INSERT, each falling back to the other), concurrently; the rest,
        and whatever a batch cannot settle, one request each, in order per article.
        Raises what the store raises when it is away (a batch failing as a whole, once
        batches work, included): the caller reads the records again."""
        outcomes: list[bool | StoreRejected | None] = [None] * len(writes)
        articles = [article_of(w) for w in writes]
        times = Counter(articles)
        alone: list[int] = []
        batched: list[int] = []
        for i, write in enumerate(writes):
            if self.ddb_once is None or write.action != "put" or times[articles[i]] > 1 \
                    or not _quotable(write.request["Item"]):
                alone.append(i)
            else:
                batched.append(i)
        for _ in range(3):  # update, insert, update
            if not batched:
                break
            chunks = [batched[i:i + BATCH] for i in range(0, len(batched), BATCH)]
            answers = await asyncio.gather(*(self._batch([
                _copy_statement(self.tables.reader, writes[i], articles[i] not in self._readers)
                for i in chunk]) for chunk in chunks))
            batched = []
            for chunk, got in zip(chunks, answers, strict=True):
                if isinstance(got, StoreUnavailable) and self._batched_once:
                    raise got  # the records are read again: a struggling store gets no more
                if isinstance(got, Exception) or len(got) != len(chunk):
                    alone += chunk
                    continue
                for i, response in zip(chunk, got, strict=True):
                    verdict = self._verdict(articles[i], response)
                    if isinstance(verdict, bool):
                        outcomes[i] = verdict
                    elif verdict == "again":
                        batched.append(i)
                    else:
                        alone.append(i)
        alone += batched
        for i in sorted(alone):  # one request each, in stream order
            try:
                outcomes[i] = await self.copy(writes[i])
            except StoreRejected as exc:
                outcomes[i] = exc
        return [o if o is not None else False for o in outcomes]

    def _verdict(self, article: str, response: dict[str, Any]) -> bool | str:
        """A copy statement's answer: applied (True), the reader holds this image or a
        newer one (False), "again" with the other statement, or "alone"."""
        error = response.get("Error")
        if error is None:
            self._known(article)
            return True
        code = error.get("Code")
        if code == "ConditionalCheckFailed":
            if error.get("Item"):
                self._known(article)
                return False  # as new or newer there: what the put's condition refuses
            self._readers.pop(article, None)
            return "again"  # no such item: insert it
        if code == "DuplicateItem":
            self._known(article)
            return "again"  # there after all: update it
        return "alone"

    def _known(self, article: str) -> None:
        self._readers.pop(article, None)
        self._readers[article] = None
        if len(self._readers) > KNOWN_READERS:
            del self._readers[next(iter(self._readers))]

    async def _batch(self, statements: list[dict[str, Any]],
                     ) -> list[dict[str, Any]] | StoreUnavailable | StoreRejected | StoreRefused:
        """One BatchExecuteStatement: an answer per statement, or the whole request's
        error. Refused or not understood, batches are not asked again."""
        try:
            async with self._limit:
                got = await answer(self.ddb_once.batch_execute_statement(
                    Statements=statements), "BatchExecuteStatement")
        except (StoreUnavailable, StoreRefused, StoreRejected) as exc:
            if isinstance(exc, StoreRefused | StoreRejected):
                self.ddb_once = None
                warn("stream_batching_off", error=exc.detail)
            return exc
        self._batched_once = True
        return list(got.get("Responses", []))

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
                Item={"shardId": {"S": shard_id}, "streamArn": {"S": arn},
                      "finished": {"BOOL": False}, "counter": {"N": "0"}}), self.table)

    async def announce(self, me: str) -> int:
        """Keep this node's presence alive; returns its counter."""
        item = await answer(self.ddb.update_item(
            TableName=self.table, Key=_key(NODE_PREFIX + me),
            UpdateExpression="SET #o = :me ADD #c :one", ExpressionAttributeNames=_OWNER,
            ExpressionAttributeValues={":me": {"S": me}} | _ONE,
            ReturnValues="UPDATED_NEW"), self.table)
        return int(item["Attributes"]["counter"]["N"])

    async def leave(self, me: str) -> None:
        await answer(self.ddb.delete_item(TableName=self.table, Key=_key(NODE_PREFIX + me)),
                     self.table)

    async def leases(self, arn: str) -> list[LeaseItem]:
        """Every lease of the stream `arn` and every presence item. The table is one
        small item per shard and per node: a Scan, off any request path, as the Kinesis
        Client Library does it."""
        found: list[LeaseItem] = []
        kwargs: dict[str, Any] = {"TableName": self.table, "ConsistentRead": True}
        while True:
            page = await answer(self.ddb.scan(**kwargs), self.table)
            found += [_lease_item(i) for i in page.get("Items", [])
                      if i.get("streamArn", {}).get("S", arn) == arn]
            if "LastEvaluatedKey" not in page:
                return found
            kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]

    async def take(self, lease: Lease, me: str) -> LeaseItem | None:
        """Take `lease` if its counter is still the one seen; None if another node moved
        first."""
        try:
            item = await answer(self.ddb.update_item(
                TableName=self.table, Key=_key(lease.key),
                UpdateExpression="SET #o = :me ADD #c :one",
                ConditionExpression="#c = :seen", ExpressionAttributeNames=_OWNER,
                ExpressionAttributeValues={":me": {"S": me},
                                           ":seen": {"N": str(lease.counter)}} | _ONE,
                ReturnValues="ALL_NEW"), self.table)
        except ConditionFailed:
            return None
        return _lease_item(item["Attributes"])

    async def renew(self, shard_id: str, me: str, counter: int,
                    checkpoint: str | None = None) -> int | None:
        """Bump a held lease's counter, recording `checkpoint` in the same write (a
        checkpoint costs nothing more than the renewal); None if it is no longer this
        node's."""
        update, names, values = "ADD #c :one", dict(_OWNER), {
            ":me": {"S": me}, ":mine": {"N": str(counter)}} | _ONE
        if checkpoint:
            update += " SET #s = :s"
            names["#s"], values[":s"] = "sequenceNumber", {"S": checkpoint}
        try:
            item = await answer(self.ddb.update_item(
                TableName=self.table, Key=_key(shard_id), UpdateExpression=update,
                ConditionExpression="#o = :me AND #c = :mine", ExpressionAttributeNames=names,
                ExpressionAttributeValues=values, ReturnValues="UPDATED_NEW"), self.table)
        except ConditionFailed:
            return None
        return int(item["Attributes"]["counter"]["N"])

    async def release(self, shard_id: str, me: str, checkpoint: str | None = None) -> None:
        """Hand a lease back at once (if it is still this node's), with its last
        checkpoint in the same write."""
        update, names, values = "REMOVE #o", {"#o": "owner"}, {":me": {"S": me}}
        if checkpoint:
            update += " SET #s = :s"
            names["#s"], values[":s"] = "sequenceNumber", {"S": checkpoint}
        with contextlib.suppress(ConditionFailed):
            await answer(self.ddb.update_item(
                TableName=self.table, Key=_key(shard_id), UpdateExpression=update,
                ConditionExpression="#o = :me", ExpressionAttributeNames=names,
                ExpressionAttributeValues=values), self.table)

    async def checkpoint(self, shard_id: str, me: str, sequence: str | None,
                         finished: bool = False) -> bool:
        """Record how far `shard_id` was copied; False if the lease is not `me`'s."""
        updates = ["#f = :f"]
        names = {"#f": "finished", "#o": "owner"}
        values = {":f": {"BOOL": finished}, ":me": {"S": me}}
        if sequence:
            updates.append("#s = :s")
            names["#s"] = "sequenceNumber"
            values[":s"] = {"S": sequence}
        try:
            await answer(self.ddb.update_item(
                TableName=self.table, Key=_key(shard_id),
                UpdateExpression="SET " + ", ".join(updates), ConditionExpression="#o = :me",
                ExpressionAttributeNames=names, ExpressionAttributeValues=values), self.table)
        except ConditionFailed:
            return False
        return True


def _key(shard_id: str) -> dict[str, Any]:
    return {"shardId": {"S": shard_id}}


def _lease_item(item: dict[str, Any]) -> LeaseItem:
    return LeaseItem(
        Lease(item["shardId"]["S"], item.get("owner", {}).get("S"),
              int(item.get("counter", {}).get("N", 0))),
        finished=bool(item.get("finished", {}).get("BOOL")),
        checkpoint=item.get("sequenceNumber", {}).get("S"))


def article_of(write: ReaderWrite) -> str:
    key = write.request.get("Item") or write.request.get("Key") or {}
    return str(key.get("articleId", {}).get("S", ""))


def _quotable(item: dict[str, Any]) -> bool:
    """Attribute names a statement can name (node ids may hold quotes)."""
    return not any(c in name for name in item for c in "\"'\\")


def _copy_statement(table: str, write: ReaderWrite, insert: bool) -> dict[str, Any]:
    """The PartiQL form of a reader put: INSERT the image, or UPDATE the item to it on
    condition that the item's version is older (as the put's condition says)."""
    item = write.request["Item"]
    if insert:
        return {"Statement": f'INSERT INTO "{table}" VALUE {{'
                             + ", ".join(f"'{name}': ?" for name in item) + "}",
                "Parameters": list(item.values())}
    names = [name for name in item if name != "articleId"]
    return {"Statement": f'UPDATE "{table}" ' + " ".join(f'SET "{n}" = ?' for n in names)
                         + ' WHERE "articleId" = ? AND "version" < ?',
            "Parameters": [item[n] for n in names] + [item["articleId"], item["version"]],
            "ReturnValuesOnConditionCheckFailure": "ALL_OLD"}
