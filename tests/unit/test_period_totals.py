"""Over random histories: what a period shows equals the sum of its timeline, for the
site and for every page, and both equal the views sent in it; built from the rows a
flush writes, and kept by the row values the store answers afterwards."""

from __future__ import annotations

from collections import Counter, defaultdict
from datetime import UTC, datetime

from hypothesis import given, settings
from hypothesis import strategies as st
from livecount.core import periods
from livecount.core.bases import ZERO, Counts
from livecount.core.pages import Target
from livecount.core.periods import Period
from livecount.core.rankings import Ranking
from livecount.core.report_rows import SITE, ReportRows, Row, is_bucket
from livecount.core.row_cache import PeriodRankings, RowCache, Span

NOW = datetime(2026, 12, 1, 5, 30, tzinfo=UTC)
TARGETS = [
    Target("post", "a"),
    Target("post", "b"),
    Target("page", "Home_Page"),
    Target("page", "/about"),
]
# Hours around the ends of a day, a month and a year, and the 24 hours before NOW.
HOURS = [
    "2025-12-31T23",
    "2026-01-01T00",
    "2026-10-31T23",
    "2026-11-01T00",
    "2026-11-25T12",
    "2026-11-30T05",
    "2026-11-30T06",
    "2026-11-30T23",
    "2026-12-01T00",
    "2026-12-01T05",
]
QUERIES = [{"period": name} for name in periods.PERIODS] + [
    {"since": "2026-11-30T06:00Z", "until": "2026-12-01T05:00Z"},  # hours
    {"since": "2026-10-31", "until": "2026-11-30"},  # days
    {"since": "2025-12-01", "until": "2026-11-15"},  # months
]

views = st.lists(
    st.tuples(
        st.sampled_from(TARGETS),
        st.sampled_from(HOURS),
        st.booleans(),
        st.sampled_from([None, "news.example", "x.example"]),
    ),
    max_size=40,
)


def written(history: list[tuple[Target, str, bool, str | None]]) -> dict[Row, Counts]:
    """The report rows a node's flushes store for `history`: its spread, summed."""
    rows = ReportRows()
    for target, hour, refreshed, host in history:
        rows.record(target, hour, host, 0 if refreshed else 1)
    return {row: Counts(w.delta.total, w.delta.unique) for row, w in rows.spread().take(1).items()}


def partitions(store: dict[Row, Counts]) -> dict[str, dict[str, Counts]]:
    found: dict[str, dict[str, Counts]] = defaultdict(dict)
    for row, counts in store.items():
        if row.table == "timeline" and is_bucket(row.target):
            found[row.target][row.sort] = counts
    return found


def sent(history: list[tuple[Target, str, bool, str | None]], period: Period) -> dict[str, Counts]:
    """The truth: views per ref (and the site) whose hour is in the period."""
    inside = set()
    for start in period.starts:
        inside.add(
            start.strftime(
                {"hour": "%Y-%m-%dT%H", "day": "%Y-%m-%d", "month": "%Y-%m"}[period.bucket]
            )
        )
    found: Counter[tuple[str, str]] = Counter()
    for target, hour, refreshed, _ in history:
        key = {"hour": hour, "day": hour[:10], "month": hour[:7]}[period.bucket]
        if key in inside:
            for ref in (target.ref, SITE):
                found[(ref, "total")] += 1
                found[(ref, "unique")] += not refreshed
    return {
        ref: Counts(found[(ref, "total")], found[(ref, "unique")]) for ref in {r for r, _ in found}
    }


def series_of(period: Period, store: dict[str, dict[str, Counts]], ref: str) -> Counts:
    values = {key: store[key][ref] for key in period.keys if ref in store.get(key, {})}
    return periods.totals(period.series(values))


def check(
    history: list[tuple[Target, str, bool, str | None]],
    parts: dict[str, dict[str, Counts]],
    ranking_of: dict[int, Ranking],
) -> None:
    for i, query in enumerate(QUERIES):
        period = periods.resolve(query, NOW, first_hour=min(HOURS))
        truth = sent(history, period)
        site = series_of(period, parts, SITE)
        assert site == truth.get(SITE, ZERO), query
        ranking = ranking_of[i]
        assert ranking.sum == site
        for target in TARGETS:
            shown = series_of(period, parts, target.ref)
            assert shown == truth.get(target.ref, ZERO) == ranking.get(target.ref), query
        assert len(ranking) == sum(1 for t in TARGETS if t.ref in truth)


@settings(max_examples=60, deadline=None)
@given(views, views)
def test_a_periods_totals_are_the_sum_of_its_timeline(first: list, later: list):
    store = written(first)
    parts = partitions(store)
    cache = RowCache()
    rankings = PeriodRankings(cache, lambda ref: ref)
    ranking_of: dict[int, Ranking] = {}
    for i, query in enumerate(QUERIES):
        period = periods.resolve(query, NOW, first_hour=min(HOURS))
        for key in period.keys:
            if Span.bucket(key) not in cache:
                cache.put(Span.bucket(key), dict(parts.get(key, {})))
        ranking_of[i] = rankings.build(
            period.keys, [cache.get(Span.bucket(k)) or {} for k in period.keys]
        )
    check(first, parts, ranking_of)
    # Later views come in as the store answers them: each row's value after the write.
    for row, counts in written(later).items():
        stored = store.get(row, ZERO).plus(counts)
        store[row] = stored
        cache.learn(row, stored)
    check(first + later, partitions(store), ranking_of)
