"""One livecount node: wires sockets, counting, store, stream and hub together.

Data flows one way: socket → protocol → counting (ledger) → store (flush loop) →
stream (consumer) → hub (push loop) → sockets. This module owns the loops and the
lifecycle; the decisions live in the pure modules it calls.
"""

from __future__ import annotations

import asyncio
import signal
import time
import zlib
from collections.abc import Callable, Coroutine
from contextlib import AsyncExitStack, suppress
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import websockets
from botocore.exceptions import ClientError
from livecount.aws import local as dynamodb_local
from livecount.aws.consumer import StreamConsumer
from livecount.aws.store import FATAL_CODES, Store, StoreError
from livecount.config import Config
from livecount.core import feed, protocol
from livecount.core.hub import Hub, TooManySubscriptions
from livecount.core.ledger import Busy, Counts, FlushResult, Ledger
from livecount.core.limits import (
    AddressCounter,
    TokenBucket,
    client_address,
    is_bot,
    parse_networks,
)
from livecount.core.pages import Target, referrer_host
from livecount.core.reports import hour_of
from livecount.logs import error, log, warn
from livecount.node import archive, journal
from livecount.node.http import Routes
from livecount.node.journal import Journal
from livecount.node.metrics import Metrics
from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.http11 import Request, Response

SHUTDOWN_FLUSH_TIMEOUT = 30.0
STREAM_SETTLE_TIMEOUT = 10.0
CATCH_UP_TIMEOUT = 30.0
FEED_INTERVAL = 0.5  # seconds between live-feed writes and reads
MAX_TRACKED = 100_000  # targets whose counts a node keeps in memory (watched ones always)
MAX_STRIKES = 20  # refused messages in a row before a socket is closed with 1008
RATE_LIMITED = protocol.encode(protocol.Error(
    "rate_limited", "too many messages; slow down or the connection will be closed"))


class StoreRefused(RuntimeError):
    """Credentials or policy are wrong: retrying cannot help, so say so and stop."""


@dataclass(slots=True)
class Client:
    """What the node keeps per socket beyond its subscriptions."""

    address: str
    bot: bool
    bucket: TokenBucket
    seen: float
    viewing: Target | None = None  # the page it last viewed: watched while it is shown
    explicit: set[Target] = field(default_factory=set)  # asked for with `subscribe`


