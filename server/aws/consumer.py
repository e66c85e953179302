"""The stream consumer: PostCountWriter's stream → PostCountReader, and live counts.

A thin loop around `shard_leases` (which shards are this node's, kept alive every
`lease_time`/3, with their checkpoints) and `stream_copy` (what a batch of records
asks of the store, the same work the Lambda does). Each round it keeps its leases,
reads the shards it holds, applies each batch's conditional copies, shares what
changed on the live feed (while other nodes are alive: when one appears, the last
`sharing.recent(lease_time)` seconds' changes too, which it may have missed), and
checkpoints. Copy first, checkpoint second: a crash in between replays records, and the
version condition makes replays no-ops. Every request goes through `store.stream`.

What it writes is what it must: checkpoints ride on the leases' renewals, and an
image that a later one of the same article in the same batch supersedes is not
copied. A quiet shard is polled once a second while other nodes may write to it;
alone, a node's own flushes wake it (`Store.written`) and it polls at each lease
round otherwise, and while busy it reads a couple of seconds of records at a time
(nobody else reads the reader table then), copying each article's newest image once.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from livecount.aws.shard_leases import ShardLeases
from livecount.aws.store import Store
from livecount.aws.store_errors import aws_code
from livecount.aws.store_stream import article_of
from livecount.core import feed
from livecount.core.errors import LivecountError, StoreRejected
from livecount.core.sharing import PostSharing, recent
from livecount.core.stream_copy import ReaderWrite, copy_and_feed
from livecount.logs import error, log, warn_limited
from livecount.waits import pause

OnImage = Callable[[str, int, int], None]  # articleId, totalViews, uniqueViews
OnDown = Callable[[list[str]], Awaitable[None]]  # articleIds
IDLE_POLL_INTERVAL = 1.0  # the longest wait between polls of a quiet shard others write to
QUIET_AFTER = 5.0  # seconds without a record (or a write of ours) before shards count as quiet
ALONE_GATHER = 2.0  # alone: seconds of this node's own records read in one go


class StreamConsumer:
    def __init__(
        self,
        store: Store,
        on_image: OnImage,
        node_id: str = "node",
        lease_time: float = 10.0,
        poll_interval: float = 0.25,
        discover_interval: float = 10.0,
        on_down: OnDown | None = None,
    ) -> None:
        self.store = store
        self.stream = store.stream
        self.on_image = on_image
        self.on_down = on_down  # articles whose count went down: this node reads them again
        self.node_id = node_id
        self.lease_time = lease_time
        self.poll_interval = poll_interval
        self.discover_interval = discover_interval
        self.leases = ShardLeases(store, node_id, lease_time)
        self._rounds = Rounds()
        self.caught_up = self._rounds.caught_up  # set once the shards held are read to the end
        self.copied = 0
        self.lag: dict[str, float] = {}  # shard → seconds behind, at the last record read
        self._hurry = False  # someone waits for the copy to settle: poll promptly
        self._iterators: dict[str, str] = {}  # shard → where its next read starts
        self.sharing = PostSharing(time.monotonic, recent(lease_time))  # told the feed

    @property
    def held(self) -> set[str]:
        return set(self.leases.held)

    @property
    def nodes(self) -> int:
        """Live nodes seen, this one included."""
        return self.leases.nodes

    # -- lifecycle -----------------------------------------------------------------
    async def run(self, stop: asyncio.Event) -> None:
        """Poll until `stop` is set; store errors are logged and retried, never fatal."""
        loop = asyncio.get_running_loop()
        next_discovery = next_leasing = 0.0
        idle = self.poll_interval
        last_record = loop.time()
        written = self.store.written  # this node's own flushes: records on their way
        read_some = False  # the reads since the last empty one found records
        while not stop.is_set():
            records = 0
            try:
                if loop.time() >= next_discovery:
                    await self.leases.discover()
                    next_discovery = loop.time() + self.discover_interval
                if loop.time() >= next_leasing:
                    await self.leases.round()
                    next_leasing = loop.time() + self.lease_time / 3
                if self.nodes > 1 and self.sharing.owed:
                    await self._tell({}, [])
                await self._follow()
                written.clear()
                records = sum(await asyncio.gather(*(self._poll(s) for s in list(self._iterators))))
            except LivecountError as exc:  # the store is away or refuses: next round
                warn_limited("stream_error", key=aws_code(exc), code=aws_code(exc), error=str(exc))
            except Exception as exc:  # a bug here must not stop the copy for good
                error("stream_crash", exc)
            if await self._rounds.end(records, bool(self.leases.shards)):
                log(
                    "stream_caught_up",
                    shards=len(self.leases.shards),
                    held=len(self.leases.held),
                    copied=self.copied,
                )
            # Quiet shards are polled less and less often: GetRecords calls are billed,
            # and most of a blog's seconds are quiet. Within a few seconds of a record
            # (or of a write of ours) the poll stays quick, so pushes stay prompt.
            # Alone, nobody else writes: our own writes wake the loop, and otherwise
            # a lease round's poll is enough.
            if records:
                last_record = loop.time()
                read_some = True
            quiet = loop.time() - last_record > QUIET_AFTER
            alone = self.nodes <= 1 and not self._hurry
            slowest = max(IDLE_POLL_INTERVAL, self.lease_time / 3) if alone else IDLE_POLL_INTERVAL
            idle = min(idle * 2, slowest) if quiet else self.poll_interval
            if records == 0 and read_some and alone:
                # Nobody else reads the reader table while this node is alone (its own
                # pages and reports count from its ledger): caught up, it lets a few
                # seconds of its records gather, so a read copies an article's newest
                # image once, not each one. (A read returns what the stream gives, not
                # all there is: it reads on until one comes back empty.)
                read_some = False
                wait = min(ALONE_GATHER, max(0.0, next_leasing - loop.time()))
                if await pause(stop, wait):
                    break
            elif records == 0:
                wait = min(idle, max(0.0, next_leasing - loop.time()))
                if await pause(stop, wait, written):
                    break
                if written.is_set():
                    last_record = loop.time()
        await self.leases.hand_back()

    async def settled(self) -> None:
        """Wait for two rounds that start after this call and find nothing new.

        Used on shutdown so that what was just flushed reaches the reader table;
        the caller bounds the wait. The rounds come promptly meanwhile.
        """
        self._hurry = True
        self.store.written.set()
        try:
            await self._rounds.settled()
        finally:
            self._hurry = False

    # -- records ----------------------------------------------------------------------
    async def _follow(self) -> None:
        """Read what the leases hold: a shard newly taken from its checkpoint, and no
        longer one whose lease is gone."""
        for shard_id in [s for s in self._iterators if s not in self.leases.held]:
            del self._iterators[shard_id]
            self.lag.pop(shard_id, None)
        for shard_id in list(self.leases.fresh):
            await self._start(shard_id)
            self.leases.fresh.discard(shard_id)

    async def _start(self, shard_id: str) -> None:
        """Read `shard_id` from its checkpoint (from its oldest record without one)."""
        self._iterators[shard_id] = await self.stream.iterator(
            self.leases.arn, shard_id, self.leases.checkpoints.get(shard_id)
        )

    async def _poll(self, shard_id: str) -> int:
        batch = await self.stream.read(self._iterators[shard_id])
        if batch is None:  # expired or trimmed: start again from the checkpoint
            await self._start(shard_id)
            return 0
        records = batch.records
        if records:
            await self._copy(records)
            self.leases.advance(shard_id, records[-1]["dynamodb"]["SequenceNumber"])
            made = records[-1]["dynamodb"].get("ApproximateCreationDateTime")
            self.lag[shard_id] = max(0.0, time.time() - made.timestamp()) if made else 0.0
        else:
            self.lag[shard_id] = 0.0
        if shard_id not in self._iterators:
            return len(records)  # the lease was lost while reading
        if batch.next is not None:
            self._iterators[shard_id] = batch.next
        else:  # closed and read to its end: its children may start
            await self.leases.finish(shard_id)
            del self._iterators[shard_id]
            self.lag.pop(shard_id, None)
        return len(records)

    async def _copy(self, records: list[dict[str, Any]]) -> None:
        """The batch's copies, then (with other nodes alive) its feed items."""
        work = copy_and_feed(records, self.store.tables, self.node_id, time.time())
        writes = _newest(work.writes)
        for write, outcome in zip(writes, await self.stream.copy_many(writes), strict=True):
            if isinstance(outcome, StoreRejected):  # no retry can copy it: never block
                warn_limited(
                    "copy_rejected",
                    key=aws_code(outcome),
                    sequence=write.sequence,
                    code=aws_code(outcome),
                    error=outcome.detail,
                )
            else:
                if outcome:  # else not applied: the reader holds this image or a newer one
                    self.copied += 1
                # Either way the image is news to pages: the reader may hold it because
                # something else copied it (`livecount admin`, an import).
                if write.change is not None:
                    self.on_image(*write.change)
        if work.down and self.on_down is not None:
            await self.on_down(work.down)
        await self._tell(work.changes, work.down)

    async def _tell(self, changes: Mapping[str, tuple[int, int]], down: list[str]) -> None:
        """Share changes on the live feed while other nodes are alive (`PostSharing`)."""
        if not (payloads := self.sharing.take(changes, down, alone=self.nodes <= 1)):
            return
        tables = self.store.tables
        try:
            await self.stream.share(feed.stamped(payloads, tables.feed, self.node_id, time.time()))
        except LivecountError as exc:  # live pushes only: the reader table is right
            warn_limited("feed_failed", key=aws_code(exc), error=str(exc))
            self.sharing.untold()


