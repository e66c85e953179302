"""Report rows: each view spread over the Timeline and Referrer counters it adds to.

A view adds to its page's hour and the site's, and, with an external referrer, to
its page's and the site's referrer counts: a host's counts go on the target's
referrer pack (`core/referrer_packs.py`) or on a row of the host's own. Spreading
waits until a flush takes the rows: one dict entry a view, not four rows.
"""

from __future__ import annotations

from typing import Literal, NamedTuple

from livecount.core.pages import Target
from livecount.core.referrer_packs import PACK, packed
from livecount.core.write_order import Write, WriteOrder

SITE = "site"  # the report rows that sum every page, for site-wide reports


class Row(NamedTuple):
    """A report counter: views of `target` (a `Target.ref` or SITE) from a referrer
    host, or in an hour bucket. Reports only; live counts never read these."""

    table: Literal["referrer", "timeline"]
    target: str
    sort: str  # the referrer host or PACK (its write's delta has the hosts), or the hour

    @property
    def pack(self) -> bool:
        return self.sort == PACK and self.table == "referrer"


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
            add, pending = self.order.add, self.order.pending
            for (target, hour, referrer), (total, unique) in unspread.items():
                for row in view_rows(target, hour, referrer):
                    if counts_unique(row):
                        add(row, unique, None, total)
                        continue
                    waiting = pending.get(pack := Row("referrer", row.target, PACK))
                    if packed(row.sort, waiting.hosts if waiting else None):
                        add(pack, 0, None, total, row.sort)
                    else:
                        add(row, 0, None, total)
        return self.order

    def unpack(self, rows: dict[Row, Write], full: set[str]) -> None:
        """Pack writes refused because the pack was full were not applied: their views
        wait again, on each host's own row. Called when their flush is released, in
        the journal's order, so that a replay routes later views as the node did."""
        for ref in full:
            write = rows.get(Row("referrer", ref, PACK))
            for host, views in ((write.delta.hosts or {}) if write else {}).items():
                self.order.add(Row("referrer", ref, host), 0, None, views)
