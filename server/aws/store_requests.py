"""The store's requests and the items they return, in DynamoDB's typed JSON.

Pure: the store sends these; keeping them apart keeps the store class about I/O.
boto3's TypeSerializer and TypeDeserializer do the typing (`typed`, `plain`).
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from typing import Any, Literal, NamedTuple

from boto3.dynamodb.types import TypeDeserializer, TypeSerializer
from livecount.core.ledger import Counts, Row, Write
from livecount.core.pages import Target
from livecount.core.report_rows import PERIOD_HOST
from livecount.core.tables import Tables

INDEX = "all"  # the one PageIndex partition: every tracked post and page, by ref
_serializer, _deserializer = TypeSerializer(), TypeDeserializer()


def typed(values: Mapping[str, Any]) -> dict[str, Any]:
    """Python values (str, int, bool) as DynamoDB's typed JSON."""
    return {name: _serializer.serialize(value) for name, value in values.items()}


def plain(item: Mapping[str, Any]) -> dict[str, Any]:
    """An item out of DynamoDB's typed JSON; numbers as int (livecount stores no others)."""
    values = {name: _deserializer.deserialize(value) for name, value in item.items()}
    return {name: int(v) if isinstance(v, Decimal) else v for name, v in values.items()}


class Writes:
    """The idempotent writes of one node: each UpdateItem ADDs its delta, remembers the
    flush sequence number in `flush:<node>`, and is refused once that number was
    applied (the refusal returns the item as it is)."""

    def __init__(self, tables: Tables, flush_attribute: str) -> None:
        self.tables = tables
        self.flush_attribute = flush_attribute

    def views(self, t: Target, write: Write) -> dict[str, Any]:
        adds = {"totalViews": write.delta.total, "uniqueViews": write.delta.unique}
        if t.kind == "page":
            return self._idempotent(self.tables.pages, {"pageName": t.id}, adds, write.seq)
        # Posts also bump `version`, which orders their images for the stream copy. A
        # post keeps the first title it was given (`title` to change it): any client can
        # send a view, so no view may rename a post. Its path is the first one too.
        return self._idempotent(
            self.tables.writer, {"articleId": t.id}, adds | {"version": 1}, write.seq, kept(write)
        )

    def firsts(self, article: str, write: Write) -> dict[str, Any]:
        """UpdateItem of a post's title and path where it has none: what a batched
        UPDATE cannot set only where unset. Bumps `version`, for the reader table."""
        sets = kept(write)
        assigned = ", ".join(f"#s{i} = if_not_exists(#s{i}, :s{i})" for i in range(len(sets)))
        values = {":one": 1} | {f":s{i}": v for i, v in enumerate(sets.values())}
        return {
            "TableName": self.tables.writer,
            "Key": typed({"articleId": article}),
            "UpdateExpression": f"SET {assigned} ADD #v :one",
            "ExpressionAttributeNames": {"#v": "version"}
            | {f"#s{i}": n for i, n in enumerate(sets)},
            "ExpressionAttributeValues": typed(values),
            "ReturnValues": "ALL_NEW",
        }

    def title(self, article: str, title: str, keep: bool = True) -> dict[str, Any]:
        """UpdateItem of a post's title: only where it has none (`keep`: the first title
        stays; a flush's batched count writes cannot say so), or the operator's, which
        replaces it. Bumps `version`, so the stream copies it to the reader table."""
        value = "if_not_exists(#t, :t)" if keep else ":t"
        return {
            "TableName": self.tables.writer,
            "Key": typed({"articleId": article}),
            "UpdateExpression": f"SET #t = {value} ADD #v :one",
            "ExpressionAttributeNames": {"#t": "articleTitle", "#v": "version"},
            "ExpressionAttributeValues": typed({":t": title, ":one": 1}),
            "ReturnValues": "ALL_NEW",
        }

    def row(self, row: Row, write: Write) -> dict[str, Any]:
        if row.table == "referrer":
            return self._idempotent(
                self.tables.referrers,
                {"target": row.target, "host": row.sort},
                {"views": write.delta.total},
                write.seq,
            )
        return self._idempotent(
            self.tables.timeline,
            {"target": row.target, "hour": row.sort},
            {"totalViews": write.delta.total, "uniqueViews": write.delta.unique},
            write.seq,
        )

    def _idempotent(
        self,
        table: str,
        key: dict[str, str],
        adds: dict[str, int],
        seq: int,
        sets: dict[str, str] | None = None,
    ) -> dict[str, Any]:
        """UpdateItem: ADD `adds`, SET `sets` where unset, and remember `seq`, unless this
        node's `seq` was seen."""
        sets = sets or {}
        names = (
            {"#f": self.flush_attribute}
            | {f"#a{i}": n for i, n in enumerate(adds)}
            | {f"#s{i}": n for i, n in enumerate(sets)}
        )
        values = (
            {":seq": seq}
            | {f":a{i}": v for i, v in enumerate(adds.values())}
            | {f":s{i}": v for i, v in enumerate(sets.values())}
        )
        added = ", ".join(f"#a{i} :a{i}" for i in range(len(adds)))
        # Set only where unset: a post's title and path are the first ones.
        assigned = ", ".join(
            ["#f = :seq", *(f"#s{i} = if_not_exists(#s{i}, :s{i})" for i in range(len(sets)))]
        )
        return {
            "TableName": table,
            "Key": typed(key),
            "UpdateExpression": f"ADD {added} SET {assigned}",
            "ConditionExpression": "attribute_not_exists(#f) OR #f < :seq",
            "ExpressionAttributeNames": names,
            "ExpressionAttributeValues": typed(values),
            "ReturnValues": "ALL_NEW",
            "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
        }


