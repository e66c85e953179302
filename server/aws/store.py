"""DynamoDB: the store interface that the rest of livecount sees.

A thin edge: it turns a `Flush` into UpdateItem calls and store answers into
`Counts`, and decides nothing. Nothing outside `aws/store*.py` touches the SDK's
clients; the stream side (shards, leases, checkpoints, the reader copy) is
`store.stream`. Retries are botocore's standard mode (capped exponential backoff with
jitter). Failures raise livecount's store errors (`core/errors.py`): StoreUnavailable
when a retry may help, StoreRefused for credentials or policy, StoreRejected for a
request DynamoDB refuses as invalid. A bug in livecount is never translated.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Iterable
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from typing import Any, Literal

import aioboto3
from botocore.config import Config as BotoConfig
from livecount.aws import store_requests
from livecount.aws.store_errors import Answered, ConditionFailed, answer, aws_code
from livecount.aws.store_stream import StreamStore
from livecount.core import feed
from livecount.core.errors import (
    LivecountError,
    StoreRefused,
    StoreRejected,
    StoreUnavailable,
)
from livecount.core.ledger import SITE, Counts, Flush, FlushResult, Write
from livecount.core.pages import Target
from livecount.core.tables import FEED_TTL_ATTRIBUTE, Tables
from livecount.logs import warn, warn_limited

__all__ = ["SITE", "Store", "Tables"]

BATCH = 25  # statements a BatchExecuteStatement takes
BATCH_ROUNDS = 3  # update, insert, update: then the one-write-a-request path decides
BATCH_PROBES = 3  # whole batches failing before any answered: the endpoint takes none
KNOWN_ITEMS = 200_000  # keys remembered as existing, to pick update or insert first
# Batches out at once, all flushes together: each is 25 writes, and a store that is
# slower than the views come gets no longer queues (its answers would only time out).
BATCHES_AT_ONCE = 8


@dataclass(slots=True)
class _Job:
    """One write of a flush on its way through batches."""

    kind: Literal["target", "row", "index"]
    key: Any  # a Target, or a Row
    write: Write | None  # None: a page-index entry
    insert: bool  # the statement to try next: INSERT (new item) or UPDATE


def endpoint_url(endpoint: str) -> str | None:
    """`aws` means the SDK's own endpoint for the region; anything else is a URL."""
    return None if endpoint == "aws" else endpoint


