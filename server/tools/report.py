"""`livecount report`: the report API, read from a terminal.

It asks a running `livecount serve` over HTTP rather than DynamoDB directly, so it
works the same on the embedded store (whose files only the server may open) and on
AWS, and needs no AWS credentials: only the server's admin token, which it reads
from `LIVECOUNT_TOKEN` or from the server's token file. The tables are for people (ids to chain
into the next command, empty hours folded); `--json` is the API's answer, untouched.
"""

from __future__ import annotations

import argparse
import json
import sys
import urllib.error
import urllib.request
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Final
from urllib.parse import parse_qsl, quote, urlencode, urlsplit

from livecount.config import (
    TOKEN_FILE,
    Option,
    add_options,
    choice,
    directory,
    filled,
    number,
    path,
)
from livecount.core.periods import BUCKETS, PERIODS, PRESETS
from livecount.core.reports import SORTS
from livecount.node.auth import TOKEN_ENV, client_token
from rich.console import Console
from rich.table import Table
from rich.text import Text

DEFAULT_URL: Final = "http://127.0.0.1:8080"
FOLD_AT: Final = 2  # a run of this many empty buckets or more is one line
NEVER_COUNTED: Final = 1  # exit code: the id asked about has no views at all
LIMITS: Final = {"pages": 100, "referrers": 10}  # the API's defaults, when --limit is not given


class ReportError(Exception):
    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


def _http_url(value: str) -> str:
    try:
        parts = urlsplit(value)
        bad = (
            parts.scheme not in ("http", "https")
            or not parts.hostname
            or " " in value
            or (parts.port is not None and parts.port == 0)
        )
    except ValueError:  # a port that is not a number or past 65535, a bad [IPv6]
        bad = True
    if bad:
        raise argparse.ArgumentTypeError(
            f"must be an http(s) URL such as {DEFAULT_URL}, got {value!r}"
        )
    return value


def _common(limit: Option | None) -> list[Option]:
    found = [
        Option("url", "url", "a running `livecount serve`", _http_url, DEFAULT_URL),
        Option(
            "json",
            "json",
            "print the API's JSON, complete and unformatted",
            switch=True,
            default=False,
            env=False,
        ),
        # No variables: serve's (LIVECOUNT_DATA_DIR …) are not this command's business.
        Option(
            "data-dir",
            "data_dir",
            f"the server's data dir, whose `{TOKEN_FILE}` is sent unless `{TOKEN_ENV}` is set",
            directory,
            Path("data"),
            env=False,
        ),
        Option(
            "admin-token-file",
            "admin_token_file",
            "the server's token file, if not in the data dir",
            path,
            None,
            shown=f"`DATA_DIR/{TOKEN_FILE}`",
            env=False,
        ),
    ]
    return [*found, limit] if limit else found


def _limit(what: str, report: str) -> Option:
    return Option(
        "limit",
        "limit",
        f"{what}, from 1 to 1000",
        number(int, least=1, most=1000),
        shown=str(LIMITS[report]),
        env=False,
        metavar="N",
    )


_ONE = (
    Option(
        "article",
        "article",
        "one post: its id, as the Id column of `report pages` shows it for a post",
        filled,
        shown="the whole site",
        env=False,
        metavar="ID",
    ),
    Option(
        "page",
        "page",
        "one page: its name, as the Id column of `report pages` "
        "shows it for a page, such as Home_Page",
        filled,
        env=False,
        metavar="NAME",
    ),
)

KINDS: Final = ("post", "page")


def _period(default: str) -> list[Option]:
    """A period: a preset, all time, or from --since to --until."""
    return [
        Option(
            "period",
            "period",
            "the period: the last 24 hours, 7 or 30 days, 12 months, or all time",
            choice(*PERIODS),
            None,
            choices=PERIODS,
            shown=default,
            env=False,
        ),
        Option(
            "since",
            "since",
            "instead of --period, from this time: ISO 8601, UTC "
            "unless it says otherwise, such as 2026-11-24 or "
            "2026-11-24T07:00Z",
            filled,
            env=False,
            metavar="TIME",
        ),
        Option(
            "until",
            "until",
            "with --since, up to this time",
            filled,
            shown="now",
            env=False,
            metavar="TIME",
        ),
    ]


