"""The operator's actions over HTTP, for the dashboard: rename a post, delete a post, a
page or every id with a prefix, title a post.

`POST /api/admin/rename` with the JSON body `{"from":OLD,"to":NEW}`, `POST
/api/admin/delete` with `{"articleId":ID}`, `{"pageName":NAME}` or `{"prefix":PREFIX}`
(and `"dryRun":true`: the ids and views it would delete), `POST /api/admin/title`, and
`GET /api/admin/operation?articleId=ID` (or `pageName=NAME`: what is under way on it).
The same operations as `livecount admin` (`aws/store_admin.py`), run by this node,
which also pushes the new count to its own pages of both ids at once.

Every route needs the operator's credential, whatever `--public` opens: `authorize`
(`operator_only` over the node's `auth.Guard`) answers None for a request that
carries it, else the refusal to send (401, or 429 past too many wrong tokens). A
browser's cross-origin request is refused too (its `Origin` must be this host), and a
body must say it is JSON (`Content-Type: application/json`), which no other site's
form can send without asking first.

An operation asks the store for the article's record first, under the router's timeout
(`node/router.py`): a store that does not answer is 503, as on every route. One that
takes longer than `wait` then goes on in the background and the answer is 202
`running` (for a prefix, with how many ids are done of how many); asking again joins
it, and once done answers what it did. A crash of the node midway leaves it
resumable, by the same request or by `livecount admin`.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Coroutine, Mapping
from dataclasses import dataclass
from typing import Any, Final, Generic, TypeVar
from urllib.parse import urlsplit

import msgspec
from livecount.aws.store import Store
from livecount.aws.store_admin import BulkDeletes, Deleted, Moved, Operations
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
        self.deletes = BulkDeletes(store)
        self.authorize = authorize
        self.announce = announce
        self.reset = reset  # forget what this node believes of an id renamed away or deleted
        self.wait = wait
        self._running: Underway[Moved] = Underway()  # by id
        self._prefixes: Underway[Deleted] = Underway()  # by prefix

    async def operation(self, request: HttpRequest) -> Response:
        """`GET /api/admin/operation?articleId=ID` (or `pageName=NAME`)."""
        return self._refused(request) or await self._operation(_target(request.query))

    async def rename(self, request: HttpRequest) -> Response:
        """`POST /api/admin/rename` `{"from":OLD,"to":NEW}`."""
        if (refused := self._refused(request)) is not None:
            return refused
        try:
            body = _body(request, ("from", "to"))
        except _Unsupported as exc:
            return _unsupported(exc)
        old, new = _id(body.get("from"), "from", sizes.STORED_ID), _id(body.get("to"), "to")
        if old == new:
            raise BadParameter("to", "is the id it has already")
        return await self._run(Plan(old, new))

    async def delete(self, request: HttpRequest) -> Response:
        """`POST /api/admin/delete` `{"articleId":ID}`, `{"pageName":NAME}`, or
        `{"prefix":PREFIX}` (with `"dryRun":true`: what it would delete)."""
        if (refused := self._refused(request)) is not None:
            return refused
        try:
            body = _body(
                request,
                ("articleId", "pageName", "prefix", "dryRun"),
                shape='{"articleId": "…"}, {"pageName": "…"} or {"prefix": "…"}',
            )
        except _Unsupported as exc:
            return _unsupported(exc)
        given = [name for name in ("articleId", "pageName", "prefix") if name in body]
        if len(given) != 1:
            raise BadParameter(
                given[1] if given else "articleId", "give one of articleId, pageName or prefix"
            )
        name = given[0]
        value = _id(body.get(name), name, sizes.ID if name == "prefix" else sizes.STORED_ID)
        dry_run = body.get("dryRun", False)
        if type(dry_run) is not bool or (dry_run and name != "prefix"):
            raise BadParameter("dryRun", "is true or false, and goes with prefix")
        if name == "prefix":
            return await self._delete_prefix(value, dry_run)
        return await self._run(Plan(value, None, "post" if name == "articleId" else "page"))

    async def title(self, request: HttpRequest) -> Response:
        """`POST /api/admin/title` `{"articleId":ID,"title":TITLE}`: a post keeps its
        first title; only the operator gives it another."""
        if (refused := self._refused(request)) is not None:
            return refused
        try:
            body = _body(request, ("articleId", "title"))
        except _Unsupported as exc:
            return _unsupported(exc)
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
        return json_response(
            200, {"status": "done", "operation": "title", "articleId": article, "title": title}
        )

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

    async def _operation(self, target: Target) -> Response:
        found = await self.operations.current(target)
        value: dict[str, Any] | None = None
        if found is not None:
            value = {
                "operation": found.plan.op,
                **target.named,
                "state": found.state,
                "started": found.started,
            }
            if found.plan.to is not None:
                value["to"] = found.plan.to
        return json_response(200, {"operation": value})

    async def _run(self, plan: Plan) -> Response:
        """Start `plan` (or join it, when this node runs it already) and answer its outcome,
        or 202 while it goes on."""
        try:
            if (job := self._running.find(plan.target, plan)) is None:
                # A store that does not answer is the router's 503, before anything starts.
                await self.operations.current(plan.target)
                job = self._running.start(
                    plan.target, plan, plan.describe(), self.operations.run(plan)
                )
            moved = await self._running.outcome(plan.target, job, self.wait)
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
            return _refusal(exc)
        log(
            "admin_done",
            operation=plan.op,
            kind=plan.kind,
            article=plan.id,
            to=plan.to,
            items=moved.items,
            views=moved.views.total,
        )
        if self.reset is not None:  # this node at once; the others on the feed
            await self.reset([plan.target, *([plan.destination] if plan.destination else [])])
        if self.announce is not None and plan.to is not None and moved.now is not None:
            self.announce(plan.to, moved.now)
        return json_response(200, _outcome(moved))

    async def _delete_prefix(self, prefix: str, dry_run: bool) -> Response:
        """Every post and page with views whose id starts with `prefix`, deleted in the
        background as a long rename is; or, `dry_run`, what that would delete."""
        try:
            if (job := self._prefixes.find(prefix, prefix)) is None:
                found = await self.deletes.matching(prefix)
                if not any(c.total for c in found.values()) if dry_run else not found:
                    raise _nothing(prefix)
                if dry_run:
                    return json_response(200, _dry_run(prefix, found))
                deleted = Deleted(list(found))
                job = self._prefixes.start(
                    prefix,
                    prefix,
                    f"delete of ids starting with {prefix!r}",
                    self.deletes.delete_all(deleted),
                    deleted,
                )
            deleted = job.state
            await self._prefixes.outcome(prefix, job, self.wait)
            if not (deleted.done or deleted.refused):  # only ids emptied before: nothing left
                raise _nothing(prefix)
        except TimeoutError:
            return json_response(
                202,
                {
                    "status": "running",
                    "operation": "delete",
                    "prefix": prefix,
                    "done": len(deleted.done),
                    "of": len(deleted.targets),
                    "detail": f"the delete of every id starting with {prefix!r} goes on; ask "
                    "again for its outcome",
                },
            )
        except ClientError as exc:
            return _refusal(exc)
        log(
            "admin_done",
            operation="delete",
            prefix=prefix,
            ids=len(deleted.done),
            views=deleted.views.total,
            refused=len(deleted.refused),
        )
        if self.reset is not None:
            await self.reset([m.plan.target for m in deleted.done])
        return json_response(200, _deleted(prefix, deleted))


T = TypeVar("T")


@dataclass(frozen=True)
class Running(Generic[T]):
    what: Any  # the operation, as asked for
    task: asyncio.Task[T]
    state: Any  # what it tells while it runs


class Underway(Generic[T]):
    """What this node runs in the background, by what it acts on: joined by a second
    ask, and kept once finished until an answer has said how it went. One that failed
    is forgotten (asking again runs it again: operations resume) and logged, for nobody
    may be waiting for it any more."""

    def __init__(self) -> None:
        self._jobs: dict[Any, Running[T]] = {}

    def find(self, key: Any, what: Any) -> Running[T] | None:
        """The job running `what` on `key`, if any; ClientError when another one is."""
        if (job := self._jobs.get(key)) is None:
            return None
        if job.what == what:
            return job
        if job.task.done():  # finished, and nobody asked for it: it gives way
            del self._jobs[key]
            return None
        raise ClientError(
            "operation_running", f"the {job.task.get_name()} is under way on this node"
        )

    def start(
        self, key: Any, what: Any, describe: str, work: Coroutine[Any, Any, T], state: Any = None
    ) -> Running[T]:
        job = Running(what, asyncio.create_task(work, name=describe), state)
        self._jobs[key] = job
        job.task.add_done_callback(lambda done: self._ended(key, job))
        return job

    async def outcome(self, key: Any, job: Running[T], wait: float) -> T:
        """What `job` did, within `wait` seconds (TimeoutError: it goes on); once
        said, forgotten."""
        done = await asyncio.wait_for(asyncio.shield(job.task), wait)
        self._forget(key, job)
        return done

    def _ended(self, key: Any, job: Running[T]) -> None:
        if job.task.cancelled() or (exc := job.task.exception()) is None:
            return
        self._forget(key, job)
        what = job.task.get_name()
        warn_limited("admin_failed", what, operation=what, error=str(exc))

    def _forget(self, key: Any, job: Running[T]) -> None:
        if self._jobs.get(key) is job:
            del self._jobs[key]


def _nothing(prefix: str) -> ClientError:
    return ClientError(
        "never_counted", f"no post or page with views has an id starting with {prefix!r}"
    )


def _dry_run(prefix: str, found: dict[Target, Counts]) -> dict[str, Any]:
    views = Counts(sum(c.total for c in found.values()), sum(c.unique for c in found.values()))
    return {
        "status": "dryRun",
        "operation": "delete",
        "prefix": prefix,
        "ids": [t.named | _views(c) for t, c in found.items() if c.total],
        **_views(views),
    }


def _deleted(prefix: str, deleted: Deleted) -> dict[str, Any]:
    return {
        "status": "done",
        "operation": "delete",
        "prefix": prefix,
        "deleted": [m.plan.target.named for m in deleted.done],
        "itemsMoved": sum(m.items for m in deleted.done),
        "movedViews": _views(deleted.views),
        "refused": [t.named | {"detail": why} for t, why in deleted.refused.items()],
    }


def _views(counts: Counts) -> dict[str, int]:
    return {"totalViews": counts.total, "uniqueViews": counts.unique}


def _refusal(exc: ClientError) -> Response:
    """Another operation under way (409), or nothing to act on (404)."""
    status = 404 if exc.code == "never_counted" else 409
    return json_response(status, {"error": exc.code, "detail": exc.detail})


def _unsupported(exc: Exception) -> Response:
    return json_response(415, {"error": "unsupported_media_type", "detail": str(exc)})


def _outcome(moved: Moved) -> dict[str, Any]:
    plan = moved.plan
    value: dict[str, Any] = {
        "status": "done",
        "operation": plan.op,
        **plan.target.named,
        "resumed": moved.resumed,
        "itemsMoved": moved.items,
        "movedViews": _views(moved.views),
    }
    if plan.to is not None and moved.now is not None:
        value |= {"to": plan.to, "now": _views(moved.now)}
    return value


def _body(request: HttpRequest, fields: tuple[str, ...], shape: str = "") -> dict[str, Any]:
    """The request's JSON object, holding `fields` and nothing else (each checked by its
    caller); `shape` says what to send. Parameters in the query are refused: they travel
    in the body."""
    shape = shape or msgspec.json.encode({f: "…" for f in fields}).decode()
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


def _id(value: Any, name: str, limit: sizes.TextLimit = sizes.ID) -> str:
    """`limit`: `sizes.STORED_ID` for a row to rename away or delete, as `livecount admin`."""
    if value is None:
        raise BadParameter(name, "is required")
    if not isinstance(value, str):
        raise BadParameter(name, "must be a string")
    if (wrong := sizes.problem(value, limit)) is not None:
        raise BadParameter(name, wrong)
    return value


def _target(query: Mapping[str, str]) -> Target:
    """`articleId=ID` or `pageName=NAME`, checked."""
    given = [name for name in ("articleId", "pageName") if name in query]
    if len(given) != 1:
        raise BadParameter("articleId", "give articleId or pageName")
    return Target("post" if given[0] == "articleId" else "page", _id(query[given[0]], given[0]))


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
