"""A node's copy of the report rows it serves, kept as the store changes. Pure.

What is cached is spans of rows as one Query read them: a bucket's whole partition
(every page viewed in that hour, day, month or all time), or a range of a page's
referrer rows. A span stays until it is the least recently used past the bound, or a
reset drops everything (a rename, a delete, an import: counts that went down).

Every row value this node learns afterwards is merged in by maximum (rows only grow
between resets): its own flushes' answers (the row as stored after the write) and the
other nodes' answers, which they share on the live feed. A row learned while its span
is being read is kept aside and merged when the read lands, so nothing learned is
lost to the race. So reports cost a Query once per span, then nothing but what
changes, whatever the size of the site.

The rankings of periods (`PeriodRankings`) are sums of bucket partitions, kept as
their rows move.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping
from typing import Literal, NamedTuple

from livecount.core.bases import ZERO, Counts
from livecount.core.rankings import Label, Ranking
from livecount.core.report_rows import SITE, Row, host_of, is_bucket


class Span(NamedTuple):
    """Rows of one partition whose sort key is above `low` and at most `high` (an open
    end when None)."""

    table: Literal["referrer", "timeline"]
    partition: str
    low: str | None = None
    high: str | None = None

    def covers(self, sort: str) -> bool:
        return (self.low is None or sort > self.low) and (self.high is None or sort <= self.high)

    @classmethod
    def bucket(cls, partition: str) -> Span:
        return cls("timeline", partition)


Changed = Callable[[str, str, Counts, Counts], None]  # partition, sort, before, after


class RowCache:
    def __init__(self, most: int = 1_000_000) -> None:
        self.most = most  # rows kept, all spans together
        self.size = 0
        self._spans: OrderedDict[Span, dict[str, Counts]] = OrderedDict()  # LRU last
        self._reading: dict[Span, dict[str, Counts]] = {}  # learned while being read
        self._by_partition: dict[tuple[str, str], list[Span]] = {}
        self.changed: list[Changed] = []  # told of every row that moves in a bucket span
        self.dropped: list[Callable[[Span | None], None]] = []  # a span left (None: all)

    def __contains__(self, span: object) -> bool:
        return span in self._spans

    def get(self, span: Span) -> dict[str, Counts] | None:
        rows = self._spans.get(span)
        if rows is not None:
            self._spans.move_to_end(span)
        return rows

    def reading(self, span: Span) -> None:
        """A read of `span` starts: what is learned meanwhile waits for it."""
        if span not in self._spans:
            self._reading.setdefault(span, {})
            self._index(span)

    def put(self, span: Span, rows: dict[str, Counts]) -> dict[str, Counts]:
        """What a read of `span` found, with what was learned while it was read."""
        for sort, counts in self._reading.pop(span, {}).items():
            rows[sort] = counts.max(rows.get(sort, ZERO))
        if (old := self._spans.get(span)) is not None:
            self.size -= len(old)
        self._spans[span] = rows
        self._index(span)
        self.size += len(rows)
        self._evict(keep=span)
        return rows

    def failed(self, span: Span) -> None:
        """The read of `span` failed: what waited for it is of no use."""
        self._reading.pop(span, None)
        if span not in self._spans:
            self._unindex(span)

    def learn(self, row: Row, counts: Counts) -> None:
        """A row's value as stored: merged by maximum into every span that holds it."""
        for span in self._by_partition.get((row.table, row.target), ()):
            if not span.covers(row.sort):
                continue
            rows = self._spans.get(span)
            if rows is None:
                rows = self._reading.get(span)
                if rows is not None:
                    rows[row.sort] = counts.max(rows.get(row.sort, ZERO))
                continue
            before = rows.get(row.sort)
            if (
                before is not None
                and counts.total <= before.total
                and counts.unique <= before.unique
            ):
                continue
            after = counts if before is None else counts.max(before)
            rows[row.sort] = after
            self.size += before is None
            if row.table == "timeline":
                for told in self.changed:
                    told(row.target, row.sort, before or ZERO, after)

    def clear(self) -> None:
        """Forget everything (counts went down: a reset); reads under way are void."""
        self._spans.clear()
        self._reading.clear()
        self._by_partition.clear()
        self.size = 0
        for told in self.dropped:
            told(None)

    def _index(self, span: Span) -> None:
        spans = self._by_partition.setdefault((span.table, span.partition), [])
        if span not in spans:
            spans.append(span)

    def _unindex(self, span: Span) -> None:
        spans = self._by_partition.get((span.table, span.partition), [])
        if span in spans:
            spans.remove(span)
        if not spans:
            self._by_partition.pop((span.table, span.partition), None)

    def _evict(self, keep: Span) -> None:
        while self.size > self.most and len(self._spans) > 1:
            span = next(iter(self._spans))
            if span == keep:
                self._spans.move_to_end(span)
                continue
            self.size -= len(self._spans.pop(span))
            self._unindex(span)
            for told in self.dropped:
                told(span)