_CHAIN = (
    "The Id column is what --article (a post) or --page (a page) takes:\n"
    "  livecount report referrers --article hello-world\n"
    "  livecount report timeline --page About_Page --bucket day"
)
_RAW = argparse.RawDescriptionHelpFormatter


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    report = commands.add_parser(
        "report",
        help="pages, referrers or views over time",
        description="Ask a running livecount serve for its reports, over HTTP.",
        epilog="Each report has its own help: livecount report pages --help, …",
    )
    whats = report.add_subparsers(
        dest="what", required=True, metavar="{pages,summary,referrers,timeline}"
    )

    pages = whats.add_parser(
        "pages",
        help="every page and post, with its views",
        formatter_class=_RAW,
        description="Every post and page counted, with its id, kind, title, where it is "
        "(a link,\nwhere the terminal shows links), total and unique views: "
        "all time by\ndefault, or in a period. A page of rows at a time: "
        "--cursor continues.",
        epilog=_CHAIN,
    )
    add_options(
        pages,
        [
            *_common(_limit("rows at most, the first ones in --sort order", "pages")),
            Option(
                "sort",
                "sort",
                "order of the rows: most total views first, "
                "most unique views first, or by title A to Z",
                choice(*SORTS),
                "total",
                choices=SORTS,
                env=False,
            ),
            Option(
                "search",
                "search",
                "only the posts and pages whose id or title holds this, in any case",
                filled,
                env=False,
                metavar="TEXT",
            ),
            Option(
                "kind",
                "kind",
                "only posts, or only pages",
                choice(*KINDS),
                choices=KINDS,
                env=False,
            ),
            Option(
                "cursor",
                "cursor",
                "the rows after the last ones shown, as the table's caption says",
                filled,
                env=False,
                metavar="CURSOR",
            ),
            *_period("all time, live counts"),
        ],
    )

    referrers = whats.add_parser(
        "referrers",
        help="top external referrers",
        formatter_class=_RAW,
        description="The external hosts that sent the most views, for the whole site or "
        "for one post\nor page. An id that was never counted is an error "
        f"(exit {NEVER_COUNTED}).",
        epilog=_CHAIN,
    )
    add_options(
        referrers,
        [*_common(_limit("hosts at most, most views first", "referrers")), *_period("all time")],
    )
    add_options(referrers.add_mutually_exclusive_group(), _ONE)

    timeline = whats.add_parser(
        "timeline",
        help="views over time",
        formatter_class=_RAW,
        description="Total and unique views per hour or per day (UTC), for the whole site "
        "or for one\npost or page. Runs of empty buckets are folded into one "
        "line; --json lists\nevery bucket. An id that was never counted is an "
        f"error (exit {NEVER_COUNTED}).",
        epilog=_CHAIN,
    )
    add_options(
        timeline,
        [
            *_common(None),
            *_period("the last 48 hours (by day: 30 days; by month: 12)"),
            Option(
                "bucket",
                "bucket",
                "one row per hour, day or month; at most 744 hours, 400 days or 600 months at once",
                choice(*BUCKETS),
                None,
                choices=BUCKETS,
                shown="what fits the period",
                env=False,
            ),
        ],
    )
    add_options(timeline.add_mutually_exclusive_group(), _ONE)
    timeline.set_defaults(limit=None)  # the timeline is never cut short

    summary = whats.add_parser(
        "summary",
        help="a period's totals and chart",
        formatter_class=_RAW,
        description="Total and unique views in a period, for the whole site or one post "
        "or page, its\nchart (by hour, day or month, as fits the period) and "
        "the live all-time counts\nbeside them. The period's totals are the "
        "sum of its chart. An id that was never\ncounted is an error "
        f"(exit {NEVER_COUNTED}).",
        epilog=_CHAIN,
    )
    add_options(summary, [*_common(None), *_period("the last 24 hours")])
    add_options(summary.add_mutually_exclusive_group(), _ONE)
    summary.set_defaults(limit=None)

    for sub in (pages, referrers, timeline, summary):
        sub.set_defaults(run=run, parser=sub)


