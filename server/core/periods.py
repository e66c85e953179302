"""Report periods: 24 hours, 7 or 30 days, 12 months, all time, or from one time to
another, each as the buckets of its chart. Pure.

A period is a run of whole buckets (hours, days or months, UTC), the size fitting its
length, and every figure of it is read from those buckets' rollup rows
(`core/report_rows.py`): its totals are the sum of its chart, so they always agree.
A custom period is widened to whole buckets, and its answer says what it covers.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Final

from livecount.core.bases import ZERO, Counts
from livecount.core.report_rows import Bucket, bucket_key, period_host
from livecount.core.reports import HOUR_FORMAT, BadParameter, Point, parse_time

# The presets: (bucket, how many), ending with the bucket of now.
PRESETS: Final[Mapping[str, tuple[Bucket, int]]] = {
    "24h": ("hour", 24),
    "7d": ("day", 7),
    "30d": ("day", 30),
    "12mo": ("month", 12),
}
ALL_TIME: Final = "all"
PERIODS: Final = (*PRESETS, ALL_TIME)
BUCKETS: Final = ("hour", "day", "month")
# The most buckets one answer has; a custom period longer than its bucket allows is
# refused, with the bucket that would take it.
MAX_POINTS: Final[Mapping[str, int]] = {"hour": 31 * 24, "day": 400, "month": 600}
# A custom period's bucket, when none is asked for: hours up to two days, days up to
# three months, months beyond.
HOURS_UP_TO: Final = timedelta(days=2)
DAYS_UP_TO: Final = timedelta(days=92)


@dataclass(frozen=True, slots=True)
class Period:
    """The buckets a report covers, oldest first."""

    name: str  # a preset, "all", or "custom"
    bucket: Bucket
    starts: tuple[datetime, ...]

    @property
    def keys(self) -> tuple[str, ...]:
        """The bucket partitions of the period, oldest first."""
        return tuple(bucket_key(self.bucket, s.strftime(HOUR_FORMAT)) for s in self.starts)

    @property
    def since(self) -> datetime:
        return self.starts[0]

    @property
    def until(self) -> datetime:
        """Where the period ends: the start of the bucket after its last."""
        return _step(self.starts[-1], self.bucket, 1)

    def hosts(self) -> tuple[str, str]:
        """The Referrer sort keys (exclusive, inclusive) of the period's hosts."""
        first, last = self.keys[0], self.keys[-1]
        return period_host(first, ""), period_host(last, "~")

    def describe(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "bucket": self.bucket,
            "since": _iso(self.since),
            "until": _iso(self.until),
        }

    def series(self, values: Mapping[str, Counts]) -> list[Point]:
        """One point per bucket, from `values` by bucket partition; missing ones are 0."""
        return [
            Point(_iso(start), *values.get(key, ZERO))
            for start, key in zip(self.starts, self.keys, strict=True)
        ]


def totals(points: list[Point]) -> Counts:
    return Counts(sum(p.totalViews for p in points), sum(p.uniqueViews for p in points))


def _iso(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def floor(moment: datetime, bucket: Bucket) -> datetime:
    moment = moment.astimezone(UTC).replace(minute=0, second=0, microsecond=0)
    if bucket == "hour":
        return moment
    moment = moment.replace(hour=0)
    return moment if bucket == "day" else moment.replace(day=1)


def _step(moment: datetime, bucket: Bucket, n: int) -> datetime:
    if bucket == "hour":
        return moment + timedelta(hours=n)
    if bucket == "day":
        return moment + timedelta(days=n)
    months = moment.year * 12 + moment.month - 1 + n
    return moment.replace(year=months // 12, month=months % 12 + 1)


def _run(start: datetime, end: datetime, bucket: Bucket) -> tuple[datetime, ...]:
    starts = []
    moment = start
    while moment <= end:
        starts.append(moment)
        moment = _step(moment, bucket, 1)
    return tuple(starts)


def parse_period(text: str | None) -> str | None:
    if text is None or text in PERIODS:
        return text
    raise BadParameter(
        "period",
        f"must be one of {', '.join(PERIODS)}; or give since (and until) for a period of your own",
    )


def parse_bucket(text: str | None) -> Bucket | None:
    if text is None:
        return None
    if text == "hour":
        return "hour"
    if text == "day":
        return "day"
    if text == "month":
        return "month"
    raise BadParameter("bucket", f"must be one of {', '.join(BUCKETS)}")


def resolve(
    query: Mapping[str, str], now: datetime, first_hour: str | None = None, default: str = "24h"
) -> Period:
    """The period a report's parameters ask for: `period` (a preset or `all`), or
    `since` and `until` (ISO 8601, UTC unless they say otherwise; `until` defaults to
    now), with the bucket of `bucket` or one that fits. `first_hour` is the site's
    first hour with views, where "all" starts."""
    name = parse_period(query.get("period"))
    bucket = parse_bucket(query.get("bucket"))
    since, until = query.get("since"), query.get("until")
    if name is not None and (since is not None or until is not None):
        raise BadParameter("period", "give period, or since and until, not both")
    if name is None and since is None and until is None:
        name = default
    if name is not None and name in PRESETS:
        size, n = PRESETS[name]
        if bucket is not None and bucket != size:
            raise BadParameter("bucket", f"the period {name} is shown by {size}")
        end = floor(now, size)
        return Period(name, size, _run(_step(end, size, 1 - n), end, size))
    if name is not None:  # all time
        if bucket not in (None, "month"):
            raise BadParameter("bucket", "all time is shown by month")
        end = floor(now, "month")
        start = floor(_hour(first_hour), "month") if first_hour else end
        return Period(ALL_TIME, "month", _run(min(start, end), end, "month"))
    return _custom(since, until, bucket, now)


def _hour(hour: str) -> datetime:
    return datetime.strptime(hour, HOUR_FORMAT).replace(tzinfo=UTC)


def _custom(since: str | None, until: str | None, bucket: Bucket | None, now: datetime) -> Period:
    last = parse_time(until, "until") if until is not None else now
    if since is None:
        raise BadParameter("since", "a period of your own needs since (and until, or now)")
    first = parse_time(since, "since")
    if first > last:
        raise BadParameter("since", "must not be after until")
    if bucket is None:
        length = last - first
        bucket = "hour" if length <= HOURS_UP_TO else "day" if length <= DAYS_UP_TO else "month"
    starts = _run(floor(first, bucket), floor(last, bucket), bucket)
    if len(starts) > MAX_POINTS[bucket]:
        wider = {"hour": " (or bucket=day)", "day": " (or bucket=month)"}.get(bucket, "")
        raise BadParameter("since", f"at most {MAX_POINTS[bucket]} {bucket}s at once{wider}")
    return Period("custom", bucket, starts)
