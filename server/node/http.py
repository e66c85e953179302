"""Plain HTTP on the WebSocket's port: the report API, health, the pages.

websockets answers these through its `process_request` hook, so one port and one
event loop serve both; a request for `/ws` goes on to the WebSocket handshake.
Handlers parse parameters with `reports`, ask the store, and format; nothing else.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping
from datetime import UTC, datetime
from importlib import resources
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

import msgspec
from livecount.aws.store import Store
from livecount.core import reports
from livecount.core.ledger import SITE, Counts
from livecount.core.pages import PageRules, Target
from livecount.core.protocol import MAX_ID_CHARS
from livecount.core.reports import BadParameter, PageRow
from livecount.node.metrics import CONTENT_TYPE_LATEST
from websockets.datastructures import Headers
from websockets.http11 import Request, Response

WS_PATH = "/ws"
CLIENT = resources.files("livecount_client")  # client/ in the repo, package data in a wheel
API_CACHE = "public, max-age=5"  # live data: short, but enough to absorb a refresh storm
HEALTH_TTL = 2.0  # seconds a health answer is reused
_REASONS = {200: "OK", 400: "Bad Request", 403: "Forbidden", 404: "Not Found",
            503: "Service Unavailable"}
_STATIC = {
    "/": ("dashboard.html", "text/html; charset=utf-8"),
    "/client/gatsby-snippet.js": ("gatsby-snippet.js", "text/javascript; charset=utf-8"),
}

Overlay = Callable[[Target], Counts | None]  # what this node counted that may not be stored
Query = Mapping[str, str]


def response(status: int, body: bytes, content_type: str, cache: str = "no-store",
             extra: Mapping[str, str] | None = None) -> Response:
    headers = Headers({"Content-Type": content_type, "Content-Length": str(len(body)),
                       "Cache-Control": cache, "X-Content-Type-Options": "nosniff"})
    for name, value in (extra or {}).items():
        headers[name] = value
    return Response(status, _REASONS.get(status, ""), headers, body)


def json_response(status: int, value: Any, cache: str = "no-store",
                  extra: Mapping[str, str] | None = None) -> Response:
    return response(status, msgspec.json.encode(value), "application/json", cache, extra)


def not_found(detail: str) -> Response:
    return json_response(404, {"error": "not_found", "detail": detail})


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
                 metrics: Callable[[], bytes] = lambda: b"") -> None:
        self.store = store
        self.overlay = overlay
        self.pages = pages
        self.allowed_origins = allowed_origins
        self.clock = clock
        self.metrics = metrics
        self._health: tuple[float, str] = (-HEALTH_TTL - 1, "")
        self._api: dict[str, Callable[[Query], Awaitable[Any]]] = {
            "/api/pages": self.pages_list,
            "/api/referrers": self.referrers,
            "/api/timeline": self.timeline,
        }

    async def __call__(self, request: Request) -> Response | None:
        url = urlsplit(request.path)
        path = url.path
        if path == WS_PATH:
            return None
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
        return not_found(f"no route for {path}")

    async def api(self, path: str, query: Query, headers: Headers) -> Response:
        cors = self._cors(headers.get("Origin"))
        try:
            if path.startswith("/api/pages/") and len(path) > len("/api/pages/"):
                value = await self.page(unquote(path[len("/api/pages/"):]), query)
            elif path in self._api:
                value = await self._api[path](query)
            else:
                return not_found(f"no route for {path}")
        except BadParameter as exc:
            return json_response(400, {"error": "invalid_parameter", "parameter": exc.parameter,
                                       "detail": exc.detail}, extra=cors)
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
        """Asks DynamoDB at most once per `HEALTH_TTL`: load balancers ask often."""
        now = asyncio.get_running_loop().time()
        if now - self._health[0] > HEALTH_TTL:
            try:
                await asyncio.wait_for(self.store.ping(), 3)
                self._health = (now, "")
            except Exception as exc:  # any failure to answer is unhealthy, whatever its kind
                self._health = (now, str(exc) or "timeout")
        if detail := self._health[1]:
            return json_response(503, {"status": "unavailable", "detail": detail})
        return json_response(200, {"status": "ok"})

    # -- the report API ----------------------------------------------------------------
    def _target(self, query: Query, required: bool = False) -> Target | None:
        """`articleId=` or `pageName=`; neither means site-wide, unless required."""
        article, page = query.get("articleId"), query.get("pageName")
        if article is not None and page is not None:
            raise BadParameter("articleId", "give articleId or pageName, not both")
        if article is not None:
            if not 0 < len(article) <= MAX_ID_CHARS:
                raise BadParameter("articleId", f"must be 1 to {MAX_ID_CHARS} characters")
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
