"""The WebSocket edge: websockets' sans-I/O `ServerProtocol` under a plain
`asyncio.Protocol`, frames handed to the engine, its outcomes written back.

Why not websockets' asyncio server: it runs a task per connection and an `await
send` (a context manager and a future) per reply. Here a frame costs a parse, an
engine call and, for a view, one journal entry; the replies and pushes a socket
gets in one loop turn leave in one `transport.write`. A socket keeps reading while
earlier views wait for their group-committed fsync, and its replies still leave in
order, each only once its view is on disk. Handshake, Origin checks, frame limits,
close codes, pings and the HTTP routes behave as websockets' server does.

A `Connection` composes its `Opening` (node/opening.py: its HTTP requests, over h11,
and the handshake), its `Inbox` (node/inbox.py: messages to the engine, in order) and its
`Outbox` (node/outbox.py: what it owes the page, in order).
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
from livecount.core.engine import Engine, Outcome, PendingView, Push
from livecount.core.errors import JournalUnavailable, LivecountError, Unavailable
from livecount.core.ledger import Counts
from livecount.core.pages import Target
from livecount.logs import error, warn_limited
from livecount.node.archive import Writer
from livecount.node.auth import header
from livecount.node.http import Routes
from livecount.node.inbox import INTERNAL, Inbox
from livecount.node.journal import Journal
from livecount.node.metrics import Metrics
from livecount.node.opening import Opening
from livecount.node.outbox import MAX_WAITING, Outbox, Slot, text_frame
from livecount.waits import pause
from websockets.frames import Frame, Opcode
from websockets.http11 import Request
from websockets.protocol import State
from websockets.server import ServerProtocol
from websockets.typing import Origin

BASE_READ_TIMEOUT = 3.0  # a page waits this long at most for a first count
PING_INTERVAL = 20.0
PING_TICK = 1.0  # the keepalive loop's step: a share of the sockets is pinged each one
PUSH_TICKS = 10  # the push loop looks for changes this many times a push interval
PING_TIMEOUT = 20.0
CLOSE_TIMEOUT = 5.0
BROADCAST_CHUNK = 1000  # sockets written to before a push yields to the loop


class Bases:
    """Stored counts of targets this node has not seen. Targets asked for in the same
    loop turn, from any socket, share one BatchGetItem."""

    def __init__(self, store: Store, engine: Engine[Any]) -> None:
        self.store = store
        self.engine = engine
        self._queued: dict[Target, asyncio.Future[None]] = {}
        self._loader: asyncio.Task[None] | None = None

    async def load(self, targets: list[Target]) -> None:
        waits = []
        for target in targets:
            if (waiting := self._queued.get(target)) is None:
                waiting = self._queued[target] = asyncio.get_running_loop().create_future()
            waits.append(waiting)
        if self._loader is None:
            self._loader = asyncio.create_task(self._load())
        await asyncio.gather(*waits)

    async def _load(self) -> None:
        await asyncio.sleep(0)  # one loop turn: let other sockets' first views join in
        queued, self._queued, self._loader = self._queued, {}, None
        try:
            counts: dict[Target, Counts] = await asyncio.wait_for(
                self.store.read_counts(list(queued)), BASE_READ_TIMEOUT)
        except Exception as exc:  # every waiter answers `unavailable`; nothing counted
            warn_limited("counts_unavailable", error=str(exc) or type(exc).__name__)
            failure = Unavailable("counts are unavailable right now; nothing was counted")
            for waiting in queued.values():
                waiting.set_exception(failure)
            return
        self.engine.loaded(counts)
        for waiting in queued.values():
            waiting.set_result(None)


class Connection(asyncio.Protocol):
    """One TCP connection: its opening (an HTTP request, or a WebSocket handshake),
    then a WebSocket whose messages go in through its inbox and whose replies leave
    through its outbox."""

    def __init__(self, hub: Sockets) -> None:
        self.hub = hub
        self.protocol = ServerProtocol(origins=hub.origins, max_size=hub.max_size)
        self.transport: asyncio.Transport | None = None
        self.opening: Opening | None = Opening(self)  # None once a WebSocket
        self.outbox = Outbox(hub.engine)
        self.inbox = Inbox(self)
        self.open = False  # the WebSocket handshake is done and no close was sent
        self.pinged = 0.0  # when an unanswered ping left (0: none)
        self.order = next(hub.opened)  # which keepalive step pings it
        self.closing: tuple[int, str] | None = None  # sent once the replies before it are
        self._paused = False
        self._write_paused = False
        self._timer: asyncio.TimerHandle | None = None

    # -- asyncio.Protocol -------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass
        self.hub.connections.add(self)
        if self.opening is not None:
            self.later(self.hub.open_timeout, self.opening.timed_out)

    def data_received(self, data: bytes) -> None:
        if self.opening is not None:
            self.opening.received(data)
            return
        self.protocol.receive_data(data)
        self._events()

    def eof_received(self) -> bool | None:
        if self.opening is not None:
            return self.opening.eof()
        self.protocol.receive_eof()
        self._events()
        return None

    def connection_lost(self, exc: Exception | None) -> None:
        self.hub.lost(self)
        if self._timer is not None:
            self._timer.cancel()
        if self.open or self.protocol.state is not State.CONNECTING:
            self.hub.engine.closed(self)
        self.open = False

    def pause_writing(self) -> None:  # the client does not read: stop reading it
        self._write_paused = True
        self.pause_reading()

    def resume_writing(self) -> None:
        self._write_paused = False
        if len(self.outbox) <= MAX_WAITING // 2:
            self._resume()

    # -- what the client sent -----------------------------------------------------------
    def receive(self, data: bytes) -> None:
        """Bytes for websockets' parser (the opening hands them over in its turn)."""
        self.protocol.receive_data(data)
        self._events()

    def _events(self) -> None:
        try:
            inbox = self.inbox
            for event in self.protocol.events_received():
                if isinstance(event, Frame):
                    opcode = event.opcode
                    if opcode is Opcode.PONG:
                        self.pinged = 0.0
                    elif opcode is Opcode.CLOSE:
                        self.open = False
                    else:
                        inbox.frame(event)
                elif isinstance(event, Request) and self.opening is not None:
                    self.opening.handshake.request_head(event)
            self._send_protocol_data()
        except Exception as exc:  # a bug: this socket goes, the node stays
            error("connection_failed", exc)
            self._abort()

    def opened(self, request: Request) -> None:
        """The handshake is answered: the engine admits this socket, or closes it."""
        self.opening = None
        if self._timer is not None:
            self._timer.cancel()
        headers = request.headers
        peer = self.transport.get_extra_info("peername") if self.transport else None
        close = self.hub.engine.opened(self, str(peer[0]) if peer else "",
                                       header(headers, "X-Forwarded-For"),
                                       header(headers, "User-Agent"), time.time())
        self.open = True
        if close is not None:
            self.hub.metrics.rejected.labels("too_many_connections").inc()
            self.close(close.code, close.reason)

    # -- what goes back -----------------------------------------------------------------
    def flush(self) -> None:
        """Write every reply that is ready, in order, in one write; then the close, once
        nothing is owed before it."""
        outbox = self.outbox
        data = outbox.ready(self)
        if data and self.open and self.transport is not None:
            self.transport.write(data)
        if self.closing is not None and not outbox and self.open:
            self.open = False
            self.protocol.send_close(*self.closing)
            self._send_protocol_data()
        if self._paused and len(outbox) <= MAX_WAITING // 2 and not self._write_paused:
            self._resume()

    def push(self, push: Push, frame: bytes) -> None:
        """A count push: at once if nothing waits before it, else in its turn, with the
        count as it is then. Not at all if this page was last told that very count
        (its own view's reply, mostly)."""
        if not self.open:
            return
        outbox = self.outbox
        if outbox:
            outbox.append(push.target)
            self.hub.dirty(self)
        elif outbox.told != (push.target, push.counts) and self.transport is not None:
            self.transport.write(frame)
            outbox.told = (push.target, push.counts)

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
        """Close once every reply owed is sent: a view answered is a view counted."""
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
        self._timer = self.hub.loop.call_later(seconds, then)

    def _abort(self) -> None:
        if self.transport is not None:
            self.transport.abort()

    def pause_reading(self) -> None:
        """Too much is owed to this client (or it does not read): read it no further."""
        if not self._paused and self.transport is not None:
            self._paused = True
            self.transport.pause_reading()

    def _resume(self) -> None:
        if self._paused and self.transport is not None and not self.transport.is_closing():
            self._paused = False
            self.transport.resume_reading()