def query(ns: argparse.Namespace) -> tuple[str, dict[str, str]]:
    """The API path and parameters for the command line."""
    params: dict[str, str] = {}
    if ns.limit is not None:
        params["limit"] = str(ns.limit)
    for name in ("period", "since", "until", "bucket"):
        if getattr(ns, name, None):
            params[name] = getattr(ns, name)
    if ns.what == "pages":
        extra = {"q": ns.search, "kind": ns.kind, "cursor": ns.cursor}
        return "/api/pages", params | {"sort": ns.sort} | {k: v for k, v in extra.items() if v}
    if ns.article:
        params["articleId"] = ns.article
    elif ns.page:
        params["pageName"] = ns.page
    return f"/api/{ns.what}", params


def token(ns: argparse.Namespace) -> str | None:
    """The admin token to send: `LIVECOUNT_TOKEN`, else the server's token file's."""
    return client_token(ns.admin_token_file or ns.data_dir / TOKEN_FILE)


def fetch(url: str, token: str | None = None) -> Any:
    return answered(url, token)[0]


def answered(url: str, token: str | None = None) -> tuple[Any, dict[str, str]]:
    """The API's JSON answer and its headers (a page's next cursor is in `Link`)."""
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    try:
        with urllib.request.urlopen(
            urllib.request.Request(url, headers=headers), timeout=30
        ) as answer:
            return json.load(answer), dict(answer.headers)
    except urllib.error.HTTPError as exc:
        try:
            detail = json.load(exc)
        except ValueError:
            detail = {}
        if exc.code == 401:
            why = "the token sent is wrong" if token else "no token was found"
            raise ReportError(
                f"{url.split('?')[0]} is private and {why}: set {TOKEN_ENV}, "
                "or --data-dir or --admin-token-file as the server's",
                401,
            ) from None
        raise ReportError(
            f"{detail.get('parameter', '')} {detail.get('detail', exc.reason)}".strip(), exc.code
        ) from None
    except (urllib.error.URLError, OSError) as exc:
        raise ReportError(f"cannot reach {url}: {exc}; is `livecount serve` running?") from None


def never_counted(base: str, ns: argparse.Namespace, token: str | None = None) -> str | None:
    """The message when `--article`/`--page` names something with no views at all.

    Asked only when a report came back empty: the page API answers 404 for an id the
    store never counted, which an empty range alone cannot tell."""
    if ns.what == "pages" or not (ns.article or ns.page):
        return None
    kind, id_ = ("post", ns.article) if ns.article else ("page", ns.page)
    try:
        fetch(f"{base}/api/pages/{quote(id_, safe='')}?kind={kind}", token)
    except ReportError as exc:
        if exc.status != 404:
            raise
        flag = "--article" if kind == "post" else "--page"
        return (
            f"{kind} {id_!r} was never counted ({flag} takes an id from the Id "
            "column of `livecount report pages`)"
        )
    return None


def _empty(what: str, rows: Any) -> bool:
    if what == "summary":
        return not rows["totalViews"] and not rows.get("live", {}).get("totalViews")
    if what == "timeline":
        return not any(r["totalViews"] for r in rows)
    return not rows


# -- tables ---------------------------------------------------------------------------------
def readable(page_name: str) -> str:
    """A page's name as the dashboard shows it: `About_Page` is "About Page"."""
    return page_name.replace("_", " ")


