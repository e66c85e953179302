"""The stream copy, sans I/O: what a batch of PostCountWriter stream records asks of
the store, as plain requests.

The node's stream consumer (aioboto3) and the Lambda copy (boto3) both call
`copy_and_feed` and only execute what it returns with their own client, so the copy
rule (`replication.copy_for`: conditional on `version`) and the feed write
(`feed.puts`) exist once.

Executing the work: send each reader write in order; a refused condition means the
reader already holds that image or a newer one, so go on. Once every write of the
batch is done, send the feed items; a writer that stopped at a failed write sends no
feed (its retry will). Feed items carry the newest image of each article in the
batch, copied now or before: every image is a count the writer table holds, and
readers merge counts by maximum, so sharing a replayed one changes nothing.

Only `livecount admin` (a rename, a delete, an undone import) brings a count down, and
nodes merge counts by maximum: an image copied before such a move, shared after the
admin's reset, would bring the old count back. So a record whose new image counts less
than its old one makes the batch's feed end with a reset of its article: after every
image of it that came before, in the shard's order.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from livecount.core import feed
from livecount.core.replication import copy_for, counts_of
from livecount.core.tables import Tables


@dataclass(frozen=True, slots=True)
class ReaderWrite:
    """One conditional PutItem or DeleteItem on the reader table."""

    sequence: str  # the stream record's SequenceNumber: where a retry starts
    action: Literal["put", "delete"]
    request: dict[str, Any]
    change: feed.Change | None  # the counts it shows, for live pushes once applied


@dataclass(frozen=True, slots=True)
class CopyWork:
    writes: list[ReaderWrite]  # in stream order
    feed: list[dict[str, Any]]  # PutItem requests for LiveFeed, after the writes
    down: list[str]  # articles whose count went down: reset last, on the feed too
    changes: dict[str, tuple[int, int]]  # each article's newest counts: what `feed` says


def copy_and_feed(
    records: Iterable[Mapping[str, Any]], tables: Tables, writer: str, now: float
) -> CopyWork:
    """The reader writes and the live-feed items a batch of stream records calls for.

    `writer` names who will write the feed (a node id, a Lambda request id) and `now`
    is the time in seconds, for the feed's sort keys and expiry.
    """
    writes: list[ReaderWrite] = []
    newest: dict[str, tuple[int, int, int]] = {}  # articleId → (version, total, unique)
    down: dict[str, None] = {}
    for record in records:
        copy = copy_for(record)
        if copy is None:
            continue
        if (moved := went_down(record)) is not None:
            down[moved] = None
        change = counts_of(copy.item) if copy.item is not None else None
        writes.append(
            ReaderWrite(
                str(record["dynamodb"]["SequenceNumber"]),
                copy.action,
                copy.request(tables.reader),
                change,
            )
        )
        if change is not None:
            article, total, unique = change
            if article not in newest or newest[article][0] < copy.version:
                newest[article] = (copy.version, total, unique)
    changes = {article: (total, unique) for article, (_, total, unique) in newest.items()}
    payloads = [*feed.chunks(changes), *feed.reset_payloads(("post", a) for a in down)]
    return CopyWork(writes, feed.stamped(payloads, tables.feed, writer, now), list(down), changes)


def went_down(record: Mapping[str, Any]) -> str | None:
    """The article of a MODIFY record whose new image counts less than its old one."""
    change = record.get("dynamodb", {})
    old, new = change.get("OldImage"), change.get("NewImage")
    if record.get("eventName") != "MODIFY" or not old or not new:
        return None
    before, after = counts_of(old), counts_of(new)
    if before is None or after is None:
        return None
    return after[0] if after[1] < before[1] or after[2] < before[2] else None
