"""The report rows this node's reports asked for, each span read once, and what is
summed from them.

A span (`core/row_cache.py`: a bucket partition, a range of referrer rows) is read
once however many reports ask for it at once, then kept current by what moves (`learn`,
from the report cache). The rankings of periods are sums of their buckets; a chart
reads the one row it needs of each bucket not cached. A reset (`livecount admin`, an
import) drops what is cached and voids the reads begun before it.
"""

from __future__ import annotations

import asyncio

from livecount.aws.store import Store
from livecount.core.bases import Counts
from livecount.core.errors import Unavailable
from livecount.core.periods import Period
from livecount.core.rankings import Label, Ranking
from livecount.core.report_rows import SITE, Row
from livecount.core.reports import Point
from livecount.core.row_cache import PeriodRankings, RowCache, Span


class SpanReads:
    def __init__(
        self, store: Store, label: Label, limit: asyncio.Semaphore, most_rows: int
    ) -> None:
        self.store = store
        self.rows = RowCache(most_rows)
        self.rankings = PeriodRankings(self.rows, label)
        self._limit = limit  # the store's reads in flight for reports, shared
        self._reads: dict[Span, asyncio.Future[dict[str, Counts]]] = {}
        self._generation = 0  # moves on at each reset: reads begun before are void
        self._first_hour: tuple[int, str | None] | None = None  # (generation, hour)

    async def span(self, span: Span) -> dict[str, Counts]:
        """`span`'s rows: cached, or read once however many ask at once."""
        for _ in range(3):
            if (cached := self.rows.get(span)) is not None:
                return cached
            generation = self._generation
            read = self._reads.get(span)
            if read is None:
                read = self._reads[span] = asyncio.ensure_future(self._read_span(span))
            rows = await asyncio.shield(read)
            if generation == self._generation:
                return rows
        raise Unavailable("reports kept changing under a read: ask again")

    async def _read_span(self, span: Span) -> dict[str, Counts]:
        generation = self._generation
        self.rows.reading(span)
        try:
            async with self._limit:
                rows = await self.store.reports.rows(span)
        except BaseException:
            self.rows.failed(span)
            raise
        finally:
            self._reads.pop(span, None)
        if generation != self._generation:
            return rows  # a reset came meanwhile: the caller reads again
        return self.rows.put(span, rows)

    async def ranking(self, period: Period) -> Ranking:
        """The period's pages by their views in it."""
        keys = period.keys
        for _ in range(3):
            if (ranking := self.rankings.get(keys)) is not None:
                return ranking
            generation = self._generation
            await asyncio.gather(*(self.span(Span.bucket(k)) for k in keys))
            partitions = [self.rows.get(Span.bucket(k)) for k in keys]
            if generation == self._generation and all(p is not None for p in partitions):
                return self.rankings.build(keys, [p for p in partitions if p is not None])
        raise Unavailable("reports kept changing under a read: ask again")

    async def series(self, period: Period, ref: str) -> list[Point]:
        """`ref`'s (or the site's) views in each bucket of the period: from the cached
        partitions, and for the buckets not cached, their one row each."""
        values: dict[str, Counts] = {}
        missing = []
        for key in period.keys:
            rows = self.rows.get(Span.bucket(key))
            if rows is None:
                missing.append(key)
            elif (counts := rows.get(ref)) is not None:
                values[key] = counts
        if missing:
            async with self._limit:
                values |= await self.store.reports.rollups(missing, ref)
        return period.series(values)

    async def first_hour(self) -> str | None:
        """The site's first hour with views, where "all time" starts."""
        if self._first_hour is None or self._first_hour[0] != self._generation:
            generation = self._generation
            async with self._limit:
                hour = await self.store.reports.first_hour(SITE)
            self._first_hour = (generation, hour)
        return self._first_hour[1]

    def learn(self, row: Row, counts: Counts) -> None:
        """A row's stored counts, from a flush or the feed."""
        self.rows.learn(row, counts)

    def reset(self) -> None:
        """Cached rows may have gone down, or changed in the past: read them again."""
        self._generation += 1
        self.rows.clear()