class PeriodRankings:
    """The pages of periods by their views, each the sum of its bucket partitions,
    moved by every row that moves in them (`RowCache.changed`)."""

    def __init__(self, cache: RowCache, labels: Label, most: int = 16) -> None:
        self.labels = labels
        self.most = most  # rankings kept (the presets, and a few periods of one's own)
        self._rankings: OrderedDict[tuple[str, ...], Ranking] = OrderedDict()
        self._holding: dict[str, set[tuple[str, ...]]] = {}  # partition → rankings of it
        cache.changed.append(self._changed)
        cache.dropped.append(self._dropped)

    def get(self, keys: tuple[str, ...]) -> Ranking | None:
        ranking = self._rankings.get(keys)
        if ranking is not None:
            self._rankings.move_to_end(keys)
        return ranking

    def build(self, keys: tuple[str, ...], partitions: Iterable[Mapping[str, Counts]]) -> Ranking:
        """The ranking of the period whose buckets are `keys`, from their partitions
        (the one kept already, if there is one: it has followed every change)."""
        if (kept := self.get(keys)) is not None:
            return kept
        sums: dict[str, Counts] = {}
        for rows in partitions:
            for ref, counts in rows.items():
                if ref != SITE:
                    before = sums.get(ref)
                    sums[ref] = counts if before is None else before.plus(counts)
        ranking = Ranking(self.labels)
        ranking.fill(sums)
        self._rankings[keys] = ranking
        for key in keys:
            self._holding.setdefault(key, set()).add(keys)
        while len(self._rankings) > self.most:
            self._forget(next(iter(self._rankings)))
        return ranking

    def relabel(self, ref: str) -> None:
        for ranking in self._rankings.values():
            ranking.relabel(ref)

    def _changed(self, partition: str, ref: str, before: Counts, after: Counts) -> None:
        if ref == SITE or not is_bucket(partition):
            return
        for keys in self._holding.get(partition, ()):
            self._rankings[keys].add(ref, after.minus(before))

    def _dropped(self, span: Span | None) -> None:
        if span is None:
            self._rankings.clear()
            self._holding.clear()
            return
        for keys in list(self._holding.get(span.partition, ())):
            self._forget(keys)

    def _forget(self, keys: tuple[str, ...]) -> None:
        self._rankings.pop(keys, None)
        for key in keys:
            if (held := self._holding.get(key)) is not None:
                held.discard(keys)
                if not held:
                    del self._holding[key]


def top_hosts(rows: Mapping[str, Counts], limit: int) -> list[tuple[str, int]]:
    """Referrer rows (all time's, or a period's) as views per host, most first."""
    sums: dict[str, int] = {}
    for sort, counts in rows.items():
        host = host_of(sort)
        sums[host] = sums.get(host, 0) + counts.total
    ranked = sorted(((h, v) for h, v in sums.items() if v > 0), key=lambda h: (-h[1], h[0]))
    return ranked[:limit]
