"""The live feed's edge: learn the counts the other nodes' stream readers saw, and
tell the other nodes how many of this node's sockets read each target now. It also
carries `livecount admin`'s resets, and a backup's sync, which the node answers once
it stored everything it had acknowledged (`core/syncs.py`).

The stream consumer (or the Lambda) writes the count changes; this loop writes this
node's readers (`feed.says`) and reads both. What goes in an item and where a reader
resumes is `core.feed`'s; whose readers are alive is `core.readers`'.
"""

from __future__ import annotations

import asyncio
import time
import uuid
import zlib
from collections.abc import Awaitable, Callable
from typing import Any

from livecount.aws import store_scan
from livecount.aws.consumer import StreamConsumer
from livecount.aws.store import Store
from livecount.core import feed
from livecount.core.errors import LivecountError, Unavailable
from livecount.core.ledger import Counts
from livecount.core.live import Live
from livecount.core.pages import Target
from livecount.core.readers import Readers
from livecount.logs import log, warn_limited
from livecount.node.report_cache import ReportCache
from livecount.waits import backoff, pause

INTERVAL = 0.5  # seconds between live-feed reads (and writes of readers that moved)
ALONE_EVERY = 4  # alone, the feed is read every this many INTERVALs: only admin resets
LEASE_TIME = 10.0  # without a stream consumer and no `lease_time` given: the default


