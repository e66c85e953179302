"""Rename and delete as moves of counts between items, sans I/O.

A rename moves each count of a post or a page onto the new id of the same kind: its
count item (the post's `PostCountWriter` item, the page's `HomeAndProfile` item), every
Timeline bucket and rollup and every Referrer row of `post#<old>` or `page#<old>`. A
delete moves them out of the site's rows and nowhere else. Each move of one item is one
DynamoDB transaction: take from the source what was read, give it to the destination,
on condition that the source's `admin` counter is still the one read (and bump it).

Why that is exactly once, with servers counting meanwhile and a crash anywhere:

- Servers only ever ADD to the source, and ADDs commute, so the views that land
  between the read and the transaction stay on the source for the next pass.
- Nothing else changes `admin`, so two runs of the tool (a resumed one and the one
  it replaces, or two operators) cannot both apply a move of the same read: the
  second finds the counter moved and reads again.
- A transaction either applies whole or not at all, and its retry by botocore carries
  the same idempotency token; after a crash the next run reads the items afresh and
  moves only what is still there.

What stays of a source is an item with zero counts: its `flush:<node>` attributes
are what refuses a node's resent write, and a resent write must not count twice, so
the item is kept (`purge` removes it, for when no node has a write in doubt).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Final, Literal

from livecount.core import pages
from livecount.core.ledger import SITE
from livecount.core.pages import Target
from livecount.core.report_rows import buckets_of
from livecount.core.tables import Tables

ADMIN: Final = "admin"  # attribute: how many moves changed the item, the optimistic lock
OPERATIONS: Final = "admin"  # the PageIndex partition of operation records
# `count`: the post's or page's own item
Kind = Literal["count", "timeline", "rollup", "referrer"]
Op = Literal["rename", "delete"]
Item = dict[str, Any]  # DynamoDB's typed JSON

# The counters of each kind of item, in the order `Source.amounts` holds them.
AMOUNTS: Final[Mapping[Kind, tuple[str, ...]]] = {
    "count": ("totalViews", "uniqueViews"),
    "timeline": ("totalViews", "uniqueViews"),
    "rollup": ("totalViews", "uniqueViews"),
    "referrer": ("views",),
}
# Where a source's `sort` is: an hour or a host; a rollup's is its bucket (the partition:
# a rollup row is keyed by bucket, then ref).
_SORT: Final[Mapping[Kind, str]] = {"timeline": "hour", "referrer": "host", "rollup": "target"}


@dataclass(frozen=True, slots=True)
class Source:
    """One item of the post or page as read: what a move takes from it."""

    kind: Kind
    sort: str  # the hour, the host or the bucket of a row; "" for the count item
    amounts: tuple[int, ...]
    admin: int  # the item's `admin` counter as read; 0 when it has none
    title: str = ""

    @classmethod
    def of(cls, kind: Kind, item: Item) -> Source:
        return cls(
            kind,
            item[_SORT[kind]]["S"] if kind != "count" else "",
            tuple(int(item.get(name, {}).get("N", 0)) for name in AMOUNTS[kind]),
            int(item.get(ADMIN, {}).get("N", 0)),
            item.get("articleTitle", {}).get("S", ""),
        )

    @property
    def empty(self) -> bool:
        """Nothing to move: zero counts and, for a post's count, no title left to clear."""
        return not any(self.amounts) and not self.title

    @property
    def total(self) -> int:
        return self.amounts[0]


