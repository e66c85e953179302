"""The operator's side of the store: rename, delete (of posts and pages, one id or
every id with a prefix), export (imports: `aws/store_imports.py`).

Not a request path: these read whole partitions (one Query each, never a Scan) and
write many items. Each operation is made of steps that are idempotent and applied
once however often they are sent, so a run stopped anywhere (a SIGKILL, a lost
answer, DynamoDB away) is finished by running it again:

- a move (`core/moves.py`) is one transaction, on condition of its source's `admin`
  counter as read;
- index entries, reader copies (on condition of `version`) and feed items are
  the same item however often they are written.

Running servers go on counting meanwhile; what they add to a renamed article after
its items were read stays on it, for the next run.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Final

from livecount.aws import store_requests
from livecount.aws.store import Store
from livecount.aws.store_errors import ATTEMPTS, ConditionFailed, answer, transact
from livecount.core import feed, moves
from livecount.core.errors import ClientError
from livecount.core.exports import Record
from livecount.core.ledger import SITE, ZERO, Counts
from livecount.core.moves import Operation, Plan, Source
from livecount.core.pages import Target
from livecount.core.replication import Copy
from livecount.core.report_rows import buckets_of

AT_ONCE: Final = 8  # writes of one operation in flight at once
Progress = Callable[[int, int], None]  # (done, of)


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


class Items:
    """Reads and small writes every operation shares."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.ddb = store.ddb
        self.tables = store.tables

    async def query_pages(self, request: dict[str, Any]) -> AsyncIterator[list[dict[str, Any]]]:
        """The items a Query finds, a page (up to 1 MB) at a time."""
        pages = self.ddb.get_paginator("query").paginate(**request).__aiter__()
        while (page := await answer(anext(pages, None), request["TableName"])) is not None:
            yield page.get("Items", [])

    async def partition(self, table: str, key: str, value: str) -> list[dict[str, Any]]:
        """Every item of one partition, consistently."""
        request = store_requests.query(table, key, value, consistent=True)
        return [item async for page in self.query_pages(request) for item in page]

    async def get(self, table: str, key: dict[str, Any]) -> dict[str, Any] | None:
        got = await answer(self.ddb.get_item(TableName=table, Key=key, ConsistentRead=True), table)
        item = got.get("Item")
        return dict(item) if item else None

    async def rollups(self, buckets: list[str], ref: str) -> list[dict[str, Any]]:
        """`ref`'s rollup items in `buckets`, consistently, a hundred a request."""
        items: list[dict[str, Any]] = []
        for start in range(0, len(buckets), 100):
            request: dict[str, Any] = {
                self.tables.timeline: {
                    "ConsistentRead": True,
                    "Keys": [
                        {"target": {"S": b}, "hour": {"S": ref}}
                        for b in buckets[start : start + 100]
                    ],
                }
            }
            while request:
                got = await answer(self.ddb.batch_get_item(RequestItems=request), "BatchGetItem")
                items += got.get("Responses", {}).get(self.tables.timeline, [])
                request = got.get("UnprocessedKeys") or {}
        return items

    async def writer(self, article: str) -> dict[str, Any] | None:
        return await self.get(self.tables.writer, {"articleId": {"S": article}})

    async def index(self, target: Target, present: bool) -> None:
        """Put `target` in the page index, or take it out, keeping the site's page count
        (`aws/store_index.py`); the operator's own actions are not held to the cap."""
        if present:
            await self.store.pages.register([target], None)
        else:
            await self.store.pages.remove(target)

    async def counts(self, targets: list[Target]) -> dict[Target, tuple[Counts, str]]:
        """Totals and titles from the writer table and HomeAndProfile, consistently."""
        found: dict[Target, tuple[Counts, str]] = {}
        t = self.tables
        for start in range(0, len(targets), 100):
            request: dict[str, Any] = {}
            for target in targets[start : start + 100]:
                table, key = (
                    (t.writer, {"articleId": {"S": target.id}})
                    if target.kind == "post"
                    else (t.pages, {"pageName": {"S": target.id}})
                )
                request.setdefault(table, {"Keys": [], "ConsistentRead": True})["Keys"].append(key)
            while request:
                got = await answer(self.ddb.batch_get_item(RequestItems=request), "BatchGetItem")
                for table, items in got.get("Responses", {}).items():
                    post = table == t.writer
                    for item in items:
                        target = Target(
                            "post" if post else "page",
                            item["articleId" if post else "pageName"]["S"],
                        )
                        found[target] = (
                            store_requests.counts(item),
                            item.get("articleTitle", {}).get("S", ""),
                        )
                request = got.get("UnprocessedKeys") or {}
        return found

    async def copy(self, images: Iterable[dict[str, Any]]) -> None:
        """Writer images into the reader table by the stream copy's own rule (newer
        `version` only), and their counts on the live feed, so that pages see them now
        rather than when a stream consumer next looks."""
        changes: dict[str, tuple[int, int]] = {}
        for image in images:
            if "version" not in image:
                continue
            copy = Copy("put", {"articleId": image["articleId"]}, int(image["version"]["N"]), image)
            with contextlib.suppress(ConditionFailed):  # it holds this image or a newer one
                await answer(
                    self.ddb.put_item(**copy.request(self.tables.reader)), self.tables.reader
                )
            counts = store_requests.counts(image)
            changes[image["articleId"]["S"]] = (counts.total, counts.unique)
        await self.announce(changes)

    async def reset(self, targets: Iterable[Target], reports: bool = True) -> None:
        """Tell every node, on the live feed, to read `targets` again, and with `reports`
        the report rows it cached (they moved)."""
        for put in feed.resets(targets, self.tables.feed, "admin", time.time(), reports):
            await answer(self.ddb.put_item(**put), self.tables.feed)

    async def announce(self, changes: dict[str, tuple[int, int]]) -> None:
        """Counts on the live feed; nodes merge them by maximum into what pages see."""
        if changes:
            for put in feed.puts(changes, self.tables.feed, "admin", time.time()):
                await answer(self.ddb.put_item(**put), self.tables.feed)


