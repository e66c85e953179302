"""DynamoDB: the store interface that the rest of livecount sees.

A thin edge: it turns a `Flush` into writes (`store.writer`, in `store_batches`) and
store answers into `Counts`, and decides nothing. Nothing outside `aws/store*.py`
touches the SDK's clients; the stream side (shards, leases, checkpoints, the reader
copy) is `store.stream`. Retries are botocore's standard mode (capped exponential backoff with
jitter). Failures raise livecount's store errors (`core/errors.py`): StoreUnavailable
when a retry may help, StoreRefused for credentials or policy, StoreRejected for a
request DynamoDB refuses as invalid. A bug in livecount is never translated.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Iterable
from contextlib import AsyncExitStack, asynccontextmanager
from typing import Any, NamedTuple

import aioboto3
from botocore.config import Config as BotoConfig
from livecount.aws import store_requests
from livecount.aws.store_batches import FlushWriter, Item, KnownItems
from livecount.aws.store_errors import Answered, answer
from livecount.aws.store_feed import FeedTable
from livecount.aws.store_index import PageIndex
from livecount.aws.store_reports import RowReads
from livecount.aws.store_stream import StreamStore
from livecount.core.ledger import SITE, Counts, Flush, FlushResult
from livecount.core.pages import Target
from livecount.core.tables import FEED_TTL_ATTRIBUTE, Tables

__all__ = ["SITE", "Described", "Store", "Tables"]


class Described(NamedTuple):
    """A post's or page's stored counts, and a post's title and path ("" for none)."""

    counts: Counts
    title: str = ""
    path: str = ""


UNSEEN = Described(Counts(0, 0))  # what the store holds of a target it has no item of


def endpoint_url(endpoint: str) -> str | None:
    """`aws` means the SDK's own endpoint for the region; anything else is a URL."""
    return None if endpoint == "aws" else endpoint


