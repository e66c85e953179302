"""`GET /api/now`: who reads what right now, on every node, most read first.

Answered from memory (this node's readers and what the other nodes last said on the
live feed), so it answers while DynamoDB is away; only post titles are read from the
store, briefly, and left out if it does not answer in time.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from typing import Any

from livecount.aws.store import Store
from livecount.core import reports
from livecount.core.errors import LivecountError
from livecount.core.pages import Target
from livecount.logs import warn_limited

TITLES_TIMEOUT = 1.0  # seconds the titles may take before the answer goes without them
DEFAULT_LIMIT = 100


class Now:
    """`{"readingNow": total, "pages": [{"articleId"|"pageName", "articleTitle"?,
    "readingNow"}, ...]}`: every reader in the total, the `limit` most read targets
    (default 100) in the list, ties in id order."""

    def __init__(self, reading: Callable[[], dict[Target, int]], store: Store,
                 titles_timeout: float = TITLES_TIMEOUT) -> None:
        self.reading = reading  # every target read now, on any node
        self.store = store
        self.titles_timeout = titles_timeout

    async def __call__(self, query: Mapping[str, str]) -> dict[str, Any]:
        limit = reports.parse_limit(query.get("limit"), default=DEFAULT_LIMIT)
        reading = self.reading()
        top = sorted(reading.items(), key=lambda tn: (-tn[1], tn[0].kind, tn[0].id))[:limit]
        titles = await self._titles([t for t, _ in top if t.kind == "post"])
        pages: list[dict[str, Any]] = []
        for target, n in top:
            row: dict[str, Any]
            if target.kind == "post":
                row = {"articleId": target.id}
                if title := titles.get(target.id):
                    row["articleTitle"] = title
            else:
                row = {"pageName": target.id}
            pages.append(row | {"readingNow": n})
        return {"readingNow": sum(reading.values()), "pages": pages}

    async def _titles(self, posts: list[Target]) -> dict[str, str]:
        """The stored title of each post, where there is one and the store answers."""
        if not posts:
            return {}
        try:
            found = await asyncio.wait_for(self.store.read(posts), self.titles_timeout)
        except (TimeoutError, LivecountError) as exc:
            warn_limited("now_titles_unavailable", error=str(exc) or "timeout")
            return {}
        return {target.id: title for target, (_, title) in found.items() if title}