@dataclass(frozen=True, slots=True)
class Plan:
    """One rename (`to` set: the new id, of the same kind) or delete (`to` None) of the
    post or page `id`."""

    id: str
    to: str | None = None
    kind: pages.Kind = "post"

    def __post_init__(self) -> None:
        if self.to == self.id:
            raise ValueError(f"{self.id!r} would be renamed to itself")

    @property
    def op(self) -> Op:
        return "delete" if self.to is None else "rename"

    @property
    def target(self) -> Target:
        return Target(self.kind, self.id)

    @property
    def destination(self) -> Target | None:
        """The new id's target, for a rename."""
        return None if self.to is None else Target(self.kind, self.to)

    @property
    def ref(self) -> str:
        return self.target.ref

    def describe(self) -> str:
        what = "" if self.kind == "post" else "the page "
        return (
            f"delete of {what}{self.id!r}"
            if self.to is None
            else f"rename of {what}{self.id!r} to {self.to!r}"
        )

    def moves(self, sources: Iterable[Source]) -> list[Source]:
        """What still has something to move, rows first and the count item last, so
        that a run stopped half way leaves the live count where it was. Rollups move
        with their hours, in the hour's transaction, never on their own: read apart,
        an hour and its rollups may be seen between a node's writes of the two."""
        return sorted(
            (s for s in sources if not s.empty and s.kind != "rollup"),
            key=lambda s: s.kind == "count",
        )

    def transaction(self, source: Source, tables: Tables) -> list[dict[str, Any]]:
        """The TransactItems of one move: the source gives what was read, on condition
        that its `admin` counter is unchanged; the destination (the new id's item, or
        for a delete the site's row) takes it."""
        names = AMOUNTS[source.kind]
        taken = {n: -v for n, v in zip(names, source.amounts, strict=True) if v}
        versioned = source.kind == "count" and self.kind == "post"
        items = [
            {
                "Update": _update(
                    self._table(source, tables),
                    self._key(source, self.id),
                    taken,
                    version=versioned,
                    admin=source.admin,
                    remove_title=bool(source.title),
                )
            }
        ]
        if self.to is not None:
            given = {n: -v for n, v in taken.items()}
            if given or source.title:
                items.append(
                    {
                        "Update": _update(
                            self._table(source, tables),
                            self._key(source, self.to),
                            given,
                            version=versioned,
                            title=source.title,
                        )
                    }
                )
        elif source.kind != "count" and taken:
            items.append(
                {"Update": _update(self._table(source, tables), self._key(source, None), taken)}
            )
        if source.kind == "timeline" and taken:  # the hour's rollups move with it
            given = {n: -v for n, v in taken.items()}
            for bucket in buckets_of(source.sort):
                rollup = Source("rollup", bucket, source.amounts, 0)
                items.append(
                    {"Update": _update(tables.timeline, self._key(rollup, self.id), taken)}
                )
                items.append(
                    {
                        "Update": _update(
                            tables.timeline,
                            self._key(rollup, self.to),
                            taken if self.to is None else given,
                        )
                    }
                )
        return items

    def purge(self, source: Source, tables: Tables) -> dict[str, Any]:
        """DeleteItem of a source left at zero, unless something counted on it since."""
        names = AMOUNTS[source.kind]
        zero = " AND ".join(
            f"(attribute_not_exists(#a{i}) OR #a{i} = :zero)" for i in range(len(names))
        )
        condition, values = _admin_condition(source.admin)
        return {
            "TableName": self._table(source, tables),
            "Key": self._key(source, self.id),
            "ConditionExpression": f"{zero} AND {condition}",
            "ExpressionAttributeNames": {f"#a{i}": n for i, n in enumerate(names)}
            | {"#adm": ADMIN},
            "ExpressionAttributeValues": {":zero": {"N": "0"}} | values,
        }

    def _table(self, source: Source, tables: Tables) -> str:
        if source.kind == "count":
            return count_table(tables, self.target)
        return tables.referrers if source.kind == "referrer" else tables.timeline

    def _key(self, source: Source, id_: str | None) -> Item:
        """The source's key for `id_`, or the site's row when `id_` is None."""
        if source.kind == "count":
            assert id_ is not None
            return count_key(Target(self.kind, id_))
        ref = Target(self.kind, id_).ref if id_ is not None else SITE
        if source.kind == "rollup":
            return {"target": {"S": source.sort}, "hour": {"S": ref}}
        return {"target": {"S": ref}, _SORT[source.kind]: {"S": source.sort}}


def count_table(tables: Tables, target: Target) -> str:
    """Where a target's count item is: a post's in `PostCountWriter`, a page's in
    `HomeAndProfile`."""
    return tables.writer if target.kind == "post" else tables.pages


def count_key(target: Target) -> Item:
    """The key of a target's count item (a post's reader item has the same)."""
    if target.kind == "post":
        return {"articleId": {"S": target.id}}
    return {"pageName": {"S": target.id}}


def _admin_condition(seen: int) -> tuple[str, dict[str, Any]]:
    if seen == 0:
        return "attribute_not_exists(#adm)", {}
    return "#adm = :seen", {":seen": {"N": str(seen)}}