async def gather_limited(jobs: Iterable[Awaitable[Any]], limit: int = AT_ONCE) -> list[Any]:
    """Await `jobs`, at most `limit` at once; the first failure fails the whole."""
    gate = asyncio.Semaphore(limit)
    jobs = list(jobs)

    async def one(job: Awaitable[Any]) -> Any:
        async with gate:
            return await job

    try:
        return list(await asyncio.gather(*(one(j) for j in jobs)))
    finally:  # cancelled (Ctrl-C): those not begun are closed, not left "never awaited"
        for job in jobs:
            if inspect.iscoroutine(job) and inspect.getcoroutinestate(job) == inspect.CORO_CREATED:
                job.close()


@dataclass
class Moved:
    """What one run of a rename or delete did."""

    plan: Plan
    resumed: bool
    items: int = 0  # items moved
    views: Counts = ZERO  # the count item's totals moved
    now: Counts | None = None  # a rename: the new id's totals after it
    purged: int = 0


@dataclass
class Started:
    """An operation whose record says it runs, and the items found to move."""

    plan: Plan
    before: Operation | None  # its record before this run
    found: list[Source]
    started: str


@dataclass
class Deleted:
    """What a delete of many ids did, as far as it went. Each id is deleted whole
    (`done`), refused (another operation on it is under way), or untouched; only one
    `under_way` when the run was cut short is part way, and its next run finishes it."""

    targets: list[Target]  # every id it set out to delete
    done: list[Moved] = field(default_factory=list)
    refused: dict[Target, str] = field(default_factory=dict)  # why, in words
    under_way: set[Target] = field(default_factory=set)  # moves begun, not all applied
    empty: set[Target] = field(default_factory=set)  # emptied before, nothing since: no write

    @property
    def views(self) -> Counts:
        return Counts(sum(m.views.total for m in self.done), sum(m.views.unique for m in self.done))

    @property
    def left(self) -> list[Target]:
        """The ids not deleted (yet)."""
        deleted = {m.plan.target for m in self.done} | self.empty
        return [t for t in self.targets if t not in deleted]

    @property
    def finished(self) -> int:
        """How many ids are deleted, or had nothing left to delete."""
        return len(self.done) + len(self.empty)


