"""The operator's side of the store: rename, delete, export, import and its undo.

Not a request path: these read whole partitions (one Query each, never a Scan) and
write many items. Each operation is made of steps that are idempotent and applied
once however often they are sent, so a run stopped anywhere (a SIGKILL, a lost
answer, DynamoDB away) is finished by running it again:

- a move (`core/moves.py`) is one transaction, on condition of its source's `admin`
  counter as read;
- an import's chunk is one transaction that also puts the chunk's own item, on
  condition that there is none (`core/import_chunks.py`), and its undo another that
  marks that item undone;
- index entries, reader copies (on condition of `version`) and feed items are
  the same item however often they are written.

Running servers go on counting meanwhile; what they add to a renamed article after
its items were read stays on it, for the next run.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from dataclasses import dataclass, replace
from typing import Any, Final

from botocore.exceptions import BotoCoreError
from botocore.exceptions import ClientError as BotoClientError
from livecount.aws import store_errors, store_requests
from livecount.aws.store import Store
from livecount.aws.store_errors import ConditionFailed, answer, translate
from livecount.core import feed, import_chunks, moves
from livecount.core.errors import ClientError
from livecount.core.exports import Record
from livecount.core.import_chunks import ImportRecord
from livecount.core.imports import Add
from livecount.core.ledger import SITE, ZERO, Counts
from livecount.core.moves import Operation, Plan, Source
from livecount.core.pages import Target
from livecount.core.replication import Copy

AT_ONCE: Final = 8  # writes of one operation in flight at once
ATTEMPTS: Final = 20  # tries of one move that keeps meeting other writers
Progress = Callable[[int, int], None]  # (done, of)


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


class Items:
    """Reads and small writes every operation shares."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.ddb = store.ddb
        self.tables = store.tables

    async def partition(self, table: str, key: str, value: str) -> list[dict[str, Any]]:
        """Every item of one partition, consistently: one Query, page by page."""
        request = store_requests.query(table, key, value, consistent=True)
        items: list[dict[str, Any]] = []
        while True:
            page = await answer(self.ddb.query(**request), table)
            items += page.get("Items", [])
            if "LastEvaluatedKey" not in page:
                return items
            request["ExclusiveStartKey"] = page["LastEvaluatedKey"]

    async def get(self, table: str, key: dict[str, Any]) -> dict[str, Any] | None:
        got = await answer(self.ddb.get_item(TableName=table, Key=key, ConsistentRead=True),
                           table)
        item = got.get("Item")
        return dict(item) if item else None

    async def writer(self, article: str) -> dict[str, Any] | None:
        return await self.get(self.tables.writer, {"articleId": {"S": article}})

    async def index(self, target: Target, present: bool) -> None:
        """Put `target` in the page index, or take it out."""
        key = {"index": {"S": store_requests.INDEX}, "target": {"S": target.ref}}
        if present:
            await answer(self.ddb.put_item(TableName=self.tables.index, Item=key),
                         self.tables.index)
        else:
            await answer(self.ddb.delete_item(TableName=self.tables.index, Key=key),
                         self.tables.index)

    async def copy(self, images: Iterable[dict[str, Any]]) -> None:
        """Writer images into the reader table by the stream copy's own rule (newer
        `version` only), and their counts on the live feed, so that pages see them now
        rather than when a stream consumer next looks."""
        changes: dict[str, tuple[int, int]] = {}
        for image in images:
            if "version" not in image:
                continue
            copy = Copy("put", {"articleId": image["articleId"]}, int(image["version"]["N"]),
                        image)
            with contextlib.suppress(ConditionFailed):  # it holds this image or a newer one
                await answer(self.ddb.put_item(**copy.request(self.tables.reader)),
                             self.tables.reader)
            counts = store_requests.counts(image)
            changes[image["articleId"]["S"]] = (counts.total, counts.unique)
        await self.announce(changes)

    async def reset(self, articles: list[str]) -> None:
        """Tell every node, on the live feed, to read `articles` again."""
        for put in feed.resets(articles, self.tables.feed, "admin", time.time()):
            await answer(self.ddb.put_item(**put), self.tables.feed)

    async def announce(self, changes: dict[str, tuple[int, int]]) -> None:
        """Counts on the live feed; nodes merge them by maximum into what pages see."""
        if changes:
            for put in feed.puts(changes, self.tables.feed, "admin", time.time()):
                await answer(self.ddb.put_item(**put), self.tables.feed)


