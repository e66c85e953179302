"""Periods: presets, all time and custom ranges, as whole buckets; and the report rows a
view spreads over."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from livecount.core import periods, sizes
from livecount.core.bases import Counts
from livecount.core.pages import Target
from livecount.core.report_rows import SITE, Row, hour_rows, rollups_of, view_rows
from livecount.core.reports import BadParameter

NOW = datetime(2026, 3, 1, 7, 45, tzinfo=UTC)


@pytest.mark.parametrize(
    ("name", "bucket", "first", "last", "n"),
    [
        ("24h", "hour", "h#2026-02-28T08", "h#2026-03-01T07", 24),
        ("7d", "day", "d#2026-02-23", "d#2026-03-01", 7),
        ("30d", "day", "d#2026-01-31", "d#2026-03-01", 30),
        ("12mo", "month", "m#2025-04", "m#2026-03", 12),
    ],
)
def test_presets_end_with_the_bucket_of_now(name, bucket, first, last, n):
    period = periods.resolve({"period": name}, NOW)
    assert (period.bucket, period.keys[0], period.keys[-1], len(period.keys)) == (
        bucket,
        first,
        last,
        n,
    )
    assert period.describe()["name"] == name


def test_all_time_is_every_month_since_the_first_view():
    period = periods.resolve({"period": "all"}, NOW, first_hour="2023-11-30T23")
    assert period.bucket == "month" and len(period.keys) == 29
    assert period.describe() == {
        "name": "all",
        "bucket": "month",
        "since": "2023-11-01T00:00:00Z",
        "until": "2026-04-01T00:00:00Z",
    }
    assert periods.resolve({"period": "all"}, NOW).keys == ("m#2026-03",)  # nothing yet


@pytest.mark.parametrize(
    ("query", "bucket", "n", "since", "until"),
    [
        (
            {"since": "2026-02-28T10:30Z", "until": "2026-03-01T02:00Z"},
            "hour",
            17,
            "2026-02-28T10:00:00Z",
            "2026-03-01T03:00:00Z",
        ),
        ({"since": "2026-01-10"}, "day", 51, "2026-01-10T00:00:00Z", "2026-03-02T00:00:00Z"),
        (
            {"since": "2024-02-29", "until": "2026-01-15"},
            "month",
            24,
            "2024-02-01T00:00:00Z",
            "2026-02-01T00:00:00Z",
        ),
        (
            {"since": "2026-02-01", "until": "2026-02-03", "bucket": "day"},
            "day",
            3,
            "2026-02-01T00:00:00Z",
            "2026-02-04T00:00:00Z",
        ),
    ],
)
def test_a_custom_period_is_whole_buckets_of_a_size_that_fits(query, bucket, n, since, until):
    period = periods.resolve(query, NOW)
    assert (period.name, period.bucket, len(period.keys)) == ("custom", bucket, n)
    assert (period.describe()["since"], period.describe()["until"]) == (since, until)


@pytest.mark.parametrize(
    ("query", "parameter"),
    [
        ({"period": "week"}, "period"),
        ({"period": "7d", "since": "2026-01-01"}, "period"),
        ({"period": "24h", "bucket": "day"}, "bucket"),
        ({"until": "2026-01-01"}, "since"),
        ({"since": "2026-02-01", "until": "2026-01-01"}, "since"),
        ({"since": "2025-01-01", "bucket": "hour"}, "since"),
        ({"since": "2026-01-01", "bucket": "week"}, "bucket"),
    ],
)
def test_a_period_that_cannot_be_shown_names_its_parameter(query, parameter):
    with pytest.raises(BadParameter) as refused:
        periods.resolve(query, NOW)
    assert refused.value.parameter == parameter


def test_a_periods_series_has_every_bucket_and_its_hosts_are_one_range():
    period = periods.resolve({"period": "7d"}, NOW)
    points = period.series({"d#2026-02-25": Counts(3, 1), "d#2026-03-01": Counts(2, 2)})
    assert [(p.t, p.totalViews) for p in points][2:] == [
        ("2026-02-25T00:00:00Z", 3),
        ("2026-02-26T00:00:00Z", 0),
        ("2026-02-27T00:00:00Z", 0),
        ("2026-02-28T00:00:00Z", 0),
        ("2026-03-01T00:00:00Z", 2),
    ]
    assert periods.totals(points) == Counts(5, 3)
    low, high = period.hosts()
    inside = ["#d#2026-02-23#a.example", "#d#2026-03-01#zz.example"]
    outside = [
        "#d#2026-02-22#a.example",
        "#m#2026-03#a.example",
        "#h#2026-03-01T07#a.example",
        "a.example",
        "#d#2026-03-02#a.example",
    ]
    assert all(low < sort <= high for sort in inside)
    assert not any(low < sort <= high for sort in outside)


def test_a_view_adds_to_its_hour_and_every_rollup_and_each_key_fits_the_store():
    post = Target("post", "x" * sizes.MAX_ID_CHARS)
    rows = view_rows(post, "2026-03-01T07", "h" * 240 + ".example")
    assert len(rows) == 2 * (5 + 4)
    for row in rows:
        assert len(row.target.encode()) <= sizes.PARTITION_KEY_BYTES
        assert len(row.sort.encode()) <= sizes.SORT_KEY_BYTES
    assert Row("timeline", "all", post.ref) in rows and Row("timeline", "all", SITE) in rows
    hours = {"2026-02-28T23": Counts(2, 1), "2026-03-01T07": Counts(3, 3)}
    assert rollups_of(hours, SITE) == {
        Row("timeline", "h#2026-02-28T23", SITE): Counts(2, 1),
        Row("timeline", "h#2026-03-01T07", SITE): Counts(3, 3),
        Row("timeline", "d#2026-02-28", SITE): Counts(2, 1),
        Row("timeline", "d#2026-03-01", SITE): Counts(3, 3),
        Row("timeline", "m#2026-02", SITE): Counts(2, 1),
        Row("timeline", "m#2026-03", SITE): Counts(3, 3),
        Row("timeline", "all", SITE): Counts(5, 4),
    }
    assert hour_rows(SITE, "2026-03-01T07")[0] == Row("timeline", SITE, "2026-03-01T07")
