"""The node's decisions, free of I/O: events in, actions out.

Modelled on websockets' sans-I/O protocol and h11. The asyncio edges in
`livecount.node` tell it what happened (a socket opened, a frame arrived, stored
counts were read, a view reached the disk, a flush came back, the stream saw a
count, time passed) and do what it asks, one small action at a time: `Send` (ask
`output` for the socket's bytes), `Append` (a view's record to the journal), `NeedCounts`
(read stored counts) or `Close`. Time is always an argument, so every policy here
is a plain unit test: admission, rate strikes, bots, the watch policy, sequence
numbers, recovery, message order and "never show less than stored".

How a view flows: `receive` checks and classifies it. If the target's stored count
was never read it asks for it (`NeedCounts`) and holds the socket's later messages
until `loaded`, so a socket's views count in the order it sent them and no count is
ever shown below what is stored. Otherwise it asks for the view's journal record to
be appended (`Append`); once it is on disk the edge calls `stored`, in the journal's
order, so the ledger holds exactly what the journal holds. Every count a socket is
sent is read when `output` frames it: a socket never sees a count go down.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Final, Generic, NamedTuple, TypeVar

from livecount.core import archive, journal, protocol
from livecount.core.admission import Admission
from livecount.core.conversations import Conversations, Waiting
from livecount.core.errors import LivecountError, TooManyPages, Unavailable
from livecount.core.hub import Hub
from livecount.core.ledger import Counts, Ledger
from livecount.core.limits import Network
from livecount.core.live import INTERNAL, Live, PendingView
from livecount.core.outbox import Reply
from livecount.core.pages import PageError, PageRules, Target, referrer_host
from livecount.core.readers import Readers
from livecount.core.reports import hour_of
from livecount.core.settlement import Settlement
from livecount.core.tally import Tally

C = TypeVar("C", bound=Hashable)
RATE_LIMITED: Final = protocol.encode(protocol.Error(
    "rate_limited", "too many messages; slow down or the connection will be closed"))
UNREAD: Final = Unavailable("counts are unavailable right now; nothing was counted")


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


# -- what the edge is asked to do -----------------------------------------------------
@dataclass(frozen=True, slots=True)
class Send:
    """The socket is owed messages that are ready: write `output(conn)`."""


@dataclass(frozen=True, slots=True)
class Append:
    """Write `view.record` to the journal, then call `stored` (or `unstored`)."""

    view: PendingView


@dataclass(frozen=True, slots=True)
class NeedCounts:
    """Read these targets' stored counts, and list `listing` in the page index (within
    the site's page cap), then call `loaded` (or `unloaded`)."""

    targets: tuple[Target, ...]
    listing: tuple[Target, ...] = ()


@dataclass(frozen=True, slots=True)
class Close:
    """Close the socket with this code once what it is owed is sent."""

    code: int
    reason: str


Action = Send | Append | NeedCounts | Close
SEND: Final = Send()


class Core(NamedTuple, Generic[C]):
    """The node's pure parts, sharing one ledger, one hub and one set of readers: the
    engine (messages), `Live` (what pages are shown, pushes), `Settlement` (flushes)
    and `Readers` (reading now, for the live feed). Each edge talks to the ones it
    needs, through their methods."""

    engine: Engine[C]
    live: Live[C]
    writes: Settlement
    readers: Readers[C]

    @classmethod
    def make(cls, settings: Settings) -> Core[C]:
        ledger = Ledger(settings.max_pending_views)
        hub: Hub[C] = Hub(settings.max_subscriptions)
        readers: Readers[C] = Readers()
        talks: Conversations[C] = Conversations()
        tally = Tally()
        live = Live(ledger, readers, hub, talks, tally, settings.max_tracked)
        return cls(Engine(settings, ledger, readers, hub, talks, live, tally), live,
                   Settlement(ledger), readers)


