"""The WebSocket edge: websockets' sans-I/O `ServerProtocol` under a plain
`asyncio.Protocol`, frames handed to the engine, its outcomes written back.

Why not websockets' asyncio server: it runs a task per connection and an `await
send` (a context manager and a future) per reply. Here a frame costs a parse, an
engine call and, for a view, one journal entry; the replies and pushes a socket
gets in one loop turn leave in one `transport.write`. A socket keeps reading while
earlier views wait for their group-committed fsync, and its replies still leave in
order, each only once its view is on disk. Handshake, Origin checks, frame limits,
close codes, pings and the HTTP routes behave as websockets' server does.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections import deque
from contextlib import suppress
from dataclasses import dataclass
from typing import Any, cast
from urllib.parse import urlsplit

from livecount.aws.store import Store
from livecount.core.engine import Engine, Outcome, PendingView, Push
from livecount.core.errors import JournalUnavailable, LivecountError, Unavailable
from livecount.core.ledger import Counts
from livecount.core.pages import Target
from livecount.logs import error, warn_limited
from livecount.node.archive import Writer
from livecount.node.http import WS_PATH, Routes, bad_request, json_response, refusal
from livecount.node.journal import Journal
from livecount.node.metrics import Metrics
from livecount.waits import pause
from websockets.exceptions import InvalidOrigin
from websockets.frames import Frame, Opcode
from websockets.http11 import Request, Response
from websockets.protocol import State
from websockets.server import ServerProtocol
from websockets.typing import Origin

Slot = list[Any]  # [the reply's frame(s), or None until its view is on disk; what it told]


@dataclass(frozen=True, slots=True)
class Answer:
    """A `count` owed to a subscribe, read when its turn comes (unlike a push, it is
    sent even when it repeats what the page was told)."""

    target: Target

BASE_READ_TIMEOUT = 3.0  # a page waits this long at most for a first count
MAX_WAITING = 64  # replies a socket may have waiting before it is read no further
PING_INTERVAL = 20.0
PING_TIMEOUT = 20.0
CLOSE_TIMEOUT = 5.0
BROADCAST_CHUNK = 1000  # sockets written to before a push yields to the loop
INTERNAL = LivecountError("livecount failed on this message; it was not counted")


def text_frame(payload: bytes) -> bytes:
    """A server's unmasked, unfragmented text frame: the same bytes for every socket,
    so a push is framed once, not once per subscriber."""
    size = len(payload)
    if size < 126:
        return bytes((0x81, size)) + payload
    if size < 65536:
        return bytes((0x81, 126)) + size.to_bytes(2, "big") + payload
    return bytes((0x81, 127)) + size.to_bytes(8, "big") + payload


def _path(target: str) -> str:
    """The path of a request target, origin-form or absolute-form."""
    try:
        return urlsplit(target).path
    except ValueError:  # the routes answer what cannot be parsed
        return target


def handshake_refusal(response: Response) -> Response:
    """websockets' refusal of a WebSocket handshake (a bad Origin, no Upgrade), in
    JSON like every other answer livecount gives."""
    codes = {403: "origin_not_allowed", 426: "upgrade_required"}
    detail = response.body.decode(errors="replace").strip() if response.body else ""
    answer = json_response(response.status_code, {
        "error": codes.get(response.status_code, "bad_handshake"), "detail": detail})
    for name in ("Upgrade", "Connection"):
        if name in response.headers and name not in answer.headers:
            answer.headers[name] = response.headers[name]
    return answer


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
    """One TCP connection: an HTTP request, or a WebSocket."""

    def __init__(self, hub: Sockets) -> None:
        self.hub = hub
        self.protocol = ServerProtocol(origins=hub.origins, max_size=hub.max_size)
        self.transport: asyncio.Transport | None = None
        # In order: a reply ready to frame (bytes), a slot filled once its view is on
        # disk ([frame or None, what it told]), or a push whose count is read when its
        # turn comes (a Target).
        self.outbox: deque[bytes | Slot | Target | Answer] = deque()
        self.told: tuple[Target, Counts] | None = None  # the last count this page was sent
        self.open = False  # the WebSocket handshake is done and no close was sent
        self.pinged = 0.0  # when an unanswered ping left (0: none)
        self._head = b""  # the start of the request, to answer a refused one
        self._tail = b""  # the request's last bytes so far, to find where it ends
        self._fragments: list[bytes] | None = None
        # Messages that came while a first read was under way, to handle after it:
        # a socket's views are journaled, and so counted, in the order it sent them.
        self._held: deque[tuple[bytes, bool]] | None = None
        self._binary = False
        self._closing: tuple[int, str] | None = None  # sent once the replies before it are
        self._requested = False  # a request was parsed: websockets answers its refusals
        self._http = False  # a plain HTTP request: answered by the routes, then closed
        self._eof = False
        self._paused = False
        self._write_paused = False
        self._timer: asyncio.TimerHandle | None = None

    # -- asyncio.Protocol -------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass
        self.hub.connections.add(self)
        self._timer = self.hub.loop.call_later(self.hub.open_timeout, self._abort)

    def data_received(self, data: bytes) -> None:
        if self._http:
            return  # one request per connection: anything after it is not read
        if self.protocol.state is State.CONNECTING and not self._requested:
            if len(self._head) < 32:
                self._head += data[:32 - len(self._head)]
            # The request goes in alone: its handshake must be answered before
            # websockets parses frames that came in the same segment.
            end = (self._tail + data).find(b"\r\n\r\n")
            if end == -1:
                self._tail = (self._tail + data)[-3:]
            else:
                cut, self._tail = end + 4 - len(self._tail), b""
                self.protocol.receive_data(data[:cut])
                self._events()
                data = data[cut:]
                if not data or self._http:
                    return
        self.protocol.receive_data(data)
        self._events()

    def eof_received(self) -> bool | None:
        self._eof = True
        if self._http:
            return True  # keep the connection to write the answer
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
        self._pause()

    def resume_writing(self) -> None:
        self._write_paused = False
        if len(self.outbox) <= MAX_WAITING // 2:
            self._resume()

    # -- what the client sent -----------------------------------------------------------
    def _events(self) -> None:
        try:
            for event in self.protocol.events_received():
                if isinstance(event, Frame):
                    self._frame(event)
                elif isinstance(event, Request):
                    self._request(event)
            self._send_protocol_data()
        except Exception as exc:  # a bug: this socket goes, the node stays
            error("connection_failed", exc)
            self._abort()

    def _request(self, request: Request) -> None:
        self._requested = True
        if _path(request.path) == WS_PATH and request.method == "GET":
            self._handshake(request)
        else:
            self._http = True
            self.hub.spawn(self._answer(request))

    async def _answer(self, request: Request) -> None:
        """A plain HTTP request: the routes answer it, written directly (whatever the
        client sent after it, websockets' parser may have choked on), then EOF."""
        answer = await self.hub.routes(request)
        if answer is None:  # /ws, but not a GET: the routes answer that; never here
            answer = bad_request("use GET for a WebSocket")
        self._end(answer)

    def _handshake(self, request: Request) -> None:
        response = self.protocol.accept(request)
        if response.status_code != 101:
            if isinstance(self.protocol.handshake_exc, InvalidOrigin):
                self.hub.metrics.rejected.labels("origin").inc()
            self.protocol.send_response(handshake_refusal(response))
            return
        self.protocol.send_response(response)
        if self._timer is not None:
            self._timer.cancel()
        headers, peer = request.headers, self._peer()
        close = self.hub.engine.opened(self, peer, headers.get("X-Forwarded-For"),
                                       headers.get("User-Agent"), time.time())
        self.open = True
        if close is not None:
            self.hub.metrics.rejected.labels("too_many_connections").inc()
            self.close(close.code, close.reason)

    def _frame(self, frame: Frame) -> None:
        opcode, data = frame.opcode, frame.data
        if not isinstance(data, bytes):
            data = bytes(data)
        if opcode is Opcode.PONG:
            self.pinged = 0.0
            return
        if opcode is Opcode.TEXT or opcode is Opcode.BINARY:
            if not frame.fin:
                self._fragments = [data]
                self._binary = opcode is Opcode.BINARY
                return
            self._message(data, opcode is Opcode.BINARY)
        elif opcode is Opcode.CONT and self._fragments is not None:
            self._fragments.append(data)
            if frame.fin:
                data, self._fragments = b"".join(self._fragments), None
                self._message(data, self._binary)
        elif opcode is Opcode.CLOSE:
            self.open = False

    def _message(self, data: bytes, binary: bool) -> None:
        """Counted even when the page closed right after sending it: a view sent
        before leaving is a view."""
        if self.protocol.state is State.CONNECTING or self._closing is not None:
            return  # nothing after the server's own close counts
        if self._held is not None:  # behind a first read: keep the socket's order
            self._held.append((data, binary))
            if len(self._held) + len(self.outbox) > MAX_WAITING:
                self._pause()
            return
        if binary:
            frame: str | bytes = data
        else:
            try:
                frame = data.decode()
            except UnicodeDecodeError:
                self.protocol.fail(1007, "invalid UTF-8")
                return
        hub = self.hub
        try:
            outcome = hub.engine.receive(self, frame, time.time())
        except Exception as exc:  # a bug: logged as one, answered as one
            error("handle_failed", exc)
            outcome = Outcome.error(INTERNAL)
        hub.counted(outcome)
        if outcome.load:
            slot: Slot = [None, None]
            self.outbox.append(slot)
            self._held = deque()
            hub.spawn(self._load(outcome, slot))
        elif outcome.view is not None:
            slot = [None, None]
            self.outbox.append(slot)
            hub.journal_view(self, outcome.view, slot)
        for reply in outcome.replies:
            self.outbox.append(reply)
        for target in outcome.counts:
            self.outbox.append(Answer(target))
        if outcome.close is not None:
            self.close(outcome.close.code, outcome.close.reason)
        if len(self.outbox) > MAX_WAITING:
            self._pause()
        hub.dirty(self)

    async def _load(self, outcome: Outcome, slot: Slot) -> None:
        """A first view or subscription: its stored count is read before any count."""
        hub = self.hub
        try:
            await hub.bases.load(list(outcome.load))
            assert outcome.again is not None
            again = hub.engine.handle(self, outcome.again, time.time())
            if again.load:  # forgotten again in between: rare, and honest to refuse
                raise Unavailable("counts are unavailable right now; nothing was counted")
        except LivecountError as exc:
            again = Outcome.error(exc)
        except Exception as exc:
            error("handle_failed", exc)
            again = Outcome.error(INTERNAL)
        hub.counted(again)
        if again.view is not None:
            hub.journal_view(self, again.view, slot)
        else:
            slot[0] = [*again.replies, *map(Answer, again.counts)]
            hub.dirty(self)
        held, self._held = self._held, None
        while held:  # in order, until one of them needs a first read in its turn
            self._message(*held.popleft())
            if self._held is not None:
                self._held.extend(held)
                return

    # -- what goes back -----------------------------------------------------------------
    def settled(self, slot: Slot, reply: bytes, told: tuple[Target, Counts] | None) -> None:
        slot[0], slot[1] = reply, told
        self.hub.dirty(self)

    def flush(self) -> None:
        """Write every reply that is ready, in order, in one write. Counts are read as
        they leave, so none shows less than a reply that left before it."""
        outbox, parts = self.outbox, list[bytes]()
        while outbox:
            head = outbox[0]
            if isinstance(head, list):
                if head[0] is None:
                    break
                for part in head[0] if isinstance(head[0], list) else (head[0],):
                    self._add(parts, part)
                if head[1] is not None:
                    self.told = head[1]
            else:
                self._add(parts, head)
            outbox.popleft()
        if parts and self.open and self.transport is not None:
            self.transport.write(b"".join(parts))
        if self._closing is not None and not outbox and self.open:
            self.open = False
            self.protocol.send_close(*self._closing)
            self._send_protocol_data()
        if self._paused and len(outbox) <= MAX_WAITING // 2 and not self._write_paused:
            self._resume()

    def _add(self, parts: list[bytes], entry: bytes | Target | Answer) -> None:
        if isinstance(entry, bytes):
            parts.append(text_frame(entry))
            return
        if isinstance(entry, Answer):  # owed to a subscribe: always sent
            target, push = entry.target, False
        else:  # a push: not when it repeats what the page was told
            target, push = entry, True
        counts, message = self.hub.engine.push_now(target)
        if not push or self.told != (target, counts):
            parts.append(text_frame(message))
            self.told = (target, counts)

    def push(self, push: Push, frame: bytes) -> None:
        """A count push: at once if nothing waits before it, else in its turn, with the
        count as it is then. Not at all if this page was last told that very count
        (its own view's reply, mostly)."""
        if not self.open:
            return
        if self.outbox:
            self.outbox.append(push.target)
            self.hub.dirty(self)
        elif self.told != (push.target, push.counts) and self.transport is not None:
            self.transport.write(frame)
            self.told = (push.target, push.counts)

    def ping(self, now: float) -> None:
        if not self.open:
            return
        if self.pinged and now - self.pinged > PING_TIMEOUT:
            self.protocol.fail(1011, "keepalive ping timeout")
            self.open = False
        elif not self.pinged:
            self.pinged = now
            self.protocol.send_ping(os.urandom(4))
        self._send_protocol_data()

    def close(self, code: int, reason: str) -> None:
        """Close once every reply owed is sent: a view answered is a view counted."""
        if self.protocol.state is State.OPEN and self._closing is None:
            self._closing = (code, reason)
            self.flush()

    def _send_protocol_data(self) -> None:
        """Handshake answers, pongs, close frames and EOF, from websockets' protocol."""
        transport = self.transport
        if transport is None or transport.is_closing():
            return
        if self._http:
            self.protocol.data_to_send()  # the routes answer; websockets' output is moot
            return
        failure = self.protocol.handshake_exc
        if failure is not None and not self._requested:
            # websockets' parser refused the request: answer in JSON, not with its
            # plain text or a bare EOF. (EOFError is also its word for a line without
            # CRLF: unless the client really left, that deserves an answer.)
            self._requested = self._http = True
            self.protocol.data_to_send()
            answer = refusal(failure, self._head)
            if answer is None and not self._eof:
                answer = bad_request("not an HTTP/1.1 request: lines end with CRLF")
            if answer is None:
                transport.close()
            else:
                self._end(answer)
            return
        for data in self.protocol.data_to_send():
            if data:
                transport.write(data)
            elif transport.can_write_eof():
                transport.write_eof()
        if self.protocol.close_expected() or self.protocol.state is State.CLOSED:
            self.open = False
            if self._timer is not None:
                self._timer.cancel()
            self._timer = self.hub.loop.call_later(CLOSE_TIMEOUT, self._abort)

    def _end(self, answer: Response) -> None:
        """Write an HTTP answer and end the connection."""
        transport = self.transport
        if transport is None or transport.is_closing():
            return
        transport.write(answer.serialize())
        if transport.can_write_eof():
            transport.write_eof()
        if self._timer is not None:
            self._timer.cancel()
        self._timer = self.hub.loop.call_later(CLOSE_TIMEOUT, self._abort)

    def _abort(self) -> None:
        if self.transport is not None:
            self.transport.abort()

    def _peer(self) -> str:
        peer = self.transport.get_extra_info("peername") if self.transport else None
        return str(peer[0]) if peer else ""

    def _pause(self) -> None:
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

    def journal_view(self, conn: Connection, view: PendingView,
                     slot: Slot) -> None:
        """Journal a view; it counts, and its reply is released, once on disk."""
        engine = self.engine

        def count() -> bytes:
            now = time.time()
            reply = engine.count(view, now)
            self.metrics.views.inc()
            if self.archive is not None and view.archived is not None:
                self.archive.add(view.archived, now)
            return reply

        def then(reply: Any, failure: BaseException | None) -> None:
            if failure is not None:
                engine.dropped(view)
                exc = failure if isinstance(failure, LivecountError) else INTERNAL
                if not isinstance(failure, LivecountError):
                    error("handle_failed", failure)
                self.metrics.rejected.labels(exc.code).inc()
                reply = Outcome.error(exc).replies[0]
            conn.settled(slot, reply, None if failure is not None or view.counts is None
                         else (view.target, view.counts))

        if not self.journal.healthy:
            # A failing journal (a full disk) takes the flushes' small records first:
            # they let what it holds be stored, and then it can empty itself.
            then(None, JournalUnavailable("the journal cannot write right now; "
                                          "nothing counted"))
            return
        self.journal.append_then(view.record, count, then)

    async def push_loop(self, stop: asyncio.Event, interval: float) -> None:
        while not await pause(stop, interval):
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
        """Pings keep watching sockets honest; quiet ones that watch nothing go."""
        last_ping = time.monotonic()
        while not await pause(stop, min(idle_after, 5.0)):
            for conn in self.engine.idle(time.time()):
                conn.close(1001, "idle")
            now = time.monotonic()
            if now - last_ping >= PING_INTERVAL:
                last_ping = now
                for conn in list(self.connections):
                    conn.ping(now)

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