async def gather_limited(jobs: Iterable[Awaitable[Any]], limit: int = AT_ONCE) -> list[Any]:
    """Await `jobs`, at most `limit` at once; the first failure fails the whole."""
    gate = asyncio.Semaphore(limit)

    async def one(job: Awaitable[Any]) -> Any:
        async with gate:
            return await job

    return list(await asyncio.gather(*(one(j) for j in jobs)))


@dataclass
class Moved:
    """What one run of a rename or delete did."""

    plan: Plan
    resumed: bool
    items: int = 0  # items moved
    views: Counts = ZERO  # the writer totals moved
    now: Counts | None = None  # a rename: the new id's totals after it
    purged: int = 0


class Operations(Items):
    """Rename and delete (`core/moves.py`), resumable: each run moves what is left."""

    async def current(self, article: str) -> Operation | None:
        item = await self.get(self.tables.index, moves.operation_key(article))
        return Operation.from_item(item) if item else None

    async def crossing(self, plan: Plan) -> Operation | None:
        """A running operation on another article that moves `plan`'s target away or
        moves into its source (two renames into one target merely add: they may run)."""
        answer_ = await self.ddb.query(**store_requests.query(
            self.tables.index, "index", moves.OPERATIONS, consistent=True))
        for item in answer_.get("Items", []):
            other = Operation.from_item(item)
            if other is None or other.state != "running" or other.article == plan.article:
                continue
            if other.article == plan.to or (other.to is not None and other.to == plan.article):
                return other
        return None

    async def back_out(self, article: str, before: Operation | None) -> None:
        """Put `article`'s operation record back as it was before this run."""
        if before is None:
            await answer(self.ddb.delete_item(TableName=self.tables.index,
                                              Key=moves.operation_key(article)),
                         self.tables.index)
        else:
            await answer(self.ddb.put_item(TableName=self.tables.index, Item=before.item()),
                         self.tables.index)

    async def run(self, plan: Plan, progress: Progress | None = None,
                  purge: bool = False) -> Moved:
        """Start (or resume) `plan` and move everything its article holds now."""
        before = await self.current(plan.article)
        found = await self.sources(plan.article)
        if not found and before is None:
            raise ClientError("never_counted", f"{plan.article!r} was never counted: there "
                                               "is nothing to rename or delete")
        operation = Operation(plan.article, plan.to, "running",
                              before.started if before and before.state == "running" else _now())
        try:
            await answer(self.ddb.put_item(**moves.start_request(self.tables.index, operation)),
                         self.tables.index)
        except ConditionFailed:
            running = await self.current(plan.article)
            what = running.plan.describe() if running else "another operation"
            raise ClientError("operation_running",
                              f"the {what} is not finished: run it again to finish it, "
                              f"then this one") from None
        if (crossing := await self.crossing(plan)) is not None:
            # Another operation moves this one's target away, or moves into its source:
            # run together, they could swap articles. Back out; one goes, then the other.
            await self.back_out(plan.article, before)
            raise ClientError("operation_running",
                              f"the {crossing.plan.describe()} is not finished and touches "
                              f"{plan.article!r} or {plan.to!r}: finish it first")
        moved = Moved(plan, resumed=before is not None and before.state == "running"
                      and before.plan == plan)
        if plan.to is not None:
            await self.index(Target("post", plan.to), present=True)
        sources = plan.moves(found)
        rows = [s for s in sources if s.kind != "writer"]
        done = 0

        async def move(source: Source) -> None:
            nonlocal done
            if (applied := await self.move(plan, source)) is not None:
                moved.items += 1
                if applied.kind == "writer":
                    moved.views = Counts(applied.amounts[0], applied.amounts[1])
            done += 1
            if progress is not None:
                progress(done, len(sources))

        await gather_limited(move(s) for s in rows)
        for source in sources:
            if source.kind == "writer":
                await move(source)
        await self.index(Target("post", plan.article), present=False)
        images = [i for a in (plan.article, plan.to) if a and (i := await self.writer(a))]
        await self.copy(images)
        if plan.to is not None:
            new = next((i for i in images if i["articleId"]["S"] == plan.to), None)
            moved.now = store_requests.counts(new) if new else Counts(0, 0)
        # Every node forgets what it believed of the old id (more than it holds now)
        # and shows its pages the store's count: counts merge by maximum, so only a
        # reset can bring them down.
        await self.reset([plan.article])
        if purge:
            moved.purged = await self.purge(plan)
        await answer(self.ddb.put_item(TableName=self.tables.index, Item=Operation(
            plan.article, plan.to, "done", operation.started).item()), self.tables.index)
        return moved

    async def sources(self, article: str) -> list[Source]:
        """Every item of the article, as read now."""
        ref = Target("post", article).ref
        timeline, referrers, writer = await asyncio.gather(
            self.partition(self.tables.timeline, "target", ref),
            self.partition(self.tables.referrers, "target", ref),
            self.writer(article))
        found = [Source.of("timeline", i) for i in timeline]
        found += [Source.of("referrer", i) for i in referrers]
        if writer is not None:
            found.append(Source.of("writer", writer))
        return found

    async def move(self, plan: Plan, source: Source) -> Source | None:
        """Apply one move, reading the source again whenever another writer got there
        first; the move as applied, or None when nothing was left to move."""
        for attempt in range(ATTEMPTS):
            try:
                await self.ddb.transact_write_items(
                    TransactItems=plan.transaction(source, self.tables))
                return source
            except BotoClientError as exc:
                reasons = [r.get("Code") for r in exc.response.get("CancellationReasons", [])]
                if "ConditionalCheckFailed" in reasons:
                    fresh = await self.reread(plan, source)
                    if fresh is None:
                        return None
                    source = fresh
                elif "TransactionConflict" in reasons or exc.response.get("Error", {}).get(
                        "Code") == "TransactionConflictException":
                    await asyncio.sleep(0.05 * (attempt + 1))  # another write in progress
                else:
                    raise translate(exc, "TransactWriteItems") from exc
            except BotoCoreError as exc:  # no answer: the next run reads what applied
                raise translate(exc, "TransactWriteItems") from exc
        raise ClientError("operation_contended", f"{plan.describe()}: an item kept changing "
                                                 f"under {ATTEMPTS} tries; run it again")

    async def reread(self, plan: Plan, source: Source) -> Source | None:
        key = plan.transaction(source, self.tables)[0]["Update"]
        item = await self.get(key["TableName"], key["Key"])
        fresh = Source.of(source.kind, item) if item else None
        return None if fresh is None or fresh.empty else fresh

    async def purge(self, plan: Plan) -> int:
        """Delete the article's items left at zero, and its reader item: for when no
        node has a write of it in doubt (see `core/moves.py`)."""
        purged = 0
        for source in await self.sources(plan.article):
            if source.empty:
                try:
                    await answer(self.ddb.delete_item(**plan.purge(source, self.tables)),
                                 "DeleteItem")
                    purged += 1
                except ConditionFailed:
                    pass  # counted on since: a later run moves it
        with_version = await self.get(self.tables.reader, {"articleId": {"S": plan.article}})
        if with_version and await self.writer(plan.article) is None:
            copy = Copy("delete", {"articleId": {"S": plan.article}},
                        int(with_version.get("version", {}).get("N", 0)))
            with contextlib.suppress(ConditionFailed):
                await answer(self.ddb.delete_item(**copy.request(self.tables.reader)),
                             self.tables.reader)
        return purged


