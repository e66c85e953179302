"""DynamoDB: the tables, and the few requests livecount makes of them.

A thin edge: it turns a `Flush` into UpdateItem calls and store answers into
`Counts`, and decides nothing. Retries are botocore's standard mode (capped
exponential backoff with jitter); whatever still fails is reported back to the
ledger, which keeps the delta for the next flush.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Iterable
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from typing import Any

import aioboto3
from botocore.config import Config as BotoConfig
from botocore.exceptions import BotoCoreError, ClientError

from .counting import SITE, Counts, Flush, FlushResult, ReferrerKey
from .logs import warn
from .pages import Target

__all__ = ["SITE", "Store", "StoreError", "Tables"]
StoreError = (BotoCoreError, ClientError)


@dataclass(frozen=True)
class Tables:
    writer: str
    reader: str
    pages: str
    referrers: str
    checkpoints: str

    @classmethod
    def named(cls, prefix: str = "") -> Tables:
        return cls(
            writer=f"{prefix}PostCountWriter",
            reader=f"{prefix}PostCountReader",
            pages=f"{prefix}HomeAndProfile",
            referrers=f"{prefix}Referrer",
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
        """One ADD per target and per referrer key, concurrently; failures are returned."""
        result = FlushResult()

        async def target(t: Target, total: int, unique: int, title: str | None) -> None:
            try:
                async with self._limit:
                    answer = await self.ddb.update_item(**self._add_views(t, total, unique, title))
            except StoreError as exc:
                result.failed_targets.add(t)
                warn("flush_failed", target=t.ref, error=str(exc))
                return
            # Applied: from here on nothing may put it back in the failed set.
            result.applied[t] = _counts(answer.get("Attributes", {}))

        async def referrer(key: ReferrerKey, views: int) -> None:
            try:
                async with self._limit:
                    await self.ddb.update_item(
                        TableName=self.tables.referrers,
                        Key={"target": {"S": key[0]}, "host": {"S": key[1]}},
                        UpdateExpression="ADD #n :n",
                        ExpressionAttributeNames={"#n": "views"},
                        ExpressionAttributeValues={":n": {"N": str(views)}},
                    )
            except StoreError as exc:
                result.failed_referrers.add(key)
                warn("flush_failed", target=key[0], host=key[1], error=str(exc))

        async with asyncio.TaskGroup() as group:
            for t, d in flush.targets.items():
                group.create_task(target(t, d.total, d.unique, d.title))
            for key, views in flush.referrers.items():
                group.create_task(referrer(key, views))
        return result

    def _add_views(self, t: Target, total: int, unique: int, title: str | None) -> dict[str, Any]:
        values = {":t": {"N": str(total)}, ":u": {"N": str(unique)}}
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
        targets = list(dict.fromkeys(targets))
        found = {t: Counts(0, 0) for t in targets}
        for start in range(0, len(targets), 100):  # BatchGetItem takes 100 keys
            chunk = targets[start:start + 100]
            request: dict[str, Any] = {}
            for t in chunk:
                table, key = self._read_key(t)
                request.setdefault(table, {"Keys": [], "ConsistentRead": True})["Keys"].append(key)
            while request:
                answer = await self.ddb.batch_get_item(RequestItems=request)
                for table, items in answer.get("Responses", {}).items():
                    post = table == self.tables.reader
                    name = "articleId" if post else "pageName"
                    for item in items:
                        found[Target("post" if post else "page", item[name]["S"])] = _counts(item)
                request = answer.get("UnprocessedKeys") or {}
        return found

    def _read_key(self, t: Target) -> tuple[str, dict[str, Any]]:
        if t.kind == "post":
            return self.tables.reader, {"articleId": {"S": t.id}}
        return self.tables.pages, {"pageName": {"S": t.id}}

    async def top_referrers(self, ref: str, limit: int = 10) -> list[tuple[str, int]]:
        """External hosts that sent views to `ref` (a `Target.ref` or `SITE`): a Query."""
        hosts: list[tuple[str, int]] = []
        kwargs: dict[str, Any] = {
            "TableName": self.tables.referrers,
            "KeyConditionExpression": "#t = :t",
            "ExpressionAttributeNames": {"#t": "target"},
            "ExpressionAttributeValues": {":t": {"S": ref}},
        }
        while True:
            page = await self.ddb.query(**kwargs)
            hosts += [(i["host"]["S"], int(i["views"]["N"])) for i in page.get("Items", [])]
            if "LastEvaluatedKey" not in page:
                break
            kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]
        hosts.sort(key=lambda h: (-h[1], h[0]))
        return hosts[:limit]


def _counts(item: dict[str, Any]) -> Counts:
    return Counts(int(item.get("totalViews", {}).get("N", 0)),
                  int(item.get("uniqueViews", {}).get("N", 0)))
