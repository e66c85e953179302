"""The WebSocket edge: websockets' sans-I/O `ServerProtocol` under a plain
`asyncio.Protocol`, frames handed to the engine, its actions carried out.

Why not websockets' asyncio server: it runs a task per connection and an `await
send` (a context manager and a future) per reply. Here a frame costs a parse, an
engine call and, for a view, one journal entry; the replies and pushes a socket
gets in one loop turn leave in one `transport.write`. A socket keeps reading while
earlier views wait for their group-committed fsync; what it is owed, and in which
order, is the engine's (`core/outbox.py`). Handshake, Origin checks, frame limits,
close codes, pings and the HTTP routes behave as websockets' server does.

A `Connection` is its `Opening` (node/opening.py: its HTTP requests, over h11, and
the handshake) and then a WebSocket whose messages go to the engine and whose bytes
come from it.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import time
from collections.abc import Callable
from contextlib import suppress
from typing import Any, cast

from livecount.aws.store import Store
from livecount.core.engine import (
    Action,
    Append,
    Close,
    Engine,
    NeedCounts,
    PendingView,
    Send,
)
from livecount.core.errors import JournalUnavailable
from livecount.core.live import Live
from livecount.core.outbox import MAX_OWED
from livecount.core.pages import Target
from livecount.logs import error, warn_limited
from livecount.node.archive import Writer
from livecount.node.auth import header
from livecount.node.http import Routes
from livecount.node.journal import Journal
from livecount.node.metrics import Metrics
from livecount.node.opening import Opening
from livecount.waits import pause
from websockets.frames import Frame, Opcode
from websockets.http11 import Request
from websockets.protocol import State
from websockets.server import ServerProtocol
from websockets.typing import Origin

COUNTS_READ_TIMEOUT = 3.0  # a page waits this long at most for a first count
ROUND = 480  # targets a round reads, and lists (20 transactions of 24)
PING_INTERVAL = 20.0
PING_TICK = 1.0  # the keepalive loop's step: a share of the sockets is pinged each one
PUSH_TICKS = 10  # the push loop looks for changes this many times a push interval
PING_TIMEOUT = 20.0
CLOSE_TIMEOUT = 5.0
BROADCAST_CHUNK = 1000  # sockets written to before a push yields to the loop


class CountReader:
    """Stored counts the engine asked for, and new targets to list in the page index
    (within `max_pages`). One round is in flight at a time, and what is asked for
    meanwhile, from any socket, joins the next: one BatchGetItem for many first views,
    and new targets in transactions of 24. Rounds at once would all add to the page
    count's one item, and DynamoDB refuses concurrent transactions on an item: 1,000
    new pages at once took 744 conflicting transactions and stalled first views for
    seconds."""

    def __init__(self, store: Store, sockets: Sockets, max_pages: int | None) -> None:
        self.store = store
        self.sockets = sockets
        self.max_pages = max_pages
        self._queued: dict[Target, None] = {}
        self._listing: dict[Target, None] = {}
        self._running = False

    def need(self, targets: tuple[Target, ...], listing: tuple[Target, ...]) -> None:
        self._queued.update(dict.fromkeys(targets))
        self._listing.update(dict.fromkeys(listing))
        if not self._running:
            self._running = True
            self.sockets.spawn(self._rounds())

    async def _rounds(self) -> None:
        try:
            await asyncio.sleep(0)  # one loop turn: let other sockets' first views join in
            while self._queued or self._listing:
                await self._read(self._take(self._queued), self._take(self._listing))
        finally:
            self._running = False

    @staticmethod
    def _take(queue: dict[Target, None]) -> list[Target]:
        """The oldest of a round's worth: a round answers within the read timeout."""
        taken = list(itertools.islice(queue, ROUND))
        for target in taken:
            del queue[target]
        return taken

    async def _read(self, targets: list[Target], listing: list[Target]) -> None:
        engine = self.sockets.engine
        try:
            async with asyncio.timeout(COUNTS_READ_TIMEOUT):
                counts, listed = await asyncio.gather(
                    self.store.read_counts(targets),
                    self.store.pages.register(listing, self.max_pages),
                )
        except Exception as exc:  # every waiter answers `unavailable`; nothing counted
            warn_limited("counts_unavailable", error=str(exc) or type(exc).__name__)
            actions = engine.unloaded([*targets, *listing], time.time())
        else:
            if listed.refused:
                warn_limited(
                    "too_many_pages",
                    pages=self.max_pages,
                    hint="raise --max-pages, or delete pages",
                )
            actions = engine.loaded(counts, time.time(), listed.listed, listed.refused)
        for conn, action in actions:
            self.sockets.act(conn, action)


