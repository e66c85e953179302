"""The WebSocket edge: frames in, the engine's outcomes out, nothing decided here."""

from __future__ import annotations

import asyncio
import time
from contextlib import suppress
from functools import partial

import websockets
from livecount.aws.store import Store
from livecount.core.engine import Engine, Outcome, PendingView
from livecount.core.errors import LivecountError, Unavailable
from livecount.core.ledger import Counts
from livecount.core.pages import Target
from livecount.logs import error, warn_limited
from livecount.node.archive import Writer
from livecount.node.journal import Journal
from livecount.node.metrics import Metrics
from livecount.waits import pause
from websockets.asyncio.server import ServerConnection

BASE_READ_TIMEOUT = 3.0  # a page waits this long at most for a first count
INTERNAL = LivecountError("livecount failed on this message; it was not counted")


class Bases:
    """Stored counts of targets this node has not seen. Targets asked for in the same
    loop turn, from any socket, share one BatchGetItem."""

    def __init__(self, store: Store, engine: Engine[ServerConnection]) -> None:
        self.store = store
        self.engine = engine
        self._queued: dict[Target, asyncio.Future[None]] = {}
        self._loader: asyncio.Task[None] | None = None

    async def load(self, targets: list[Target]) -> None:
        waits = []
        for target in targets:
            if (waiting := self._queued.get(target)) is None:
                waiting = self._queued[target] = asyncio.get_running_loop().create_future()
            waits.append(waiting)
        if self._loader is None:
            self._loader = asyncio.create_task(self._load())
        await asyncio.gather(*waits)

    async def _load(self) -> None:
        await asyncio.sleep(0)  # one loop turn: let other sockets' first views join in
        queued, self._queued, self._loader = self._queued, {}, None
        try:
            counts: dict[Target, Counts] = await asyncio.wait_for(
                self.store.read_counts(list(queued)), BASE_READ_TIMEOUT)
        except Exception as exc:  # every waiter answers `unavailable`; nothing counted
            warn_limited("counts_unavailable", error=str(exc) or type(exc).__name__)
            failure = Unavailable("counts are unavailable right now; nothing was counted")
            for waiting in queued.values():
                waiting.set_exception(failure)
            return
        self.engine.loaded(counts)
        for waiting in queued.values():
            waiting.set_result(None)


class Sockets:
    def __init__(self, engine: Engine[ServerConnection], bases: Bases, journal: Journal,
                 metrics: Metrics, archive: Writer | None) -> None:
        self.engine = engine
        self.bases = bases
        self.journal = journal
        self.metrics = metrics
        self.archive = archive

    async def connection(self, ws: ServerConnection) -> None:
        headers = ws.request.headers if ws.request else None
        close = self.engine.opened(
            ws, str(ws.remote_address[0]) if ws.remote_address else "",
            headers.get("X-Forwarded-For") if headers else None,
            headers.get("User-Agent") if headers else None, time.time())
        if close is not None:
            self.metrics.rejected.labels("too_many_connections").inc()
            await ws.close(close.code, close.reason)
            return
        try:
            async for frame in ws:
                outcome = await self.answer(ws, frame)
                # A page that sends a view and leaves at once is still counted: the
                # frames it sent before closing are read and handled, unanswered.
                with suppress(websockets.ConnectionClosed):
                    for reply in outcome.replies:
                        await ws.send(reply, text=True)
                if outcome.close is not None:
                    await ws.close(outcome.close.code, outcome.close.reason)
                    break
        except websockets.ConnectionClosed:
            pass
        finally:
            self.engine.closed(ws)

    async def answer(self, ws: ServerConnection, frame: str | bytes) -> Outcome:
        try:
            outcome = self.engine.receive(ws, frame, time.time())
            if outcome.load and outcome.again is not None:
                await self.bases.load(outcome.load)
                outcome = self.engine.handle(ws, outcome.again, time.time())
            if outcome.load:  # forgotten again in between: rare, and honest to refuse
                raise Unavailable("counts are unavailable right now; nothing was counted")
            if (view := outcome.view) is not None:
                try:
                    reply = await self.journal.append(
                        view.record, partial(self._count, view))
                except BaseException:
                    self.engine.dropped(view)
                    raise
                outcome.replies.append(reply)
        except LivecountError as exc:
            outcome = Outcome.error(exc)
        except Exception as exc:  # a bug: logged as one, answered as one
            error("handle_failed", exc)
            outcome = Outcome.error(INTERNAL)
        if outcome.refused is not None:
            self.metrics.rejected.labels(outcome.refused).inc()
        elif outcome.bot:
            self.metrics.bots.inc()
        return outcome

    def _count(self, view: PendingView) -> bytes:
        """Runs once the view is on disk, in the journal's order."""
        now = time.time()
        reply = self.engine.count(view, now)
        self.metrics.views.inc()
        if self.archive is not None and view.archived is not None:
            self.archive.add(view.archived, now)
        return reply

    async def push_loop(self, stop: asyncio.Event, interval: float) -> None:
        while not await pause(stop, interval):
            pushes, waited = self.engine.due(time.time())
            for message, watchers in pushes:
                websockets.broadcast(watchers, message, text=True)
                self.metrics.pushes.inc(len(watchers))
            for seconds in waited:
                self.metrics.push_latency.observe(seconds)

    async def idle_loop(self, stop: asyncio.Event, idle_after: float) -> None:
        while not await pause(stop, min(idle_after, 5.0)):
            idle = self.engine.idle(time.time())
            await asyncio.gather(*(ws.close(1001, "idle") for ws in idle))
