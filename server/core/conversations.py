"""Each socket's order: what it is owed, and what waits for stored counts.

A message that needs a count the node has never read (a first view or subscription
of a target) waits for it, and every later message of its socket is held behind
it; once the count is read they go on, in order. So a socket's views count in the
order it sent them, and it is never shown a count below what is stored. What it is
owed leaves through its `Outbox` (core/outbox.py), every count read as it leaves.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Collection, Hashable, Iterable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from livecount.core.outbox import Answer, Outbox, Render, Reply, Shown
from livecount.core.pages import Target

C = TypeVar("C", bound=Hashable)
A = TypeVar("A")  # what the engine asks of the edge for a message


@dataclass(slots=True)
class Waiting:
    """A socket's message that waits for stored counts."""

    message: Any  # a decoded protocol message
    targets: set[Target]  # whose stored counts it needs
    listing: set[Target]  # a view's target, to list before it counts (the page cap)
    entry: Reply | None  # a view's place in its socket's order
    held: deque[str | bytes]  # the socket's frames since, in order


class Conversations(Generic[C]):
    """Every socket's outbox, and the messages that wait for stored counts. A socket
    that closed while its message waited keeps both until it is handled: a view sent
    just before a page leaves is a view."""

    def __init__(self) -> None:
        self._boxes: dict[C, Outbox] = {}
        self._waiting: dict[C, Waiting] = {}
        self._asked: set[Target] = set()  # stored counts asked for, not yet read
        self._listing: set[Target] = set()  # listings asked for, not yet answered

    def open(self, conn: C) -> None:
        self._boxes[conn] = Outbox()

    def close(self, conn: C) -> None:
        if conn not in self._waiting:
            self._boxes.pop(conn, None)

    def owed(self, conn: C) -> int:
        """Messages owed or held: past `MAX_OWED`, the socket is read no further."""
        box = self._boxes.get(conn)
        waiting = self._waiting.get(conn)
        return (len(box) if box is not None else 0) + (len(waiting.held) if waiting else 0)

    def hold(self, conn: C, frame: str | bytes) -> bool:
        """Keep `frame` behind the socket's waiting message, if it has one."""
        if (waiting := self._waiting.get(conn)) is None:
            return False
        waiting.held.append(frame)
        return True

    # -- what a socket is owed -----------------------------------------------------------
    def say(self, conn: C, message: bytes) -> bool:
        """Owe `conn` a message without a count; False if nobody is left to tell."""
        if (box := self._boxes.get(conn)) is None:
            return False
        box.append(message)
        return True

    def refuse(self, conn: C, message: bytes, entry: Reply | None) -> bool:
        """An error for `conn`, in place of its view's reply when `entry` is one;
        False if nobody is left to tell."""
        if entry is not None:
            entry.error = message
            return True
        return self.say(conn, message)

    def reply(self, conn: C, target: Target) -> Reply:
        """A view's place in its socket's order (kept, unsent, if the socket is gone)."""
        entry = Reply(target)
        if (box := self._boxes.get(conn)) is not None:
            box.append(entry)
        return entry

    def answer(self, conn: C, targets: Iterable[Target]) -> bool:
        if (box := self._boxes.get(conn)) is None:
            return False
        box.extend(Answer(t) for t in targets)
        return True

    def output(self, conn: C, render: Render, watching: Collection[Target]) -> bytes:
        box = self._boxes.get(conn)
        return box.output(render, watching) if box else b""

    def push(self, watchers: Iterable[C], target: Target, shown: Shown) -> list[C]:
        """The watchers to write `target`'s count to now; the others get it in turn."""
        boxes = self._boxes
        return [
            conn
            for conn in watchers
            if (box := boxes.get(conn)) is not None and box.push(target, shown)
        ]

    # -- first reads -----------------------------------------------------------------
    def wait(
        self,
        conn: C,
        message: Any,
        missing: Iterable[Target],
        entry: Reply | None,
        listing: Iterable[Target] = (),
    ) -> tuple[tuple[Target, ...], tuple[Target, ...]]:
        """`message` waits for the counts of `missing` and the listing of `listing`;
        returns those of each nobody has asked for yet."""
        missing, listing = set(missing), set(listing)
        earlier = self._waiting.pop(conn, None)
        self._waiting[conn] = Waiting(
            message, missing, listing, entry, earlier.held if earlier else deque()
        )
        ask = tuple(t for t in missing if t not in self._asked)
        self._asked.update(ask)
        to_list = tuple(t for t in listing if t not in self._listing)
        self._listing.update(to_list)
        return ask, to_list

    def read(
        self, targets: Iterable[Target], listed: Iterable[Target], ready: Callable[[Waiting], bool]
    ) -> list[C]:
        """Counts were read, targets listed (or refused): the sockets whose waiting
        message can go on."""
        self._asked.difference_update(targets)
        self._listing.difference_update(listed)
        return [c for c, w in self._waiting.items() if ready(w)]

    def unread(self, targets: Iterable[Target]) -> list[C]:
        """Counts could not be read, or listings made: the sockets whose waiting message
        needed them."""
        failed = set(targets)
        self._asked -= failed
        self._listing -= failed
        return [c for c, w in self._waiting.items() if (w.targets | w.listing) & failed]

    def go_on(
        self,
        conns: Iterable[C],
        first: Callable[[C, Waiting], A | None],
        then: Callable[[C, str | bytes], A | None],
        open_: Callable[[C], bool],
    ) -> list[tuple[C, A]]:
        """Each of `conns`' waiting message (`first`), then its held frames in order
        (`then`), until one of them waits for counts in its turn; what each asks."""
        actions: list[tuple[C, A]] = []
        for conn in conns:
            waiting = self._waiting.pop(conn)
            if (action := first(conn, waiting)) is not None:
                actions.append((conn, action))
            held = waiting.held
            while held and not self._hold_back(conn, held):
                if (action := then(conn, held.popleft())) is not None:
                    actions.append((conn, action))
            if not open_(conn):
                self.gone(conn)
        return actions

    def _hold_back(self, conn: C, frames: deque[str | bytes]) -> bool:
        """If `conn` waits again, the frames not handled yet go back behind it."""
        if (waiting := self._waiting.get(conn)) is None:
            return False
        waiting.held.extend(frames)
        frames.clear()
        return True

    def gone(self, conn: C) -> None:
        """`conn` closed while its message waited, and is done with now."""
        if conn not in self._waiting:
            self._boxes.pop(conn, None)
