"""A flush's writes: 25 to a PartiQL batch where the endpoint takes them, else one a request."""

from __future__ import annotations

import asyncio
from collections.abc import Hashable
from dataclasses import dataclass
from typing import Any, Generic, Literal, TypeVar

from botocore.exceptions import ClientError
from livecount.aws import store_requests
from livecount.aws.store_errors import ConditionFailed, answer, aws_code
from livecount.core.errors import (
    LivecountError,
    StoreRefused,
    StoreRejected,
    StoreUnavailable,
)
from livecount.core.ledger import Flush, FlushResult, Write
from livecount.core.pages import Target
from livecount.core.tables import Tables
from livecount.logs import warn, warn_limited

BATCH = 25  # statements a BatchExecuteStatement takes
BATCH_ROUNDS = 3  # update, insert, update: then the one-write-a-request path decides
BATCH_PROBES = 3  # batches answered with an error before any succeeded: the endpoint takes none
KNOWN_ITEMS = 200_000  # keys remembered as existing, to pick update or insert first
# Batches out at once, all flushes together: each is 25 writes, and a store that is
# slower than the views come gets no longer queues (its answers would only time out).
BATCHES_AT_ONCE = 8

K = TypeVar("K", bound=Hashable)
Item = tuple[str, ...]  # (table, *key values): one stored item


class KnownItems(Generic[K]):
    """Keys known to exist, so that a batch tries UPDATE first rather than INSERT; past
    `most`, the oldest are forgotten (a wrong guess costs one write, never a count)."""

    def __init__(self, most: int = KNOWN_ITEMS) -> None:
        self.most = most
        self._keys: dict[K, None] = {}  # oldest first

    def __contains__(self, key: object) -> bool:
        return key in self._keys

    def add(self, key: K) -> None:
        self._keys.pop(key, None)
        self._keys[key] = None
        if len(self._keys) > self.most:
            del self._keys[next(iter(self._keys))]

    def forget(self, key: K) -> None:
        self._keys.pop(key, None)


@dataclass(slots=True)
class Job:
    """One write of a flush on its way through batches, and where its outcome goes."""

    kind: Literal["target", "row"]
    key: Any  # a Target, or a Row
    write: Write
    item: Item
    insert: bool  # the statement to try next: INSERT (new item) or UPDATE
    # A batched UPDATE that may have left a post without its title or path: PartiQL
    # cannot set them only where unset.
    untitled: bool = False

    def applied(self, result: FlushResult, stored: dict[str, Any], known: KnownItems[Item]) -> None:
        """Applied, now or before; `stored` is the item after it, when the store said."""
        self.untitled = (
            self.kind == "target"
            and self.key.kind == "post"
            and not self.insert
            and any(name not in stored for name in store_requests.kept(self.write))
        )
        if self.kind == "target" and stored:
            result.applied[self.key] = store_requests.counts(stored)
            if self.key.kind == "post":
                result.described[self.key] = store_requests.described(stored)
        elif self.kind == "row" and stored:
            result.applied_rows[self.key] = store_requests.row_counts(self.key, stored)
        known.add(self.item)

    def inserted(self) -> dict[str, Any]:
        """The item an INSERT of this write made: the write itself."""
        delta = self.write.delta
        if self.kind == "row" and self.key.table == "referrer":
            return {"views": {"N": str(delta.total)}}
        item = {"totalViews": {"N": str(delta.total)}, "uniqueViews": {"N": str(delta.unique)}}
        if self.kind == "target":
            item |= {
                name: {"S": value}
                for name, value in (("articleTitle", delta.title), ("path", delta.path))
                if value
            }
        return item

    def failed(self, result: FlushResult) -> None:
        """Outcome unknown: a later flush resends it unchanged."""
        if self.kind == "target":
            result.failed_targets.add(self.key)
        else:
            result.failed_rows.add(self.key)

    def rejected(self, result: FlushResult, detail: str) -> None:
        if self.kind == "target":
            result.rejected_targets[self.key] = detail
        else:
            result.rejected_rows[self.key] = detail


