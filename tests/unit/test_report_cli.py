"""`livecount report` as a person reads it: its helps, refusals, tables and errors.

The command talks HTTP to a server; here a stub on 127.0.0.1 answers as the report API
does, so what is tested is the whole command from argv to what it prints.
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

import pytest
from livecount import cli, config
from livecount.tools import report
from rich.console import Console

from tests.unit.test_cli import ALL, help_of, refused

REPORTS = sorted(w for w in ALL if w[0] == "report")


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch):
    for name in [n for n in os.environ if n.startswith(config.ENV_PREFIX)]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("COLUMNS", "120")


def flags(words: tuple[str, ...]) -> set[str]:
    return {s for a in ALL[words]._actions for s in a.option_strings if s.startswith("--")}


# -- help -----------------------------------------------------------------------------------
def test_each_report_has_its_own_help_with_choices_and_defaults(capsys):
    texts = {w: " ".join(help_of(w, capsys).split()) for w in REPORTS}
    assert len(set(texts.values())) == len(REPORTS)
    for words, text in texts.items():
        assert f"usage: livecount report {words[1]}" in text
        assert "--url URL a running livecount serve (default: http://127.0.0.1:8080)" in text
    pages = texts[("report", "pages")]
    assert "--sort {total,unique,title} order of the rows: most total views first" in pages
    assert "(default: total)" in pages
    assert (
        "--limit N rows at most, the first ones in --sort order, from 1 to 1000 "
        "(default: 100)" in pages
    )
    assert (
        "--limit N hosts at most, most views first, from 1 to 1000 (default: 10)"
        in texts[("report", "referrers")]
    )
    timeline = texts[("report", "timeline")]
    assert "--bucket {hour,day,month} one row per hour, day or month" in timeline
    assert "(default: what fits the period)" in timeline and "--limit" not in timeline
    for words in [
        ("report", "pages"),
        ("report", "referrers"),
        ("report", "timeline"),
        ("report", "summary"),
    ]:
        assert "--period {24h,7d,30d,12mo,all} the period" in texts[words]
        assert "--since TIME instead of --period" in texts[words]
    assert "--search TEXT" in pages and "--kind {post,page}" in pages and "--cursor" in pages
    for words in [("report", "referrers"), ("report", "timeline"), ("report", "summary")]:
        assert "--article ID one post" in texts[words] and "--page NAME one page" in texts[words]
        assert "never counted is an error (exit 1)" in texts[words]
    # every help says how the ids chain into the next command
    assert all("livecount report referrers --article" in t for t in texts.values())


def test_every_option_has_a_description(capsys):
    for words in REPORTS:
        for action in ALL[words]._actions:
            assert action.help and len(action.help) > 10, (words, action.option_strings)


# -- refusals -------------------------------------------------------------------------------
FOREIGN = sorted(
    {(w, flag) for w in REPORTS for other in REPORTS for flag in flags(other) - flags(w)}
    | {(w, flag) for w in REPORTS for flag in ("--port", "--into-real-site")}
)
VALUES: dict[str, list[str]] = {"--into-real-site": []}


@pytest.mark.parametrize("words, flag", FOREIGN)
def test_an_option_of_another_command_is_refused_in_one_line(words, flag, capsys):
    argv = [*words, flag, *VALUES.get(flag, ["x"])]
    message = refused(argv, capsys)
    assert message.startswith(f"livecount: unrecognized arguments: {flag}"), message


def test_the_refusals_cover_each_report(capsys):
    """The table above is not empty by accident: each report lacks some other's flag."""
    assert {w for w, _ in FOREIGN} == set(REPORTS)
    assert (("report", "pages"), "--article") in FOREIGN
    assert (("report", "referrers"), "--bucket") in FOREIGN
    assert (("report", "timeline"), "--sort") in FOREIGN
    assert (("report", "timeline"), "--limit") in FOREIGN


# -- a stub of the report API ---------------------------------------------------------------
class Stub:
    """Answers `/api/...` from `routes`, as the server does: JSON, 404 for the unknown."""

    def __init__(self) -> None:
        self.routes: dict[str, Any] = {}
        self.headers: dict[str, dict[str, str]] = {}  # path → headers its answer has
        self.asked: list[tuple[str, dict[str, str]]] = []
        stub = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                url = urlsplit(self.path)
                path = unquote(url.path)
                stub.asked.append((path, dict(parse_qsl(url.query))))
                found = path in stub.routes
                body = json.dumps(
                    stub.routes[path]
                    if found
                    else {"error": "not_found", "detail": "never counted"}
                ).encode()
                self.send_response(200 if found else 404)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                for name, value in stub.headers.get(path, {}).items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"


@pytest.fixture
def api() -> Iterator[Stub]:
    stub = Stub()
    thread = threading.Thread(target=stub.server.serve_forever, daemon=True)
    thread.start()
    yield stub
    stub.server.shutdown()
    stub.server.server_close()
    thread.join()


