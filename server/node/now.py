"""`GET /api/now`: who reads what right now, on every node, most read first.

Answered from memory (this node's readers and what the other nodes last said on the
live feed, the titles from the catalog), so it answers while DynamoDB is away.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from livecount.core import reports
from livecount.core.pages import Target

DEFAULT_LIMIT = 100


class Now:
    """`{"readingNow": total, "pages": [{"articleId"|"pageName", "articleTitle"?,
    "readingNow"}, ...]}`: every reader in the total, the `limit` most read targets
    (default 100) in the list, ties in id order."""

    def __init__(
        self, reading: Callable[[], dict[Target, int]], title: Callable[[Target], str]
    ) -> None:
        self.reading = reading  # every target read now, on any node
        self.title = title  # a post's title, as the catalog knows it

    async def __call__(self, query: Mapping[str, str]) -> dict[str, Any]:
        limit = reports.parse_limit(query.get("limit"), default=DEFAULT_LIMIT)
        reading = self.reading()
        top = sorted(reading.items(), key=lambda tn: (-tn[1], tn[0].kind, tn[0].id))[:limit]
        pages: list[dict[str, Any]] = []
        for target, n in top:
            row: dict[str, Any]
            if target.kind == "post":
                row = {"articleId": target.id}
                if title := self.title(target):
                    row["articleTitle"] = title
            else:
                row = {"pageName": target.id}
            pages.append(row | {"readingNow": n})
        return {"readingNow": sum(reading.values()), "pages": pages}
