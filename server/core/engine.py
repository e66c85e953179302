"""The node's decisions, free of I/O: events in, actions out.

Modelled on websockets' sans-I/O protocol and h11: the asyncio edges in
`livecount.node` feed it what happened (a socket opened, a frame arrived, bases were
read, a view reached the disk, a flush came back, the stream saw a count, time
passed) and do what it returns (reply, close, read these bases, journal this view,
write these dead letters, push these counts). Time is always an argument, so every
policy here is a plain unit test: admission, rate strikes, bots, the watch policy,
sequence numbers, recovery, and "never show less than stored". Two collaborators
keep their own state: `core.admission` (which sockets may talk, and how fast) and
`core.settlement` (flush sequence numbers, recovery, dead letters).

How a view flows: `receive` checks and classifies it; if the target's stored count
was never read it asks for it first (`Outcome.load`, then `handle` again), so no
count is ever shown below what is stored. Otherwise it returns a `PendingView` with
its journal record. The edge journals it and, once the record is on disk, calls
`count`, in the journal's order: the ledger then holds exactly what the journal
holds, and only views on disk are counted and answered.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Final, Generic, NamedTuple, TypeVar

from livecount.core import archive, journal, protocol
from livecount.core.admission import Admission
from livecount.core.errors import Busy, LivecountError
from livecount.core.hub import Hub
from livecount.core.ledger import Counts, Flush, FlushResult, Ledger
from livecount.core.limits import Network
from livecount.core.pages import PageError, PageRules, Target, referrer_host
from livecount.core.readers import Readers
from livecount.core.reports import hour_of
from livecount.core.settlement import Settled as Settled
from livecount.core.settlement import Settlement

C = TypeVar("C", bound=Hashable)
RATE_LIMITED: Final = protocol.encode(protocol.Error(
    "rate_limited", "too many messages; slow down or the connection will be closed"))


@dataclass(frozen=True)
class Settings:
    pages: PageRules = field(default_factory=PageRules)
    site_domains: tuple[str, ...] = ()
    max_pending_views: int = 1_000_000
    max_subscriptions: int = 1000
    rate_limit: float = 20.0
    rate_burst: float = 40.0
    max_connections_per_ip: int = 100
    trusted_proxies: tuple[Network, ...] = ()
    idle_timeout: float = 60.0
    archive: bool = False
    max_tracked: int = 100_000  # targets whose counts are kept in memory (watched: always)
    max_strikes: int = 20  # refused messages in a row before a socket is closed


class Shown(NamedTuple):
    """What a page is told of a target: its counts and its readers now. A push that
    would tell a page exactly what it was told last is not sent."""

    total: int
    unique: int
    reading: int


@dataclass(frozen=True, slots=True)
class Close:
    code: int
    reason: str


@dataclass(slots=True)  # not frozen: one is made per view, and frozen ones build slowly
class PendingView:
    """A view that counts once its journal record is on disk."""

    target: Target
    refreshed: bool
    hour: str
    title: str | None
    host: str | None
    record: bytes
    archived: archive.ArchivedView | None
    counts: Shown | None = None  # what its reply said, once counted


@dataclass(frozen=True, slots=True)
class Push:
    """A changed count for the sockets that watch it. A socket whose earlier replies
    still wait for the disk asks `engine.push_now(target)` when its turn comes, so a
    push never shows less than a reply that went out before it."""

    target: Target
    counts: Shown
    message: bytes
    watchers: set[Any]


@dataclass(slots=True)
class Outcome:
    """What the edge does with a frame, in this order: read `load` and `handle` the
    message again; or journal `view` and reply with what `count` returns; then send
    `replies` and `close`. `refused` names the error code sent, for metrics."""

    replies: Sequence[bytes] = ()
    close: Close | None = None
    load: Sequence[Target] = ()
    again: protocol.Inbound | None = None
    view: PendingView | None = None
    counts: Sequence[Target] = ()  # `count` answers, read with `push_now` when sent
    refused: str | None = None
    bot: bool = False  # answered, not counted

    @classmethod
    def error(cls, exc: LivecountError) -> Outcome:
        return cls([protocol.encode(protocol.Error(exc.code, exc.detail))], refused=exc.code)


class Engine(Generic[C]):
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.ledger = Ledger(settings.max_pending_views)
        self.hub: Hub[C] = Hub(settings.max_subscriptions)
        self.admission: Admission[C] = Admission(
            settings.max_connections_per_ip, settings.rate_limit, settings.rate_burst,
            settings.trusted_proxies)
        self.sockets = self.admission.sockets  # the open ones
        self.readers: Readers[C] = Readers()
        self.settlement = Settlement(self.ledger)
        self._queued = 0  # views sent to the journal, not yet counted
        self._changed_at: dict[Target, float] = {}
        self._hours = _Hours()

    # -- sockets ---------------------------------------------------------------------
    def opened(self, conn: C, peer: str, forwarded_for: str | None, user_agent: str | None,
               now: float) -> Close | None:
        if not self.admission.open(conn, peer, forwarded_for, user_agent, now):
            return Close(1008, "too many connections from this address")
        return None

    def closed(self, conn: C) -> None:
        """With or without a close frame: its page reads no more, pushed at once."""
        self.hub.drop(conn)
        self.admission.close(conn)
        for target in self.readers.drop(conn):
            if self.ledger.has_base(target):
                self.hub.changed(target)

    def idle(self, now: float) -> list[C]:
        """Sockets that watch nothing and said nothing for `idle_timeout`: they cost
        memory and serve no page. Watching sockets stay, kept honest by pings."""
        return [conn for conn in self.admission.quiet(now - self.settings.idle_timeout)
                if not self.hub.subscriptions(conn)]

    # -- frames ----------------------------------------------------------------------
    def receive(self, conn: C, frame: str | bytes, now: float) -> Outcome:
        """A frame from `conn`, which may have closed since it sent it (see `handle`)."""
        if strikes := self.admission.heard(conn, now):
            if strikes > self.settings.max_strikes:
                return Outcome(close=Close(1008, "rate limit exceeded"), refused="rate_limited")
            return Outcome([RATE_LIMITED], refused="rate_limited")
        try:
            message = protocol.decode(frame)
        except protocol.ProtocolError as exc:
            return Outcome([exc.reply()], refused=exc.code)
        return self.handle(conn, message, now)

    def handle(self, conn: C, message: protocol.Inbound, now: float) -> Outcome:
        """Decide on one message; client mistakes become error replies. A socket may
        have closed while its message waited for a stored count: its view still
        counts (a view sent just before a page leaves is a view), nothing else does."""
        try:
            if isinstance(message, protocol.Views):
                return self._views(conn, message, now)
            if (socket := self.sockets.get(conn)) is None:
                return Outcome()
            if isinstance(message, protocol.Visibility):
                if not socket.bot:
                    self.moved(self.readers.visible(conn, message.visible), now)
                return Outcome()
            targets = _targets(message, self.settings.pages)
            if isinstance(message, protocol.Unsubscribe):
                self.hub.unsubscribe(conn, targets)
                return Outcome()
            self.hub.subscribe(conn, targets)
            if missing := [t for t in dict.fromkeys(targets) if not self.ledger.has_base(t)]:
                return Outcome(load=missing, again=message)
            return Outcome(counts=tuple(dict.fromkeys(targets)))
        except protocol.ProtocolError as exc:
            return Outcome([exc.reply()], refused=exc.code)
        except LivecountError as exc:
            return Outcome.error(exc)

    def _views(self, conn: C, msg: protocol.Views, now: float) -> Outcome:
        try:
            target = self.settings.pages.classify(msg.articleId, msg.currentPage)
        except PageError as exc:
            self.moved(self.readers.leave(conn), now)
            raise protocol.ProtocolError(exc.code, exc.detail) from None
        if not self.ledger.has_base(target):
            return Outcome(load=[target], again=msg)
        if (socket := self.sockets.get(conn)) is not None:
            self.hub.view(conn, target)
            if socket.bot:  # shown the counts, not counted, and never a reader
                shown = Shown(*self.ledger.current(target), self.readers.now(target))
                return Outcome([_reply(target, shown, counted=False)], bot=True)
            if moved := self.readers.view(conn, target):
                self.moved(moved, now)
            if msg.resumed:
                shown = Shown(*self.ledger.current(target), self.readers.now(target))
                return Outcome([_reply(target, shown, counted=False, reason="resumed")])
        elif (gone := self.admission.standing(conn)) is not None and gone.bot:  # left, a bot
            return Outcome(bot=True)
        elif msg.resumed:  # left meanwhile: nothing to read, nothing to count
            return Outcome()
        if self.ledger.pending_views + self._queued >= self.settings.max_pending_views:
            raise Busy(f"{self.ledger.pending_views} views wait for the store")
        host = referrer_host(msg.referrer, self.settings.site_domains)
        hour = self._hours(now)
        self._queued += 1
        return Outcome(view=PendingView(
            target, msg.refreshed, hour, msg.articleTitle, host,
            journal.view_record(target, msg.refreshed, hour, msg.articleTitle, host),
            archive.record(msg, target, host, now) if self.settings.archive else None))

    def loaded(self, counts: dict[Target, Counts]) -> None:
        """Stored counts read for targets this node had not seen."""
        for target, stored in counts.items():
            self.ledger.observe(target, stored)

    def reset(self, articles: list[str]) -> list[Target]:
        """Articles renamed away or deleted: their stored counts went down, so what this
        node believes is forgotten. Returns the watched ones, to read again (`reloaded`)."""
        targets = [Target("post", article) for article in articles]
        self.ledger.forget_bases(targets)
        watched = self.hub.watched()
        return [t for t in targets if t in watched]

    def reloaded(self, counts: dict[Target, Counts], now: float) -> None:
        """Counts read again after `reset`: pushed to their pages, lower as they may be."""
        for target, stored in counts.items():
            if not self.ledger.has_base(target):
                self.ledger.observe(target, stored)
                self._changed(target, now)

    def count(self, view: PendingView, now: float) -> bytes:
        """The view is on disk: count it, and answer with the count including it."""
        self._queued -= 1
        counts = self.ledger.record(view.target, refreshed=view.refreshed, hour=view.hour,
                                    title=view.title, referrer=view.host, force=True)
        self._changed(view.target, now)
        view.counts = shown = Shown(*counts, self.readers.now(view.target))
        return _reply(view.target, shown)

    def dropped(self, view: PendingView) -> None:
        """The journal could not take the view: it was not counted."""
        self._queued -= 1

    # -- what the store says -----------------------------------------------------------
    def observed(self, article_id: str, counts: Counts, now: float) -> None:
        """A count seen in the stream or the live feed: it may move a watched count."""
        target = Target("post", article_id)
        if self.ledger.has_base(target) and self.ledger.observe(target, counts):
            self._changed(target, now)

    def shown(self, target: Target) -> Counts | None:
        """What this node would show for `target`, if it knows (for the API's max)."""
        return self.ledger.current(target) if self.ledger.has_base(target) else None

    # -- flushes ---------------------------------------------------------------------
    @property
    def recovering(self) -> bool:
        """Replayed views wait for the store (see `Settlement`)."""
        return self.settlement.recovering

    def next_seq(self, now_us: int) -> int:
        return self.settlement.next_seq(now_us)

    def replayed(self, last_seq: int) -> None:
        self.settlement.replayed(last_seq)

    def settle(self, flush: Flush, result: FlushResult, now: float) -> Settled:
        """A flush came back: what applied becomes known, what is unknown is resent
        later, what the store refused is set aside and never holds anything up."""
        moved, settled = self.settlement.settle(flush, result)
        for target in moved:
            self._changed(target, now)
        self.ledger.trim(self.settings.max_tracked, self.hub.watched())
        return settled

    # -- pushes ----------------------------------------------------------------------
    def _changed(self, target: Target, now: float) -> None:
        if self.hub.changed(target):
            self._changed_at.setdefault(target, now)

    def moved(self, targets: Iterable[Target], now: float) -> None:
        """Readers of `targets` moved (here, or on another node): push them, once shown."""
        for target in targets:
            if self.ledger.has_base(target):
                self._changed(target, now)

    def due(self, now: float) -> tuple[list[Push], list[float]]:
        """The pushes to send now, and how long each change waited for its push."""
        pushes, waited = [], []
        for target, watchers in self.hub.due():
            counts, message = self.push_now(target)
            pushes.append(Push(target, counts, message, watchers))
            if (since := self._changed_at.pop(target, None)) is not None:
                waited.append(now - since)
        return pushes, waited

    def push_now(self, target: Target) -> tuple[Shown, bytes]:
        """The `count` message for `target` as it stands now."""
        shown = Shown(*self.ledger.current(target), self.readers.now(target))
        return shown, protocol.encode(protocol.Count(*shown, *_ids(target)))



def _targets(msg: protocol.Subscribe | protocol.Unsubscribe, pages: PageRules) -> list[Target]:
    try:
        named = [pages.page(p) for p in msg.pageNames]
    except PageError as exc:
        raise protocol.ProtocolError(exc.code, exc.detail) from None
    return [Target("post", a) for a in msg.articleIds] + named


class _Hours:
    """The UTC hour bucket of a view now, formatted once per hour, not per view."""

    __slots__ = ("_hour",)

    def __init__(self) -> None:
        self._hour = (-1, "")

    def __call__(self, now: float) -> str:
        if int(now // 3600) != self._hour[0]:
            self._hour = (int(now // 3600), hour_of(datetime.fromtimestamp(now, UTC)))
        return self._hour[1]

def _reply(target: Target, shown: Shown, counted: bool = True, reason: str = "bot") -> bytes:
    """A view's answer; a view not counted (a bot's, a resumed page's) says so, and why."""
    return protocol.encode(protocol.ViewsReply(
        *shown, *_ids(target), counted=counted, reason=None if counted else reason))


def _ids(target: Target) -> tuple[str | None, str | None]:
    """`articleId` and `pageName` of a message about `target`: one of them is None."""
    return (target.id, None) if target.kind == "post" else (None, target.id)

