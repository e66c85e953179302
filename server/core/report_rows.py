"""Report rows: each view spread over the Timeline and Referrer counters it adds to.

A view adds to its page's hour and the site's, and, with an external referrer, to
its page's and the site's row of that host. Spreading waits until a flush takes
the rows: one dict entry a view, not four rows.
"""

from __future__ import annotations

from typing import Literal, NamedTuple

from livecount.core.pages import Target
from livecount.core.write_order import WriteOrder

SITE = "site"  # the report rows that sum every page, for site-wide reports


class Row(NamedTuple):
    """A report counter: views of `target` (a `Target.ref` or SITE) from a referrer
    host, or in an hour bucket. Reports only; live counts never read these."""

    table: Literal["referrer", "timeline"]
    target: str
    sort: str  # the referrer host, or the hour as YYYY-MM-DDTHH (UTC)


def view_rows(target: Target, hour: str, referrer: str | None) -> list[Row]:
    """Every report row a view adds to: its hour, for its target and for the site, and
    with an external referrer that host's row of each. Referrer rows keep no unique
    count (`counts_unique`). The node spreads its views by this, and imports theirs."""
    rows = []
    for ref in (target.ref, SITE):
        rows.append(Row("timeline", ref, hour))
        if referrer:
            rows.append(Row("referrer", ref, referrer))
    return rows


def counts_unique(row: Row) -> bool:
    return row.table == "timeline"


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
