"""The report rows' reads the node keeps its report cache by (`node/report_cache.py`):
a span of rows (one Query), one chart's rollup rows (BatchGetItem), and where the
site's history starts; and a target's all-time referrers and hours. Never a Scan."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from livecount.aws import store_requests
from livecount.aws.store_errors import answer
from livecount.core.bases import Counts
from livecount.core.report_rows import HOSTS_FROM, Row
from livecount.core.row_cache import Span
from livecount.core.tables import Tables


class RowReads:
    def __init__(self, ddb: Any, tables: Tables) -> None:
        self.ddb = ddb
        self.tables = tables

    async def _query(self, kwargs: dict[str, Any]) -> list[dict[str, Any]]:
        pages = self.ddb.get_paginator("query").paginate(**kwargs)
        return list((await answer(pages.build_full_result(), kwargs["TableName"])).get("Items", []))

    async def rows(self, span: Span) -> dict[str, Counts]:
        """The report rows of `span` (one partition, a range of its sort keys), by sort
        key; read consistently, as a cache of them starts from this."""
        name, sort = (
            (self.tables.referrers, "host")
            if span.table == "referrer"
            else (self.tables.timeline, "hour")
        )
        bounds = None if span.low is None and span.high is None else (sort, span.low, span.high)
        items = await self._query(
            store_requests.query(name, "target", span.partition, bounds, consistent=True)
        )
        row = Row(span.table, span.partition, "")
        return {i[sort]["S"]: store_requests.row_counts(row, i) for i in items}

    async def rollups(self, partitions: Iterable[str], ref: str) -> dict[str, Counts]:
        """`ref`'s row in each bucket partition (one chart's points), by partition;
        absent ones are left out. BatchGetItem, 100 keys a request."""
        keys = [store_requests.typed({"target": p, "hour": ref}) for p in partitions]
        found: dict[str, Counts] = {}
        for start in range(0, len(keys), 100):
            request: dict[str, Any] = {
                self.tables.timeline: {"Keys": keys[start : start + 100], "ConsistentRead": True}
            }
            while request:
                got = await answer(self.ddb.batch_get_item(RequestItems=request), "BatchGetItem")
                for item in got.get("Responses", {}).get(self.tables.timeline, []):
                    found[item["target"]["S"]] = store_requests.counts(item)
                request = got.get("UnprocessedKeys") or {}
        return found

    async def first_hour(self, ref: str) -> str | None:
        """The first hour `ref` (a `Target.ref` or SITE) has a row for, if any."""
        request = store_requests.query(self.tables.timeline, "target", ref, consistent=True)
        got = await answer(self.ddb.query(**request, Limit=1), self.tables.timeline)
        items = got.get("Items", [])
        return str(items[0]["hour"]["S"]) if items else None

    async def top_referrers(self, ref: str, limit: int = 10) -> list[tuple[str, int]]:
        """External hosts that sent views to `ref` (a `Target.ref` or `SITE`) over all
        time, most first."""
        items = await self._query(
            store_requests.query(self.tables.referrers, "target", ref, ("host", HOSTS_FROM, None))
        )
        hosts = list(store_requests.referrer_totals(items).items())
        hosts.sort(key=lambda h: (-h[1], h[0]))
        return hosts[:limit]

    async def hours(self, ref: str, first: str, last: str) -> dict[str, Counts]:
        """Hourly buckets of `ref` (a `Target.ref` or `SITE`) from `first` to `last` hour."""
        items = await self._query(
            store_requests.query(self.tables.timeline, "target", ref, ("hour", first, last))
        )
        return {i["hour"]["S"]: store_requests.counts(i) for i in items}
