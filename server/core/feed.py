"""The live feed: how a count change seen on one node reaches sockets on the others.

Only the node holding a shard's lease sees its stream records, but every node has
sockets watching every article. So the stream reader also writes what changed, a few
times a second, as small items in one partition of the `LiveFeed` table, and every
node reads the items newer than its cursor: one write and one Query per interval,
however many articles and nodes. Counts only grow and merge by maximum, so reading an
item twice (readers re-read a short window to forgive clock skew between writers)
changes nothing. Items expire by TTL after an hour.

Nodes also share what their flushes' answers said that no stream carries (`Stored`):
their pages' counts (HomeAndProfile has no stream) and their report rows' values, so
that every node's reports (`core/catalog.py`, `core/row_cache.py`) follow every
node's writes. Both merge by maximum as the counts do.

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
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any, Final, Literal, NamedTuple

from livecount.core.tables import FEED_TTL_ATTRIBUTE

PARTITION: Final = "live"
TTL_SECONDS: Final = 3600
SKEW_WINDOW_US: Final = 5_000_000  # re-read this much behind the cursor
MAX_ITEM_BYTES: Final = 300_000  # DynamoDB's item limit is 400 KB

Change = tuple[str, int, int]  # articleId, totalViews, uniqueViews
Reading = tuple[Literal["post", "page"], str, int]  # a target's kind and id, readers now


class Reset(NamedTuple):
    """Posts and pages whose stored counts went down (`livecount admin` renamed them
    away or deleted them, an import was undone), or that an import changed: what nodes
    believe of them is wrong, and must be read again; so must every report row they
    cached, when `reports` (rows went down, or changed in the past)."""

    targets: list[tuple[Literal["post", "page"], str]]
    reports: bool = True


StoredRow = tuple[str, str, str, int, int]  # table ("timeline"|"referrer"), partition, sort


class Stored(NamedTuple):
    """What a node's flush stored that the stream does not carry: pages' counts and
    report rows' values, as the store answered."""

    pages: list[Change]
    rows: list[StoredRow]


class Sync(NamedTuple):
    """A backup asks every node to store what it acknowledged before now, and to say
    so (`core/syncs.py`)."""

    request: str


class Synced(NamedTuple):
    """A node's answer to a sync: `stored`, everything it held then is in the store
    (False: it could not store it all in time)."""

    request: str
    node: str
    stored: bool


class Said(NamedTuple):
    """A node's readers: its whole snapshot (`whole`), or the targets that moved."""

    node: str
    whole: bool
    readers: list[Reading]


def _encode(value: Any) -> bytes:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode()


def _batched(
    entries: Iterable[Any], wrap: Callable[[list[Any], bool], Any], always: bool = False
) -> list[bytes]:
    """`entries` in payloads `wrap(batch, first)`, each small enough for one item; one
    payload of none if `always`."""
    out: list[bytes] = []
    batch: list[Any] = []
    size = len(_encode(wrap([], True)))
    for entry in entries:
        cost = len(_encode(entry)) + 1
        if batch and size + cost > MAX_ITEM_BYTES:
            out.append(_encode(wrap(batch, not out)))
            batch, size = [], len(_encode(wrap([], False)))
        batch.append(entry)
        size += cost
    if batch or (always and not out):
        out.append(_encode(wrap(batch, not out)))
    return out


def chunks(changes: Mapping[str, tuple[int, int]]) -> list[bytes]:
    """The changes as JSON arrays, each small enough for one item."""
    return _batched(((a, t, u) for a, (t, u) in changes.items()), lambda batch, _: batch)


def item(at: int, payload: bytes, expires: int) -> dict[str, dict[str, str]]:
    """The DynamoDB item for one chunk: the same from a node and from the Lambda."""
    return {
        "feed": {"S": PARTITION},
        "at": {"S": f"{at:024d}"},
        "changes": {"S": payload.decode()},
        FEED_TTL_ATTRIBUTE: {"N": str(expires)},
    }


