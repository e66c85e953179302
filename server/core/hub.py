"""Who watches what, and which watched counts changed since the last push.

Pure bookkeeping over opaque connection objects; the server turns `due()` into
`websockets.broadcast` calls. Changes are collected in a set and pushed together, so
a hot article costs one push per interval, not one per view.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable
from typing import Generic, TypeVar

from livecount.core.pages import Target

C = TypeVar("C", bound=Hashable)


class TooManySubscriptions(Exception):
    pass


class Hub(Generic[C]):
    def __init__(self, max_per_connection: int = 1000) -> None:
        self.max_per_connection = max_per_connection
        self._watchers: dict[Target, set[C]] = {}
        self._watching: dict[C, set[Target]] = {}
        self._dirty: set[Target] = set()

    def subscribe(self, conn: C, targets: Iterable[Target]) -> None:
        """All or nothing: a request that would pass the limit adds none of its targets."""
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
        watching = self._watching.get(conn, set())
        for target in targets:
            watching.discard(target)
            self._forget(conn, target)
        if not watching:
            self._watching.pop(conn, None)

    def drop(self, conn: C) -> None:
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

    def changed(self, target: Target) -> bool:
        """Mark a watched target for the next push; False if nobody watches it."""
        if target in self._watchers:
            self._dirty.add(target)
            return True
        return False

    def due(self) -> list[tuple[Target, set[C]]]:
        """Targets changed since the last call that still have watchers, with them."""
        dirty, self._dirty = self._dirty, set()
        return [(t, w) for t in dirty if (w := self._watchers.get(t))]