@dataclass
class Begun:
    """Where an import stands once started: new, resumed, or done before."""

    record: ImportRecord
    resumed: bool = False
    already: bool = False  # done before: nothing to write


@dataclass
class Undone:
    record: ImportRecord
    already: bool = False  # undone before: nothing to do
    chunks: int = 0  # chunks taken back by this run
    kept: int = 0  # adds left where a rename or delete had moved their views (every run)


IN_FLIGHT: Final = 4  # chunk transactions of one import in flight at once
CHECK_FAILED: Final = "ConditionalCheckFailed"  # a cancellation reason


class Imports(Items):
    """Imports and their undo (`core/import_chunks.py`): chunks of adds, each one
    transaction that applies once, so that a run killed anywhere is finished (or taken
    back) exactly by running the command again."""

    async def record(self, import_id: str) -> ImportRecord | None:
        item = await self.get(self.tables.index, import_chunks.record_key(import_id))
        return ImportRecord.from_item(item) if item else None

    async def records(self) -> list[ImportRecord]:
        """Every import, oldest first."""
        items = await self.partition(self.tables.index, "index", import_chunks.IMPORTS)
        return sorted((ImportRecord.from_item(i) for i in items), key=lambda r: r.started)

    async def begin(self, fresh: ImportRecord) -> Begun:
        """Start the import `fresh` describes, resume it, or say it is done; refuse it
        while the same records, mapped otherwise, are imported (or being undone)."""
        was = await self.record(fresh.id)
        if was is not None and was.content != fresh.content:  # 1 in 2**48
            raise ClientError(
                "import_id_taken",
                f"import {fresh.id} holds other records: undo it before importing this file",
            )
        if was is None or was.state == "undone":
            now = _now()
            record = replace(
                fresh,
                attempt=was.attempt + 1 if was else 1,
                state="running",
                started=now,
                changed=now,
            )
            try:
                await answer(
                    self.ddb.put_item(**record.put(self.tables.index, was)), self.tables.index
                )
            except ConditionFailed:
                raise ClientError(
                    "import_running",
                    f"another run started import {fresh.id} just now: let it finish",
                ) from None
            return Begun(record)
        if was.state == "undoing":
            raise ClientError(
                "import_undoing",
                (
                    f"import {was.id} of these records is being undone: finish that with "
                    f"livecount import --undo {was.id}, then import again"
                ),
            )
        if was.plan != fresh.plan:
            unfinished = "an unfinished" if was.state == "running" else "an"
            raise ClientError(
                "imported_before",
                (
                    f"these records ({was.file}) are {unfinished} import, {was.id}, of "
                    f"{was.started}, mapped otherwise (other --page, --path-pattern, "
                    "--unmatched-paths or --site-domain options): importing them as well would "
                    f"count their views twice. Undo it first: livecount import --undo {was.id}"
                ),
            )
        return Begun(was, resumed=was.state == "running", already=was.state == "done")

    async def write(
        self, record: ImportRecord, chunks: Iterable[list[Add]], progress: Progress | None = None
    ) -> int:
        """Add every chunk of `record` not added yet, `IN_FLIGHT` at once; the chunks
        added by this run."""
        present = {import_chunks.chunk_number(i) for i in await self.chunk_items(record)}
        written = done = 0
        todo = iter(enumerate(chunks))
        at = _now()

        async def worker() -> None:
            nonlocal written, done
            for n, adds in todo:  # shared: each chunk goes to one worker
                if n not in present:
                    refused = await self.transact_once(
                        import_chunks.chunk_transaction(
                            self.tables, record.id, record.attempt, n, adds, at
                        )
                    )
                    if refused is not None and refused[-1] != CHECK_FAILED:
                        raise ClientError(
                            "import_refused",
                            f"import {record.id}: chunk {n} was refused ({refused})",
                        )
                    written += refused is None  # else: in already, by another run
                done += 1
                if progress is not None:
                    progress(done, record.chunks)

        async with asyncio.TaskGroup() as group:
            for _ in range(IN_FLIGHT):
                group.create_task(worker())
        return written

    async def settle(self, record: ImportRecord, targets: Iterable[Target]) -> ImportRecord:
        """Once every chunk is in: the posts and pages in the page index, the posts'
        counts in the reader table and on the live feed, and the record `done`."""
        batch: list[Target] = []
        for target in targets:
            batch.append(target)
            if len(batch) == 100:
                await self._settle(batch)
                batch = []
        await self._settle(batch)
        done = replace(record, state="done", changed=_now())
        await self.move_on(record, done)
        return done

    async def _settle(self, targets: list[Target]) -> None:
        if not targets:
            return
        index = store_requests.INDEX
        await self.transact(
            [
                [
                    {
                        "Put": {
                            "TableName": self.tables.index,
                            "Item": {"index": {"S": index}, "target": {"S": t.ref}},
                        }
                    }
                ]
                for t in targets
            ]
        )
        await self.copy_many([t.id for t in targets if t.kind == "post"], announce=True)

    async def undo(self, import_id: str, progress: Progress | None = None) -> Undone:
        """Take back every chunk of the import that is still in, exactly once; mark
        the ones never written so that no run adds them later; take the posts and pages
        it emptied out of the page index; then the record `undone`."""
        was = await self.record(import_id)
        if was is None:
            raise ClientError(
                "never_imported",
                f"there is no import {import_id!r}: livecount import --list lists them",
            )
        if was.attempt == 0:
            raise ClientError(
                "not_undoable",
                f"import {import_id} was made by an older "
                "livecount, whose imports cannot be undone",
            )
        if was.state == "undone":
            return Undone(was, already=True, kept=was.kept)
        record = replace(was, state="undoing", changed=_now())
        if was.state != "undoing":
            await self.move_on(was, record)
        result = Undone(record)
        seen: set[int] = set()
        done = 0
        at = _now()

        async def one(item: dict[str, Any]) -> None:
            nonlocal done
            seen.add(import_chunks.chunk_number(item))
            await self._undo_chunk(record, item, at, result)
            done += 1
            if progress is not None:
                progress(done, record.chunks)

        await gather_limited((one(i) for i in await self.chunk_items(record, adds=True)), IN_FLIGHT)
        missing = sorted(set(range(record.chunks)) - seen)
        for start in range(0, len(missing), 100):
            numbers = missing[start : start + 100]
            refused = await self.transact(
                [
                    [import_chunks.tombstone(self.tables, record.id, record.attempt, n, at)]
                    for n in numbers
                ]
            )
            for i in refused:  # written meanwhile by a run still going: take it back
                item = await self.get(
                    self.tables.index,
                    import_chunks.chunk_key(record.id, record.attempt, numbers[i]),
                )
                if item is not None:
                    await self._undo_chunk(record, item, at, result)
            done += len(numbers)
            if progress is not None:
                progress(done, record.chunks)
        undone = replace(record, state="undone", changed=_now(), kept=result.kept)
        await self.move_on(record, undone)
        result.record = undone
        return result

    async def _undo_chunk(
        self, record: ImportRecord, item: dict[str, Any], at: str, result: Undone
    ) -> None:
        """Take one chunk back (unless it was), then tidy what its counts emptied:
        again on every run, so that a run killed in between leaves nothing undone."""
        if "adds" not in item:
            return  # a tombstone: never written
        n = import_chunks.chunk_number(item)
        adds = import_chunks.unpack(item["adds"]["B"])
        if "undone" not in item:
            left, kept = list(adds), 0
            while True:
                refused = await self.transact_once(
                    import_chunks.undo_transaction(
                        self.tables, record.id, record.attempt, n, left, kept, at
                    )
                )
                if refused is None:
                    result.chunks += 1
                    result.kept += kept
                    break
                if refused[-1] == CHECK_FAILED:
                    break  # another run took it back
                # Items that no longer hold what the chunk added (a rename or delete moved
                # their views): left as they are, counted, and the rest taken back.
                kept += refused.count(CHECK_FAILED)
                left = [a for a, why in zip(left, refused, strict=False) if why != CHECK_FAILED]
        else:
            result.kept += int(item.get("kept", {}).get("N", 0))
        targets = [Target(a.kind, a.key) for a in adds if a.kind in ("post", "page")]
        if targets:
            await self.transact([self._emptied(t) for t in targets])
            posts = [t.id for t in targets if t.kind == "post"]
            await self.copy_many(posts, announce=False)
            await self.reset(posts)

    def _emptied(self, target: Target) -> list[dict[str, Any]]:
        """TransactItems taking `target` out of the page index, on condition that it has
        no views (an undo emptied it, and no node counted one since)."""
        table, key = (
            (self.tables.writer, {"articleId": {"S": target.id}})
            if target.kind == "post"
            else (self.tables.pages, {"pageName": {"S": target.id}})
        )
        return [
            {
                "ConditionCheck": {
                    "TableName": table,
                    "Key": key,
                    "ConditionExpression": "attribute_not_exists(#t) OR #t = :zero",
                    "ExpressionAttributeNames": {"#t": "totalViews"},
                    "ExpressionAttributeValues": {":zero": {"N": "0"}},
                }
            },
            {
                "Delete": {
                    "TableName": self.tables.index,
                    "Key": {"index": {"S": store_requests.INDEX}, "target": {"S": target.ref}},
                }
            },
        ]

    async def chunk_items(
        self,
        record: ImportRecord,
        adds: bool = False,
    ) -> list[dict[str, Any]]:
        """The chunk items of the record's attempt (their adds too, or just their keys)."""
        request = store_requests.query(
            self.tables.index,
            "index",
            import_chunks.chunk_partition(record.id, record.attempt),
            consistent=True,
        )
        if not adds:
            request["ProjectionExpression"] = "#p"
            request["ExpressionAttributeNames"]["#p"] = "target"
        items: list[dict[str, Any]] = []
        while True:
            page = await answer(self.ddb.query(**request), self.tables.index)
            items += page.get("Items", [])
            if "LastEvaluatedKey" not in page:
                return items
            request["ExclusiveStartKey"] = page["LastEvaluatedKey"]

    async def move_on(self, was: ImportRecord, now: ImportRecord) -> None:
        """The record from `was` to `now`, unless another run moved it first."""
        try:
            await answer(self.ddb.put_item(**now.put(self.tables.index, was)), self.tables.index)
        except ConditionFailed:
            raise ClientError(
                "import_running",
                (
                    f"import {was.id} changed under this run (another run of it, or of its "
                    "undo): see livecount import --list"
                ),
            ) from None

    async def copy_many(self, articles: list[str], announce: bool) -> None:
        """`Items.copy` for many posts: their writer items read 100 at a time, copied
        into the reader table by the version rule in one transaction, and (`announce`)
        their counts put on the live feed."""
        for start in range(0, len(articles), 100):
            keys = [{"articleId": {"S": a}} for a in articles[start : start + 100]]
            images: list[dict[str, Any]] = []
            request: dict[str, Any] = {self.tables.writer: {"Keys": keys, "ConsistentRead": True}}
            while request:
                got = await answer(self.ddb.batch_get_item(RequestItems=request), "BatchGetItem")
                images += got.get("Responses", {}).get(self.tables.writer, [])
                request = got.get("UnprocessedKeys") or {}
            copies = [
                Copy("put", {"articleId": i["articleId"]}, int(i["version"]["N"]), i)
                for i in images
                if "version" in i
            ]
            await self.transact([[{"Put": c.request(self.tables.reader)}] for c in copies])
            if announce:
                await self.announce({i["articleId"]["S"]: store_requests.counts(i) for i in images})

    async def transact(self, groups: list[list[dict[str, Any]]]) -> list[int]:
        """Apply `groups` of TransactItems in one transaction, leaving out each group
        one of whose conditions fails: the indices of those are returned."""
        left = list(range(len(groups)))
        refused: list[int] = []
        while left:
            owner = [g for g in left for _ in groups[g]]
            codes = await self.transact_once([a for g in left for a in groups[g]])
            if codes is None:
                break
            failed = {owner[i] for i, code in enumerate(codes) if code == CHECK_FAILED}
            refused += sorted(failed)
            left = [g for g in left if g not in failed]
        return refused

    async def transact_once(self, actions: list[dict[str, Any]]) -> list[str] | None:
        """One TransactWriteItems: None when it applied, or the reason for each action
        when conditions refused it. A conflict with another write is tried again, a
        while; anything else the store refuses stops the operation (a rerun finishes
        it)."""
        for attempt in range(ATTEMPTS):
            try:
                await self.ddb.transact_write_items(TransactItems=actions)
                return None
            except BotoClientError as exc:
                codes = [r.get("Code", "") for r in exc.response.get("CancellationReasons", [])]
                if CHECK_FAILED in codes:
                    return codes
                if "TransactionConflict" not in codes and store_errors.aws_code(exc) not in (
                    "TransactionConflictException",
                    "TransactionInProgressException",
                ):
                    raise translate(exc, "TransactWriteItems") from exc
                await asyncio.sleep(0.05 * (attempt + 1))  # another write in progress
            except BotoCoreError as exc:  # no answer: a rerun reads what applied
                raise translate(exc, "TransactWriteItems") from exc
        raise ClientError(
            "operation_contended",
            f"a transaction kept meeting other writes under {ATTEMPTS} tries; run it again",
        )


