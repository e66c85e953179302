"""A socket's messages to the engine, in the order it sent them, even across first reads."""

from __future__ import annotations

import time
from collections import deque
from typing import TYPE_CHECKING

from livecount.core.engine import Outcome
from livecount.core.errors import LivecountError, Unavailable
from livecount.logs import error
from livecount.node.outbox import MAX_WAITING, Answer, Slot
from websockets.frames import Frame, Opcode
from websockets.protocol import State

if TYPE_CHECKING:
    from livecount.node.sockets import Connection

INTERNAL = LivecountError("livecount failed on this message; it was not counted")


class Inbox:
    """Data frames made messages, handed to the engine, their outcomes queued in the
    outbox. A message that needs a stored count first (a first view or subscription)
    holds every message after it until that read is done: a socket's views are
    journaled, and so counted, in the order it sent them."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn
        self.hub = conn.hub
        self.protocol = conn.protocol
        self.outbox = conn.outbox
        self._fragments: list[bytes] | None = None
        self._binary = False
        # Messages that came while a first read was under way, to handle after it.
        self._held: deque[tuple[bytes, bool]] | None = None

    def frame(self, frame: Frame) -> None:
        """A data frame (control frames are the connection's)."""
        opcode, data = frame.opcode, frame.data
        if not isinstance(data, bytes):
            data = bytes(data)
        if opcode is Opcode.TEXT or opcode is Opcode.BINARY:
            if not frame.fin:
                self._fragments = [data]
                self._binary = opcode is Opcode.BINARY
                return
            self.message(data, opcode is Opcode.BINARY)
        elif opcode is Opcode.CONT and self._fragments is not None:
            self._fragments.append(data)
            if frame.fin:
                data, self._fragments = b"".join(self._fragments), None
                self.message(data, self._binary)

    def message(self, data: bytes, binary: bool) -> None:
        """Counted even when the page closed right after sending it: a view sent
        before leaving is a view."""
        conn = self.conn
        if self.protocol.state is State.CONNECTING or conn.closing is not None:
            return  # nothing after the server's own close counts
        outbox = self.outbox
        if self._held is not None:  # behind a first read: keep the socket's order
            self._held.append((data, binary))
            if len(self._held) + len(outbox) > MAX_WAITING:
                conn.pause_reading()
            return
        if binary:
            frame: str | bytes = data
        else:
            try:
                frame = data.decode()
            except UnicodeDecodeError:
                self.protocol.fail(1007, "invalid UTF-8")
                return
        hub = self.hub
        try:
            outcome = hub.engine.receive(conn, frame, time.time())
        except Exception as exc:  # a bug: logged as one, answered as one
            error("handle_failed", exc)
            outcome = Outcome.error(INTERNAL)
        hub.counted(outcome)
        if outcome.load:
            slot: Slot = [None, None]
            outbox.append(slot)
            self._held = deque()
            hub.spawn(self._load(outcome, slot))
        elif outcome.view is not None:
            slot = [None, None]
            outbox.append(slot)
            hub.journal_view(conn, outcome.view, slot)
        for reply in outcome.replies:
            outbox.append(reply)
        for target in outcome.counts:
            outbox.append(Answer(target))
        if outcome.close is not None:
            conn.close(outcome.close.code, outcome.close.reason)
        if len(outbox) > MAX_WAITING:
            conn.pause_reading()
        hub.dirty(conn)

    async def _load(self, outcome: Outcome, slot: Slot) -> None:
        """A first view or subscription: its stored count is read before any count."""
        hub, conn = self.hub, self.conn
        try:
            await hub.bases.load(list(outcome.load))
            assert outcome.again is not None
            again = hub.engine.handle(conn, outcome.again, time.time())
            if again.load:  # forgotten again in between: rare, and honest to refuse
                raise Unavailable("counts are unavailable right now; nothing was counted")
        except LivecountError as exc:
            again = Outcome.error(exc)
        except Exception as exc:
            error("handle_failed", exc)
            again = Outcome.error(INTERNAL)
        hub.counted(again)
        if again.view is not None:
            hub.journal_view(conn, again.view, slot)
        else:
            slot[0] = [*again.replies, *map(Answer, again.counts)]
            hub.dirty(conn)
        held, self._held = self._held, None
        while held:  # in order, until one of them needs a first read in its turn
            self.message(*held.popleft())
            if self._held is not None:
                self._held.extend(held)
                return
