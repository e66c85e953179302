"""The report cache's catalog load, against a store that answers from dicts: what
changes while the catalog is read is kept, and a reset meanwhile is not undone by it."""

import asyncio
from typing import Any, cast

import pytest
from livecount.aws import store_scan
from livecount.aws.store import Described
from livecount.core import feed
from livecount.core.ledger import Counts
from livecount.core.pages import PageRules, Target
from livecount.node.report_cache import ReportCache

A, B = Target("post", "a"), Target("post", "b")


class Catalogued:
    """What `ReportCache` asks of the store at start (`store_scan.catalog`, made this
    one's `catalog` here): the catalog, read when `gate`
    opens, as it stood when the read began; and each target's counts now, in the writer
    (the reader table lags it by `lag`)."""

    def __init__(self, read: dict[Target, Described]) -> None:
        self.gate = asyncio.Event()
        self.read_at_start = read
        self.now = dict(read)
        self.lag: dict[Target, Described] = {}

    async def catalog(self) -> dict[Target, Described]:
        await self.gate.wait()
        return self.read_at_start

    async def read(self, targets: list[Target], writer: bool = False) -> dict[Target, Described]:
        seen = self.now if writer else self.now | self.lag
        return {t: seen.get(t, Described(Counts(0, 0))) for t in targets}


async def test_a_reset_while_the_catalog_is_read_is_not_undone_by_it(
    monkeypatch: pytest.MonkeyPatch,
):
    store = Catalogued({A: Described(Counts(5, 3), "A", "/a/"), B: Described(Counts(2, 2))})
    monkeypatch.setattr(store_scan, "catalog", lambda store: store.catalog())
    cache = ReportCache(cast(Any, store), PageRules())
    cache.start()
    store.now[A] = Described(Counts(1, 1), "A", "/a/")  # renamed away, then viewed once
    store.lag[A] = Described(Counts(0, 0), "A", "/a/")  # the reader: the rename's copy
    await cache.reset(feed.Reset([("post", "a")], reports=False))
    cache.image("b", Counts(4, 3))  # the stream, meanwhile: above what the read says
    store.gate.set()
    await cache.ready()
    assert cache.catalog.counts(A) == Counts(1, 1)  # not the 5 read before the reset
    assert cache.catalog.counts(B) == Counts(4, 3)  # merged by maximum
    assert cache.catalog.site == Counts(5, 4)
