"""Imports and their undo on the store (`core/import_chunks.py` says why each chunk
applies once): chunks of adds, each one transaction, so that a run killed anywhere is
finished, or taken back, exactly by running the command again. Servers go on counting
meanwhile: they only ADD, which commutes with both.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass, replace
from typing import Any, Final

from botocore.exceptions import BotoCoreError
from botocore.exceptions import ClientError as BotoClientError
from livecount.aws import store_errors, store_requests
from livecount.aws.store_admin import ATTEMPTS, Items, Progress, _now, gather_limited
from livecount.aws.store_errors import ConditionFailed, answer, translate
from livecount.core import import_chunks
from livecount.core.errors import ClientError
from livecount.core.import_chunks import ImportRecord
from livecount.core.imports import Add
from livecount.core.pages import Target
from livecount.core.replication import Copy


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


IN_FLIGHT: Final = 4  # chunk transactions of one import or undo in flight at once
CHECK_FAILED: Final = "ConditionalCheckFailed"  # a cancellation reason


class ImportChunks(Items):
    """What imports and their undo share: the record, the chunk items, transactions."""

    async def record(self, import_id: str) -> ImportRecord | None:
        item = await self.get(self.tables.index, import_chunks.record_key(import_id))
        return ImportRecord.from_item(item) if item else None

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

    async def chunk_pages(
        self, record: ImportRecord, adds: bool = False
    ) -> AsyncIterator[list[dict[str, Any]]]:
        """The chunk items of the record's attempt, a Query page (up to 1 MB) at a time:
        with their adds, or just their keys."""
        request = store_requests.query(
            self.tables.index,
            "index",
            import_chunks.chunk_partition(record.id, record.attempt),
            consistent=True,
        )
        if not adds:
            request["ProjectionExpression"] = "#p"
            request["ExpressionAttributeNames"]["#p"] = "target"
        while True:
            page = await answer(self.ddb.query(**request), self.tables.index)
            yield page.get("Items", [])
            if "LastEvaluatedKey" not in page:
                return
            request["ExclusiveStartKey"] = page["LastEvaluatedKey"]

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


class Imports(ImportChunks):
    """Imports: begun (or resumed), written chunk by chunk, settled."""

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
        self,
        record: ImportRecord,
        chunks: Iterable[list[Add]],
        progress: Progress | None = None,
        in_flight: int = IN_FLIGHT,
    ) -> int:
        """Add every chunk of `record` not added yet, `in_flight` at once; the chunks
        added by this run."""
        present = {
            import_chunks.chunk_number(item)
            async for page in self.chunk_pages(record)
            for item in page
        }
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
            for _ in range(in_flight):
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


class ImportUndo(ImportChunks):
    """An import taken back, chunk by chunk, exactly."""

    async def undo(
        self, import_id: str, progress: Progress | None = None, in_flight: int = IN_FLIGHT
    ) -> Undone:
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

        async for page in self.chunk_pages(record, adds=True):
            await gather_limited((one(i) for i in page), in_flight)
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
