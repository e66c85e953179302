"""Counting: views in, coalesced deltas out, and what this node believes each count is.

Pure bookkeeping, no I/O. A view lands in `pending`; a flush moves `pending` to
`inflight`; the store's answer (the writer's new totals) settles it into `known`.
The count a client sees is always `known + inflight + pending`, so a node reads its
own writes before DynamoDB Streams has copied them to the reader table.

Counts only grow, so every observation from the store (reader read, writer answer,
stream image) merges by taking the larger value, which makes late and repeated
observations harmless.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal, NamedTuple

from .pages import Target


class Counts(NamedTuple):
    total: int
    unique: int

    def plus(self, delta: Delta) -> Counts:
        return Counts(self.total + delta.total, self.unique + delta.unique)

    def max(self, other: Counts) -> Counts:
        return Counts(max(self.total, other.total), max(self.unique, other.unique))


ZERO = Counts(0, 0)


@dataclass(slots=True)
class Delta:
    """Views of one target since the last flush; one DynamoDB ADD carries all of them."""

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


@dataclass(slots=True)
class Flush:
    """A batch taken from the ledger: one ADD per target and per report row."""

    targets: dict[Target, Delta] = field(default_factory=dict)
    rows: dict[Row, Delta] = field(default_factory=dict)
    new: set[Target] = field(default_factory=set)  # not yet in the page index

    @property
    def views(self) -> int:
        return sum(d.total for d in self.targets.values())

    def __bool__(self) -> bool:
        return bool(self.targets or self.rows)


@dataclass(slots=True)
class FlushResult:
    """What the store made of a flush: new totals for what applied, keys that failed."""

    applied: dict[Target, Counts] = field(default_factory=dict)
    failed_targets: set[Target] = field(default_factory=set)
    failed_rows: set[Row] = field(default_factory=set)
    failed_index: set[Target] = field(default_factory=set)


class Busy(Exception):
    """Too many views wait for the store; refusing is honest, counting them is not."""


class Ledger:
    def __init__(self, max_pending_views: int = 1_000_000) -> None:
        self.max_pending_views = max_pending_views
        self._known: dict[Target, Counts] = {}
        self._pending: dict[Target, Delta] = {}
        self._rows: dict[Row, Delta] = {}
        self._indexed: set[Target] = set()
        self._inflight: Flush | None = None
        # Store observations that arrive while a flush is in flight may or may not
        # include it; they are held back until the flush settles.
        self._deferred: dict[Target, Counts] = {}
        self._pending_views = 0

    # -- reading ---------------------------------------------------------------
    def has_base(self, target: Target) -> bool:
        return target in self._known

    def current(self, target: Target) -> Counts:
        counts = self._known.get(target, ZERO)
        if self._inflight is not None and (delta := self._inflight.targets.get(target)):
            counts = counts.plus(delta)
        if delta := self._pending.get(target):
            counts = counts.plus(delta)
        return counts

    @property
    def pending_views(self) -> int:
        """Views accepted and not yet confirmed by the store (pending plus in flight)."""
        return self._pending_views

    @property
    def idle(self) -> bool:
        return not self._pending and not self._rows and self._inflight is None

    # -- writing ---------------------------------------------------------------
    def record(
        self, target: Target, *, refreshed: bool, hour: str, title: str | None = None,
        referrer: str | None = None,
    ) -> Counts:
        """Count one view in the `hour` bucket and return the target's count including it."""
        if self._pending_views >= self.max_pending_views:
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
        if self._inflight is not None and target in self._inflight.targets:
            self._deferred[target] = self._deferred.get(target, ZERO).max(counts)
            return False
        before = self._known.get(target)
        after = counts if before is None else before.max(counts)
        self._known[target] = after
        return after != before

    def take(self) -> Flush:
        """Move everything pending into one in-flight flush (empty when idle)."""
        if self._inflight is not None:
            raise RuntimeError("a flush is already in flight")
        flush = Flush(self._pending, self._rows, set(self._pending) - self._indexed)
        self._pending, self._rows = {}, {}
        if flush:
            self._inflight = flush
        return flush

    def complete(self, flush: Flush, result: FlushResult) -> set[Target]:
        """Settle a flush: applied deltas become known, failed ones return to pending.

        Returns the targets whose visible count may have changed (other writers).
        """
        if flush is not self._inflight:
            raise RuntimeError("completing a flush that is not in flight")
        self._inflight = None
        changed: set[Target] = set()
        for target, delta in flush.targets.items():
            if target in result.failed_targets:
                self._pending.setdefault(target, Delta()).add(delta)
                continue
            self._pending_views -= delta.total
            before = self.current(target)
            base = self._known.get(target, ZERO).plus(delta)
            if (answer := result.applied.get(target)) is not None:
                base = base.max(answer)
            self._known[target] = base
            if (seen := self._deferred.pop(target, None)) is not None:
                self._known[target] = base.max(seen)
            if self.current(target) != before.plus(delta):
                changed.add(target)
        for row in result.failed_rows:
            self._rows.setdefault(row, Delta()).add(flush.rows[row])
        self._indexed |= flush.new - result.failed_index
        deferred, self._deferred = self._deferred, {}
        changed.update(t for t, counts in deferred.items() if self.observe(t, counts))
        return changed
