"""Rankings, the catalog and the row cache: the pure parts reports answer from."""

from __future__ import annotations

import base64
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from livecount.core import feed
from livecount.core.bases import Counts
from livecount.core.catalog import Catalog
from livecount.core.pages import PageRules, Target
from livecount.core.rankings import Ranking
from livecount.core.report_rows import Row
from livecount.core.reports import BadParameter
from livecount.core.row_cache import PeriodRankings, RowCache, Span, top_hosts
from livecount.core.sharing import RECENT, Sharing


def walk(ranking: Ranking, order: str, limit: int, **how: object) -> list[str]:
    """Every ref, a page at a time, following each answer's cursor."""
    refs: list[str] = []
    after = None
    while True:
        page = ranking.page(order, after, limit, **how)  # type: ignore[arg-type]
        refs += [r.ref for r in page.rows]
        if page.after is None:
            return refs
        after = page.after


@settings(max_examples=50, deadline=None)
@given(
    st.dictionaries(
        st.sampled_from([f"post#p{i}" for i in range(12)] + ["page#Home_Page", "page#/about"]),
        st.tuples(st.integers(0, 5), st.integers(0, 5)),
        max_size=14,
    ),
    st.integers(1, 5),
    st.lists(
        st.tuples(st.sampled_from([f"post#p{i}" for i in range(12)]), st.integers(-3, 3)),
        max_size=10,
    ),
)
def test_pages_walked_by_cursor_are_the_sorted_rows_once_each(counts, limit, moves):
    def label(ref: str) -> str:
        return ref.partition("#")[2].upper()

    ranking = Ranking(label)
    ranking.fill({ref: Counts(t + u, u) for ref, (t, u) in counts.items()})
    for ref, delta in moves:  # moved one at a time, as flushes and the feed move them
        total = max(0, ranking.get(ref).total + delta)
        ranking.set(ref, Counts(total, min(ranking.get(ref).unique, total)))
    rows = dict(ranking.counts)
    assert all(c.total > 0 for c in rows.values())
    assert ranking.sum == Counts(
        sum(c.total for c in rows.values()), sum(c.unique for c in rows.values())
    )

    def named(ref: str) -> tuple[str, str, str]:
        return label(ref).casefold(), label(ref), ref

    by_total = sorted(rows, key=lambda r: (-rows[r].total, -rows[r].unique, *named(r)))
    assert walk(ranking, "total", limit) == by_total
    assert walk(ranking, "total", limit, reverse=True) == by_total[::-1]
    assert walk(ranking, "title", limit) == sorted(rows, key=named)
    by_unique = sorted(rows, key=lambda r: (-rows[r].unique, -rows[r].total, *named(r)))
    assert walk(ranking, "unique", limit, kind="page") == [
        r for r in by_unique if r.startswith("page#")
    ]
    assert (
        ranking.page("total", None, limit, kind="post").matched
        == sum(r.startswith("post#") for r in rows)
        == ranking.kinds["post"]
    )


def test_a_cursor_is_checked_and_keeps_its_place_as_counts_move():
    ranking = Ranking(lambda ref: ref)
    ranking.fill({f"post#{i}": Counts(100 - i, 1) for i in range(10)})
    first = ranking.page("total", None, 3)
    assert [r.ref for r in first.rows] == ["post#0", "post#1", "post#2"]
    ranking.set("post#9", Counts(1000, 1))  # jumps ahead of the cursor: not seen again
    second = ranking.page("total", first.after, 3)
    assert [r.ref for r in second.rows] == ["post#3", "post#4", "post#5"]
    assert first.after is not None
    nested = base64.urlsafe_b64encode(b"[" * 5000).decode()  # deeper than json's recursion
    for wrong in ("x", first.after + "AA", "W10=", nested, first.after):
        order = "title" if wrong == first.after else "total"
        with pytest.raises(BadParameter) as refused:
            ranking.page(order, wrong, 3)
        assert refused.value.parameter == "cursor"


