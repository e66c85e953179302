"""What this node keeps of the store for its reports, and how it keeps it current.

Three parts (`core/catalog.py`, `core/row_cache.py`): the catalog of every post and
page (live counts, titles, paths), read once at start (while it is read, a period's
report reads its rows and the titles it shows itself); the spans of report rows that
reports asked for (bucket partitions, ranges of referrer rows), each read once; and
the rankings of periods, sums of their buckets (those two are `node/span_reads.py`'s).
No request reads every page of the site: after those reads, only what moves comes in,
from

- this node's flushes: the store's answer to each write (counts, titles, paths, rows);
- the stream: posts' counts, whoever wrote them (`image`);
- the live feed (`heard`): posts' counts from the other nodes' streams, and what the
  other nodes' flushes stored that no stream carries: pages' counts and report rows.
  What this node stores it shares the same way (`take_stored`), while others are alive;
- resets (`livecount admin`, an import): the ids named are read again, and cached rows
  are dropped (they may have gone down, or changed in the past).

Every node ends up with the store's values, each within a feed interval of the write
that made them (report rows are written every `--report-interval`).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterable
from typing import Final

from livecount.aws import store_scan
from livecount.aws.store import Described, Store
from livecount.core import feed
from livecount.core.bases import Counts
from livecount.core.catalog import Catalog
from livecount.core.errors import LivecountError
from livecount.core.ledger import FlushResult
from livecount.core.pages import PageRules, Target
from livecount.core.periods import Period
from livecount.core.report_rows import Row, is_bucket
from livecount.core.sharing import RECENT, Sharing
from livecount.logs import log, warn_limited
from livecount.node.span_reads import SpanReads
from livecount.waits import backoff, pause

READS_AT_ONCE: Final = 8  # the store's reads in flight for reports
NAMES_EVERY: Final = 1.0  # seconds between reads of titles the catalog lacks
MOST_ROWS: Final = 1_000_000  # report rows cached, all spans together (about 150 MB)


class ReportCache:
    def __init__(
        self,
        store: Store,
        pages: PageRules,
        most_rows: int = MOST_ROWS,
        clock: Callable[[], float] = time.monotonic,
        recent: float = RECENT,
    ) -> None:
        self.store = store
        self.clock = clock
        self.catalog = Catalog(pages.where)
        self._limit = asyncio.Semaphore(READS_AT_ONCE)
        self.spans = SpanReads(store, self.catalog.label, self._limit, most_rows)
        self.catalog.relabelled.append(self.spans.rankings.relabel)
        self.loaded = asyncio.Event()  # the catalog is read: reports may answer
        self._loading: asyncio.Task[None] | None = None
        self.sharing = Sharing(clock, recent)  # what this node stores, told the other nodes

    # -- start -------------------------------------------------------------------------
    async def ready(self) -> None:
        """Wait for the catalog, reading it first if nobody started to."""
        if not self.loaded.is_set():
            await asyncio.shield(self.start())

    def start(self) -> asyncio.Task[None]:
        """Read the catalog in the background (the node serves meanwhile)."""
        self._loading = self._loading or asyncio.ensure_future(self.load())
        return self._loading

    async def load(self) -> None:
        """Read the catalog: the page index, and every post's and page's counts, title
        and path (the reader side, scanned in parallel parts: `store_scan.catalog`). Not under
        the reports' limit: a period's rows are never read behind it."""
        started = time.monotonic()
        found: dict[Target, Described] = {}
        for delay in backoff(0.5, 10.0):
            try:
                found = await store_scan.catalog(self.store)
                break
            except LivecountError as exc:
                warn_limited("reports_unloaded", error=str(exc), retry_in=delay)
                await asyncio.sleep(delay)
        self.catalog.load(found)
        self.loaded.set()
        log(
            "reports_loaded",
            pages=len(self.catalog.ranking),
            seconds=round(time.monotonic() - started, 3),
        )

    async def reload(self) -> dict[Target, Described]:
        """Read the catalog again, merged as at start, and drop the cached rows: this
        node may have missed what the others stored (`LiveFeed.refresh`). Returns what
        it read."""
        await self.ready()  # not two reads of the catalog at once
        self.catalog.unload()
        found: dict[Target, Described] = {}
        try:
            found = await store_scan.catalog(self.store)
        finally:
            self.catalog.load(found)
        self.spans.reset()
        return found

    async def _read(self, targets: list[Target], writer: bool = False) -> dict[Target, Described]:
        async with self._limit:
            return await self.store.read(targets, writer)

    async def names_loop(self, stop: asyncio.Event) -> None:
        """Read the titles and paths of posts that came in without them (seen on the
        stream or the feed): a hundred a request, every NAMES_EVERY seconds."""
        while not await pause(stop, NAMES_EVERY):
            unnamed = list(self.catalog.unnamed)[:100]
            if not unnamed:
                continue
            try:
                found = await self._read(unnamed)
            except LivecountError as exc:
                warn_limited("reports_names_unread", error=str(exc))
                continue
            for target, described in found.items():
                self.catalog.describe(target, described.title, described.path)

    async def prewarm(self, periods: Iterable[Period]) -> None:
        """Read what the periods' rankings need, so the first dashboard has it."""
        for period in periods:
            try:
                await self.spans.ranking(period)
            except LivecountError as exc:
                warn_limited("reports_prewarm_failed", error=str(exc))
                return
        log("reports_ready", rows=self.spans.rows.size)

    # -- what moves ----------------------------------------------------------------------
    def flushed(self, result: FlushResult) -> None:
        """This node's flush came back: what the store said it holds now."""
        for target, counts in result.applied.items():
            self.catalog.observe(target, counts)
            if target.kind == "page":
                self.sharing.stored(target, counts)
        for target, (title, path) in result.described.items():
            self.catalog.describe(target, title, path)
        for row, counts in result.applied_rows.items():
            if row.table == "referrer" or is_bucket(row.target):
                self.spans.learn(row, counts)
                self.sharing.stored(row, counts)

    def image(self, article: str, counts: Counts) -> None:
        """A post's counts, from the stream or the feed."""
        self.catalog.observe(Target("post", article), counts)

    def heard(self, stored: feed.Stored) -> None:
        """What another node's flush stored."""
        for name, total, unique in stored.pages:
            self.catalog.observe(Target("page", name), Counts(total, unique))
        for table, partition, sort, total, unique in stored.rows:
            self.spans.learn(
                Row("referrer" if table == "referrer" else "timeline", partition, sort),
                Counts(total, unique),
            )

    async def reset(self, reset: feed.Reset) -> None:
        """Counts that went down, or changed in the past: read them again."""
        if reset.reports:
            self.spans.reset()
        targets = [Target(kind, id_) for kind, id_ in reset.targets]
        self.sharing.forget(targets, rows=reset.reports)
        if not targets:
            return
        self.catalog.forget(targets)
        try:
            found = await self._read(targets, writer=True)
        except LivecountError as exc:  # the next change or reset brings them
            warn_limited("reports_reset_unread", error=str(exc))
            return
        self.catalog.replace({t: (d.counts, d.title, d.path) for t, d in found.items()})

    def take_stored(self, alone: bool) -> list[bytes]:
        """Feed payloads of what this node stored since the last call, for the other
        nodes' reports (`core/sharing.py`); nothing while alone."""
        return self.sharing.take(alone)

    def untold(self) -> None:
        """The payloads of the last `take_stored` were not written: say them again."""
        self.sharing.untold()
