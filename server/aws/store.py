"""DynamoDB: the tables, and the few requests livecount makes of them.

A thin edge: it turns a `Flush` into UpdateItem calls and store answers into
`Counts`, and decides nothing. Retries are botocore's standard mode (capped
exponential backoff with jitter); whatever still fails is reported back to the
ledger, which keeps the delta for the next flush.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Callable, Iterable
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from functools import partial
from typing import Any

import aioboto3
from botocore.config import Config as BotoConfig
from botocore.exceptions import BotoCoreError, ClientError
from livecount.core import feed
from livecount.core.ledger import SITE, Counts, Flush, FlushResult, Row, Write
from livecount.core.pages import Target
from livecount.logs import warn

__all__ = ["SITE", "Store", "StoreError", "Tables"]
INDEX = "all"  # the one PageIndex partition: every tracked post and page, by ref
StoreError = (BotoCoreError, ClientError)
# Answers that no retry will change: the operator must fix credentials or policy.
FATAL_CODES = frozenset({"AccessDeniedException", "UnrecognizedClientException",
                         "InvalidSignatureException", "MissingAuthenticationTokenException"})


@dataclass(frozen=True)
class Tables:
    writer: str
    reader: str
    pages: str
    referrers: str
    timeline: str
    index: str
    checkpoints: str
    feed: str

    @classmethod
    def named(cls, prefix: str = "") -> Tables:
        return cls(
            writer=f"{prefix}PostCountWriter",
            reader=f"{prefix}PostCountReader",
            pages=f"{prefix}HomeAndProfile",
            referrers=f"{prefix}Referrer",
            timeline=f"{prefix}Timeline",
            index=f"{prefix}PageIndex",
            checkpoints=f"{prefix}StreamCheckpoint",
            feed=f"{prefix}LiveFeed",
        )

    def definitions(self) -> list[dict[str, Any]]:
        """CreateTable requests: the seed's names and keys, on-demand billing."""
        def table(name: str, *keys: tuple[str, str], stream: bool = False) -> dict[str, Any]:
            spec: dict[str, Any] = {
                "TableName": name,
                "BillingMode": "PAY_PER_REQUEST",
                "AttributeDefinitions": [
                    {"AttributeName": k, "AttributeType": "S"} for k, _ in keys],
                "KeySchema": [{"AttributeName": k, "KeyType": t} for k, t in keys],
            }
            if stream:
                spec["StreamSpecification"] = {
                    "StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"}
            return spec

        return [
            table(self.writer, ("articleId", "HASH"), stream=True),
            table(self.reader, ("articleId", "HASH")),
            table(self.pages, ("pageName", "HASH")),
            table(self.referrers, ("target", "HASH"), ("host", "RANGE")),
            table(self.timeline, ("target", "HASH"), ("hour", "RANGE")),
            table(self.index, ("index", "HASH"), ("target", "RANGE")),
            table(self.checkpoints, ("shardId", "HASH")),
            table(self.feed, ("feed", "HASH"), ("at", "RANGE")),
        ]


def endpoint_url(endpoint: str) -> str | None:
    """`aws` means the SDK's own endpoint for the region; anything else is a URL."""
    return None if endpoint == "aws" else endpoint


