"""The page index: every post and page the site lists, and how many there are.

Every path a client sends can become a row now (`--unmatched-paths page`), so what a
hostile client can create is bounded: a site lists at most `--max-pages` posts and
pages, across restarts and across nodes. The index partition `all` holds one entry a
target; beside it the item `count`/`pages` holds their number. Every writer of
entries goes through this module, which keeps the two in step in one transaction: a
new entry on condition it is absent (and, for a view, that the count is below the cap),
a removed one on condition it is there.

A node registers a target at its first view (`register`), before the view counts: a
view past the cap is refused (`too_many_pages`), never counted and then dropped.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable
from typing import Any, Final, NamedTuple

from livecount.aws import store_requests
from livecount.aws.store_errors import ConditionFailed, answer, transact
from livecount.core.pages import Target
from livecount.core.tables import Tables

COUNT: Final = {"index": {"S": "count"}, "target": {"S": "pages"}}  # the entries' number
NUMBER: Final = "pages"
OWNER: Final = "import"  # on an entry an import made: its id
CHUNK: Final = 24  # new entries a transaction (and the count: at most 25 actions)


class Listed(NamedTuple):
    """What a registration found: the targets listed (now or before), and those refused
    because the site lists `--max-pages` already."""

    listed: set[Target]
    refused: set[Target]


class PageIndex:
    def __init__(self, ddb: Any, tables: Tables) -> None:
        self.ddb = ddb
        self.tables = tables
        self.table = tables.index

    def _key(self, target: Target) -> dict[str, Any]:
        return {"index": {"S": store_requests.INDEX}, "target": {"S": target.ref}}

    async def register(
        self, targets: Iterable[Target], cap: int | None, owner: str | None = None
    ) -> Listed:
        """List each of `targets` that is not listed yet, while the site lists fewer than
        `cap` (None: no cap, for the operator's imports and renames). The entries made
        now keep `owner` (an import's id), so that its undo takes out only those."""
        wanted = list(dict.fromkeys(targets))
        there = await self._present(wanted)
        missing = [t for t in wanted if t not in there]
        done = Listed(there, set())
        for start in range(0, len(missing), CHUNK):
            chunk = missing[start : start + CHUNK]
            if not await self._add(chunk, cap, owner):  # a race or the cap: one at a time
                for target in chunk:
                    (
                        done.listed
                        if await self._add([target], cap, owner)
                        or target in await self._present([target])
                        else done.refused
                    ).add(target)
                continue
            done.listed.update(chunk)
        return done

    async def remove(self, target: Target, owner: str | None = None) -> None:
        """Take `target` out of the listing (a delete, or a rename's old id). With
        `owner`: only if that import listed it and it holds no views (an undone
        import's target that nothing counted since)."""
        delete: dict[str, Any] = {
            "TableName": self.table,
            "Key": self._key(target),
            "ConditionExpression": "attribute_exists(#t)",
            "ExpressionAttributeNames": {"#t": "target"},
        }
        actions = [{"Delete": delete}, self._counted(-1, None)]
        if owner is not None:
            delete["ConditionExpression"] += " AND #o = :o"
            delete["ExpressionAttributeNames"]["#o"] = OWNER
            delete["ExpressionAttributeValues"] = {":o": {"S": owner}}
            table, key = self.tables.count_key(target)
            actions.append(
                {
                    "ConditionCheck": {
                        "TableName": table,
                        "Key": key,
                        "ConditionExpression": "attribute_not_exists(#v) OR #v = :zero",
                        "ExpressionAttributeNames": {"#v": "totalViews"},
                        "ExpressionAttributeValues": {":zero": {"N": "0"}},
                    }
                }
            )
        await transact(self.ddb, actions)  # refused: not listed, or kept

    async def count(self) -> int:
        item = await answer(
            self.ddb.get_item(TableName=self.table, Key=COUNT, ConsistentRead=True), self.table
        )
        return int(item.get("Item", {}).get(NUMBER, {}).get("N", 0))

    async def reconcile(self) -> None:
        """A store listed by an earlier livecount has entries and no count: count them
        once (a node's start; harmless when the count is there already)."""
        got = await answer(
            self.ddb.get_item(TableName=self.table, Key=COUNT, ConsistentRead=True), self.table
        )
        if "Item" in got:
            return
        paginator = self.ddb.get_paginator("query")
        entries = 0
        async for page in paginator.paginate(
            **store_requests.query(self.table, "index", store_requests.INDEX, consistent=True),
            Select="COUNT",
        ):
            entries += int(page.get("Count", 0))
        with contextlib.suppress(ConditionFailed):  # another node counted first
            await answer(
                self.ddb.put_item(
                    TableName=self.table,
                    Item=COUNT | {NUMBER: {"N": str(entries)}},
                    ConditionExpression="attribute_not_exists(#t)",
                    ExpressionAttributeNames={"#t": "target"},
                ),
                self.table,
            )

    async def _present(self, targets: list[Target]) -> set[Target]:
        found: set[Target] = set()
        for start in range(0, len(targets), 100):
            keys = [self._key(t) for t in targets[start : start + 100]]
            request: dict[str, Any] = {self.table: {"Keys": keys, "ConsistentRead": True}}
            while request:
                got = await answer(self.ddb.batch_get_item(RequestItems=request), self.table)
                for item in got.get("Responses", {}).get(self.table, []):
                    if (target := Target.from_ref(item["target"]["S"])) is not None:
                        found.add(target)
                request = got.get("UnprocessedKeys") or {}
        return found

    async def _add(self, targets: list[Target], cap: int | None, owner: str | None) -> bool:
        """One transaction: the entries, on condition each is absent, and the count up
        by their number, on condition it stays within `cap`. False if refused."""
        mark = {} if owner is None else {OWNER: {"S": owner}}
        puts = [
            {
                "Put": {
                    "TableName": self.table,
                    "Item": self._key(t) | mark,
                    "ConditionExpression": "attribute_not_exists(#t)",
                    "ExpressionAttributeNames": {"#t": "target"},
                }
            }
            for t in targets
        ]
        return await transact(self.ddb, [*puts, self._counted(len(targets), cap)]) is None

    def _counted(self, by: int, cap: int | None) -> dict[str, Any]:
        update: dict[str, Any] = {
            "TableName": self.table,
            "Key": COUNT,
            "UpdateExpression": "ADD #n :by",
            "ExpressionAttributeNames": {"#n": NUMBER},
            "ExpressionAttributeValues": {":by": {"N": str(by)}},
        }
        if cap is not None:
            update["ConditionExpression"] = "attribute_not_exists(#n) OR #n <= :room"
            update["ExpressionAttributeValues"][":room"] = {"N": str(cap - by)}
        return {"Update": update}
