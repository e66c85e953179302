"""Imports and their undo on the store (`core/import_chunks.py` says why each chunk
applies once): chunks of adds, each one transaction, so that a run killed anywhere is
finished, or taken back, exactly by running the command again. Servers go on counting
meanwhile: they only ADD, which commutes with both.

A restore (`tools/backups.py`) is the import of a backup into a store that holds
nothing (`Imports.holds`); stopped half way, it is undone as any import is.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass, replace
from typing import Any, Final

from livecount.aws import store_requests
from livecount.aws.store_admin import Items, Progress, _now, gather_limited
from livecount.aws.store_errors import CHECK_FAILED, ConditionFailed, answer, transact
from livecount.core import import_chunks
from livecount.core.errors import ClientError
from livecount.core.import_chunks import ImportRecord
from livecount.core.imports import Add
from livecount.core.ledger import SITE
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


class ImportChunks(Items):
    """What imports and their undo share: the record, the chunk items, transactions."""

    async def record(self, import_id: str) -> ImportRecord | None:
        item = await self.get(self.tables.index, import_chunks.record_key(import_id))
        return ImportRecord.from_item(item) if item else None

    async def move_on(self, was: ImportRecord | None, now: ImportRecord) -> None:
        """The record from `was` (None: none yet) to `now`, unless another run moved it
        first."""
        try:
            await answer(self.ddb.put_item(**now.put(self.tables.index, was)), self.tables.index)
        except ConditionFailed:
            raise ClientError(
                "import_running",
                (
                    f"import {now.id} changed under this run (another run of it, or of its "
                    "undo): see livecount import --list"
                ),
            ) from None

    async def chunk_pages(
        self,
        record: ImportRecord,
        adds: bool = False,
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
        async for page in self.query_pages(request):
            yield page

    async def copy_posts(self, articles: list[str], announce: bool) -> None:
        """`Items.copy` for many posts: their writer items read 100 at a time, copied
        into the reader table by the version rule in one transaction (a copy the reader
        holds a newer one of is left out), and (`announce`) their counts put on the
        live feed."""
        for start in range(0, len(articles), 100):
            keys = [{"articleId": {"S": a}} for a in articles[start : start + 100]]
            images: list[dict[str, Any]] = []
            request: dict[str, Any] = {self.tables.writer: {"Keys": keys, "ConsistentRead": True}}
            while request:
                got = await answer(self.ddb.batch_get_item(RequestItems=request), "BatchGetItem")
                images += got.get("Responses", {}).get(self.tables.writer, [])
                request = got.get("UnprocessedKeys") or {}
            await self.transact(
                [
                    [
                        {
                            "Put": Copy(
                                "put", {"articleId": i["articleId"]}, int(i["version"]["N"]), i
                            ).request(self.tables.reader)
                        }
                    ]
                    for i in images
                    if "version" in i
                ]
            )
            if announce:
                await self.announce({i["articleId"]["S"]: store_requests.counts(i) for i in images})

    async def transact(self, groups: list[list[dict[str, Any]]]) -> list[int]:
        """Apply `groups` of TransactItems in one transaction, leaving out each group
        one of whose conditions fails: the indices of those are returned."""
        left = list(range(len(groups)))
        refused: list[int] = []
        while left:
            owner = [g for g in left for _ in groups[g]]
            codes = await transact(self.ddb, [a for g in left for a in groups[g]])
            if codes is None:
                break
            failed = {owner[i] for i, code in enumerate(codes) if code == CHECK_FAILED}
            refused += sorted(failed)
            left = [g for g in left if g not in failed]
        return refused


class Imports(ImportChunks):
    """Imports: begun (or resumed), written chunk by chunk, settled."""

    async def records(self) -> list[ImportRecord]:
        """Every import, oldest first."""
        items = await self.partition(self.tables.index, "index", import_chunks.IMPORTS)
        return sorted((ImportRecord.from_item(i) for i in items), key=lambda r: r.started)

    async def holds(self, import_id: str | None = None) -> str | None:
        """What the store holds, in words, for a restore; None when it is empty, or
        holds nothing but an unfinished restore of this same backup (`import_id`),
        which a run finishes. An undone import holds nothing, nor do rows at zero."""
        records = [r for r in await self.records() if r.state != "undone"]
        if any(r.id == import_id and r.state == "done" for r in records):
            return "this backup, restored before"
        if others := [r for r in records if r.id != import_id]:
            return f"{len(others)} imports"
        if records:  # this restore, cut short: what the store holds is its own
            return None
        if tracked := await self.store.tracked():
            return f"{len(tracked)} posts and pages"
        for table in (self.tables.timeline, self.tables.referrers):
            request = store_requests.query(table, "target", SITE, consistent=True)
            async for page in self.query_pages(request):
                if any(
                    store_requests.counts(i).total or store_requests.referrer_totals([i])
                    for i in page
                ):
                    return "counted views"
        return None

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
            await self.move_on(was, record)
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
                    refused = await transact(
                        self.ddb,
                        import_chunks.chunk_transaction(
                            self.tables, record.id, record.attempt, n, adds, at
                        ),
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
        """Once every chunk is in: the posts and pages in the page index (the entries it
        makes keep the import's id, for its undo; an import is not held to the cap),
        the posts' counts in the reader table and on the live feed, the pages read
        again by every node, and the record `done`."""
        batch: list[Target] = []
        for target in [*targets, None]:
            if target is not None:
                batch.append(target)
            if batch and (target is None or len(batch) == 1000):
                await self.store.pages.register(batch, None, owner=record.id)
                await self.copy_posts([t.id for t in batch if t.kind == "post"], announce=True)
                await self.reset(t for t in batch if t.kind == "page")
                batch = []
        done = replace(record, state="done", changed=_now())
        await self.move_on(record, done)
        return done

    async def run(
        self,
        fresh: ImportRecord,
        chunks: Iterable[list[Add]],
        targets: Iterable[Target],
        progress: Progress | None = None,
        in_flight: int = IN_FLIGHT,
    ) -> tuple[Begun, int]:
        """Begin (or resume) the import, add every chunk not in yet, settle it; how it
        began, and the chunks this run added."""
        begun = await self.begin(fresh)
        if begun.already:
            return begun, 0
        if progress is not None:
            progress(0, begun.record.chunks)
        written = await self.write(begun.record, chunks, progress, in_flight)
        begun.record = await self.settle(begun.record, targets)
        return begun, written


class ImportUndo(ImportChunks):
    """An import taken back, chunk by chunk, exactly."""

    async def undo(
        self, import_id: str, progress: Progress | None = None, in_flight: int = IN_FLIGHT
    ) -> Undone:
        """Take back every chunk of the import that is still in, exactly once; mark
        the ones never written so that no run adds them later; tidy what it emptied
        (`_tidy`); then the record `undone`."""
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
        at = _now()

        async def chunks(items: list[dict[str, Any]]) -> None:
            seen.update(import_chunks.chunk_number(i) for i in items)
            targets = await gather_limited(
                (self._undo_chunk(record, i, at, result) for i in items), in_flight
            )
            await self._tidy(record, [t for found in targets for t in found])
            if progress is not None:
                progress(len(seen), record.chunks)

        async for page in self.chunk_pages(record, adds=True):
            await chunks(page)
        missing = sorted(set(range(record.chunks)) - seen)
        for start in range(0, len(missing), 100):
            numbers = missing[start : start + 100]
            refused = await self.transact(
                [
                    [import_chunks.tombstone(self.tables, record.id, record.attempt, n, at)]
                    for n in numbers
                ]
            )
            seen.update(numbers)
            # Written meanwhile by a run still going: take those back too.
            keys = [import_chunks.chunk_key(record.id, record.attempt, numbers[i]) for i in refused]
            await chunks([i for k in keys if (i := await self.get(self.tables.index, k))])
        undone = replace(record, state="undone", changed=_now(), kept=result.kept)
        await self.move_on(record, undone)
        result.record = undone
        return result

    async def _undo_chunk(
        self, record: ImportRecord, item: dict[str, Any], at: str, result: Undone
    ) -> list[Target]:
        """Take one chunk back (unless it was); the posts and pages it added to, to tidy
        again on every run, so that a run killed in between leaves nothing undone."""
        if "adds" not in item:
            return []  # a tombstone: never written
        n = import_chunks.chunk_number(item)
        adds = import_chunks.unpack(item["adds"]["B"])
        if "undone" in item:
            result.kept += int(item.get("kept", {}).get("N", 0))
        left, kept = list(adds), 0
        while "undone" not in item:
            refused = await transact(
                self.ddb,
                import_chunks.undo_transaction(
                    self.tables, record.id, record.attempt, n, left, kept, at
                ),
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
        return [Target(a.kind, a.key) for a in adds if a.kind in ("post", "page")]

    async def _tidy(self, record: ImportRecord, targets: list[Target]) -> None:
        """After an undo: out of the page index each target this import listed that
        holds no views now (no node counted one since); the posts' lower counts into
        the reader table; every node told to read them all again."""
        for target in targets:
            await self.store.pages.remove(target, owner=record.id)
        await self.copy_posts([t.id for t in targets if t.kind == "post"], announce=False)
        await self.reset(targets)
