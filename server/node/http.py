"""Plain HTTP on the WebSocket's port: the report API, health, the pages.

The node's transport (`node/opening.py`, a connection's first bytes) hands every
request that is not a WebSocket handshake to `Routes`, so one port and one event
loop serve both. `Routes` only dispatches: the reports are read by
`node/report_reads.py`, and who may see what is `node/access.py`'s.

Every answer is deliberate JSON (or the resource): a bad parameter is 400, a method
other than GET or HEAD 405, a store that is away or slower than `REQUEST_TIMEOUT` 503,
and a bug 500, logged once with its traceback. `refusal` answers what websockets'
parser refuses before a request exists.
"""

from __future__ import annotations

import asyncio
import dataclasses
import re
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qsl, unquote, unquote_to_bytes, urlsplit

from livecount.aws.store import Store
from livecount.core.errors import StoreRefused, Unavailable
from livecount.core.pages import PageRules
from livecount.core.reports import BadParameter
from livecount.logs import error, warn_limited
from livecount.node.access import Access, Grant
from livecount.node.answers import (
    CLIENT,
    HTML,
    bad_request,
    client_file,
    json_response,
    method_not_allowed,
    not_found,
    response,
    unauthorized,
)
from livecount.node.auth import Guard
from livecount.node.metrics import CONTENT_TYPE_LATEST
from livecount.node.report_reads import Overlay, Query, Reports
from livecount_client.tag import tag
from websockets.datastructures import Headers
from websockets.exceptions import HeaderLineTooLong, RequestLineTooLong, TooManyHeaders
from websockets.http11 import Request, Response

__all__ = ["CLIENT", "WS_PATH", "Routes", "bad_request", "json_response", "loggable",
           "method_not_allowed", "refusal", "unauthorized"]

WS_PATH = "/ws"
HEALTH_TTL = 2.0  # seconds a health answer is reused
REQUEST_TIMEOUT = 3.0  # seconds an API request may wait on the store before 503
_TOKEN = re.compile(rb"[-!#$%&'*+.^_`|~0-9A-Za-z]+")  # an HTTP method (RFC 9110 token)
_JS = "text/javascript; charset=utf-8"
_STATIC = {"/client/livecount.mjs": ("gatsby-plugin-livecount/livecount.mjs", _JS)}


def refusal(exc: Exception, head: bytes) -> Response | None:
    """The answer to a request websockets' parser refused, or None if nobody is left to
    read one (the client closed before a whole request line).

    `head` is the start of what the client sent: the parser only says why it failed,
    not what the method was."""
    cause = exc.__cause__
    if isinstance(cause, EOFError):
        return None
    if isinstance(exc, RequestLineTooLong):
        return json_response(414, {"error": "uri_too_long",
                                   "detail": "the request line is over 8 KiB"})
    if isinstance(exc, HeaderLineTooLong | TooManyHeaders):
        return json_response(431, {"error": "headers_too_large",
                                   "detail": "a header line is over 8 KiB, or there are "
                                             "over 128 headers"})
    if isinstance(cause, UnicodeDecodeError):
        return bad_request("the request line must be ASCII: percent-encode other "
                           "characters as UTF-8 (RFC 3986)")
    method = head.partition(b" ")[0]
    if b" " in head and _TOKEN.fullmatch(method) and method not in (b"GET", b"HEAD"):
        return method_not_allowed(method.decode())
    if isinstance(cause, NotImplementedError) or "request body" in str(cause):
        return bad_request("requests with a body are not accepted; use GET")
    return bad_request("not an HTTP/1.1 request: expected `GET /path HTTP/1.1` and headers")


def loggable(target: str) -> str:
    """A request target fit for a log line: never the token `/login?token=` carries
    (in any spelling, `%74oken=` too: the whole query of a login goes)."""
    path, mark, _ = target.partition("?")
    if "login" in unquote(path).lower():
        return path[:250] + (mark and "?…")
    return target[:256]



def _not_utf8() -> Response:
    return bad_request("the request target must be UTF-8 once percent-decoded")


def _utf8(*parts: str) -> bool:
    """Whether every percent-escape decodes as UTF-8: checked once here, so no handler
    silently turns `%FF` into U+FFFD (an id that is not the one sent)."""
    try:
        for part in parts:
            unquote_to_bytes(part).decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


