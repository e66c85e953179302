"""The report API on a real `livecount serve`: it agrees with what was sent."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from datetime import UTC, datetime
from typing import Any

import pytest
import pytest_asyncio
from websockets.asyncio.client import ClientConnection, connect

from tests.support import Launch, Served, eventually, http_get

SENT = [  # (articleId or None for the home page, title, refreshed, referrer)
    ("intro", "Intro", False, "https://news.example/a"),
    ("intro", "Intro", True, "https://news.example/b"),
    ("intro", "Intro", False, "https://social.example/"),
    ("deep-dive", 'A <deep> "dive"', False, "https://blog.example/other"),  # internal
    (None, "", False, "https://social.example/"),
]


async def get(served: Served, path: str, **headers: str) -> tuple[int, dict[str, str], Any]:
    status, answer_headers, body = await asyncio.to_thread(http_get, served.http + path, headers)
    return status, answer_headers, json.loads(body)


async def reply(ws: ClientConnection) -> dict[str, Any]:
    """The next answer that is not a live push: a watched page's count may come first."""
    while (message := json.loads(await ws.recv()))["message"] == "count":
        pass
    return dict(message)


def utc_hour() -> datetime:
    return datetime.now(UTC).replace(minute=0, second=0, microsecond=0)


@pytest.fixture(scope="module")
def hours() -> list[str]:
    """The UTC hours the fixture's views were sent in, as the API names them: one, or
    two when the sending crossed an hour's end. Filled by `served`."""
    return []


@pytest_asyncio.fixture(scope="module")
async def served(module_launch: Launch, hours: list[str]) -> Served:
    """One server for the module's checks, which only read: the views of SENT, flushed."""
    served = await module_launch("--site-domain", "blog.example")
    first = utc_hour()
    async with connect(served.ws) as ws:
        for article, title, refreshed, referrer in SENT:
            message: dict[str, Any] = {
                "message": "views",
                "refreshed": refreshed,
                "referrer": referrer,
                "currentPage": "/",
            }
            if article:
                message |= {"articleId": article, "articleTitle": title}
            await ws.send(json.dumps(message))
            assert (await reply(ws))["message"] == "views"
    last = utc_hour()
    hours += [f"{h:%Y-%m-%dT%H}:00:00Z" for h in (first, last)[: 1 if first == last else 2]]

    async def flushed() -> int:  # report rows are written by the flush, not the reply
        return sum(e["views"] for e in served.events("flushed"))

    await eventually(flushed, lambda n: n == len(SENT))
    return served


async def test_pages_lists_every_article_and_page(served: Served):
    async def pages() -> Any:
        return (await get(served, "/api/pages"))[2]

    # A post's path is the first one its views came from; a page's is its rule's.
    expected = [
        {
            "articleId": "intro",
            "articleTitle": "Intro",
            "path": "/",
            "totalViews": 3,
            "uniqueViews": 2,
        },
        {
            "articleId": "deep-dive",
            "articleTitle": 'A <deep> "dive"',
            "path": "/",
            "totalViews": 1,
            "uniqueViews": 1,
        },
        {"pageName": "Home_Page", "path": "/", "totalViews": 1, "uniqueViews": 1},
    ]
    # Titles come from the reader table, once the stream has copied them.
    await eventually(pages, lambda rows: rows == expected)
    _, _, by_title = await get(served, "/api/pages?sort=title&limit=2")
    assert [r.get("articleTitle") for r in by_title] == ['A <deep> "dive"', None]


async def test_one_article_with_referrers_and_48_hours(served: Served, hours: list[str]):
    async def intro() -> Any:
        return await get(served, "/api/pages/intro")

    status, headers, page = await eventually(intro, lambda a: a[2].get("articleTitle") == "Intro")
    assert status == 200 and headers["Cache-Control"] == "public, max-age=5"
    assert (page["totalViews"], page["uniqueViews"], page["articleTitle"]) == (3, 2, "Intro")
    assert page["referrers"] == [
        {"host": "news.example", "views": 2},
        {"host": "social.example", "views": 1},
    ]
    assert len(page["timeline"]) == 48
    sent = [(p["totalViews"], p["uniqueViews"]) for p in page["timeline"] if p["t"] in hours]
    assert tuple(map(sum, zip(*sent, strict=True))) == (3, 2)  # in the hours they were sent
    assert sum(p["totalViews"] for p in page["timeline"]) == 3
    status, _, home = await get(served, "/api/pages/Home_Page?kind=page")
    assert status == 200 and home["pageName"] == "Home_Page" and home["totalViews"] == 1


