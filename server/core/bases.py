"""What the store was seen to hold per target: the base every count shown adds to."""

from __future__ import annotations

from collections.abc import Iterable
from typing import NamedTuple

from livecount.core.pages import Target
from livecount.core.write_order import Delta

__all__ = ["ZERO", "Bases", "Counts"]


class Counts(NamedTuple):
    total: int
    unique: int

    def plus(self, delta: Delta | Counts) -> Counts:
        return Counts(self.total + delta.total, self.unique + delta.unique)

    def minus(self, other: Counts) -> Counts:
        return Counts(self.total - other.total, self.unique - other.unique)

    def max(self, other: Counts) -> Counts:
        return Counts(max(self.total, other.total), max(self.unique, other.unique))


ZERO = Counts(0, 0)


class Bases:
    """Per target, the count the store was seen to hold (`known`). Counts only grow,
    so observations merge by taking the larger value. One read while a write of the
    target is in doubt may or may not include that write: it is kept apart as a
    floor (`deferred`), not a base to add to, until the write settles."""

    __slots__ = ("deferred", "known")

    def __init__(self) -> None:
        self.known: dict[Target, Counts] = {}
        self.deferred: dict[Target, Counts] = {}

    def __contains__(self, target: Target) -> bool:
        return target in self.known or target in self.deferred

    def shown(self, target: Target, in_doubt: Delta | None) -> Counts:
        """The base plus the write in doubt, never below a deferred read."""
        counts = self.known.get(target, ZERO)
        if in_doubt is not None:
            counts = counts.plus(in_doubt)
        if (seen := self.deferred.get(target)) is not None:
            counts = counts.max(seen)
        return counts

    def observe(self, target: Target, counts: Counts, in_doubt: bool) -> bool:
        """Merge a count read from the store; True when the base changed."""
        if in_doubt:
            self.deferred[target] = self.deferred.get(target, ZERO).max(counts)
            return False
        before = self.known.get(target)
        after = counts if before is None else before.max(counts)
        self.known[target] = after
        return after != before

    def applied(self, target: Target, delta: Delta, answer: Counts | None) -> bool:
        """A write of `delta` was stored, and the store answered the stored count (or
        not); True when the base moved by more than the write (other writers)."""
        before = self.known.get(target, ZERO)
        # The store's answer already includes this write; without one, add it.
        known = before.plus(delta) if answer is None else before.max(answer)
        if (seen := self.deferred.pop(target, None)) is not None:
            known = known.max(seen)
        self.known[target] = known
        return known != before.plus(delta)

    def undefer(self) -> dict[Target, Counts]:
        """Every deferred read, taken out to be observed again."""
        deferred, self.deferred = self.deferred, {}
        return deferred

    def forget(self, targets: Iterable[Target] | None = None) -> None:
        """Drop the bases of `targets` (of all, by default): they are read again."""
        if targets is None:
            self.known.clear()
            self.deferred.clear()
            return
        for target in targets:
            self.known.pop(target, None)
            self.deferred.pop(target, None)

    def trim(self, most: int, busy: set[Target]) -> int:
        """Forget the earliest-seen bases past `most` targets, except `busy` ones."""
        excess = len(self.known) - most
        if excess <= 0:
            return 0
        stale = [t for t in self.known if t not in busy][:excess]
        for target in stale:
            del self.known[target]
            self.deferred.pop(target, None)
        return len(stale)