class LiveFeed:
    """Alone (this node's consumer sees no other node alive) it writes nothing (nobody
    else has pages or readers) and reads every ALONE_EVERY intervals, for what
    `livecount admin` says (a reset). With others, every INTERVAL it writes the
    targets whose readers moved, and its whole snapshot every `lease_time`/4 (which says
    it is alive too); other nodes forget its readers once it has been silent for
    `expiry`, so a node that dies takes its readers along within `lease_time`."""

    def __init__(
        self,
        store: Store,
        live: Live[Any],
        readers: Readers[Any],
        consumer: StreamConsumer | None,
        node_id: str | None = None,
        lease_time: float | None = None,
        stored: Callable[[], Awaitable[bool]] | None = None,
        reports: ReportCache | None = None,
    ) -> None:
        self.store = store
        self.live = live  # told of counts seen, and of readers that moved
        self.reports = reports  # told of counts and rows seen; tells what this node stored
        self.readers = readers
        self.consumer = consumer
        self.syncs = SyncAnswers(stored, self._write, lambda: self.node_id)
        self._node_id = node_id
        self._lease_time = lease_time
        self._cursor = time.time_ns() // 1000 * 1000
        self._stamp = 0  # the last stamp written: this node's items only ever go up
        self._whole_at: float | None = None  # when the last whole snapshot went (None: owed)
        self._resets = feed.Resets()  # what resets took back, while the window is re-read
        self._refreshing: asyncio.Task[None] | None = None  # `refresh`, once at a time

    @property
    def node_id(self) -> str:
        """Its readers' name on the feed: the node id (a restart's items then replace its
        earlier run's), else a name for this run."""
        if self._node_id is None:
            self._node_id = self.consumer.node_id if self.consumer else uuid.uuid4().hex
        return self._node_id

    @property
    def lease_time(self) -> float:
        return self._lease_time or (self.consumer.lease_time if self.consumer else LEASE_TIME)

    @property
    def expiry(self) -> float:
        """Seconds of silence after which a node's readers are gone: its whole snapshot
        comes every `lease_time`/4 (every INTERVAL at least), and what it said last is
        read within an INTERVAL and forgotten within the next, so within `lease_time`
        of its death (never under 4 INTERVALs, or a slow read would blink readers off)."""
        return max(self.lease_time - 2 * INTERVAL, 4 * INTERVAL)

    def on_image(self, article_id: str, total: int, unique: int) -> None:
        """A count this node's stream consumer copied."""
        self.live.observed(article_id, Counts(total, unique), time.time())
        if self.reports is not None:
            self.reports.image(article_id, Counts(total, unique))

    async def went_down(self, articles: list[str]) -> None:
        """Posts this node's stream consumer saw go down: read again, after its images."""
        await self.reset([Target("post", article) for article in articles])

    async def loop(self, stop: asyncio.Event) -> None:
        """Write this node's readers, read the other nodes' changes and readers, and
        forget nodes gone silent, every INTERVAL."""
        try:
            await self._loop(stop)
        finally:
            self.syncs.cancel()
            if self._refreshing is not None:
                self._refreshing.cancel()

    async def _loop(self, stop: asyncio.Event) -> None:
        clock = asyncio.get_running_loop().time
        ticks = 0
        while not await pause(stop, INTERVAL):
            ticks += 1
            if self._refreshing is None and self.consumer and self.consumer.leases.take_out():
                self._refreshing = asyncio.create_task(self.refresh())
            alone = self.consumer is not None and self.consumer.nodes <= 1
            if alone:
                self.readers.take_moved()
                self._whole_at = None  # when others come, they get the whole snapshot
                if self.reports is not None:
                    self.reports.sharing.take(alone=True)
                if ticks % ALONE_EVERY == 0:
                    await self._read(clock())
            else:
                await self._say(clock())
                await self._tell_stored()
                await self._read(clock())
            gone = self.readers.expire(clock(), self.expiry, feed.window_start(self._cursor))
            self.live.moved(gone, time.time())

    async def _say(self, now: float) -> None:
        """This node's readers that moved since the last write, or all of them when a
        whole snapshot is due. A write that fails is made whole the next time."""
        moved = self.readers.take_moved()
        whole = self._whole_at is None or now - self._whole_at >= self.lease_time / 4
        if not whole and not moved:
            return
        said = self.readers.here if whole else moved
        payloads = feed.says(self.node_id, ((t.kind, t.id, n) for t, n in said.items()), whole)
        try:
            await self._write(payloads)
        except LivecountError as exc:
            warn_limited("feed_failed", error=str(exc))
            self._whole_at = None
            return
        if whole:
            self._whole_at = now

    async def _tell_stored(self) -> None:
        """What this node's flushes stored that no stream carries, for the other nodes'
        reports; what fails to go is said again with the next."""
        if self.reports is None or not (payloads := self.reports.sharing.take(alone=False)):
            return
        try:
            await self._write(payloads)
        except LivecountError as exc:
            warn_limited("feed_failed", error=str(exc))
            self.reports.sharing.untold()

    async def _write(self, payloads: list[bytes]) -> None:
        """Items of this node's, stamped after every earlier one of it."""
        wall = time.time()
        stamps = feed.stamps(
            max(int(wall * 1e6), self._stamp // 1000 + 1),
            zlib.crc32(self.node_id.encode()),
            len(payloads),
        )
        self._stamp = stamps[-1]  # taken now: a write meanwhile stamps after these
        await self.store.feed.write(
            list(zip(stamps, payloads, strict=True)), int(wall) + feed.TTL_SECONDS
        )

    async def _read(self, now: float) -> None:
        try:
            items = await self.store.feed.read(feed.window_start(self._cursor))
        except Unavailable as exc:
            warn_limited("feed_failed", error=str(exc))
            return
        live, wall = self.live, time.time()
        for at, payload in items:
            said = feed.read(payload)
            if isinstance(said, feed.Reset):
                if self._resets.saw(at, said):  # the first time: do it
                    await self.reset([Target(kind, id_) for kind, id_ in said.targets], said)
            elif isinstance(said, feed.Stored):
                said = self._resets.stored(at, said)
                if self.reports is not None:
                    self.reports.heard(said)
                for name, total, unique in said.pages:
                    live.seen(Target("page", name), Counts(total, unique), wall)
            elif isinstance(said, feed.Sync):
                self.syncs.heard(at, said.request)
            elif isinstance(said, feed.Synced):
                continue  # for the backup that asked
            elif isinstance(said, list):
                for article, total, unique in said:
                    if self._resets.newer(at, "post", article):
                        live.observed(article, Counts(total, unique), wall)
                        if self.reports is not None:
                            self.reports.image(article, Counts(total, unique))
            elif said.node != self.node_id:
                reading = ((Target(kind, id_), n) for kind, id_, n in said.readers)
                live.moved(self.readers.heard(said.node, at, said.whole, reading, now), wall)
        self._cursor = feed.next_cursor(self._cursor, (at for at, _ in items))
        start = feed.window_start(self._cursor)
        self._resets.trim(start)
        self.syncs.trim(start)

    async def refresh(self) -> None:
        """The others may have judged this node dead: `read_again`, and if that fails,
        again at the next interval."""
        try:
            if not await read_again(self.store, self.live, self.reports) and self.consumer:
                self.consumer.leases.mark_out()
        finally:
            self._refreshing = None

    async def reset(self, targets: list[Target], said: feed.Reset | None = None) -> None:
        """Forget what this node believes of `targets` (renamed away, deleted, an import
        undone), and show their pages what the store holds now; its reports read them
        again, and what else the reset says."""
        if self.reports is not None:
            await self.reports.reset(said or feed.Reset([(t.kind, t.id) for t in targets]))
        if not (watched := self.live.reset(targets)):
            return
        try:
            counts = await self.store.read_counts(watched, writer=True)
        except LivecountError as exc:  # read when next asked for
            warn_limited("feed_failed", error=str(exc))
            return
        self.live.reloaded(counts, time.time())


async def read_again(store: Store, live: Live[Any], reports: ReportCache | None) -> bool:
    """This node may have been judged dead (stopped, or cut off from the store, for
    longer than the others wait): they told it nothing meanwhile, and when it is back
    they tell only the last `sharing.recent` seconds again. So it reads what it shows
    from the store again, as a start does. False if the store did not answer."""
    try:
        found = await reports.reload() if reports is not None else await store_scan.catalog(store)
    except LivecountError as exc:
        warn_limited("feed_failed", error=str(exc))
        return False
    wall = time.time()
    for target, described in found.items():
        live.seen(target, described.counts, wall)
    log("refreshed", pages=len(found))
    return True


class SyncAnswers:
    """A backup's syncs (`core/syncs.py`), each answered once however often the feed's
    window shows it: this node stores everything it acknowledged before the sync came
    (`stored`: True once done), then says on the feed whether it did."""

    def __init__(
        self,
        stored: Callable[[], Awaitable[bool]] | None,
        write: Callable[[list[bytes]], Awaitable[None]],
        node_id: Callable[[], str],
    ) -> None:
        self.stored = stored
        self._write = write
        self._node_id = node_id
        self._seen: set[int] = set()  # stamps of syncs answered or being answered
        self._answering: set[asyncio.Task[None]] = set()

    def heard(self, at: int, request: str) -> None:
        if at not in self._seen:
            self._seen.add(at)
            task = asyncio.create_task(self._answer(request))
            self._answering.add(task)
            task.add_done_callback(self._answering.discard)

    def trim(self, start: int) -> None:
        """Forget the syncs before the feed's window: it shows them no more."""
        self._seen = {at for at in self._seen if at >= start}

    def cancel(self) -> None:
        for task in self._answering:
            task.cancel()

    async def _answer(self, request: str) -> None:
        """Store everything acknowledged before the sync came, then say whether it is."""
        stored = True if self.stored is None else await self.stored()
        log("synced", request=request, stored=stored)
        for delay in backoff(0.2, 2.0):
            try:
                await self._write([feed.synced(request, self._node_id(), stored)])
                return
            except LivecountError as exc:  # the backup waits for it: try again
                warn_limited("feed_failed", error=str(exc))
                await asyncio.sleep(delay)
