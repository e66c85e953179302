"""The tag on three real sites in Chromium, each served from an origin of its own as a
blog and its livecount server are: a plain multi-page HTML site (tests/plain-site), a
Hugo site with the tag in a partial (tests/hugo-site, built by Hugo) and a single-page
app (tests/spa-site: Vite, React 19 and React Router, built by Vite).

Each is the same small blog: a home page that lists four posts with their counts, the
posts at /blog/<id>/ (posts by `--path-pattern /blog/{id}/`: the sites name no ids),
an about page that no rule names (the page /about), and on every page this page's own
counts (`data-livecount` with no id). Each site has one livecount server and one
origin for the module; each test reads posts of its own, so they share both.
"""

from __future__ import annotations

import asyncio
import json
import re
import subprocess
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import pytest
import pytest_asyncio
from playwright.async_api import Locator, Page, expect
from websockets.asyncio.client import connect

from tests.browser.conftest import OpenTab
from tests.browser.sites import StaticSite
from tests.conftest import launcher
from tests.support import ROOT, Served, eventually, http_get

TIMEOUT = 20_000  # ms, for expect(): a deadline, not a speed claim
# name: (its files, the `make` target that builds them, a single-page app?, home title)
SITES = {
    "plain": ("tests/plain-site", None, False, "A plain blog"),
    "hugo": ("tests/hugo-site/public", "hugo-site", False, "A Hugo blog"),
    "spa": ("tests/spa-site/dist", "spa-site", True, "A single-page blog"),
}
POSTS = {
    "first-post": "The first post",
    "second-post": "The second post",
    "third-post": "The third post",
    "fourth-post": "The fourth post",
}


@dataclass
class Blog:
    served: Served
    site: StaticSite
    elsewhere: StaticSite  # the same site on an origin livecount does not allow
    home_title: str

    def url(self, path: str) -> str:
        return self.site.origin + path

    async def pages(self) -> list[dict[str, Any]]:
        """/api/pages, as the dashboard reads it (the report rows, written by flushes)."""
        status, _, body = await asyncio.to_thread(http_get, self.served.http + "/api/pages")
        assert status == 200, body
        rows: list[dict[str, Any]] = json.loads(body)
        return rows

    async def live(self, post: str) -> dict[str, Any]:
        """A post's counts as the server holds them now (a subscription's first answer)."""
        async with connect(self.served.ws) as ws:
            await ws.send(json.dumps({"message": "subscribe", "articleIds": [post]}))
            answer: dict[str, Any] = json.loads(await ws.recv())
            return answer


@pytest_asyncio.fixture(scope="module", params=list(SITES))
async def blog(
    request: pytest.FixtureRequest,
    dynamodb_local_url: str,
    tmp_path_factory: pytest.TempPathFactory,
) -> AsyncIterator[Blog]:
    files, target, spa, home_title = SITES[request.param]
    if target is not None:
        await asyncio.to_thread(subprocess.run, ["make", "-s", target], cwd=ROOT, check=True)
    with StaticSite(ROOT / files, spa) as site, StaticSite(ROOT / files, spa) as elsewhere:
        async with launcher(
            dynamodb_local_url, f"t{uuid.uuid4().hex[:10]}_", tmp_path_factory.mktemp("node")
        ) as launch:
            served = await launch("--allowed-origin", site.origin, "--path-pattern", "/blog/{id}/")
            site.livecount = elsewhere.livecount = served.http
            yield Blog(served, site, elsewhere, home_title)


def this_page(page: Page, show: str = "views") -> Locator:
    """The page's own counter (`views`, `unique` or `now`)."""
    return page.locator(f"#{show}")


def listed(page: Page, post: str) -> Locator:
    """A post's count in the home page's list."""
    return page.locator(f"li[data-post='{post}'] .total")


async def test_a_fresh_open_counts_once_and_a_reload_counts_total_only(
    blog: Blog, open_tab: OpenTab
) -> None:
    tab = await open_tab(blog.url("/blog/first-post/"))
    await expect(this_page(tab.page)).to_have_text("1", timeout=TIMEOUT)
    await expect(this_page(tab.page, "unique")).to_have_text("1", timeout=TIMEOUT)
    await tab.page.reload()
    await expect(this_page(tab.page)).to_have_text("2", timeout=TIMEOUT)
    await expect(this_page(tab.page, "unique")).to_have_text("1", timeout=TIMEOUT)
    views = [
        (v["currentPage"], v["refreshed"], v.get("articleId"), v.get("articleTitle"))
        for v in await tab.sent_views(2)
    ]
    assert views == [
        ("/blog/first-post/", False, None, "The first post"),
        ("/blog/first-post/", True, None, "The first post"),
    ]