class Batches:
    """The PartiQL path of a flush's writes, and what the endpoint was seen to take.

    PartiQL has no upsert, so each write is an UPDATE (conditional on the sequence
    number, as UpdateItem's) when its item is known to exist, else an INSERT; an
    UPDATE refused without an item (none there) becomes an INSERT, and an INSERT
    refused as a DuplicateItem an UPDATE. An UPDATE refused with the item, which
    holds this sequence number already, was applied before: a resend. Every other
    answer, and every batch that failed as a whole before any was answered, goes one
    a request, where the store's own answer says applied, failed (resent later) or
    refused. Batches go on `ddb_once`, a client that does not retry them."""

    def __init__(
        self, ddb_once: Any, tables: Tables, flush_attribute: str, known: KnownItems[Item]
    ) -> None:
        self.ddb_once = ddb_once
        self.statements = store_requests.Statements(tables, flush_attribute)
        self.flush_attribute = flush_attribute
        self.known = known
        self.on = ddb_once is not None and store_requests.Statements.usable(flush_attribute)
        self._limit = asyncio.Semaphore(BATCHES_AT_ONCE)
        self._answered = False  # a batch got an answer: the endpoint takes them
        self._failures = 0  # whole batches failed before any got an answer
        self._returning = True  # batched UPDATEs ask for the item after them

    async def send(self, jobs: list[Job], result: FlushResult) -> list[Job]:
        """Send `jobs` as batches, settling what their answers settle in `result`;
        returns those to send one a request."""
        alone: list[Job] = []
        for _ in range(BATCH_ROUNDS):
            if not jobs:
                break
            made = [(job, self._statement(job)) for job in jobs]
            chunks = [made[i : i + BATCH] for i in range(0, len(made), BATCH)]
            answers = await asyncio.gather(*(self._batch([s for _, s in c]) for c in chunks))
            jobs = []
            for chunk, got in zip(chunks, answers, strict=True):
                if isinstance(got, StoreUnavailable) and self._answered:
                    # A timeout, a 5xx, a throttle: unknown, resent by a later flush
                    # (batched again), not at once one a request, which would only
                    # add to the load of a store that is struggling.
                    code = aws_code(got)
                    warn_limited(
                        "flush_failed",
                        key=f"BatchExecuteStatement {code}",
                        table="BatchExecuteStatement",
                        code=code,
                        error=got.detail,
                    )
                    for job, _ in chunk:
                        job.failed(result)
                    continue
                if isinstance(got, LivecountError) or len(got) != len(chunk):
                    alone += [job for job, _ in chunk]
                    continue
                for (job, _), response in zip(chunk, got, strict=True):
                    verdict = self._verdict(job, response, result)
                    if verdict == "again":
                        jobs.append(job)
                    elif verdict == "alone":
                        alone.append(job)
        return alone + jobs

    def _statement(self, job: Job) -> store_requests.Statement:
        action: Literal["update", "insert"] = "insert" if job.insert else "update"
        if job.kind == "target":
            return self.statements.views(job.key, job.write, action, self._returning)
        return self.statements.row(job.key, job.write, action, self._returning)

    def _verdict(
        self,
        job: Job,
        response: dict[str, Any],
        result: FlushResult,
    ) -> Literal["done", "again", "alone"]:
        """What one statement's answer settles: done, try the other statement, or
        leave it to a request of its own."""
        error = response.get("Error")
        if error is None:
            item = response.get("Item")
            if job.insert:  # a new item is the write itself
                item = job.inserted()
            job.applied(result, dict(item or {}), self.known)
            return "done"
        code, item = error.get("Code"), error.get("Item")
        if (
            code == "ValidationError"
            and "RETURNING" in str(error.get("Message", "")).upper()
            and self._returning
        ):
            self._no_returning(str(error.get("Message")))
            return "again"
        if code == "ConditionalCheckFailed" and not job.insert:
            if not item:  # no such item: create it
                job.insert = True
                return "again"
            seen = item.get(self.flush_attribute, {}).get("N")
            if seen is not None and int(seen) >= job.write.seq:
                job.applied(result, dict(item), self.known)  # applied before: a resend
                return "done"
        elif code == "DuplicateItem":
            self.known.add(job.item)
            if job.insert:
                job.insert = False
                return "again"
        elif code == "AccessDenied" and self.on:
            self.on = False
            warn(
                "store_batching_off",
                error=error.get("Message", code),
                hint="writes go one a request; allow dynamodb:PartiQLUpdate and "
                "dynamodb:PartiQLInsert on the tables",
            )
        return "alone"

    async def _batch(
        self,
        statements: list[store_requests.Statement],
    ) -> list[dict[str, Any]] | LivecountError:
        """One BatchExecuteStatement: an answer per statement, or the error of the whole
        request. An endpoint that never took one (an emulator without PartiQL) is not
        asked again."""
        try:
            async with self._limit:
                got = await answer(
                    self.ddb_once.batch_execute_statement(
                        Statements=[s.request for s in statements]
                    ),
                    "BatchExecuteStatement",
                )
        except (StoreUnavailable, StoreRefused, StoreRejected) as exc:
            if (
                isinstance(exc, StoreRejected)
                and "RETURNING" in exc.detail.upper()
                and self._returning
            ):
                self._no_returning(exc.detail)
                return exc
            if isinstance(exc.__cause__, ClientError):  # answered: no answer says nothing
                self._failures += 1
            if self.on and (
                isinstance(exc, StoreRefused)
                or (not self._answered and self._failures >= BATCH_PROBES)
            ):
                self.on = False
                warn(
                    "store_batching_off",
                    error=exc.detail,
                    hint="writes go one a request; with AWS, allow dynamodb:PartiQLUpdate "
                    "and dynamodb:PartiQLInsert on the tables",
                )
            return exc
        self._answered = True
        return list(got.get("Responses", []))

    def _no_returning(self, error: str) -> None:
        """The endpoint takes batches, not their RETURNING: counts' batched writes come
        back without the stored totals (the stream and the live feed bring them)."""
        self._returning = False
        warn("store_batch_returning_off", error=error)


