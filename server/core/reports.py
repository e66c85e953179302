"""Reports: parameters in, rows and time series out. Pure; the HTTP API and the
`livecount report` command share it.

Time is UTC throughout. Views are stored in hourly buckets keyed `YYYY-MM-DDTHH`,
which sort as strings, so a range of hours is one Query; days are sums of hours.

Parameters arrive from anyone on the internet, so each parser accepts a narrow,
documented form and bounds it before any arithmetic: ASCII only, plain decimal
digits, and times within `EARLIEST` to `LATEST`.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Final, Literal

import msgspec
from livecount.core.ledger import Counts
from livecount.core.pages import Target

Bucket = Literal["hour", "day"]
SORTS: Final = ("total", "unique", "title")
MAX_POINTS: Final[Mapping[str, int]] = {"hour": 31 * 24, "day": 400}
DEFAULT_SPAN: Final[Mapping[str, timedelta]] = {
    "hour": timedelta(hours=47),
    "day": timedelta(days=29),
}
HOUR_FORMAT: Final = "%Y-%m-%dT%H"
# Times a report may ask about. Far enough apart for any blog; near enough that a
# default span or a day's 23 hours added to either end never leaves `datetime`.
EARLIEST: Final = datetime(2000, 1, 1, tzinfo=UTC)
LATEST: Final = datetime(2200, 12, 31, 23, 59, 59, tzinfo=UTC)
_DIGITS: Final = re.compile(r"[0-9]{1,9}")  # ASCII only: `str.isdigit` also takes other scripts


class BadParameter(Exception):
    """A request parameter that cannot be used; the message says what would work."""

    def __init__(self, parameter: str, detail: str) -> None:
        super().__init__(f"{parameter}: {detail}")
        self.parameter = parameter
        self.detail = detail


class PageRow(msgspec.Struct, omit_defaults=True):
    totalViews: int
    uniqueViews: int
    articleId: str | None = None
    articleTitle: str | None = None
    pageName: str | None = None

    @classmethod
    def of(cls, target: Target, counts: Counts, title: str = "") -> PageRow:
        if target.kind == "post":
            return cls(counts.total, counts.unique, articleId=target.id, articleTitle=title)
        return cls(counts.total, counts.unique, pageName=target.id)

    @property
    def label(self) -> str:
        return self.articleTitle or self.articleId or self.pageName or ""


class Referrer(msgspec.Struct):
    host: str
    views: int


class Point(msgspec.Struct):
    t: str
    totalViews: int
    uniqueViews: int


def hour_of(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime(HOUR_FORMAT)


def parse_time(text: str, parameter: str) -> datetime:
    """ISO 8601; a time without an offset is UTC, a bare date is its midnight. Bounded
    to `EARLIEST`..`LATEST` here, so later arithmetic cannot overflow."""
    shown = repr(text[:64]) + ("..." if len(text) > 64 else "")
    example = "e.g. 2026-11-24T07:00:00Z"
    if not text.isascii():
        raise BadParameter(parameter, f"{shown} is not an ISO 8601 time: ASCII only, {example}")
    out_of_range = BadParameter(
        parameter, f"must be from {EARLIEST:%Y-%m-%d} to {LATEST:%Y-%m-%dT%H:%M:%SZ} (UTC)"
    )
    try:
        moment = datetime.fromisoformat(text)
        moment = moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
    except ValueError:
        hint = " (a + in a URL's query is a space: write it as %2B)" if " " in text else ""
        raise BadParameter(
            parameter,
            f"{shown} is not an ISO 8601 time, {example}{hint}",
        ) from None
    except OverflowError:  # valid, but its offset moves it out of datetime's years
        raise out_of_range from None
    if not EARLIEST <= moment <= LATEST:
        raise out_of_range
    return moment


def parse_bucket(text: str | None) -> Bucket:
    if text in (None, "hour"):
        return "hour"
    if text == "day":
        return "day"
    raise BadParameter("bucket", "must be hour or day")


def parse_limit(text: str | None, default: int, most: int = 1000) -> int:
    """Plain ASCII decimal digits only: no sign, spaces, underscores or other scripts."""
    if text is None:
        return default
    value = int(text) if _DIGITS.fullmatch(text) else 0
    if not 1 <= value <= most:
        raise BadParameter("limit", f"must be a whole number from 1 to {most}, in ASCII digits")
    return value


def parse_sort(text: str | None) -> str:
    if text is None:
        return "total"
    if text not in SORTS:
        raise BadParameter("sort", f"must be one of {', '.join(SORTS)}")
    return text


def _floor(moment: datetime, bucket: Bucket) -> datetime:
    moment = moment.replace(minute=0, second=0, microsecond=0)
    return moment.replace(hour=0) if bucket == "day" else moment


def time_range(
    since: str | None, until: str | None, bucket: Bucket, now: datetime
) -> tuple[datetime, datetime]:
    """The first and last bucket start to report, defaults filled and limits checked."""
    end = _floor(parse_time(until, "until") if until else now, bucket)
    start = _floor(parse_time(since, "since"), bucket) if since else end - DEFAULT_SPAN[bucket]
    if start > end:
        raise BadParameter("since", "must not be after until")
    step = timedelta(hours=1) if bucket == "hour" else timedelta(days=1)
    if (end - start) // step + 1 > MAX_POINTS[bucket]:
        raise BadParameter("since", f"at most {MAX_POINTS[bucket]} {bucket} buckets at once")
    return start, end


def hour_span(start: datetime, end: datetime, bucket: Bucket) -> tuple[str, str]:
    """The hour keys to Query for buckets from `start` to `end` inclusive."""
    last = end + timedelta(hours=23) if bucket == "day" else end
    return hour_of(start), hour_of(last)


def timeline(
    hours: Mapping[str, Counts], start: datetime, end: datetime, bucket: Bucket
) -> list[Point]:
    """One point per bucket from `start` to `end`, empty buckets as zeros, oldest first."""
    step = timedelta(hours=1) if bucket == "hour" else timedelta(days=1)
    sums: dict[str, Counts] = {}
    for hour, counts in hours.items():
        key = hour[:10] if bucket == "day" else hour
        before = sums.get(key, Counts(0, 0))
        sums[key] = Counts(before.total + counts.total, before.unique + counts.unique)
    points = []
    moment = start
    while moment <= end:
        key = moment.strftime("%Y-%m-%d" if bucket == "day" else HOUR_FORMAT)
        counts = sums.get(key, Counts(0, 0))
        points.append(Point(moment.strftime("%Y-%m-%dT%H:%M:%SZ"), counts.total, counts.unique))
        moment += step
    return points


def sort_rows(rows: Iterable[PageRow], sort: str, limit: int) -> list[PageRow]:
    """Most viewed first (ties by label), or by label A to Z."""
    if sort == "title":
        ordered = sorted(rows, key=lambda r: (r.label.casefold(), r.label))
    elif sort == "unique":
        ordered = sorted(rows, key=lambda r: (-r.uniqueViews, -r.totalViews, r.label))
    else:
        ordered = sorted(rows, key=lambda r: (-r.totalViews, -r.uniqueViews, r.label))
    return ordered[:limit]