class Fragments:
    """Data frames joined into messages: `add` gives (data, binary) once one is whole."""

    __slots__ = ("_binary", "_parts")

    def __init__(self) -> None:
        self._parts: list[bytes] | None = None
        self._binary = False

    def add(self, frame: Frame) -> tuple[bytes, bool] | None:
        opcode, data = frame.opcode, frame.data
        if not isinstance(data, bytes):
            data = bytes(data)
        if opcode is Opcode.TEXT or opcode is Opcode.BINARY:
            if frame.fin:
                return data, opcode is Opcode.BINARY
            self._parts, self._binary = [data], opcode is Opcode.BINARY
        elif opcode is Opcode.CONT and self._parts is not None:
            self._parts.append(data)
            if frame.fin:
                data, self._parts = b"".join(self._parts), None
                return data, self._binary
        return None


class Connection(asyncio.Protocol):
    """One TCP connection: its opening (HTTP requests, or a WebSocket handshake), then
    a WebSocket whose messages go to the engine and whose bytes come from it."""

    def __init__(self, sockets: Sockets) -> None:
        self.sockets = sockets
        self.engine = sockets.engine
        self.protocol = ServerProtocol(origins=sockets.origins, max_size=sockets.max_size)
        self.transport: asyncio.Transport | None = None
        self.opening: Opening | None = Opening(self)  # None once a WebSocket
        self.open = False  # the WebSocket handshake is done and no close was sent
        self.pinged = 0.0  # when an unanswered ping left (0: none)
        self.order = next(sockets.opened)  # which keepalive step pings it
        self.closing: tuple[int, str] | None = None  # sent once what it is owed is
        self._fragments = Fragments()
        self._paused = False
        self.write_paused = False  # asyncio's flow control: the client reads too slowly
        self._timer: asyncio.TimerHandle | None = None

    # -- asyncio.Protocol -------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass
        self.sockets.connections.add(self)
        if self.opening is not None:
            self.later(self.sockets.open_timeout, self.opening.timed_out)

    def data_received(self, data: bytes) -> None:
        (self.opening.received if self.opening is not None else self.receive)(data)

    def eof_received(self) -> bool | None:
        if self.opening is not None:
            return self.opening.eof()
        self.protocol.receive_eof()
        self._events()
        return None

    def connection_lost(self, exc: Exception | None) -> None:
        self.sockets.lost(self)
        if self._timer is not None:
            self._timer.cancel()
        if self.open or self.protocol.state is not State.CONNECTING:
            self.engine.closed(self)
        self.open = False

    def pause_writing(self) -> None:  # the client does not read: stop reading it
        self.write_paused = True
        self.pause_reading()

    def resume_writing(self) -> None:
        self.write_paused = False
        if self.opening is not None:
            self.opening.writable()  # the next request pipelined, if any
        elif self.engine.owed(self) <= MAX_OWED // 2:
            self.resume_reading()

    # -- what the client sent -----------------------------------------------------------
    def receive(self, data: bytes) -> None:
        """Bytes for websockets' parser (the opening hands them over in its turn)."""
        self.protocol.receive_data(data)
        self._events()

    def _events(self) -> None:
        try:
            for event in self.protocol.events_received():
                if isinstance(event, Frame):
                    opcode = event.opcode
                    if opcode is Opcode.PONG:
                        self.pinged = 0.0
                    elif opcode is Opcode.CLOSE:
                        self.open = False
                    elif (message := self._fragments.add(event)) is not None:
                        self._message(*message)
                elif isinstance(event, Request) and self.opening is not None:
                    self.opening.handshake.request_head(event)
            self._send_protocol_data()
        except Exception as exc:  # a bug: this socket goes, the node stays
            error("connection_failed", exc)
            self._abort()

    def _message(self, data: bytes, binary: bool) -> None:
        """Counted even when the page closed right after sending it: a view sent
        before leaving is a view."""
        if self.protocol.state is State.CONNECTING or self.closing is not None:
            return  # nothing after the server's own close counts
        if binary:
            frame: str | bytes = data
        else:
            try:
                frame = data.decode()
            except UnicodeDecodeError:
                self.protocol.fail(1007, "invalid UTF-8")
                return
        engine = self.engine
        try:
            action = engine.receive(self, frame, time.time())
        except Exception as exc:  # a bug: logged as one, answered as one
            error("handle_failed", exc)
            action = engine.failed(self)
        if action is not None:
            self.sockets.act(self, action)
        if engine.owed(self) > MAX_OWED:
            self.pause_reading()

    def opened(self, request: Request) -> None:
        """The handshake is answered: the engine admits this socket, or closes it."""
        self.opening = None
        if self._timer is not None:
            self._timer.cancel()
        headers = request.headers
        peer = self.transport.get_extra_info("peername") if self.transport else None
        address = str(peer[0]) if peer else ""
        forwarded, agent = header(headers, "X-Forwarded-For"), header(headers, "User-Agent")
        close = self.engine.opened(self, address, forwarded, agent, time.time())
        self.open = True
        if close is not None:
            self.close(close.code, close.reason)

    # -- what goes back -----------------------------------------------------------------
    def flush(self) -> None:
        """Write everything the socket is owed that is ready, in one write; then the
        close, once nothing is owed before it."""
        engine = self.engine
        data = self.sockets.live.output(self)
        if data and self.open and self.transport is not None:
            self.transport.write(data)
        if self.closing is not None and not engine.owed(self) and self.open:
            self.open = False
            self.protocol.send_close(*self.closing)
            self._send_protocol_data()
        if self._paused and not self.write_paused and engine.owed(self) <= MAX_OWED // 2:
            self.resume_reading()

    def write(self, frame: bytes) -> None:
        """A push the engine found nothing owed before: now."""
        if self.open and self.transport is not None:
            self.transport.write(frame)

    def ping(self, now: float, send: bool) -> None:
        """Ping when `send` and none is out; a pong late past PING_TIMEOUT means the
        page is gone without a word (a sleeping laptop, a lost network): drop it now,
        with no close handshake to wait for, so it stops counting as a reader."""
        if not self.open:
            return
        if self.pinged and now - self.pinged > PING_TIMEOUT:
            self.protocol.fail(1011, "keepalive ping timeout")
            self.open = False
            self._send_protocol_data()
            self._abort()
        elif send and not self.pinged:
            self.pinged = now
            self.protocol.send_ping(os.urandom(4))
            self._send_protocol_data()

    def close(self, code: int, reason: str) -> None:
        """Close once everything owed is sent: a view answered is a view counted."""
        if self.protocol.state is State.OPEN and self.closing is None:
            self.closing = (code, reason)
            self.flush()

    def _send_protocol_data(self) -> None:
        """Handshake answers, pongs, close frames and EOF, from websockets' protocol."""
        transport = self.transport
        if transport is None or transport.is_closing():
            return
        if self.opening is not None and self.opening.handshake.answers():
            return
        for data in self.protocol.data_to_send():
            if data:
                transport.write(data)
            elif transport.can_write_eof():
                transport.write_eof()
        if self.protocol.close_expected() or self.protocol.state is State.CLOSED:
            self.open = False
            self.ending()

    def ending(self) -> None:
        """This side has said its last: the client gets CLOSE_TIMEOUT to hang up."""
        self.later(CLOSE_TIMEOUT, self._abort)

    def later(self, seconds: float, then: Callable[[], None]) -> None:
        """The connection's one timer: the opening's deadlines, then the close's."""
        if self._timer is not None:
            self._timer.cancel()
        self._timer = self.sockets.loop.call_later(seconds, then)

    def _abort(self) -> None:
        if self.transport is not None:
            self.transport.abort()

    def pause_reading(self) -> None:
        """Too much is owed to this client (or it does not read): read it no further."""
        if not self._paused and self.transport is not None:
            self._paused = True
            self.transport.pause_reading()

    def resume_reading(self) -> None:
        if self._paused and self.transport is not None and not self.transport.is_closing():
            self._paused = False
            self.transport.resume_reading()