class Records(Items):
    """Operation records (`core/moves.py` `Operation`): what runs, or ran last, on an id."""

    async def current(self, target: Target) -> Operation | None:
        item = await self.get(self.tables.index, moves.operation_key(target))
        return Operation.from_item(item) if item else None

    async def running(self) -> list[Operation]:
        """The operations running now, on any id."""
        return await self._records(moves.records_query(self.tables.index, running=True))

    async def operated(self, prefix: str) -> list[Operation]:
        """The operations, running or done, on the posts and pages whose id starts with
        `prefix`."""
        return [
            o
            for kind in ("post", "page")
            for o in await self._records(
                moves.records_query(self.tables.index, refs=Target(kind, prefix).ref)
            )
        ]

    async def _records(self, request: dict[str, Any]) -> list[Operation]:
        """The records a Query finds, page by page."""
        found: list[Operation] = []
        while True:
            page = await answer(self.ddb.query(**request), self.tables.index)
            found += [o for i in page.get("Items", []) if (o := Operation.from_item(i))]
            if "LastEvaluatedKey" not in page:
                return found
            request["ExclusiveStartKey"] = page["LastEvaluatedKey"]

    async def back_out(self, target: Target, before: Operation | None) -> None:
        """Put `target`'s operation record back as it was before this run."""
        if before is None:
            await answer(
                self.ddb.delete_item(TableName=self.tables.index, Key=moves.operation_key(target)),
                self.tables.index,
            )
        else:
            await answer(
                self.ddb.put_item(TableName=self.tables.index, Item=before.item()),
                self.tables.index,
            )


class ItemMoves(Records):
    """The items of one post or page as read now, and the moves that empty them
    (`core/moves.py`), each applied exactly once however often it is sent; and the purge
    of what a delete left at zero."""

    async def sources(self, target: Target) -> list[Source]:
        """Every item of the post or page, as read now: its hours, their rollups (found
        by the hours: a rollup row is keyed by its bucket), its referrer rows, its count
        item."""
        timeline, referrers, count = await asyncio.gather(
            self.partition(self.tables.timeline, "target", target.ref),
            self.partition(self.tables.referrers, "target", target.ref),
            self.get(moves.count_table(self.tables, target), moves.count_key(target)),
        )
        found = [Source.of("timeline", i) for i in timeline]
        buckets = dict.fromkeys(b for s in found for b in buckets_of(s.sort))
        found += [Source.of("rollup", i) for i in await self.rollups(list(buckets), target.ref)]
        found += [Source.of("referrer", i) for i in referrers]
        if count is not None:
            found.append(Source.of("count", count))
        return found

    async def move(self, plan: Plan, source: Source) -> Source | None:
        """Apply one move, reading the source again whenever another writer got there
        first; the move as applied, or None when nothing was left to move."""
        for _ in range(ATTEMPTS):
            if await transact(self.ddb, plan.transaction(source, self.tables)) is None:
                return source
            fresh = await self.reread(plan, source)
            if fresh is None:
                return None
            source = fresh
        raise ClientError(
            "operation_contended",
            f"{plan.describe()}: an item kept changing under {ATTEMPTS} tries; run it again",
        )

    async def reread(self, plan: Plan, source: Source) -> Source | None:
        key = plan.transaction(source, self.tables)[0]["Update"]
        item = await self.get(key["TableName"], key["Key"])
        fresh = Source.of(source.kind, item) if item else None
        return None if fresh is None or fresh.empty else fresh

    async def purge(self, plan: Plan) -> int:
        """Delete the id's items left at zero, and a post's reader item: for when no
        node has a write of it in doubt (see `core/moves.py`)."""
        purged = 0
        for source in await self.sources(plan.target):
            if source.empty:
                try:
                    await answer(
                        self.ddb.delete_item(**plan.purge(source, self.tables)), "DeleteItem"
                    )
                    purged += 1
                except ConditionFailed:
                    pass  # counted on since: a later run moves it
        if plan.kind == "page":
            return purged
        with_version = await self.get(self.tables.reader, moves.count_key(plan.target))
        if with_version and await self.writer(plan.id) is None:
            copy = Copy(
                "delete",
                moves.count_key(plan.target),
                int(with_version.get("version", {}).get("N", 0)),
            )
            with contextlib.suppress(ConditionFailed):
                await answer(
                    self.ddb.delete_item(**copy.request(self.tables.reader)), self.tables.reader
                )
        return purged


