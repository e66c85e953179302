"""A connection's HTTP/1.1 side, until it is a WebSocket: h11 reads its requests, the
router (`node/router.py`) answers them one after another, and a `/ws` handshake goes
to websockets.

Why h11 (python-hyper's sans-I/O HTTP/1.1): it sits under the node's own
`asyncio.Protocol` as websockets' `ServerProtocol` does, so one port and one transport
serve both, and once a handshake is answered the connection is the WebSocket path,
unchanged: no stream or task per socket, as a web framework (aiohttp) would put under
every one. h11 gives keep-alive, pipelining (it holds the next request until the
answer to this one is out, so answers leave in order), bodies of either framing, and
a parser that refuses what is not HTTP/1.1.

Limits (docs/SECURITY.md): a request line over 8 KiB is 414; a header line over
8 KiB, over 128 headers, or a head over 64 KiB 431; a body over 16 KiB 413, and one
on a route that takes none 400; whatever h11 refuses 400, and a head with a line that
ends in a bare LF (RFC 9112 lets a server take one, h11 does; a proxy in front that
does not would read other requests than this node: request smuggling), or with both
`Content-Length` and `Transfer-Encoding` (h11 reads the body by the latter and keeps
the connection; a proxy that goes by the former would read another request there:
RFC 9112 6.1 says to close at least). A request must arrive whole
within `--handshake-timeout` of the connection or of the answer before it, or it gets
408 (a client that trickles its head or body); a keep-alive connection idle that long
is closed. A client that leaves its answers unread (asyncio pauses our writing) has
no further request read until it reads: its deadline runs meanwhile. Every refusal
is JSON, and ends the connection.

The handshake: h11 reads it like any request; websockets then parses the same head
itself, so its own checks hold (`Origin`, `Sec-WebSocket-Key` and version, method and
protocol), and answers it. Its refusals are turned into JSON; after its 101, what came
in behind the head (h11's trailing data) goes to its frame parser.
"""

from __future__ import annotations

import asyncio
import dataclasses
import re
import time
from typing import TYPE_CHECKING

import h11
from livecount.logs import error, warn_limited
from livecount.node.access import own_origin
from livecount.node.answers import bad_request, json_response
from livecount.node.auth import header
from livecount.node.router import HttpRequest, Route, loggable, parse_target
from websockets.datastructures import Headers
from websockets.exceptions import InvalidOrigin
from websockets.http11 import Request, Response

if TYPE_CHECKING:
    from livecount.node.sockets import Connection

MAX_LINE = 8192  # bytes in the request line, and in a header line
MAX_HEADERS = 128
MAX_HEAD = 65536  # bytes of a request's head, all lines together
MAX_BODY = 16384  # bytes of a request's body (the admin API's JSON)
HELD = MAX_HEAD + MAX_BODY  # bytes read on while a request is answered
_BARE_LF = re.compile(rb"(?<!\r)\n")  # h11 takes one as a line's end; we do not (below)


def handshake_refusal(response: Response) -> Response:
    """websockets' refusal of a WebSocket handshake (a bad Origin, no Upgrade), in
    JSON like every other answer livecount gives."""
    codes = {403: "origin_not_allowed", 426: "upgrade_required"}
    detail = response.body.decode(errors="replace").strip() if response.body else ""
    answer = json_response(
        response.status_code,
        {"error": codes.get(response.status_code, "bad_handshake"), "detail": detail},
    )
    for name in ("Upgrade", "Allow"):
        if name in response.headers and name not in answer.headers:
            answer.headers[name] = response.headers[name]
    return answer


def _refused(exc: h11.RemoteProtocolError, start: bytes, held: bytes) -> Response:
    """The answer to what h11 would not parse: `start` is how the request began, `held`
    what h11 still holds of it."""
    line = start.partition(b"\n")[0]
    if str(exc) == "Receive buffer too long":  # no whole head within MAX_HEAD
        if b"\n" not in held[:MAX_LINE]:
            return _too_long()
        return _too_large()
    if any(byte >= 0x80 for byte in line):
        return bad_request(
            "the request line must be ASCII: percent-encode other characters as UTF-8 (RFC 3986)"
        )
    return bad_request(f"not an HTTP/1.1 request: {exc}")


def _too_long() -> Response:
    return json_response(
        414, {"error": "uri_too_long", "detail": f"the request line is over {MAX_LINE // 1024} KiB"}
    )