def _number(n: int) -> str:
    return f"{n:,}"


def pages_table(
    rows: Sequence[dict[str, Any]],
    headers: Mapping[str, str] | None = None,
    period: str = "all time",
) -> Table:
    """The rows, each title a link to its page where the server knows its URL; the
    caption says how many match and how to see the next ones."""
    headers = headers or {}
    caption = ["Id: what --article (a post) or --page (a page) takes"]
    if after := next_cursor(headers):
        caption.append(f"More: --cursor {after}")
    out = Table(
        title=f"Pages, {period}",
        show_footer=True,
        title_justify="left",
        caption="\n".join(caption),
        caption_justify="left",
    )
    out.add_column("Kind", footer="Total")
    out.add_column("Id", footer=_shown(len(rows), headers.get("X-Total-Count")), overflow="fold")
    out.add_column("Title", overflow="fold")
    out.add_column("Path", overflow="fold")
    out.add_column("Total", justify="right", footer=_number(sum(r["totalViews"] for r in rows)))
    out.add_column("Unique", justify="right", footer=_number(sum(r["uniqueViews"] for r in rows)))
    for r in rows:
        if r.get("pageName") is not None:
            kind, id_, title = "page", r["pageName"], readable(r["pageName"])
        else:
            kind, id_, title = "post", r.get("articleId", ""), r.get("articleTitle") or ""
        # Text, not str: a title is anyone's text, and rich would read `[…]` as markup. A
        # link only to the URL the server made (its site origin and the page's path).
        link = r.get("url", "") if str(r.get("url", "")).startswith(("http://", "https://")) else ""
        out.add_row(
            kind,
            Text(id_),
            Text(title, style=f"link {link}" if link else ""),
            Text(r.get("path", ""), style=f"link {link}" if link else ""),
            _number(r["totalViews"]),
            _number(r["uniqueViews"]),
        )
    return out


def next_cursor(headers: Mapping[str, str]) -> str | None:
    """The cursor of the next page, from the answer's `Link: <…>; rel="next"`."""
    link = headers.get("Link", "")
    if 'rel="next"' not in link:
        return None
    return dict(parse_qsl(urlsplit(link.split(">")[0].lstrip("<")).query)).get("cursor")


def _shown(n: int, matched: str | None) -> str:
    rows = f"{n:,} row{'s' if n != 1 else ''}"
    return f"{rows} of {int(matched):,}" if matched and int(matched) > n else rows


def summary_table(answer: dict[str, Any]) -> Table:
    """A period's totals, and its chart."""
    period, live = answer["period"], answer.get("live", {})
    out = timeline_table(answer["timeline"], period["bucket"])
    out.title = (
        f"{_label(answer)}, {_period_words(period)}: {_number(answer['totalViews'])} "
        f"views ({_number(answer['uniqueViews'])} unique); all time, live: "
        f"{_number(live.get('totalViews', 0))}"
    )
    return out


def _label(answer: dict[str, Any]) -> str:
    if answer.get("articleId") is not None:
        return str(answer.get("articleTitle") or answer["articleId"])
    return readable(answer["pageName"]) if answer.get("pageName") else "The site"


def _period_words(period: dict[str, Any]) -> str:
    named = {
        "24h": "the last 24 hours",
        "7d": "the last 7 days",
        "30d": "the last 30 days",
        "12mo": "the last 12 months",
        "all": "all time",
    }
    return named.get(period["name"]) or f"{period['since']} to {period['until']} (UTC)"


def _bucket(points: Sequence[dict[str, Any]], period: str | None) -> str:
    """The bucket of a chart: its period's, else by how far apart its first two points
    are (a period of one's own with one point is one hour: a day or more has two)."""
    if period is not None:
        return PRESETS[period][0] if period in PRESETS else "month"  # all time: months
    if len(points) < 2:
        return "hour"
    days = (datetime.fromisoformat(points[1]["t"]) - datetime.fromisoformat(points[0]["t"])).days
    return "hour" if days == 0 else "day" if days == 1 else "month"