class Store:
    def __init__(self, ddb: Any, streams: Any, tables: Tables, node_id: str = "node",
                 concurrency: int = 32) -> None:
        self.ddb = ddb
        self.streams = streams
        self.tables = tables
        # Per item, the last flush sequence number this node applied to it.
        self.flush_attribute = f"flush:{node_id}"
        self._limit = asyncio.Semaphore(concurrency)

    @classmethod
    @asynccontextmanager
    async def open(cls, endpoint: str, region: str, prefix: str = "", node_id: str = "node",
                   ) -> AsyncIterator[Store]:
        url = endpoint_url(endpoint)
        session = aioboto3.Session()
        creds: dict[str, str] = {}
        if url is not None and not os.environ.get("AWS_ACCESS_KEY_ID") \
                and not os.environ.get("AWS_PROFILE"):
            # DynamoDB Local and moto accept any key but the SDK insists on one.
            creds = {"aws_access_key_id": "livecount", "aws_secret_access_key": "livecount"}
        boto = BotoConfig(
            retries={"mode": "standard", "max_attempts": 4},
            connect_timeout=3, read_timeout=10, max_pool_connections=64,
        )
        async with AsyncExitStack() as stack:
            ddb = await stack.enter_async_context(session.client(
                "dynamodb", endpoint_url=url, region_name=region, config=boto, **creds))
            streams = await stack.enter_async_context(session.client(
                "dynamodbstreams", endpoint_url=url, region_name=region, config=boto, **creds))
            yield cls(ddb, streams, Tables.named(prefix), node_id)

    # -- tables ------------------------------------------------------------------
    async def create_tables(self) -> list[str]:
        """Create whatever is missing and wait until all are active; returns what it made.

        Looks before it creates, so a node whose role may not create tables (see
        docs/SECURITY.md) starts fine on tables made by the template."""
        made = []
        for spec in self.tables.definitions():
            try:
                await self.ddb.describe_table(TableName=spec["TableName"])
                continue
            except ClientError as exc:
                if exc.response["Error"]["Code"] != "ResourceNotFoundException":
                    raise
            try:
                await self.ddb.create_table(**spec)
                made.append(spec["TableName"])
            except ClientError as exc:
                if exc.response["Error"]["Code"] != "ResourceInUseException":
                    raise  # another node made it in between: fine
        waiter = self.ddb.get_waiter("table_exists")
        for spec in self.tables.definitions():
            await waiter.wait(TableName=spec["TableName"], WaiterConfig={"Delay": 1})
        if self.tables.feed in made:
            await self.ddb.update_time_to_live(
                TableName=self.tables.feed,
                TimeToLiveSpecification={"Enabled": True, "AttributeName": "expires"})
        return made

    async def ping(self) -> None:
        await self.ddb.describe_table(TableName=self.tables.writer)

    # -- the write path ----------------------------------------------------------------
    async def flush(self, flush: Flush) -> FlushResult:
        """Every write of a flush, concurrently; what failed comes back, nothing raises.

        Each write is an ADD on condition that the key has not applied this node's
        sequence number yet, so a replay (botocore's own retry, or ours of an
        unsettled write) adds nothing: the refusal means "already applied".
        """
        result = FlushResult()

        async def send(request: dict[str, Any], failed: Callable[[], None],
                       ) -> dict[str, Any] | None:
            try:
                async with self._limit:
                    if "UpdateExpression" in request:
                        answer = await self.ddb.update_item(**request)
                        return dict(answer.get("Attributes", {}))
                    await self.ddb.put_item(**request)
                    return {}
            except ClientError as exc:
                if exc.response["Error"]["Code"] == "ConditionalCheckFailedException":
                    # Applied before: this is the retry of a write that got through.
                    return dict(exc.response.get("Item", {}))
                failed()
                warn("flush_failed", table=request["TableName"], error=str(exc))
            except BotoCoreError as exc:
                failed()
                warn("flush_failed", table=request["TableName"], error=str(exc))
            return None

        async def target(t: Target, write: Write) -> None:
            item = await send(self._add_views(t, write), partial(result.failed_targets.add, t))
            if item is not None:  # applied: nothing may put it back in the failed set
                result.applied[t] = _counts(item)

        async with asyncio.TaskGroup() as group:
            for t, write in flush.targets.items():
                group.create_task(target(t, write))
            for row, write in flush.rows.items():
                group.create_task(send(self._add_row(row, write),
                                       partial(result.failed_rows.add, row)))
            for t in flush.new:
                group.create_task(send(
                    {"TableName": self.tables.index,
                     "Item": {"index": {"S": INDEX}, "target": {"S": t.ref}}},
                    partial(result.failed_index.add, t)))
        return result

    def _idempotent(self, table: str, key: dict[str, Any], adds: dict[str, int], seq: int,
                    sets: dict[str, str] | None = None) -> dict[str, Any]:
        """UpdateItem: ADD `adds` and remember `seq`, unless this node's `seq` was seen."""
        names = {"#f": self.flush_attribute}
        values: dict[str, Any] = {":seq": {"N": str(seq)}}
        parts = []
        for i, (name, amount) in enumerate(adds.items()):
            names[f"#a{i}"] = name
            values[f":a{i}"] = {"N": str(amount)}
            parts.append(f"#a{i} :a{i}")
        assignments = ["#f = :seq"]
        for i, (name, text) in enumerate((sets or {}).items()):
            names[f"#s{i}"] = name
            values[f":s{i}"] = {"S": text}
            assignments.append(f"#s{i} = :s{i}")
        return {
            "TableName": table, "Key": key,
            "UpdateExpression": f"ADD {', '.join(parts)} SET {', '.join(assignments)}",
            "ConditionExpression": "attribute_not_exists(#f) OR #f < :seq",
            "ExpressionAttributeNames": names, "ExpressionAttributeValues": values,
            "ReturnValues": "ALL_NEW", "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
        }

    def _add_row(self, row: Row, write: Write) -> dict[str, Any]:
        if row.table == "referrer":
            return self._idempotent(
                self.tables.referrers, {"target": {"S": row.target}, "host": {"S": row.sort}},
                {"views": write.delta.total}, write.seq)
        return self._idempotent(
            self.tables.timeline, {"target": {"S": row.target}, "hour": {"S": row.sort}},
            {"totalViews": write.delta.total, "uniqueViews": write.delta.unique}, write.seq)

    def _add_views(self, t: Target, write: Write) -> dict[str, Any]:
        adds = {"totalViews": write.delta.total, "uniqueViews": write.delta.unique}
        if t.kind == "page":
            return self._idempotent(self.tables.pages, {"pageName": {"S": t.id}}, adds,
                                    write.seq)
        # Posts also bump `version`, which orders their images for the stream copy.
        title = {"articleTitle": write.delta.title} if write.delta.title else None
        return self._idempotent(self.tables.writer, {"articleId": {"S": t.id}},
                                adds | {"version": 1}, write.seq, title)

    # -- the live feed -----------------------------------------------------------------
    async def write_feed(self, items: list[tuple[int, bytes]], expires: int) -> None:
        for at, payload in items:
            await self.ddb.put_item(TableName=self.tables.feed,
                                    Item=feed.item(at, payload, expires))

    async def read_feed(self, after: int) -> list[tuple[int, str]]:
        """Feed items with a sort key above `after`, oldest first: one Query."""
        kwargs: dict[str, Any] = {
            "TableName": self.tables.feed, "ConsistentRead": True,
            "KeyConditionExpression": "#f = :f AND #a > :a",
            "ExpressionAttributeNames": {"#f": "feed", "#a": "at"},
            "ExpressionAttributeValues": {":f": {"S": feed.PARTITION},
                                          ":a": {"S": f"{after:024d}"}},
        }
        items: list[tuple[int, str]] = []
        while True:
            page = await self.ddb.query(**kwargs)
            items += [(int(i["at"]["S"]), i["changes"]["S"]) for i in page.get("Items", [])]
            if "LastEvaluatedKey" not in page:
                return items
            kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]

    # -- the read path ---------------------------------------------------------------
    async def read_counts(self, targets: Iterable[Target]) -> dict[Target, Counts]:
        """Counts from the reader table (posts) and HomeAndProfile (pages); absent is zero."""
        return {t: counts for t, (counts, _) in (await self.read(targets)).items()}

    async def read(self, targets: Iterable[Target]) -> dict[Target, tuple[Counts, str]]:
        """Counts and title of each target, from the reader side; absent is zero and ""."""
        targets = list(dict.fromkeys(targets))
        found = {t: (Counts(0, 0), "") for t in targets}
        for start in range(0, len(targets), 100):  # BatchGetItem takes 100 keys
            request: dict[str, Any] = {}
            for t in targets[start:start + 100]:
                table, key = self._read_key(t)
                request.setdefault(table, {"Keys": [], "ConsistentRead": True})["Keys"].append(key)
            while request:
                answer = await self.ddb.batch_get_item(RequestItems=request)
                for table, items in answer.get("Responses", {}).items():
                    post = table == self.tables.reader
                    name = "articleId" if post else "pageName"
                    for item in items:
                        found[Target("post" if post else "page", item[name]["S"])] = (
                            _counts(item), item.get("articleTitle", {}).get("S", ""))
                request = answer.get("UnprocessedKeys") or {}
        return found

    def _read_key(self, t: Target) -> tuple[str, dict[str, Any]]:
        if t.kind == "post":
            return self.tables.reader, {"articleId": {"S": t.id}}
        return self.tables.pages, {"pageName": {"S": t.id}}

    async def _query(self, table: str, target: str, between: tuple[str, str] | None = None,
                     ) -> list[dict[str, Any]]:
        """Every item of one partition (optionally a sort-key range): Query, never Scan."""
        names = {"#t": "index" if table == self.tables.index else "target"}
        values: dict[str, Any] = {":t": {"S": target}}
        condition = "#t = :t"
        if between is not None:
            names["#s"] = "hour"
            values |= {":a": {"S": between[0]}, ":b": {"S": between[1]}}
            condition += " AND #s BETWEEN :a AND :b"
        kwargs: dict[str, Any] = {
            "TableName": table, "KeyConditionExpression": condition,
            "ExpressionAttributeNames": names, "ExpressionAttributeValues": values,
        }
        items: list[dict[str, Any]] = []
        while True:
            page = await self.ddb.query(**kwargs)
            items += page.get("Items", [])
            if "LastEvaluatedKey" not in page:
                return items
            kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]

    async def top_referrers(self, ref: str, limit: int = 10) -> list[tuple[str, int]]:
        """External hosts that sent views to `ref` (a `Target.ref` or `SITE`), most first."""
        items = await self._query(self.tables.referrers, ref)
        hosts = [(i["host"]["S"], int(i["views"]["N"])) for i in items]
        hosts.sort(key=lambda h: (-h[1], h[0]))
        return hosts[:limit]

    async def tracked(self) -> list[Target]:
        """Every post and page ever counted, from the page index."""
        items = await self._query(self.tables.index, INDEX)
        return [t for i in items if (t := Target.from_ref(i["target"]["S"])) is not None]

    async def hours(self, ref: str, first: str, last: str) -> dict[str, Counts]:
        """Hourly buckets of `ref` (a `Target.ref` or `SITE`) from `first` to `last` hour."""
        items = await self._query(self.tables.timeline, ref, (first, last))
        return {i["hour"]["S"]: _counts(i) for i in items}


def _counts(item: dict[str, Any]) -> Counts:
    return Counts(int(item.get("totalViews", {}).get("N", 0)),
                  int(item.get("uniqueViews", {}).get("N", 0)))