class Sockets:
    """Every connection of the node, and what they share: carrying out the engine's
    actions, the loop turn's writes, pushes, pings and idle reaping. Called, it makes
    a `Connection` (asyncio's protocol factory)."""

    def __init__(
        self,
        engine: Engine[Connection],
        live: Live[Connection],
        store: Store,
        journal: Journal,
        metrics: Metrics,
        archive: Writer | None,
        routes: Routes,
        origins: list[Origin | None] | None,
        max_size: int,
        open_timeout: float,
        max_pages: int | None = None,
    ) -> None:
        self.engine = engine
        self.live = live
        self.journal = journal
        self.metrics = metrics
        self.archive = archive
        self.routes = routes
        self.origins = origins
        self.max_size = max_size
        self.open_timeout = open_timeout
        self.loop = asyncio.get_running_loop()
        self.counts = CountReader(store, self, max_pages)
        self.connections: set[Connection] = set()
        self._dirty: set[Connection] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self._all_closed = asyncio.Event()
        self.opened = itertools.count()
        journal.views = self

    def __call__(self) -> Connection:
        return Connection(self)

    def lost(self, conn: Connection) -> None:
        self.connections.discard(conn)
        self._dirty.discard(conn)
        if not self.connections:
            self._all_closed.set()

    def spawn(self, work: Any) -> None:
        """A task nobody awaits (HTTP answers, count reads): kept until done."""
        task = self.loop.create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def act(self, conn: Connection, action: Action) -> None:
        """Carry out what the engine asked of `conn`."""
        if isinstance(action, Append):
            self._append(action.view)
        elif isinstance(action, Send):
            self.dirty(conn)
        elif isinstance(action, NeedCounts):
            self.counts.need(action.targets, action.listing)
        elif isinstance(action, Close):
            conn.close(action.code, action.reason)

    def dirty(self, conn: Connection) -> None:
        if not self._dirty:
            self.loop.call_soon(self._flush)
        self._dirty.add(conn)

    def _flush(self) -> None:
        dirty, self._dirty = self._dirty, set()
        for conn in dirty:
            conn.flush()

    def _append(self, view: PendingView) -> None:
        """Journal a view; it counts, and its reply is ready, once on disk (`stored`,
        called by the journal in the file's order)."""
        if not self.journal.healthy:
            # A failing journal (a full disk) takes the flushes' small records first:
            # they let what it holds be stored, and then it can empty itself.
            self.failed(
                view, JournalUnavailable("the journal cannot write right now; nothing counted")
            )
            return
        self.journal.append_view(view.record, view)

    def stored(self, view: PendingView) -> None:
        now = time.time()
        try:
            self.live.stored(view, now)
        except Exception as exc:  # a bug: that page hears `internal`, the node goes on
            self.failed(view, exc)
            return
        if self.archive is not None and view.archived is not None:
            self.archive.add(view.archived, now)
        self.dirty(view.conn)

    def failed(self, view: PendingView, failure: BaseException) -> None:
        if not isinstance(failure, JournalUnavailable):
            error("handle_failed", failure)
        self.live.unstored(view, failure)
        self.dirty(view.conn)

    async def push_loop(self, stop: asyncio.Event, interval: float) -> None:
        """Pushes go out at most once an `interval`, but a change after a quiet one goes
        at the next tick (a tenth of it), not at the interval's end: a lone view
        reaches its readers about `interval` sooner, and a busy page costs no more."""
        last = 0.0
        live = self.live
        while not await pause(stop, interval / PUSH_TICKS):
            now = time.monotonic()
            if now - last < interval or not live.pushes_due:
                continue
            last = now
            targets, waited = live.due(time.time())
            for target in targets:
                frame, watchers = live.push(target)
                for i, conn in enumerate(watchers):
                    conn.write(frame)
                    if i % BROADCAST_CHUNK == BROADCAST_CHUNK - 1:
                        await asyncio.sleep(0)  # let replies and reads through
                        frame = live.frame(target)  # never older than those
            for seconds in waited:
                self.metrics.push_latency.observe(seconds)

    async def keepalive_loop(self, stop: asyncio.Event, idle_after: float) -> None:
        """Pings keep watching sockets honest; quiet ones that watch nothing go. Each
        socket is pinged once a PING_INTERVAL, a share of them each step in the order
        they opened: 10,000 sockets cost 500 pings a second, not a burst of 10,000
        every 20 s (their pongs with it) that every push behind it would wait for."""
        step = min(PING_TICK, idle_after)
        shares = max(1, round(PING_INTERVAL / step))
        idle_every = max(1, round(min(idle_after, 5.0) / step))
        for tick in itertools.count(1):
            if await pause(stop, step):
                return
            if tick % idle_every == 0:
                for conn in self.engine.idle(time.time()):
                    conn.close(1001, "idle")
            now, share = time.monotonic(), tick % shares
            for conn in list(self.connections):  # late pongs are looked for every step
                conn.ping(now, conn.order % shares == share)

    async def close_all(self, within: float) -> None:
        """Close every socket with 1001 (going away) and wait, bounded, for them."""
        for conn in list(self.connections):
            if conn.open:
                conn.close(1001, "")
            elif conn.transport is not None:
                conn.transport.close()
        if self.connections:
            self._all_closed.clear()
            with suppress(TimeoutError):
                await asyncio.wait_for(self._all_closed.wait(), within)
        for conn in list(self.connections):
            conn._abort()
        if self._tasks:
            await asyncio.wait(list(self._tasks), timeout=within)
