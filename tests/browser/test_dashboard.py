"""The dashboard at `GET /`, in a real Chromium against a real `livecount serve`.

Views come from a real WebSocket client, as a blog's pages would send them; the
dashboard itself only subscribes. Every wait is an `expect` deadline, never a sleep.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from playwright.async_api import (
    Browser,
    Page,
    Route,
    ViewportSize,
    WebSocketRoute,
    expect,
)
from websockets.asyncio.client import connect

from tests.browser.conftest import (
    DESKTOP,
    PHONE,
    TIMEOUT,
    Open,
    a_poll_of_the_pages,
    row,
    send_view,
    stored,
)
from tests.support import Launch, Served, eventually, free_port, http_get

# The dashboard promises a view on screen within 1-2 s (a push, or the table's 2 s poll).
# This deadline leaves a busy machine room, yet fails what came before: a table polled
# every 15 s and hourly rows stored every 10 s.
LIVE = 5_000
# The views the chart shows, over all its bars.
CHART_SUM = ("[...document.querySelectorAll('#chart svg .bar')]"
             ".reduce((s, b) => s + +b.dataset.total, 0)")


async def api(served: Served, path: str) -> Any:
    status, _, body = await asyncio.to_thread(http_get, served.http + path)
    assert status == 200, (path, status, body)
    return json.loads(body)


async def only_live(page: Page) -> None:
    """Refuse the table's re-fetches from now on: what moves after this came over /ws."""
    await page.route("**/api/pages**", lambda route: route.abort())


async def test_rows_and_the_site_total_move_live(launch: Launch, open_dashboard: Open):
    served = await launch("--site-domain", "blog.example")
    async with connect(served.ws) as ws:
        await send_view(ws, "first-post", articleTitle="First post")
        await send_view(ws, currentPage="/")
        page = await open_dashboard(served)
        await page.evaluate("window.__sameDocument = true")

        first = row(page, "first-post")
        await expect(first.locator(".title")).to_have_text("First post", timeout=TIMEOUT)
        await expect(first.locator(".total")).to_have_text("1", timeout=TIMEOUT)
        await expect(row(page, "Home_Page").locator(".total")).to_have_text("1", timeout=TIMEOUT)
        await expect(page.locator("#site-total")).to_have_text("2", timeout=TIMEOUT)

        await only_live(page)
        await send_view(ws, "first-post", refreshed=True)  # total only
        await expect(first.locator(".total")).to_have_text("2", timeout=TIMEOUT)
        await expect(first.locator(".unique")).to_have_text("1", timeout=TIMEOUT)
        await expect(page.locator("#site-total")).to_have_text("3", timeout=TIMEOUT)
        await expect(page.locator("#site-unique")).to_have_text("2", timeout=TIMEOUT)

        await send_view(ws, currentPage="/")
        await expect(row(page, "Home_Page").locator(".total")).to_have_text("2", timeout=TIMEOUT)
        await expect(page.locator("#site-total")).to_have_text("4", timeout=TIMEOUT)

        # An article first viewed after the page loaded is not pushed: the poll finds it.
        await page.unroute("**/api/pages**")
        await send_view(ws, "late-post", articleTitle="Late post")
        await expect(row(page, "late-post").locator(".total")).to_have_text("1", timeout=TIMEOUT)
        await expect(page.locator("#site-total")).to_have_text("5", timeout=TIMEOUT)
        await send_view(ws, "late-post")  # and once listed, it is subscribed to
        await expect(row(page, "late-post").locator(".total")).to_have_text("2", timeout=TIMEOUT)
        assert await page.evaluate("window.__sameDocument") is True  # no reload happened

    # The dashboard only watched: the server counted exactly what the test sent.
    await stored(served, 6)
    pages = await api(served, "/api/pages")
    assert sorted((r.get("articleId") or r["pageName"], r["totalViews"]) for r in pages) == [
        ("Home_Page", 2), ("first-post", 2), ("late-post", 2)]


