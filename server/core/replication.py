"""The writer → reader copy rule and the shard lineage rule, as pure functions.

Every writer update bumps a `version` number, and the reader accepts an image only
if it is newer than what it holds. That makes the copy idempotent (a replayed record
is refused) and order-proof (an old image never overwrites a newer one), which is
what lets the stream consumer be at-least-once and still exact.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

Item = dict[str, Any]  # DynamoDB's typed JSON: {"articleId": {"S": "x"}, ...}

KEY = "articleId"
VERSION = "version"


@dataclass(frozen=True, slots=True)
class Copy:
    """One conditional write to the reader table."""

    action: Literal["put", "delete"]
    key: Item
    version: int
    item: Item | None = None

    def request(self, table: str) -> dict[str, Any]:
        """Keyword arguments for PutItem or DeleteItem with the version condition."""
        if self.action == "put":
            return {
                "TableName": table,
                "Item": self.item,
                "ConditionExpression": "attribute_not_exists(#k) OR #v < :v",
                "ExpressionAttributeNames": {"#k": KEY, "#v": VERSION},
                "ExpressionAttributeValues": {":v": {"N": str(self.version)}},
            }
        return {
            "TableName": table,
            "Key": self.key,
            "ConditionExpression": "attribute_exists(#k) AND #v <= :v",
            "ExpressionAttributeNames": {"#k": KEY, "#v": VERSION},
            "ExpressionAttributeValues": {":v": {"N": str(self.version)}},
        }


def copy_for(record: Mapping[str, Any]) -> Copy | None:
    """The reader write a stream record calls for, or None if it calls for none."""
    change = record.get("dynamodb", {})
    event = record.get("eventName")
    key = change.get("Keys")
    if not key or KEY not in key:
        return None
    if event in ("INSERT", "MODIFY"):
        image = change.get("NewImage")
        if not image or VERSION not in image:
            return None  # written by something that does not keep versions
        return Copy("put", key, int(image[VERSION]["N"]), dict(image))
    if event == "REMOVE":
        old = change.get("OldImage")
        if not old or VERSION not in old:
            return None
        return Copy("delete", key, int(old[VERSION]["N"]))
    return None


def counts_of(image: Mapping[str, Any]) -> tuple[str, int, int] | None:
    """(articleId, totalViews, uniqueViews) of a writer/reader image, for live pushes."""
    try:
        return (
            image[KEY]["S"],
            int(image.get("totalViews", {"N": "0"})["N"]),
            int(image.get("uniqueViews", {"N": "0"})["N"]),
        )
    except (KeyError, TypeError, ValueError):
        return None


@dataclass(frozen=True, slots=True)
class Shard:
    id: str
    parent: str | None


def readable(shards: Iterable[Shard], finished: set[str]) -> list[Shard]:
    """Shards to read now: not finished, and whose parent is finished or gone.

    A child holds the updates that came after its parent's, so reading it first
    could copy a newer image before an older one. The version rule would refuse the
    older one anyway; keeping lineage order also keeps checkpoints simple and pushes
    in order. A parent missing from the listing has aged out of the stream.
    """
    shards = list(shards)
    listed = {s.id for s in shards}
    return [
        s
        for s in shards
        if s.id not in finished
        and (s.parent is None or s.parent in finished or s.parent not in listed)
    ]