class Engine(Generic[C]):
    """Sockets and their messages: admission, rates, bots, what a view counts as and
    watches, first reads, and each view's way to the journal."""

    def __init__(self, settings: Settings, ledger: Ledger, readers: Readers[C], hub: Hub[C],
                 talks: Conversations[C], live: Live[C], tally: Tally) -> None:
        self.settings = settings
        self.tally = tally
        self._ledger = ledger
        self._hub = hub
        self._admission: Admission[C] = Admission(
            settings.max_connections_per_ip, settings.rate_limit, settings.rate_burst,
            settings.trusted_proxies)
        self._readers = readers
        self._talks = talks
        self._live = live
        self._told_bug = False  # a view's reply says `internal` (see `failed`)
        self._over_cap: set[Target] = set()  # refused a listing, while their views go on
        self._hours = _Hours()

    # -- sockets ---------------------------------------------------------------------
    def opened(self, conn: C, peer: str, forwarded_for: str | None, user_agent: str | None,
               now: float) -> Close | None:
        if not self._admission.open(conn, peer, forwarded_for, user_agent, now):
            self.tally.refused["too_many_connections"] += 1
            return Close(1008, "too many connections from this address")
        self._talks.open(conn)
        return None

    def closed(self, conn: C) -> None:
        """With or without a close frame: its page reads no more, pushed at once."""
        self._hub.drop(conn)
        self._admission.close(conn)
        self._talks.close(conn)
        self._live.moved(self._readers.drop(conn))

    @property
    def sockets(self) -> int:  # open
        return len(self._admission.sockets)

    def idle(self, now: float) -> list[C]:
        """Sockets that watch nothing and said nothing for `idle_timeout`: they cost
        memory and serve no page. Watching sockets stay, kept honest by pings."""
        return [conn for conn in self._admission.quiet(now - self.settings.idle_timeout)
                if not self._hub.subscriptions(conn)]

    def owed(self, conn: C) -> int:  # messages owed, or held behind a first read
        return self._talks.owed(conn)

    # -- frames ----------------------------------------------------------------------
    def receive(self, conn: C, frame: str | bytes, now: float) -> Action | None:
        """A frame from `conn`, which may have closed since it sent it."""
        if self._talks.hold(conn, frame):  # behind a first read
            return None
        if strikes := self._admission.heard(conn, now):
            if strikes > self.settings.max_strikes:
                self.tally.refused["rate_limited"] += 1
                return Close(1008, "rate limit exceeded")
            return self._refuse(conn, "rate_limited", RATE_LIMITED, None)
        try:
            message = protocol.decode(frame)
        except protocol.ProtocolError as exc:
            return self._refuse(conn, exc.code, exc.reply(), None)
        return self._handle(conn, message, None, now)

    def _handle(self, conn: C, message: protocol.Inbound, entry: Reply | None,
                now: float) -> Action | None:
        """Decide on one message; client mistakes become error replies. `entry` is the
        place a view kept while it waited for counts. A socket may have closed while its
        message waited: its view still counts, nothing else does."""
        try:
            if isinstance(message, protocol.Views):
                return self._views(conn, message, entry, now)
            if conn not in self._admission.sockets:
                return None
            if isinstance(message, protocol.Visibility):
                if not self._admission.sockets[conn].bot:
                    self._live.moved(self._readers.visible(conn, message.visible), now)
                return None
            targets = _targets(message, self.settings.pages)
            if isinstance(message, protocol.Unsubscribe):
                self._hub.unsubscribe(conn, targets)
                return None
            self._hub.subscribe(conn, targets)
            if missing := [t for t in dict.fromkeys(targets) if not self._ledger.has_base(t)]:
                return _asking(*self._talks.wait(conn, message, missing, None))
            return SEND if self._talks.answer(conn, dict.fromkeys(targets)) else None
        except protocol.ProtocolError as exc:
            return self._refuse(conn, exc.code, exc.reply(), entry)
        except LivecountError as exc:
            return self._refuse(conn, exc.code, _error(exc), entry)

    def _views(self, conn: C, msg: protocol.Views, entry: Reply | None,
               now: float) -> Action | None:
        try:
            target = self.settings.pages.classify(msg.articleId, msg.currentPage)
        except PageError as exc:
            self._live.moved(self._readers.leave(conn), now)
            raise protocol.ProtocolError(exc.code, exc.detail) from None
        if entry is None:  # its place in the socket's order, from now on
            entry = self._talks.reply(conn, target)
        try:
            return self._view(conn, msg, target, entry, now)
        except LivecountError as exc:
            return self._refuse(conn, exc.code, _error(exc), entry)
        except Exception:
            entry.error, self._told_bug = _error(INTERNAL), True  # a bug: the edge logs it
            raise

    def _view(self, conn: C, msg: protocol.Views, target: Target, entry: Reply,
              now: float) -> Action | None:
        socket = self._admission.sockets.get(conn)
        standing = socket or self._admission.standing(conn)
        # A view that counts may make a new row: listed first, within the page cap.
        unlisted = not msg.resumed and not (standing is not None and standing.bot) \
            and target not in self._ledger.listed
        if unlisted and target in self._over_cap:
            raise TooManyPages(f"{target.id[:256]!r} is not counted: the site lists the most "
                               "pages --max-pages allows; raise it, or delete pages")
        if unlisted or not self._ledger.has_base(target):
            missing = [] if self._ledger.has_base(target) else [target]
            return _asking(*self._talks.wait(conn, msg, missing, entry, [target] * unlisted))
        if socket is not None:
            self._hub.view(conn, target)
            if socket.bot or msg.resumed:  # shown the counts, not counted
                entry.counted, entry.reason = False, "bot" if socket.bot else "resumed"
                self.tally.bots += socket.bot  # and never a reader
                if not socket.bot:
                    self._live.moved(self._readers.view(conn, target), now)
                return SEND
            self._live.moved(self._readers.view(conn, target), now)
        elif (gone := self._admission.standing(conn)) is not None and gone.bot:  # left, a bot
            self.tally.bots += 1
            return None
        elif msg.resumed:  # left meanwhile: nothing to read, nothing to count
            return None
        self._ledger.admit()  # `busy` past --max-pending-views
        host = referrer_host(msg.referrer, self.settings.site_domains)
        hour = self._hours(now)
        path = self.settings.pages.path_of(target, msg.currentPage)
        return Append(PendingView(
            conn, target, msg.refreshed, hour, msg.articleTitle, host, path,
            journal.view_record(target, msg.refreshed, hour, msg.articleTitle, host, path),
            archive.record(msg, target, host, now) if self.settings.archive else None, entry))

    def failed(self, conn: C) -> Send | None:
        """Handling `conn`'s frame raised (a bug, which the edge logs): it hears so,
        unless its view's reply says so already (`_views`)."""
        if self._told_bug:
            self._told_bug = False
            self.tally.refused[INTERNAL.code] += 1
            return SEND
        return self._refuse(conn, INTERNAL.code, _error(INTERNAL), None)

    def _refuse(self, conn: C, code: str, message: bytes, entry: Reply | None) -> Send | None:
        """`conn` hears `message` in its turn (in place of its view's reply, `entry`)."""
        self.tally.refused[code] += 1
        return SEND if self._talks.refuse(conn, message, entry) else None

    # -- first reads -------------------------------------------------------------------
    def loaded(self, counts: Mapping[Target, Counts], now: float,
               listed: Iterable[Target] = (), refused: Iterable[Target] = (),
               ) -> list[tuple[C, Action]]:
        """Stored counts read for targets this node had not seen, and targets listed (or
        refused: the site lists `--max-pages` already): the messages that waited for
        them go on, each socket's in its order."""
        for target, stored in counts.items():
            self._ledger.observe(target, stored)
        self._ledger.listed.update(listed := list(listed))
        self._over_cap = set(refused)  # only while the views that asked go on
        try:
            return self._resume(self._talks.read(
                counts, [*listed, *self._over_cap], self._ready), now)
        finally:
            self._over_cap = set()

    def _ready(self, waiting: Waiting) -> bool:
        return all(map(self._ledger.has_base, waiting.targets)) and all(
            t in self._ledger.listed or t in self._over_cap for t in waiting.listing)

    def unloaded(self, targets: Iterable[Target], now: float) -> list[tuple[C, Action]]:
        """The counts could not be read (or the targets listed): the messages that
        waited for them are refused `unavailable`, and the messages held behind them go
        on."""
        return self._resume(self._talks.unread(targets), now, UNREAD)

    def _resume(self, conns: list[C], now: float,
                failure: LivecountError | None = None) -> list[tuple[C, Action]]:
        def first(conn: C, waiting: Waiting) -> Action | None:
            if failure is None:  # it may wait again: counts forgotten meanwhile (a reset)
                return self._handle(conn, waiting.message, waiting.entry, now)
            return self._refuse(conn, failure.code, _error(failure), waiting.entry)

        return self._talks.go_on(conns, first, lambda conn, frame: self.receive(conn, frame, now),
                                 lambda conn: conn in self._admission.sockets)