class Store:
    def __init__(self, ddb: Any, streams: Any, tables: Tables, node_id: str = "node",
                 concurrency: int = 32, ddb_once: Any = None) -> None:
        self.ddb = ddb
        # Batches go on a client that does not retry them: what a failed one held goes
        # one write a request, each retried by botocore. Without one, no batches.
        self.ddb_once = ddb_once
        self.streams = streams
        self.tables = tables
        self.stream = StreamStore(ddb, streams, tables, ddb_once)
        # Per item, the last flush sequence number this node applied to it.
        self.flush_attribute = f"flush:{node_id}"
        self._limit = asyncio.Semaphore(concurrency)
        self._batches = asyncio.Semaphore(BATCHES_AT_ONCE)
        # Set when a flush changed a writer item: its stream record is on its way, so
        # the stream consumer looks now rather than at its next quiet poll.
        self.written = asyncio.Event()
        self.batching = ddb_once is not None and \
            store_requests.Statements.usable(self.flush_attribute)
        self._batched_once = False  # a batch got an answer: the endpoint takes them
        self._batch_failures = 0  # whole batches failed before any got an answer
        self._returning = True  # batched count UPDATEs ask for the item after them
        self._items: dict[tuple[str, ...], None] = {}  # keys known to exist, oldest first

    @classmethod
    @asynccontextmanager
    async def open(cls, endpoint: str, region: str, prefix: str = "", node_id: str = "node",
                   attempts: int = 4) -> AsyncIterator[Store]:
        """Clients for `endpoint`; each request is tried up to `attempts` times."""
        url = endpoint_url(endpoint)
        session = aioboto3.Session()
        creds: dict[str, str] = {}
        if url is not None and not os.environ.get("AWS_ACCESS_KEY_ID") \
                and not os.environ.get("AWS_PROFILE"):
            # DynamoDB Local and moto accept any key but the SDK insists on one.
            creds = {"aws_access_key_id": "livecount", "aws_secret_access_key": "livecount"}
        boto = BotoConfig(
            retries={"mode": "standard", "max_attempts": attempts},
            connect_timeout=3, read_timeout=10, max_pool_connections=64,
        )
        once = boto.merge(BotoConfig(retries={"mode": "standard", "max_attempts": 1}))
        async with AsyncExitStack() as stack:
            ddb = await stack.enter_async_context(session.client(
                "dynamodb", endpoint_url=url, region_name=region, config=boto, **creds))
            ddb_once = await stack.enter_async_context(session.client(
                "dynamodb", endpoint_url=url, region_name=region, config=once, **creds))
            streams = await stack.enter_async_context(session.client(
                "dynamodbstreams", endpoint_url=url, region_name=region, config=boto, **creds))
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
                await answer(self.ddb.describe_table(TableName=name), name,
                             expected=["ResourceNotFoundException"])
                continue
            except Answered:
                pass
            try:
                await answer(self.ddb.create_table(**spec), name,
                             expected=["ResourceInUseException"])
                made.append(name)
            except Answered:
                pass  # another node made it in between: fine
        waiter = self.ddb.get_waiter("table_exists")
        for spec in self.tables.definitions():
            await answer(waiter.wait(TableName=spec["TableName"], WaiterConfig={"Delay": 1}),
                         spec["TableName"])
        if self.tables.feed in made:
            await answer(self.ddb.update_time_to_live(
                TableName=self.tables.feed, TimeToLiveSpecification={
                    "Enabled": True, "AttributeName": FEED_TTL_ATTRIBUTE}), self.tables.feed)
        return made

    async def ping(self) -> None:
        await answer(self.ddb.describe_table(TableName=self.tables.writer), self.tables.writer)

    # -- the write path ----------------------------------------------------------------
    async def flush(self, flush: Flush) -> FlushResult:
        """Every write of a flush, concurrently; what failed comes back, nothing raises
        but a bug.

        Each write is an ADD on condition that the key has not applied this node's
        sequence number yet, so a replay (botocore's own retry, or ours of an
        unsettled write) adds nothing: the refusal means "already applied". A write
        DynamoDB refuses as invalid comes back in `rejected_*` with the error, never in
        `failed_*`, so it cannot hold the other keys up.

        The writes go 25 to a BatchExecuteStatement where the endpoint takes them (the
        same conditions, in PartiQL; see `_batched`); whatever a batch cannot settle
        goes one UpdateItem or PutItem a request, which decides.
        """
        result = FlushResult()
        jobs = [*(_Job("target", t, w, self._new(self._item_of("target", t))) for t, w
                  in flush.targets.items()),
                *(_Job("row", r, w, self._new(self._item_of("row", r))) for r, w
                  in flush.rows.items()),
                *(_Job("index", t, None, True) for t in flush.new)]
        alone = await self._batched(jobs, result) if self.batching and jobs else jobs
        writes = store_requests.Writes(self.tables, self.flush_attribute)

        async def one(job: _Job) -> None:
            if job.kind == "index":
                request = writes.index(job.key)
            elif job.kind == "target":
                assert job.write is not None
                request = writes.views(job.key, job.write)
            else:
                assert job.write is not None
                request = writes.row(job.key, job.write)
            outcome = await self._send(request)
            if isinstance(outcome, StoreRejected):
                self._rejected(result, job, outcome.detail)
            elif isinstance(outcome, LivecountError):
                self._failed(result, job)
            else:  # applied: nothing may put it back in the failed set
                self._applied(result, job, outcome)

        async with asyncio.TaskGroup() as group:
            for job in alone:
                group.create_task(one(job))
        if any(t.kind == "post" for t in flush.targets
               if t not in result.failed_targets and t not in result.rejected_targets):
            self.written.set()
        return result

    async def _batched(self, jobs: list[_Job], result: FlushResult) -> list[_Job]:
        """Send `jobs` as PartiQL batches; returns those to send one a request.

        PartiQL has no upsert, so each write is an UPDATE (conditional on the sequence
        number, as UpdateItem's) when its item is known to exist, else an INSERT; an
        UPDATE refused without an item (none there) becomes an INSERT, and an INSERT
        refused as a DuplicateItem an UPDATE. An UPDATE refused with the item, which
        holds this sequence number already, was applied before: a resend. Every other
        answer, and every batch that failed as a whole, goes one a request, where the
        store's own answer says applied, failed (resent later) or refused."""
        statements = store_requests.Statements(self.tables, self.flush_attribute)
        alone: list[_Job] = []
        for _ in range(BATCH_ROUNDS):
            if not jobs:
                break
            made = [(job, self._statement(statements, job)) for job in jobs]
            chunks = [made[i:i + BATCH] for i in range(0, len(made), BATCH)]
            answers = await asyncio.gather(*(self._batch([s for _, s in c]) for c in chunks))
            jobs = []
            for chunk, got in zip(chunks, answers, strict=True):
                if isinstance(got, StoreUnavailable) and self._batched_once:
                    # A timeout, a 5xx, a throttle: unknown, resent by a later flush
                    # (batched again), not at once one a request, which would only
                    # add to the load of a store that is struggling.
                    code = aws_code(got)
                    warn_limited("flush_failed", key=f"BatchExecuteStatement {code}",
                                 table="BatchExecuteStatement", code=code, error=got.detail)
                    for job, _ in chunk:
                        self._failed(result, job)
                    continue
                if isinstance(got, LivecountError) or len(got) != len(chunk):
                    alone += [job for job, _ in chunk]
                    continue
                for (job, statement), response in zip(chunk, got, strict=True):
                    verdict = self._verdict(job, statement, response, result)
                    if verdict == "again":
                        jobs.append(job)
                    elif verdict == "alone":
                        alone.append(job)
        return alone + jobs

    def _statement(self, statements: store_requests.Statements,
                   job: _Job) -> store_requests.Statement:
        action: Literal["update", "insert"] = "insert" if job.insert else "update"
        if job.kind == "index":
            return statements.index(job.key)
        assert job.write is not None
        if job.kind == "target":
            return statements.views(job.key, job.write, action, self._returning)
        return statements.row(job.key, job.write, action)

    def _verdict(self, job: _Job, statement: store_requests.Statement,
                 response: dict[str, Any], result: FlushResult,
                 ) -> Literal["done", "again", "alone"]:
        """What one statement's answer settles: done, try the other statement, or
        leave it to a request of its own."""
        error = response.get("Error")
        if error is None:
            item = response.get("Item")
            if job.insert and job.write is not None:  # a new item is the write itself
                item = {"totalViews": {"N": str(job.write.delta.total)},
                        "uniqueViews": {"N": str(job.write.delta.unique)}}
            self._applied(result, job, dict(item or {}))
            return "done"
        code, item = error.get("Code"), error.get("Item")
        if code == "ValidationError" and "RETURNING" in str(error.get("Message", "")).upper() \
                and self._returning:
            self._no_returning(str(error.get("Message")))
            return "again"
        if code == "ConditionalCheckFailed" and job.write is not None and not job.insert:
            if not item:  # no such item: create it
                job.insert = True
                return "again"
            seen = item.get(self.flush_attribute, {}).get("N")
            if seen is not None and int(seen) >= job.write.seq:
                self._applied(result, job, dict(item))  # applied before: this is a resend
                return "done"
        elif code == "DuplicateItem":
            self._remember(statement.table, statement.key)
            if job.kind == "index":
                return "done"  # in the index already
            if job.insert:
                job.insert = False
                return "again"
        elif code == "AccessDenied" and self.batching:
            self.batching = False
            warn("store_batching_off", error=error.get("Message", code),
                 hint="writes go one a request; allow dynamodb:PartiQLUpdate and "
                      "dynamodb:PartiQLInsert on the tables")
        return "alone"

    async def _batch(self, statements: list[store_requests.Statement],
                     ) -> list[dict[str, Any]] | LivecountError:
        """One BatchExecuteStatement: an answer per statement, or the error of the whole
        request. An endpoint that never took one (an emulator without PartiQL) is not
        asked again."""
        try:
            async with self._batches:
                got = await answer(self.ddb_once.batch_execute_statement(
                    Statements=[s.request for s in statements]), "BatchExecuteStatement")
        except (StoreUnavailable, StoreRefused, StoreRejected) as exc:
            if isinstance(exc, StoreRejected) and "RETURNING" in exc.detail.upper() \
                    and self._returning:
                self._no_returning(exc.detail)
                return exc
            self._batch_failures += 1
            if self.batching and (isinstance(exc, StoreRefused) or (
                    not self._batched_once and self._batch_failures >= BATCH_PROBES)):
                self.batching = False
                warn("store_batching_off", error=exc.detail,
                     hint="writes go one a request; with AWS, allow dynamodb:PartiQLUpdate "
                          "and dynamodb:PartiQLInsert on the tables")
            return exc
        self._batched_once = True
        return list(got.get("Responses", []))

    def _no_returning(self, error: str) -> None:
        """The endpoint takes batches, not their RETURNING: counts' batched writes come
        back without the stored totals (the stream and the live feed bring them)."""
        self._returning = False
        warn("store_batch_returning_off", error=error)

    def _item_of(self, kind: Literal["target", "row"], key: Any) -> tuple[str, ...]:
        if kind == "target":
            table = self.tables.writer if key.kind == "post" else self.tables.pages
            return (table, key.id)
        table = self.tables.referrers if key.table == "referrer" else self.tables.timeline
        return (table, key.target, key.sort)

    def _new(self, item: tuple[str, ...]) -> bool:
        return item not in self._items

    def _remember(self, table: str, key: tuple[str, ...]) -> None:
        item = (table, *key)
        self._items.pop(item, None)
        self._items[item] = None
        if len(self._items) > KNOWN_ITEMS:
            del self._items[next(iter(self._items))]

    def _applied(self, result: FlushResult, job: _Job, item: dict[str, Any]) -> None:
        if job.kind == "target":
            if item:
                result.applied[job.key] = store_requests.counts(item)
            table, *key = self._item_of("target", job.key)
            self._remember(table, tuple(key))
        elif job.kind == "row":
            table, *key = self._item_of("row", job.key)
            self._remember(table, tuple(key))

    @staticmethod
    def _failed(result: FlushResult, job: _Job) -> None:
        if job.kind == "target":
            result.failed_targets.add(job.key)
        elif job.kind == "row":
            result.failed_rows.add(job.key)
        else:
            result.failed_index.add(job.key)

    @staticmethod
    def _rejected(result: FlushResult, job: _Job, detail: str) -> None:
        if job.kind == "target":
            result.rejected_targets[job.key] = detail
        elif job.kind == "row":
            result.rejected_rows[job.key] = detail
        else:
            result.rejected_index[job.key] = detail

    async def _send(self, request: dict[str, Any]) -> dict[str, Any] | LivecountError:
        """One write of a flush: the item as stored after it, or the store's error."""
        table = request["TableName"]
        try:
            async with self._limit:
                if "UpdateExpression" in request:
                    stored = await answer(self.ddb.update_item(**request), table)
                    return dict(stored.get("Attributes", {}))
                await answer(self.ddb.put_item(**request), table)
                return {}
        except ConditionFailed as exc:
            # Applied before: this is the retry of a write that got through.
            return exc.item
        except (StoreUnavailable, StoreRefused, StoreRejected) as exc:
            code = aws_code(exc)
            event = "flush_rejected" if isinstance(exc, StoreRejected) else "flush_failed"
            warn_limited(event, key=f"{table} {code}", table=table, code=code,
                         error=exc.detail)
            return exc

    # -- the live feed -----------------------------------------------------------------
    async def write_feed(self, items: list[tuple[int, bytes]], expires: int) -> None:
        """Feed items the caller stamped itself. The stream consumer shares what it
        copied on its own (`stream_copy.copy_and_feed`, as the Lambda does)."""
        for at, payload in items:
            await answer(self.ddb.put_item(TableName=self.tables.feed,
                                           Item=feed.item(at, payload, expires)),
                         self.tables.feed)

    async def read_feed(self, after: int) -> list[tuple[int, str]]:
        """Feed items with a sort key above `after`, oldest first: one Query."""
        items = await self._query(store_requests.query(
            self.tables.feed, "feed", feed.PARTITION, ("at", f"{after:024d}", None),
            consistent=True))
        return [(int(i["at"]["S"]), i["changes"]["S"]) for i in items]

    # -- the read path ---------------------------------------------------------------
    async def read_counts(self, targets: Iterable[Target]) -> dict[Target, Counts]:
        """Counts from the reader table (posts) and HomeAndProfile (pages); absent is zero."""
        return {t: counts for t, (counts, _) in (await self.read(targets)).items()}

    async def read(self, targets: Iterable[Target]) -> dict[Target, tuple[Counts, str]]:
        """Counts and title of each target, from the reader side; absent is zero and ""."""
        targets = list(dict.fromkeys(targets))
        found = {t: (Counts(0, 0), "") for t in targets}
        for request in store_requests.batch_gets(self.tables, targets):
            while request:
                got = await answer(self.ddb.batch_get_item(RequestItems=request), "BatchGetItem")
                for table, items in got.get("Responses", {}).items():
                    post = table == self.tables.reader
                    name = "articleId" if post else "pageName"
                    for item in items:
                        found[Target("post" if post else "page", item[name]["S"])] = (
                            store_requests.counts(item), item.get("articleTitle", {}).get("S", ""))
                        # A reader item is a copy of a writer item: that one exists.
                        self._remember(self.tables.writer if post else self.tables.pages,
                                       (item[name]["S"],))
                request = got.get("UnprocessedKeys") or {}
        return found

    async def _query(self, kwargs: dict[str, Any]) -> list[dict[str, Any]]:
        """Every item a Query (`store_requests.query`) finds, page by page; never a Scan."""
        table = kwargs["TableName"]
        items: list[dict[str, Any]] = []
        while True:
            page = await answer(self.ddb.query(**kwargs), table)
            items += page.get("Items", [])
            if "LastEvaluatedKey" not in page:
                return items
            kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]

    async def top_referrers(self, ref: str, limit: int = 10) -> list[tuple[str, int]]:
        """External hosts that sent views to `ref` (a `Target.ref` or `SITE`), most first."""
        items = await self._query(store_requests.query(self.tables.referrers, "target", ref))
        hosts = [(i["host"]["S"], int(i["views"]["N"])) for i in items]
        hosts.sort(key=lambda h: (-h[1], h[0]))
        return hosts[:limit]

    async def tracked(self) -> list[Target]:
        """Every post and page ever counted, from the page index."""
        items = await self._query(store_requests.query(self.tables.index, "index",
                                                       store_requests.INDEX))
        return [t for i in items if (t := Target.from_ref(i["target"]["S"])) is not None]

    async def hours(self, ref: str, first: str, last: str) -> dict[str, Counts]:
        """Hourly buckets of `ref` (a `Target.ref` or `SITE`) from `first` to `last` hour."""
        items = await self._query(store_requests.query(self.tables.timeline, "target", ref,
                                                       ("hour", first, last)))
        return {i["hour"]["S"]: store_requests.counts(i) for i in items}
