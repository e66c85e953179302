"""What this node stored, kept to tell the other nodes on the live feed: the post
counts its stream consumer copied (`PostSharing`), and what its flushes stored that
no stream carries (`Sharing`): its pages' counts (HomeAndProfile has no stream) and
its report rows' values, as the store answered. Pure.

Told while other nodes are alive; while this one is alone nobody listens, but the last
`recent(lease_time)` seconds are kept, and told when another node appears (it may have
read a span before this node knew of it) or when a telling failed.
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
        self._again = False  # the last telling failed, or a node came: tell Recent again

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
        if not self.on or self._again:
            self.on, self._again = True, False
            for key, counts in recent.items():
                self._queue(key, counts)
        pages, rows = self._pages, self._rows
        self._pages, self._rows = {}, {}
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
        if rows:
            self._rows.clear()

    def untold(self) -> None:
        """The payloads of the last take were not written: tell the recent past again."""
        self._again = True


def _entries(rows: dict[Row, Counts]) -> Iterator[feed.StoredRow]:
    return ((r.table, r.target, r.sort, c.total, c.unique) for r, c in rows.items())


class PostSharing:
    """The post counts a stream consumer copied, to tell on the live feed as
    `feed.chunks` (then the resets of those that went down, after every image before
    them), while other nodes are alive. When one appears, or after a telling that
    failed, the last `window` seconds' are told too: a node that comes may have read a
    count before this one knew of it, and nobody told it since."""

    def __init__(self, clock: Callable[[], float], window: float = RECENT) -> None:
        self._recent: Recent[str, tuple[int, int, bool]] = Recent(clock, window)  # went down?
        self.owed = True  # the recent counts are owed to the next telling

    def take(
        self, changes: Mapping[str, tuple[int, int]], down: list[str], alone: bool
    ) -> list[bytes]:
        """Feed payloads for a batch's newest counts and the articles that went down;
        nothing while alone."""
        for article, (total, unique) in changes.items():
            self._recent.set(article, (total, unique, article in down))
        if alone:
            self.owed = True
            return []
        if self.owed:
            self.owed = False
            recent = self._recent.items()
            changes = {a: (total, unique) for a, (total, unique, _) in recent.items()}
            down = [a for a, (_, _, fell) in recent.items() if fell]
        return [*feed.chunks(changes), *feed.reset_payloads(("post", a) for a in down)]

    def untold(self) -> None:
        """The payloads of the last take were not written: tell the recent ones again."""
        self.owed = True
