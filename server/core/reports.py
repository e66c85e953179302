"""Reports: parameters in, rows and time series out. Pure; the HTTP API and the
`livecount report` command share it.

Time is UTC throughout. Views are stored in hourly buckets keyed `YYYY-MM-DDTHH`,
which sort as strings, so a range of hours is one Query; days are sums of hours.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Final, Literal

import msgspec
from livecount.core.ledger import Counts
from livecount.core.pages import Target

Bucket = Literal["hour", "day"]
SORTS: Final = ("total", "unique", "title")
MAX_POINTS: Final[Mapping[str, int]] = {"hour": 31 * 24, "day": 400}
DEFAULT_SPAN: Final[Mapping[str, timedelta]] = {"hour": timedelta(hours=47),
                                                "day": timedelta(days=29)}
HOUR_FORMAT: Final = "%Y-%m-%dT%H"


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
    """ISO 8601; a time without an offset is UTC, a bare date is its midnight."""
    try:
        moment = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise BadParameter(parameter, f"{text!r} is not an ISO 8601 time, "
                                      "e.g. 2026-11-24T07:00:00Z") from None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def parse_bucket(text: str | None) -> Bucket:
    if text in (None, "hour"):
        return "hour"
    if text == "day":
        return "day"
    raise BadParameter("bucket", "must be hour or day")


def parse_limit(text: str | None, default: int, most: int = 1000) -> int:
    if text is None:
        return default
    try:
        value = int(text)
    except ValueError:
        value = 0
    if not 1 <= value <= most:
        raise BadParameter("limit", f"must be a whole number from 1 to {most}")
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


def time_range(since: str | None, until: str | None, bucket: Bucket,
               now: datetime) -> tuple[datetime, datetime]:
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


def timeline(hours: Mapping[str, Counts], start: datetime, end: datetime,
             bucket: Bucket) -> list[Point]:
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
