"""The rollups checked against the hour rows they sum, and rebuilt from them.

Every rollup row (a bucket's partition: the hour, the day, the month, all time) is
the sum of hour rows (`report_rows.rollups_of`): the store is its own source of truth.
`check` reads both sides, Query by Query (never a Scan): every page's hours (the page
index's refs, and the site's), then every bucket partition those hours fall in, so a
stray row is found too. `rebuild` adds to each row that differs what it lacks (or
takes what it has too much), on condition that the row is still as read.

Nodes write a view's hour and its rollups in one flush but not at once, so a check
while they serve may see a flush half applied: rebuild with every node stopped.
Upgrading from a version without rollups is one rebuild: they are made from the hours.
"""

from __future__ import annotations

from typing import Any, NamedTuple

from livecount.aws import store_requests
from livecount.aws.store_admin import Items, gather_limited
from livecount.aws.store_errors import ConditionFailed, answer
from livecount.core.bases import ZERO, Counts
from livecount.core.report_rows import SITE, Row, is_bucket, rollups_of


class Difference(NamedTuple):
    row: Row
    stored: Counts
    expected: Counts


class Rollups(Items):
    async def check(self) -> list[Difference]:
        """Every rollup row that is not the sum of its hours, sorted. The refs whose
        hours are read are the page index's and the site's, and any a bucket holds (an
        id deleted while a node still counted it is no longer listed)."""
        expected: dict[Row, Counts] = {}
        stored: dict[Row, Counts] = {}
        read_refs: set[str] = set()
        read_buckets: set[str] = set()
        refs = {t.ref for t in await self.store.tracked()} | {SITE}
        while refs:
            for ref, items in zip(
                refs,
                await gather_limited(
                    self.partition(self.tables.timeline, "target", r) for r in refs
                ),
                strict=True,
            ):
                hours = {i["hour"]["S"]: store_requests.counts(i) for i in items}
                expected |= rollups_of(hours, ref)
            read_refs |= refs
            buckets = {row.target for row in expected} - read_buckets
            for bucket, items in zip(
                buckets,
                await gather_limited(
                    self.partition(self.tables.timeline, "target", b) for b in buckets
                ),
                strict=True,
            ):
                stored |= {
                    Row("timeline", bucket, i["hour"]["S"]): store_requests.counts(i) for i in items
                }
            read_buckets |= buckets
            refs = {row.sort for row in stored} - read_refs
        return sorted(
            Difference(row, stored.get(row, ZERO), expected.get(row, ZERO))
            for row in expected.keys() | stored.keys()
            if is_bucket(row.target) and stored.get(row, ZERO) != expected.get(row, ZERO)
        )

    async def rebuild(self) -> tuple[int, int]:
        """Make every rollup row the sum of its hours: (rows fixed, rows that changed
        meanwhile and were left: a node is serving)."""
        fixed = changed = 0

        async def fix(difference: Difference) -> None:
            nonlocal fixed, changed
            try:
                await answer(
                    self.ddb.update_item(**_fix(self.tables.timeline, difference)),
                    self.tables.timeline,
                )
                fixed += 1
            except ConditionFailed:
                changed += 1

        await gather_limited(fix(d) for d in await self.check())
        if fixed:  # every node reads its cached rows again
            await self.reset([])
        return fixed, changed


def _fix(table: str, difference: Difference) -> dict[str, Any]:
    """UpdateItem adding what the row lacks, on condition it is still as read (absent,
    or at zero, when read as zero)."""
    row, stored, expected = difference
    values = {
        ":dt": expected.total - stored.total,
        ":du": expected.unique - stored.unique,
        ":t": stored.total,
        ":u": stored.unique,
    }
    condition = "#t = :t AND #u = :u"
    if stored == ZERO:
        condition = f"attribute_not_exists(#t) OR ({condition})"
    return {
        "TableName": table,
        "Key": store_requests.typed({"target": row.target, "hour": row.sort}),
        "UpdateExpression": "ADD #t :dt, #u :du",
        "ConditionExpression": condition,
        "ExpressionAttributeNames": {"#t": "totalViews", "#u": "uniqueViews"},
        "ExpressionAttributeValues": store_requests.typed(values),
    }
