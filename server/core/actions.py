"""What the engine asks the node's edge to do, one small action at a time."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from livecount.core.live import PendingView
from livecount.core.pages import Target


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