class Node:
    def __init__(self, config: Config, store: Store) -> None:
        self.config = config
        self.store = store
        # Counting, durably.
        self.ledger = Ledger(config.max_pending_views)
        self.journal = Journal(config.data_dir / "journal")
        self._seq = 0
        self._flushing = asyncio.Lock()
        self._loading: dict[Target, asyncio.Future[None]] = {}
        self._queued: list[Target] = []
        self._loader: asyncio.Task[None] | None = None
        self._hour = (-1, "")
        # Sockets and what they watch.
        self.hub: Hub[ServerConnection] = Hub(config.max_subscriptions)
        self.clients: dict[ServerConnection, Client] = {}
        self.addresses = AddressCounter(config.max_connections_per_ip)
        self.trusted_proxies = parse_networks(config.trusted_proxies)
        self._changed_at: dict[Target, float] = {}  # first unpushed change, for latency
        # The stream, and the feed that carries what it shows to the other nodes.
        self.consumer = StreamConsumer(store, self._on_image, config.node_id,
                                       lease_time=config.lease_time) \
            if config.stream_consumer == "on" else None
        self._feed_out: dict[str, tuple[int, int]] = {}
        self._feed_cursor = time.time_ns() // 1000 * 1000
        self._feed_salt = zlib.crc32(config.node_id.encode())
        self._feed_ready = asyncio.Event()  # something to share
        self._feed_read = 0.0
        # The side outputs: archive, metrics, HTTP.
        self.archive = archive.Buffer(config.archive_max_events, config.archive_max_seconds) \
            if config.archive_dir else None
        self._archive_queue: asyncio.Queue[archive.Batch] = asyncio.Queue()
        self.metrics = Metrics(config.node_id)
        self.metrics.watch(
            sockets=lambda: len(self.clients), pending=lambda: self.ledger.pending_views,
            leases=lambda: len(self.consumer.held) if self.consumer else 0,
            lag=lambda: dict(self.consumer.lag) if self.consumer else {})
        self.routes = Routes(store, self._overlay, config.pages, config.allowed_origins,
                             metrics=self.metrics.render)

    # -- sockets ------------------------------------------------------------------
    async def connection(self, ws: ServerConnection) -> None:
        headers = ws.request.headers if ws.request else None
        address = client_address(str(ws.remote_address[0]) if ws.remote_address else "",
                                 headers.get("X-Forwarded-For") if headers else None,
                                 self.trusted_proxies)
        if not self.addresses.admit(address):
            self.metrics.rejected.labels("too_many_connections").inc()
            await ws.close(1008, "too many connections from this address")
            return
        client = Client(address, is_bot(headers.get("User-Agent") if headers else None),
                        TokenBucket(self.config.rate_limit, self.config.rate_burst),
                        time.monotonic())
        self.clients[ws] = client
        try:
            async for frame in ws:
                client.seen = time.monotonic()
                if not client.bucket.allow(client.seen):
                    self.metrics.rejected.labels("rate_limited").inc()
                    if client.bucket.strikes > MAX_STRIKES:
                        await ws.close(1008, "rate limit exceeded")
                        break
                    with suppress(websockets.ConnectionClosed):
                        await ws.send(RATE_LIMITED, text=True)
                    continue
                replies = await self.handle(ws, frame, client)
                # A page that sends a view and leaves at once is still counted: the
                # frames it sent before closing are read and handled, unanswered.
                with suppress(websockets.ConnectionClosed):
                    for message in replies:
                        await ws.send(message, text=True)
        except websockets.ConnectionClosed:
            pass
        finally:
            self.hub.drop(ws)
            del self.clients[ws]
            self.addresses.release(address)

    async def idle_loop(self, stop: asyncio.Event) -> None:
        """Close sockets that watch nothing and have said nothing for `idle_timeout`:
        they cost memory and serve no page. Watching sockets stay, kept honest by pings."""
        while not stop.is_set():
            with suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), min(self.config.idle_timeout, 5.0))
            cutoff = time.monotonic() - self.config.idle_timeout
            idle = [ws for ws, client in self.clients.items()
                    if client.seen < cutoff and not self.hub.subscriptions(ws)]
            await asyncio.gather(*(ws.close(1001, "idle") for ws in idle))

    async def handle(self, ws: ServerConnection, frame: str | bytes,
                     client: Client) -> list[bytes]:
        """Answer one frame; client mistakes and store trouble become error replies."""
        try:
            message = protocol.decode(frame)
            if isinstance(message, protocol.Views):
                return [await self._views(ws, message, client)]
            targets = self._targets(message)
            if isinstance(message, protocol.Subscribe):
                return await self._subscribe(ws, targets, client)
            self.hub.unsubscribe(ws, targets)
            client.explicit.difference_update(targets)
            if client.viewing in targets:
                client.viewing = None
            return []
        except protocol.ProtocolError as exc:
            failure = exc
        except Busy as exc:
            failure = protocol.ProtocolError("busy", str(exc))
        except TooManySubscriptions as exc:
            failure = protocol.ProtocolError("too_many_subscriptions", str(exc))
        except StoreError as exc:  # expected while DynamoDB is away: no traceback each time
            warn("counts_unavailable", error=str(exc))
            failure = protocol.ProtocolError(
                "unavailable", "counts are unavailable right now; nothing was counted")
        except Exception as exc:
            error("handle_failed", exc)
            failure = protocol.ProtocolError(
                "unavailable", "counts are unavailable right now; nothing was counted")
        self.metrics.rejected.labels(failure.code).inc()
        return [failure.reply()]

    async def _views(self, ws: ServerConnection, msg: protocol.Views, client: Client) -> bytes:
        target = self.config.pages.classify(msg.articleId, msg.currentPage)
        if target is None:
            raise protocol.ProtocolError(
                "unrecognised_page",
                f"currentPage {msg.currentPage!r} is not a known page; posts need an articleId")
        await self._ensure_base([target])
        if client.bot:  # shown the counts, not counted
            self.metrics.bots.inc()
            counts = self.ledger.current(target)
            return protocol.encode(protocol.ViewsReply(
                counts.total, counts.unique, **{_field(target): target.id}))
        host, hour = referrer_host(msg.referrer, self.config.site_domains), self._current_hour()
        counts = self.ledger.record(target, refreshed=msg.refreshed, hour=hour,
                                    title=msg.articleTitle, referrer=host)
        self.metrics.views.inc()
        # Journal in the same moment as the ledger, so both keep one order; reply once
        # the view is on disk.
        durable = self.journal.append(
            journal.view_record(target, msg.refreshed, hour, msg.articleTitle, host))
        if self.archive is not None:
            now = time.time()
            if batch := self.archive.add(archive.record(msg, target, host, now), now):
                self._archive_queue.put_nowait(batch)
        self._changed(target)
        self._watch_viewed(ws, client, target)
        with suppress(OSError):  # logged by the journal; the view is counted in memory
            await durable
        return protocol.encode(protocol.ViewsReply(
            counts.total, counts.unique, **{_field(target): target.id}))

    def _watch_viewed(self, ws: ServerConnection, client: Client, target: Target) -> None:
        """A view watches its own page, in place of the page viewed before (unless that
        one was subscribed to): a long single-page session watches one page, not all."""
        previous, client.viewing = client.viewing, target
        if previous is not None and previous != target and previous not in client.explicit:
            self.hub.unsubscribe(ws, [previous])
        with suppress(TooManySubscriptions):  # the view counts even if the watch list is full
            self.hub.subscribe(ws, [target])

    def _targets(self, msg: protocol.Subscribe | protocol.Unsubscribe) -> list[Target]:
        known = set(self.config.pages.names)
        if unknown := [p for p in msg.pageNames if p not in known]:
            raise protocol.ProtocolError("unknown_page", f"no page named {unknown[0]!r}; "
                                                         f"pages are {', '.join(sorted(known))}")
        return ([Target("post", a) for a in msg.articleIds]
                + [Target("page", p) for p in msg.pageNames])

    async def _subscribe(self, ws: ServerConnection, targets: list[Target],
                         client: Client) -> list[bytes]:
        self.hub.subscribe(ws, targets)
        client.explicit.update(targets)
        await self._ensure_base(targets)
        return [_count(t, self.ledger.current(t)) for t in dict.fromkeys(targets)]

    async def _ensure_base(self, targets: list[Target]) -> None:
        """Read the stored counts of targets this node has not seen. Targets asked for in
        the same moment, from any socket, share one BatchGetItem."""
        waits = []
        for target in targets:
            if self.ledger.has_base(target):
                continue
            loading = self._loading.get(target)
            if loading is None:
                loading = self._loading[target] = asyncio.get_running_loop().create_future()
                self._queued.append(target)
            waits.append(loading)
        if self._queued and self._loader is None:
            self._loader = asyncio.create_task(self._load_queued())
        for outcome in await asyncio.gather(*waits, return_exceptions=True):
            if isinstance(outcome, BaseException):
                raise outcome

    async def _load_queued(self) -> None:
        await asyncio.sleep(0)  # one loop turn: let other sockets' first views join in
        targets, self._queued, self._loader = self._queued, [], None
        try:
            for target, counts in (await self.store.read_counts(targets)).items():
                self.ledger.observe(target, counts)
        except Exception as exc:  # every waiter answers `unavailable`; nothing counted
            for target in targets:
                self._loading.pop(target).set_exception(exc)
            return
        for target in targets:
            self._loading.pop(target).set_result(None)

    def _current_hour(self) -> str:
        """The UTC hour bucket of a view now, formatted once per hour, not per view."""
        now = time.time()
        if int(now // 3600) != self._hour[0]:
            self._hour = (int(now // 3600), hour_of(datetime.fromtimestamp(now, UTC)))
        return self._hour[1]

    def _overlay(self, target: Target) -> Counts | None:
        return self.ledger.current(target) if self.ledger.has_base(target) else None

    def _on_image(self, article_id: str, total: int, unique: int) -> None:
        if self.consumer is not None and self.consumer.nodes > 1:
            self._feed_out[article_id] = (total, unique)  # for the other nodes' sockets
            self._feed_ready.set()
        self._on_count(article_id, total, unique)

    def _on_count(self, article_id: str, total: int, unique: int) -> None:
        target = Target("post", article_id)
        if self.ledger.has_base(target) and self.ledger.observe(target, Counts(total, unique)):
            self._changed(target)

    async def process_request(self, ws: ServerConnection, request: Request) -> Response | None:
        return await self.routes(request)

    # -- loops ----------------------------------------------------------------------
    def _next_seq(self) -> int:
        """Flush sequence numbers grow across restarts: the journal's last, or the
        clock in microseconds, whichever is larger."""
        self._seq = max(self._seq + 1, time.time_ns() // 1000)
        return self._seq

    async def flush_once(self) -> int:
        """Write what is pending; returns how many views the store confirmed."""
        async with self._flushing:
            flush = self.ledger.take(self._next_seq())
            if not flush:
                return 0
            try:
                # The flush must be on disk before any of its writes can reach the store:
                # a replay then resends them with the same sequence numbers.
                await self.journal.append(journal.taken_record(flush))
                with self.metrics.flush_seconds.time():
                    result = await self.store.flush(flush)
            except Exception as exc:  # whatever broke, the writes stay unsettled
                error("flush_crashed", exc)
                result = FlushResult.nothing_known(flush)
            for target in self.ledger.complete(flush, result):
                self._changed(target)
            self.ledger.trim(MAX_TRACKED, self.hub.watched())
            self.journal.append(journal.completed_record(flush, result))
            if self.ledger.idle:
                self.journal.rotate(self._seq)
            applied = sum(w.delta.total for t, w in flush.targets.items()
                          if t in result.applied)
            self.metrics.flush_failures.inc(len(result.failed_targets) + len(result.failed_rows))
            log("flushed", views=applied, targets=len(result.applied),
                failed=len(result.failed_targets) + len(result.failed_rows),
                pending=self.ledger.pending_views)
            return applied

    async def recover(self, stop: asyncio.Event) -> None:
        """Replay the journal and store what it holds before serving anything."""
        self.journal.lock()
        replayed = journal.replay(self.journal.read(), self.ledger)
        config = self.config
        self.journal.bind(f"{config.dynamodb_endpoint} {config.region} {config.table_prefix}",
                          unstored=not self.ledger.idle)
        self._seq = replayed.last_seq
        self.journal.open()
        if replayed.records:
            log("journal_replayed", records=replayed.records, views=replayed.views,
                unstored=self.ledger.pending_views)
        delay = 0.5
        while not self.ledger.idle and not stop.is_set():
            await self.flush_once()
            if not self.ledger.idle:
                with suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), delay)
                delay = min(delay * 2, 10.0)

    async def flush_loop(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            with suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), self.config.flush_interval)
            await self.flush_once()

    async def push_loop(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            with suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), self.config.push_interval)
            self.push()

    async def feed_loop(self, stop: asyncio.Event) -> None:
        """Share what this node's stream reading saw (as soon as it has something);
        learn what the others' saw (every FEED_INTERVAL)."""
        while True:
            with suppress(TimeoutError):
                await asyncio.wait_for(_first(stop.wait(), self._feed_ready.wait()),
                                       FEED_INTERVAL)
            self._feed_ready.clear()
            try:
                await self._feed_once()
            except StoreError as exc:
                warn("feed_failed", error=str(exc))
            if stop.is_set():
                return

    async def _feed_once(self) -> None:
        if self._feed_out:
            out, self._feed_out = self._feed_out, {}
            payloads = list(feed.chunks(out))
            now = time.time()
            try:
                await self.store.write_feed(
                    list(zip(feed.stamps(int(now * 1e6), self._feed_salt, len(payloads)),
                             payloads, strict=True)),
                    int(now) + feed.TTL_SECONDS)
            except BaseException:
                self._feed_out = out | self._feed_out  # newer values win; retry next time
                raise
        now = time.monotonic()
        if (self.consumer is None or self.consumer.nodes > 1) \
                and now - self._feed_read >= FEED_INTERVAL * 0.9:
            self._feed_read = now
            items = await self.store.read_feed(feed.window_start(self._feed_cursor))
            for _, payload in items:
                for article, total, unique in feed.decode(payload):
                    self._on_count(article, total, unique)
            self._feed_cursor = feed.next_cursor(self._feed_cursor, (at for at, _ in items))

    async def archive_loop(self, stop: asyncio.Event) -> None:
        """Queue batches that are due by age; on stop, queue what is left."""
        assert self.archive is not None
        while not stop.is_set():
            with suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), 1.0)
            if batch := self.archive.due(time.time()):
                self._archive_queue.put_nowait(batch)

    async def archive_writer(self) -> None:
        """Write batches in order, off the event loop; retry a failed write, never drop it."""
        assert self.config.archive_dir is not None
        while True:
            batch = await self._archive_queue.get()
            delay = 1.0
            while True:
                try:
                    path = await asyncio.to_thread(archive.write, self.config.archive_dir, batch)
                    break
                except OSError as exc:
                    error("archive_failed", exc, file=batch.name, retry_in=delay)
                    await asyncio.sleep(delay)
                    delay = min(delay * 2, 30.0)
            log("archived", file=str(path), views=len(batch.lines))
            self._archive_queue.task_done()

    async def close_archive(self) -> None:
        if self.archive is not None and (batch := self.archive.take()):
            self._archive_queue.put_nowait(batch)
        try:
            await asyncio.wait_for(self._archive_queue.join(), SHUTDOWN_FLUSH_TIMEOUT)
        except TimeoutError:
            warn("archive_unwritten", batches=self._archive_queue.qsize())

    def _changed(self, target: Target) -> None:
        if self.hub.changed(target):
            self._changed_at.setdefault(target, time.monotonic())

    def push(self) -> None:
        now = time.monotonic()
        for target, watchers in self.hub.due():
            websockets.broadcast(watchers, _count(target, self.ledger.current(target)), text=True)
            self.metrics.pushes.inc(len(watchers))
            if (since := self._changed_at.pop(target, None)) is not None:
                self.metrics.push_latency.observe(now - since)

    async def drain(self) -> None:
        """Flush until nothing is pending, giving up after a bounded time."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + SHUTDOWN_FLUSH_TIMEOUT
        while not self.ledger.idle and loop.time() < deadline:
            if not await self.flush_once() and not self.ledger.idle:
                await asyncio.sleep(0.5)  # the store refused; back off before the next try
        if not self.ledger.idle:
            warn("shutdown_unflushed", views=self.ledger.pending_views)


def _field(target: Target) -> str:
    return "articleId" if target.kind == "post" else "pageName"


def _count(target: Target, counts: Counts) -> bytes:
    return protocol.encode(protocol.Count(counts.total, counts.unique,
                                          **{_field(target): target.id}))


async def run(config: Config, ready: asyncio.Event | None = None) -> None:
    """Serve until SIGINT or SIGTERM, then flush everything and stop."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    async with AsyncExitStack() as stack:
        endpoint = await stack.enter_async_context(
            dynamodb_local.endpoint_for(config.dynamodb_endpoint, config.data_dir))
        store = await stack.enter_async_context(
            Store.open(endpoint, config.region, config.table_prefix, config.node_id))
        await _prepare(store, stop)
        if stop.is_set():
            return
        node = Node(config, store)
        await node.recover(stop)
        background = Background()
        if node.consumer is not None:
            background.start(node.consumer.run)
            try:
                # Serve only once the reader table holds what earlier runs wrote.
                await asyncio.wait_for(node.consumer.caught_up.wait(), CATCH_UP_TIMEOUT)
            except TimeoutError:
                warn("stream_not_caught_up", timeout=CATCH_UP_TIMEOUT)
        background.start(node.feed_loop)
        server = await _listen(node, config)
        loops = Background()
        for work in (node.flush_loop, node.push_loop, node.idle_loop):
            loops.start(work)
        if node.archive is not None:
            loops.start(node.archive_loop)
            writer = asyncio.create_task(node.archive_writer())
        if ready is not None:
            ready.set()
        await stop.wait()
        log("stopping")
        server.close()  # closes every socket with 1001 (going away)
        await server.wait_closed()
        await loops.stop()
        await node.drain()
        if node.archive is not None:
            await node.close_archive()
            writer.cancel()
        settled = True
        if node.consumer is not None:
            try:
                await asyncio.wait_for(node.consumer.settled(), STREAM_SETTLE_TIMEOUT)
            except TimeoutError:
                settled = False
        await background.stop()
        await node.journal.close()
        log("stopped", stream_settled=settled,
            copied=node.consumer.copied if node.consumer else 0)