def _too_large() -> Response:
    return json_response(
        431,
        {
            "error": "headers_too_large",
            "detail": f"a header line is over {MAX_LINE // 1024} KiB, "
            f"there are over {MAX_HEADERS} headers, or they "
            f"are over {MAX_HEAD // 1024} KiB in all",
        },
    )


def head_refusal(event: h11.Request) -> Response | None:
    """The refusal of a head h11 read whole but livecount does not take, or None."""
    if len(event.target) + len(event.method) + 10 > MAX_LINE:
        return _too_long()
    raw = event.headers.raw_items()
    sizes = [len(n) + len(v) + 4 for n, v in raw]  # h11 takes a head that came whole
    if len(raw) > MAX_HEADERS or max(sizes, default=0) > MAX_LINE or sum(sizes) > MAX_HEAD:
        return _too_large()
    if event.http_version not in (b"1.0", b"1.1"):
        return bad_request(f"HTTP/{event.http_version.decode()} is not served here: HTTP/1.1 only")
    names = {name for name, _ in event.headers}
    if {b"content-length", b"transfer-encoding"} <= names:  # h11 would go by the latter
        return bad_request("a request with both Content-Length and Transfer-Encoding is refused")
    return None


def bare_lf(held: bytes) -> bool | None:
    """Whether the head at the start of `held` has a line ending in a bare LF: True;
    False when only what follows it may have one; None when nothing has."""
    end = held.find(b"\r\n\r\n")
    if _BARE_LF.search(held, 0, len(held) if end < 0 else end + 4):
        return True
    return False if _BARE_LF.search(held) else None


def _too_big() -> Response:
    return json_response(
        413, {"error": "payload_too_large", "detail": f"the body is over {MAX_BODY // 1024} KiB"}
    )


def body_refusal(
    event: h11.Request, request: HttpRequest, route: Route | Response
) -> Response | None:
    """The refusal of a request by its body, before it is read: the table's own
    refusal (the body is then never read), a body on a route that takes none, or one
    that says it is over MAX_BODY."""
    if not _has_body(event):
        return None
    if not isinstance(route, Route):
        return route
    if not route.body:
        return bad_request(f"{request.method} {request.path[:256]} takes no body")
    return _too_big() if _length(event) > MAX_BODY else None


def frame(conn: h11.Connection, answer: Response, head: bool) -> bytes:
    """`answer` as h11 writes it, without its body to a HEAD."""
    data = conn.send(
        h11.Response(
            status_code=answer.status_code,
            reason=answer.reason_phrase.encode(),
            headers=[(k.encode(), v.encode("latin-1")) for k, v in answer.headers.raw_items()],
        )
    )
    if answer.body and not head:
        data = (data or b"") + (conn.send(h11.Data(data=bytes(answer.body))) or b"")
    return (data or b"") + (conn.send(h11.EndOfMessage()) or b"")


def peer_of(transport: asyncio.Transport | None) -> str:
    found = transport.get_extra_info("peername") if transport is not None else None
    return str(found[0]) if found else ""


def _late() -> Response:
    return json_response(
        408, {"error": "request_timeout", "detail": "the request did not arrive whole in time"}
    )


def _headers(event: h11.Request) -> Headers:
    return Headers(
        [(n.decode("latin-1"), v.decode("latin-1")) for n, v in event.headers.raw_items()]
    )


def _has_body(event: h11.Request) -> bool:
    for name, value in event.headers:
        if name == b"transfer-encoding" or (name == b"content-length" and value != b"0"):
            return True
    return False


def _length(event: h11.Request) -> int:
    return next((int(v) for n, v in event.headers if n == b"content-length"), 0)


def unframed(transport: asyncio.Transport | None, start: bytes, answer: Response) -> bool:
    """A refusal of what h11 could not read as a request: written as is (h11 will frame
    nothing more), without its body if it looked like a HEAD."""
    if transport is None or transport.is_closing():
        return False
    answer.headers["Connection"] = "close"
    head = start.startswith(b"HEAD ")
    transport.write((dataclasses.replace(answer, body=b"") if head else answer).serialize())
    return True


