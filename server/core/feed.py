"""The live feed: how a count change seen on one node reaches sockets on the others.

Only the node holding a shard's lease sees its stream records, but every node has
sockets watching every article. So the stream reader also writes what changed, a few
times a second, as small items in one partition of the `LiveFeed` table, and every
node reads the items newer than its cursor: one write and one Query per interval,
however many articles and nodes. Counts only grow and merge by maximum, so reading an
item twice (readers re-read a short window to forgive clock skew between writers)
changes nothing. Items expire by TTL after an hour.

Pure: encoding, chunking, the items and cursors; the store does the I/O. Standard
library only (no msgspec), because the Lambda copy writes the feed too and ships as
the core plus boto3.
"""

from __future__ import annotations

import json
import zlib
from collections.abc import Iterable, Iterator, Mapping
from typing import Any, Final

from livecount.core.tables import FEED_TTL_ATTRIBUTE

PARTITION: Final = "live"
TTL_SECONDS: Final = 3600
SKEW_WINDOW_US: Final = 5_000_000  # re-read this much behind the cursor
MAX_ITEM_BYTES: Final = 300_000  # DynamoDB's item limit is 400 KB

Change = tuple[str, int, int]  # articleId, totalViews, uniqueViews


def _encode(value: Any) -> bytes:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode()


def chunks(changes: Mapping[str, tuple[int, int]]) -> Iterator[bytes]:
    """The changes as JSON arrays, each small enough for one item."""
    batch: list[Change] = []
    size = 2
    for article, (total, unique) in changes.items():
        entry = (article, total, unique)
        cost = len(_encode(entry)) + 1
        if batch and size + cost > MAX_ITEM_BYTES:
            yield _encode(batch)
            batch, size = [], 2
        batch.append(entry)
        size += cost
    if batch:
        yield _encode(batch)


def item(at: int, payload: bytes, expires: int) -> dict[str, dict[str, str]]:
    """The DynamoDB item for one chunk: the same from a node and from the Lambda."""
    return {"feed": {"S": PARTITION}, "at": {"S": f"{at:024d}"},
            "changes": {"S": payload.decode()}, FEED_TTL_ATTRIBUTE: {"N": str(expires)}}


def puts(changes: Mapping[str, tuple[int, int]], table: str, writer: str, now: float,
         ) -> list[dict[str, Any]]:
    """PutItem requests that share `changes` with every node: the feed write of the
    node's stream consumer and of the Lambda alike. `writer` names who writes (a node
    id, a Lambda request id), so two writers in the same microsecond do not collide."""
    payloads = list(chunks(changes))
    stamped = zip(stamps(int(now * 1e6), zlib.crc32(writer.encode()), len(payloads)),
                  payloads, strict=True)
    expires = int(now) + TTL_SECONDS
    return [{"TableName": table, "Item": item(at, payload, expires)} for at, payload in stamped]


def decode(payload: str | bytes) -> list[Change]:
    """The changes of one item; [] for anything that is not a list of them."""
    try:
        value = json.loads(payload)
    except ValueError:
        return []
    if not isinstance(value, list) or not all(_is_change(c) for c in value):
        return []
    return [(c[0], c[1], c[2]) for c in value]


def _is_change(value: Any) -> bool:
    return (isinstance(value, list) and len(value) == 3 and isinstance(value[0], str)
            and all(type(n) is int for n in value[1:]))


def stamps(now_us: int, node_salt: int, count: int) -> list[int]:
    """Sort keys for `count` items written now by one node: time-ordered, and unique
    across nodes writing in the same microsecond."""
    return [(now_us + i) * 1000 + node_salt % 1000 for i in range(count)]


def next_cursor(cursor: int, seen: Iterable[int]) -> int:
    return max([cursor, *seen])


def window_start(cursor: int) -> int:
    return max(0, cursor - SKEW_WINDOW_US * 1000)