async def _first(*waits: Coroutine[Any, Any, Any]) -> None:
    """Return when the first of `waits` does; cancel the others."""
    tasks = [asyncio.ensure_future(w) for w in waits]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in tasks:
            task.cancel()


class Background:
    """Loops that run until told to stop, each given the same stop event."""

    def __init__(self) -> None:
        self.stopping = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []

    def start(self, loop: Callable[[asyncio.Event], Coroutine[Any, Any, None]]) -> None:
        self._tasks.append(asyncio.create_task(loop(self.stopping)))

    async def stop(self) -> None:
        self.stopping.set()
        await asyncio.gather(*self._tasks)


async def _prepare(store: Store, stop: asyncio.Event) -> None:
    """Create the tables, waiting out a store that does not answer yet (or until stopped)."""
    delay = 0.5
    while not stop.is_set():
        try:
            made = await store.create_tables()
        except ClientError as exc:
            if exc.response["Error"]["Code"] in FATAL_CODES:
                raise StoreRefused(f"DynamoDB refused livecount: {exc}") from None
            warn("dynamodb_unreachable", error=str(exc), retry_in=delay)
            with suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), delay)
            delay = min(delay * 2, 10.0)
            continue
        except StoreError as exc:
            warn("dynamodb_unreachable", error=str(exc), retry_in=delay)
            with suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), delay)
            delay = min(delay * 2, 10.0)
            continue
        log("tables_ready", created=made, writer=store.tables.writer)
        return


async def _listen(node: Node, config: Config) -> Server:
    origins: list[Any] | None = None
    if config.allowed_origins:
        # Browsers always send Origin; other clients (load testers, scripts) may not.
        origins = [*config.allowed_origins, None]
    else:
        warn("any_origin_accepted", hint="set --allowed-origin to your blog's origin")
    server = await serve(
        node.connection, config.host, config.port,
        process_request=node.process_request, origins=origins,
        max_size=config.max_frame_bytes, max_queue=16,
        ping_interval=20, ping_timeout=20, open_timeout=config.handshake_timeout,
        close_timeout=5,
    )
    ports = [s.getsockname()[1] for s in server.sockets]
    log("listening", host=config.host, port=ports[0] if ports else config.port,
        url=f"ws://{config.host}:{ports[0] if ports else config.port}/ws")
    return server
