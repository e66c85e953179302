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
from typing import Final, Generic, NamedTuple, TypeVar

from livecount.core import protocol
from livecount.core.actions import Action, Append, Close, NeedCounts, Send
from livecount.core.admission import Admission
from livecount.core.conversations import Conversations, Waiting
from livecount.core.errors import LivecountError, Unavailable
from livecount.core.hub import Hub
from livecount.core.ledger import Counts, Ledger
from livecount.core.limits import Network
from livecount.core.live import Live, PendingView
from livecount.core.messages import Messages, error_reply
from livecount.core.pages import PageRules, Target
from livecount.core.readers import Readers
from livecount.core.settlement import Settlement
from livecount.core.tally import Tally

C = TypeVar("C", bound=Hashable)
RATE_LIMITED: Final = protocol.encode(
    protocol.Error("rate_limited", "too many messages; slow down or the connection will be closed")
)
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
        return cls(
            Engine(settings, ledger, readers, hub, talks, live, tally),
            live,
            Settlement(ledger),
            readers,
        )


class Engine(Generic[C]):
    """Sockets and their frames: admission, rates, each socket's messages in order
    around first reads; what each message does is `Messages`' (`core/messages.py`)."""

    def __init__(
        self,
        settings: Settings,
        ledger: Ledger,
        readers: Readers[C],
        hub: Hub[C],
        talks: Conversations[C],
        live: Live[C],
        tally: Tally,
    ) -> None:
        self.settings = settings
        self.tally = tally
        self._ledger = ledger
        self._hub = hub
        self._admission: Admission[C] = Admission(
            settings.max_connections_per_ip,
            settings.rate_limit,
            settings.rate_burst,
            settings.trusted_proxies,
        )
        self._readers = readers
        self._talks = talks
        self._live = live
        self._messages = Messages(
            settings, ledger, readers, hub, talks, live, tally, self._admission
        )

    # -- sockets ---------------------------------------------------------------------
    def opened(
        self, conn: C, peer: str, forwarded_for: str | None, user_agent: str | None, now: float
    ) -> Close | None:
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
        return [
            conn
            for conn in self._admission.quiet(now - self.settings.idle_timeout)
            if not self._hub.subscriptions(conn)
        ]

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
            return self._messages.refuse(conn, "rate_limited", RATE_LIMITED, None)
        try:
            message = protocol.decode(frame)
        except protocol.ProtocolError as exc:
            return self._messages.refuse(conn, exc.code, exc.reply(), None)
        return self._messages.handle(conn, message, None, now)

    def failed(self, conn: C) -> Send | None:
        """Handling `conn`'s frame raised (a bug, which the edge logs): it hears so."""
        return self._messages.failed(conn)

    # -- first reads -------------------------------------------------------------------
    def loaded(
        self,
        counts: Mapping[Target, Counts],
        now: float,
        listed: Iterable[Target] = (),
        refused: Iterable[Target] = (),
    ) -> list[tuple[C, Action]]:
        """Stored counts read for targets this node had not seen, and targets listed (or
        refused: the site lists `--max-pages` already): the messages that waited for
        them go on, each socket's in its order."""
        for target, stored in counts.items():
            self._ledger.observe(target, stored)
        self._ledger.listed.update(listed := list(listed))
        messages = self._messages
        messages.over_cap = set(refused)  # only while the views that asked go on
        try:
            return self._resume(
                self._talks.read(counts, [*listed, *messages.over_cap], messages.ready), now
            )
        finally:
            messages.over_cap = set()

    def unloaded(self, targets: Iterable[Target], now: float) -> list[tuple[C, Action]]:
        """The counts could not be read (or the targets listed): the messages that
        waited for them are refused `unavailable`, and the messages held behind them go
        on."""
        return self._resume(self._talks.unread(targets), now, UNREAD)

    def _resume(
        self, conns: list[C], now: float, failure: LivecountError | None = None
    ) -> list[tuple[C, Action]]:
        def first(conn: C, waiting: Waiting) -> Action | None:
            if failure is None:  # it may wait again: counts forgotten meanwhile (a reset)
                return self._messages.handle(conn, waiting.message, waiting.entry, now)
            return self._messages.refuse(conn, failure.code, error_reply(failure), waiting.entry)

        return self._talks.go_on(
            conns,
            first,
            lambda conn, frame: self.receive(conn, frame, now),
            lambda conn: conn in self._admission.sockets,
        )


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