class Statement(NamedTuple):
    """One PartiQL statement of a BatchExecuteStatement, and the item it writes."""

    table: str
    key: tuple[str, ...]  # the item's key values, for "is it known to exist"
    request: dict[str, Any]


class Statements:
    """The same idempotent writes as `Writes`, as PartiQL statements for
    BatchExecuteStatement (25 a request). PartiQL has no upsert: `update` changes an
    item that exists, on condition that this node's `seq` is new to it (refused
    without an item when there is none); `insert` creates one that does not exist
    (refused as a DuplicateItem when it does). The store tries the one it expects and
    falls back to the other; sending either twice adds nothing."""

    def __init__(self, tables: Tables, flush_attribute: str) -> None:
        self.tables = tables
        self.flush_attribute = flush_attribute

    @staticmethod
    def usable(flush_attribute: str) -> bool:
        """A node id quoting cannot break (the statements name its attribute)."""
        return not any(c in flush_attribute for c in "\"'\\")

    def views(
        self, t: Target, write: Write, action: Literal["update", "insert"], returning: bool = True
    ) -> Statement:
        """A count's write; an UPDATE `returning` the item as it is after it (an INSERT
        needs not: the item is then the write itself)."""
        counts = {"totalViews": write.delta.total, "uniqueViews": write.delta.unique}
        if t.kind == "page":
            made = self._write(self.tables.pages, {"pageName": t.id}, counts, write.seq, action)
        else:  # PartiQL cannot SET where unset: only a new item takes title and path here
            made = self._write(
                self.tables.writer,
                {"articleId": t.id},
                counts,
                write.seq,
                action,
                kept(write) if action == "insert" else {},
                version=True,
            )
        if returning and action == "update":
            made.request["Statement"] += " RETURNING ALL NEW *"
        return made

    def row(
        self, row: Row, write: Write, action: Literal["update", "insert"], returning: bool = True
    ) -> Statement:
        """A report row's write; an UPDATE `returning` the row after it (for reports)."""
        if row.table == "referrer":
            made = self._write(
                self.tables.referrers,
                {"target": row.target, "host": row.sort},
                {"views": write.delta.total},
                write.seq,
                action,
            )
        else:
            made = self._write(
                self.tables.timeline,
                {"target": row.target, "hour": row.sort},
                {"totalViews": write.delta.total, "uniqueViews": write.delta.unique},
                write.seq,
                action,
            )
        if returning and action == "update":
            made.request["Statement"] += " RETURNING ALL NEW *"
        return made

    def _write(
        self,
        table: str,
        key: dict[str, str],
        adds: dict[str, int],
        seq: int,
        action: Literal["update", "insert"],
        sets: dict[str, str] | None = None,
        version: bool = False,
    ) -> Statement:
        sets = sets or {}
        if action == "insert":
            return self._insert(
                table,
                key,
                adds | {self.flush_attribute: seq} | ({"version": 1} if version else {}) | sets,
            )
        parts = [f'SET "{n}" = "{n}" + ?' for n in adds]
        if version:
            parts.append('SET "version" = "version" + 1')
        parts += [f'SET "{n}" = ?' for n in sets]
        flush = f'"{self.flush_attribute}"'
        parts.append(f"SET {flush} = ?")
        where = " AND ".join(f'"{n}" = ?' for n in key)
        params = [*adds.values(), *sets.values(), seq, *key.values(), seq]
        return Statement(
            table,
            tuple(key.values()),
            {
                "Statement": f'UPDATE "{table}" {" ".join(parts)} WHERE {where} '
                f"AND ({flush} IS MISSING OR {flush} < ?)",
                "Parameters": [_serializer.serialize(p) for p in params],
                "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
            },
        )

    @staticmethod
    def _insert(table: str, key: dict[str, str], values: dict[str, Any]) -> Statement:
        fields = typed(key | values)
        body = ", ".join(f"'{n}': ?" for n in fields)
        return Statement(
            table,
            tuple(key.values()),
            {
                "Statement": f'INSERT INTO "{table}" VALUE {{{body}}}',
                "Parameters": list(fields.values()),
            },
        )


