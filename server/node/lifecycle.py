"""One node from start to stop: wires the engine to its edges and runs the loops.

Start: the store's tables, the journal's replay (bounded), the stream caught up,
then listen. Stop (SIGINT/SIGTERM): close sockets, flush everything, wait for the
stream copy, close the journal. Each step is told as it begins (`node/banner.py`: a
line on a terminal, a `starting` event otherwise), and the start ends with where to go.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import sys
from collections.abc import Callable, Coroutine
from contextlib import AsyncExitStack, ExitStack
from datetime import UTC, datetime
from typing import Any

from livecount import logs
from livecount.aws import local
from livecount.aws.consumer import StreamConsumer
from livecount.aws.store import Store
from livecount.config import Config
from livecount.core import periods, sharing
from livecount.core.archive import Buffer
from livecount.core.engine import Core, Settings
from livecount.core.errors import StoreRefused, Unavailable
from livecount.core.ledger import Counts
from livecount.core.limits import parse_networks
from livecount.logs import log, warn
from livecount.node import store_record
from livecount.node.admin_api import AdminApi, announcer, operator_only
from livecount.node.archive import Writer
from livecount.node.auth import Guard, TokenFileError, login_url, token_path
from livecount.node.banner import Banner
from livecount.node.flusher import Flusher, store_accepted
from livecount.node.http import Routes
from livecount.node.journal import Journal
from livecount.node.livefeed import LiveFeed
from livecount.node.metrics import Metrics
from livecount.node.now import Now
from livecount.node.report_cache import ReportCache
from livecount.node.sockets import Connection, Sockets
from livecount.node.store_record import StoreRecord
from livecount.waits import backoff, pause
from websockets.typing import Origin

SHUTDOWN_FLUSH_TIMEOUT = 30.0
STREAM_SETTLE_TIMEOUT = 10.0
CLOSE_TIMEOUT = 5.0  # seconds sockets get to answer the server's close
CATCH_UP_TIMEOUT = 30.0
RECOVERY_BOUND = 10.0  # seconds a restart tries to store its journal before serving
SYNC_TIMEOUT = 30.0  # seconds a backup's sync may take to store what the node holds
PREWARMED = ("30d", "7d", "24h", "12mo", "all")  # read at start (the dashboard's first: 30d)


def settings(config: Config) -> Settings:
    return Settings(
        pages=config.pages,
        site_domains=config.site_domains,
        max_pending_views=config.max_pending_views,
        max_subscriptions=config.max_subscriptions,
        rate_limit=config.rate_limit,
        rate_burst=config.rate_burst,
        max_connections_per_ip=config.max_connections_per_ip,
        trusted_proxies=parse_networks(config.trusted_proxies),
        idle_timeout=config.idle_timeout,
        archive=config.archive_dir is not None,
    )


class Node:
    """The parts of one node, built from its config and an open store."""

    def __init__(
        self,
        config: Config,
        store: Store,
        guard: Guard | None = None,
        journal: Journal | None = None,
    ) -> None:
        self.config = config
        self.guard = guard or admin_guard(config)
        core: Core[Connection] = Core.make(settings(config))
        self.engine, self.live, self.writes, self.readers = core
        self.journal = journal or Journal(config.data_dir / "journal")
        self.metrics = Metrics(config.node_id)
        self.reports = ReportCache(store, config.pages, recent=sharing.recent(config.lease_time))
        self.flusher = Flusher(
            self.writes,
            self.live,
            self.journal,
            store,
            self.metrics,
            config.data_dir,
            stored=self.reports.flushed,
        )
        self.archive = (
            Writer(
                config.archive_dir,
                Buffer(
                    config.archive_max_events, config.archive_max_seconds, prefix=config.node_id
                ),
            )
            if config.archive_dir
            else None
        )
        self.consumer: StreamConsumer | None = None
        self.feed = LiveFeed(
            store,
            self.live,
            self.readers,
            None,
            node_id=config.node_id,
            lease_time=config.lease_time,
            stored=lambda: store_accepted(self.flusher, SYNC_TIMEOUT),
            reports=self.reports,
        )
        if config.stream_consumer == "on":
            self.consumer = StreamConsumer(
                store,
                self.feed.on_image,
                config.node_id,
                lease_time=config.lease_time,
                on_down=self.feed.went_down,
            )
            self.feed.consumer = self.consumer
        consumer = self.consumer
        engine = self.engine
        self.metrics.watch(
            tally=lambda: engine.tally,
            sockets=lambda: engine.sockets,
            pending=lambda: self.writes.pending_views,
            leases=lambda: len(consumer.held) if consumer else 0,
            lag=lambda: dict(consumer.lag) if consumer else {},
            journal_healthy=lambda: self.journal.healthy,
            recovering=lambda: self.writes.recovering,
        )
        self.routes = Routes(
            store,
            self.live.shown,
            config.pages,
            config.allowed_origins,
            metrics=self.metrics.render,
            problems=self.problems,
            guard=self.guard,
            now=Now(self.readers.everywhere, self.reports.catalog.title),
            admin=AdminApi(
                store, operator_only(self.guard), announcer(self.observed), reset=self.feed.reset
            ),
            seconds=self.metrics.http_seconds,
            access_log=config.access_log == "on",
            slow=config.slow_request,
            cache=self.reports,
            demo=config.demo == "on",
        )
        # Browsers always send Origin; other clients (load testers, scripts) may not.
        origins: list[Origin | None] | None = (
            [*map(Origin, config.allowed_origins), None] if config.allowed_origins else None
        )
        self.sockets = Sockets(
            self.engine,
            self.live,
            store,
            self.journal,
            self.metrics,
            self.archive,
            self.routes,
            origins,
            config.max_frame_bytes,
            config.handshake_timeout,
            config.max_pages,
        )

    def observed(self, article: str, counts: Counts, now: float) -> None:
        """A post's stored count, told by this node's admin API (a rename's new id)."""
        self.live.observed(article, counts, now)
        self.reports.image(article, counts)

    def problems(self) -> list[str]:
        """What /healthz reports besides the store."""
        found = []
        if not self.journal.healthy:
            found.append("journal_failing")
        if self.writes.recovering:
            found.append("recovering")
        return found


def admin_guard(config: Config) -> Guard:
    """The operator's credential, its file made on first start. A file that cannot be
    used stops the node with one line, exit 2, as a wrong option does."""
    try:
        return Guard(token_path(config), config.public, parse_networks(config.trusted_proxies))
    except TokenFileError as exc:
        print(f"livecount: {exc}", file=sys.stderr)
        raise SystemExit(2) from None


async def run(
    config: Config,
    ready: asyncio.Event | None = None,
    sock: socket.socket | None = None,
    *,
    endpoint: str | None = None,
    journal: Journal | None = None,
) -> None:
    """Serve until SIGINT or SIGTERM, then flush everything and stop. A lone node gets
    its listening `sock` and its locked `journal` from `livecount serve`, which takes
    them before anything starts (`node/claims.py`); a worker gets its `sock` and the
    DynamoDB `endpoint` from its parent (`node/workers.py`)."""
    lone = endpoint is None
    guard = admin_guard(config)  # before DynamoDB: a bad token file fails at once
    shown = Banner(config, human=logs.human() and lone)  # a worker: its parent speaks
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    async with AsyncExitStack() as stack:
        if endpoint is None:
            if config.dynamodb_endpoint == "embedded":
                shown.step("dynamodb_local")
            endpoint = await stack.enter_async_context(
                local.endpoint_for(config.dynamodb_endpoint, config.data_dir)
            )
        store = await stack.enter_async_context(
            Store.open(endpoint, config.region, config.table_prefix, config.node_id)
        )
        if lone:
            record(config, endpoint, stack)
        shown.step("tables")
        await _prepare(store, stop)
        if stop.is_set():
            shown.stopped()
            return
        node = Node(config, store, guard, journal)
        # The catalog loads while the journal recovers and the stream catches up.
        stack.callback(node.reports.start().cancel)
        shown.step("journal")
        await node.flusher.recover(
            stop,
            RECOVERY_BOUND,
            f"{config.dynamodb_endpoint} {config.region} {config.table_prefix}",
        )
        background = Background()
        if node.consumer is not None:
            background.start(node.consumer.run)
            shown.step("stream")
            try:
                # Serve only once the reader table holds what earlier runs wrote.
                await asyncio.wait_for(node.consumer.caught_up.wait(), CATCH_UP_TIMEOUT)
            except TimeoutError:
                warn("stream_not_caught_up", timeout=CATCH_UP_TIMEOUT)
        background.start(node.feed.loop)
        background.start(node.reports.names_loop)
        background.start(lambda s: _prewarm(node.reports, s))
        server = await _listen(node, config, sock, shown, endpoint, lone)
        loops = Background()
        loops.start(lambda s: node.flusher.loop(s, config.flush_interval, config.report_interval))
        loops.start(lambda s: node.sockets.push_loop(s, config.push_interval))
        loops.start(lambda s: node.sockets.keepalive_loop(s, config.idle_timeout))
        if node.archive is not None:
            loops.start(node.archive.due_loop)
            writer = asyncio.create_task(node.archive.run())
        if ready is not None:
            ready.set()
        await stop.wait()
        log("stopping")
        shown.stopping()
        server.close()  # no new connections
        await node.sockets.close_all(CLOSE_TIMEOUT)  # 1001, going away
        await loops.stop()
        await node.flusher.drain(SHUTDOWN_FLUSH_TIMEOUT)
        if node.archive is not None:
            await node.archive.close(SHUTDOWN_FLUSH_TIMEOUT)
            writer.cancel()
        settled = True
        if node.consumer is not None:
            try:
                await asyncio.wait_for(node.consumer.settled(), STREAM_SETTLE_TIMEOUT)
            except TimeoutError:
                settled = False
        await background.stop()
        await node.journal.close()
        log("stopped", stream_settled=settled, copied=node.consumer.copied if node.consumer else 0)
        shown.stopped(settled)


async def _prewarm(reports: ReportCache, stop: asyncio.Event) -> None:
    """Read the catalog, then what the dashboard's periods need, while the node serves."""
    loading = reports.start()
    done = asyncio.ensure_future(stop.wait())
    await asyncio.wait([loading, done], return_when=asyncio.FIRST_COMPLETED)
    if not stop.is_set():
        now = datetime.now(UTC)
        warm = asyncio.ensure_future(
            reports.prewarm(periods.resolve({"period": name}, now) for name in PREWARMED)
        )
        await asyncio.wait([warm, done], return_when=asyncio.FIRST_COMPLETED)
        warm.cancel()
    loading.cancel()
    done.cancel()


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
    """Create the tables, waiting out a store that does not answer yet (or until stopped:
    a SIGTERM does not wait for a request that may take its full timeout). Wrong
    credentials are fatal at once: no retry can fix them."""

    async def tables() -> list[str]:
        made = await store.create_tables()
        await store.pages.reconcile()  # a page count for a store an older livecount listed
        return made

    for delay in backoff():
        attempt = asyncio.ensure_future(tables())
        stopped = asyncio.ensure_future(stop.wait())
        await asyncio.wait([attempt, stopped], return_when=asyncio.FIRST_COMPLETED)
        stopped.cancel()
        if not attempt.done():
            attempt.cancel()
            return
        try:
            made = attempt.result()
        except StoreRefused as exc:
            raise StoreRefused(f"DynamoDB refused livecount: {exc}") from None
        except Unavailable as exc:
            warn("dynamodb_unreachable", error=str(exc), retry_in=delay)
            if await pause(stop, delay):
                return
            continue
        log("tables_ready", created=made, writer=store.tables.writer)
        return


def record(config: Config, endpoint: str, stack: AsyncExitStack | ExitStack) -> None:
    """Say in the data dir where the store is, for the tools, until `stack` closes."""
    store_record.write(
        config.data_dir,
        StoreRecord(
            endpoint,
            config.region,
            config.table_prefix,
            config.node_id,
            config.lease_time,
            os.getpid(),
        ),
    )
    stack.callback(store_record.remove, config.data_dir)


async def _listen(
    node: Node, config: Config, sock: socket.socket | None, shown: Banner, endpoint: str, lone: bool
) -> asyncio.Server:
    """Listen on `sock` (bound before anything started) or on host and port; a lone
    node then says where to go (workers' parent says it once for all of them)."""
    if not config.allowed_origins:
        warn("any_origin_accepted", hint="set --allowed-origin to your blog's origin")
    loop = asyncio.get_running_loop()
    if sock is not None:
        server = await loop.create_server(node.sockets, sock=sock)
    else:
        server = await loop.create_server(node.sockets, config.host, config.port)
    ports = [s.getsockname()[1] for s in server.sockets]
    port = ports[0] if ports else config.port
    if lone and not shown.human:  # before `listening`: who waits for it reads it
        announce(node.guard.current(), config.host, port)
    log("listening", host=config.host, port=port, url=f"ws://{config.host}:{port}/ws")
    if lone:  # for a person, the login URL is in the banner, not a line apart
        login = {"Log in": login_url(config.host, port, node.guard.current())}
        shown.ready(port, endpoint, extra=login if shown.human else None)
    return server


def announce(token: str, host: str, port: int) -> None:
    """The login URL, once, as Jupyter prints its own: on stderr, never in the JSON log
    (which holds no token: logs travel to places the token must not)."""
    print(
        f"livecount: log in to the dashboard at {login_url(host, port, token)}",
        file=sys.stderr,
        flush=True,
    )