def _update(
    table: str,
    key: Item,
    adds: Mapping[str, int],
    *,
    version: bool = False,
    admin: int | None = None,
    title: str = "",
    remove_title: bool = False,
) -> dict[str, Any]:
    """One Update of a transaction. With `admin` (the counter as read) it is the source:
    conditional on that counter, which it bumps."""
    names: dict[str, str] = {}
    values: dict[str, Any] = {}
    parts = []
    for i, (name, amount) in enumerate(adds.items()):
        names[f"#a{i}"] = name
        values[f":a{i}"] = {"N": str(amount)}
        parts.append(f"#a{i} :a{i}")
    if version:
        names["#v"], values[":one"] = "version", {"N": "1"}
        parts.append("#v :one")
    update: dict[str, Any] = {"TableName": table, "Key": key}
    if admin is not None:
        names["#adm"], values[":one"] = ADMIN, {"N": "1"}
        parts.append("#adm :one")
        condition, seen = _admin_condition(admin)
        update["ConditionExpression"] = condition
        values |= seen
    expression = f"ADD {', '.join(parts)}" if parts else ""
    if title:
        names["#t"], values[":t"] = "articleTitle", {"S": title}
        expression += " SET #t = if_not_exists(#t, :t)"
    if remove_title:
        names["#t"] = "articleTitle"
        expression += " REMOVE #t"
    update |= {"UpdateExpression": expression.strip(), "ExpressionAttributeNames": names}
    if values:
        update["ExpressionAttributeValues"] = values
    return update


# -- operation records: what is under way, so that a run can be resumed ---------------------
@dataclass(frozen=True, slots=True)
class Operation:
    """An operation on a post or page, as its record in the PageIndex partition `admin`
    says: one at a time per id, `running` until a run completes it."""

    plan: Plan
    state: Literal["running", "done"]
    started: str  # ISO 8601, UTC

    def item(self) -> Item:
        item: Item = {
            "index": {"S": OPERATIONS},
            "target": {"S": self.plan.ref},
            "op": {"S": self.plan.op},
            "state": {"S": self.state},
            "started": {"S": self.started},
        }
        if self.plan.to is not None:
            item["to"] = {"S": self.plan.to}
        return item

    @classmethod
    def from_item(cls, item: Item) -> Operation | None:
        target = Target.from_ref(item.get("target", {}).get("S", ""))
        state = item.get("state", {}).get("S")
        to = item.get("to", {}).get("S")
        if target is None or state not in ("running", "done") or to == target.id:
            return None
        return cls(
            Plan(target.id, to, target.kind),
            "running" if state == "running" else "done",
            item.get("started", {}).get("S", ""),
        )

    def crosses(self, plan: Plan) -> bool:
        """Whether this operation, running, moves `plan`'s destination away or moves
        into its source: run together, the two could swap ids (two renames into one
        destination merely add: they may run)."""
        if self.state != "running" or self.plan.target == plan.target:
            return False
        return self.plan.target == plan.destination or self.plan.destination == plan.target


def start_request(table: str, operation: Operation) -> dict[str, Any]:
    """PutItem of a running operation: refused while another one on the id runs (the
    same one may be started again: that is how a run resumes)."""
    names = {"#t": "target", "#s": "state", "#op": "op", "#to": "to"}
    values: dict[str, Any] = {":done": {"S": "done"}, ":op": {"S": operation.plan.op}}
    same = "#op = :op AND "
    if operation.plan.to is None:
        same += "attribute_not_exists(#to)"
    else:
        same += "#to = :to"
        values[":to"] = {"S": operation.plan.to}
    return {
        "TableName": table,
        "Item": operation.item(),
        "ConditionExpression": f"attribute_not_exists(#t) OR #s = :done OR ({same})",
        "ExpressionAttributeNames": names,
        "ExpressionAttributeValues": values,
    }


def operation_key(target: Target) -> Item:
    return {"index": {"S": OPERATIONS}, "target": {"S": target.ref}}


def records_query(table: str, *, running: bool = False, refs: str = "") -> dict[str, Any]:
    """A Query of the operation records (the `admin` partition): those `running` only
    (DynamoDB leaves the others out, reading them still), or those whose target ref
    starts with `refs` (`post#loadtest-`)."""
    condition = "#i = :i"
    names, values = {"#i": "index"}, {":i": {"S": OPERATIONS}}
    if refs:
        condition += " AND begins_with(#t, :t)"
        names["#t"], values[":t"] = "target", {"S": refs}
    request = {
        "TableName": table,
        "KeyConditionExpression": condition,
        "ExpressionAttributeNames": names,
        "ExpressionAttributeValues": values,
        "ConsistentRead": True,
    }
    if running:
        names["#s"], values[":running"] = "state", {"S": "running"}
        request["FilterExpression"] = "#s = :running"
    return request
