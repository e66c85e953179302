"""What this node stored, kept to tell the other nodes on the live feed: the post
counts its stream consumer copied (`PostSharing`), and what its flushes stored that
no stream carries (`Sharing`): its pages' counts (HomeAndProfile has no stream) and
its report rows' values, as the store answered. Pure.

Told while other nodes are alive; while this one is alone nobody listens, but the last
`recent(lease_time)` seconds are kept, and told when another node appears (it may have
read a span before this node knew of it); what a telling failed to say goes with the
next.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from typing import Final, Generic, TypeVar

from livecount.core import feed
from livecount.core.bases import ZERO, Counts
from livecount.core.pages import Target
from livecount.core.report_rows import Row

RECENT: Final = 30.0  # seconds a node may take to start: from its first read to its presence


def recent(lease_time: float) -> float:
    """How far back to tell again when a node appears: it may have read the store
    RECENT seconds before it announced itself, and the others see an announcement at
    their next lease round, up to `lease_time`/3 later (at --lease-time 150, 50 s: a
    fixed 30 s told a newcomer nothing of what it missed)."""
    return RECENT + lease_time / 3


Said = tuple[int, int, bool]  # a post's total and unique views, and whether it went down
K = TypeVar("K")
V = TypeVar("V")


class Recent(Generic[K, V]):
    """The newest value of each key set in the last `window` seconds, oldest first: what
    a node that appears may have missed (it read the store before this node knew of
    it, and this node told nobody meanwhile)."""

    def __init__(self, clock: Callable[[], float], window: float = RECENT) -> None:
        self.clock = clock
        self.window = window
        self._values: dict[K, tuple[float, V]] = {}

    def set(self, key: K, value: V) -> None:
        self._values.pop(key, None)
        self._values[key] = (self.clock(), value)

    def items(self) -> dict[K, V]:
        since = self.clock() - self.window
        if self._values and next(iter(self._values.values()))[0] < since:
            self._values = {k: v for k, v in self._values.items() if v[0] >= since}
        return {k: v for k, (_, v) in self._values.items()}

    def drop(self, gone: Callable[[K], bool]) -> None:
        self._values = {k: v for k, v in self._values.items() if not gone(k)}


class Sharing:
    def __init__(self, clock: Callable[[], float], window: float = RECENT) -> None:
        self.clock = clock
        self.on = False  # other nodes are alive: what this one stores is told them
        self._pages: dict[str, Counts] = {}  # to tell: pages' counts
        self._rows: dict[Row, Counts] = {}  # to tell: report rows' values
        self._recent: Recent[Target | Row, Counts] = Recent(clock, window)
        self._taken: tuple[dict[str, Counts], dict[Row, Counts]] = ({}, {})  # the last take

    def stored(self, key: Target | Row, counts: Counts) -> None:
        """A page's counts, or a report row's value, as stored now."""
        self._recent.set(key, counts)
        if self.on:
            self._queue(key, counts)

    def _queue(self, key: Target | Row, counts: Counts) -> None:
        if isinstance(key, Target):
            self._pages[key.id] = counts.max(self._pages.get(key.id, ZERO))
        else:
            self._rows[key] = counts.max(self._rows.get(key, ZERO))

    def take(self, alone: bool) -> list[bytes]:
        """Feed payloads of what was stored since the last take; nothing while alone."""
        recent = self._recent.items()
        if alone:
            self.on = False
            self._pages.clear()
            self._rows.clear()
            return []
        if not self.on:  # a node came: the recent past too
            self.on = True
            for key, counts in recent.items():
                self._queue(key, counts)
        pages, rows = self._pages, self._rows
        self._pages, self._rows = {}, {}
        self._taken = (pages, rows)
        return list(feed.stored(pages, _entries(rows)))

    def forget(self, targets: list[Target], rows: bool) -> None:
        """A reset took these counts back (and every report row's, with `rows`): a
        value kept from before it must not be told again, or other nodes, which merge
        by maximum, would show it once more."""
        gone: set[Target | Row] = set(targets)
        self._recent.drop(lambda k: k in gone or (rows and isinstance(k, Row)))
        for target in targets:
            if target.kind == "page":
                self._pages.pop(target.id, None)
                self._taken[0].pop(target.id, None)
        if rows:
            self._rows.clear()
            self._taken[1].clear()

    def untold(self) -> None:
        """The payloads of the last take were not written: they go with the next take,
        however long the feed stays away (the others, alive, never read them again)."""
        pages, rows = self._taken
        for name, counts in pages.items():
            self._pages[name] = counts.max(self._pages.get(name, ZERO))
        for row, counts in rows.items():
            self._rows[row] = counts.max(self._rows.get(row, ZERO))


def _entries(rows: dict[Row, Counts]) -> Iterator[feed.StoredRow]:
    return ((r.table, r.target, r.sort, c.total, c.unique) for r, c in rows.items())


class PostSharing:
    """The post counts a stream consumer copied, to tell on the live feed as
    `feed.chunks` (then the resets of those that went down, after every image before
    them), while other nodes are alive. When one appears, the last `window` seconds'
    are told too: a node that comes may have read a count before this one knew of it,
    and nobody told it since. What a telling that failed said goes with the next,
    however long the feed stays away (the others, alive, never read the store again)."""

    def __init__(self, clock: Callable[[], float], window: float = RECENT) -> None:
        self._recent: Recent[str, Said] = Recent(clock, window)
        self.owed = True  # the recent counts (and the untold) are owed to the next telling
        self._untold: dict[str, Said] = {}  # what tellings that failed said
        self._saying: dict[str, Said] = {}  # what the last take said

    def take(
        self, changes: Mapping[str, tuple[int, int]], down: list[str], alone: bool
    ) -> list[bytes]:
        """Feed payloads for a batch's newest counts and the articles that went down;
        nothing while alone."""
        for article, (total, unique) in changes.items():
            self._recent.set(article, (total, unique, article in down))
        if alone:
            self.owed, self._untold, self._saying = True, {}, {}
            return []
        if self.owed:
            self.owed = False
            self._saying = {**self._untold, **self._recent.items()}  # the newest of each
            down = [a for a, (_, _, fell) in self._saying.items() if fell]
        else:
            self._untold = {}  # the last telling went
            self._saying = {a: (total, unique, a in down) for a, (total, unique) in changes.items()}
        told = {a: (total, unique) for a, (total, unique, _) in self._saying.items()}
        return [*feed.chunks(told), *feed.reset_payloads(("post", a) for a in down)]

    def untold(self) -> None:
        """The payloads of the last take were not written: tell them with the next."""
        self.owed = True
        self._untold.update(self._saying)
