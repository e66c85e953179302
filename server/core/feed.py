"""The live feed: how a count change seen on one node reaches sockets on the others.

Only the node holding a shard's lease sees its stream records, but every node has
sockets watching every article. So the stream reader also writes what changed, a few
times a second, as small items in one partition of the `LiveFeed` table, and every
node reads the items newer than its cursor: one write and one Query per interval,
however many articles and nodes. Counts only grow and merge by maximum, so reading an
item twice (readers re-read a short window to forgive clock skew between writers)
changes nothing. Items expire by TTL after an hour.

Pure: encoding, chunking and cursors. The node does the I/O.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from typing import Final

import msgspec

PARTITION: Final = "live"
TTL_SECONDS: Final = 3600
SKEW_WINDOW_US: Final = 5_000_000  # re-read this much behind the cursor
MAX_ITEM_BYTES: Final = 300_000  # DynamoDB's item limit is 400 KB

Change = tuple[str, int, int]  # articleId, totalViews, uniqueViews
_encoder = msgspec.json.Encoder()
_decoder = msgspec.json.Decoder(list[tuple[str, int, int]])


def chunks(changes: Mapping[str, tuple[int, int]]) -> Iterator[bytes]:
    """The changes as JSON arrays, each small enough for one item."""
    batch: list[Change] = []
    size = 2
    for article, (total, unique) in changes.items():
        entry = (article, total, unique)
        cost = len(_encoder.encode(entry)) + 1
        if batch and size + cost > MAX_ITEM_BYTES:
            yield _encoder.encode(batch)
            batch, size = [], 2
        batch.append(entry)
        size += cost
    if batch:
        yield _encoder.encode(batch)


def item(at: int, payload: bytes, expires: int) -> dict[str, dict[str, str]]:
    """The DynamoDB item for one chunk: the same from a node and from the Lambda."""
    return {"feed": {"S": PARTITION}, "at": {"S": f"{at:024d}"},
            "changes": {"S": payload.decode()}, "expires": {"N": str(expires)}}


def decode(payload: str | bytes) -> list[Change]:
    try:
        return _decoder.decode(payload)
    except msgspec.ValidationError:
        return []


def stamps(now_us: int, node_salt: int, count: int) -> list[int]:
    """Sort keys for `count` items written now by one node: time-ordered, and unique
    across nodes writing in the same microsecond."""
    return [(now_us + i) * 1000 + node_salt % 1000 for i in range(count)]


def next_cursor(cursor: int, seen: Iterable[int]) -> int:
    return max([cursor, *seen])


def window_start(cursor: int) -> int:
    return max(0, cursor - SKEW_WINDOW_US * 1000)