def puts(
    changes: Mapping[str, tuple[int, int]],
    table: str,
    writer: str,
    now: float,
) -> list[dict[str, Any]]:
    """PutItem requests that share `changes` with every node: the feed write of the
    node's stream consumer and of the Lambda alike. `writer` names who writes (a node
    id, a Lambda request id), so two writers in the same microsecond do not collide."""
    return stamped(chunks(changes), table, writer, now)


def resets(
    targets: Iterable[tuple[str, str]], table: str, writer: str, now: float, reports: bool = True
) -> list[dict[str, Any]]:
    """PutItem requests telling every node to read `targets` (kind, id) again: as many
    to an item as fit (an undone import may reset thousands); with `reports`, their
    report rows too (one item, when there is no target)."""
    return stamped(reset_payloads(targets, reports), table, writer, now)


def reset_payloads(targets: Iterable[tuple[str, str]], reports: bool = False) -> list[bytes]:
    """Resets of `targets` (kind, id), as many to a payload as fit in one item; with
    `reports`, of their report rows too (one payload, when there is no target)."""
    return _batched(targets, lambda batch, _: {"reset": batch, "reports": reports}, always=reports)


def stamped(
    payloads: list[bytes],
    table: str,
    writer: str,
    now: float,
) -> list[dict[str, Any]]:
    """PutItem requests of `payloads`, stamped in this order: the stream copy ends a
    batch's changes with the resets of counts that went down."""
    at = stamps(int(now * 1e6), zlib.crc32(writer.encode()), len(payloads))
    expires = int(now) + TTL_SECONDS
    return [
        {"TableName": table, "Item": item(stamp, payload, expires)}
        for stamp, payload in zip(at, payloads, strict=True)
    ]


def stored(pages: Mapping[str, tuple[int, int]], rows: Iterable[StoredRow]) -> Iterator[bytes]:
    """`Stored` payloads, each small enough for one item."""
    entries: list[tuple[str, Any]] = [("pages", [n, t, u]) for n, (t, u) in pages.items()]
    entries += [("rows", list(r)) for r in rows]
    batch: dict[str, list[Any]] = {"pages": [], "rows": []}
    size = 40
    for kind, entry in entries:
        cost = len(_encode(entry)) + 1
        if size + cost > MAX_ITEM_BYTES and (batch["pages"] or batch["rows"]):
            yield _encode({"stored": batch})
            batch, size = {"pages": [], "rows": []}, 40
        batch[kind].append(entry)
        size += cost
    if batch["pages"] or batch["rows"]:
        yield _encode({"stored": batch})


class Resets:
    """What the resets on the feed took back. A node reads the feed's window again and
    again; counts and stored rows older than a reset of theirs (a deleted post's hours,
    say) must not be learned again, for good."""

    def __init__(self) -> None:
        self.done: set[int] = set()  # stamps of resets done
        self.at: dict[tuple[str, str], int] = {}  # per post or page, its last reset
        self.rows_at = -1  # the last reset of every report row

    def saw(self, at: int, said: Reset) -> bool:
        """Note a reset stamped `at`; True the first time it is seen."""
        for ref in said.targets:
            self.at[ref] = max(at, self.at.get(ref, at))
        if said.reports:
            self.rows_at = max(at, self.rows_at)
        first = at not in self.done
        self.done.add(at)
        return first

    def newer(self, at: int, kind: str, id_: str) -> bool:
        return at > self.at.get((kind, id_), -1)

    def stored(self, at: int, said: Stored) -> Stored:
        """What a flush stored at `at` that no later reset took back."""
        return Stored(
            [p for p in said.pages if self.newer(at, "page", p[0])],
            said.rows if at > self.rows_at else [],
        )

    def trim(self, start: int) -> None:
        """Forget what is older than the window, which starts at `start`."""
        self.done = {at for at in self.done if at >= start}
        self.at = {ref: at for ref, at in self.at.items() if at >= start}


def sync(request: str) -> bytes:
    return _encode({"sync": request})