async def test_selecting_a_row_shows_its_referrers_and_chart(launch: Launch,
                                                             open_dashboard: Open):
    served = await launch("--site-domain", "blog.example")
    async with connect(served.ws) as ws:
        for referrer in ["https://news.ycombinator.com/item?id=1",
                         "https://news.ycombinator.com/item?id=2",
                         "https://www.lobste.rs/s/abc",
                         "https://blog.example/another-post"]:  # internal: not a referrer
            await send_view(ws, "chosen", articleTitle="The chosen one", referrer=referrer)
        await send_view(ws, "other", articleTitle="Another", referrer="https://reddit.com/r/x")
    await stored(served, 5)
    await eventually(lambda: api(served, "/api/timeline?articleId=chosen"),
                     lambda points: sum(p["totalViews"] for p in points) == 4)

    page = await open_dashboard(served)
    await expect(page.locator("#detail-title")).to_have_text("All pages", timeout=TIMEOUT)
    await expect(page.locator("#referrers li")).to_have_count(3, timeout=TIMEOUT)

    await row(page, "chosen").click()
    await expect(row(page, "chosen")).to_have_attribute("aria-current", "true")
    await expect(page.locator("#detail-title")).to_have_text("The chosen one", timeout=TIMEOUT)
    await expect(page.locator("#detail-total")).to_have_text("4", timeout=TIMEOUT)
    referrers = page.locator("#referrers li")
    await expect(referrers).to_have_count(2, timeout=TIMEOUT)
    await expect(referrers.locator(".host")).to_have_text(["news.ycombinator.com", "lobste.rs"])
    await expect(referrers.locator(".views")).to_have_text(["2", "1"])

    chart = page.locator("#chart svg")
    await expect(chart).to_have_attribute("data-bucket", "hour", timeout=TIMEOUT)
    await expect(chart.locator(".bar")).to_have_count(48, timeout=TIMEOUT)
    # The views land in the newest hour, or the two newest if the hour turned meanwhile.
    totals = await chart.locator(".bar").evaluate_all("bars => bars.map(b => +b.dataset.total)")
    assert sum(totals) == 4 and sum(totals[-2:]) == 4

    await page.click("#range-day")
    await expect(page.locator("#range-day")).to_have_attribute("aria-pressed", "true")
    await expect(chart).to_have_attribute("data-bucket", "day", timeout=TIMEOUT)
    await expect(chart.locator(".bar")).to_have_count(30, timeout=TIMEOUT)

    # The selection is in the URL: a reload (or a shared link) shows the same article.
    assert page.url.endswith("#post=chosen")
    await page.reload()
    await expect(page.locator("#detail-title")).to_have_text("The chosen one", timeout=TIMEOUT)

    await page.click("#clear")
    await expect(page.locator("#detail-title")).to_have_text("All pages", timeout=TIMEOUT)
    await expect(referrers.locator(".host")).to_have_text(
        ["news.ycombinator.com", "lobste.rs", "reddit.com"], timeout=TIMEOUT)


async def test_a_view_updates_the_selected_panel(launch: Launch, open_dashboard: Open):
    served = await launch("--site-domain", "blog.example")
    async with connect(served.ws) as ws:
        await send_view(ws, "watched", articleTitle="Watched")
        page = await open_dashboard(served, fragment="#post=watched")
        await expect(page.locator("#detail-title")).to_have_text("Watched", timeout=TIMEOUT)
        await expect(page.locator("#detail-total")).to_have_text("1", timeout=TIMEOUT)
        await expect(page.locator("#referrers li")).to_have_count(0)
        await only_live(page)
        await send_view(ws, "watched", referrer="https://lobste.rs/")
        await expect(page.locator("#detail-total")).to_have_text("2", timeout=TIMEOUT)
        # The panel re-fetches its chart and referrers after a count it shows changed.
        await expect(page.locator("#referrers li .host")).to_have_text(["lobste.rs"],
                                                                       timeout=TIMEOUT)
        # The open page's chart holds both views, live: it showed 3 in ~1 of 7 busy runs
        # (test_a_post_listed_after_its_hours_were_read_is_counted_once makes it happen)...
        await page.wait_for_function(f"{CHART_SUM} === 2", timeout=TIMEOUT)
        # ...and so does a fresh load, from the stored hours alone.
        await page.unroute("**/api/pages**")
        await page.reload()
        await expect(page.locator("#detail-total")).to_have_text("2", timeout=TIMEOUT)
        await page.wait_for_function(f"{CHART_SUM} === 2", timeout=TIMEOUT)
        await expect(page.locator("#chart svg .bar")).to_have_count(48)


