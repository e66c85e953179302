"""`livecount report`: the report API, read from a terminal.

It asks a running `livecount serve` over HTTP rather than DynamoDB directly, so it
works the same on the embedded store (whose files only the server may open) and on
AWS, and needs no credentials of its own.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import urllib.error
import urllib.request
from typing import Any
from urllib.parse import urlencode

from rich.console import Console
from rich.table import Table

DEFAULT_URL = "http://127.0.0.1:8080"


class ReportError(Exception):
    pass


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    report = commands.add_parser("report", help="pages, referrers or views over time")
    report.add_argument("what", choices=["pages", "referrers", "timeline"])
    report.add_argument("--url", default=os.environ.get("LIVECOUNT_URL", DEFAULT_URL),
                        help=f"a running livecount serve (default: {DEFAULT_URL}) "
                             "[env LIVECOUNT_URL]")
    which = report.add_mutually_exclusive_group()
    which.add_argument("--article", help="one article (default: the whole site)")
    which.add_argument("--page", help="one page, e.g. Home_Page")
    report.add_argument("--since", help="ISO 8601 time, UTC unless it says otherwise")
    report.add_argument("--until", help="ISO 8601 time (default: now)")
    report.add_argument("--bucket", choices=["hour", "day"], default="hour")
    report.add_argument("--sort", choices=["total", "unique", "title"], default="total")
    report.add_argument("--limit", type=int)
    report.add_argument("--json", action="store_true", help="print the API's JSON")
    report.set_defaults(run=run, parser=report)


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