def command(api: Stub, capsys, *argv: str) -> tuple[int, str, str]:
    code = cli.main(["report", *argv, "--url", api.url])
    out, err = capsys.readouterr()
    return code, out, err


def hours(counts: dict[int, int], n: int = 48) -> list[dict[str, Any]]:
    return [
        {
            "t": f"2026-01-{1 + h // 24:02d}T{h % 24:02d}:00:00Z",
            "totalViews": counts.get(h, 0),
            "uniqueViews": min(counts.get(h, 0), 1),
        }
        for h in range(n)
    ]


PAGES = [
    {
        "totalViews": 1200,
        "uniqueViews": 900,
        "articleId": "hello-world",
        "articleTitle": "Hello [bold]world[/bold]",
    },
    {"totalViews": 35, "uniqueViews": 20, "pageName": "About_Page"},
    {"totalViews": 7, "uniqueViews": 7, "articleId": "draft"},
]


# -- pages ----------------------------------------------------------------------------------
def test_pages_show_ids_kinds_readable_names_and_a_total(api, capsys):
    api.routes["/api/pages"] = PAGES
    code, out, err = command(api, capsys, "pages")
    assert code == 0 and err == ""
    lines = out.splitlines()
    post = next(line for line in lines if "hello-world" in line)
    page = next(line for line in lines if "About_Page" in line)
    assert "post" in post and "Hello [bold]world[/bold]" in post  # a title is not markup
    assert "page" in page and "About Page" in page
    total = next(line for line in lines if "Total" in line and "3 rows" in line)
    assert "1,242" in total and "927" in total
    # numbers right-aligned: the column's digits end where its header ends
    header = next(line for line in lines if "Unique" in line)
    assert post.index("900") + 3 == header.index("Unique") + len("Unique")
    assert page.index("20") + 2 == header.index("Unique") + len("Unique")
    assert api.asked == [("/api/pages", {"sort": "total"})]


def test_pages_json_is_the_api_answer_whole(api, capsys):
    api.routes["/api/pages"] = PAGES
    code, out, _ = command(api, capsys, "pages", "--json", "--sort", "title", "--limit", "3")
    assert code == 0 and json.loads(out) == PAGES
    assert api.asked == [("/api/pages", {"limit": "3", "sort": "title"})]


def test_a_cut_list_says_how_to_see_more(api, capsys):
    api.routes["/api/pages"] = PAGES[:2]
    api.headers["/api/pages"] = {
        "X-Total-Count": "5000",
        "Link": '</api/pages?limit=2&cursor=WzEsMl0>; rel="next"',
    }
    _, out, _ = command(
        api,
        capsys,
        "pages",
        "--limit",
        "2",
        "--period",
        "30d",
        "--search",
        "hello",
        "--kind",
        "post",
    )
    words = " ".join(out.split())
    assert "2 rows of 5,000" in words and "More: --cursor WzEsMl0" in words
    assert "Pages, the last 30 days" in words
    assert api.asked[-1] == (
        "/api/pages",
        {"limit": "2", "period": "30d", "sort": "total", "q": "hello", "kind": "post"},
    )
    command(api, capsys, "pages", "--cursor", "WzEsMl0")
    assert api.asked[-1] == ("/api/pages", {"sort": "total", "cursor": "WzEsMl0"})


def test_a_summary_is_its_periods_totals_and_chart(api, capsys):
    api.routes["/api/summary"] = {
        "period": {
            "name": "12mo",
            "bucket": "month",
            "since": "2025-12-01T00:00:00Z",
            "until": "2026-12-01T00:00:00Z",
        },
        "totalViews": 7,
        "uniqueViews": 5,
        "pages": 2,
        "posts": 1,
        "live": {"totalViews": 9, "uniqueViews": 6, "pages": 3, "posts": 2},
        "timeline": [
            {"t": "2025-12-01T00:00:00Z", "totalViews": 3, "uniqueViews": 2},
            {"t": "2026-01-01T00:00:00Z", "totalViews": 4, "uniqueViews": 3},
        ],
    }
    code, out, _ = command(api, capsys, "summary", "--period", "12mo")
    words = " ".join(out.replace("│", " ").split())
    assert code == 0 and "The site, the last 12 months: 7 views (5 unique)" in words
    assert "2025-12 3 2" in words and "2026-01 4 3" in words


# -- never counted --------------------------------------------------------------------------
@pytest.mark.parametrize("what", ["referrers", "timeline"])
def test_an_article_never_counted_says_so(api, what, capsys):
    api.routes["/api/referrers"] = []
    api.routes["/api/timeline"] = hours({})
    code, out, err = command(api, capsys, what, "--article", "helo-world")
    assert code == 1 and out == ""
    assert err == (
        "livecount report: post 'helo-world' was never counted (--article takes an "
        "id from the Id column of `livecount report pages`)\n"
    )
    assert api.asked[-1] == ("/api/pages/helo-world", {"kind": "post"})


