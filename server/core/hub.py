"""Who watches what, and which watched counts changed since the last push.

Pure bookkeeping over opaque connection objects, and the only owner of subscription
state: a connection watches what it subscribed to plus the page it last viewed. The
node turns `due()` into broadcasts. Changes are collected in a set and pushed
together, so a hot article costs one push per interval, not one per view.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable
from typing import Generic, TypeVar

from livecount.core.errors import TooManySubscriptions
from livecount.core.pages import Target

C = TypeVar("C", bound=Hashable)


__all__ = ["Hub", "TooManySubscriptions"]


class Hub(Generic[C]):
    def __init__(self, max_per_connection: int = 1000) -> None:
        self.max_per_connection = max_per_connection
        self._watchers: dict[Target, set[C]] = {}
        self._watching: dict[C, set[Target]] = {}
        self._explicit: dict[C, set[Target]] = {}  # asked for with `subscribe`
        self._viewing: dict[C, Target] = {}  # the page it last viewed
        self._dirty: dict[Target, float | None] = {}  # changed since the last push: when

    def view(self, conn: C, target: Target) -> None:
        """A view watches its own page, in place of the page viewed before (unless that
        one was subscribed to): a long single-page session watches one page, not all.
        A full watch list does not refuse the view; the page just is not watched."""
        previous = self._viewing.get(conn)
        if previous == target:
            return
        self._viewing.pop(conn, None)
        if previous is not None and previous not in self._explicit.get(conn, ()):
            self._unwatch(conn, [previous])
        try:
            self._watch(conn, [target])
        except TooManySubscriptions:
            return
        self._viewing[conn] = target

    def viewing(self, conn: C) -> Target | None:
        return self._viewing.get(conn)

    def subscribe(self, conn: C, targets: Iterable[Target]) -> None:
        """All or nothing: a request that would pass the limit adds none of its targets."""
        targets = set(targets)
        self._watch(conn, targets)
        self._explicit.setdefault(conn, set()).update(targets)

    def _watch(self, conn: C, targets: Iterable[Target]) -> None:
        targets = set(targets)
        watching = self._watching.setdefault(conn, set())
        if len(watching | targets) > self.max_per_connection:
            if not watching:
                del self._watching[conn]
            raise TooManySubscriptions(
                f"at most {self.max_per_connection} subscriptions per connection"
            )
        watching |= targets
        for target in targets:
            self._watchers.setdefault(target, set()).add(conn)

    def unsubscribe(self, conn: C, targets: Iterable[Target]) -> None:
        """Stop watching `targets`, whether subscribed to or viewed."""
        targets = set(targets)
        if (explicit := self._explicit.get(conn)) is not None:
            explicit -= targets
            if not explicit:
                del self._explicit[conn]
        if self._viewing.get(conn) in targets:
            del self._viewing[conn]
        self._unwatch(conn, targets)

    def _unwatch(self, conn: C, targets: Iterable[Target]) -> None:
        watching = self._watching.get(conn, set())
        for target in targets:
            watching.discard(target)
            self._forget(conn, target)
        if not watching:
            self._watching.pop(conn, None)

    def drop(self, conn: C) -> None:
        self._explicit.pop(conn, None)
        self._viewing.pop(conn, None)
        for target in self._watching.pop(conn, set()):
            self._forget(conn, target)

    def _forget(self, conn: C, target: Target) -> None:
        watchers = self._watchers.get(target)
        if watchers is not None:
            watchers.discard(conn)
            if not watchers:
                del self._watchers[target]

    def watchers(self, target: Target) -> set[C]:
        return self._watchers.get(target, set())

    def watched(self) -> set[Target]:
        return set(self._watchers)

    def subscriptions(self, conn: C) -> set[Target]:
        return self._watching.get(conn, set())

    @property
    def connections(self) -> int:
        return len(self._watching)

    def changed(self, target: Target, now: float | None = None) -> bool:
        """Mark a watched target for the next push (from `now`, to time the wait);
        False if nobody watches it."""
        if target in self._watchers:
            if self._dirty.get(target) is None:
                self._dirty[target] = now
            return True
        return False

    @property
    def waiting(self) -> bool:
        """Whether a push is due (cheap: the push loop asks every tick)."""
        return bool(self._dirty)

    def due(self, now: float) -> tuple[list[Target], list[float]]:
        """Targets changed since the last call that still have watchers, and how long
        each change waited for its push."""
        dirty, self._dirty = self._dirty, {}
        due = [t for t in dirty if t in self._watchers]
        return due, [now - since for t in due if (since := dirty[t]) is not None]