class Operations(ItemMoves):
    """Rename and delete (`core/moves.py`) of posts and pages, resumable: each run moves
    what is left; and a post's title, which only the operator changes (a view never
    does)."""

    async def retitle(self, article: str, title: str) -> None:
        """Give `article` this title, on the reader side at once too."""
        found = await self.writer(article)
        if found is None or not store_requests.counts(found).total:
            raise ClientError(
                "never_counted",
                f"{article!r} was never counted, or has no views left: there is nothing to title",
            )
        request = store_requests.Writes(self.tables, "").title(article, title, keep=False)
        image = await answer(self.ddb.update_item(**request), self.tables.writer)
        await self.copy([dict(image["Attributes"])])
        # The nodes' reports show the new title.
        await self.reset([Target("post", article)], reports=False)

    async def run(self, plan: Plan, progress: Progress | None = None, purge: bool = False) -> Moved:
        """Start (or resume) `plan` and move everything its id holds now."""
        begun, refused = await self.begin([plan])
        if plan in refused:
            raise refused[plan]
        return await self.apply(begun[0], progress, purge)

    async def begin(
        self,
        plans: list[Plan],
        skip_empty: bool = False,
    ) -> tuple[list[Started], dict[Plan, ClientError]]:
        """Record each plan as running (what is refused, and why, apart), then look once
        for operations that cross them: those back out, and are refused too. With
        `skip_empty`, a plan with nothing to move is refused as never counted before
        anything is written."""
        refused: dict[Plan, ClientError] = {}

        async def start(plan: Plan) -> Started | None:
            try:
                return await self._start(plan, skip_empty)
            except ClientError as exc:
                refused[plan] = exc
                return None

        begun = [b for b in await gather_limited(start(p) for p in plans) if b is not None]
        running = await self.running() if begun else []
        for b in list(begun):
            if (crossing := next((o for o in running if o.crosses(b.plan)), None)) is None:
                continue
            # Another operation moves this one's destination away, or moves into its
            # source: run together, they could swap ids. Back out; one goes, then the other.
            await self.back_out(b.plan.target, b.before)
            begun.remove(b)
            touched = f"{b.plan.id!r}" + (f" or {b.plan.to!r}" if b.plan.to else "")
            refused[b.plan] = ClientError(
                "operation_running",
                f"the {crossing.plan.describe()} is not finished and touches {touched}: "
                "finish it first",
            )
        return begun, refused

    async def _start(self, plan: Plan, skip_empty: bool = False) -> Started:
        before = await self.current(plan.target)
        found = await self.sources(plan.target)
        resuming = before is not None and before.state == "running"
        idle = before is None or (before.state == "done" and before.plan != plan)
        empty = all(s.empty for s in found)
        if (
            (not found and before is None)
            or (found and idle and plan.to is not None and empty)
            or (skip_empty and empty and not resuming)
        ):
            # Never counted; or, for a rename, emptied by an earlier one (its items stay,
            # at zero): nothing to move, and NEW must not be listed for it. (A delete of
            # an emptied id is harmless, and how its items are purged; the same operation
            # run again after it finished moves nothing, and says so.)
            raise ClientError(
                "never_counted",
                f"{plan.id!r} was never counted, or has "
                "no views left: there is nothing to rename "
                "or delete",
            )
        started = before.started if before is not None and resuming else _now()
        try:
            await answer(
                self.ddb.put_item(
                    **moves.start_request(self.tables.index, Operation(plan, "running", started))
                ),
                self.tables.index,
            )
        except ConditionFailed:
            other = await self.current(plan.target)
            what = other.plan.describe() if other else "another operation"
            raise ClientError(
                "operation_running",
                f"the {what} is not finished: run it again to finish it, then this one",
            ) from None
        return Started(plan, before, found, started)

    async def apply(
        self, begun: Started, progress: Progress | None = None, purge: bool = False
    ) -> Moved:
        """Move what `begun` found, then tell the reader side and the nodes, and record
        the operation done."""
        plan, before = begun.plan, begun.before
        moved = Moved(
            plan, resumed=before is not None and before.state == "running" and before.plan == plan
        )
        if plan.destination is not None:
            await self.index(plan.destination, present=True)
        sources = plan.moves(begun.found)
        done = 0

        async def move(source: Source) -> None:
            nonlocal done
            if (applied := await self.move(plan, source)) is not None:
                moved.items += 1
                if applied.kind == "count":
                    moved.views = Counts(applied.amounts[0], applied.amounts[1])
            done += 1
            if progress is not None:
                progress(done, len(sources))

        await gather_limited(move(s) for s in sources if s.kind != "count")
        for source in sources:
            if source.kind == "count":
                await move(source)
        await self.index(plan.target, present=False)
        moved.now = await self._told(plan)
        if purge:
            moved.purged = await self.purge(plan)
        await answer(
            self.ddb.put_item(
                TableName=self.tables.index, Item=Operation(plan, "done", begun.started).item()
            ),
            self.tables.index,
        )
        return moved

    async def _told(self, plan: Plan) -> Counts | None:
        """Copy a post's images to the reader table (and their counts to the live feed),
        and reset the ids whose counts went down on every node; a rename's new totals."""
        ids = [plan.target, *([plan.destination] if plan.destination else [])]
        images = {
            t: i
            for t in ids
            if (i := await self.get(moves.count_table(self.tables, t), moves.count_key(t)))
        }
        if plan.kind == "post":
            await self.copy(images.values())
        # Every node forgets what it believed of the old id (more than it holds now)
        # and shows its pages the store's count: counts merge by maximum, so only a
        # reset can bring them down. The new id is read again too: it may have taken
        # the old one's title and path (and a page has no feed of counts).
        await self.reset(ids)
        if plan.destination is None:
            return None
        new = images.get(plan.destination)
        return store_requests.counts(new) if new else Counts(0, 0)


