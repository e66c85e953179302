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
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal, NamedTuple, TypeVar

from livecount.core.errors import Busy
from livecount.core.pages import Target

__all__ = ["SITE", "ZERO", "Busy", "Counts", "Delta", "Flush", "FlushResult", "Ledger",
           "Row", "Write"]


class Counts(NamedTuple):
    total: int
    unique: int

    def plus(self, delta: Delta) -> Counts:
        return Counts(self.total + delta.total, self.unique + delta.unique)

    def max(self, other: Counts) -> Counts:
        return Counts(max(self.total, other.total), max(self.unique, other.unique))


ZERO = Counts(0, 0)
K = TypeVar("K", "Target", "Row")


@dataclass(slots=True)
class Delta:
    """Views of one key since the last flush; one DynamoDB ADD carries all of them."""

    total: int = 0
    unique: int = 0
    title: str | None = None

    def add(self, other: Delta) -> None:
        self.total += other.total
        self.unique += other.unique
        if other.title:
            self.title = other.title


SITE = "site"  # the report rows that sum every page, for site-wide reports


class Row(NamedTuple):
    """A report counter: views of `target` (a `Target.ref` or SITE) from a referrer
    host, or in an hour bucket. Reports only; live counts never read these."""

    table: Literal["referrer", "timeline"]
    target: str
    sort: str  # the referrer host, or the hour as YYYY-MM-DDTHH (UTC)


class Write(NamedTuple):
    """One idempotent ADD: applied at most once per (key, node, seq)."""

    seq: int
    delta: Delta


@dataclass(slots=True)
class Flush:
    """A batch taken from the ledger: one write per target and per report row."""

    seq: int = 0
    targets: dict[Target, Write] = field(default_factory=dict)
    rows: dict[Row, Write] = field(default_factory=dict)
    new: set[Target] = field(default_factory=set)  # not yet in the page index

    @property
    def views(self) -> int:
        return sum(w.delta.total for w in self.targets.values())

    def __bool__(self) -> bool:
        return bool(self.targets or self.rows or self.new)


@dataclass(slots=True)
class FlushResult:
    """What the store made of a flush: the stored totals of what applied (when the
    store said), the keys whose outcome is unknown (`failed_*`: retried unchanged),
    and the keys the store refused as invalid (`rejected_*`, with its error: set
    aside as dead letters, never retried, so they cannot hold anything else up)."""

    applied: dict[Target, Counts] = field(default_factory=dict)
    failed_targets: set[Target] = field(default_factory=set)
    failed_rows: set[Row] = field(default_factory=set)
    failed_index: set[Target] = field(default_factory=set)
    rejected_targets: dict[Target, str] = field(default_factory=dict)
    rejected_rows: dict[Row, str] = field(default_factory=dict)
    rejected_index: dict[Target, str] = field(default_factory=dict)

    @classmethod
    def nothing_known(cls, flush: Flush) -> FlushResult:
        return cls(failed_targets=set(flush.targets), failed_rows=set(flush.rows),
                   failed_index=set(flush.new))