def referrers_table(rows: Sequence[dict[str, Any]]) -> Table:
    out = Table(title="Top external referrers", title_justify="left")
    out.add_column("Referrer", overflow="fold")
    out.add_column("Views", justify="right")
    out.add_column("")
    most = max((r["views"] for r in rows), default=1) or 1
    for r in rows:
        out.add_row(Text(r["host"]), _number(r["views"]), _bar(r["views"], most))
    return out


@dataclass(frozen=True)
class Fold:
    """A run of empty buckets, shown as one line."""

    count: int
    bucket: str

    def __str__(self) -> str:
        return f"… {self.count:,} empty {self.bucket}{'s' if self.count != 1 else ''} …"


def fold(
    points: Iterable[dict[str, Any]], bucket: str, at: int = FOLD_AT
) -> list[dict[str, Any] | Fold]:
    """The points with every run of at least `at` empty buckets replaced by one `Fold`."""
    out: list[dict[str, Any] | Fold] = []
    run: list[dict[str, Any]] = []
    for p in [*points, None]:
        if p is not None and not p["totalViews"] and not p["uniqueViews"]:
            run.append(p)
            continue
        out.extend([Fold(len(run), bucket)] if len(run) >= at else run)
        run = []
        if p is not None:
            out.append(p)
    return out


def timeline_table(points: Sequence[dict[str, Any]], bucket: str) -> Table:
    out = Table(title=f"Views per {bucket} (UTC)", title_justify="left", show_footer=True)
    out.add_column("From", footer="Total")
    out.add_column("Total", justify="right", footer=_number(sum(p["totalViews"] for p in points)))
    out.add_column("Unique", justify="right", footer=_number(sum(p["uniqueViews"] for p in points)))
    out.add_column("")
    most = max((p["totalViews"] for p in points), default=1) or 1
    for p in fold(points, bucket):
        if isinstance(p, Fold):
            out.add_row(Text(str(p), style="dim"), "", "", "")
            continue
        when = p["t"].replace("T", " ").removesuffix(":00Z")
        if bucket in ("day", "month"):
            when = when.removesuffix(" 00:00")
        if bucket == "month":
            when = when[:7]
        out.add_row(
            when, _number(p["totalViews"]), _number(p["uniqueViews"]), _bar(p["totalViews"], most)
        )
    return out


def table(ns: argparse.Namespace, rows: Any, headers: Mapping[str, str]) -> Table:
    if ns.what == "pages":
        words = (
            f"{ns.since} to {ns.until or 'now'}"
            if ns.since
            else _period_words({"name": ns.period})
            if ns.period
            else "all time, live counts"
        )
        return pages_table(rows, headers, words)
    if ns.what == "referrers":
        return referrers_table(rows)
    if ns.what == "summary":
        return summary_table(rows)
    return timeline_table(rows, ns.bucket or _bucket(rows, ns.period))


def _bar(value: int, most: int, width: int = 30) -> str:
    return "█" * max(1, round(width * value / most)) if value else ""


def run(ns: argparse.Namespace) -> int:
    path, params = query(ns)
    base = ns.url.rstrip("/")
    url = base + path + ("?" + urlencode(params) if params else "")
    sent = token(ns)
    try:
        rows, headers = answered(url, sent)
        missing = never_counted(base, ns, sent) if _empty(ns.what, rows) else None
    except ReportError as exc:
        print(f"livecount report: {exc}", file=sys.stderr)
        return 2
    if missing:
        print(f"livecount report: {missing}", file=sys.stderr)
        return NEVER_COUNTED
    if ns.json:
        print(json.dumps(rows, indent=2, ensure_ascii=False))
    else:
        Console().print(table(ns, rows, headers))
    return 0
