"""What one socket is owed, in the order it asked: replies, subscribed counts and pushes.

Every count a socket is sent is read when the message leaves (`Engine.output`), not
when it was decided: a reply queued behind a push, or a push behind a reply, then
never shows less than the message before it. The entries wait in a deque; a view's
reply waits there too until its journal record is on disk.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Collection
from dataclasses import dataclass
from typing import Final

from livecount.core.pages import Target

MAX_OWED: Final = 64  # messages a socket may be owed before it is read no further


@dataclass(slots=True)
class Reply:
    """The answer to a view, read when its turn comes. `counted` is None until the view
    is on disk; False for a view answered but not counted, `reason` saying why (`bot`,
    `resumed`). `error` replaces it when the view could not be counted."""

    target: Target
    counted: bool | None = None
    reason: str | None = None
    error: bytes | None = None


@dataclass(frozen=True, slots=True)
class Answer:
    """A subscribe's count: sent even when it repeats what the page was told."""

    target: Target


@dataclass(frozen=True, slots=True)
class Pushed:
    """A count that moved while earlier messages were owed: sent in its turn, unless it
    repeats what the page was told or the socket no longer watches it."""

    target: Target


Entry = bytes | Reply | Answer | Pushed  # bytes: a message that carries no count
Shown = tuple[int, int, int]  # total, unique, reading now
# `target`'s counts now, and the message that says them: a view's reply, or a count.
Render = Callable[[Target, Reply | None], tuple[Shown, bytes]]


class Outbox(deque[Entry]):
    """A socket's owed messages, oldest first, and the last count it was told."""

    __slots__ = ("told",)

    def __init__(self) -> None:
        super().__init__()
        self.told: tuple[Target, Shown] | None = None

    def output(self, render: Render, watching: Collection[Target]) -> bytes:
        """Every entry ready at the head, framed, in order, for one write; a push of a
        target no longer `watching`, or of the count last told, is not sent."""
        parts: list[bytes] = []
        while self:
            head = self[0]
            if isinstance(head, Reply):
                if head.error is not None:
                    parts.append(text_frame(head.error))
                elif head.counted is None:
                    break  # its view waits for the disk
                else:
                    shown, message = render(head.target, head)
                    parts.append(text_frame(message))
                    self.told = (head.target, shown)
            elif isinstance(head, bytes):
                parts.append(text_frame(head))
            else:
                shown, message = render(head.target, None)
                if isinstance(head, Answer) or (
                    self.told != (head.target, shown) and head.target in watching
                ):
                    parts.append(text_frame(message))
                    self.told = (head.target, shown)
            self.popleft()
        return b"".join(parts)

    def push(self, target: Target, shown: Shown) -> bool:
        """A count moved: True if it is to be written now (nothing is owed before it,
        and it says something new); else it waits its turn, if anything is owed."""
        if self:
            if self[-1] != Pushed(target):
                self.append(Pushed(target))
            return False
        if self.told == (target, shown):
            return False
        self.told = (target, shown)
        return True


def text_frame(payload: bytes) -> bytes:
    """A server's unmasked, unfragmented text frame: the same bytes for every socket,
    so a push is framed once, not once per subscriber."""
    size = len(payload)
    if size < 126:
        return bytes((0x81, size)) + payload
    if size < 65536:
        return bytes((0x81, 126)) + size.to_bytes(2, "big") + payload
    return bytes((0x81, 127)) + size.to_bytes(8, "big") + payload
