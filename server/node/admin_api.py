"""The operator's actions over HTTP, for the dashboard: rename and delete an article.

`POST /api/admin/rename?from=OLD&to=NEW`, `POST /api/admin/delete?articleId=ID`, and
`GET /api/admin/operation?articleId=ID` (what is under way on an article). The same
operations as `livecount admin` (`aws/store_admin.py`), run by this node, which also
pushes the new count to its own pages of both ids at once.

Every route needs the operator's credential, whatever `--public` opens: `authorize`
(`operator_only` over the node's `auth.Guard`) answers None for a request that
carries it, else the refusal to send (401, or 429 after too many wrong tokens). A
browser's cross-origin request is refused too (its `Origin` must be this host), and
parameters ride in the query: websockets takes no request body.

An operation that takes longer than `wait` goes on in the background and the answer is
202 `running`; asking again joins it, and once done answers what it did. A crash of
the node midway leaves it resumable, by the same request or by `livecount admin`.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any, Final
from urllib.parse import parse_qsl, urlsplit

from livecount.aws.store import Store
from livecount.aws.store_admin import Moved, Operations
from livecount.core import sizes
from livecount.core.errors import ClientError, StoreRefused, Unavailable
from livecount.core.ledger import Counts
from livecount.core.moves import Plan
from livecount.logs import log, warn_limited
from livecount.node.auth import Guard, header, over_https
from livecount.node.http import json_response, method_not_allowed, unauthorized
from websockets.datastructures import Headers
from websockets.http11 import Request, Response

PREFIX: Final = "/api/admin/"
WAIT: Final = 20.0  # seconds an answer waits for its operation before saying `running`

Authorize = Callable[[Headers, str], Response | None]  # (headers, peer) → None: the operator
Announce = Callable[[str, Counts], None]  # show this count to this node's pages now


class AdminApi:
    def __init__(self, store: Store, authorize: Authorize, announce: Announce | None = None,
                 wait: float = WAIT,
                 reset: Callable[[list[str]], Awaitable[None]] | None = None) -> None:
        self.operations = Operations(store)
        self.authorize = authorize
        self.announce = announce
        self.reset = reset  # forget what this node believes of an id renamed away or deleted
        self.wait = wait
        self._running: dict[str, tuple[Plan, asyncio.Task[Moved]]] = {}

    async def __call__(self, request: Request, peer: str = "") -> Response:
        if (refusal := self.authorize(request.headers, peer)) is not None:
            return refusal
        url = urlsplit(request.path)
        if not _same_origin(request):
            return json_response(403, {"error": "cross_origin",
                                       "detail": "admin actions are taken from this host's "
                                                 "own pages only"})
        query = dict(parse_qsl(url.query))
        route = url.path[len(PREFIX):]
        try:
            if route == "operation":
                if request.method not in ("GET", "HEAD"):
                    return method_not_allowed(request.method)
                return await self._operation(_id(query, "articleId"))
            if route in ("rename", "delete"):
                if request.method != "POST":
                    return method_not_allowed(request.method, "POST")
                if route == "delete":
                    return await self._run(Plan(_id(query, "articleId")))
                old, new = _id(query, "from"), _id(query, "to")
                if old == new:
                    raise _Bad("to", "is the id it has already")
                return await self._run(Plan(old, new))
        except _Bad as exc:
            return json_response(400, {"error": "invalid_parameter", "parameter": exc.name,
                                       "detail": exc.detail})
        except ClientError as exc:  # another operation under way, or nothing to act on
            status = 404 if exc.code == "never_counted" else 409
            return json_response(status, {"error": exc.code, "detail": exc.detail})
        except (Unavailable, StoreRefused) as exc:
            warn_limited("admin_unavailable", type(exc).__name__, error=str(exc))
            return json_response(503, {"error": "unavailable",
                                       "detail": "DynamoDB is away or refusing; the operation "
                                                 "resumes when asked again"},
                                 extra={"Retry-After": "5"})
        return json_response(404, {"error": "not_found", "detail": f"no route for {url.path}"})

    async def _operation(self, article: str) -> Response:
        found = await self.operations.current(article)
        value: dict[str, Any] | None = None
        if found is not None:
            value = {"operation": found.plan.op, "articleId": found.article,
                     "state": found.state, "started": found.started}
            if found.to is not None:
                value["to"] = found.to
        return json_response(200, {"operation": value})

    async def _run(self, plan: Plan) -> Response:
        """Start `plan` (or join it, when this node runs it already) and answer its outcome,
        or 202 while it goes on."""
        running = self._running.get(plan.article)
        if running is not None and running[0] != plan:
            raise ClientError("operation_running", f"the {running[0].describe()} is under "
                                                   "way on this node")
        if running is None:
            task = asyncio.create_task(self.operations.run(plan))
            self._running[plan.article] = (plan, task)
            task.add_done_callback(lambda done: self._ended(plan, done))
        else:
            task = running[1]
        try:
            moved = await asyncio.wait_for(asyncio.shield(task), self.wait)
        except TimeoutError:
            return json_response(202, {"status": "running", "operation": plan.op,
                                       "detail": f"the {plan.describe()} goes on; ask again "
                                                 "for its outcome"})
        log("admin_done", operation=plan.op, article=plan.article, to=plan.to,
            items=moved.items, views=moved.views.total)
        if self.reset is not None:  # this node at once; the others on the feed
            await self.reset([plan.article])
        if self.announce is not None and plan.to is not None and moved.now is not None:
            self.announce(plan.to, moved.now)
        return json_response(200, _outcome(moved))


    def _ended(self, plan: Plan, task: asyncio.Task[Moved]) -> None:
        """Forget a finished operation; one nobody waited for any more logs its failure
        (it stays resumable)."""
        self._running.pop(plan.article, None)
        if not task.cancelled() and (exc := task.exception()) is not None:
            warn_limited("admin_failed", plan.article, operation=plan.op,
                         article=plan.article, error=str(exc))


def _outcome(moved: Moved) -> dict[str, Any]:
    plan = moved.plan
    value: dict[str, Any] = {
        "status": "done", "operation": plan.op, "articleId": plan.article,
        "resumed": moved.resumed, "itemsMoved": moved.items,
        "movedViews": {"totalViews": moved.views.total, "uniqueViews": moved.views.unique}}
    if plan.to is not None and moved.now is not None:
        value |= {"to": plan.to, "now": {"totalViews": moved.now.total,
                                         "uniqueViews": moved.now.unique}}
    return value


class _Bad(Exception):
    def __init__(self, name: str, detail: str) -> None:
        super().__init__(f"{name}: {detail}")
        self.name = name
        self.detail = detail


def _id(query: dict[str, str], name: str) -> str:
    value = query.get(name)
    if value is None:
        raise _Bad(name, "is required")
    if (wrong := sizes.problem(value, sizes.ID)) is not None:
        raise _Bad(name, wrong)
    return value


def _same_origin(request: Request) -> bool:
    """No `Origin` (a script, curl) or this very host: a page elsewhere that holds the
    operator's cookie cannot act with it."""
    origin = header(request.headers, "Origin")
    if origin is None:
        return True
    try:
        return urlsplit(origin).netloc == (header(request.headers, "Host") or "")
    except ValueError:
        return False


def operator_only(guard: Guard) -> Authorize:
    """The token or a session, never `--public`: admin actions are the operator's alone."""
    def authorize(headers: Headers, peer: str) -> Response | None:
        verdict = guard.check(headers, peer)
        return None if verdict.granted else unauthorized(verdict, over_https(headers))

    return authorize


def announcer(observe: Callable[[str, Counts, float], None]) -> Announce:
    """An `Announce` over `Engine.observed`."""
    return lambda article, counts: observe(article, counts, time.time())