class Exports(Items):
    async def records(self) -> AsyncIterator[Record]:
        """Every stored count, from the writer side (what the reader copies), for every
        post and page in the page index, and the site's rows; rows at zero (what a
        rename or delete leaves) are left out."""
        targets = sorted(await self.store.tracked())
        counts = await self.counts(targets)
        for target in targets:
            total, title = counts.get(target, (Counts(0, 0), ""))
            yield Record("count", target.ref, total.total, total.unique, title=title)
        for ref in [*(t.ref for t in targets), SITE]:
            for item in await self.partition(self.tables.timeline, "target", ref):
                hour = store_requests.counts(item)
                if hour.total:
                    yield Record("timeline", ref, hour.total, hour.unique,
                                 hour=item["hour"]["S"])
        for ref in [*(t.ref for t in targets), SITE]:
            items = await self.partition(self.tables.referrers, "target", ref)
            for host, views in sorted(store_requests.referrer_totals(items).items()):
                yield Record("referrer", ref, views, host=host)

    async def counts(self, targets: list[Target]) -> dict[Target, tuple[Counts, str]]:
        """Totals and titles from the writer table and HomeAndProfile, consistently."""
        found: dict[Target, tuple[Counts, str]] = {}
        t = self.tables
        for start in range(0, len(targets), 100):
            request: dict[str, Any] = {}
            for target in targets[start:start + 100]:
                table, key = (t.writer, {"articleId": {"S": target.id}}) \
                    if target.kind == "post" else (t.pages, {"pageName": {"S": target.id}})
                request.setdefault(table, {"Keys": [], "ConsistentRead": True})["Keys"].append(key)
            while request:
                got = await answer(self.ddb.batch_get_item(RequestItems=request), "BatchGetItem")
                for table, items in got.get("Responses", {}).items():
                    post = table == t.writer
                    for item in items:
                        target = Target("post" if post else "page",
                                        item["articleId" if post else "pageName"]["S"])
                        found[target] = (store_requests.counts(item),
                                         item.get("articleTitle", {}).get("S", ""))
                request = got.get("UnprocessedKeys") or {}
        return found