def batch_gets(tables: Tables, targets: list[Target], writer: bool = False) -> list[dict[str, Any]]:
    """BatchGetItem requests (100 keys at most each) for the counts of `targets`: the
    reader table for posts (the writer table, with `writer`), HomeAndProfile for pages."""
    requests = []
    posts = tables.writer if writer else tables.reader
    for start in range(0, len(targets), 100):
        request: dict[str, Any] = {}
        for t in targets[start : start + 100]:
            table, key = (
                (posts, {"articleId": t.id})
                if t.kind == "post"
                else (tables.pages, {"pageName": t.id})
            )
            request.setdefault(table, {"Keys": [], "ConsistentRead": True})["Keys"].append(
                typed(key)
            )
        requests.append(request)
    return requests


def query(
    table: str,
    key: str,
    value: str,
    sort: tuple[str, str | None, str | None] | None = None,
    consistent: bool = False,
) -> dict[str, Any]:
    """A Query of one partition, optionally with the sort key in [low, high] (above
    low, when high is None; up to high, when low is None)."""
    names = {"#k": key}
    values = {":k": value}
    condition = "#k = :k"
    if sort is not None:
        names["#s"] = sort[0]
        if sort[1] is None:
            values[":b"] = sort[2] or ""
            condition += " AND #s <= :b"
        elif sort[2] is None:
            values[":a"] = sort[1]
            condition += " AND #s > :a"
        else:
            values[":a"], values[":b"] = sort[1], sort[2]
            condition += " AND #s BETWEEN :a AND :b"
    return {
        "TableName": table,
        "KeyConditionExpression": condition,
        "ExpressionAttributeNames": names,
        "ExpressionAttributeValues": typed(values),
        "ConsistentRead": consistent,
    }


def kept(write: Write) -> dict[str, str]:
    """The title and path a post's write carries, kept only where the item has none."""
    return {
        name: value
        for name, value in (("articleTitle", write.delta.title), ("path", write.delta.path))
        if value
    }


def scan(table: str, key: str, segment: int, segments: int) -> dict[str, Any]:
    """One of `segments` parallel Scans of a post's or page's table: each item's key,
    counts, title and path, nothing else (an item keeps each node's flush marks too)."""
    return {
        "TableName": table,
        "Segment": segment,
        "TotalSegments": segments,
        "ConsistentRead": True,
        "ProjectionExpression": "#k, totalViews, uniqueViews, articleTitle, #p",
        "ExpressionAttributeNames": {"#k": key, "#p": "path"},
    }


def counts(item: dict[str, Any]) -> Counts:
    return Counts(
        int(item.get("totalViews", {}).get("N", 0)), int(item.get("uniqueViews", {}).get("N", 0))
    )


def row_counts(row: Row, item: dict[str, Any]) -> Counts:
    """A report row's counts: a Referrer row's `views` (no unique count), or as `counts`."""
    if row.table == "referrer":
        return Counts(int(item.get("views", {}).get("N", 0)), 0)
    return counts(item)


def described(item: dict[str, Any]) -> tuple[str, str]:
    """A writer or reader item's title and path ("" for none)."""
    return item.get("articleTitle", {}).get("S", ""), item.get("path", {}).get("S", "")


def referrer_totals(items: list[dict[str, Any]]) -> dict[str, int]:
    """Views per host of a target's all-time Referrer items (a period's, `#…`, left
    out); hosts at zero (what a rename or a delete moved away) left out."""
    return {
        i["host"]["S"]: views
        for i in items
        if (views := int(i.get("views", {}).get("N", 0))) > 0
        and not i["host"]["S"].startswith(PERIOD_HOST)
    }