def synced(request: str, node: str, stored: bool) -> bytes:
    return _encode({"synced": request, "node": node, "stored": stored})


def decode(payload: str | bytes) -> list[Change]:
    """The changes of one item; [] for anything that is not a list of them."""
    value = read(payload)
    return value if isinstance(value, list) else []


def read(payload: str | bytes) -> list[Change] | Said | Reset | Sync | Synced | Stored:
    """What one item says: count changes, a node's readers, articles to read again, a
    node's stored pages and rows, or a backup's sync and the nodes' answers; [] for
    anything else (an item no node could have written says nothing)."""
    try:
        value = json.loads(payload)
    except ValueError:
        return []
    if isinstance(value, dict):
        if isinstance(reset := value.get("reset"), list):
            return Reset(
                [(r[0], r[1]) for r in reset if isinstance(r, list) and _is_reading([*r, 0])],
                value.get("reports") is not False,
            )
        if isinstance(stored := value.get("stored"), dict):
            return _stored(stored) or []
        if isinstance(request := value.get("sync"), str):
            return Sync(request)
        if isinstance(request := value.get("synced"), str):
            node, stored = value.get("node"), value.get("stored")
            return (
                Synced(request, node, stored)
                if isinstance(node, str) and type(stored) is bool
                else []
            )
        return _said(value) or []
    if not isinstance(value, list) or not all(_is_change(c) for c in value):
        return []
    return [(c[0], c[1], c[2]) for c in value]


def _stored(value: dict[str, Any]) -> Stored | None:
    pages, rows = value.get("pages"), value.get("rows")
    if (
        not isinstance(pages, list)
        or not isinstance(rows, list)
        or not all(_is_change(p) for p in pages)
        or not all(_is_row(r) for r in rows)
    ):
        return None
    return Stored(
        [(p[0], p[1], p[2]) for p in pages], [(r[0], r[1], r[2], r[3], r[4]) for r in rows]
    )


def _is_row(value: Any) -> bool:
    return (
        isinstance(value, list)
        and len(value) == 5
        and value[0] in ("timeline", "referrer")
        and isinstance(value[1], str)
        and isinstance(value[2], str)
        and all(type(n) is int for n in value[3:])
    )


def _is_change(value: Any) -> bool:
    return (
        isinstance(value, list)
        and len(value) == 3
        and isinstance(value[0], str)
        and all(type(n) is int for n in value[1:])
    )


def _said(value: dict[str, Any]) -> Said | None:
    node, whole, readers = value.get("node"), value.get("whole"), value.get("readers")
    if (
        not isinstance(node, str)
        or type(whole) is not bool
        or not isinstance(readers, list)
        or not all(_is_reading(r) for r in readers)
    ):
        return None
    return Said(node, whole, [(r[0], r[1], r[2]) for r in readers])


def _is_reading(value: Any) -> bool:
    return (
        isinstance(value, list)
        and len(value) == 3
        and value[0] in ("post", "page")
        and isinstance(value[1], str)
        and type(value[2]) is int
        and value[2] >= 0
    )


def says(node: str, readers: Iterable[Reading], whole: bool) -> list[bytes]:
    """`node`'s readers as payloads, each small enough for one item. A whole snapshot
    that needs several says so in its first: the others add to it. A whole snapshot
    of nothing is one payload still (it says the node is alive)."""
    return _batched(
        readers,
        lambda batch, first: {"node": node, "whole": whole and first, "readers": batch},
        always=whole,
    )


def stamps(now_us: int, node_salt: int, count: int) -> list[int]:
    """Sort keys for `count` items written now by one node: time-ordered, and unique
    across nodes writing in the same microsecond."""
    return [(now_us + i) * 1000 + node_salt % 1000 for i in range(count)]


def next_cursor(cursor: int, seen: Iterable[int]) -> int:
    return max([cursor, *seen])


def window_start(cursor: int) -> int:
    return max(0, cursor - SKEW_WINDOW_US * 1000)