class Ledger:
    def __init__(self, max_pending_views: int = 1_000_000) -> None:
        self.max_pending_views = max_pending_views
        self._known: dict[Target, Counts] = {}
        self._pending: dict[Target, Delta] = {}
        self._rows: dict[Row, Delta] = {}
        self._unsettled: dict[Target, Write] = {}
        self._unsettled_rows: dict[Row, Write] = {}
        self._indexed: set[Target] = set()
        self._flights: dict[int, Flush] = {}  # taken, not completed, by sequence number
        self._sending: dict[Target, Write] = {}  # the target writes of those flights
        self._holding: dict[int, Flush] = {}  # completed, keys held until released
        self._auto: set[int] = set()  # flights taken without `hold`: released on completion
        self._held: dict[Target, int] = {}  # key → the flush it is in, until released
        self._held_rows: dict[Row, int] = {}
        # Store observations of a key with a write in flight or unsettled may or may
        # not include that write; they wait until it settles.
        self._deferred: dict[Target, Counts] = {}
        self._pending_views = 0

    # -- reading ---------------------------------------------------------------
    def has_base(self, target: Target) -> bool:
        """Whether the stored count was read (or told by the store): only then may a
        count be shown, or it could be less than what is stored."""
        return target in self._known or target in self._deferred

    def current(self, target: Target) -> Counts:
        """The count to show: never below what the store was seen to hold, and
        including every view this node accepted."""
        counts = self._known.get(target, ZERO)
        write = self._unsettled.get(target)  # when resent, the same write is in flight
        if write is None:
            write = self._sending.get(target)
        if write is not None:
            counts = counts.plus(write.delta)
        if (seen := self._deferred.get(target)) is not None:
            # Read while a write was unsettled: it may or may not include that write,
            # so it is a floor, not a base to add to.
            counts = counts.max(seen)
        if delta := self._pending.get(target):
            counts = counts.plus(delta)
        return counts

    def forget_bases(self) -> None:
        """Drop every base, keeping what waits for the store. After a journal replay
        the bases are only the replayed views, not the stored counts: each target's
        stored count must be read again before it is shown."""
        self._known.clear()
        self._deferred.clear()

    @property
    def pending_views(self) -> int:
        """Views accepted and not yet confirmed by the store."""
        return self._pending_views

    @property
    def idle(self) -> bool:
        """Nothing accepted waits for the store: every view so far is stored."""
        return not (self._pending or self._rows or self._unsettled or self._unsettled_rows
                    or self._flights or self._holding)

    @property
    def in_flight(self) -> int:
        """Flushes taken and not yet released."""
        return len(self._flights) + len(self._holding)

    def waiting(self, rows: bool = True, counts: bool = True) -> bool:
        """Whether a take of the same kinds could find anything. Cheap, and may say
        yes when everything waiting is held by flushes in flight."""
        return bool((counts and (self._pending or self._unsettled))
                    or (rows and (self._rows or self._unsettled_rows)))

    def outstanding(self) -> tuple[dict[Target | Row, tuple[int, int]],
                                   dict[Target | Row, Write]]:
        """What the store may still lack: pending deltas (total, unique) per key, and
        the writes of unknown outcome (unsettled or in flight) per key. What a journal
        replay must rebuild."""
        pending: dict[Target | Row, tuple[int, int]] = {}
        writes: dict[Target | Row, Write] = {}
        for deltas in (self._pending, self._rows):
            for key, delta in deltas.items():
                pending[key] = (delta.total, delta.unique)
        for flush in self._flights.values():
            for each in (flush.targets, flush.rows):
                writes.update(each.items())
        for each in (self._unsettled, self._unsettled_rows):
            writes.update(each.items())
        return pending, writes

    # -- writing ---------------------------------------------------------------
    def record(
        self, target: Target, *, refreshed: bool, hour: str, title: str | None = None,
        referrer: str | None = None, force: bool = False,
    ) -> Counts:
        """Count one view in the `hour` bucket and return the target's count including it.

        `force` skips the bound, for views that were accepted before (journal replay).
        """
        if self._pending_views >= self.max_pending_views and not force:
            raise Busy(f"{self._pending_views} views wait for the store")
        unique = 0 if refreshed else 1
        delta = self._pending.get(target)
        if delta is None:
            delta = self._pending[target] = Delta()
        delta.total += 1
        delta.unique += unique
        if title:
            delta.title = title
        for ref in (target.ref, SITE):
            self._count(Row("timeline", ref, hour), unique)
            if referrer:
                self._count(Row("referrer", ref, referrer), unique)
        self._pending_views += 1
        return self.current(target)

    def _count(self, row: Row, unique: int) -> None:
        delta = self._rows.get(row)
        if delta is None:
            delta = self._rows[row] = Delta()
        delta.total += 1
        delta.unique += unique

    def observe(self, target: Target, counts: Counts) -> bool:
        """Merge a count read from the store; True when the visible count changed."""
        if target in self._unsettled or target in self._sending:
            self._deferred[target] = self._deferred.get(target, ZERO).max(counts)
            return False
        before = self._known.get(target)
        after = counts if before is None else before.max(counts)
        self._known[target] = after
        return after != before

    def trim(self, most: int, keep: set[Target]) -> int:
        """Forget the earliest-seen counts past `most` targets, except what is watched
        or waits for the store: a reader re-reads them when it needs them. Keeps a
        client inventing article ids from growing memory without end."""
        excess = len(self._known) - most
        if excess <= 0:
            return 0
        busy = keep | self._pending.keys() | self._unsettled.keys() | self._held.keys()
        stale = [t for t in self._known if t not in busy][:excess]
        for target in stale:
            del self._known[target]
            self._deferred.pop(target, None)
        if len(self._indexed) > most:
            self._indexed.clear()  # costs one idempotent index write per target, later
        return len(stale)

    def take(self, seq: int, *, rows: bool = True, counts: bool = True,
             hold: bool = False) -> Flush:
        """Everything to write now, stamped `seq`: unsettled writes as they were, then
        pending deltas of keys with nothing unsettled, leaving out every key another
        flush holds; counts (and their page-index entries) only if `counts`, report
        rows only if `rows`. Empty when there is nothing.

        With `hold`, the flush's keys stay out of later takes until `release`, not
        just until `complete`: the journal's completed record must be on disk before
        a key is taken again, so a replay takes exactly what was taken."""
        if seq in self._flights or seq in self._holding:
            raise RuntimeError(f"flush {seq} is already in flight")
        targets: dict[Target, Write] = {}
        if counts:
            targets, self._pending = _stamp(seq, self._unsettled, self._pending, self._held)
        taken_rows: dict[Row, Write] = {}
        if rows:
            taken_rows, self._rows = _stamp(seq, self._unsettled_rows, self._rows,
                                            self._held_rows)
        flush = Flush(seq, targets, taken_rows, set(targets) - self._indexed)
        if flush:
            self._flights[seq] = flush
            self._sending.update(targets)
            self._held.update(dict.fromkeys(targets, seq))
            self._held_rows.update(dict.fromkeys(taken_rows, seq))
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
            del self._sending[target]
            if target in result.failed_targets:
                self._unsettled[target] = write
                continue
            self._unsettled.pop(target, None)
            self._pending_views -= write.delta.total
            if target in result.rejected_targets:
                continue  # set aside as a dead letter: never stored, never shown
            before = self._known.get(target, ZERO)
            # The store's answer already includes this write; without one, add it.
            answer = result.applied.get(target)
            known = before.plus(write.delta) if answer is None else before.max(answer)
            if (seen := self._deferred.pop(target, None)) is not None:
                known = known.max(seen)
            self._known[target] = known
            if known != before.plus(write.delta):
                changed.add(target)
        for row, write in flush.rows.items():
            if row in result.failed_rows:
                self._unsettled_rows[row] = write
            else:
                self._unsettled_rows.pop(row, None)
        self._indexed |= flush.new - result.failed_index  # a rejected one is not retried
        deferred, self._deferred = self._deferred, {}
        changed.update(t for t, counts in deferred.items() if self.observe(t, counts))
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
        for target in flush.targets:
            if self._held.get(target) == flush.seq:
                del self._held[target]
        for row in flush.rows:
            if self._held_rows.get(row) == flush.seq:
                del self._held_rows[row]


def _stamp(seq: int, unsettled: dict[K, Write], pending: dict[K, Delta], held: dict[K, int],
           ) -> tuple[dict[K, Write], dict[K, Delta]]:
    """Unsettled writes go again unchanged; a pending delta of the same key must wait,
    since the store only accepts a key's writes in sequence order. A key another
    flush holds waits, whatever it has."""
    writes = {key: write for key, write in unsettled.items() if key not in held}
    waiting: dict[K, Delta] = {}
    for key, delta in pending.items():
        if key in unsettled or key in held:
            waiting[key] = delta
        else:
            writes[key] = Write(seq, delta)
    return writes, waiting
