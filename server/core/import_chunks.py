"""The writes of an import and of its undo, sans I/O: chunks of adds, each one
DynamoDB transaction, and the import's record.

Exactly once, with a kill anywhere and servers counting meanwhile:

- A plan's adds, sorted, are cut into chunks of `CHUNK_ADDS`; the same file read with
  the same options gives the same chunks. A chunk's transaction ADDs its counts and
  puts the chunk's own item (PageIndex partition `import:<id>.<attempt>`), on
  condition that there is none: it applies whole or not at all, and once. A run killed
  anywhere is finished by the same command; each chunk it finds is skipped.
- The chunk's item keeps its adds, so an undo takes back exactly what the chunk added:
  the same ADDs negated, and the chunk marked `undone`, in one transaction conditional
  on the mark's absence. An undo also marks the chunks it finds unwritten (a
  tombstone), so that an import still running somewhere cannot add one afterwards.
- Servers only ADD, which commutes with both. Each taken-back count is conditional on
  the item still holding it: a rename or delete that moved views since keeps them
  where they went (the undo says how many), and no count goes below zero.
- A new attempt at an undone import writes its chunks in a partition of its own.

Sorted adds also keep DynamoDB Local's writes near each other: one transaction of
neighbours writes a tenth of the bytes that scattered items do (docs/BENCHMARKS.md).
"""

from __future__ import annotations

import json
import zlib
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Final, Literal

from livecount.core.imports import Add
from livecount.core.pages import Target
from livecount.core.tables import Tables

IMPORTS: Final = "import"  # the PageIndex partition of import records
CHUNK_ADDS: Final = 99  # items one transaction adds to: 100 actions with its chunk item


def _update(tables: Tables, add: Add, sign: int) -> dict[str, Any]:
    """The Update of one add in a transaction: ADD its counts (`sign` -1 takes them
    back, on condition that the item still holds them, so that no count goes below
    zero). A post's also bumps `version`, which orders its images for the reader copy,
    and a title fills a missing one."""
    if add.kind in ("post", "page"):
        table, key = tables.count_key(Target(add.kind, add.key))
    elif add.kind == "timeline":
        table, key = tables.timeline, {"target": {"S": add.key}, "hour": {"S": add.sort}}
    else:
        table, key = tables.referrers, {"target": {"S": add.key}, "host": {"S": add.sort}}
    amounts = (
        {"views": add.total}
        if add.kind == "referrer"
        else {"totalViews": add.total, "uniqueViews": add.unique}
    )
    names: dict[str, str] = {}
    values: dict[str, Any] = {}
    parts, held = [], []
    for i, (name, amount) in enumerate(amounts.items()):
        names[f"#a{i}"], values[f":a{i}"] = name, {"N": str(sign * amount)}
        parts.append(f"#a{i} :a{i}")
        if sign < 0 and amount:
            values[f":h{i}"] = {"N": str(amount)}
            held.append(f"#a{i} >= :h{i}")
    if add.kind == "post":
        names["#v"], values[":one"] = "version", {"N": "1"}
        parts.append("#v :one")
    update: dict[str, Any] = {
        "TableName": table,
        "Key": key,
        "UpdateExpression": f"ADD {', '.join(parts)}",
        "ExpressionAttributeNames": names,
    }
    if add.title and sign > 0:
        names["#t"], values[":t"] = "articleTitle", {"S": add.title}
        update["UpdateExpression"] += " SET #t = if_not_exists(#t, :t)"
    if held:
        update["ConditionExpression"] = " AND ".join(held)
    update["ExpressionAttributeValues"] = values
    return {"Update": update}


def chunk_partition(import_id: str, attempt: int) -> str:
    """The PageIndex partition of the chunks of one attempt at an import: each attempt
    (the first, or one after an undo) has its own, so an undone chunk is never reused."""
    return f"{IMPORTS}:{import_id}.{attempt}"


def chunk_key(import_id: str, attempt: int, n: int) -> dict[str, Any]:
    return {"index": {"S": chunk_partition(import_id, attempt)}, "target": {"S": f"{n:07d}"}}


def chunk_number(item: dict[str, Any]) -> int:
    return int(item["target"]["S"])


def pack(adds: Iterable[Add]) -> bytes:
    """A chunk's adds as its item keeps them, for its undo: compact, compressed."""
    return zlib.compress(
        json.dumps([a[:5] for a in adds], ensure_ascii=False, separators=(",", ":")).encode()
    )


def unpack(blob: bytes) -> list[Add]:
    return [Add(*a) for a in json.loads(zlib.decompress(blob))]


