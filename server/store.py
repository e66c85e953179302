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

from .counting import SITE, Counts, Delta, Flush, FlushResult, Row
from .logs import warn
from .pages import Target

__all__ = ["SITE", "Store", "StoreError", "Tables"]
INDEX = "all"  # the one PageIndex partition: every tracked post and page, by ref
StoreError = (BotoCoreError, ClientError)


@dataclass(frozen=True)
class Tables:
    writer: str
    reader: str
    pages: str
    referrers: str
    timeline: str
    index: str
    checkpoints: str

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
        ]


def endpoint_url(endpoint: str) -> str | None:
    """`aws` means the SDK's own endpoint for the region; anything else is a URL."""
    return None if endpoint == "aws" else endpoint


class Store:
    def __init__(self, ddb: Any, streams: Any, tables: Tables, concurrency: int = 32) -> None:
        self.ddb = ddb
        self.streams = streams
        self.tables = tables
        self._limit = asyncio.Semaphore(concurrency)

    @classmethod
    @asynccontextmanager
    async def open(cls, endpoint: str, region: str, prefix: str = "") -> AsyncIterator[Store]:
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
            yield cls(ddb, streams, Tables.named(prefix))

    # -- tables ------------------------------------------------------------------
    async def create_tables(self) -> list[str]:
        """Create whatever is missing and wait until all are active; returns what it made."""
        made = []
        for spec in self.tables.definitions():
            try:
                await self.ddb.create_table(**spec)
                made.append(spec["TableName"])
            except ClientError as exc:
                if exc.response["Error"]["Code"] != "ResourceInUseException":
                    raise
        waiter = self.ddb.get_waiter("table_exists")
        for spec in self.tables.definitions():
            await waiter.wait(TableName=spec["TableName"], WaiterConfig={"Delay": 1})
        return made

    async def ping(self) -> None:
        await self.ddb.describe_table(TableName=self.tables.writer)

    # -- the write path ----------------------------------------------------------------
    async def flush(self, flush: Flush) -> FlushResult:
        """One ADD per target and per report row, concurrently; failures are returned."""
        result = FlushResult()

        async def send(request: dict[str, Any], failed: Callable[[], None]) -> dict[str, Any]:
            try:
                async with self._limit:
                    answer: dict[str, Any] = await self.ddb.update_item(**request) \
                        if "UpdateExpression" in request else await self.ddb.put_item(**request)
                    return answer
            except StoreError as exc:
                failed()
                warn("flush_failed", table=request["TableName"], error=str(exc))
                return {}

        async def target(t: Target, delta: Delta) -> None:
            answer = await send(self._add_views(t, delta), lambda: result.failed_targets.add(t))
            if answer:  # applied: from here on nothing may put it back in the failed set
                result.applied[t] = _counts(answer.get("Attributes", {}))

        async with asyncio.TaskGroup() as group:
            for t, delta in flush.targets.items():
                group.create_task(target(t, delta))
            for row, delta in flush.rows.items():
                group.create_task(send(self._add_row(row, delta),
                                       partial(result.failed_rows.add, row)))
            for t in flush.new:
                group.create_task(send(
                    {"TableName": self.tables.index,
                     "Item": {"index": {"S": INDEX}, "target": {"S": t.ref}}},
                    partial(result.failed_index.add, t)))
        return result

    def _add_row(self, row: Row, delta: Delta) -> dict[str, Any]:
        if row.table == "referrer":
            return {
                "TableName": self.tables.referrers,
                "Key": {"target": {"S": row.target}, "host": {"S": row.sort}},
                "UpdateExpression": "ADD #n :n",
                "ExpressionAttributeNames": {"#n": "views"},
                "ExpressionAttributeValues": {":n": {"N": str(delta.total)}},
            }
        return {
            "TableName": self.tables.timeline,
            "Key": {"target": {"S": row.target}, "hour": {"S": row.sort}},
            "UpdateExpression": "ADD totalViews :t, uniqueViews :u",
            "ExpressionAttributeValues": {":t": {"N": str(delta.total)},
                                          ":u": {"N": str(delta.unique)}},
        }

    def _add_views(self, t: Target, delta: Delta) -> dict[str, Any]:
        values = {":t": {"N": str(delta.total)}, ":u": {"N": str(delta.unique)}}
        title = delta.title
        if t.kind == "post":
            table, key = self.tables.writer, {"articleId": {"S": t.id}}
            update = "ADD totalViews :t, uniqueViews :u, #v :one"
            names = {"#v": "version"}
            values[":one"] = {"N": "1"}
            if title:
                update += " SET articleTitle = :title"
                values[":title"] = {"S": title}
        else:
            table, key = self.tables.pages, {"pageName": {"S": t.id}}
            update, names = "ADD totalViews :t, uniqueViews :u", {}
        request: dict[str, Any] = {
            "TableName": table, "Key": key, "UpdateExpression": update,
            "ExpressionAttributeValues": values, "ReturnValues": "ALL_NEW",
        }
        if names:
            request["ExpressionAttributeNames"] = names
        return request

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
