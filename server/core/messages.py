"""What a socket's message does once its turn comes: a view, and what a socket watches.

A view is counted (on its way to the journal) or only shown (a bot, a resumed page),
or refused (the page cap); either kind of message may wait for stored counts, or a
view for its listing in the page index. Pure, as the engine around it
(`core/engine.py`), which keeps each socket's frames in order and asks this what
each one does.
"""

from __future__ import annotations

from collections.abc import Hashable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Generic, TypeVar

from livecount.core import archive, journal, protocol
from livecount.core.actions import SEND, Action, Append, NeedCounts, Send
from livecount.core.admission import Admission
from livecount.core.conversations import Conversations, Waiting
from livecount.core.errors import LivecountError, TooManyPages
from livecount.core.hub import Hub
from livecount.core.ledger import Ledger
from livecount.core.live import INTERNAL, Live, PendingView
from livecount.core.outbox import Reply
from livecount.core.pages import PageError, PageRules, Target, referrer_host
from livecount.core.readers import Readers
from livecount.core.reports import hour_of
from livecount.core.tally import Tally

if TYPE_CHECKING:
    from livecount.core.engine import Settings

C = TypeVar("C", bound=Hashable)


class Messages(Generic[C]):
    def __init__(
        self,
        settings: Settings,
        ledger: Ledger,
        readers: Readers[C],
        hub: Hub[C],
        talks: Conversations[C],
        live: Live[C],
        tally: Tally,
        admission: Admission[C],
    ) -> None:
        self.settings = settings
        self.tally = tally
        self._ledger = ledger
        self._hub = hub
        self._admission = admission
        self._readers = readers
        self._talks = talks
        self._live = live
        self._told_bug = False  # a view's reply says `internal` (see `failed`)
        self.over_cap: set[Target] = set()  # refused a listing, while their views go on
        self._hours = _Hours()

    def handle(
        self, conn: C, message: protocol.Inbound, entry: Reply | None, now: float
    ) -> Action | None:
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
            return self.refuse(conn, exc.code, exc.reply(), entry)
        except LivecountError as exc:
            return self.refuse(conn, exc.code, error_reply(exc), entry)

    def _views(
        self, conn: C, msg: protocol.Views, entry: Reply | None, now: float
    ) -> Action | None:
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
            return self.refuse(conn, exc.code, error_reply(exc), entry)
        except Exception:
            entry.error, self._told_bug = error_reply(INTERNAL), True  # a bug: the edge logs it
            raise

    def _view(
        self, conn: C, msg: protocol.Views, target: Target, entry: Reply, now: float
    ) -> Action | None:
        socket = self._admission.sockets.get(conn)
        standing = socket or self._admission.standing(conn)
        # A view that counts may make a new row: listed first, within the page cap.
        unlisted = (
            not msg.resumed
            and not (standing is not None and standing.bot)
            and target not in self._ledger.listed
        )
        if unlisted and target in self.over_cap:
            raise TooManyPages(
                f"{target.id[:256]!r} is not counted: the site lists the most "
                "pages --max-pages allows; raise it, or delete pages"
            )
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
        return Append(
            PendingView(
                conn,
                target,
                msg.refreshed,
                hour,
                msg.articleTitle,
                host,
                path,
                journal.view_record(target, msg.refreshed, hour, msg.articleTitle, host, path),
                archive.record(msg, target, host, now) if self.settings.archive else None,
                entry,
            )
        )

    def failed(self, conn: C) -> Send | None:
        """Handling `conn`'s frame raised (a bug, which the edge logs): it hears so,
        unless its view's reply says so already (`_views`)."""
        if self._told_bug:
            self._told_bug = False
            self.tally.refused[INTERNAL.code] += 1
            return SEND
        return self.refuse(conn, INTERNAL.code, error_reply(INTERNAL), None)

    def refuse(self, conn: C, code: str, message: bytes, entry: Reply | None) -> Send | None:
        """`conn` hears `message` in its turn (in place of its view's reply, `entry`)."""
        self.tally.refused[code] += 1
        return SEND if self._talks.refuse(conn, message, entry) else None

    def ready(self, waiting: Waiting) -> bool:
        """Its counts are read and its listing done (or refused): it may go on."""
        return all(map(self._ledger.has_base, waiting.targets)) and all(
            t in self._ledger.listed or t in self.over_cap for t in waiting.listing
        )


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


def error_reply(exc: LivecountError) -> bytes:
    """The error message a socket hears for `exc`."""
    return protocol.encode(protocol.Error(exc.code, exc.detail))
