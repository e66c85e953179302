"""`livecount report`: the report API, read from a terminal.

It asks a running `livecount serve` over HTTP rather than DynamoDB directly, so it
works the same on the embedded store (whose files only the server may open) and on
AWS, and needs no credentials of its own.
"""

from __future__ import annotations

import argparse
import json
import sys
import urllib.error
import urllib.request
from typing import Any
from urllib.parse import urlencode, urlsplit

from livecount.config import Option, add_options, choice, filled, number
from livecount.core.reports import SORTS
from rich.console import Console
from rich.table import Table

DEFAULT_URL = "http://127.0.0.1:8080"
BUCKETS = ("hour", "day")


class ReportError(Exception):
    pass


def _http_url(value: str) -> str:
    try:
        parts = urlsplit(value)
        bad = parts.scheme not in ("http", "https") or not parts.hostname \
            or " " in value or (parts.port is not None and parts.port == 0)
    except ValueError:  # a port that is not a number or past 65535, a bad [IPv6]
        bad = True
    if bad:
        raise argparse.ArgumentTypeError(f"must be an http(s) URL such as {DEFAULT_URL}, "
                                         f"got {value!r}")
    return value


def _common(limit: str | None) -> list[Option]:
    """Every report's options; `limit` is the server's default, None for no --limit."""
    found = [Option("url", "url", "a running `livecount serve`", _http_url, DEFAULT_URL),
             Option("json", "json", "print the API's JSON, complete", switch=True,
                    default=False, env=False)]
    if limit:
        found.append(Option("limit", "limit", "rows at most", number(int, least=1, most=1000),
                            shown=limit, env=False, metavar="N"))
    return found


_ONE = (Option("article", "article", "one article", filled, shown="the whole site",
               env=False, metavar="ID"),
        Option("page", "page", "one page, such as Home_Page", filled, env=False,
               metavar="NAME"))


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    report = commands.add_parser(
        "report", help="pages, referrers or views over time",
        description="Ask a running livecount serve for its reports, over HTTP.")
    whats = report.add_subparsers(dest="what", required=True, metavar="{pages,referrers,timeline}")

    pages = whats.add_parser("pages", help="every page and article, with its views",
                             description="Every page and article, with total and unique "
                                         "views.")
    add_options(pages, [*_common("100"), Option(
        "sort", "sort", "order of the rows", choice(*SORTS), "total", choices=SORTS,
        env=False)])

    referrers = whats.add_parser("referrers", help="top external referrers",
                                 description="The hosts that sent the most views, for the "
                                             "site or for one article or page.")
    add_options(referrers, _common("10"))
    add_options(referrers.add_mutually_exclusive_group(), _ONE)

    timeline = whats.add_parser("timeline", help="views over time",
                                description="Total and unique views per hour or day, for the "
                                            "site or for one article or page.")
    add_options(timeline, [
        *_common(None),
        Option("since", "since", "ISO 8601 time, UTC unless it says otherwise",
               filled, shown="the 48 hours (or 30 days) up to --until",
               env=False, metavar="TIME"),
        Option("until", "until", "ISO 8601 time, UTC unless it says otherwise", filled,
               shown="now", env=False, metavar="TIME"),
        Option("bucket", "bucket", "one row per hour or per day", choice(*BUCKETS), "hour",
               choices=BUCKETS, env=False)])
    add_options(timeline.add_mutually_exclusive_group(), _ONE)
    timeline.set_defaults(limit=None)  # the timeline is never cut short

    for sub in (pages, referrers, timeline):
        sub.set_defaults(run=run, parser=sub)


def query(ns: argparse.Namespace) -> tuple[str, dict[str, str]]:
    """The API path and parameters for the command line."""
    params: dict[str, str] = {}
    if ns.limit is not None:
        params["limit"] = str(ns.limit)
    if ns.what == "pages":
        return "/api/pages", params | {"sort": ns.sort}
    if ns.article:
        params["articleId"] = ns.article
    elif ns.page:
        params["pageName"] = ns.page
    if ns.what == "referrers":
        return "/api/referrers", params
    params["bucket"] = ns.bucket
    for name in ("since", "until"):
        if getattr(ns, name):
            params[name] = getattr(ns, name)
    return "/api/timeline", params


def fetch(url: str) -> Any:
    try:
        with urllib.request.urlopen(url, timeout=30) as answer:
            return json.load(answer)
    except urllib.error.HTTPError as exc:
        try:
            detail = json.load(exc)
        except ValueError:
            detail = {}
        raise ReportError(f"{detail.get('parameter', '')} {detail.get('detail', exc.reason)}"
                          .strip()) from None
    except (urllib.error.URLError, OSError) as exc:
        raise ReportError(f"cannot reach {url}: {exc}; is `livecount serve` running?") from None


def table(what: str, rows: list[dict[str, Any]]) -> Table:
    if what == "pages":
        out = Table("Page", "Total", "Unique", title="Pages")
        for r in rows:
            label = r.get("articleTitle") or r.get("articleId") or r.get("pageName", "")
            out.add_row(label, f"{r['totalViews']:,}", f"{r['uniqueViews']:,}")
        return out
    if what == "referrers":
        out = Table("Referrer", "Views", "", title="Top external referrers")
        most = max((r["views"] for r in rows), default=1) or 1
        for r in rows:
            out.add_row(r["host"], f"{r['views']:,}", _bar(r["views"], most))
        return out
    out = Table("From (UTC)", "Total", "Unique", "", title="Views over time")
    most = max((r["totalViews"] for r in rows), default=1) or 1
    for r in rows:
        out.add_row(r["t"].replace("T", " ").removesuffix(":00Z"), f"{r['totalViews']:,}",
                    f"{r['uniqueViews']:,}", _bar(r["totalViews"], most))
    return out


def _bar(value: int, most: int, width: int = 30) -> str:
    return "█" * round(width * value / most) if value else ""


def run(ns: argparse.Namespace) -> int:
    path, params = query(ns)
    url = ns.url.rstrip("/") + path + ("?" + urlencode(params) if params else "")
    try:
        rows = fetch(url)
    except ReportError as exc:
        print(f"livecount report: {exc}", file=sys.stderr)
        return 2
    if ns.json:
        print(json.dumps(rows, indent=2, ensure_ascii=False))
    else:
        Console().print(table(ns.what, rows))
    return 0