class Opening:
    """The HTTP side of one connection: requests read by h11 and answered in order, on
    one connection for as long as the client keeps it (and keeps to the deadlines),
    until a WebSocket handshake is accepted or a refusal ends it."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn
        self.h11 = h11.Connection(h11.SERVER, max_incomplete_event_size=MAX_HEAD)
        self.request: HttpRequest | None = None  # the one being read or answered
        self.head: h11.Request | None = None
        self.route: Route | Response | None = None  # its route, or the table's refusal
        self.body = bytearray()
        self.started = 0.0  # when its head was read
        self.busy = False  # it is being answered: what follows waits in h11
        self.held = 0  # bytes that came in meanwhile (past HELD, reading pauses)
        self.closing = False  # the last answer is out: what comes in is dropped
        self.handshake = Handshake(self)
        self.eof_seen = False
        self.suspect = False  # a bare LF came in: the next head is looked at for it
        self._last = b""  # the last byte received, for a CR and LF in two segments
        self._start = b""  # how a request h11 has not read yet began: its method, its line

    # -- from the connection --------------------------------------------------------------
    def received(self, data: bytes) -> None:
        if self.closing:
            return
        if b"\n" in data and _BARE_LF.search(self._last + data):
            self.suspect = True
        self._last = data[-1:]
        if self.head is None and not self._start:
            self._start = data[:MAX_LINE]
        self.h11.receive_data(data)
        if self.busy:
            self.held += len(data)
            if self.held - len(data) <= HELD < self.held:
                self.conn.pause_reading()  # a client pipelining without end
            return
        self._read()

    def eof(self) -> bool | None:
        """The client will send no more: True to keep the connection for the answer
        under way (asyncio's `eof_received`)."""
        if not self.closing:
            self.eof_seen = True
            self.h11.receive_data(b"")
            if not self.busy:
                self._read()
        return True if (self.busy or self.conn.write_paused) and not self.closing else None

    def timed_out(self) -> None:
        """The deadline of the request under way, or of an idle connection."""
        transport = self.conn.transport
        if transport is None or transport.is_closing():
            return
        if self.busy or self.closing:
            transport.abort()  # an answer the router bounds, or a client that never hangs up
        elif self.h11.their_state is h11.IDLE and not self.h11.trailing_data[0]:
            transport.close()  # idle: nothing to answer
        else:
            self.end(_late())

    # -- reading ----------------------------------------------------------------------------
    def _read(self) -> None:
        while not self.busy and not self.closing and not self.conn.write_paused:
            if self.suspect and self.h11.their_state is h11.IDLE:
                found = bare_lf(self.h11.trailing_data[0])
                if found:
                    self.end(bad_request("not an HTTP/1.1 request: lines end with CRLF"))
                    return
                self.suspect = found is not None  # a body's, behind this head
            try:
                event = self.h11.next_event()
            except h11.RemoteProtocolError as exc:
                if self.eof_seen:  # the client left halfway: nobody to answer
                    self._close()
                else:
                    refusal = _refused(exc, self._start, self.h11.trailing_data[0])
                    if unframed(self.conn.transport, self._start, refusal):
                        self._finish()
                return
            if isinstance(event, h11.Request):
                self._head(event)
            elif isinstance(event, h11.Data):
                self.body += event.data
                if len(self.body) > MAX_BODY:
                    self.end(_too_big())
            elif isinstance(event, h11.EndOfMessage):
                self._complete()
            elif isinstance(event, h11.ConnectionClosed):
                self._close()
                return
            else:  # NEED_DATA; PAUSED after a handshake's head
                return

    def _head(self, event: h11.Request) -> None:
        self.started = time.monotonic()
        self.head, self.route, self.body, self.request = event, None, bytearray(), None
        if (refused := head_refusal(event)) is not None:
            self.end(refused)
            return
        request = parse_target(
            event.method.decode(),
            event.target.decode(),
            _headers(event),
            peer_of(self.conn.transport),
        )
        if isinstance(request, Response):
            self.end(request)
            return
        self.request = request
        self.route = self.conn.sockets.routes.router.find(request)
        if (refused := body_refusal(event, request, self.route)) is not None:
            self.end(refused)

    def _complete(self) -> None:
        """The request is whole: the table's refusal, the handshake, or its handler."""
        request, route = self.request, self.route
        if request is None or route is None:
            return
        if not isinstance(route, Route):
            self._answer(route)
        elif route.upgrade:
            self.handshake.start(self.head)
        else:
            request.body = bytes(self.body)
            self.busy = True
            sockets = self.conn.sockets
            self.conn.later(sockets.open_timeout + sockets.routes.router.timeout, self.timed_out)
            self.conn.sockets.spawn(self._route(request, route))

    async def _route(self, request: HttpRequest, route: Route) -> None:
        self._answer(await self.conn.sockets.routes.router(request, route))

    # -- answering --------------------------------------------------------------------------
    def _answer(self, answer: Response, close: bool = False) -> None:
        """Write `answer` to the request under way; then read on, or end."""
        transport = self.conn.transport
        if self.closing or transport is None or transport.is_closing():
            return
        request = self.request
        if close:
            answer.headers["Connection"] = "close"
        try:
            data = frame(self.h11, answer, self.head is not None and self.head.method == b"HEAD")
        except (h11.LocalProtocolError, UnicodeEncodeError) as exc:  # a bug: not HTTP
            error("http_failed", exc, path=loggable(request.target) if request else "")
            transport.abort()
            return
        transport.write(data)
        if request is not None:
            route = self.route if isinstance(self.route, Route) else None
            self.conn.sockets.routes.router.record(request, route, answer.status_code, self.started)
        self.request, self.head, self._start = None, None, b""
        if close or self.h11.our_state is not h11.DONE or self.h11.their_state is not h11.DONE:
            self._finish()
            return
        self.h11.start_next_cycle()
        self.busy, self.held = False, 0
        self.conn.later(self.conn.sockets.open_timeout, self.timed_out)
        self.writable()

    def writable(self) -> None:
        """Read on, to a request pipelined behind the last: not while the client leaves
        its answers unread (asyncio paused our writing; `resume_writing` calls this
        again), so that it cannot have every answer it asks for held in memory."""
        if self.busy or self.closing or self.conn.write_paused:
            return
        self.conn.resume_reading()
        self._read()

    def end(self, answer: Response) -> None:
        """A refusal: answered, then the connection ends."""
        self._answer(answer, close=True)
        if not self.closing:  # h11 could not frame it: nothing more to say
            self._close()

    def _finish(self) -> None:
        """The last answer is out: say so (EOF) and let the client hang up, so that what
        it still sends does not reset the connection before it read the answer."""
        self.closing = True
        transport = self.conn.transport
        if transport is not None and not transport.is_closing():
            if transport.can_write_eof():
                transport.write_eof()
            if self.eof_seen:
                transport.close()
        self.conn.ending()

    def _close(self) -> None:
        self.closing = True
        if self.conn.transport is not None:
            self.conn.transport.close()


class Handshake:
    """A `/ws` request, handed to websockets: it parses the head h11 read, as if from the
    socket (so its own checks hold), and answers it; its refusals are JSON, and once
    it is a WebSocket, what came in behind the head is its."""

    def __init__(self, opening: Opening) -> None:
        self.opening = opening
        self.conn = opening.conn
        self.started = False

    def start(self, head: h11.Request | None) -> None:
        assert head is not None
        self.started = True
        conn = self.conn
        conn.receive(
            b"".join(
                [  # websockets answers it in `request_head`
                    head.method,
                    b" ",
                    head.target,
                    b" HTTP/",
                    head.http_version,
                    b"\r\n",
                    *(b"%s: %s\r\n" % pair for pair in head.headers.raw_items()),
                    b"\r\n",
                ]
            )
        )
        if conn.opening is None:  # a WebSocket now: h11 reads nothing more of it
            self.opening.closing = True
            if behind := self.opening.h11.trailing_data[0]:
                conn.receive(behind)

    def request_head(self, request: Request) -> None:
        """websockets parsed the head: it accepts it, or refuses it in JSON. The
        server's own origin (its dashboard) is taken whatever `--allowed-origin` says."""
        conn = self.conn
        protocol = conn.protocol
        origin = header(request.headers, "Origin")
        if (
            origin is not None
            and protocol.origins is not None
            and origin.lower() == own_origin(request.headers)
        ):
            protocol.origins = None
        response = protocol.accept(request)
        if response.status_code != 101:
            if isinstance(protocol.handshake_exc, InvalidOrigin):
                conn.sockets.metrics.refused("origin")
                shown = (origin or "")[:256]
                warn_limited(
                    "origin_refused",
                    shown,
                    origin=shown,
                    hint=f"--allowed-origin {shown} accepts it",
                )
            self.opening.end(handshake_refusal(response))
            return
        protocol.send_response(response)
        conn.opened(request)

    def answers(self) -> bool:
        """While the connection is HTTP, h11 answers, not websockets' output: websockets
        only ever parses a head h11 read already, so a head it refuses is a 400."""
        protocol = self.conn.protocol
        protocol.data_to_send()
        if self.started and protocol.handshake_exc is not None:
            self.opening.end(
                json_response(
                    400, {"error": "bad_handshake", "detail": str(protocol.handshake_exc)}
                )
            )
        return True
