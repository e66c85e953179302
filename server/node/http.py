"""Plain HTTP on the WebSocket's port: the report API, health, the pages.

The node's transport (`node/opening.py`, a connection's first bytes) hands every
request that is not a WebSocket handshake to `Routes`, so one port and one event
loop serve both.
Handlers parse parameters with `reports`, ask the store, and format; nothing else.

Every answer is deliberate JSON (or the resource): a bad parameter is 400, a method
other than GET or HEAD 405, a store that is away or slower than `REQUEST_TIMEOUT` 503,
and a bug 500, logged once with its traceback. `refusal` answers what websockets'
parser refuses before a request exists.
"""

from __future__ import annotations

import asyncio
import dataclasses
import re
from collections.abc import Awaitable, Callable, Mapping, Sequence
from datetime import UTC, datetime
from http import HTTPStatus
from importlib import resources
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

import msgspec
from livecount.aws.store import Store
from livecount.core import reports, sizes
from livecount.core.errors import StoreRefused, Unavailable
from livecount.core.ledger import SITE, Counts
from livecount.core.pages import PageRules, Target
from livecount.core.reports import BadParameter, PageRow
from livecount.logs import error, warn_limited
from livecount.node.metrics import CONTENT_TYPE_LATEST
from websockets.datastructures import Headers
from websockets.exceptions import HeaderLineTooLong, RequestLineTooLong, TooManyHeaders
from websockets.http11 import Request, Response

WS_PATH = "/ws"
CLIENT = resources.files("livecount_client")  # client/ in the repo, package data in a wheel
API_CACHE = "public, max-age=5"  # live data: short, but enough to absorb a refresh storm
HEALTH_TTL = 2.0  # seconds a health answer is reused
REQUEST_TIMEOUT = 3.0  # seconds an API request may wait on the store before 503
ALLOW = "GET, HEAD"
_TOKEN = re.compile(rb"[-!#$%&'*+.^_`|~0-9A-Za-z]+")  # an HTTP method (RFC 9110 token)
_STATIC = {
    "/": ("dashboard.html", "text/html; charset=utf-8"),
    "/client/gatsby-snippet.js": ("gatsby-snippet.js", "text/javascript; charset=utf-8"),
}

Overlay = Callable[[Target], Counts | None]  # what this node counted that may not be stored
Query = Mapping[str, str]


def response(status: int, body: bytes, content_type: str, cache: str = "no-store",
             extra: Mapping[str, str] | None = None) -> Response:
    headers = Headers({"Content-Type": content_type, "Content-Length": str(len(body)),
                       "Cache-Control": cache, "X-Content-Type-Options": "nosniff",
                       "Connection": "close"})  # websockets closes after any HTTP answer
    for name, value in (extra or {}).items():
        headers[name] = value
    return Response(status, HTTPStatus(status).phrase, headers, body)


def json_response(status: int, value: Any, cache: str = "no-store",
                  extra: Mapping[str, str] | None = None) -> Response:
    return response(status, msgspec.json.encode(value), "application/json", cache, extra)


def not_found(detail: str) -> Response:
    return json_response(404, {"error": "not_found", "detail": detail})


def bad_request(detail: str) -> Response:
    return json_response(400, {"error": "bad_request", "detail": detail})


def method_not_allowed(method: str, allow: str = ALLOW) -> Response:
    return json_response(405, {"error": "method_not_allowed",
                               "detail": f"{method} is not served here; use {allow}"},
                         extra={"Allow": allow})


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


def _file(name: str, content_type: str) -> Response:
    try:
        body = CLIENT.joinpath(name).read_bytes()
    except FileNotFoundError:
        return not_found(f"{name} is missing from this installation")
    return response(200, body, content_type, cache="public, max-age=300")


