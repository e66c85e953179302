"""The report API's reads: `/api/pages`, `/api/pages/<id>`, `/api/summary`,
`/api/referrers` and `/api/timeline`, answered from what the node keeps of the store
(`node/report_cache.py`), never by reading every page of the site.

They parse parameters with `reports` and `periods` (a wrong one raises
`BadParameter`), read and format; `node/http.py` turns what they return, or raise,
into answers.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, Final, NamedTuple
from urllib.parse import quote, urlencode, urlsplit

from livecount.aws.store import Store
from livecount.core import periods, reports, sizes
from livecount.core.ledger import SITE, Counts
from livecount.core.pages import PageError, PageRules, Target
from livecount.core.periods import Period
from livecount.core.rankings import Ranked, Ranking
from livecount.core.report_rows import HOSTS_FROM
from livecount.core.reports import BadParameter, Referrer
from livecount.core.row_cache import Span, top_hosts
from livecount.node.report_cache import ReportCache

DETAILS: tuple[str, ...] = ("referrers", "timeline")  # one page's, private unless public
PERIOD_PARAMETERS: Final = ("period", "since", "until", "bucket")
MAX_SEARCH_CHARS: Final = 256
# What /api/timeline shows when no period is asked for: the last 48 hours, 30 days or
# 12 months, by its bucket.
LEGACY_SPANS: Final = {
    "hour": timedelta(hours=47),
    "day": timedelta(days=29),
    "month": timedelta(days=335),
}
EXPOSED: Final = {"Access-Control-Expose-Headers": "Link, X-Total-Count"}

Overlay = Callable[[Target], Counts | None]  # what this node counted that may not be stored
Query = Mapping[str, str]


class Paged(NamedTuple):
    """An answer with headers of its own: a page of rows, and where the next one is."""

    value: Any
    headers: dict[str, str]


def site_origin(allowed_origins: Sequence[str]) -> str | None:
    """Where rows link to: the first `--allowed-origin`, if it is http(s). Never an
    origin a request sent: any script can send any `Origin`."""
    for origin in allowed_origins[:1]:
        parts = urlsplit(origin)
        if parts.scheme in ("http", "https") and parts.netloc and not parts.path.strip("/"):
            return f"{parts.scheme}://{parts.netloc}"
    return None


class Reports:
    """Each report as `(query) -> value`, the value encoded as the JSON answer."""

    def __init__(
        self,
        store: Store,
        overlay: Overlay,
        pages: PageRules,
        cache: ReportCache,
        origin: str | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.store = store
        self.overlay = overlay
        self.pages = pages
        self.cache = cache
        self.spans = cache.spans  # the report rows asked for
        self.origin = origin
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
            try:
                return self.pages.page(page)
            except PageError as exc:
                raise BadParameter("pageName", exc.detail) from None
        if required:
            raise BadParameter("articleId", "articleId or pageName is required")
        return None

    def _counts(self, target: Target, stored: Counts) -> Counts:
        mine = self.overlay(target)
        return stored if mine is None else stored.max(mine)

    async def _period(self, query: Query, legacy: bool = False) -> Period:
        if legacy and not any(k in query for k in ("period", "since", "until")):
            bucket = periods.parse_bucket(query.get("bucket")) or "hour"
            since = self.clock() - LEGACY_SPANS[bucket]
            query = {**query, "bucket": bucket, "since": since.isoformat()}
        first = await self.spans.first_hour() if query.get("period") == periods.ALL_TIME else None
        return periods.resolve(query, self.clock(), first)

    async def _hosts(self, period: Period, ref: str, limit: int) -> list[tuple[str, int]]:
        """The external hosts that sent `ref` (or the site) views in the period, most
        first. All time is each host's all-time row (an import's hosts have no time)."""
        low, high = (HOSTS_FROM, None) if period.name == periods.ALL_TIME else period.hosts()
        return top_hosts(await self.spans.span(Span("referrer", ref, low, high)), limit)

    def row(self, target: Target, counts: Counts) -> dict[str, Any]:
        """One post's or page's row: its id, title, where it is, and `counts`."""
        row: dict[str, Any] = (
            {"articleId": target.id} if target.kind == "post" else {"pageName": target.id}
        )
        row |= self.cache.catalog.fields(target)
        if self.origin is not None and (path := row.get("path")):
            row["url"] = self.origin + quote(path, safe="/!$&'()*+,;=:@~")
        return row | {"totalViews": counts.total, "uniqueViews": counts.unique}

    async def pages_list(self, query: Query) -> Paged:
        """A page of the pages: by their live counts, or with a period by their views
        in it; sorted, searched (`q`, in ids and titles), of one `kind`, and continued
        by `cursor` (the `next` link of the answer before)."""
        sort = reports.parse_sort(query.get("sort"))
        limit = reports.parse_limit(query.get("limit"), default=100)
        reverse = _direction(query.get("dir"), sort)
        kind = query.get("kind")
        if kind not in (None, "post", "page"):
            raise BadParameter("kind", "must be post or page")
        text = query.get("q")
        if text is not None and len(text) > MAX_SEARCH_CHARS:
            raise BadParameter("q", f"is at most {MAX_SEARCH_CHARS} characters")
        live = not any(k in query for k in PERIOD_PARAMETERS)
        if live or text or sort == "title":
            await self.cache.ready()  # every page's live counts, or every title
        ranking = (
            self.cache.catalog.ranking
            if live
            else await self.spans.ranking(await self._period(query))
        )
        found = ranking.page(
            sort,
            query.get("cursor"),
            limit,
            kind,
            self.cache.catalog.matches(text) if text else None,
            reverse,
        )
        shown = _targets(found.rows)
        await self._read_early([t for t, _ in shown])  # the catalog may still be read
        rows = [self.row(t, self._counts(t, c) if live else c) for t, c in shown]
        headers = {"X-Total-Count": str(found.matched), **EXPOSED}
        if found.after is not None:
            headers["Link"] = (
                f'</api/pages?{urlencode({**query, "cursor": found.after})}>; rel="next"'
            )
        return Paged(rows, headers)

    async def _read_early(self, targets: list[Target]) -> None:
        """While the catalog is read: the counts, titles and paths of `targets` (the rows
        of a period's answer, one page's summary), read now rather than after every page
        of the site."""
        if self.cache.loaded.is_set() or not targets:
            return
        for target, found in (await self.store.read(targets)).items():
            self.cache.catalog.describe(target, found.title, found.path)
            self.cache.catalog.observe(target, found.counts)

    async def _live(self) -> Ranking:
        await self.cache.ready()
        return self.cache.catalog.ranking

    async def summary(self, query: Query) -> dict[str, Any]:
        """A period's figures, for the site or one post or page: its totals (the sum of
        its chart, always), its chart, and the live all-time counts beside them."""
        target = self._target(query)
        period = await self._period(query)
        ref = target.ref if target else SITE
        points = await self.spans.series(period, ref)
        total = periods.totals(points)
        answer: dict[str, Any] = {"period": period.describe()}
        if target is None:
            ranking = await self.spans.ranking(period)
            every = await self._live()
            answer |= {
                "pages": len(ranking),
                "posts": ranking.kinds["post"],
                "live": {
                    "totalViews": every.sum.total,
                    "uniqueViews": every.sum.unique,
                    "pages": len(every),
                    "posts": every.kinds["post"],
                },
            }
        else:
            await self._read_early([target])
            counts = self._counts(target, self.cache.catalog.counts(target))
            answer |= {
                **self.row(target, counts),
                "live": {"totalViews": counts.total, "uniqueViews": counts.unique},
            }
        return answer | {"totalViews": total.total, "uniqueViews": total.unique, "timeline": points}

    async def page(
        self, id_: str, query: Query, details: Sequence[str] = DETAILS
    ) -> dict[str, Any] | None:
        """One post's or page's live totals, and of `details` those asked for: its
        referrers and its chart, of the last 48 hours or of a period."""
        kind = query.get("kind", "post")
        if kind not in ("post", "page"):
            raise BadParameter("kind", "must be post or page")
        target = self._target({"articleId" if kind == "post" else "pageName": id_}, True)
        assert target is not None
        found = (await self.store.read([target]))[target]
        # The reader table lags the stream: never below what the listing shows.
        counts = self._counts(target, found.counts.max(self.cache.catalog.counts(target)))
        if not counts.total:  # never counted, or emptied by a rename, delete or undo
            return None
        self.cache.catalog.describe(target, found.title, found.path)
        answer = self.row(target, counts)
        given = any(k in query for k in PERIOD_PARAMETERS)
        period = await self._period(query, legacy=not given)
        hosts, points = await asyncio.gather(
            self._hosts(period if given else _all_time(period), target.ref, 10)
            if "referrers" in details
            else _none(),
            self.spans.series(period, target.ref) if "timeline" in details else _none(),
        )
        if given:
            answer["period"] = period.describe()
        if hosts is not None:
            answer["referrers"] = [Referrer(h, v) for h, v in hosts]
        if points is not None:
            answer["timeline"] = points
        return answer

    async def referrers(self, query: Query) -> list[Referrer]:
        target = self._target(query)
        limit = reports.parse_limit(query.get("limit"), default=10)
        given = any(k in query for k in PERIOD_PARAMETERS)
        period = await self._period(query if given else {**query, "period": "all"})
        hosts = await self._hosts(period, target.ref if target else SITE, limit)
        return [Referrer(h, v) for h, v in hosts]

    async def timeline(self, query: Query) -> list[reports.Point]:
        target = self._target(query)
        period = await self._period(query, legacy=True)
        return await self.spans.series(period, target.ref if target else SITE)


def _direction(text: str | None, sort: str) -> bool:
    """Whether to walk the order backwards: `dir=asc` for counts, `desc` for titles."""
    if text is None:
        return False
    if text not in ("asc", "desc"):
        raise BadParameter("dir", "must be asc or desc")
    return (text == "asc") != (sort == "title")


def _targets(rows: list[Ranked]) -> list[tuple[Target, Counts]]:
    found = []
    for ref, counts in rows:
        target = Target.from_ref(ref)
        if target is not None:
            found.append((target, counts))
    return found


def _all_time(period: Period) -> Period:
    return Period(periods.ALL_TIME, period.bucket, period.starts)


async def _none() -> None:
    return None
