"""Counting: views in, idempotent store writes out, and what this node believes each
count is.

Pure bookkeeping, no I/O. A view lands in `pending`. A flush turns each pending
delta into a `Write` stamped with the flush's sequence number; the store applies a
write only if that key has not seen this node's sequence number yet, so sending the
same write twice adds it once. A write whose outcome is unknown (a timeout, a lost
response) stays *unsettled* and is sent again unchanged, same sequence number, same
delta, before any newer delta of that key: that is what makes every count exact
under retries.

Several flushes may be in flight at once, so a slow one never delays the others,
but each key is in at most one: a key's newer write is never sent while an older one
is in flight or unsettled, or the store would refuse the older one for ever. A flush
taken with `hold` keeps its keys until `release`, once its completion is on disk:
a journal replay then takes exactly what the node took. Counts and report rows may
be taken apart (`rows=False`, `counts=False`): rows wait for a slower cadence, and a
flush of many rows holds no count up, in the same order rules.

The count a client sees is `known + unsettled + in flight + pending`, so a node
reads its own writes before DynamoDB Streams has copied them to the reader table.
Counts only grow, so store observations merge by taking the larger value.

The ledger coordinates flushes over three parts: a `WriteOrder` of the counts
(`core/write_order.py`: the order rules per key), the `ReportRows` views are spread
over (`core/report_rows.py`, with a `WriteOrder` of their own), and the `Bases` the
store was seen to hold (`core/bases.py`).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from livecount.core.bases import ZERO, Bases, Counts
from livecount.core.errors import Busy
from livecount.core.pages import Target
from livecount.core.report_rows import SITE, ReportRows, Row
from livecount.core.syncs import Barrier, Barriers
from livecount.core.write_order import Delta, Write, WriteOrder

__all__ = [
    "SITE",
    "ZERO",
    "Busy",
    "Counts",
    "Delta",
    "Flush",
    "FlushResult",
    "Ledger",
    "Row",
    "Write",
]


@dataclass(slots=True)
class Flush:
    """A batch taken from the ledger: one write per target and per report row."""

    seq: int = 0
    targets: dict[Target, Write] = field(default_factory=dict)
    rows: dict[Row, Write] = field(default_factory=dict)

    @property
    def views(self) -> int:
        return sum(w.delta.total for w in self.targets.values())

    def __bool__(self) -> bool:
        return bool(self.targets or self.rows)


@dataclass(slots=True)
class FlushResult:
    """What the store made of a flush: the stored totals of what applied (when the
    store said), the keys whose outcome is unknown (`failed_*`: retried unchanged),
    and the keys the store refused as invalid (`rejected_*`, with its error: set
    aside as dead letters, never retried, so they cannot hold anything else up)."""

    applied: dict[Target, Counts] = field(default_factory=dict)
    # What the store said of what applied, for reports: each post's title and path as
    # stored ("" when none), and each report row's stored counts.
    described: dict[Target, tuple[str, str]] = field(default_factory=dict)
    applied_rows: dict[Row, Counts] = field(default_factory=dict)
    failed_targets: set[Target] = field(default_factory=set)
    failed_rows: set[Row] = field(default_factory=set)
    rejected_targets: dict[Target, str] = field(default_factory=dict)
    rejected_rows: dict[Row, str] = field(default_factory=dict)

    @classmethod
    def nothing_known(cls, flush: Flush) -> FlushResult:
        return cls(failed_targets=set(flush.targets), failed_rows=set(flush.rows))


class Ledger:
    def __init__(self, max_pending_views: int = 1_000_000) -> None:
        self.max_pending_views = max_pending_views
        self._bases = Bases()  # what the store was seen to hold
        self._counts: WriteOrder[Target] = WriteOrder()
        self._report = ReportRows()  # report rows, taken on their own cadence
        self._rows = self._report.order
        self.listed: set[Target] = set()  # known to be in the page index (`store_index`)
        self._pathed: set[Target] = set()  # posts whose path the store has: sent no more
        self._flights: dict[int, Flush] = {}  # taken, not completed, by sequence number
        self._holding: dict[int, Flush] = {}  # completed, keys held until released
        self._auto: set[int] = set()  # flights taken without `hold`: released on completion
        self._pending_views = 0
        self._queued = 0  # views admitted on their way to the journal (`admit`)
        self._taken = 0  # the last take's sequence number
        self._barriers = Barriers()  # a backup's syncs wait on them

    # -- reading ---------------------------------------------------------------
    def has_base(self, target: Target) -> bool:
        """Whether the stored count was read (or told by the store): only then may a
        count be shown, or it could be less than what is stored."""
        return target in self._bases

    def current(self, target: Target) -> Counts:
        """The count to show: never below what the store was seen to hold, and
        including every view this node accepted."""
        write = self._counts.in_doubt(target)
        counts = self._bases.shown(target, None if write is None else write.delta)
        if delta := self._counts.pending.get(target):
            counts = counts.plus(delta)
        return counts

    def forget_bases(self, targets: Iterable[Target] | None = None) -> None:
        """Drop the bases of `targets` (every base, by default), keeping what waits for
        the store: each one's stored count must be read again before it is shown. After
        a journal replay the bases are only the replayed views; after `livecount admin`
        renamed an article away, its base is more than the store holds (and its listing
        may be gone)."""
        if targets is None:
            self.listed.clear()
        else:
            self.listed.difference_update(targets := list(targets))
        self._bases.forget(targets)

    @property
    def pending_views(self) -> int:
        """Views accepted and not yet confirmed by the store."""
        return self._pending_views

    @property
    def idle(self) -> bool:
        """Nothing accepted waits for the store: every view so far is stored."""
        return not (self._counts.waiting or self._report.waiting or self._flights or self._holding)

    @property
    def in_flight(self) -> int:
        """Flushes taken and not yet released."""
        return len(self._flights) + len(self._holding)

    def waiting(self, rows: bool = True, counts: bool = True) -> bool:
        """Whether a take of the same kinds could find anything. Cheap, and may say
        yes when everything waiting is held by flushes in flight."""
        return (counts and self._counts.waiting) or (rows and self._report.waiting)

    def outstanding(self) -> tuple[dict[Target | Row, tuple[int, int]], dict[Target | Row, Write]]:
        """What the store may still lack: pending deltas (total, unique) per key, and
        the writes of unknown outcome (unsettled or in flight) per key. What a journal
        replay must rebuild."""
        pending: dict[Target | Row, tuple[int, int]] = {}
        writes: dict[Target | Row, Write] = {}
        for order in (self._counts, self._report.spread()):
            deltas, unknown = order.outstanding()
            pending.update(deltas.items())
            writes.update(unknown.items())
        return pending, writes

    def barrier(self) -> Barrier:
        """Everything accepted so far, as something to wait for: done once all of it is
        stored (or set aside), however many views come meanwhile (`core/syncs.py`).
        `drop` it when no longer waited for."""
        pending, unknown = self.outstanding()
        return self._barriers.add(Barrier(pending, unknown, self._taken))

    def drop(self, barrier: Barrier) -> None:
        self._barriers.drop(barrier)

    # -- writing ---------------------------------------------------------------
    def admit(self) -> None:
        """A view on its way to the journal (then `record`ed, and `unqueue`d either way),
        unless too many wait for the store."""
        if self._pending_views + self._queued >= self.max_pending_views:
            raise Busy(f"{self._pending_views} views wait for the store")
        self._queued += 1

    def unqueue(self) -> None:  # an admitted view was recorded, or not written at all
        self._queued -= 1

    def record(
        self,
        target: Target,
        *,
        refreshed: bool,
        hour: str,
        title: str | None = None,
        referrer: str | None = None,
        force: bool = False,
        path: str | None = None,
    ) -> Counts:
        """Count one view in the `hour` bucket and return the target's count including it.
        A post's `path` goes to the store until the store is seen to have one. `force`
        skips the bound, for views that were accepted before (journal replay)."""
        if self._pending_views >= self.max_pending_views and not force:
            raise Busy(f"{self._pending_views} views wait for the store")
        unique = 0 if refreshed else 1
        self._counts.add(target, unique, title, path=None if target in self._pathed else path)
        self._report.record(target, hour, referrer, unique)
        self._pending_views += 1
        return self.current(target)

    def observe(self, target: Target, counts: Counts) -> bool:
        """Merge a count read from the store; True when the visible count changed."""
        return self._bases.observe(target, counts, self._counts.in_doubt(target) is not None)

    def trim(self, most: int, keep: set[Target]) -> int:
        """Forget the earliest-seen counts past `most` targets, except what is watched
        or waits for the store: a reader re-reads them when it needs them. Keeps a
        client inventing article ids from growing memory without end."""
        if len(self._bases.known) <= most:
            return 0
        if len(self._pathed) > most:
            self._pathed.clear()  # costs a path sent again (stored only if none is)
        order = self._counts
        return self._bases.trim(
            most, keep | order.pending.keys() | order.unsettled.keys() | order.held.keys()
        )

    def take(
        self, seq: int, *, rows: bool = True, counts: bool = True, hold: bool = False
    ) -> Flush:
        """Everything to write now, stamped `seq`: unsettled writes as they were, then
        pending deltas of keys with nothing unsettled, leaving out every key another
        flush holds; counts only if `counts`, report
        rows only if `rows`. Empty when there is nothing.

        With `hold`, the flush's keys stay out of later takes until `release`, not
        just until `complete`: the journal's completed record must be on disk before
        a key is taken again, so a replay takes exactly what was taken."""
        if seq in self._flights or seq in self._holding:
            raise RuntimeError(f"flush {seq} is already in flight")
        targets = self._counts.take(seq) if counts else {}
        flush = Flush(seq, targets, self._report.spread().take(seq) if rows else {})
        self._taken = max(self._taken, seq)
        if flush:
            self._flights[seq] = flush
            if not hold:
                self._auto.add(seq)
        return flush

    def complete(self, flush: Flush, result: FlushResult) -> set[Target]:
        """Settle a flush: applied writes become known, unknown ones stay unsettled.

        Returns the targets whose visible count may have changed (other writers).
        """
        if self._flights.get(flush.seq) is not flush:
            raise RuntimeError("completing a flush that is not in flight")
        del self._flights[flush.seq]
        changed: set[Target] = set()
        for target, write in flush.targets.items():
            failed = target in result.failed_targets
            self._counts.settle(target, write, failed)
            if failed:
                continue
            self._pending_views -= write.delta.total
            if target in result.rejected_targets:
                continue  # set aside as a dead letter: never stored, never shown
            if result.described.get(target, ("", ""))[1]:  # the store has a path
                self._pathed.add(target)
            if self._bases.applied(target, write.delta, result.applied.get(target)):
                changed.add(target)
        for row, write in flush.rows.items():
            self._rows.settle(row, write, row in result.failed_rows)
        changed.update(t for t, seen in self._bases.undefer().items() if self.observe(t, seen))
        self._barriers.settled(
            (flush.targets, flush.rows), result.failed_targets | result.failed_rows
        )
        self._holding[flush.seq] = flush
        if flush.seq in self._auto:
            self._auto.discard(flush.seq)
            self.release(flush)
        return changed

    def release(self, flush: Flush) -> None:
        """A completed flush's keys may be taken again (its record is on disk)."""
        if self._holding.get(flush.seq) is not flush:
            raise RuntimeError("releasing a flush that is not completed")
        del self._holding[flush.seq]
        self._counts.release(flush.targets, flush.seq)
        self._rows.release(flush.rows, flush.seq)
