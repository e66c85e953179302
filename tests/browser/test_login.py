"""The login page in a real Chromium against a real, private `livecount serve`.

The dashboard is private: a browser without a session is sent to /login, trades the
admin token for an HttpOnly, SameSite=Strict cookie, and lands on the dashboard,
whose report fetches then carry the cookie. Every wait is an `expect` deadline.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest_asyncio
from livecount.node.auth import COOKIE, FAILURE_BURST
from playwright.async_api import Browser, BrowserContext, Page, expect
from websockets.asyncio.client import connect

from tests.support import Launch, Served, http_get, login_url

TIMEOUT = 20_000  # ms, for expect(): a deadline, not a speed claim
NewPage = Callable[..., Awaitable[Page]]


@pytest_asyncio.fixture
async def new_page(browser: Browser) -> AsyncIterator[NewPage]:
    """A page in a fresh context (no cookies); fails the test on any uncaught page error."""
    contexts: list[BrowserContext] = []
    errors: list[str] = []

    async def make(**options: Any) -> Page:
        context = await browser.new_context(**options)
        contexts.append(context)
        page = await context.new_page()
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        return page

    yield make
    for context in contexts:
        await context.close()
    assert errors == []


async def private(launch: Launch) -> tuple[Served, str]:
    """A private node that has counted one post."""
    served = await launch(private=True)
    async with connect(served.ws) as ws:
        await ws.send(
            json.dumps(
                {"message": "views", "articleId": "first-post", "articleTitle": "First post"}
            )
        )
        assert json.loads(await ws.recv())["message"] == "views"
    return served, parse_qs(urlsplit(login_url(served)).query)["token"][0]


async def session_cookie(page: Page) -> dict[str, Any] | None:
    found = [c for c in await page.context.cookies() if c["name"] == COOKIE]
    return dict(found[0]) if found else None


async def on_the_dashboard(page: Page, served: Served) -> None:
    """The dashboard, live, with the row its cookie-authorized `/api/pages` fetch found."""
    await expect(page).to_have_url(served.http + "/", timeout=TIMEOUT)
    await expect(page.locator("#conn")).to_have_text("live", timeout=TIMEOUT)
    await expect(page.locator('#rows tr[data-id="first-post"] .title')).to_have_text(
        "First post", timeout=TIMEOUT
    )


async def test_login_sets_the_cookie_and_lands_on_the_dashboard(launch: Launch, new_page: NewPage):
    served, token = await private(launch)
    page = await new_page()
    await page.goto(served.http + "/")
    await expect(page).to_have_url(served.http + "/login?next=%2F", timeout=TIMEOUT)
    assert await session_cookie(page) is None
    await page.fill("#token", token)
    await page.click("button[type=submit]")
    await on_the_dashboard(page, served)
    made = await session_cookie(page)
    assert made is not None
    assert (made["httpOnly"], made["sameSite"], made["secure"]) == (True, "Strict", False)
    assert COOKIE not in await page.evaluate("document.cookie")  # no script can read it
    assert token not in page.url
    # The cookie is what the report fetches carry: the page's own fetch of a private report.
    status = await page.evaluate("fetch('/api/timeline').then(r => r.status)")
    assert status == 200


async def test_the_view_a_link_named_survives_the_login(launch: Launch, new_page: NewPage):
    served, token = await private(launch)
    page = await new_page()
    await page.goto(served.http + "/#post=first-post")
    await expect(page.locator("#token")).to_be_visible(timeout=TIMEOUT)
    await page.fill("#token", token)
    await page.click("button[type=submit]")
    await expect(page).to_have_url(served.http + "/#post=first-post", timeout=TIMEOUT)
    await expect(page.locator("#conn")).to_have_text("live", timeout=TIMEOUT)


async def test_a_wrong_token_shows_an_error_and_sets_nothing(launch: Launch, new_page: NewPage):
    served, token = await private(launch)
    page = await new_page()
    await page.goto(served.http + "/login")
    await expect(page.locator("#error")).to_be_hidden()
    await page.fill("#token", token[:-1])  # one character short
    await page.click("button[type=submit]")
    await expect(page.locator("#error")).to_be_visible(timeout=TIMEOUT)
    await expect(page.locator("#error")).to_contain_text("not the right one")
    await expect(page).to_have_url(served.http + "/login")
    assert await session_cookie(page) is None
    # The right one then works from the same page.
    await page.fill("#token", token)
    await page.click("button[type=submit]")
    await on_the_dashboard(page, served)


async def test_the_printed_login_url_logs_in_and_leaves_the_address_bar(
    launch: Launch, new_page: NewPage
):
    served, token = await private(launch)
    page = await new_page()
    await page.goto(login_url(served))
    await on_the_dashboard(page, served)
    assert token not in page.url
    # A wrong one in a link lands on the page, which says so; the token leaves the URL.
    other = await new_page()
    await other.goto(served.http + "/login?token=not-the-token-at-all")
    await expect(other.locator("#error")).to_contain_text("not the right one", timeout=TIMEOUT)
    assert "token" not in other.url and await session_cookie(other) is None


async def test_the_form_works_without_javascript(launch: Launch, new_page: NewPage):
    served, token = await private(launch)
    page = await new_page(java_script_enabled=False)
    await page.goto(served.http + "/")
    await page.fill("#token", token)
    await page.click("button[type=submit]")
    await expect(page).to_have_url(served.http + "/", timeout=TIMEOUT)
    assert await session_cookie(page) is not None


async def test_too_many_wrong_tokens_say_when_to_try_again(launch: Launch, new_page: NewPage):
    """Past the burst a wrong token is told when to try again; the right one still
    gets in (the operator is never locked out by someone guessing from the address)."""
    served, token = await private(launch)
    # A wrong token comes back every 6 s: on a loaded machine the guesses are spent
    # again, just before the form's own guess, until that one finds none left.
    for _ in range(5):
        page = await new_page()
        await page.goto(served.http + "/login")
        await page.fill("#token", "one-more-wrong-guess")
        for i in range(FAILURE_BURST):  # from this machine's address, as the browser's
            status, _, _ = await asyncio.to_thread(
                http_get, served.http + "/api/pages", {"Authorization": f"Bearer w-{i:04d}"}
            )
            assert status in (401, 429)
        await page.click("button[type=submit]")
        error = page.locator("#error")
        await expect(error).to_contain_text(
            re.compile("not the right one|Too many"), timeout=TIMEOUT
        )
        if "Too many" in await error.inner_text():
            break
    await expect(error).to_contain_text(
        "Too many wrong tokens from your address: try again in", timeout=TIMEOUT
    )
    assert await session_cookie(page) is None
    await page.fill("#token", token)
    await page.click("button[type=submit]")
    await expect(page).to_have_url(served.http + "/", timeout=TIMEOUT)
    assert await session_cookie(page) is not None
