"""The reader copy's writes: puts 25 to a PartiQL batch where the endpoint takes them."""

from __future__ import annotations

import asyncio
from collections import Counter
from typing import Any

from livecount.aws.store_batches import BATCH, BATCH_ROUNDS, KNOWN_ITEMS, KnownItems
from livecount.aws.store_errors import ConditionFailed, answer
from livecount.core.errors import StoreRefused, StoreRejected, StoreUnavailable
from livecount.core.stream_copy import ReaderWrite
from livecount.logs import warn

BATCHES_AT_ONCE = 8  # a copy's batches out at once (each 25 writes)


class ReaderCopy:
    """Writer images into the reader table, each on condition of its `version`
    (`replication.copy_for`), so a replay or an older image changes nothing.

    Puts of distinct articles go 25 to a BatchExecuteStatement (PartiQL: an UPDATE on
    condition of `version` when the reader item is known to exist, else an INSERT,
    each falling back to the other), on `ddb_once`, a client that does not retry
    them; the rest, and whatever a batch cannot settle, one request each."""

    def __init__(self, ddb: Any, table: str, ddb_once: Any = None) -> None:
        self.ddb = ddb
        self.table = table  # the reader table
        self.ddb_once = ddb_once
        self.batching = ddb_once is not None  # off once the endpoint refused a batch
        self._readers: KnownItems[str] = KnownItems(KNOWN_ITEMS)  # articles there
        self._limit = asyncio.Semaphore(BATCHES_AT_ONCE)  # batches of one copy at once
        self._answered = False  # a batch got an answer: the endpoint takes them

    async def copy(self, write: ReaderWrite) -> bool:
        """Apply one reader write; False when the reader holds this image or a newer one."""
        try:
            if write.action == "put":
                await answer(self.ddb.put_item(**write.request), self.table)
            else:
                await answer(self.ddb.delete_item(**write.request), self.table)
        except ConditionFailed:
            return False
        return True

    async def copy_many(self, writes: list[ReaderWrite]) -> list[bool | StoreRejected]:
        """Apply a batch's reader writes: whether each applied, or the refusal of one no
        retry can apply. Puts of distinct articles go in batches, concurrently; the
        rest one request each, in order per article. Raises what the store raises when
        it is away (a batch failing as a whole, once batches work, included): the
        caller reads the records again."""
        outcomes: list[bool | StoreRejected | None] = [None] * len(writes)
        articles = [article_of(w) for w in writes]
        times = Counter(articles)
        alone: list[int] = []
        batched: list[int] = []
        for i, write in enumerate(writes):
            if (
                not self.batching
                or write.action != "put"
                or times[articles[i]] > 1
                or not _quotable(write.request["Item"])
            ):
                alone.append(i)
            else:
                batched.append(i)
        for _ in range(BATCH_ROUNDS):  # update, insert, update
            if not batched:
                break
            chunks = [batched[i : i + BATCH] for i in range(0, len(batched), BATCH)]
            answers = await asyncio.gather(
                *(
                    self._batch(
                        [
                            _statement(self.table, writes[i], articles[i] not in self._readers)
                            for i in chunk
                        ]
                    )
                    for chunk in chunks
                )
            )
            batched = []
            for chunk, got in zip(chunks, answers, strict=True):
                if isinstance(got, StoreUnavailable) and self._answered:
                    raise got  # the records are read again: a struggling store gets no more
                if got is None or isinstance(got, Exception) or len(got) != len(chunk):
                    alone += chunk
                    continue
                for i, response in zip(chunk, got, strict=True):
                    verdict = self._verdict(articles[i], response)
                    if isinstance(verdict, bool):
                        outcomes[i] = verdict
                    elif verdict == "again":
                        batched.append(i)
                    else:
                        alone.append(i)
        alone += batched
        for i in sorted(alone):  # one request each, in stream order
            try:
                outcomes[i] = await self.copy(writes[i])
            except StoreRejected as exc:
                outcomes[i] = exc
        return [o if o is not None else False for o in outcomes]

    def _verdict(self, article: str, response: dict[str, Any]) -> bool | str:
        """A copy statement's answer: applied (True), the reader holds this image or a
        newer one (False), "again" with the other statement, or "alone"."""
        error = response.get("Error")
        if error is None:
            self._readers.add(article)
            return True
        code = error.get("Code")
        if code == "ConditionalCheckFailed":
            if error.get("Item"):
                self._readers.add(article)
                return False  # as new or newer there: what the put's condition refuses
            self._readers.forget(article)
            return "again"  # no such item: insert it
        if code == "DuplicateItem":
            self._readers.add(article)
            return "again"  # there after all: update it
        return "alone"

    async def _batch(
        self,
        statements: list[dict[str, Any]],
    ) -> list[dict[str, Any]] | StoreUnavailable | StoreRejected | StoreRefused | None:
        """One BatchExecuteStatement: an answer per statement, the whole request's
        error, or None when batching went off meanwhile. Refused or not understood,
        batches are not asked again."""
        try:
            async with self._limit:
                if not self.batching:  # another batch was refused while this one waited
                    return None
                got = await answer(
                    self.ddb_once.batch_execute_statement(Statements=statements),
                    "BatchExecuteStatement",
                )
        except (StoreUnavailable, StoreRefused, StoreRejected) as exc:
            if isinstance(exc, StoreRefused | StoreRejected) and self.batching:
                self.batching = False
                warn("stream_batching_off", error=exc.detail)
            return exc
        self._answered = True
        return list(got.get("Responses", []))


def article_of(write: ReaderWrite) -> str:
    key = write.request.get("Item") or write.request.get("Key") or {}
    return str(key.get("articleId", {}).get("S", ""))


def _quotable(item: dict[str, Any]) -> bool:
    """Attribute names a statement can name (node ids may hold quotes)."""
    return not any(c in name for name in item for c in "\"'\\")


def _statement(table: str, write: ReaderWrite, insert: bool) -> dict[str, Any]:
    """The PartiQL form of a reader put: INSERT the image, or UPDATE the item to it on
    condition that the item's version is older (as the put's condition says)."""
    item = write.request["Item"]
    if insert:
        return {
            "Statement": f'INSERT INTO "{table}" VALUE {{'
            + ", ".join(f"'{name}': ?" for name in item)
            + "}",
            "Parameters": list(item.values()),
        }
    names = [name for name in item if name != "articleId"]
    return {
        "Statement": f'UPDATE "{table}" '
        + " ".join(f'SET "{n}" = ?' for n in names)
        + ' WHERE "articleId" = ? AND "version" < ?',
        "Parameters": [item[n] for n in names] + [item["articleId"], item["version"]],
        "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
    }
