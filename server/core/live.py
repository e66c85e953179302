"""What pages are shown, and when they are told: the live side of the engine.

A target's count shown is the ledger's (never below what the store was seen to
hold, with every view this node accepted) and its readers now. It moves when this
node counts a view, when a flush's answer or the stream shows other writers' views,
or when readers come and go; each move marks the target for the next push to the
sockets that watch it. Every count a socket is sent is read as it leaves.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Final, Generic, NamedTuple, TypeVar

from livecount.core import archive, protocol
from livecount.core.conversations import Conversations
from livecount.core.errors import LivecountError
from livecount.core.hub import Hub
from livecount.core.ledger import Counts, Ledger
from livecount.core.outbox import Reply, text_frame
from livecount.core.pages import Target
from livecount.core.readers import Readers
from livecount.core.tally import Tally

C = TypeVar("C", bound=Hashable)
INTERNAL: Final = LivecountError("livecount failed on this message; it was not counted")


@dataclass(slots=True)  # not frozen: one is made per view, and frozen ones build slowly
class PendingView:
    """A view that counts once its journal record is on disk."""

    conn: Any
    target: Target
    refreshed: bool
    hour: str
    title: str | None
    host: str | None
    path: str | None
    record: bytes
    archived: archive.ArchivedView | None
    reply: Reply


class Shown(NamedTuple):
    """What a page is told of a target: its counts and its readers now."""

    total: int
    unique: int
    reading: int


class Live(Generic[C]):
    def __init__(
        self,
        ledger: Ledger,
        readers: Readers[C],
        hub: Hub[C],
        talks: Conversations[C],
        tally: Tally,
        max_tracked: int = 100_000,
    ) -> None:
        self._ledger = ledger
        self._readers = readers
        self._hub = hub
        self._talks = talks
        self._tally = tally
        self.max_tracked = max_tracked  # targets whose counts are kept (watched: always)

    def output(self, conn: C) -> bytes:
        """Every message `conn` is owed that is ready, framed, in order, for one write.
        Counts are read now: none shows less than a message that left before it."""
        return self._talks.output(conn, self._message, self._hub.subscriptions(conn))

    def _message(self, target: Target, reply: Reply | None) -> tuple[Shown, bytes]:
        """`target`'s counts now, and the reply (to a view) or count message saying them."""
        shown = self.now(target)
        if reply is None:
            return shown, count_message(target, shown)
        return shown, protocol.encode(
            protocol.ViewsReply(
                *shown, *ids(target), counted=reply.counted is not False, reason=reply.reason
            )
        )

    # -- the journal's outcome -----------------------------------------------------------
    def stored(self, view: PendingView, now: float) -> None:
        """The view is on disk: count it. Its reply is read when it leaves."""
        self._ledger.record(
            view.target,
            refreshed=view.refreshed,
            hour=view.hour,
            title=view.title,
            referrer=view.host,
            force=True,
            path=view.path,
        )
        self._ledger.unqueue()
        self._hub.changed(view.target, now)
        self._tally.views += 1
        view.reply.counted = True

    def unstored(self, view: PendingView, failure: BaseException) -> None:
        """The journal could not take the view (or counting it failed): not counted."""
        self._ledger.unqueue()
        exc = failure if isinstance(failure, LivecountError) else INTERNAL
        self._tally.refused[exc.code] += 1
        view.reply.error = protocol.encode(protocol.Error(exc.code, exc.detail))

    def now(self, target: Target) -> Shown:
        return Shown(*self._ledger.current(target), self._readers.now(target))

    def shown(self, target: Target) -> Counts | None:
        """What this node would show for `target`, if it knows (for the API's max)."""
        return self._ledger.current(target) if self._ledger.has_base(target) else None

    # -- what moves a count ------------------------------------------------------------
    def changed(self, target: Target, now: float) -> None:
        self._hub.changed(target, now)

    def moved(self, targets: Iterable[Target], now: float | None = None) -> None:
        """Readers of `targets` moved (here, or on another node): push them, once shown."""
        for target in targets:
            if self._ledger.has_base(target):
                self._hub.changed(target, now)

    def observed(self, article_id: str, counts: Counts, now: float) -> None:
        """A post's count seen in the stream or the live feed."""
        self.seen(Target("post", article_id), counts, now)

    def seen(self, target: Target, counts: Counts, now: float) -> None:
        """A count another writer stored: it may move a watched count."""
        if self._ledger.has_base(target) and self._ledger.observe(target, counts):
            self._hub.changed(target, now)

    def stored_moved(self, targets: Iterable[Target], now: float) -> None:
        """A flush came back (`Settlement.settle`): counts other writers added move
        these targets' pages; counts nobody watches may be forgotten."""
        for target in targets:
            self._hub.changed(target, now)
        self._ledger.trim(self.max_tracked, self._hub.watched())

    def reset(self, targets: list[Target]) -> list[Target]:
        """Targets renamed away, deleted or whose import was undone: their stored counts
        went down, so what this node believes is forgotten. Returns the watched ones, to
        read again (`reloaded`)."""
        self._ledger.forget_bases(targets)
        watched = self._hub.watched()
        return [t for t in targets if t in watched]

    def reloaded(self, counts: Mapping[Target, Counts], now: float) -> None:
        """Counts read again after `reset`: pushed to their pages, lower as they may be."""
        for target, stored in counts.items():
            if not self._ledger.has_base(target):
                self._ledger.observe(target, stored)
                self._hub.changed(target, now)

    # -- pushes ----------------------------------------------------------------------
    @property
    def pushes_due(self) -> bool:
        return self._hub.waiting

    def due(self, now: float) -> tuple[list[Target], list[float]]:
        """The watched targets whose count moved since the last call, and how long each
        change waited for its push."""
        return self._hub.due(now)

    def push(self, target: Target) -> tuple[bytes, list[C]]:
        """`target`'s count now, framed once, and the watchers to write it to now: those
        owed nothing, unless it repeats what they were told. The others get it in their
        turn, read again then."""
        shown, watchers = self.now(target), self._hub.watchers(target)
        self._tally.pushes += len(watchers)
        now = self._talks.push(watchers, target, shown)
        return text_frame(count_message(target, shown)), now

    def frame(self, target: Target) -> bytes:
        """`target`'s count message now, framed: a push that yielded to the loop part
        way through its watchers sends the rest this, never an older count."""
        return text_frame(count_message(target, self.now(target)))


def count_message(target: Target, shown: Shown) -> bytes:
    return protocol.encode(protocol.Count(*shown, *ids(target)))


def ids(target: Target) -> tuple[str | None, str | None]:
    """`articleId` and `pageName` of a message about `target`: one of them is None."""
    return (target.id, None) if target.kind == "post" else (None, target.id)