async def test_sorting_by_the_column_headers(launch: Launch, open_dashboard: Open):
    served = await launch()
    async with connect(served.ws) as ws:
        for article, title, views, refreshed in [("b", "Banana", 3, True), ("a", "apple", 1, False),
                                                 ("c", "Cherry", 2, False)]:
            for _ in range(views):
                await send_view(ws, article, articleTitle=title, refreshed=refreshed)
    await stored(served, 6)
    await eventually(lambda: api(served, "/api/pages"),
                     lambda rows: all(r.get("articleTitle") for r in rows) and len(rows) == 3)
    page = await open_dashboard(served)
    ids = page.locator("#rows tr")
    await expect(ids).to_have_count(3, timeout=TIMEOUT)

    async def order() -> list[str]:
        return await ids.evaluate_all("rows => rows.map(r => r.dataset.id)")

    assert await order() == ["b", "c", "a"]  # most viewed first
    await page.click("#pages th[data-sort=title] button")
    await expect(page.locator("#pages th[data-sort=title]")).to_have_attribute(
        "aria-sort", "ascending")
    assert await order() == ["a", "b", "c"]  # A to Z, case-insensitive
    await page.click("#pages th[data-sort=unique] button")
    await expect(page.locator("#pages th[data-sort=unique]")).to_have_attribute(
        "aria-sort", "descending")
    assert await order() == ["c", "a", "b"]  # b's three views were refreshes: 1 unique
    await page.click("#pages th[data-sort=unique] button")
    await expect(page.locator("#pages th[data-sort=unique]")).to_have_attribute(
        "aria-sort", "ascending")
    assert await order() == ["b", "a", "c"]


async def test_odd_ids_and_titles_are_shown_as_text(launch: Launch, open_dashboard: Open):
    served = await launch()
    odd_id = "<img src=x onerror=\"window.__pwned=1\">'&amp;"
    odd_title = "<script>window.__pwned=2</script> \"quoted\" & <b>bold</b>"
    async with connect(served.ws) as ws:
        await send_view(ws, odd_id, articleTitle=odd_title, referrer="https://a.example/")
    await stored(served, 1)
    await eventually(lambda: api(served, "/api/pages"),
                     lambda rows: bool(rows) and rows[0].get("articleTitle") == odd_title)

    page = await open_dashboard(served)
    odd = row(page, odd_id)
    await expect(odd.locator(".title")).to_have_text(odd_title, timeout=TIMEOUT)
    await expect(odd.locator(".id")).to_have_text(odd_id)
    await odd.click()
    await expect(page.locator("#detail-title")).to_have_text(odd_title, timeout=TIMEOUT)
    await expect(page.locator("#referrers li .host")).to_have_text(["a.example"], timeout=TIMEOUT)
    await expect(page.locator("#chart svg .bar")).to_have_count(48, timeout=TIMEOUT)
    assert await page.evaluate("window.__pwned") is None
    assert await page.locator("#rows img, #rows script, #rows b").count() == 0

    await page.reload()  # the selection survives the URL round trip, encoded
    await expect(page.locator("#detail-title")).to_have_text(odd_title, timeout=TIMEOUT)


