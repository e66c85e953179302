from datetime import UTC, datetime

import pytest
from livecount.core import reports
from livecount.core.ledger import Counts
from livecount.core.pages import Target
from livecount.core.reports import BadParameter, PageRow

NOW = datetime(2026, 11, 24, 7, 42, 5, tzinfo=UTC)


def bad(parameter: str, fn, *args) -> None:
    with pytest.raises(BadParameter) as caught:
        fn(*args)
    assert caught.value.parameter == parameter and caught.value.detail


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026-11-24T07:00:00Z", datetime(2026, 11, 24, 7, tzinfo=UTC)),
        ("2026-11-24T09:30:00+02:00", datetime(2026, 11, 24, 7, 30, tzinfo=UTC)),
        ("2026-11-24T07:00", datetime(2026, 11, 24, 7, tzinfo=UTC)),
        ("2026-11-24", datetime(2026, 11, 24, tzinfo=UTC)),
    ],
)
def test_times_are_iso_8601_in_utc(text, expected):
    assert reports.parse_time(text, "since") == expected


@pytest.mark.parametrize(
    "text",
    [
        "9999-12-31T23:00:00Z",
        "0001-01-01",
        "0001-01-01T00:00:00+01:00",
        "9999-12-31T23:59:59.999999-23:59",
        "1999-12-31T23:59:59Z",
        "2201-01-01",
        "0001-01-01T00:00:00+23:59",
    ],
)
def test_times_outside_2000_to_2200_are_refused_before_any_arithmetic(text):
    with pytest.raises(BadParameter) as caught:
        reports.parse_time(text, "until")
    assert caught.value.parameter == "until" and "2000-01-01" in caught.value.detail
    for since, until in ((text, None), (None, text), (text, text)):
        for bucket in ("hour", "day"):
            with pytest.raises(BadParameter):
                reports.time_range(since, until, bucket, NOW)


def test_the_edges_of_the_accepted_range_work_in_both_buckets():
    for until in (reports.EARLIEST, reports.LATEST):
        text = until.strftime("%Y-%m-%dT%H:%M:%SZ")
        for bucket in ("hour", "day"):
            start, end = reports.time_range(None, text, bucket, NOW)
            points = reports.timeline({}, start, end, bucket)
            assert len(points) == (48 if bucket == "hour" else 30)
            assert reports.hour_span(start, end, bucket)[1] >= reports.hour_of(end)


@pytest.mark.parametrize(
    "text",
    [
        "\uff12\uff10\uff12\uff16-11-24",
        "2026-11-24T07:00:00\uff3a",  # fullwidth digits, Z
        " 2026-11-24",
        "2026-11-24 ",
        "2026-11-24T09:30:00 02:00",
    ],
)
def test_times_are_ascii_iso_8601_without_padding(text):
    bad("since", reports.parse_time, text, "since")


def test_a_plus_that_became_a_space_is_explained():
    with pytest.raises(BadParameter) as caught:
        reports.parse_time("2026-11-24T09:30:00 02:00", "since")
    assert "%2B" in caught.value.detail


@pytest.mark.parametrize(
    "text",
    [
        "\uff11",
        "\u0665",
        "\u00b2",  # fullwidth 1, Arabic-Indic 5, superscript 2
        "+5",
        "-5",
        " 5",
        "5 ",
        "5_0",
        "0x10",
        "1e3",
        "5.0",
        "",
        "9" * 5000,
        "1000000000",
    ],
)
def test_limits_are_plain_ascii_digits(text):
    bad("limit", reports.parse_limit, text, 10)


def test_a_limit_in_ascii_digits_is_taken():
    assert [reports.parse_limit(t, 10) for t in ("1", "05", "1000")] == [1, 5, 1000]
    assert reports.parse_limit(None, 10) == 10


def test_bad_parameters_name_themselves():
    bad("since", reports.parse_time, "yesterday", "since")
    bad("bucket", reports.parse_bucket, "week")
    bad("limit", reports.parse_limit, "0", 10)
    bad("limit", reports.parse_limit, "ten", 10)
    bad("limit", reports.parse_limit, "1001", 10)
    bad("sort", reports.parse_sort, "views")
    bad("since", reports.time_range, "2026-11-25", "2026-11-24", "hour", NOW)
    bad("since", reports.time_range, "2026-01-01", "2026-11-24", "hour", NOW)


def test_default_ranges_are_48_hours_and_30_days_ending_now():
    start, end = reports.time_range(None, None, "hour", NOW)
    assert (start, end) == (
        datetime(2026, 11, 22, 8, tzinfo=UTC),
        datetime(2026, 11, 24, 7, tzinfo=UTC),
    )
    assert len(reports.timeline({}, start, end, "hour")) == 48
    start, end = reports.time_range(None, None, "day", NOW)
    assert len(reports.timeline({}, start, end, "day")) == 30
    assert reports.hour_span(start, end, "day") == ("2026-10-26T00", "2026-11-24T23")


def test_hourly_timeline_fills_empty_buckets_with_zeros():
    start, end = reports.time_range("2026-11-24T05:10:00Z", "2026-11-24T07:59:00Z", "hour", NOW)
    points = reports.timeline({"2026-11-24T06": Counts(3, 2)}, start, end, "hour")
    assert [(p.t, p.totalViews, p.uniqueViews) for p in points] == [
        ("2026-11-24T05:00:00Z", 0, 0),
        ("2026-11-24T06:00:00Z", 3, 2),
        ("2026-11-24T07:00:00Z", 0, 0),
    ]


def test_days_are_sums_of_their_hours():
    start, end = reports.time_range("2026-11-23", "2026-11-24", "day", NOW)
    hours = {
        "2026-11-23T00": Counts(1, 1),
        "2026-11-23T23": Counts(2, 1),
        "2026-11-24T07": Counts(5, 4),
    }
    points = reports.timeline(hours, start, end, "day")
    assert [(p.t, p.totalViews, p.uniqueViews) for p in points] == [
        ("2026-11-23T00:00:00Z", 3, 2),
        ("2026-11-24T00:00:00Z", 5, 4),
    ]


def test_rows_sort_by_total_unique_or_title():
    rows = [
        PageRow.of(Target("post", "b"), Counts(5, 1), "Beta"),
        PageRow.of(Target("post", "a"), Counts(3, 3), "alpha"),
        PageRow.of(Target("page", "Home_Page"), Counts(9, 2)),
    ]

    def labels(sort: str, limit: int = 10) -> list[str]:
        return [r.label for r in reports.sort_rows(rows, sort, limit)]

    assert labels("total") == ["Home_Page", "Beta", "alpha"]
    assert labels("unique") == ["alpha", "Home_Page", "Beta"]
    assert labels("title", 2) == ["alpha", "Beta"]


def test_a_post_row_has_article_fields_and_a_page_row_does_not():
    post = PageRow.of(Target("post", "a"), Counts(1, 1), "A")
    page = PageRow.of(Target("page", "Home_Page"), Counts(1, 1))
    assert (post.articleId, post.articleTitle, post.pageName) == ("a", "A", None)
    assert (page.articleId, page.pageName) == (None, "Home_Page")
