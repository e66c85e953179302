"""The snippet in a real browser: the demo page on a real `livecount serve --demo on`
(without it there is no demo: tests/e2e/test_serve.py)."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from playwright.async_api import Browser, Page, expect
from websockets.asyncio.client import connect

from tests.support import Launch, Served, eventually, free_port, http_get

TIMEOUT = 20_000  # ms, for expect(): a deadline, not a speed claim


async def open_demo(browser: Browser, url: str) -> Page:
    page = await (await browser.new_context()).new_page()
    await page.goto(url)
    await expect(page.locator("#status")).to_have_text("open", timeout=TIMEOUT)
    return page


async def test_a_view_in_one_tab_moves_the_counter_in_another(browser: Browser, launch: Launch):
    served = await launch("--demo", "on")
    reader = await open_demo(browser, served.http + "/demo")
    await expect(reader.locator("#total")).to_have_text("0", timeout=TIMEOUT)

    writer = await open_demo(browser, served.http + "/demo/posts/hello-world")
    await expect(writer.locator("#post-total")).to_have_text("1", timeout=TIMEOUT)
    await expect(reader.locator("#total")).to_have_text("1", timeout=TIMEOUT)

    await writer.click("#nav-second")
    await expect(writer.locator("#post-total")).to_have_text("1", timeout=TIMEOUT)
    await writer.click("#nav-hello")  # an in-app navigation: counted, unique
    await expect(reader.locator("#total")).to_have_text("2", timeout=TIMEOUT)
    await expect(reader.locator("#unique")).to_have_text("2", timeout=TIMEOUT)

    await writer.reload()  # a reload counts total only
    await expect(reader.locator("#total")).to_have_text("3", timeout=TIMEOUT)
    await expect(reader.locator("#unique")).to_have_text("2", timeout=TIMEOUT)


async def test_the_snippet_sends_the_seed_fields(browser: Browser, launch: Launch):
    """What the browser sent, as the server counted it: title and external referrer."""
    served = await launch("--demo", "on", "--site-domain", "127.0.0.1")
    page = await (await browser.new_context()).new_page()
    await page.goto(served.http + "/demo/posts/second-post", referer="https://news.example/item")
    await expect(page.locator("#post-total")).to_have_text("1", timeout=TIMEOUT)
    await page.click("#nav-hello")  # in-app: the landing referrer is not sent again
    await expect(page.locator("#post-total")).to_have_text("1", timeout=TIMEOUT)
    async with connect(served.ws) as ws:
        await ws.send(json.dumps({"message": "subscribe", "articleIds": ["second-post"]}))
        assert json.loads(await ws.recv())["totalViews"] == 1

    async def stored(article: str) -> dict[str, Any]:
        status, _, body = await asyncio.to_thread(http_get, f"{served.http}/api/pages/{article}")
        return json.loads(body) if status == 200 else {}

    # Titles reach the report through the stream, referrers through their own writes.
    landing = await eventually(
        lambda: stored("second-post"), lambda p: bool(p.get("articleTitle") and p.get("referrers"))
    )
    inside = await eventually(lambda: stored("hello-world"), lambda p: bool(p.get("articleTitle")))
    assert landing["articleTitle"] == "Second post"
    assert landing["referrers"] == [{"host": "news.example", "views": 1}]
    assert inside["articleTitle"] == "Hello, world"
    assert inside["referrers"] == []


async def test_pages_reconnect_after_a_server_restart(browser: Browser, launch: Launch):
    port = str(free_port())
    served: Served = await launch("--demo", "on", "--port", port)
    reader = await open_demo(browser, served.http + "/demo")
    writer = await open_demo(browser, served.http + "/demo/posts/hello-world")
    await expect(reader.locator("#total")).to_have_text("1", timeout=TIMEOUT)

    assert await served.stop() == 0
    await expect(reader.locator("#status")).to_have_text("closed", timeout=TIMEOUT)
    await launch("--demo", "on", "--port", port)
    await expect(reader.locator("#status")).to_have_text("open", timeout=TIMEOUT)
    await expect(writer.locator("#status")).to_have_text("open", timeout=TIMEOUT)

    await writer.click("#nav-second")
    await writer.click("#nav-hello")
    # The reader re-subscribed on reconnect: the push after the restart reaches it.
    await expect(reader.locator("#total")).to_have_text("2", timeout=TIMEOUT)


HEADLESS_AGENT = (
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "HeadlessChrome/156.0.0.0 Safari/537.36"
)


async def test_a_bot_is_told_its_view_was_not_counted(browser: Browser, launch: Launch):
    """Headless Chromium as it is: a bot to the server, which says so in its reply."""
    served = await launch("--demo", "on")
    bot = await (await browser.new_context(user_agent=HEADLESS_AGENT)).new_page()
    await bot.goto(served.http + "/demo/posts/hello-world")
    reply = bot.locator("#reply")
    await expect(reply).to_have_attribute("data-counted", "false", timeout=TIMEOUT)
    await expect(reply).to_have_attribute("data-reason", "bot")
    await expect(reply).to_contain_text("not counted")
    await expect(reply).to_contain_text("bot")
    await expect(bot.locator("#post-total")).to_have_text("0")

    reader = await open_demo(browser, served.http + "/demo/posts/hello-world")
    await expect(reader.locator("#reply")).to_have_attribute(
        "data-counted", "true", timeout=TIMEOUT
    )
    await expect(reader.locator("#post-total")).to_have_text("1", timeout=TIMEOUT)
    await expect(bot.locator("#post-total")).to_have_text("1", timeout=TIMEOUT)  # live, still
    async with connect(served.ws) as ws:  # the server counted the reader alone
        await ws.send(json.dumps({"message": "subscribe", "articleIds": ["hello-world"]}))
        assert json.loads(await ws.recv())["totalViews"] == 1


async def test_the_demo_home_page_is_counted_as_the_home_page(browser: Browser, launch: Launch):
    served = await launch("--demo", "on")
    page = await open_demo(browser, served.http + "/demo")
    reply = page.locator("#reply")
    await expect(reply).to_have_attribute("data-counted", "true", timeout=TIMEOUT)
    await expect(reply).to_contain_text("Home_Page")
    async with connect(served.ws) as ws:
        await ws.send(json.dumps({"message": "subscribe", "pageNames": ["Home_Page"]}))
        assert json.loads(await ws.recv())["totalViews"] == 1

    await page.click("#nav-hello")  # an in-app navigation away and back
    await expect(reply).to_contain_text("hello-world", timeout=TIMEOUT)
    await page.click("#nav-home")
    await expect(reply).to_contain_text("Home_Page", timeout=TIMEOUT)
    await expect(reply).to_have_attribute("data-counted", "true")


async def test_the_counts_read_as_english(browser: Browser, launch: Launch):
    served = await launch("--demo", "on")
    page = await open_demo(browser, served.http + "/demo/posts/hello-world")
    footer = page.locator("footer")
    await expect(footer).to_have_text(
        "“Hello, world” has been viewed 1 time by 1 visitor.", timeout=TIMEOUT
    )
    await page.reload()  # a reload: total only
    await expect(footer).to_have_text(
        "“Hello, world” has been viewed 2 times by 1 visitor.", timeout=TIMEOUT
    )
    other = await open_demo(browser, served.http + "/demo/posts/hello-world")
    await expect(other.locator("footer")).to_have_text(
        "“Hello, world” has been viewed 3 times by 2 visitors.", timeout=TIMEOUT
    )
    # Both are on the post now, and both pages say so.
    await expect(other.locator("#post-reading")).to_have_text("2", timeout=TIMEOUT)
    await expect(page.locator("#post-reading")).to_have_text("2", timeout=TIMEOUT)
    await other.close()
    await expect(page.locator("#post-reading")).to_have_text("1", timeout=TIMEOUT)
