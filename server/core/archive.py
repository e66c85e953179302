"""The event archive's records and batches: which views go in which file, and when.

Pure; `livecount.node.archive` writes the files. A file closes after
`--archive-max-events` views or `--archive-max-seconds`, whichever comes first, and
is named into a `dt=YYYY-MM-DD` folder, the partition layout warehouse tools expect.

Stored per view: what the page sent, the server's UTC time and the page kind.
Never an IP address, a user agent or a cookie.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Literal

import msgspec
from livecount.core.pages import Target
from livecount.core.protocol import Views


class ArchivedView(msgspec.Struct, gc=False):
    """One line of the archive; the schema is documented in docs/API.md.

    Every field is on every line (null when absent), so schema inference in DuckDB,
    Athena or BigQuery sees the same columns in every file.
    """

    ts: str
    kind: Literal["post", "page"]
    refreshed: bool
    articleId: str | None = None
    pageName: str | None = None
    articleTitle: str | None = None
    currentPage: str | None = None
    previousPage: str | None = None
    referrer: str | None = None
    referrerHost: str | None = None  # set only when external


def record(msg: Views, target: Target, host: str | None, now: float) -> ArchivedView:
    moment = datetime.fromtimestamp(now, UTC)
    return ArchivedView(
        ts=moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z",
        kind=target.kind,
        refreshed=msg.refreshed,
        articleId=target.id if target.kind == "post" else None,
        pageName=target.id if target.kind == "page" else None,
        articleTitle=msg.articleTitle,
        currentPage=msg.currentPage,
        previousPage=msg.previousPage,
        referrer=msg.referrer or None,
        referrerHost=host,
    )


@dataclass(slots=True)
class ArchiveFile:
    lines: list[bytes]
    started: float
    name: str


@dataclass
class Buffer:
    """Which views go in which file, and when a file is due. Pure: no clock, no disk."""

    max_events: int
    max_seconds: float
    prefix: str = "0"  # tells apart the files of processes sharing a folder
    _lines: list[bytes] = field(default_factory=list)
    _started: float | None = None
    _sequence: int = 0
    _encoder: msgspec.json.Encoder = field(default_factory=msgspec.json.Encoder)

    def add(self, view: ArchivedView, now: float) -> ArchiveFile | None:
        """Buffer a view; returns the full batch when this view completes one."""
        if self._started is None:
            self._started = now
        self._lines.append(self._encoder.encode(view))
        return self.take() if len(self._lines) >= self.max_events else None

    def due(self, now: float) -> ArchiveFile | None:
        """The batch, if its first view is older than `max_seconds`."""
        if self._started is not None and now - self._started >= self.max_seconds:
            return self.take()
        return None

    def take(self) -> ArchiveFile | None:
        if not self._lines or self._started is None:
            return None
        self._sequence += 1
        start = datetime.fromtimestamp(self._started, UTC)
        name = (
            f"dt={start:%Y-%m-%d}/views-{start:%Y%m%dT%H%M%S}Z-{self.prefix}"
            f"-{self._sequence:06d}.ndjson.gz"
        )
        batch = ArchiveFile(self._lines, self._started, name)
        self._lines, self._started = [], None
        return batch

    def __len__(self) -> int:
        return len(self._lines)
