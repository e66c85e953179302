"""Report rows: each view spread over the Timeline and Referrer counters it adds to.

A view adds to its page's hour and the site's (`Timeline`, partition the ref, sort the
hour), and to the rollups of that hour: the hour's, the day's, the month's and all
time's (`Timeline`, partition the bucket, sort the ref), for its page and for the site.
A bucket's partition is then every page viewed in it, with its views there: a period's
top pages are the partitions of its buckets, and a 3-year chart is 36 month rows, not
1,100 days of hours. With an external referrer it adds to the host's all-time row of
its page and of the site, and to the host's row in the hour, the day and the month
(sort `#<bucket>#<host>`, below every host: a period's hosts are one range).

Rollups are written as the hour rows are, by the same idempotent writes, so they are
exactly once too, and they can be rebuilt from the hour rows (`rollups_of`). Spreading
waits until a flush takes the rows: one dict entry a view, not eighteen rows.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final, Literal, NamedTuple

from livecount.core.bases import Counts
from livecount.core.pages import Target
from livecount.core.write_order import WriteOrder

SITE: Final = "site"  # the report rows that sum every page, for site-wide reports
ALL: Final = "all"  # the all-time rollup's partition
HOUR: Final = "h#"  # bucket partitions: h#YYYY-MM-DDTHH, d#YYYY-MM-DD, m#YYYY-MM, all
DAY: Final = "d#"
MONTH: Final = "m#"
# A period's referrer rows sort below every host (a DNS name starts with a letter or a
# digit): the hosts of all time are the sort keys from HOSTS_FROM on.
PERIOD_HOST: Final = "#"
HOSTS_FROM: Final = "0"

Bucket = Literal["hour", "day", "month", "all"]


class Row(NamedTuple):
    """A report counter: views of `target` (a `Target.ref` or SITE) from a referrer
    host, or in an hour; or, in a bucket's partition (`target` the bucket), of the ref
    `sort`. Reports only; live counts never read these."""

    table: Literal["referrer", "timeline"]
    target: str  # the partition: a ref, SITE or a bucket
    sort: str  # the referrer host, the hour as YYYY-MM-DDTHH (UTC), or a ref


def bucket_key(bucket: Bucket, hour: str) -> str:
    """The partition of `hour`'s bucket of that size (`hour` is YYYY-MM-DDTHH)."""
    if bucket == "hour":
        return HOUR + hour
    if bucket == "day":
        return DAY + hour[:10]
    if bucket == "month":
        return MONTH + hour[:7]
    return ALL


def buckets_of(hour: str) -> tuple[str, str, str, str]:
    """Every bucket partition `hour` adds to: its hour, day, month, and all time."""
    return HOUR + hour, DAY + hour[:10], MONTH + hour[:7], ALL


def is_bucket(partition: str) -> bool:
    return partition == ALL or partition[:2] in (HOUR, DAY, MONTH)


def period_host(bucket: str, host: str) -> str:
    """The sort key of `host`'s row in `bucket` (an hour, day or month partition's name)."""
    return f"{PERIOD_HOST}{bucket}#{host}"


def host_of(sort: str) -> str:
    """The host of a Referrer sort key, all time's or a period's."""
    return sort.rsplit("#", 1)[-1] if sort.startswith(PERIOD_HOST) else sort


def hour_rows(ref: str, hour: str) -> list[Row]:
    """The Timeline rows of `ref`'s views in `hour`: the hour, and its rollups."""
    return [Row("timeline", ref, hour), *(Row("timeline", b, ref) for b in buckets_of(hour))]


def view_rows(target: Target, hour: str, referrer: str | None) -> list[Row]:
    """Every report row a view adds to, for its page and for the site. Referrer rows
    keep no unique count (`counts_unique`). The node spreads its views by this, and
    imports theirs."""
    rows = []
    periods = buckets_of(hour)[:3]
    for ref in (target.ref, SITE):
        rows += hour_rows(ref, hour)
        if referrer:
            rows.append(Row("referrer", ref, referrer))
            rows += [Row("referrer", ref, period_host(b, referrer)) for b in periods]
    return rows


def counts_unique(row: Row) -> bool:
    return row.table == "timeline"


def rollups_of(hours: Mapping[str, Counts], ref: str) -> dict[Row, Counts]:
    """The bucket rows `ref`'s hour rows sum to: what its rollups must hold (a rebuild
    compares them, `livecount admin rollups`)."""
    sums: dict[Row, Counts] = {}
    for hour, counts in hours.items():
        for bucket in buckets_of(hour):
            row = Row("timeline", bucket, ref)
            before = sums.get(row)
            sums[row] = counts if before is None else before.plus(counts)
    return sums


class ReportRows:
    __slots__ = ("_unspread", "order")

    def __init__(self) -> None:
        self.order: WriteOrder[Row] = WriteOrder()
        # (target, hour, referrer host) → [total, unique] of views not yet spread.
        self._unspread: dict[tuple[Target, str, str | None], list[int]] = {}

    @property
    def waiting(self) -> bool:
        return bool(self._unspread or self.order.waiting)

    def record(self, target: Target, hour: str, referrer: str | None, unique: int) -> None:
        if (seen := self._unspread.get(key := (target, hour, referrer or None))) is None:
            self._unspread[key] = [1, unique]
        else:
            seen[0] += 1
            seen[1] += unique

    def spread(self) -> WriteOrder[Row]:
        """The report rows, with every view recorded so far spread over them."""
        if self._unspread:
            unspread, self._unspread = self._unspread, {}
            add = self.order.add
            for (target, hour, referrer), (total, unique) in unspread.items():
                for row in view_rows(target, hour, referrer):
                    add(row, unique if counts_unique(row) else 0, None, total)
        return self.order
