"""The route table and its dispatcher: method and path pattern to handler, one timeout
for every route.

`Router.find` answers what the table alone decides: no route for the path is 404, a
method the table does not list for it is 405 with an `Allow` made from the table, and
HEAD is answered as GET (the connection, `node/opening.py`, drops the body). `Router.
__call__` runs the handler under `timeout`, so a store that is frozen or away costs any
route, admin included, at most that long: then 503, as for a store that answers with a
refusal. A handler's `BadParameter` is 400, a bug 500 logged once with its traceback.
Every request is timed by its route's pattern (never its raw path: bounded labels), a
slow one is a rate-limited warning, and the access log, when on, has a line for each.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from urllib.parse import parse_qsl, unquote, unquote_to_bytes, urlsplit

from livecount.core.errors import StoreRefused, Unavailable
from livecount.core.reports import BadParameter
from livecount.logs import error, log, warn_limited
from livecount.node.answers import bad_request, json_response, method_not_allowed, not_found
from prometheus_client import Histogram
from websockets.datastructures import Headers
from websockets.http11 import Response

REQUEST_TIMEOUT = 3.0  # seconds any route may take (a store slower than that: 503)
SLOW_REQUEST = 1.0  # seconds after which a request is logged as slow
UNROUTED = "(none)"  # the route label of a request no route took
_PARAM = re.compile(r"\{(\w+)(:path)?\}")


@dataclass(slots=True)
class HttpRequest:
    """One request, as the handlers see it. `extra` are headers every answer to it
    gets, errors included: a report's CORS headers, set once access is decided."""

    method: str
    target: str  # as sent
    path: str  # percent-encoded, no query
    query: Mapping[str, str]  # decoded; a repeated name: the last one; empty: absent
    headers: Headers
    peer: str = ""
    body: bytes = b""
    params: dict[str, str] = field(default_factory=dict)  # the pattern's, decoded
    extra: dict[str, str] = field(default_factory=dict)


Handler = Callable[[HttpRequest], Awaitable[Response]]


@dataclass(frozen=True)
class Route:
    """`method` on `pattern`: `{name}` is one path segment, `{name:path}` the rest of the
    path; both are percent-decoded into `params`. A GET route answers HEAD too, but the
    handshake. `body`:
    the route reads a request body (others refuse one); `upgrade`: the WebSocket
    handshake, which websockets answers, not a handler."""

    method: str
    pattern: str
    handler: Handler | None = None
    body: bool = False
    upgrade: bool = False

    @property
    def methods(self) -> tuple[str, ...]:
        return (
            (self.method, "HEAD") if self.method == "GET" and not self.upgrade else (self.method,)
        )

    def match(self, path: str) -> dict[str, str] | None:
        found = _compiled(self.pattern).fullmatch(path)
        return None if found is None else {k: unquote(v) for k, v in found.groupdict().items()}


_patterns: dict[str, re.Pattern[str]] = {}


def _compiled(pattern: str) -> re.Pattern[str]:
    if (compiled := _patterns.get(pattern)) is None:
        parts, at = [], 0
        for found in _PARAM.finditer(pattern):
            parts += [
                re.escape(pattern[at : found.start()]),
                f"(?P<{found[1]}>{'.+' if found[2] else '[^/]+'})",
            ]
            at = found.end()
        compiled = _patterns[pattern] = re.compile("".join([*parts, re.escape(pattern[at:])]))
    return compiled


def parse_target(method: str, target: str, headers: Headers, peer: str) -> HttpRequest | Response:
    """The request for `target` (origin or absolute form), or the 400 it gets: a target
    that is no URL, or percent-escapes that are not UTF-8 (checked once here, so no
    handler silently turns `%FF` into U+FFFD, an id that is not the one sent)."""
    try:
        url = urlsplit(target)
    except ValueError:  # e.g. `//[`: a bracket that opens no IPv6 address
        return bad_request("the request target is not a URL path")
    try:
        for part in (url.path, url.query):
            unquote_to_bytes(part).decode("utf-8")
    except UnicodeDecodeError:
        return bad_request("the request target must be UTF-8 once percent-decoded")
    return HttpRequest(method, target, url.path, dict(parse_qsl(url.query)), headers, peer)


def loggable(target: str) -> str:
    """A request target fit for a log line: never the token `/login?token=` carries
    (in any spelling, `%74oken=` too: the whole query of a login goes)."""
    path, mark, _ = target.partition("?")
    if "login" in unquote(path).lower():
        return path[:250] + (mark and "?…")
    return target[:256]


class Router:
    """The table, and the one place a handler is timed, bounded and turned into JSON."""

    def __init__(
        self,
        routes: Sequence[Route],
        timeout: float = REQUEST_TIMEOUT,
        seconds: Histogram | None = None,
        access_log: bool = False,
        slow: float = SLOW_REQUEST,
    ) -> None:
        self.routes = tuple(routes)
        self.timeout = timeout
        self.seconds = seconds  # livecount_http_request_seconds{route}
        self.access_log = access_log
        self.slow = slow

    def find(self, request: HttpRequest) -> Route | Response:
        """The route for this request, or the 404 or 405 the table gives it."""
        allowed: list[str] = []
        for route in self.routes:
            if (params := route.match(request.path)) is None:
                continue
            if request.method in route.methods:
                request.params = params
                return route
            allowed += [m for m in route.methods if m not in allowed]
        if not allowed:
            return not_found(f"no route for {request.path[:256]}")
        return method_not_allowed(request.method, ", ".join(allowed))

    async def __call__(self, request: HttpRequest, route: Route) -> Response:
        """The handler's answer, within `timeout`. Never raises."""
        assert route.handler is not None
        try:
            async with asyncio.timeout(self.timeout):
                answer = await route.handler(request)
        except BadParameter as exc:
            answer = json_response(
                400,
                {"error": "invalid_parameter", "parameter": exc.parameter, "detail": exc.detail},
            )
        except (TimeoutError, Unavailable, StoreRefused) as exc:
            # Away, slow, or refusing our credentials: 503. A request the store refused
            # as invalid (StoreRejected) is a bug in livecount and goes on to be a 500.
            warn_limited(
                "api_unavailable",
                type(exc).__name__,
                route=route.pattern,
                error=str(exc) or "timeout",
            )
            answer = json_response(
                503,
                {
                    "error": "unavailable",
                    "detail": "DynamoDB is away, slow or refusing right now; try again shortly",
                },
                extra={"Retry-After": "5"},
            )
        except Exception as exc:
            error("http_failed", exc, method=request.method[:16], path=loggable(request.target))
            answer = json_response(
                500,
                {
                    "error": "internal",
                    "detail": "livecount failed on this request; its log says why",
                },
            )
        for name, value in request.extra.items():
            if name not in answer.headers:
                answer.headers[name] = value
        return answer

    def record(
        self, request: HttpRequest, route: Route | None, status: int, started: float
    ) -> None:
        """Time an answered request: the histogram, a slow warning, the access log."""
        seconds = time.monotonic() - started
        name = route.pattern if route is not None else UNROUTED
        if self.seconds is not None:
            self.seconds.labels(name).observe(seconds)
        if seconds >= self.slow:
            warn_limited(
                "slow_request",
                name,
                method=request.method[:16],
                route=name,
                path=loggable(request.target),
                status=status,
                seconds=round(seconds, 3),
            )
        if self.access_log:
            log(
                "request",
                method=request.method[:16],
                path=loggable(request.target),
                route=name,
                status=status,
                ms=round(seconds * 1000, 1),
            )