async def test_a_navigation_counts_the_new_page_once_with_its_own_title(
    blog: Blog, open_tab: OpenTab
) -> None:
    tab = await open_tab(blog.url("/"))
    await expect(listed(tab.page, "second-post")).to_have_text("0", timeout=TIMEOUT)
    await tab.page.click("#nav-second-post")
    await expect(tab.page).to_have_title("The second post", timeout=TIMEOUT)
    await expect(this_page(tab.page)).to_have_text("1", timeout=TIMEOUT)
    views = [
        (v["currentPage"], v["previousPage"], v.get("articleTitle"))
        for v in await tab.sent_views(2)
    ]
    # A multi-page site loads the post as a new page: its previous page is the referrer's.
    previous = "/" if blog.site.root.name == "dist" else ""
    assert views == [
        ("/", "", blog.home_title),
        ("/blog/second-post/", previous, "The second post"),
    ]
    # The title reaches the report through the stream, after the counts.
    rows = await eventually(
        blog.pages,
        lambda rows: any(
            r.get("articleId") == "second-post" and r.get("articleTitle") for r in rows
        ),
    )
    (row,) = [r for r in rows if r.get("articleId") == "second-post"]
    assert row.pop("url") == blog.site.origin + row.pop("path")  # the row links to its page
    assert row == {
        "articleId": "second-post",
        "articleTitle": "The second post",
        "totalViews": 1,
        "uniqueViews": 1,
    }


async def test_counters_fill_in_and_follow_a_second_reader_live(
    blog: Blog, open_tab: OpenTab
) -> None:
    home = await open_tab(blog.url("/"))
    third = listed(home.page, "third-post")
    await expect(third).to_have_text("0", timeout=TIMEOUT)
    reader = await open_tab(blog.url("/blog/third-post/"))
    await expect(this_page(reader.page)).to_have_text("1", timeout=TIMEOUT)
    await expect(third).to_have_text("1", timeout=TIMEOUT)
    await reader.page.click("#nav-home")
    await expect(reader.page).to_have_title(blog.home_title, timeout=TIMEOUT)
    await expect(listed(reader.page, "third-post")).to_have_text("1", timeout=TIMEOUT)
    await reader.page.click("#nav-third-post")
    await expect(third).to_have_text("2", timeout=TIMEOUT)
    await expect(this_page(reader.page)).to_have_text("2", timeout=TIMEOUT)
    # The home page followed the posts and viewed nothing but itself.
    assert [v["currentPage"] for v in home.views()] == ["/"]


async def test_reading_now_counts_the_tabs_on_a_post(blog: Blog, open_tab: OpenTab) -> None:
    first = await open_tab(blog.url("/blog/fourth-post/"))
    now = this_page(first.page, "now")
    await expect(now).to_have_text("1", timeout=TIMEOUT)
    second = await open_tab(blog.url("/blog/fourth-post/"))
    await expect(now).to_have_text("2", timeout=TIMEOUT)
    await expect(this_page(second.page, "now")).to_have_text("2", timeout=TIMEOUT)
    await second.page.close()  # a closed tab is no reader
    await expect(now).to_have_text("1", timeout=TIMEOUT)


async def test_a_path_no_rule_names_is_listed_as_a_page_of_its_own(
    blog: Blog, open_tab: OpenTab
) -> None:
    tab = await open_tab(blog.url("/about/"))
    await expect(this_page(tab.page)).to_have_text("1", timeout=TIMEOUT)
    [view] = await tab.sent_views(1)
    assert (view["currentPage"], view.get("articleId"), view["articleTitle"]) == (
        "/about/",
        None,
        "About",
    )
    rows = await eventually(
        blog.pages, lambda rows: any(r.get("pageName") == "/about" for r in rows)
    )
    assert [r for r in rows if r.get("pageName") == "/about"] == [
        {
            "pageName": "/about",
            "path": "/about",
            "url": blog.site.origin + "/about",
            "totalViews": 1,
            "uniqueViews": 1,
        }
    ]


async def test_a_page_on_an_origin_livecount_does_not_allow_is_refused(
    blog: Blog, open_tab: OpenTab
) -> None:
    before = (await blog.live("first-post"))["totalViews"]
    tab = await open_tab(blog.elsewhere.origin + "/blog/first-post/")

    async def refusals() -> list[str]:
        return tab.refusals

    [refusal, *_] = await eventually(refusals, bool)
    assert "403" in refusal, refusal
    await expect(this_page(tab.page)).not_to_have_text(re.compile(r"\d"))
    assert (await blog.live("first-post"))["totalViews"] == before