def chunk_transaction(
    tables: Tables, import_id: str, attempt: int, n: int, adds: list[Add], at: str
) -> list[dict[str, Any]]:
    """TransactItems adding chunk `n`: its adds and, last, its own item, on condition
    that there is none. Applied whole or not at all, so the chunk adds once however
    often it is sent: a second time, its item refuses it."""
    return [
        *(_update(tables, add, +1) for add in adds),
        {
            "Put": {
                "TableName": tables.index,
                "Item": chunk_key(import_id, attempt, n)
                | {"adds": {"B": pack(adds)}, "at": {"S": at}},
                "ConditionExpression": "attribute_not_exists(#i)",
                "ExpressionAttributeNames": {"#i": "index"},
            }
        },
    ]


def undo_transaction(
    tables: Tables, import_id: str, attempt: int, n: int, adds: list[Add], kept: int, at: str
) -> list[dict[str, Any]]:
    """TransactItems taking back chunk `n`'s `adds` (each on condition that its item
    still holds what it took: what a rename or delete moved since stays where it went,
    `kept` counts those), and marking the chunk undone, on condition that it was not."""
    return [
        *(_update(tables, add, -1) for add in adds),
        {
            "Update": {
                "TableName": tables.index,
                "Key": chunk_key(import_id, attempt, n),
                "UpdateExpression": "SET #u = :at, #k = :kept",
                "ConditionExpression": "attribute_exists(#a) AND attribute_not_exists(#u)",
                "ExpressionAttributeNames": {"#u": "undone", "#k": "kept", "#a": "adds"},
                "ExpressionAttributeValues": {":at": {"S": at}, ":kept": {"N": str(kept)}},
            }
        },
    ]


def tombstone(tables: Tables, import_id: str, attempt: int, n: int, at: str) -> dict[str, Any]:
    """A chunk an undo found unwritten, marked undone, so that an import still running
    somewhere cannot add it afterwards."""
    return {
        "Put": {
            "TableName": tables.index,
            "Item": chunk_key(import_id, attempt, n) | {"undone": {"S": at}},
            "ConditionExpression": "attribute_not_exists(#i)",
            "ExpressionAttributeNames": {"#i": "index"},
        }
    }


# -- import records --------------------------------------------------------------------------
State = Literal["running", "done", "undoing", "undone"]
_STATES: Final[dict[str, State]] = {
    "running": "running",
    "done": "done",
    "undoing": "undoing",
    "undone": "undone",
}


@dataclass(frozen=True, slots=True)
class ImportRecord:
    """An import, as its item in the PageIndex partition `import` keeps it."""

    id: str
    content: str  # the hash of the file's records
    plan: str  # the hash of what it adds (`fingerprint`): the mapping options' mark
    attempt: int  # 1, then one more after each undo
    state: State
    file: str
    format: str
    chunks: int
    adds: int  # items
    posts: int
    pages: int
    views: int
    unique: int
    started: str
    changed: str = ""  # when it reached `state`
    kept: int = 0  # an undo's adds left where a rename or delete had moved their views

    def item(self) -> dict[str, Any]:
        item: dict[str, Any] = {"index": {"S": IMPORTS}, "target": {"S": self.id}}
        for name in ("content", "plan", "state", "file", "format", "started", "changed"):
            item[name] = {"S": getattr(self, name)[:512]}
        for name in ("attempt", "chunks", "adds", "posts", "pages", "views", "unique", "kept"):
            item[name] = {"N": str(getattr(self, name))}
        return item

    @classmethod
    def from_item(cls, item: dict[str, Any]) -> ImportRecord:
        """A record; one written before imports could be undone (no `attempt`) reads as
        attempt 0, which cannot be undone."""

        def text(name: str) -> str:
            return str(item.get(name, {}).get("S", ""))

        def number(name: str) -> int:
            return int(item.get(name, {}).get("N", 0))

        return cls(
            id=text("target"),
            content=text("content"),
            plan=text("plan"),
            attempt=number("attempt"),
            state=_STATES.get(text("state"), "done"),  # before attempts: done
            file=text("file"),
            format=text("format"),
            chunks=number("chunks"),
            adds=number("adds"),
            posts=number("posts"),
            pages=number("pages"),
            views=number("views"),
            unique=number("unique"),
            started=text("started") or text("at"),
            changed=text("changed"),
            kept=number("kept"),
        )

    def put(self, table: str, was: ImportRecord | None) -> dict[str, Any]:
        """PutItem of this record, on condition that the one stored is still `was`
        (same state, same attempt), so that two runs cannot both move it on."""
        request: dict[str, Any] = {"TableName": table, "Item": self.item()}
        if was is None:
            request["ConditionExpression"] = "attribute_not_exists(#i)"
            request["ExpressionAttributeNames"] = {"#i": "index"}
            return request
        request["ConditionExpression"] = "#s = :s AND #a = :a"
        request["ExpressionAttributeNames"] = {"#s": "state", "#a": "attempt"}
        request["ExpressionAttributeValues"] = {
            ":s": {"S": was.state},
            ":a": {"N": str(was.attempt)},
        }
        return request


def record_key(import_id: str) -> dict[str, Any]:
    return {"index": {"S": IMPORTS}, "target": {"S": import_id}}