class Routes:
    """Path → handler; the only place HTTP knows about the node."""

    def __init__(self, store: Store, overlay: Overlay, pages: PageRules,
                 allowed_origins: tuple[str, ...] = (),
                 clock: Callable[[], datetime] = lambda: datetime.now(UTC),
                 metrics: Callable[[], bytes] = lambda: b"",
                 problems: Callable[[], Sequence[str]] = lambda: (),
                 timeout: float = REQUEST_TIMEOUT, guard: Guard | None = None,
                 now: Callable[[Query], Awaitable[Any]] | None = None,
                 admin: Callable[[Request, str], Awaitable[Response]] | None = None) -> None:
        self.store = store
        self.admin = admin  # rename and delete: POST, the operator's alone (node/admin_api)
        self.reports = Reports(store, overlay, pages, clock)
        self.metrics = metrics
        self.problems = problems  # what the node knows is wrong, beyond the store
        self.timeout = timeout
        self.access = Access(guard, allowed_origins)
        self.authorize = self.access.authorize  # for what changes counts (admin API)
        self._health: tuple[float, str] = (-HEALTH_TTL - 1, "")
        tag()  # built now: a broken client source stops the start, not a page later
        self._api: dict[str, Callable[[Query], Awaitable[Any]]] = {
            "/api/pages": self.reports.pages_list,
            "/api/referrers": self.reports.referrers,
            "/api/timeline": self.reports.timeline,
            **({"/api/now": now} if now is not None else {}),
        }

    @property
    def report_paths(self) -> list[str]:
        """The report API's paths: each private unless `--public` names it."""
        return sorted(self._api)

    async def __call__(self, request: Request, peer: str = "") -> Response | None:
        """The answer to `request` from the address `peer`, or None to go on to the
        WebSocket handshake. Never raises: whatever breaks is a 500 here, not
        websockets' plain-text page."""
        try:
            answer = await self.route(request, peer)
        except Exception as exc:
            error("http_failed", exc, method=request.method[:16], path=loggable(request.path))
            answer = json_response(500, {"error": "internal",
                                         "detail": "livecount failed on this request; "
                                                   "its log says why"})
        if answer is not None and request.method == "HEAD":
            answer = dataclasses.replace(answer, body=b"")  # its Content-Length stays
        return answer

    async def route(self, request: Request, peer: str = "") -> Response | None:
        try:
            url = urlsplit(request.path)
        except ValueError:  # e.g. `//[`: a bracket that opens no IPv6 address
            url = None
        if url is not None and url.path == WS_PATH:
            return None if request.method == "GET" else method_not_allowed(request.method, "GET")
        if url is not None and url.path.startswith("/api/admin/") and self.admin is not None:
            return await self.admin(request, peer) if _utf8(url.path, url.query) \
                else _not_utf8()
        if request.method not in ("GET", "HEAD"):
            return method_not_allowed(request.method)
        if url is None:
            return bad_request("the request target is not a URL path")
        if not _utf8(url.path, url.query):
            return _not_utf8()
        path, headers = url.path, request.headers
        if path == "/healthz":
            return await self.healthz()
        if path == "/metrics":
            return self.access.refused("metrics", headers, peer) \
                or response(200, self.metrics(), CONTENT_TYPE_LATEST)
        if path == "/":
            return self.access.dashboard(url.path + (f"?{url.query}" if url.query else ""),
                                         headers, peer)
        if path == "/login":
            return self.access.login(dict(parse_qsl(url.query)), headers, peer)
        if path == "/logout":
            return self.access.logout(headers)
        if path in _STATIC:
            return client_file(*_STATIC[path])
        if path == "/livecount.js":  # the tag, built from the client's source at start
            return response(200, tag(), _JS, "public, max-age=300")
        if path == "/demo" or path.startswith("/demo/"):
            return client_file("demo.html", HTML)
        if path.startswith("/api/"):
            return await self.api(path, dict(parse_qsl(url.query)), headers, peer)
        return not_found(f"no route for {path[:256]}")

    async def api(self, path: str, query: Query, headers: Headers, peer: str) -> Response:
        one = path.startswith("/api/pages/") and len(path) > len("/api/pages/")
        if not one and path not in self._api:
            return not_found(f"no route for {path[:256]}")
        grant = self.access.report(None if one else path.removeprefix("/api/"), headers, peer)
        if not isinstance(grant, Grant):
            return grant
        cors = grant.cors
        try:
            async with asyncio.timeout(self.timeout):
                if one:
                    value = await self.reports.page(unquote(path[len("/api/pages/"):]), query,
                                                    grant.details)
                else:
                    value = await self._api[path](query)
        except BadParameter as exc:
            return json_response(400, {"error": "invalid_parameter", "parameter": exc.parameter,
                                       "detail": exc.detail}, extra=cors)
        except (TimeoutError, Unavailable, StoreRefused) as exc:
            # Away, slow, or refusing our credentials: 503. A request the store refused
            # as invalid (StoreRejected) is a bug in livecount and goes on to be a 500.
            warn_limited("api_unavailable", type(exc).__name__, error=str(exc) or "timeout")
            return json_response(503, {"error": "unavailable",
                                       "detail": "counts cannot be read right now: DynamoDB "
                                                 "is away, slow or refusing; try again shortly"},
                                 extra=cors | {"Retry-After": "5"})
        if value is None:
            return json_response(404, {"error": "not_found", "detail": "never counted"},
                                 extra=cors)
        return json_response(200, value, grant.cache, cors)

    async def healthz(self) -> Response:
        """Asks DynamoDB at most once per `HEALTH_TTL`: load balancers ask often. Whatever
        `problems` reports (an unwritable journal, a recovery still going) is 503 too."""
        now = asyncio.get_running_loop().time()
        if now - self._health[0] > HEALTH_TTL:
            try:
                await asyncio.wait_for(self.store.ping(), REQUEST_TIMEOUT)
                self._health = (now, "")
            except Exception as exc:  # any failure to answer is unhealthy, whatever its kind
                self._health = (now, str(exc) or "timeout")
        problems = [str(p) for p in self.problems()]
        if detail := self._health[1]:
            return json_response(503, {"status": "unavailable", "detail": detail,
                                       "problems": [f"dynamodb: {detail}", *problems]})
        if problems:
            return json_response(503, {"status": "unavailable", "problems": problems})
        return json_response(200, {"status": "ok"})
