"""The live feed: how a count change seen on one node reaches sockets on the others.

Only the node holding a shard's lease sees its stream records, but every node has
sockets watching every article. So the stream reader also writes what changed, a few
times a second, as small items in one partition of the `LiveFeed` table, and every
node reads the items newer than its cursor: one write and one Query per interval,
however many articles and nodes. Counts only grow and merge by maximum, so reading an
item twice (readers re-read a short window to forgive clock skew between writers)
changes nothing. Items expire by TTL after an hour.

Nodes also say, on the same feed, how many of their sockets read each post and page
now (`Said`; see `core.readers`): a whole snapshot every few seconds, which also says
the node is alive, and the targets that moved in between. They ride here because every
node reads the feed every half second anyway: one more small item per change, and no
new table, request or loop. Only numbers travel: no reader's address or id.

Pure: encoding, chunking, the items and cursors; the store does the I/O. Standard
library only (no msgspec), because the Lambda copy writes the feed too and ships as
the core plus boto3.
"""

from __future__ import annotations

import json
import zlib
from collections.abc import Iterable, Iterator, Mapping
from typing import Any, Final, Literal, NamedTuple

from livecount.core.tables import FEED_TTL_ATTRIBUTE

PARTITION: Final = "live"
TTL_SECONDS: Final = 3600
SKEW_WINDOW_US: Final = 5_000_000  # re-read this much behind the cursor
MAX_ITEM_BYTES: Final = 300_000  # DynamoDB's item limit is 400 KB

Change = tuple[str, int, int]  # articleId, totalViews, uniqueViews
Reading = tuple[Literal["post", "page"], str, int]  # a target's kind and id, readers now


class Reset(NamedTuple):
    """Articles whose stored counts went down (`livecount admin` renamed them away or
    deleted them): what nodes believe of them is wrong, and must be read again."""

    articles: list[str]


class Said(NamedTuple):
    """A node's readers: its whole snapshot (`whole`), or the targets that moved."""

    node: str
    whole: bool
    readers: list[Reading]


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


def resets(articles: Iterable[str], table: str, writer: str, now: float,
           ) -> list[dict[str, Any]]:
    """PutItem requests telling every node to read `articles` again: as many to an
    item as fit (an undone import may reset thousands)."""
    payloads: list[bytes] = []
    batch: list[str] = []
    size = 16
    for article in articles:
        cost = len(_encode(article)) + 1
        if batch and size + cost > MAX_ITEM_BYTES:
            payloads.append(_encode({"reset": batch}))
            batch, size = [], 16
        batch.append(article)
        size += cost
    if batch:
        payloads.append(_encode({"reset": batch}))
    stamped = zip(stamps(int(now * 1e6), zlib.crc32(writer.encode()), len(payloads)),
                  payloads, strict=True)
    expires = int(now) + TTL_SECONDS
    return [{"TableName": table, "Item": item(at, payload, expires)} for at, payload in stamped]


def decode(payload: str | bytes) -> list[Change]:
    """The changes of one item; [] for anything that is not a list of them."""
    value = read(payload)
    return value if isinstance(value, list) else []


def read(payload: str | bytes) -> list[Change] | Said | Reset:
    """What one item says: count changes, a node's readers, or articles to read again;
    [] for anything else (an item no node could have written says nothing)."""
    try:
        value = json.loads(payload)
    except ValueError:
        return []
    if isinstance(value, dict):
        if isinstance(reset := value.get("reset"), list):
            return Reset([a for a in reset if isinstance(a, str)])
        return _said(value) or []
    if not isinstance(value, list) or not all(_is_change(c) for c in value):
        return []
    return [(c[0], c[1], c[2]) for c in value]


def _is_change(value: Any) -> bool:
    return (isinstance(value, list) and len(value) == 3 and isinstance(value[0], str)
            and all(type(n) is int for n in value[1:]))


def _said(value: dict[str, Any]) -> Said | None:
    node, whole, readers = value.get("node"), value.get("whole"), value.get("readers")
    if not isinstance(node, str) or type(whole) is not bool or not isinstance(readers, list) \
            or not all(_is_reading(r) for r in readers):
        return None
    return Said(node, whole, [(r[0], r[1], r[2]) for r in readers])


def _is_reading(value: Any) -> bool:
    return (isinstance(value, list) and len(value) == 3 and value[0] in ("post", "page")
            and isinstance(value[1], str) and type(value[2]) is int and value[2] >= 0)


def says(node: str, readers: Iterable[Reading], whole: bool) -> list[bytes]:
    """`node`'s readers as payloads, each small enough for one item. A whole snapshot
    that needs several says so in its first: the others add to it. A whole snapshot
    of nothing is one payload still (it says the node is alive)."""
    def payload(batch: list[Reading], first: bool) -> bytes:
        return _encode({"node": node, "whole": whole and first, "readers": batch})

    out: list[bytes] = []
    batch: list[Reading] = []
    size = len(payload([], True))
    for entry in readers:
        cost = len(_encode(entry)) + 1
        if batch and size + cost > MAX_ITEM_BYTES:
            out.append(payload(batch, not out))
            batch, size = [], len(payload([], False))
        batch.append(entry)
        size += cost
    if batch or (whole and not out):
        out.append(payload(batch, not out))
    return out


def stamps(now_us: int, node_salt: int, count: int) -> list[int]:
    """Sort keys for `count` items written now by one node: time-ordered, and unique
    across nodes writing in the same microsecond."""
    return [(now_us + i) * 1000 + node_salt % 1000 for i in range(count)]


def next_cursor(cursor: int, seen: Iterable[int]) -> int:
    return max([cursor, *seen])


def window_start(cursor: int) -> int:
    return max(0, cursor - SKEW_WINDOW_US * 1000)
