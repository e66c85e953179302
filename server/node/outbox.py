"""What a socket owes its page, in order: framed, and counts deduplicated, as it leaves."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import Any

from livecount.core.engine import Engine, Shown
from livecount.core.pages import Target

Slot = list[Any]  # [the reply's frame(s), or None until its view is on disk; what it told]
MAX_WAITING = 64  # replies a socket may have waiting before it is read no further


@dataclass(frozen=True, slots=True)
class Answer:
    """A `count` owed to a subscribe, read when its turn comes (unlike a push, it is
    sent even when it repeats what the page was told)."""

    target: Target


def text_frame(payload: bytes) -> bytes:
    """A server's unmasked, unfragmented text frame: the same bytes for every socket,
    so a push is framed once, not once per subscriber."""
    size = len(payload)
    if size < 126:
        return bytes((0x81, size)) + payload
    if size < 65536:
        return bytes((0x81, 126)) + size.to_bytes(2, "big") + payload
    return bytes((0x81, 127)) + size.to_bytes(8, "big") + payload


class Outbox(deque[bytes | Slot | Target | Answer]):
    """In order: a reply ready to frame (bytes), a slot filled once its view is on disk
    ([frame or None, what it told]), a push whose count is read when its turn comes (a
    Target), or a subscribe's count (an Answer). A deque itself, so appending a reply
    and asking how many wait cost no Python call on the hot path."""

    __slots__ = ("engine", "told")

    def __init__(self, engine: Engine[Any]) -> None:
        super().__init__()
        self.engine = engine
        self.told: tuple[Target, Shown] | None = None  # the last count this page was sent

    def ready(self, conn: Any) -> bytes:
        """Every entry ready at the head, framed, in order, for one write. Counts are
        read as they leave, so none shows less than a reply that left before it; a push
        of a target `conn` stopped watching meanwhile is not sent."""
        parts: list[bytes] = []
        while self:
            head = self[0]
            if isinstance(head, list):
                if head[0] is None:
                    break
                for part in head[0] if isinstance(head[0], list) else (head[0],):
                    self._add(parts, part, conn)
                if head[1] is not None:
                    self.told = head[1]
            else:
                self._add(parts, head, conn)
            self.popleft()
        return b"".join(parts)

    def _add(self, parts: list[bytes], entry: bytes | Target | Answer, conn: Any) -> None:
        if isinstance(entry, bytes):
            parts.append(text_frame(entry))
            return
        if isinstance(entry, Answer):  # owed to a subscribe: always sent
            target, push = entry.target, False
        else:  # a push: not when it repeats what the page was told, nor left behind
            target, push = entry, True
            if target not in self.engine.hub.subscriptions(conn):
                return
        counts, message = self.engine.push_now(target)
        if not push or self.told != (target, counts):
            parts.append(text_frame(message))
            self.told = (target, counts)