class Sockets:
    """Every connection of the node, and what they share: the loop turn's writes,
    pushes, pings and idle reaping."""

    def __init__(self, engine: Engine[Connection], bases: Bases, journal: Journal,
                 metrics: Metrics, archive: Writer | None, routes: Routes,
                 origins: list[Origin | None] | None, max_size: int,
                 open_timeout: float) -> None:
        self.engine = engine
        self.bases = bases
        self.journal = journal
        self.metrics = metrics
        self.archive = archive
        self.routes = routes
        self.origins = origins
        self.max_size = max_size
        self.open_timeout = open_timeout
        self.loop = asyncio.get_running_loop()
        self.connections: set[Connection] = set()
        self._dirty: set[Connection] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self._all_closed = asyncio.Event()
        self.opened = itertools.count()
        self._counted = 0  # views counted since the last loop turn's metrics
        journal.views = self

    def lost(self, conn: Connection) -> None:
        self.connections.discard(conn)
        self._dirty.discard(conn)
        if not self.connections:
            self._all_closed.set()

    def __call__(self) -> Connection:
        return Connection(self)

    def spawn(self, work: Any) -> None:
        """A task nobody awaits (HTTP answers, first reads): kept until done."""
        task = self.loop.create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def counted(self, outcome: Outcome) -> None:
        if outcome.refused is not None:
            self.metrics.rejected.labels(outcome.refused).inc()
        elif outcome.bot:
            self.metrics.bots.inc()

    def dirty(self, conn: Connection) -> None:
        if not self._dirty:
            self.loop.call_soon(self._flush)
        self._dirty.add(conn)

    def _flush(self) -> None:
        dirty, self._dirty = self._dirty, set()
        for conn in dirty:
            conn.flush()
        if self._counted:  # once a loop turn, not once a view
            self.metrics.views.inc(self._counted)
            self._counted = 0

    def journal_view(self, conn: Connection, view: PendingView, slot: Slot) -> None:
        """Journal a view; it counts, and its reply is released, once on disk
        (`stored`, called by the journal in the file's order)."""
        if not self.journal.healthy:
            # A failing journal (a full disk) takes the flushes' small records first:
            # they let what it holds be stored, and then it can empty itself.
            self.failed((conn, view, slot), JournalUnavailable(
                "the journal cannot write right now; nothing counted"))
            return
        self.journal.append_view(view.record, (conn, view, slot))

    def stored(self, token: tuple[Connection, PendingView, Slot]) -> None:
        conn, view, slot = token
        now = time.time()
        try:
            reply = self.engine.count(view, now)
        except Exception as exc:  # a bug: that page hears `internal`, the node goes on
            self.failed(token, exc)
            return
        self._counted += 1
        if self.archive is not None and view.archived is not None:
            self.archive.add(view.archived, now)
        slot[0], slot[1] = reply, (None if view.counts is None else (view.target, view.counts))
        self.dirty(conn)

    def failed(self, token: tuple[Connection, PendingView, Slot],
               failure: BaseException) -> None:
        conn, view, slot = token
        self.engine.dropped(view)
        exc = failure if isinstance(failure, LivecountError) else INTERNAL
        if not isinstance(failure, LivecountError):
            error("handle_failed", failure)
        self.metrics.rejected.labels(exc.code).inc()
        slot[0], slot[1] = Outcome.error(exc).replies[0], None
        self.dirty(conn)

    async def push_loop(self, stop: asyncio.Event, interval: float) -> None:
        """Pushes go out at most once an `interval`, but a change after a quiet one goes
        at the next tick (a tenth of it), not at the interval's end: a lone view
        reaches its readers about `interval` sooner, and a busy page costs no more."""
        last = 0.0
        while not await pause(stop, interval / PUSH_TICKS):
            now = time.monotonic()
            if now - last < interval or not self.engine.hub.waiting:
                continue
            last = now
            pushes, waited = self.engine.due(time.time())
            for push in pushes:
                frame, watchers = text_frame(push.message), push.watchers
                for i, conn in enumerate(list(watchers)):
                    conn.push(push, frame)
                    if i % BROADCAST_CHUNK == BROADCAST_CHUNK - 1:
                        await asyncio.sleep(0)  # let replies and reads through
                self.metrics.pushes.inc(len(watchers))
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