def _targets(msg: protocol.Subscribe | protocol.Unsubscribe, pages: PageRules) -> list[Target]:
    try:
        named = [pages.page(p) for p in msg.pageNames]
    except PageError as exc:
        raise protocol.ProtocolError(exc.code, exc.detail) from None
    return [Target("post", a) for a in msg.articleIds] + named


def _asking(ask: tuple[Target, ...], listing: tuple[Target, ...] = ()) -> NeedCounts | None:
    """What a message waits for: its socket's later messages are held meanwhile; only
    what nobody asked for yet is asked."""
    return NeedCounts(ask, listing) if ask or listing else None


class _Hours:
    """The UTC hour bucket of a view now, formatted once per hour, not per view."""

    __slots__ = ("_hour",)

    def __init__(self) -> None:
        self._hour = (-1, "")

    def __call__(self, now: float) -> str:
        if int(now // 3600) != self._hour[0]:
            self._hour = (int(now // 3600), hour_of(datetime.fromtimestamp(now, UTC)))
        return self._hour[1]


def _error(exc: LivecountError) -> bytes:
    return protocol.encode(protocol.Error(exc.code, exc.detail))


__all__ = [
    "Action",
    "Append",
    "Close",
    "Core",
    "Engine",
    "NeedCounts",
    "PendingView",
    "Send",
    "Settings",
    "Tally",
]