async def test_phone_width_has_no_horizontal_overflow(launch: Launch, open_dashboard: Open):
    served = await launch()
    long_id = "a-very-long-article-id-without-any-spaces-" * 6
    long_title = "A title long enough to wrap several times on a phone, and then some more " * 3
    async with connect(served.ws) as ws:
        await send_view(ws, long_id[:256], articleTitle=long_title[:256],
                        referrer="https://" + "subdomain." * 12 + "example.com/")
        await send_view(ws, "short", articleTitle="Short")
        await send_view(ws, currentPage="/pages/about")
    await stored(served, 3)

    page = await open_dashboard(served, viewport=PHONE)
    await expect(page.locator("#rows tr")).to_have_count(3, timeout=TIMEOUT)
    await expect(page.locator("#chart svg .bar")).to_have_count(48, timeout=TIMEOUT)
    overflow = "document.scrollingElement.scrollWidth <= window.innerWidth"
    assert await page.evaluate(overflow)
    await row(page, long_id[:256]).click()
    await expect(page.locator("#referrers li")).to_have_count(1, timeout=TIMEOUT)
    await page.click("#range-day")
    await expect(page.locator("#chart svg .bar")).to_have_count(30, timeout=TIMEOUT)
    assert await page.evaluate(overflow)


async def test_the_dashboard_reconnects_after_a_server_restart(launch: Launch,
                                                               open_dashboard: Open):
    port = str(free_port())
    served = await launch("--port", port)
    async with connect(served.ws) as ws:
        await send_view(ws, "survivor", articleTitle="Survivor")
    page = await open_dashboard(served)
    await expect(row(page, "survivor").locator(".total")).to_have_text("1", timeout=TIMEOUT)
    await only_live(page)

    assert await served.stop() == 0
    await expect(page.locator("#conn")).to_have_text("offline", timeout=TIMEOUT)
    restarted = await launch("--port", port)
    await expect(page.locator("#conn")).to_have_text("live", timeout=TIMEOUT)
    async with connect(restarted.ws) as ws:  # re-subscribed: the push reaches the page
        await send_view(ws, "survivor")
    await expect(row(page, "survivor").locator(".total")).to_have_text("2", timeout=TIMEOUT)
    await expect(page.locator("#site-total")).to_have_text("2", timeout=TIMEOUT)


@pytest.mark.parametrize("viewport", [DESKTOP, PHONE], ids=["desktop", "phone"])
async def test_the_selected_page_is_shown_where_the_reader_is(launch: Launch,
                                                              open_dashboard: Open,
                                                              viewport: ViewportSize):
    """A row picked far down a long table: its chart is on screen, not 700 px above."""
    served = await launch()
    async with connect(served.ws) as ws:
        for i in range(40):
            await send_view(ws, f"post-{i:02d}", articleTitle=f"Post number {i}")
    await stored(served, 40)
    await eventually(lambda: api(served, "/api/pages"),
                     lambda rows: len(rows) == 40 and all(r.get("articleTitle") for r in rows))
    page = await open_dashboard(served, viewport=viewport)
    await expect(page.locator("#rows tr")).to_have_count(40, timeout=TIMEOUT)
    await expect(page.locator("#chart svg .bar")).to_have_count(48, timeout=TIMEOUT)

    last = page.locator("#rows tr").last
    await last.scroll_into_view_if_needed()
    assert await page.evaluate("scrollY") > 500  # the table is long: the page scrolled
    title = await last.locator(".title").inner_text()
    await last.click()
    await expect(page.locator("#detail-title")).to_have_text(title, timeout=TIMEOUT)
    await expect(page.locator("#detail-title")).to_be_in_viewport(ratio=1, timeout=TIMEOUT)
    await expect(page.locator("#chart svg")).to_be_in_viewport(ratio=1, timeout=TIMEOUT)
    await expect(page.locator("#chart svg .bar")).to_have_count(48, timeout=TIMEOUT)
    # The site's chart (40 views) is replaced once the post's hours are read: wait for it.
    await page.wait_for_function(f"{CHART_SUM} === 1", timeout=TIMEOUT)