class FlushWriter:
    """A flush's writes, concurrently: through `Batches` where the endpoint takes them,
    the rest one UpdateItem or PutItem a request, whose answer decides."""

    def __init__(
        self,
        ddb: Any,
        tables: Tables,
        flush_attribute: str,
        known: KnownItems[Item],
        concurrency: int = 32,
        ddb_once: Any = None,
    ) -> None:
        self.ddb = ddb
        self.tables = tables
        self.known = known
        self.requests = store_requests.Writes(tables, flush_attribute)
        self.batches = Batches(ddb_once, tables, flush_attribute, known)
        self._limit = asyncio.Semaphore(concurrency)

    async def write(self, flush: Flush) -> FlushResult:
        """Every write of `flush`; what failed comes back, nothing raises but a bug."""
        result = FlushResult()
        jobs = self._jobs(flush)
        alone = await self.batches.send(jobs, result) if self.batches.on and jobs else jobs
        async with asyncio.TaskGroup() as group:
            for job in alone:
                group.create_task(self._one(job, result))
            # A batched UPDATE cannot set a title or a path only where there is none: a
            # post still without one gets it here. Lost, it comes with a later view.
            sent_alone = {id(job) for job in alone}
            for job in jobs:
                if job.untitled and id(job) not in sent_alone:
                    group.create_task(self._firsts(job.key, job.write, result))
        return result

    async def _firsts(self, post: Target, write: Write, result: FlushResult) -> None:
        stored = await self._send(self.requests.firsts(post.id, write))
        if isinstance(stored, dict) and stored:
            result.described[post] = store_requests.described(stored)

    def _jobs(self, flush: Flush) -> list[Job]:
        t = self.tables
        jobs = []
        for target, write in flush.targets.items():
            item: Item = (t.writer if target.kind == "post" else t.pages, target.id)
            jobs.append(Job("target", target, write, item, item not in self.known))
        for row, write in flush.rows.items():
            item = (t.referrers if row.table == "referrer" else t.timeline, row.target, row.sort)
            jobs.append(Job("row", row, write, item, item not in self.known))
        return jobs

    async def _one(self, job: Job, result: FlushResult) -> None:
        if job.kind == "target":
            request = self.requests.views(job.key, job.write)
        else:
            request = self.requests.row(job.key, job.write)
        outcome = await self._send(request)
        if isinstance(outcome, StoreRejected):
            job.rejected(result, outcome.detail)
        elif isinstance(outcome, LivecountError):
            job.failed(result)
        else:  # applied: nothing may put it back in the failed set
            job.applied(result, outcome, self.known)

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
            warn_limited(event, key=f"{table} {code}", table=table, code=code, error=exc.detail)
            return exc
