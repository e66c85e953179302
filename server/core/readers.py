"""Who reads what now: "reading now" is the number of open, visible, non-bot sockets
whose last view was that post or page, on this node and on the others.

Only numbers are kept: this node's sockets are the opaque connection objects the
engine already holds, and other nodes tell theirs as counts per target (through the
live feed, `core.feed`). No address or id of a reader is stored or shared.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable
from dataclasses import dataclass
from typing import Generic, TypeVar

from livecount.core.pages import Target

C = TypeVar("C", bound=Hashable)

__all__ = ["Elsewhere", "Readers"]

_STILL: tuple[Target, ...] = ()


class Readers(Generic[C]):
    """This node's readers, and the other nodes' (`elsewhere`). Every change returns
    the targets whose number moved, for the engine to push."""

    __slots__ = ("_hidden", "_reading", "elsewhere", "here", "moved")

    def __init__(self) -> None:
        self._reading: dict[C, Target] = {}  # every non-bot socket's last viewed target
        self._hidden: set[C] = set()  # sockets whose tab is hidden: not reading
        self.here: dict[Target, int] = {}  # visible readers of this node, per target
        self.moved: set[Target] = set()  # targets whose `here` moved since `take_moved`
        self.elsewhere = Elsewhere()

    def view(self, conn: C, target: Target) -> tuple[Target, ...]:
        """`conn` now reads `target` (in place of what it read before). The hot path:
        a page that views the target it reads already costs one lookup."""
        previous = self._reading.get(conn)
        if previous == target:
            return _STILL
        self._reading[conn] = target
        if conn in self._hidden:
            return _STILL
        self._add(target, 1)
        if previous is None:
            return (target,)
        self._add(previous, -1)
        return (target, previous)

    def leave(self, conn: C) -> tuple[Target, ...]:
        """`conn` viewed a page that is not counted: it reads nothing now."""
        previous = self._reading.pop(conn, None)
        if previous is None or conn in self._hidden:
            return _STILL
        self._add(previous, -1)
        return (previous,)

    def drop(self, conn: C) -> tuple[Target, ...]:
        """`conn` closed, with or without a close frame."""
        gone = self.leave(conn)
        self._hidden.discard(conn)
        return gone

    def visible(self, conn: C, visible: bool) -> tuple[Target, ...]:
        """The page's tab was shown (`visible`) or hidden."""
        if visible == (conn not in self._hidden):
            return _STILL
        if visible:
            self._hidden.discard(conn)
        else:
            self._hidden.add(conn)
        target = self._reading.get(conn)
        if target is None:
            return _STILL
        self._add(target, 1 if visible else -1)
        return (target,)

    def _add(self, target: Target, n: int) -> None:
        count = self.here.get(target, 0) + n
        if count:
            self.here[target] = count
        else:
            del self.here[target]
        self.moved.add(target)

    def take_moved(self) -> dict[Target, int]:
        """This node's number of each target that moved since the last call."""
        moved, self.moved = self.moved, set()
        return {target: self.here.get(target, 0) for target in moved}

    def now(self, target: Target) -> int:
        """Reading `target` now, on every node."""
        return self.here.get(target, 0) + self.elsewhere.totals.get(target, 0)

    def everywhere(self) -> dict[Target, int]:
        """Every target read now, on any node, with its readers."""
        merged = dict(self.elsewhere.totals)
        for target, n in self.here.items():
            merged[target] = merged.get(target, 0) + n
        return merged

    def heard(
        self, node: str, at: int, whole: bool, entries: Iterable[tuple[Target, int]], now: float
    ) -> list[Target]:
        """Another node's readers (`Elsewhere.heard`): the targets whose number moved."""
        return self.elsewhere.heard(node, at, whole, entries, now)

    def expire(self, now: float, expiry: float, horizon: int) -> list[Target]:
        """Forget nodes silent for `expiry` seconds (`Elsewhere.expire`)."""
        return self.elsewhere.expire(now, expiry, horizon)

    @property
    def sockets(self) -> int:
        """Sockets this node tracks (visible or not), for tests and metrics."""
        return len(self._reading.keys() | self._hidden)


@dataclass(slots=True)
class _Node:
    """What one other node last said."""

    at: int  # the stamp of its newest item applied (its own clock: compared only to its own)
    heard: float  # when that item was applied, on this node's clock
    readers: dict[Target, int]


class Elsewhere:
    """The other nodes' readers per target, as each node last said them (a whole
    snapshot now and then, the targets that moved in between). A node that has said
    nothing for `expiry` seconds on this node's clock is gone, with its readers: the
    way shard leases judge liveness (`core.leases`), so clocks never get compared."""

    __slots__ = ("_nodes", "totals")

    def __init__(self) -> None:
        self.totals: dict[Target, int] = {}  # summed over the other nodes
        self._nodes: dict[str, _Node] = {}

    def heard(
        self, node: str, at: int, whole: bool, entries: Iterable[tuple[Target, int]], now: float
    ) -> list[Target]:
        """`node`'s item stamped `at`: its whole snapshot, or the targets that moved.
        Items older than one applied already (the feed re-reads a window) change
        nothing."""
        said = self._nodes.get(node)
        if said is None:
            said = self._nodes[node] = _Node(at, now, {})
        elif at <= said.at:
            return []
        said.at, said.heard = at, now
        news = dict(entries)
        if whole:
            news = {target: 0 for target in said.readers} | news
        return [target for target, n in news.items() if self._set(said, target, n)]

    def _set(self, said: _Node, target: Target, n: int) -> bool:
        before = said.readers.get(target, 0)
        if n == before:
            return False
        if n:
            said.readers[target] = n
        else:
            del said.readers[target]
        total = self.totals.get(target, 0) + n - before
        if total:
            self.totals[target] = total
        else:
            del self.totals[target]
        return True

    def expire(self, now: float, expiry: float, horizon: int) -> list[Target]:
        """Drop the readers of nodes silent for `expiry` seconds. A node is remembered
        (its newest stamp) until its items fall behind `horizon`, the oldest stamp the
        feed still reads: re-read, they would bring a gone node back."""
        changed: list[Target] = []
        for node, said in list(self._nodes.items()):
            if now - said.heard < expiry:
                continue
            changed += [t for t in list(said.readers) if self._set(said, t, 0)]
            if said.at < horizon:
                del self._nodes[node]
        return changed