class BulkDeletes(Operations):
    """Every id with a prefix (what a load test counted) deleted, each exactly once as
    one delete is, a chunk at a time, and stoppable between ids."""

    async def delete_all(
        self,
        deleted: Deleted,
        stop: asyncio.Event | None = None,
        progress: Progress | None = None,
        purge: bool = False,
        chunk: int = 32,
        at_once: int = AT_ONCE,
    ) -> Deleted:
        """Delete every id of `deleted.targets`, each exactly once as one delete is:
        `chunk` recorded as running at a time, `at_once` of those moving, telling
        `progress` of each id done. Once `stop` is set no id begins: those recorded as
        running but not begun are backed out, untouched."""
        stop = stop or asyncio.Event()
        of = len(deleted.targets)

        async def one(begun: Started) -> None:
            if stop.is_set():
                await self.back_out(begun.plan.target, begun.before)
                return
            deleted.under_way.add(begun.plan.target)
            deleted.done.append(await self.apply(begun, purge=purge))
            deleted.under_way.discard(begun.plan.target)
            if progress is not None:
                progress(deleted.finished, of)

        for start in range(0, of, chunk):
            if stop.is_set():
                break
            plans = [Plan(t.id, None, t.kind) for t in deleted.targets[start : start + chunk]]
            begun, refused = await self.begin(plans, skip_empty=True)
            for plan, exc in refused.items():
                if exc.code != "never_counted":
                    deleted.refused[plan.target] = exc.detail
                else:  # nothing (left) to move: nothing to do
                    deleted.empty.add(plan.target)
                    if progress is not None:
                        progress(deleted.finished, of)
            await gather_limited((one(b) for b in begun), at_once)
        return deleted

    async def matching(self, prefix: str) -> dict[Target, Counts]:
        """The posts and pages whose id starts with `prefix`, with their counts (the
        writer side, consistently): those with views in the page index, and every one
        an operation emptied before, whatever it holds. A node writes an id's count and
        its report rows apart, and may write them in the moment between a delete and
        its hearing of it: such views stay on the id (the listing shows it again only
        from its next view), in its count or only in its rows. A run after the views
        stopped finds them here and takes them out; an id with nothing left is skipped
        without a write."""
        indexed = [t for t in await self.store.tracked() if t.id.startswith(prefix)]
        emptied = {o.plan.target for o in await self.operated(prefix)}
        counts = await self.counts(sorted({*indexed, *emptied}))
        found = {t: counts.get(t, (ZERO, ""))[0] for t in sorted({*indexed, *emptied})}
        return {t: c for t, c in found.items() if c.total or t in emptied}


class Exports(Items):
    async def records(self, progress: Progress | None = None) -> AsyncIterator[Record]:
        """Every stored count, from the writer side (what the reader copies), for every
        post and page in the page index, and the site's rows; rows at zero (what a
        rename or delete leaves) are left out. `progress` hears of each read."""
        targets = sorted(await self.store.tracked())
        counts = await self.counts(targets)
        refs = [*(t.ref for t in targets), SITE]
        reads, done = 1 + 2 * len(refs), 1
        if progress is not None:
            progress(done, reads)
        for target in targets:
            total, title = counts.get(target, (Counts(0, 0), ""))
            yield Record("count", target.ref, total.total, total.unique, title=title)
        for ref in refs:
            for item in await self.partition(self.tables.timeline, "target", ref):
                hour = store_requests.counts(item)
                if hour.total:
                    yield Record("timeline", ref, hour.total, hour.unique, hour=item["hour"]["S"])
            done += 1
            if progress is not None:
                progress(done, reads)
        for ref in refs:
            items = await self.partition(self.tables.referrers, "target", ref)
            for host, views in sorted(store_requests.referrer_totals(items).items()):
                yield Record("referrer", ref, views, host=host)
            done += 1
            if progress is not None:
                progress(done, reads)
