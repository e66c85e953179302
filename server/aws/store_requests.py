"""The store's requests and the items they return, in DynamoDB's typed JSON.

Pure: the store sends these; keeping them apart keeps the store class about I/O.
"""

from __future__ import annotations

from typing import Any

from livecount.core.ledger import Counts, Row, Write
from livecount.core.pages import Target
from livecount.core.tables import Tables

INDEX = "all"  # the one PageIndex partition: every tracked post and page, by ref


class Writes:
    """The idempotent writes of one node: each ADD remembers the flush sequence number
    in `flush:<node>` and is refused once that number was applied."""

    def __init__(self, tables: Tables, flush_attribute: str) -> None:
        self.tables = tables
        self.flush_attribute = flush_attribute

    def views(self, t: Target, write: Write) -> dict[str, Any]:
        adds = {"totalViews": write.delta.total, "uniqueViews": write.delta.unique}
        if t.kind == "page":
            return self._idempotent(self.tables.pages, {"pageName": {"S": t.id}}, adds,
                                    write.seq)
        # Posts also bump `version`, which orders their images for the stream copy.
        title = {"articleTitle": write.delta.title} if write.delta.title else None
        return self._idempotent(self.tables.writer, {"articleId": {"S": t.id}},
                                adds | {"version": 1}, write.seq, title)

    def row(self, row: Row, write: Write) -> dict[str, Any]:
        if row.table == "referrer":
            return self._idempotent(
                self.tables.referrers, {"target": {"S": row.target}, "host": {"S": row.sort}},
                {"views": write.delta.total}, write.seq)
        return self._idempotent(
            self.tables.timeline, {"target": {"S": row.target}, "hour": {"S": row.sort}},
            {"totalViews": write.delta.total, "uniqueViews": write.delta.unique}, write.seq)

    def index(self, t: Target) -> dict[str, Any]:
        """PutItem of a target into the page index: the same item every time."""
        return {"TableName": self.tables.index,
                "Item": {"index": {"S": INDEX}, "target": {"S": t.ref}}}

    def _idempotent(self, table: str, key: dict[str, Any], adds: dict[str, int], seq: int,
                    sets: dict[str, str] | None = None) -> dict[str, Any]:
        """UpdateItem: ADD `adds` and remember `seq`, unless this node's `seq` was seen."""
        names = {"#f": self.flush_attribute}
        values: dict[str, Any] = {":seq": {"N": str(seq)}}
        parts = []
        for i, (name, amount) in enumerate(adds.items()):
            names[f"#a{i}"] = name
            values[f":a{i}"] = {"N": str(amount)}
            parts.append(f"#a{i} :a{i}")
        assignments = ["#f = :seq"]
        for i, (name, text) in enumerate((sets or {}).items()):
            names[f"#s{i}"] = name
            values[f":s{i}"] = {"S": text}
            assignments.append(f"#s{i} = :s{i}")
        return {
            "TableName": table, "Key": key,
            "UpdateExpression": f"ADD {', '.join(parts)} SET {', '.join(assignments)}",
            "ConditionExpression": "attribute_not_exists(#f) OR #f < :seq",
            "ExpressionAttributeNames": names, "ExpressionAttributeValues": values,
            "ReturnValues": "ALL_NEW", "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
        }


def batch_gets(tables: Tables, targets: list[Target]) -> list[dict[str, Any]]:
    """BatchGetItem requests (100 keys at most each) for the counts of `targets`: the
    reader table for posts, HomeAndProfile for pages."""
    requests = []
    for start in range(0, len(targets), 100):
        request: dict[str, Any] = {}
        for t in targets[start:start + 100]:
            table, key = (tables.reader, {"articleId": {"S": t.id}}) if t.kind == "post" \
                else (tables.pages, {"pageName": {"S": t.id}})
            request.setdefault(table, {"Keys": [], "ConsistentRead": True})["Keys"].append(key)
        requests.append(request)
    return requests


def query(table: str, key: str, value: str, sort: tuple[str, str, str | None] | None = None,
          consistent: bool = False) -> dict[str, Any]:
    """A Query of one partition, optionally with the sort key in [low, high] (or above
    low, when high is None)."""
    names = {"#k": key}
    values: dict[str, Any] = {":k": {"S": value}}
    condition = "#k = :k"
    if sort is not None:
        names["#s"] = sort[0]
        values[":a"] = {"S": sort[1]}
        if sort[2] is None:
            condition += " AND #s > :a"
        else:
            values[":b"] = {"S": sort[2]}
            condition += " AND #s BETWEEN :a AND :b"
    return {"TableName": table, "KeyConditionExpression": condition,
            "ExpressionAttributeNames": names, "ExpressionAttributeValues": values,
            "ConsistentRead": consistent}


def counts(item: dict[str, Any]) -> Counts:
    return Counts(int(item.get("totalViews", {}).get("N", 0)),
                  int(item.get("uniqueViews", {}).get("N", 0)))