def _newest(writes: list[ReaderWrite]) -> list[ReaderWrite]:
    """The batch's writes less the puts that a later put of the same article
    supersedes (the reader keeps the newest version anyway: copying the older one
    would only cost a write). A delete in between keeps both sides of it."""
    later: set[str] = set()
    kept: list[ReaderWrite] = []
    for write in reversed(writes):
        article = article_of(write)
        if write.action == "delete":
            later.discard(article)
        elif article in later:
            continue
        else:
            later.add(article)
        kept.append(write)
    kept.reverse()
    return kept


class Rounds:
    """How the consumer's rounds go: caught up at the first round after the start that
    finds shards and no record; settled after two quiet rounds."""

    def __init__(self) -> None:
        self.caught_up = asyncio.Event()
        self._count = 0
        self._quiet = 0
        self._done = asyncio.Condition()

    async def end(self, records: int, shards: bool) -> bool:
        """Count a round that read `records`; True if it is the one that caught up."""
        async with self._done:
            self._count += 1
            self._quiet = 0 if records else self._quiet + 1
            self._done.notify_all()
            if records or not shards or self._count < 2 or self.caught_up.is_set():
                return False
            self.caught_up.set()
            return True

    async def settled(self) -> None:
        async with self._done:
            start = self._count
            await self._done.wait_for(lambda: self._count >= start + 2 and self._quiet >= 2)
