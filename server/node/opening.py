"""A connection until it is a WebSocket: its one HTTP request, routed or refused in JSON."""

from __future__ import annotations

from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from livecount.node.http import WS_PATH, bad_request, json_response, refusal
from websockets.exceptions import InvalidOrigin
from websockets.http11 import Request, Response

if TYPE_CHECKING:
    from livecount.node.sockets import Connection


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


class Opening:
    """One request per connection: a WebSocket handshake (accepted, or refused as
    websockets would, in JSON), or a plain HTTP request the routes answer before the
    connection ends. What websockets' parser refuses is answered in JSON too."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn
        self._head = b""  # the start of the request, to answer a refused one
        self._tail = b""  # the request's last bytes so far, to find where it ends
        self._requested = False  # a request was parsed: websockets answers its refusals
        self.http = False  # a plain HTTP request: answered by the routes, then closed
        self.eof = False

    def received(self, data: bytes) -> None:
        conn = self.conn
        if self.http:
            return  # one request per connection: anything after it is not read
        if not self._requested:
            if len(self._head) < 32:
                self._head += data[:32 - len(self._head)]
            # The request goes in alone: its handshake must be answered before
            # websockets parses frames that came in the same segment.
            end = (self._tail + data).find(b"\r\n\r\n")
            if end == -1:
                self._tail = (self._tail + data)[-3:]
            else:
                cut, self._tail = end + 4 - len(self._tail), b""
                conn.receive(data[:cut])
                data = data[cut:]
                if not data or self.http:
                    return
        conn.receive(data)

    def request(self, request: Request) -> None:
        self._requested = True
        if _path(request.path) == WS_PATH and request.method == "GET":
            self._handshake(request)
        else:
            self.http = True
            self.conn.sockets.spawn(self._answer(request))

    async def _answer(self, request: Request) -> None:
        """A plain HTTP request: the routes answer it, written directly (whatever the
        client sent after it, websockets' parser may have choked on), then EOF."""
        transport = self.conn.transport
        peer = transport.get_extra_info("peername") if transport is not None else None
        answer = await self.conn.sockets.routes(request, str(peer[0]) if peer else "")
        if answer is None:  # /ws, but not a GET: the routes answer that; never here
            answer = bad_request("use GET for a WebSocket")
        self._end(answer)

    def _handshake(self, request: Request) -> None:
        conn = self.conn
        protocol = conn.protocol
        response = protocol.accept(request)
        if response.status_code != 101:
            if isinstance(protocol.handshake_exc, InvalidOrigin):
                conn.sockets.metrics.refused("origin")
            protocol.send_response(handshake_refusal(response))
            return
        protocol.send_response(response)
        conn.opened(request)

    def answers(self) -> bool:
        """Whether livecount, not websockets' output, answers this connection: a plain
        HTTP request, or one websockets' parser refused."""
        protocol = self.conn.protocol
        if self.http:
            protocol.data_to_send()  # the routes answer; websockets' output is moot
            return True
        failure = protocol.handshake_exc
        if failure is None or self._requested:
            return False
        # websockets' parser refused the request: answer in JSON, not with its plain
        # text or a bare EOF. (EOFError is also its word for a line without CRLF:
        # unless the client really left, that deserves an answer.)
        self._requested = self.http = True
        protocol.data_to_send()
        answer = refusal(failure, self._head)
        if answer is None and not self.eof:
            answer = bad_request("not an HTTP/1.1 request: lines end with CRLF")
        if answer is None:
            if self.conn.transport is not None:
                self.conn.transport.close()
        else:
            self._end(answer)
        return True

    def _end(self, answer: Response) -> None:
        """Write an HTTP answer and end the connection."""
        transport = self.conn.transport
        if transport is None or transport.is_closing():
            return
        transport.write(answer.serialize())
        if transport.can_write_eof():
            transport.write_eof()
        self.conn.ending()
