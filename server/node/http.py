"""The node's HTTP routes, on the WebSocket's port: the report API, health, metrics,
the dashboard and its login, the client's files, the admin API, the demo (with `--demo
on`), and `/ws` itself.

`Routes.table` is the one list of what is served. The connection (`node/opening.py`)
reads requests off the socket with h11 and hands them to the router
(`node/router.py`), which matches the table, bounds every handler by one timeout and
turns what they raise into JSON. Handlers only answer: reports are read by
`node/report_reads.py`, who may see what is `node/access.py`'s, admin actions are
`node/admin_api.py`'s, the client's files `node/static.py`'s.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime
from typing import Any

from livecount.aws.store import Store
from livecount.core.pages import PageRules
from livecount.node.access import Access, Grant
from livecount.node.admin_api import AdminApi
from livecount.node.answers import json_response, not_found, response
from livecount.node.auth import Guard
from livecount.node.metrics import CONTENT_TYPE_LATEST
from livecount.node.report_cache import ReportCache
from livecount.node.report_reads import Overlay, Paged, Query, Reports, site_origin
from livecount.node.router import (
    REQUEST_TIMEOUT,
    SLOW_REQUEST,
    HttpRequest,
    Route,
    Router,
    loggable,
)
from livecount.node.static import CLIENT, SCRIPT_CACHE, Files
from prometheus_client import Histogram
from websockets.http11 import Response

__all__ = ["CLIENT", "WS_PATH", "Routes", "loggable"]

WS_PATH = "/ws"
HEALTH_TTL = 2.0  # seconds a health answer is reused
HEALTH_TIMEOUT = 2.0  # seconds DynamoDB has to answer /healthz's ping: inside the router's
# timeout, so that /healthz says what failed itself
# The one tag for any site (issue 20), built from the client's source at start
# (`livecount_client.tag`). Every other script is at /client/<name>; the tag is not,
# since it opens the WebSocket beside its own URL (/client/ws there: no such route).
SCRIPTS = {"/livecount.js": "livecount.js"}
CORS_ANY = {"Access-Control-Allow-Origin": "*"}  # the client's scripts are for any site


class Routes:
    """The node's table, its handlers, and the router over them."""

    def __init__(
        self,
        store: Store,
        overlay: Overlay,
        pages: PageRules,
        allowed_origins: tuple[str, ...] = (),
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        metrics: Callable[[], bytes] = lambda: b"",
        problems: Callable[[], Sequence[str]] = lambda: (),
        timeout: float = REQUEST_TIMEOUT,
        guard: Guard | None = None,
        now: Callable[[Query], Awaitable[Any]] | None = None,
        admin: AdminApi | None = None,
        files: Files | None = None,
        seconds: Histogram | None = None,
        access_log: bool = False,
        slow: float = SLOW_REQUEST,
        cache: ReportCache | None = None,
        demo: bool = False,
    ) -> None:
        self.store = store
        self.admin = admin  # rename and delete: the operator's alone (node/admin_api)
        self.demo_on = demo  # `--demo on`: its views count in this store, so off by default
        self.reports = Reports(
            store,
            overlay,
            pages,
            cache or ReportCache(store, pages),
            site_origin(allowed_origins),
            clock,
        )
        self.metrics = metrics
        self.problems = problems  # what the node knows is wrong, beyond the store
        self.files = files or Files()
        self.access = Access(guard, allowed_origins, self.files)
        self._health: tuple[float, str] = (-HEALTH_TTL - 1, "")
        self._api: dict[str, Callable[[Query], Awaitable[Any]]] = {
            "pages": self.reports.pages_list,
            "summary": self.reports.summary,
            "referrers": self.reports.referrers,
            "timeline": self.reports.timeline,
            **({"now": now} if now is not None else {}),
        }
        self.router = Router(self.table(), timeout, seconds, access_log, slow)

    def table(self) -> list[Route]:
        """Every route this node serves; `/ws` is answered by websockets."""
        routes = [
            Route("GET", WS_PATH, upgrade=True),
            Route("GET", "/", self.dashboard),
            Route("GET", "/login", self.login),
            Route("GET", "/logout", self.logout),
            Route("GET", "/healthz", self.healthz),
            Route("GET", "/metrics", self.prometheus),
            *(Route("GET", path, self.script) for path in SCRIPTS),
            Route("GET", "/client/{name}", self.script),
            *(
                Route("GET", f"/api/{name}", self._report(name, read))
                for name, read in self._api.items()
            ),
            Route("GET", "/api/pages/{id:path}", self.page),
        ]
        if self.demo_on:
            routes += [
                Route("GET", "/demo", self.demo),
                Route("GET", "/demo/{rest:path}", self.demo),
            ]
        if self.admin is not None:
            routes += [
                Route("GET", "/api/admin/operation", self.admin.operation),
                Route("POST", "/api/admin/rename", self.admin.rename, body=True),
                Route("POST", "/api/admin/delete", self.admin.delete, body=True),
                Route("POST", "/api/admin/title", self.admin.title, body=True),
            ]
        return routes

    @property
    def report_paths(self) -> list[str]:
        """The report API's paths: each private unless `--public` names it."""
        return sorted(f"/api/{name}" for name in self._api)

    # -- the handlers ---------------------------------------------------------------------
    async def dashboard(self, request: HttpRequest) -> Response:
        return self.access.dashboard(
            request.target if request.target.startswith("/") else request.path,
            request.headers,
            request.peer,
        )

    async def login(self, request: HttpRequest) -> Response:
        return self.access.login(request.query, request.headers, request.peer)

    async def logout(self, request: HttpRequest) -> Response:
        return self.access.logout(request.headers)

    async def prometheus(self, request: HttpRequest) -> Response:
        return self.access.refused("metrics", request.headers, request.peer) or response(
            200, self.metrics(), CONTENT_TYPE_LATEST
        )

    async def demo(self, request: HttpRequest) -> Response:
        return self.files.answer("demo.html", request.headers, "public, max-age=300")

    async def script(self, request: HttpRequest) -> Response:
        name = request.params.get("name") or SCRIPTS[request.path]
        if name not in self.files.scripts:
            return not_found(f"no client script {name[:256]!r}")
        if "name" in request.params and f"/{name}" in SCRIPTS:
            return not_found(f"{name} is served at /{name}: it opens the WebSocket /ws beside it")
        return self.files.answer(name, request.headers, SCRIPT_CACHE, CORS_ANY)

    def _report(
        self,
        name: str,
        read: Callable[[Query], Awaitable[Any]],
    ) -> Callable[[HttpRequest], Awaitable[Response]]:
        async def report(request: HttpRequest) -> Response:
            grant = self.access.report(name, request.headers, request.peer)
            if not isinstance(grant, Grant):
                return grant
            request.extra.update(grant.cors)  # on its errors too
            value = await read(request.query)
            if isinstance(value, Paged):
                return json_response(200, value.value, grant.cache, value.headers)
            return json_response(200, value, grant.cache)

        return report

    async def page(self, request: HttpRequest) -> Response:
        """One page's own answer: its totals public, its details as `Access` allows."""
        grant = self.access.report(None, request.headers, request.peer)
        if not isinstance(grant, Grant):
            return grant
        request.extra.update(grant.cors)
        value = await self.reports.page(request.params["id"], request.query, grant.details)
        if value is None:
            return json_response(404, {"error": "not_found", "detail": "never counted"})
        return json_response(200, value, grant.cache)

    async def healthz(self, request: HttpRequest) -> Response:
        """Asks DynamoDB at most once per `HEALTH_TTL`: load balancers ask often. Whatever
        `problems` reports (an unwritable journal, a recovery still going) is 503 too."""
        now = asyncio.get_running_loop().time()
        if now - self._health[0] > HEALTH_TTL:
            try:
                await asyncio.wait_for(self.store.ping(), HEALTH_TIMEOUT)
                self._health = (now, "")
            except Exception as exc:  # any failure to answer is unhealthy, whatever its kind
                self._health = (now, str(exc) or "timeout")
        problems = [str(p) for p in self.problems()]
        if detail := self._health[1]:
            return json_response(
                503,
                {
                    "status": "unavailable",
                    "detail": detail,
                    "problems": [f"dynamodb: {detail}", *problems],
                },
            )
        if problems:
            return json_response(503, {"status": "unavailable", "problems": problems})
        return json_response(200, {"status": "ok"})