class Routes:
    """Path → handler; the only place HTTP knows about the node."""

    def __init__(self, store: Store, overlay: Overlay, pages: PageRules,
                 allowed_origins: tuple[str, ...] = (),
                 clock: Callable[[], datetime] = lambda: datetime.now(UTC),
                 metrics: Callable[[], bytes] = lambda: b"",
                 problems: Callable[[], Sequence[str]] = lambda: (),
                 timeout: float = REQUEST_TIMEOUT) -> None:
        self.store = store
        self.overlay = overlay
        self.pages = pages
        self.allowed_origins = allowed_origins
        self.clock = clock
        self.metrics = metrics
        self.problems = problems  # what the node knows is wrong, beyond the store
        self.timeout = timeout
        self._health: tuple[float, str] = (-HEALTH_TTL - 1, "")
        self._api: dict[str, Callable[[Query], Awaitable[Any]]] = {
            "/api/pages": self.pages_list,
            "/api/referrers": self.referrers,
            "/api/timeline": self.timeline,
        }

    async def __call__(self, request: Request) -> Response | None:
        """The answer to `request`, or None to go on to the WebSocket handshake. Never
        raises: whatever breaks is a 500 here, not websockets' plain-text page."""
        try:
            answer = await self.route(request)
        except Exception as exc:
            error("http_failed", exc, method=request.method[:16], path=request.path[:256])
            answer = json_response(500, {"error": "internal",
                                         "detail": "livecount failed on this request; "
                                                   "its log says why"})
        if answer is not None and request.method == "HEAD":
            answer = dataclasses.replace(answer, body=b"")  # its Content-Length stays
        return answer

    async def route(self, request: Request) -> Response | None:
        try:
            url = urlsplit(request.path)
        except ValueError:  # e.g. `//[`: a bracket that opens no IPv6 address
            url = None
        if url is not None and url.path == WS_PATH:
            return None if request.method == "GET" else method_not_allowed(request.method, "GET")
        if request.method not in ("GET", "HEAD"):
            return method_not_allowed(request.method)
        if url is None:
            return bad_request("the request target is not a URL path")
        path = url.path
        if path == "/healthz":
            return await self.healthz()
        if path == "/metrics":
            return response(200, self.metrics(), CONTENT_TYPE_LATEST)
        if path in _STATIC:
            return _file(*_STATIC[path])
        if path == "/demo" or path.startswith("/demo/"):
            return _file("demo.html", "text/html; charset=utf-8")
        if path.startswith("/api/"):
            return await self.api(path, dict(parse_qsl(url.query)), request.headers)
        return not_found(f"no route for {path[:256]}")

    async def api(self, path: str, query: Query, headers: Headers) -> Response:
        cors = self._cors(headers.get("Origin"))
        try:
            async with asyncio.timeout(self.timeout):
                if path.startswith("/api/pages/") and len(path) > len("/api/pages/"):
                    value = await self.page(unquote(path[len("/api/pages/"):]), query)
                elif path in self._api:
                    value = await self._api[path](query)
                else:
                    return not_found(f"no route for {path[:256]}")
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
        return json_response(200, value, API_CACHE, cors)

    def _cors(self, origin: str | None) -> dict[str, str]:
        if not self.allowed_origins:
            return {"Access-Control-Allow-Origin": "*"}
        if origin in self.allowed_origins:
            return {"Access-Control-Allow-Origin": origin, "Vary": "Origin"}
        return {"Vary": "Origin"}

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

    # -- the report API ----------------------------------------------------------------
    def _target(self, query: Query, required: bool = False) -> Target | None:
        """`articleId=` or `pageName=`; neither means site-wide, unless required."""
        article, page = query.get("articleId"), query.get("pageName")
        if article is not None and page is not None:
            raise BadParameter("articleId", "give articleId or pageName, not both")
        if article is not None:
            if (wrong := sizes.problem(article, sizes.ID)) is not None:
                raise BadParameter("articleId", wrong)  # the protocol's rule: never counted
            return Target("post", article)
        if page is not None:
            if page not in self.pages.names:
                raise BadParameter("pageName", f"must be one of {', '.join(self.pages.names)}")
            return Target("page", page)
        if required:
            raise BadParameter("articleId", "articleId or pageName is required")
        return None

    def _counts(self, target: Target, stored: Counts) -> Counts:
        mine = self.overlay(target)
        return stored if mine is None else stored.max(mine)

    async def pages_list(self, query: Query) -> list[PageRow]:
        sort = reports.parse_sort(query.get("sort"))
        limit = reports.parse_limit(query.get("limit"), default=100)
        stored = await self.store.read(await self.store.tracked())
        rows = [PageRow.of(t, self._counts(t, counts), title)
                for t, (counts, title) in stored.items()]
        return reports.sort_rows(rows, sort, limit)

    async def page(self, id_: str, query: Query) -> dict[str, Any] | None:
        kind = query.get("kind", "post")
        if kind not in ("post", "page"):
            raise BadParameter("kind", "must be post or page")
        target = self._target({"articleId" if kind == "post" else "pageName": id_}, True)
        assert target is not None
        (counts, title), = (await self.store.read([target])).values()
        counts = self._counts(target, counts)
        if counts == Counts(0, 0) and target not in await self.store.tracked():
            return None
        start, end = reports.time_range(None, None, "hour", self.clock())
        hours, hosts = await asyncio.gather(
            self.store.hours(target.ref, *reports.hour_span(start, end, "hour")),
            self.store.top_referrers(target.ref, 10))
        return {
            **{k: v for k, v in msgspec.structs.asdict(PageRow.of(target, counts, title)).items()
               if v is not None},
            "referrers": [reports.Referrer(h, v) for h, v in hosts],
            "timeline": reports.timeline(hours, start, end, "hour"),
        }

    async def referrers(self, query: Query) -> list[reports.Referrer]:
        target = self._target(query)
        limit = reports.parse_limit(query.get("limit"), default=10)
        hosts = await self.store.top_referrers(target.ref if target else SITE, limit)
        return [reports.Referrer(h, v) for h, v in hosts]

    async def timeline(self, query: Query) -> list[reports.Point]:
        target = self._target(query)
        bucket = reports.parse_bucket(query.get("bucket"))
        start, end = reports.time_range(query.get("since"), query.get("until"), bucket,
                                        self.clock())
        hours = await self.store.hours(target.ref if target else SITE,
                                       *reports.hour_span(start, end, bucket))
        return reports.timeline(hours, start, end, bucket)