def test_search_and_titles_learned_later_move_rows():
    catalog = Catalog(PageRules().where)
    catalog.load(
        {
            Target("post", "zebra"): (Counts(5, 1), "", ""),
            Target("post", "apple"): (Counts(3, 1), "Zoology notes", "/blog/apple/"),
            Target("page", "Home_Page"): (Counts(9, 9), "", ""),
        }
    )
    assert [r.ref for r in catalog.ranking.top(3, "title")] == [
        "page#Home_Page",
        "post#zebra",
        "post#apple",
    ]
    catalog.describe(Target("post", "zebra"), "Aardvarks", "/blog/zebra/")
    assert [r.ref for r in catalog.ranking.top(3, "title")] == [
        "post#zebra",
        "page#Home_Page",
        "post#apple",
    ]
    found = catalog.ranking.page("total", None, 10, match=catalog.matches("ZOO"))
    assert [r.ref for r in found.rows] == ["post#apple"] and found.matched == 1
    assert catalog.fields(Target("page", "Home_Page")) == {"path": "/"}
    assert catalog.fields(Target("post", "zebra")) == {
        "articleTitle": "Aardvarks",
        "path": "/blog/zebra/",
    }
    assert catalog.site == Counts(17, 11)


def test_the_catalog_merges_by_maximum_and_only_a_reset_lowers():
    catalog = Catalog()
    a = Target("post", "a")
    catalog.observe(a, Counts(5, 2))
    assert a in catalog.unnamed  # seen on the stream: its title is read later
    catalog.observe(a, Counts(4, 1))  # an older image
    assert catalog.counts(a) == Counts(5, 2)
    catalog.load({a: (Counts(3, 3), "A", "")})  # a read begun before: merged by maximum
    assert catalog.counts(a) == Counts(5, 3) and a not in catalog.unnamed
    catalog.replace({a: (Counts(0, 0), "A", "")})  # renamed away
    assert a.ref not in catalog.ranking and catalog.site == Counts(0, 0)


def test_a_row_learned_while_its_span_is_read_is_kept():
    cache = RowCache()
    span = Span.bucket("d#2026-11-24")
    cache.reading(span)
    cache.learn(Row("timeline", "d#2026-11-24", "post#a"), Counts(7, 2))  # newer than the read
    rows = cache.put(span, {"post#a": Counts(5, 2), "post#b": Counts(1, 1)})
    assert rows == {"post#a": Counts(7, 2), "post#b": Counts(1, 1)}
    cache.learn(Row("timeline", "d#2026-11-24", "post#a"), Counts(6, 2))  # older: no move
    assert cache.get(span) == rows and rows["post#a"] == Counts(7, 2)


def test_rankings_follow_their_partitions_until_evicted_or_cleared():
    cache = RowCache(most=5)
    rankings = PeriodRankings(cache, lambda ref: ref)
    days = ("d#2026-11-23", "d#2026-11-24")
    for day in days:
        cache.put(Span.bucket(day), {"post#a": Counts(1, 1), "site": Counts(1, 1)})
    week = rankings.build(days, [cache.get(Span.bucket(d)) or {} for d in days])
    assert week.get("post#a") == Counts(2, 2) and "site" not in week
    cache.learn(Row("timeline", days[1], "post#b"), Counts(4, 0))
    assert week.get("post#b") == Counts(4, 0) and rankings.get(days) is week
    cache.put(Span.bucket("d#2026-11-25"), {"post#c": Counts(1, 0), "site": Counts(1, 0)})
    assert Span.bucket(days[0]) not in cache and rankings.get(days) is None
    cache.clear()
    assert cache.size == 0 and cache.get(Span.bucket("d#2026-11-25")) is None


def test_top_hosts_sum_a_periods_rows_per_host():
    rows = {
        "#d#2026-11-23#a.example": Counts(2, 0),
        "#d#2026-11-24#a.example": Counts(1, 0),
        "#d#2026-11-24#b.example": Counts(4, 0),
        "#d#2026-11-24#c.example": Counts(0, 0),
    }
    assert top_hosts(rows, 5) == [("b.example", 4), ("a.example", 3)]
    assert top_hosts({"x.example": Counts(1, 0)}, 1) == [("x.example", 1)]


