"""The live feed's reading, against a store that answers from a list: counts merge by
maximum, and a reset is the one thing that brings one down, for good."""

import json
from typing import Any, cast

from livecount.core import feed
from livecount.core.ledger import Counts
from livecount.core.pages import Target
from livecount.node.livefeed import LiveFeed

from tests.unit.test_engine import A, T, engine


class Feed:
    """What `LiveFeed` asks of the store: the feed's items (`store.feed`), and the stored
    counts."""

    def __init__(self) -> None:
        self.items: list[tuple[int, str]] = []
        self.stored: dict[Target, Counts] = {}
        self.feed = self

    async def read(self, after: int) -> list[tuple[int, str]]:
        return sorted(i for i in self.items if i[0] > after)

    async def read_counts(
        self, targets: list[Target], writer: bool = False
    ) -> dict[Target, Counts]:
        return {t: self.stored.get(t, Counts(0, 0)) for t in targets}


async def test_counts_read_again_in_the_window_do_not_undo_a_reset():
    """Found by a test deleting a load test under live views: a node re-reads the last
    seconds of the feed each time (clock skew), and took the old count back from a
    change it had read before the reset."""
    e = engine()
    e.engine.loaded({A: Counts(7, 5)}, T)
    e.engine.receive("s", '{"message":"subscribe","articleIds":["a"]}', T)
    store = Feed()
    live = LiveFeed(cast(Any, store), e.live, e.readers, None, "me", 10.0)
    start = live._cursor
    store.items = [
        (start + 1000, json.dumps([["a", 9, 6]])),
        (start + 2000, feed.reset_payloads([("post", "a")])[0].decode()),
    ]
    await live._read(0.0)
    assert e.live.shown(A) == Counts(0, 0)  # the store's, read again after the reset
    await live._read(0.0)  # the window again, the old change in it
    assert e.live.shown(A) == Counts(0, 0)
    store.items.append((start + 3000, json.dumps([["a", 1, 1]])))  # counted since
    await live._read(0.0)
    assert e.live.shown(A) == Counts(1, 1)


class Reports:
    """What `LiveFeed` tells a node's reports: what other nodes stored, and resets."""

    def __init__(self) -> None:
        self.told: list[feed.Stored] = []

    def heard(self, stored: feed.Stored) -> None:
        self.told.append(stored)

    def image(self, article: str, counts: Counts) -> None:
        pass

    async def reset(self, said: feed.Reset) -> None:
        self.told.clear()  # what was learned before is dropped, as the cache drops it


async def test_rows_and_pages_stored_before_a_reset_are_not_learned_again():
    """Found by a hostile trial: a post deleted on one node stayed in the other node's
    period reports for good, its hour rows learned again from the window re-read."""
    e = engine()
    store, reports = Feed(), Reports()
    live = LiveFeed(
        cast(Any, store), e.live, e.readers, None, "me", 10.0, reports=cast(Any, reports)
    )
    start = live._cursor
    row: feed.StoredRow = ("timeline", "h#2026-12-07T10", "post#gone", 1, 1)
    before = next(feed.stored({"/about": (1, 1)}, [row])).decode()
    store.items = [
        (start + 1000, before),
        (start + 2000, feed.reset_payloads([("page", "/about")], reports=True)[0].decode()),
    ]
    await live._read(0.0)
    await live._read(0.0)  # the window again, the old rows in it
    assert [s for s in reports.told if s.rows or s.pages] == []
    store.items.append((start + 3000, before))  # stored since: learned
    await live._read(0.0)
    assert reports.told[-1] == feed.Stored([("/about", 1, 1)], [row])