async def test_a_view_moves_every_figure_at_once(launch: Launch, open_dashboard: Open):
    """Totals, the 24-hour figure, the chart's newest bar and new rows, all live."""
    served = await launch()
    async with connect(served.ws) as ws:
        await send_view(ws, "known", articleTitle="Known")
        await stored(served, 1)
        await eventually(lambda: api(served, "/api/timeline"),
                         lambda points: sum(p["totalViews"] for p in points) == 1)
        page = await open_dashboard(served)
        await expect(page.locator("#site-day")).to_have_text("1", timeout=TIMEOUT)
        await page.wait_for_function(f"{CHART_SUM} === 1", timeout=TIMEOUT)

        # From now on the hourly figures cannot come from the API: only from live counts.
        await page.route("**/api/timeline**", lambda route: route.abort())
        await send_view(ws, "known")
        await expect(row(page, "known").locator(".total")).to_have_text("2", timeout=LIVE)
        await expect(page.locator("#site-total")).to_have_text("2", timeout=LIVE)
        await expect(page.locator("#site-day")).to_have_text("2", timeout=LIVE)
        await page.wait_for_function(f"{CHART_SUM} === 2", timeout=LIVE)

        # A new article, sent just after a poll of the table: the next poll must find it.
        await a_poll_of_the_pages(page)
        await send_view(ws, "brand-new", articleTitle="Brand new")
        await expect(row(page, "brand-new").locator(".total")).to_have_text("1", timeout=LIVE)
        await expect(page.locator("#site-total")).to_have_text("3", timeout=LIVE)
        await expect(page.locator("#site-day")).to_have_text("3", timeout=LIVE)
        await page.wait_for_function(f"{CHART_SUM} === 3", timeout=LIVE)
        await expect(page.locator("#site-pages")).to_have_text("2")

        # Once listed it is watched: its next view is pushed.
        await send_view(ws, "brand-new")
        await expect(row(page, "brand-new").locator(".total")).to_have_text("2", timeout=LIVE)
        await expect(page.locator("#site-day")).to_have_text("4", timeout=LIVE)
        await page.wait_for_function(f"{CHART_SUM} === 4", timeout=LIVE)

    # The live figures were the true ones: the API agrees once its rows are stored.
    await page.unroute("**/api/timeline**")
    await eventually(lambda: api(served, "/api/timeline"),
                     lambda points: sum(p["totalViews"] for p in points) == 4)
    await page.reload()
    await expect(page.locator("#site-day")).to_have_text("4", timeout=TIMEOUT)
    await expect(page.locator("#site-total")).to_have_text("4", timeout=TIMEOUT)


def counts_to(page_id: str, seen: list[dict[str, Any]]) -> Callable[[Page], Awaitable[None]]:
    """Relay /ws, keeping the counts the page is sent about `page_id` in `seen`: the
    first is the subscribe's, where the post stands; the next ones are pushes."""
    def relay(ws: WebSocketRoute) -> None:
        server = ws.connect_to_server()

        def to_page(message: str | bytes) -> None:
            data = json.loads(message)
            if data.get("message") == "count" and data.get("articleId") == page_id:
                seen.append(data)
            ws.send(message)

        server.on_message(to_page)

    async def before(page: Page) -> None:
        await page.route_web_socket("**/ws", relay)

    return before


async def subscribed(seen: list[dict[str, Any]]) -> None:
    """Wait for the subscribe's count: a view sent after it comes as a push."""
    async def counts() -> int:
        return len(seen)

    await eventually(counts, lambda n: n >= 1)


def post_hours(page_id: str) -> Callable[[str], bool]:
    """The selected post's chart requests (not the site's, which the 24 h figure reads)."""
    return lambda url: "/api/timeline?" in url and f"articleId={page_id}&" in url + "&"