def test_sharing_tells_what_was_stored_while_others_listen_and_the_recent_past_to_a_newcomer():
    now = [0.0]
    sharing = Sharing(lambda: now[0])
    home, row = Target("page", "Home_Page"), Row("timeline", "all", "post#a")
    sharing.stored(home, Counts(3, 1))
    assert sharing.take(alone=True) == []  # alone: nobody to tell
    now[0] = RECENT / 2
    sharing.stored(row, Counts(5, 2))
    said = [feed.read(p) for p in sharing.take(alone=False)]  # a node came: the recent past
    assert said == [feed.Stored([("Home_Page", 3, 1)], [("timeline", "all", "post#a", 5, 2)])]
    assert sharing.take(alone=False) == []
    sharing.stored(home, Counts(4, 1))
    assert len(sharing.take(alone=False)) == 1
    sharing.untold()  # that write failed, and the feed stays away past the recent past
    now[0] = RECENT * 10
    said = [feed.read(p) for p in sharing.take(alone=False)]
    assert said == [feed.Stored([("Home_Page", 4, 1)], [])]


def test_what_a_failed_telling_said_goes_with_the_next_however_long_the_feed_was_away():
    """Found by a hostile trial: after a failed write only the recent past was told
    again, so what the others missed while the feed was away longer stayed missed (they
    are alive: they never read the store again)."""
    now = [0.0]
    sharing = Sharing(lambda: now[0])
    home, row = Target("page", "Home_Page"), Row("timeline", "all", "post#a")
    assert sharing.take(alone=False) == []  # another node is alive
    sharing.stored(home, Counts(3, 1))
    sharing.stored(row, Counts(5, 2))
    assert len(sharing.take(alone=False)) == 1
    sharing.untold()
    now[0] = RECENT * 10
    sharing.stored(row, Counts(6, 2))
    assert len(sharing.take(alone=False)) == 1
    sharing.untold()  # still away
    now[0] = RECENT * 20
    said = [feed.read(p) for p in sharing.take(alone=False)]
    assert said == [feed.Stored([("Home_Page", 3, 1)], [("timeline", "all", "post#a", 6, 2)])]
    assert sharing.take(alone=False) == []  # told: not again


def test_a_reset_takes_back_what_sharing_kept_to_tell_again():
    sharing = Sharing(lambda: 0.0)
    home, about = Target("page", "Home_Page"), Target("page", "/about/")
    row = Row("timeline", "all", "page#Home_Page")
    sharing.stored(home, Counts(9, 4))
    sharing.stored(about, Counts(2, 1))
    sharing.stored(row, Counts(9, 4))
    sharing.forget([home], rows=True)  # deleted: its count and every row went down
    said = [feed.read(p) for p in sharing.take(alone=False)]  # a node came
    assert said == [feed.Stored([("/about/", 2, 1)], [])]
    sharing.stored(home, Counts(1, 1))  # counted again after the reset
    sharing.forget([about], rows=False)
    said = [feed.read(p) for p in sharing.take(alone=False)]
    assert said == [feed.Stored([("Home_Page", 1, 1)], [])]


def test_stored_payloads_fit_items_and_read_back():
    rows = [
        ("referrer", "post#" + "x" * 900, f"#d#2026-11-24#h{i}.example", i, 0)
        for i in range(random.Random(1).randrange(600, 900))
    ]
    payloads = list(feed.stored({"Home_Page": (1, 1)}, rows))
    assert len(payloads) > 1 and all(len(p) <= feed.MAX_ITEM_BYTES for p in payloads)
    said = [feed.read(p) for p in payloads]
    assert [r for s in said if isinstance(s, feed.Stored) for r in s.rows] == rows
    assert feed.read(b'{"stored": {"pages": [["a", 1]], "rows": []}}') == []
    assert feed.read(b'{"reset": [["post", "a"], ["page", "/x"]], "reports": false}') == feed.Reset(
        [("post", "a"), ("page", "/x")], False
    )
    assert feed.read(b'{"reset": [["post", "a"]]}') == feed.Reset([("post", "a")])  # rows too
