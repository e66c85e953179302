"""The snippet in a real browser: the demo page on a real `livecount serve`."""

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
    served = await launch()
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
    served = await launch("--site-domain", "127.0.0.1")
    page = await (await browser.new_context()).new_page()
    await page.goto(served.http + "/demo/posts/second-post",
                    referer="https://news.example/item")
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
    landing = await eventually(lambda: stored("second-post"),
                               lambda p: bool(p.get("articleTitle") and p.get("referrers")))
    inside = await eventually(lambda: stored("hello-world"),
                              lambda p: bool(p.get("articleTitle")))
    assert landing["articleTitle"] == "Second post"
    assert landing["referrers"] == [{"host": "news.example", "views": 1}]
    assert inside["articleTitle"] == "Hello, world"
    assert inside["referrers"] == []


async def test_pages_reconnect_after_a_server_restart(browser: Browser, launch: Launch):
    port = str(free_port())
    served: Served = await launch("--port", port)
    reader = await open_demo(browser, served.http + "/demo")
    writer = await open_demo(browser, served.http + "/demo/posts/hello-world")
    await expect(reader.locator("#total")).to_have_text("1", timeout=TIMEOUT)

    assert await served.stop() == 0
    await expect(reader.locator("#status")).to_have_text("closed", timeout=TIMEOUT)
    await launch("--port", port)
    await expect(reader.locator("#status")).to_have_text("open", timeout=TIMEOUT)
    await expect(writer.locator("#status")).to_have_text("open", timeout=TIMEOUT)

    await writer.click("#nav-second")
    await writer.click("#nav-hello")
    # The reader re-subscribed on reconnect: the push after the restart reaches it.
    await expect(reader.locator("#total")).to_have_text("2", timeout=TIMEOUT)