async def test_a_push_outlives_an_older_chart_answer(launch: Launch, open_dashboard: Open):
    """The chart's answer, read before a view, lands after that view's push: the push
    stays on the chart (an open page showed a view too few until the next answer). Any
    later answer is refused here, so only the push can bring the bar to 2."""
    served = await launch()
    seen: list[dict[str, Any]] = []
    asked, release = asyncio.Event(), asyncio.Event()
    answers = 0

    async def read_now_land_later(route: Route) -> None:
        nonlocal answers
        answers += 1
        if answers > 1:
            await route.abort()
            return
        response = await route.fetch()  # read now: before the view below
        asked.set()
        await release.wait()
        await route.fulfill(response=response)

    async def before(page: Page) -> None:
        await counts_to("watched", seen)(page)
        await page.route(post_hours("watched"), read_now_land_later)

    async with connect(served.ws) as ws:
        await send_view(ws, "watched", articleTitle="Watched")
        await stored(served, 1)
        await eventually(lambda: api(served, "/api/timeline?articleId=watched"),
                         lambda points: sum(p["totalViews"] for p in points) == 1)
        page = await open_dashboard(served, fragment="#post=watched", before=before)
        await asyncio.wait_for(asked.wait(), TIMEOUT / 1000)
        await expect(page.locator("#detail-total")).to_have_text("1", timeout=TIMEOUT)
        await subscribed(seen)

        await send_view(ws, "watched")
        await expect(page.locator("#detail-total")).to_have_text("2", timeout=LIVE)
        assert [c["totalViews"] for c in seen] == [1, 2]  # a push, not a subscribe's count
        release.set()
        await page.wait_for_function(f"{CHART_SUM} === 2", timeout=LIVE)
        await expect(page.locator("#chart svg .bar")).to_have_count(48)


async def test_a_post_listed_after_its_hours_were_read_is_counted_once(launch: Launch,
                                                                      open_dashboard: Open):
    """Found as a flake (the panel's chart at 3 for 2 views): a post's first view was in
    the chart's answer, and the table listed the post only at its next poll, which took
    the view for a new one and added it to the chart again. Made so here: the table's
    polls wait while the view is stored and the chart's answer is read."""
    served = await launch()
    seen: list[dict[str, Any]] = []
    polls = 0
    let_polls, let_hours = asyncio.Event(), asyncio.Event()
    hours_answered = 0

    async def list_waits(route: Route) -> None:
        nonlocal polls
        polls += 1
        if polls > 1:
            await let_polls.wait()
        await route.continue_()

    async def hours_wait(route: Route) -> None:
        nonlocal hours_answered
        if hours_answered:
            await route.abort()  # later answers refused: the chart moves on what it has
            return
        hours_answered += 1
        await let_hours.wait()
        await route.continue_()

    async def before(page: Page) -> None:
        await counts_to("new-post", seen)(page)
        await page.route(lambda url: "/api/pages?" in url, list_waits)
        await page.route(post_hours("new-post"), hours_wait)

    page = await open_dashboard(served, fragment="#post=new-post", before=before)
    await expect(page.locator("#rows .placeholder")).to_contain_text("No views yet",
                                                                     timeout=TIMEOUT)
    async with connect(served.ws) as ws:
        await send_view(ws, "new-post", articleTitle="New post")
        await stored(served, 1)
        await eventually(lambda: api(served, "/api/timeline?articleId=new-post"),
                         lambda points: sum(p["totalViews"] for p in points) == 1)
        let_hours.set()  # the chart reads the stored view...
        await page.wait_for_function(f"{CHART_SUM} === 1", timeout=TIMEOUT)
        async with page.expect_response(lambda r: "/api/pages?" in r.url, timeout=TIMEOUT):
            let_polls.set()  # ...and then the table lists it, at a poll asked before
        await page.evaluate("new Promise(requestAnimationFrame)")
        await expect(row(page, "new-post").locator(".total")).to_have_text("1")
        assert await page.evaluate(CHART_SUM) == 1

        await subscribed(seen)
        await send_view(ws, "new-post")  # pushed: on the chart at once, once
        await expect(row(page, "new-post").locator(".total")).to_have_text("2", timeout=LIVE)
        await page.wait_for_function(f"{CHART_SUM} === 2", timeout=LIVE)
        await page.evaluate("new Promise(requestAnimationFrame)")
        assert await page.evaluate(CHART_SUM) == 2
        assert [c["totalViews"] for c in seen] == [1, 2]


async def test_the_unique_share_is_never_rounded_up(launch: Launch, open_dashboard: Open):
    served = await launch()
    async with connect(served.ws) as ws:
        for i in range(200):  # 199 unique of 200: 99.5 %, which rounds to 100
            await send_view(ws, "popular", refreshed=i == 0)
    page = await open_dashboard(served)
    await expect(page.locator("#site-total")).to_have_text("200", timeout=TIMEOUT)
    await expect(page.locator("#site-unique")).to_have_text("199", timeout=TIMEOUT)
    await expect(page.locator("#site-ratio")).to_have_text("99% of all views")