class Store:
    """One node's store: flushes, reads, tables; the stream side is `stream`, the report
    rows' reads `reports`, the live feed `feed`."""

    def __init__(
        self,
        ddb: Any,
        streams: Any,
        tables: Tables,
        node_id: str = "node",
        concurrency: int = 32,
        ddb_once: Any = None,
    ) -> None:
        self.ddb = ddb
        # Batches go on a client that does not retry them: what a failed one held goes
        # one write a request, each retried by botocore. Without one, no batches.
        self.ddb_once = ddb_once
        self.streams = streams
        self.tables = tables
        self.stream = StreamStore(ddb, streams, tables, ddb_once)
        self.reports = RowReads(ddb, tables)  # report rows
        self.feed = FeedTable(ddb, tables)  # the live feed
        self.pages = PageIndex(ddb, tables)  # what the site lists, and its cap
        # Per item, the last flush sequence number this node applied to it.
        self.flush_attribute = f"flush:{node_id}"
        self.known: KnownItems[Item] = KnownItems()  # seen by reads, used by writes
        self.writer = FlushWriter(
            ddb, tables, self.flush_attribute, self.known, concurrency, ddb_once
        )
        # Set when a flush changed a writer item: its stream record is on its way, so
        # the stream consumer looks now rather than at its next quiet poll.
        self.written = asyncio.Event()

    @classmethod
    @asynccontextmanager
    async def open(
        cls,
        endpoint: str,
        region: str,
        prefix: str = "",
        node_id: str = "node",
        attempts: int = 4,
        validate: bool = True,
    ) -> AsyncIterator[Store]:
        """Clients for `endpoint`; each request is tried up to `attempts` times. Without
        `validate` the SDK sends requests unchecked (DynamoDB still checks them): a bulk
        writer of requests it built itself saves a fifth of its CPU."""
        url = endpoint_url(endpoint)
        session = aioboto3.Session()
        creds: dict[str, str] = {}
        if (
            url is not None
            and not os.environ.get("AWS_ACCESS_KEY_ID")
            and not os.environ.get("AWS_PROFILE")
        ):
            # DynamoDB Local and moto accept any key but the SDK insists on one.
            creds = {"aws_access_key_id": "livecount", "aws_secret_access_key": "livecount"}
        boto = BotoConfig(
            retries={"mode": "standard", "total_max_attempts": attempts},
            connect_timeout=3,
            read_timeout=10,
            max_pool_connections=64,
            parameter_validation=validate,
        )
        once = boto.merge(BotoConfig(retries={"mode": "standard", "total_max_attempts": 1}))
        async with AsyncExitStack() as stack:
            ddb = await stack.enter_async_context(
                session.client(
                    "dynamodb", endpoint_url=url, region_name=region, config=boto, **creds
                )
            )
            ddb_once = await stack.enter_async_context(
                session.client(
                    "dynamodb", endpoint_url=url, region_name=region, config=once, **creds
                )
            )
            streams = await stack.enter_async_context(
                session.client(
                    "dynamodbstreams", endpoint_url=url, region_name=region, config=boto, **creds
                )
            )
            yield cls(ddb, streams, Tables.named(prefix), node_id, ddb_once=ddb_once)

    # -- tables ------------------------------------------------------------------
    async def create_tables(self) -> list[str]:
        """Create whatever is missing and wait until all are active; returns what it made.

        Looks before it creates, so a node whose role may not create tables (see
        docs/SECURITY.md) starts fine on tables made by the template."""
        made = []
        for spec in self.tables.definitions():
            name = spec["TableName"]
            try:
                await answer(
                    self.ddb.describe_table(TableName=name),
                    name,
                    expected=["ResourceNotFoundException"],
                )
                continue
            except Answered:
                pass
            try:
                await answer(
                    self.ddb.create_table(**spec), name, expected=["ResourceInUseException"]
                )
                made.append(name)
            except Answered:
                pass  # another node made it in between: fine
        waiter = self.ddb.get_waiter("table_exists")
        for spec in self.tables.definitions():
            await answer(
                waiter.wait(TableName=spec["TableName"], WaiterConfig={"Delay": 1}),
                spec["TableName"],
            )
        if self.tables.feed in made:
            await answer(
                self.ddb.update_time_to_live(
                    TableName=self.tables.feed,
                    TimeToLiveSpecification={"Enabled": True, "AttributeName": FEED_TTL_ATTRIBUTE},
                ),
                self.tables.feed,
            )
        return made

    async def ping(self) -> None:
        await answer(self.ddb.describe_table(TableName=self.tables.writer), self.tables.writer)

    # -- the write path ----------------------------------------------------------------
    @property
    def batching(self) -> bool:
        """Whether writes go in PartiQL batches (not once the endpoint showed it takes none)."""
        return self.writer.batches.on

    async def flush(self, flush: Flush) -> FlushResult:
        """Every write of a flush, concurrently; what failed comes back, nothing raises
        but a bug.

        Each write is an ADD on condition that the key has not applied this node's
        sequence number yet, so a replay (botocore's own retry, or ours of an
        unsettled write) adds nothing: the refusal means "already applied". A write
        DynamoDB refuses as invalid comes back in `rejected_*` with the error, never in
        `failed_*`, so it cannot hold the other keys up.

        The writes go 25 to a BatchExecuteStatement where the endpoint takes them (the
        same conditions, in PartiQL; see `store_batches.Batches`); whatever a batch
        cannot settle goes one UpdateItem or PutItem a request, which decides.
        """
        result = await self.writer.write(flush)
        if any(
            t.kind == "post"
            for t in flush.targets
            if t not in result.failed_targets and t not in result.rejected_targets
        ):
            self.written.set()
        return result

    # -- the read path ---------------------------------------------------------------
    async def read_counts(
        self, targets: Iterable[Target], writer: bool = False
    ) -> dict[Target, Counts]:
        """Counts from the reader table (posts) and HomeAndProfile (pages); absent is zero."""
        return {t: found.counts for t, found in (await self.read(targets, writer)).items()}

    async def read(
        self, targets: Iterable[Target], writer: bool = False
    ) -> dict[Target, Described]:
        """Counts, title and path of each target, from the reader side; absent is zero.
        With `writer`, posts from the writer table: what a reset reads, since the reader
        lags it by the stream (the copy of a delete may land after new views were
        stored, and its re-read would show what the reader held then)."""
        targets = list(dict.fromkeys(targets))
        found = {t: Described(Counts(0, 0)) for t in targets}
        for request in store_requests.batch_gets(self.tables, targets, writer):
            while request:
                got = await answer(self.ddb.batch_get_item(RequestItems=request), "BatchGetItem")
                for table, items in got.get("Responses", {}).items():
                    post = table != self.tables.pages
                    name = "articleId" if post else "pageName"
                    for item in items:
                        found[Target("post" if post else "page", item[name]["S"])] = Described(
                            store_requests.counts(item), *store_requests.described(item)
                        )
                        # A reader item is a copy of a writer item: that one exists.
                        self.known.add(
                            (self.tables.writer if post else self.tables.pages, item[name]["S"])
                        )
                request = got.get("UnprocessedKeys") or {}
        return found

    async def _query(self, kwargs: dict[str, Any]) -> list[dict[str, Any]]:
        """Every item a Query (`store_requests.query`) finds, page by page; never a Scan."""
        pages = self.ddb.get_paginator("query").paginate(**kwargs)
        return list((await answer(pages.build_full_result(), kwargs["TableName"])).get("Items", []))

    async def tracked(self) -> list[Target]:
        """Every post and page ever counted, from the page index."""
        items = await self._query(
            store_requests.query(self.tables.index, "index", store_requests.INDEX)
        )
        return [t for i in items if (t := Target.from_ref(i["target"]["S"])) is not None]