async def test_referrers_per_page_and_site_wide(served: Served):
    async def site() -> Any:  # a row may be in a flush after its view's count
        return (await get(served, "/api/referrers"))[2]

    await eventually(
        site,
        lambda hosts: (
            hosts == [{"host": "news.example", "views": 2}, {"host": "social.example", "views": 2}]
        ),
    )
    _, _, home = await get(served, "/api/referrers?pageName=Home_Page&limit=1")
    assert home == [{"host": "social.example", "views": 1}]
    _, _, none = await get(served, "/api/referrers?articleId=deep-dive")
    assert none == []  # its referrer was the site's own domain


async def test_timeline_hours_and_days(served: Served, hours: list[str]):
    # The hours the views were sent in, not the hour it is now: the two differ when the
    # test runs across an hour's end.
    _, _, points = await get(
        served, f"/api/timeline?articleId=intro&since={hours[0]}&until={hours[-1][:13]}:59:59Z"
    )
    assert [p["t"] for p in points] == hours
    assert (sum(p["totalViews"] for p in points), sum(p["uniqueViews"] for p in points)) == (3, 2)
    if len(hours) == 1:
        assert points == [{"t": hours[0], "totalViews": 3, "uniqueViews": 2}]
    _, _, days = await get(served, "/api/timeline?bucket=day")
    assert len(days) == 30 and sum(d["totalViews"] for d in days) == len(SENT)


@pytest.mark.parametrize(
    ("path", "parameter"),
    [
        ("/api/pages?sort=views", "sort"),
        ("/api/pages?limit=0", "limit"),
        ("/api/timeline?bucket=week", "bucket"),
        ("/api/timeline?since=yesterday", "since"),
        ("/api/timeline?since=2026-01-02&until=2026-01-01", "since"),
        ("/api/referrers?pageName=Nope", "pageName"),
        ("/api/referrers?articleId=a&pageName=Home_Page", "articleId"),
        ("/api/pages/x?kind=thing", "kind"),
    ],
)
async def test_bad_parameters_get_400_naming_the_parameter(served: Served, path, parameter):
    status, _, body = await get(served, path)
    assert status == 400
    assert body["error"] == "invalid_parameter" and body["parameter"] == parameter


async def test_unknown_things_get_404_and_cors_follows_the_allowed_origins(launch: Launch):
    served = await launch("--allowed-origin", "https://blog.example")
    for path in ("/api/nothing", "/api/pages/never-seen"):
        status, _, body = await get(served, path)
        assert status == 404 and body["error"] == "not_found"
    _, headers, _ = await get(served, "/api/pages", Origin="https://blog.example")
    assert headers["Access-Control-Allow-Origin"] == "https://blog.example"
    _, headers, _ = await get(served, "/api/pages", Origin="https://evil.example")
    assert "Access-Control-Allow-Origin" not in headers


async def report(served: Served, *args: str) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "livecount",
        "report",
        *args,
        "--url",
        served.http,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env={**os.environ, "COLUMNS": "120"},
    )
    out, err = await proc.communicate()
    return proc.returncode or 0, out.decode(), err.decode()


async def test_the_report_command_agrees_with_the_api(served: Served):
    async def pages_json() -> Any:
        return json.loads((await report(served, "pages", "--json"))[1])

    async def api_pages() -> Any:
        return (await get(served, "/api/pages"))[2]

    # Once the stream has copied the titles, the command and the API say the same.
    api = await eventually(api_pages, lambda rows: all(r.get("articleTitle", "x") for r in rows))
    assert api and await pages_json() == api
    code, out, _ = await report(served, "referrers", "--article", "intro")
    assert code == 0 and "news.example" in out and "social.example" in out
    code, out, _ = await report(served, "timeline", "--bucket", "day", "--json")
    assert code == 0 and sum(p["totalViews"] for p in json.loads(out)) == len(SENT)
    code, out, _ = await report(served, "pages")
    assert code == 0 and "Home_Page" in out and "Total" in out


async def test_the_report_command_explains_failures(served: Served):
    code, _, err = await report(served, "timeline", "--since", "yesterday")
    assert code == 2 and "since" in err and "ISO 8601" in err
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "livecount",
        "report",
        "pages",
        "--url",
        "http://127.0.0.1:9",
        stderr=asyncio.subprocess.PIPE,
    )
    _, err_bytes = await proc.communicate()
    assert proc.returncode == 2 and b"is `livecount serve` running?" in err_bytes