async def test_readers_now_per_page_and_site_wide(launch: Launch, open_dashboard: Open):
    served = await launch()
    async with connect(served.ws) as reader:
        await send_view(reader, "read-me", articleTitle="Read me")
        async with connect(served.ws) as other:
            await send_view(other, currentPage="/")
            page = await open_dashboard(served)
            await expect(page.locator("#kpi-now")).to_be_visible(timeout=TIMEOUT)
            await expect(page.locator("#site-now")).to_have_text("2", timeout=TIMEOUT)
            await expect(row(page, "read-me").locator(".now")).to_have_text("1")
            await expect(row(page, "Home_Page").locator(".now")).to_have_text("1")
        await expect(page.locator("#site-now")).to_have_text("1", timeout=TIMEOUT)
        await expect(row(page, "Home_Page").locator(".now")).to_have_text("", timeout=TIMEOUT)
        await row(page, "read-me").click()
        await expect(page.locator("#detail-now")).to_have_text("1", timeout=TIMEOUT)
    await expect(page.locator("#site-now")).to_have_text("0", timeout=TIMEOUT)
    await expect(page.locator("#detail-now")).to_have_text("0", timeout=TIMEOUT)


async def test_a_server_without_readers_now_shows_no_such_column(launch: Launch,
                                                                  open_dashboard: Open):
    """An older server: no `GET /api/now`, no `readingNow` in counts. The rest works."""
    served = await launch()

    def without_reading(ws: WebSocketRoute) -> None:
        server = ws.connect_to_server()

        def relay(message: str | bytes) -> None:
            data = json.loads(message)
            data.pop("readingNow", None)
            ws.send(json.dumps(data))

        server.on_message(relay)

    async def older_server(page: Page) -> None:
        await page.route("**/api/now", lambda route: route.fulfill(
            status=404, json={"error": "not_found", "detail": "no route for /api/now"}))
        await page.route_web_socket("**/ws", without_reading)

    async with connect(served.ws) as ws:
        await send_view(ws, "old-style", articleTitle="Old style")
        page = await open_dashboard(served, before=older_server)
        await expect(row(page, "old-style").locator(".total")).to_have_text("1", timeout=TIMEOUT)
        await send_view(ws, "old-style")
        await expect(row(page, "old-style").locator(".total")).to_have_text("2", timeout=TIMEOUT)
    await expect(page.locator("#kpi-now")).to_be_hidden()
    await expect(page.locator("#pages th.now")).to_be_hidden()
    await expect(row(page, "old-style").locator(".now")).to_be_hidden()


async def test_an_api_that_asks_for_a_login_leads_to_it(launch: Launch, browser: Browser):
    """Private reports: a 401 takes the reader to /login, and back to the same view after."""
    served = await launch()
    context = await browser.new_context(viewport=DESKTOP)
    page = await context.new_page()

    async def private(route: Route) -> None:
        await route.fulfill(status=401, json={"error": "unauthorized", "detail": "log in"})

    await page.route("**/api/**", private)
    try:
        await page.goto(served.http + "/#post=hello%20world")
        await page.wait_for_url("**/login?**", timeout=TIMEOUT)
        assert page.url == served.http + "/login?next=%2F%23post%3Dhello%2520world"
    finally:
        await context.close()


async def test_a_list_cut_at_the_limit_says_whose_totals_it_shows(launch: Launch,
                                                                  open_dashboard: Open):
    """Found by a hostile trial: past 500 pages the tiles read "all pages, all time" for
    a sum of the 500 listed."""
    served = await launch()
    async with connect(served.ws) as ws:
        for i in range(501):
            await send_view(ws, f"post-{i:03d}")
    await stored(served, 501)
    page = await open_dashboard(served)
    await expect(page.locator("#site-total-hint")).to_have_text(
        "the 500 most viewed pages, all time", timeout=TIMEOUT)
    await expect(page.locator("#site-pages")).to_have_text("500+")
    await expect(page.locator("#pages-count")).to_have_text("the 500 most viewed pages")
