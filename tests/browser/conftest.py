"""A real headless Chromium (Debian's), driven by Playwright without its own browser;
tabs of the test sites (`open_tab`), and what the dashboard's tests share: opening it,
sending views, waiting for a flush."""

from __future__ import annotations

import json
import shutil
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, Literal
from urllib.parse import urlencode

import pytest
import pytest_asyncio
from playwright.async_api import (
    Browser,
    BrowserContext,
    Locator,
    Page,
    ViewportSize,
    async_playwright,
    expect,
)
from websockets.asyncio.client import ClientConnection

from tests.browser.sites import Tab
from tests.support import Served, eventually, login_url, view_answered

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
# This machine has no network beyond loopback: keep Chromium from reaching out.
FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
]


# Headless Chromium says "HeadlessChrome", which livecount rightly takes for a bot and
# does not count; the tests stand in for readers, so they say what Chrome says.
READER_AGENT = (
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/156.0.0.0 Safari/537.36"
)

TIMEOUT = 20_000  # ms, for expect(): a deadline, not a speed claim
# Every expect() waits this long unless it says otherwise: playwright's 5 s default
# failed three dashboard checks on a machine at load 15 (each passed once it waited).
expect.set_options(timeout=TIMEOUT)
DESKTOP: ViewportSize = {"width": 1280, "height": 800}
PHONE: ViewportSize = {"width": 390, "height": 844}

Scheme = Literal["light", "dark"]
Open = Callable[..., Awaitable[Page]]
OpenTab = Callable[..., Awaitable[Tab]]


@pytest_asyncio.fixture(scope="session")
async def browser() -> AsyncIterator[Browser]:
    if not shutil.which("chromium"):
        pytest.fail(
            "chromium is not installed: run `make test-deps` (Debian: apt-get install chromium)"
        )
    async with async_playwright() as pw:
        chromium = await pw.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=[*FLAGS, f"--user-agent={READER_AGENT}"]
        )
        yield chromium
        await chromium.close()


@pytest_asyncio.fixture
async def open_dashboard(browser: Browser) -> AsyncIterator[Open]:
    """`/` + fragment of a server in a fresh context, live; with `logged_in`, through the
    login URL the server printed. `before` runs on the page before it loads (routes).
    Fails the test on any uncaught page error."""
    contexts: list[BrowserContext] = []
    errors: list[str] = []

    async def open_(
        served: Served,
        fragment: str = "",
        viewport: ViewportSize = DESKTOP,
        scheme: Scheme = "light",
        logged_in: bool = False,
        before: Callable[[Page], Awaitable[None]] | None = None,
    ) -> Page:
        context = await browser.new_context(viewport=viewport, color_scheme=scheme)
        contexts.append(context)
        page = await context.new_page()
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        if before is not None:
            await before(page)
        if logged_in:
            await page.goto(login_url(served) + "&" + urlencode({"next": "/" + fragment}))
            await expect(page).to_have_url(served.http + "/" + fragment, timeout=TIMEOUT)
        else:
            await page.goto(served.http + "/" + fragment)
        await expect(page.locator("#conn")).to_have_text("live", timeout=TIMEOUT)
        return page

    yield open_
    for context in contexts:
        await context.close()
    assert errors == []


@pytest_asyncio.fixture
async def open_tab(browser: Browser) -> AsyncIterator[OpenTab]:
    """`url` in a tab of a fresh context (a reader of its own), following its sockets;
    `init` runs before the page's scripts, `kind` is the Tab class. Fails the test on
    any uncaught page error."""
    contexts: list[BrowserContext] = []
    errors: list[str] = []

    async def open_(
        url: str, *, user_agent: str | None = None, init: str = "", kind: type[Tab] = Tab
    ) -> Tab:
        context = await (
            browser.new_context(user_agent=user_agent) if user_agent else browser.new_context()
        )
        contexts.append(context)
        if init:
            await context.add_init_script(init)
        page = await context.new_page()
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        tab = kind(page)
        page.on("websocket", tab.follow)
        page.on("console", tab.said)
        await page.goto(url)
        return tab

    yield open_
    for context in contexts:
        await context.close()
    assert errors == []


async def send_view(ws: ClientConnection, article: str | None = None, **fields: Any) -> None:
    """One `views` message, and its answer read (so it was counted). `unavailable`
    (a first count's read past its 3 s under heavy load) counted nothing, and says
    retry: sent again."""
    message: dict[str, Any] = {"message": "views", **fields}
    if article is not None:
        message["articleId"] = article
    await view_answered(ws, message)


async def stored(served: Served, views: int) -> None:
    """Wait until `views` views are flushed: report rows are written by the flush."""

    async def flushed() -> int:
        return sum(int(e.get("views", 0)) for e in served.events("flushed"))

    await eventually(flushed, lambda n: n >= views)


def row(page: Page, row_id: str) -> Locator:
    return page.locator(f"#rows tr[data-id={json.dumps(row_id)}]")


async def a_poll_of_the_pages(page: Page) -> None:
    """Wait for the table's next re-fetch to be answered (and applied, a frame later)."""
    async with page.expect_response(lambda r: "/api/pages" in r.url, timeout=TIMEOUT):
        pass
    await page.evaluate("new Promise(requestAnimationFrame)")
