"""Plain HTTP on the WebSocket's port: the report API, health, the pages.

The node's transport (`node/opening.py`, a connection's first bytes) hands every
request that is not a WebSocket handshake to `Routes`, so one port and one event
loop serve both.
Handlers parse parameters with `reports`, ask the store, and format; nothing else.

Every answer is deliberate JSON (or the resource): a bad parameter is 400, a method
other than GET or HEAD 405, a store that is away or slower than `REQUEST_TIMEOUT` 503,
and a bug 500, logged once with its traceback. `refusal` answers what websockets'
parser refuses before a request exists.

What a page shows (a post's own totals, the WebSocket) is public; the reports, the
dashboard and `/metrics` ask for the operator's credential (`node/auth.py`) unless
`--public` names them: without it the API answers 401, the dashboard 303 to /login.
A private answer never carries CORS headers, and only the browser may cache it.
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
from urllib.parse import parse_qsl, unquote, urlencode, urlsplit

import msgspec
from livecount.aws.store import Store
from livecount.core import reports, sizes
from livecount.core.errors import StoreRefused, Unavailable
from livecount.core.ledger import SITE, Counts
from livecount.core.pages import PageRules, Target
from livecount.core.reports import BadParameter, PageRow
from livecount.logs import error, warn_limited
from livecount.node.auth import Guard, Verdict, header, over_https, session_cookie
from livecount.node.metrics import CONTENT_TYPE_LATEST
from websockets.datastructures import Headers
from websockets.exceptions import HeaderLineTooLong, RequestLineTooLong, TooManyHeaders
from websockets.http11 import Request, Response

WS_PATH = "/ws"
CLIENT = resources.files("livecount_client")  # client/ in the repo, package data in a wheel
API_CACHE = "public, max-age=5"  # live data: short, but enough to absorb a refresh storm
PRIVATE_CACHE = "private, max-age=5"  # the same, kept by the browser only, never a proxy
HEALTH_TTL = 2.0  # seconds a health answer is reused
REQUEST_TIMEOUT = 3.0  # seconds an API request may wait on the store before 503
ALLOW = "GET, HEAD"
_TOKEN = re.compile(rb"[-!#$%&'*+.^_`|~0-9A-Za-z]+")  # an HTTP method (RFC 9110 token)
_HTML = "text/html; charset=utf-8"
_STATIC = {
    "/client/gatsby-snippet.js": ("gatsby-snippet.js", "text/javascript; charset=utf-8"),
}
_UNFRAMED = {"Content-Security-Policy": "frame-ancestors 'none'", "X-Frame-Options": "DENY"}
_DETAILS: tuple[str, ...] = ("referrers", "timeline")  # one page's, private unless public

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


def _file(name: str, content_type: str, cache: str = "public, max-age=300",
          extra: Mapping[str, str] | None = None) -> Response:
    try:
        body = CLIENT.joinpath(name).read_bytes()
    except FileNotFoundError:
        return not_found(f"{name} is missing from this installation")
    return response(200, body, content_type, cache, extra)


def unauthorized(verdict: Verdict, secure: bool) -> Response:
    """401 for a request without the credential (429 for an address that sent too
    many wrong tokens), clearing a session cookie that no longer holds."""
    if verdict.retry_after:
        return json_response(429, {"error": "too_many_attempts",
                                   "detail": f"{verdict.problem}: try again in "
                                             f"{verdict.retry_after} s"},
                             extra={"Retry-After": str(verdict.retry_after)})
    extra = {"WWW-Authenticate": 'Bearer realm="livecount"'}
    if verdict.stale:
        extra["Set-Cookie"] = session_cookie("", 0, secure)
    return json_response(401, {"error": "unauthorized", "detail": verdict.problem},
                         extra=extra)


def redirect(location: str, extra: Mapping[str, str] | None = None) -> Response:
    return json_response(303, {"location": location}, extra={"Location": location,
                                                             **(extra or {})})


def safe_next(value: str | None) -> str:
    """Where to go after logging in: a path on this site, never another site's URL
    (`//evil.example`, `/\\evil.example`) nor the login page again."""
    if not value or not value.startswith("/") or value.startswith(("//", "/\\", "/login")) \
            or len(value) > 2048 or any(c < " " or c == "\\" for c in value):
        return "/"
    return value


def loggable(target: str) -> str:
    """A request target fit for a log line: never the token `/login?token=` carries
    (in any spelling, `%74oken=` too: the whole query of a login goes)."""
    path, mark, _ = target.partition("?")
    if "login" in unquote(path).lower():
        return path[:250] + (mark and "?…")
    return target[:256]


class Routes:
    """Path → handler; the only place HTTP knows about the node."""

    def __init__(self, store: Store, overlay: Overlay, pages: PageRules,
                 allowed_origins: tuple[str, ...] = (),
                 clock: Callable[[], datetime] = lambda: datetime.now(UTC),
                 metrics: Callable[[], bytes] = lambda: b"",
                 problems: Callable[[], Sequence[str]] = lambda: (),
                 timeout: float = REQUEST_TIMEOUT, guard: Guard | None = None,
                 now: Callable[[Query], Awaitable[Any]] | None = None) -> None:
        self.store = store
        self.overlay = overlay
        self.pages = pages
        self.allowed_origins = allowed_origins
        self.clock = clock
        self.metrics = metrics
        self.problems = problems  # what the node knows is wrong, beyond the store
        self.timeout = timeout
        self.guard = guard  # None: no credential at all, every report public (tests)
        self._health: tuple[float, str] = (-HEALTH_TTL - 1, "")
        self._api: dict[str, Callable[[Query], Awaitable[Any]]] = {
            "/api/pages": self.pages_list,
            "/api/referrers": self.referrers,
            "/api/timeline": self.timeline,
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
        if request.method not in ("GET", "HEAD"):
            return method_not_allowed(request.method)
        if url is None:
            return bad_request("the request target is not a URL path")
        path, headers = url.path, request.headers
        if path == "/healthz":
            return await self.healthz()
        if path == "/metrics":
            return self._refused("metrics", headers, peer) \
                or response(200, self.metrics(), CONTENT_TYPE_LATEST)
        if path == "/":
            return self.dashboard(url.path + (f"?{url.query}" if url.query else ""),
                                  headers, peer)
        if path == "/login":
            return self.login(dict(parse_qsl(url.query)), headers, peer)
        if path == "/logout":
            return redirect("/login", {"Set-Cookie": session_cookie("", 0, over_https(headers))})
        if path in _STATIC:
            return _file(*_STATIC[path])
        if path == "/demo" or path.startswith("/demo/"):
            return _file("demo.html", _HTML)
        if path.startswith("/api/"):
            return await self.api(path, dict(parse_qsl(url.query)), headers, peer)
        return not_found(f"no route for {path[:256]}")

    # -- the credential --------------------------------------------------------------
    def _refused(self, report: str, headers: Headers, peer: str) -> Response | None:
        """None if `report` may be served to this request; else why not (401 or 429)."""
        if self.guard is None or self.guard.opens(report):
            return None
        verdict = self.guard.check(headers, peer)
        return None if verdict.granted else unauthorized(verdict, over_https(headers))

    def authorize(self, request: Request, peer: str = "") -> Response | None:
        """None if `request` carries the operator's credential, else the 401 (or 429)
        to send: for what changes counts (`node/admin_api.py`), which `--public` never
        opens, `all` included."""
        if self.guard is None:
            return None
        verdict = self.guard.check(request.headers, peer)
        return None if verdict.granted else unauthorized(verdict, over_https(request.headers))

    def dashboard(self, target: str, headers: Headers, peer: str) -> Response:
        """The dashboard, or without the credential a redirect to the login page."""
        if self.guard is None or self.guard.opens("all"):
            return _file("dashboard.html", _HTML)
        verdict = self.guard.check(headers, peer)
        if verdict.retry_after:
            return unauthorized(verdict, over_https(headers))
        if not verdict.granted:
            extra = {"Set-Cookie": session_cookie("", 0, over_https(headers))} \
                if verdict.stale else None
            return redirect("/login?" + urlencode({"next": target}), extra)
        return _file("dashboard.html", _HTML, "private, no-cache", _UNFRAMED)

    def login(self, query: Query, headers: Headers, peer: str) -> Response:
        """`GET /login`: the page. With `?token=` (the URL `serve` prints) a redirect to
        `next` that sets the session cookie, or back to the page with the error; with
        the token in `Authorization` (the page's script) the same in JSON."""
        if self.guard is None:
            return not_found("this node has no credential: every report is public")
        given, scripted = query.get("token"), header(headers, "Authorization") is not None
        if given is None and not scripted:
            return _file("login.html", _HTML, "no-store", _UNFRAMED)
        go, secure = safe_next(query.get("next")), over_https(headers)
        if scripted:
            verdict = self.guard.check(headers, peer)
        else:
            verdict = self.guard.try_token(given or "", self.guard.address(peer, headers))
        if verdict.granted:
            value, max_age = self.guard.session()
            cookie = {"Set-Cookie": session_cookie(value, max_age, secure)}
            return json_response(200, {"next": go}, extra=cookie) if scripted \
                else redirect(go, cookie)
        if scripted:
            return unauthorized(verdict, secure)
        failed = {"next": go, "error": "too_many_attempts" if verdict.retry_after
                  else "wrong_token"}
        if verdict.retry_after:
            failed["retry"] = str(verdict.retry_after)
        return redirect("/login?" + urlencode(failed))

    # -- the report API --------------------------------------------------------------
    async def api(self, path: str, query: Query, headers: Headers, peer: str) -> Response:
        cors = self._cors(header(headers, "Origin"))
        one = path.startswith("/api/pages/") and len(path) > len("/api/pages/")
        if not one and path not in self._api:
            return not_found(f"no route for {path[:256]}")
        cache, details = API_CACHE, _DETAILS
        if one:  # its totals are public; its referrers and timeline may not be
            shown = self._details(headers, peer)
            if isinstance(shown, Response):
                return shown
            details = shown
            if self.guard is not None and not all(map(self.guard.opens, details)):
                cors, cache = {}, PRIVATE_CACHE
            vary = ", ".join(filter(None, (cors.get("Vary"), "Authorization, Cookie")))
            cors = cors | {"Vary": vary}  # one answer for a reader, another for the owner
        elif refused := self._refused(path.removeprefix("/api/"), headers, peer):
            return refused
        elif self.guard is not None and not self.guard.opens(path.removeprefix("/api/")):
            cors, cache = {}, PRIVATE_CACHE  # private reports never go to another origin
        try:
            async with asyncio.timeout(self.timeout):
                if one:
                    value = await self.page(unquote(path[len("/api/pages/"):]), query,
                                            details)
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
        return json_response(200, value, cache, cors)

    def _details(self, headers: Headers, peer: str) -> tuple[str, ...] | Response:
        """The private parts of one page's answer this request may see: all with the
        credential, the public ones without; a wrong token is a 401 here too (a stale
        session cookie is no token: it only gets the public parts)."""
        if self.guard is None:
            return _DETAILS
        shown = tuple(d for d in _DETAILS if self.guard.opens(d))
        if len(shown) == len(_DETAILS):
            return shown
        verdict = self.guard.check(headers, peer)
        if verdict.granted:
            return _DETAILS
        return shown if verdict.missing or verdict.stale \
            else unauthorized(verdict, over_https(headers))

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

    async def page(self, id_: str, query: Query,
                   details: Sequence[str] = _DETAILS) -> dict[str, Any] | None:
        """One post's or page's totals, and of `details` those asked for."""
        kind = query.get("kind", "post")
        if kind not in ("post", "page"):
            raise BadParameter("kind", "must be post or page")
        target = self._target({"articleId" if kind == "post" else "pageName": id_}, True)
        assert target is not None
        (counts, title), = (await self.store.read([target])).values()
        counts = self._counts(target, counts)
        if counts == Counts(0, 0) and target not in await self.store.tracked():
            return None
        answer: dict[str, Any] = {
            k: v for k, v in msgspec.structs.asdict(PageRow.of(target, counts, title)).items()
            if v is not None}
        start, end = reports.time_range(None, None, "hour", self.clock())
        hosts, hours = await asyncio.gather(
            self.store.top_referrers(target.ref, 10) if "referrers" in details else _none(),
            self.store.hours(target.ref, *reports.hour_span(start, end, "hour"))
            if "timeline" in details else _none())
        if hosts is not None:
            answer["referrers"] = [reports.Referrer(h, v) for h, v in hosts]
        if hours is not None:
            answer["timeline"] = reports.timeline(hours, start, end, "hour")
        return answer

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


async def _none() -> None:
    return None