def test_a_page_never_counted_says_so_too(api, capsys):
    api.routes["/api/timeline"] = hours({})
    code, _, err = command(api, capsys, "timeline", "--page", "About_Page", "--json")
    assert code == 1 and "page 'About_Page' was never counted (--page takes" in err


def test_an_article_counted_before_the_range_is_an_empty_range_not_an_error(api, capsys):
    api.routes["/api/timeline"] = hours({})
    api.routes["/api/referrers"] = []
    api.routes["/api/pages/a b/c"] = {"totalViews": 3, "uniqueViews": 3, "articleId": "a b/c"}
    code, out, err = command(api, capsys, "timeline", "--article", "a b/c")
    assert code == 0 and err == "" and "48 empty hours" in out
    code, out, _ = command(api, capsys, "referrers", "--article", "a b/c")
    assert code == 0 and "Top external referrers" in out
    assert ("/api/pages/a b/c", {"kind": "post"}) in api.asked  # the id travels quoted


def test_a_report_with_rows_does_not_ask_again(api, capsys):
    api.routes["/api/referrers"] = [{"host": "news.example", "views": 4}]
    code, out, _ = command(api, capsys, "referrers", "--article", "hello-world")
    assert code == 0 and "news.example" in out
    assert [path for path, _ in api.asked] == ["/api/referrers"]


def test_a_server_error_is_still_exit_2(api, capsys):
    code, _, err = command(api, capsys, "timeline")  # no route: the stub's 404
    assert code == 2 and err == "livecount report: never counted\n"


# -- timeline -------------------------------------------------------------------------------
def test_the_hourly_timeline_folds_empty_hours_and_json_keeps_every_bucket(api, capsys):
    api.routes["/api/timeline"] = hours({5: 3, 6: 2, 8: 1, 47: 9})
    code, out, _ = command(api, capsys, "timeline")
    assert code == 0
    rows = [line for line in out.splitlines() if line.startswith("│")]
    texts = [" ".join(r.strip("│ ").split()) for r in rows]
    assert texts[0].startswith("… 5 empty hours …")
    assert texts[1].startswith("2026-01-01 05:00 │ 3 │ 1")
    assert texts[2].startswith("2026-01-01 06:00 │ 2 │ 1")
    assert texts[3].startswith("2026-01-01 07:00 │ 0 │ 0")  # one empty hour is not folded
    assert texts[4].startswith("2026-01-01 08:00 │ 1 │ 1")
    assert texts[5].startswith("… 38 empty hours …")
    assert texts[6].startswith("2026-01-02 23:00 │ 9 │ 1")
    assert texts[7].startswith("Total │ 15 │ 4")
    assert len(rows) == 8  # 48 hours in 8 lines
    code, out, _ = command(api, capsys, "timeline", "--json")
    assert code == 0 and json.loads(out) == hours({5: 3, 6: 2, 8: 1, 47: 9})


def test_days_are_dates_and_fold_as_days(api, capsys):
    api.routes["/api/timeline"] = [
        {
            "t": f"2026-01-{d:02d}T00:00:00Z",
            "totalViews": 4 if d == 30 else 0,
            "uniqueViews": 2 if d == 30 else 0,
        }
        for d in range(1, 31)
    ]
    code, out, _ = command(api, capsys, "timeline", "--bucket", "day")
    assert code == 0 and "… 29 empty days …" in out and "2026-01-30 " in out
    assert "00:00" not in out
    assert api.asked[-1] == ("/api/timeline", {"bucket": "day"})


def test_all_time_of_one_month_is_shown_by_month(api, capsys):
    """Found by a hostile trial: a site viewed in one month only, asked for all time,
    read "Views per hour" with its month as "2026-12-01 00:00"."""
    api.routes["/api/timeline"] = [
        {"t": "2026-12-01T00:00:00Z", "totalViews": 10, "uniqueViews": 9}
    ]
    code, out, _ = command(api, capsys, "timeline", "--period", "all")
    assert code == 0 and "Views per month (UTC)" in out and "2026-12 " in out
    assert "00:00" not in out


def test_fold_keeps_every_bucket_accounted_for():
    points = hours({0: 1, 3: 1, 4: 0, 10: 2}, n=12)
    folded = report.fold(points, "hour")
    assert [str(p) if isinstance(p, report.Fold) else p["t"][11:13] for p in folded] == [
        "00",
        "… 2 empty hours …",
        "03",
        "… 6 empty hours …",
        "10",
        "11",
    ]
    assert sum(p.count if isinstance(p, report.Fold) else 1 for p in folded) == len(points)
    assert report.fold([], "hour") == []
    assert [str(f) for f in report.fold(hours({}, n=1), "day", at=1)] == ["… 1 empty day …"]


def test_referrers_table_bars_and_numbers(capsys):
    console = Console(record=True, width=100)
    console.print(
        report.referrers_table(
            [{"host": "a.example", "views": 1000}, {"host": "b.example", "views": 1}]
        )
    )
    text = console.export_text()
    assert "1,000" in text and "█" * 30 in text
    assert next(line for line in text.splitlines() if "b.example" in line).count("█") == 1
