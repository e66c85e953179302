"""The operator's actions over HTTP, for the dashboard: rename and delete an article.

`POST /api/admin/rename` with the JSON body `{"from":OLD,"to":NEW}`, `POST
/api/admin/delete` with `{"articleId":ID}`, and `GET /api/admin/operation?articleId=ID`
(what is under way on an article). The same operations as `livecount admin`
(`aws/store_admin.py`), run by this node, which also pushes the new count to its own
pages of both ids at once.

Every route needs the operator's credential, whatever `--public` opens: `authorize`
(`operator_only` over the node's `auth.Guard`) answers None for a request that
carries it, else the refusal to send (401, or 429 past too many wrong tokens). A
browser's cross-origin request is refused too (its `Origin` must be this host), and a
body must say it is JSON (`Content-Type: application/json`), which no other site's
form can send without asking first.

An operation asks the store for the article's record first, under the router's timeout
(`node/router.py`): a store that does not answer is 503, as on every route. One that
takes longer than `wait` then goes on in the background and the answer is 202
`running`; asking again joins it, and once done answers what it did. A crash of the
node midway leaves it resumable, by the same request or by `livecount admin`.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any, Final
from urllib.parse import urlsplit

import msgspec
from livecount.aws.store import Store
from livecount.aws.store_admin import Moved, Operations
from livecount.core import sizes
from livecount.core.errors import ClientError
from livecount.core.ledger import Counts
from livecount.core.moves import Plan
from livecount.core.pages import Target
from livecount.core.reports import BadParameter
from livecount.logs import log, warn_limited
from livecount.node.answers import json_response, unauthorized
from livecount.node.auth import Guard, header, over_https
from livecount.node.router import HttpRequest
from websockets.datastructures import Headers
from websockets.http11 import Response

WAIT: Final = 2.0  # seconds an answer waits for its operation before `running`: below
# the router's REQUEST_TIMEOUT, so that a long operation is 202, not 503
JSON: Final = "application/json"

Authorize = Callable[[Headers, str], Response | None]  # (headers, peer) → None: the operator
Announce = Callable[[str, Counts], None]  # show this count to this node's pages now


class AdminApi:
    def __init__(
        self,
        store: Store,
        authorize: Authorize,
        announce: Announce | None = None,
        wait: float = WAIT,
        reset: Callable[[list[Target]], Awaitable[None]] | None = None,
    ) -> None:
        self.operations = Operations(store)
        self.authorize = authorize
        self.announce = announce
        self.reset = reset  # forget what this node believes of an id renamed away or deleted
        self.wait = wait
        self._running: dict[str, tuple[Plan, asyncio.Task[Moved]]] = {}

    async def operation(self, request: HttpRequest) -> Response:
        """`GET /api/admin/operation?articleId=ID`."""
        return self._refused(request) or await self._operation(
            _id(request.query.get("articleId"), "articleId")
        )

    async def rename(self, request: HttpRequest) -> Response:
        """`POST /api/admin/rename` `{"from":OLD,"to":NEW}`."""
        return self._refused(request) or await self._posted(request, ("from", "to"))

    async def delete(self, request: HttpRequest) -> Response:
        """`POST /api/admin/delete` `{"articleId":ID}`."""
        return self._refused(request) or await self._posted(request, ("articleId",))

    async def title(self, request: HttpRequest) -> Response:
        """`POST /api/admin/title` `{"articleId":ID,"title":TITLE}`: a post keeps its
        first title; only the operator gives it another."""
        if (refused := self._refused(request)) is not None:
            return refused
        try:
            body = _body(request, ("articleId", "title"))
        except _Unsupported as exc:
            return json_response(415, {"error": "unsupported_media_type", "detail": str(exc)})
        article, title = _id(body.get("articleId"), "articleId"), body.get("title")
        if not isinstance(title, str) or not sizes.shows(title):
            raise BadParameter("title", "is required, and must show something")
        if (wrong := sizes.problem(title, sizes.TITLE)) is not None:
            raise BadParameter("title", wrong)
        try:
            await self.operations.retitle(article, title)
        except ClientError as exc:
            return json_response(404, {"error": exc.code, "detail": exc.detail})
        log("admin_done", operation="title", article=article)
        return json_response(200, {"status": "done", "operation": "title",
                                   "articleId": article, "title": title})

    async def _posted(self, request: HttpRequest, fields: tuple[str, ...]) -> Response:
        try:
            body = _body(request, fields)
        except _Unsupported as exc:
            return json_response(415, {"error": "unsupported_media_type", "detail": str(exc)})
        ids = [_id(body.get(name), name) for name in fields]
        if len(ids) == 2 and ids[0] == ids[1]:
            raise BadParameter("to", "is the id it has already")
        return await self._run(Plan(*ids))

    def _refused(self, request: HttpRequest) -> Response | None:
        """The operator's credential, from this host's own pages."""
        if (refusal := self.authorize(request.headers, request.peer)) is not None:
            return refusal
        if not _same_origin(request.headers):
            return json_response(
                403,
                {
                    "error": "cross_origin",
                    "detail": "admin actions are taken from this host's own pages only",
                },
            )
        return None

    async def _operation(self, article: str) -> Response:
        found = await self.operations.current(article)
        value: dict[str, Any] | None = None
        if found is not None:
            value = {
                "operation": found.plan.op,
                "articleId": found.article,
                "state": found.state,
                "started": found.started,
            }
            if found.to is not None:
                value["to"] = found.to
        return json_response(200, {"operation": value})

    async def _run(self, plan: Plan) -> Response:
        """Start `plan` (or join it, when this node runs it already) and answer its outcome,
        or 202 while it goes on."""
        running = self._running.get(plan.article)
        try:
            if running is not None and running[0] != plan:
                raise ClientError(
                    "operation_running", f"the {running[0].describe()} is under way on this node"
                )
            if running is None:
                # A store that does not answer is the router's 503, before anything starts.
                await self.operations.current(plan.article)
                task = asyncio.create_task(self.operations.run(plan))
                self._running[plan.article] = (plan, task)
                task.add_done_callback(lambda done: self._ended(plan, done))
            else:
                task = running[1]
            moved = await asyncio.wait_for(asyncio.shield(task), self.wait)
        except TimeoutError:
            return json_response(
                202,
                {
                    "status": "running",
                    "operation": plan.op,
                    "detail": f"the {plan.describe()} goes on; ask again for its outcome",
                },
            )
        except ClientError as exc:  # another operation under way, or nothing to act on
            status = 404 if exc.code == "never_counted" else 409
            return json_response(status, {"error": exc.code, "detail": exc.detail})
        log(
            "admin_done",
            operation=plan.op,
            article=plan.article,
            to=plan.to,
            items=moved.items,
            views=moved.views.total,
        )
        if self.reset is not None:  # this node at once; the others on the feed
            await self.reset([Target("post", a) for a in (plan.article, plan.to) if a])
        if self.announce is not None and plan.to is not None and moved.now is not None:
            self.announce(plan.to, moved.now)
        return json_response(200, _outcome(moved))

    def _ended(self, plan: Plan, task: asyncio.Task[Moved]) -> None:
        """Forget a finished operation; one nobody waited for any more logs its failure
        (it stays resumable)."""
        self._running.pop(plan.article, None)
        if not task.cancelled() and (exc := task.exception()) is not None:
            warn_limited(
                "admin_failed",
                plan.article,
                operation=plan.op,
                article=plan.article,
                error=str(exc),
            )


def _outcome(moved: Moved) -> dict[str, Any]:
    plan = moved.plan
    value: dict[str, Any] = {
        "status": "done",
        "operation": plan.op,
        "articleId": plan.article,
        "resumed": moved.resumed,
        "itemsMoved": moved.items,
        "movedViews": {"totalViews": moved.views.total, "uniqueViews": moved.views.unique},
    }
    if plan.to is not None and moved.now is not None:
        value |= {
            "to": plan.to,
            "now": {"totalViews": moved.now.total, "uniqueViews": moved.now.unique},
        }
    return value


def _body(request: HttpRequest, fields: tuple[str, ...]) -> dict[str, Any]:
    """The request's JSON object, holding `fields` and nothing else (each checked by its
    caller). Parameters in the query are refused: they travel in the body."""
    shape = msgspec.json.encode({f: "…" for f in fields}).decode()
    if request.query:
        raise BadParameter(
            next(iter(request.query)),
            "parameters travel in a JSON body "
            f"(`Content-Type: {JSON}`), not in the query: send {shape}",
        )
    kind = (header(request.headers, "Content-Type") or "").partition(";")[0]
    if kind.strip().lower() != JSON:
        raise _Unsupported(
            f"send the parameters as a JSON body {shape}, with `Content-Type: {JSON}`"
        )
    if not request.body.strip():
        raise BadParameter("body", f"is empty: send {shape}")
    try:
        value = msgspec.json.decode(request.body)
    except msgspec.DecodeError as exc:
        raise BadParameter("body", f"is not JSON ({exc}): send {shape}") from None
    if not isinstance(value, dict):
        raise BadParameter("body", f"must be a JSON object: {shape}")
    for name in value:
        if name not in fields:
            raise BadParameter(
                str(name)[:64], f"is not a field of this action, which takes {shape}"
            )
    return value


class _Unsupported(Exception):
    """A body that does not say it is JSON: 415."""


def _id(value: Any, name: str) -> str:
    if value is None:
        raise BadParameter(name, "is required")
    if not isinstance(value, str):
        raise BadParameter(name, "must be a string")
    if (wrong := sizes.problem(value, sizes.ID)) is not None:
        raise BadParameter(name, wrong)
    return value


def _same_origin(headers: Headers) -> bool:
    """No `Origin` (a script, curl) or this very host: a page elsewhere that holds the
    operator's cookie cannot act with it."""
    origin = header(headers, "Origin")
    if origin is None:
        return True
    try:
        return urlsplit(origin).netloc == (header(headers, "Host") or "")
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
