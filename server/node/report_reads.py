"""The report API's reads: `/api/pages`, `/api/pages/<id>`, `/api/referrers` and
`/api/timeline`, from the store, with what this node counted and has not stored yet.

They parse parameters with `reports` (a wrong one raises `BadParameter`), ask the
store and format; `node/http.py` turns what they return, or raise, into answers.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

import msgspec
from livecount.aws.store import Store
from livecount.core import reports, sizes
from livecount.core.ledger import SITE, Counts
from livecount.core.pages import PageRules, Target
from livecount.core.reports import BadParameter, PageRow

DETAILS: tuple[str, ...] = ("referrers", "timeline")  # one page's, private unless public

Overlay = Callable[[Target], Counts | None]  # what this node counted that may not be stored
Query = Mapping[str, str]


class Reports:
    """Each report as `(query) -> value`, the value encoded as the JSON answer."""

    def __init__(self, store: Store, overlay: Overlay, pages: PageRules,
                 clock: Callable[[], datetime] = lambda: datetime.now(UTC)) -> None:
        self.store = store
        self.overlay = overlay
        self.pages = pages
        self.clock = clock

    def _target(self, query: Query, required: bool = False) -> Target | None:
        """`articleId=` or `pageName=`; neither means site-wide, unless required."""
        article, page = query.get("articleId"), query.get("pageName")
        if article is not None and page is not None:
            raise BadParameter("articleId", "give articleId or pageName, not both")
        if article is not None:
            if (wrong := sizes.problem(article, sizes.ID)) is not None:
                raise BadParameter("articleId", wrong)  # the protocol's rule: never counted
            return Target("post", article)
        if page is not None:
            if page not in self.pages.names:
                raise BadParameter("pageName", f"must be one of {', '.join(self.pages.names)}")
            return Target("page", page)
        if required:
            raise BadParameter("articleId", "articleId or pageName is required")
        return None

    def _counts(self, target: Target, stored: Counts) -> Counts:
        mine = self.overlay(target)
        return stored if mine is None else stored.max(mine)

    async def pages_list(self, query: Query) -> list[PageRow]:
        sort = reports.parse_sort(query.get("sort"))
        limit = reports.parse_limit(query.get("limit"), default=100)
        stored = await self.store.read(await self.store.tracked())
        shown = ((t, self._counts(t, counts), title) for t, (counts, title) in stored.items())
        # An id a rename, delete or undone import emptied keeps its items, at zero: gone.
        rows = [PageRow.of(t, counts, title) for t, counts, title in shown if counts.total]
        return reports.sort_rows(rows, sort, limit)

    async def page(self, id_: str, query: Query,
                   details: Sequence[str] = DETAILS) -> dict[str, Any] | None:
        """One post's or page's totals, and of `details` those asked for."""
        kind = query.get("kind", "post")
        if kind not in ("post", "page"):
            raise BadParameter("kind", "must be post or page")
        target = self._target({"articleId" if kind == "post" else "pageName": id_}, True)
        assert target is not None
        (counts, title), = (await self.store.read([target])).values()
        counts = self._counts(target, counts)
        if not counts.total:  # never counted, or emptied by a rename, delete or undo
            return None
        answer: dict[str, Any] = {
            k: v for k, v in msgspec.structs.asdict(PageRow.of(target, counts, title)).items()
            if v is not None}
        start, end = reports.time_range(None, None, "hour", self.clock())
        hosts, hours = await asyncio.gather(
            self.store.top_referrers(target.ref, 10) if "referrers" in details else _none(),
            self.store.hours(target.ref, *reports.hour_span(start, end, "hour"))
            if "timeline" in details else _none())
        if hosts is not None:
            answer["referrers"] = [reports.Referrer(h, v) for h, v in hosts]
        if hours is not None:
            answer["timeline"] = reports.timeline(hours, start, end, "hour")
        return answer

    async def referrers(self, query: Query) -> list[reports.Referrer]:
        target = self._target(query)
        limit = reports.parse_limit(query.get("limit"), default=10)
        hosts = await self.store.top_referrers(target.ref if target else SITE, limit)
        return [reports.Referrer(h, v) for h, v in hosts]

    async def timeline(self, query: Query) -> list[reports.Point]:
        target = self._target(query)
        bucket = reports.parse_bucket(query.get("bucket"))
        start, end = reports.time_range(query.get("since"), query.get("until"), bucket,
                                        self.clock())
        hours = await self.store.hours(target.ref if target else SITE,
                                       *reports.hour_span(start, end, bucket))
        return reports.timeline(hours, start, end, bucket)


async def _none() -> None:
    return None
