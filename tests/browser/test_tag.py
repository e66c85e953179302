"""The tag as a blogger adds it, checked as issue 20 says it is checked from outside:

    livecount serve --allowed-origin http://127.0.0.1:<site port> --path-pattern '/blog/{id}/'

and a page at /blog/hello-plain/ on that other origin, served by `python -m http.server`,
carrying only the tag and `<span data-livecount="hello-plain">` with a dash. In Chromium
that page shows 1, /api/pages lists the post with its title, and /about/ on the same
site is listed as a page. The same server and site then check the tag loaded twice,
and loaded late; and, with a second server that counts no unmatched path, what the
site's owner is told.
"""

from __future__ import annotations

import asyncio
import json
import sys
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import pytest_asyncio
from playwright.async_api import expect

from tests.browser.conftest import OpenTab
from tests.support import Served, eventually, free_port, http_get, login_url

TIMEOUT = 20_000  # ms, for expect(): a deadline, not a speed claim
DASH = "\u2013"  # what a counter shows until the server has answered


@dataclass
class Plain:
    served: Served
    origin: str  # the site's, served by `python -m http.server`
    refusing: Served  # --unmatched-paths refuse

    async def pages(self) -> list[dict[str, Any]]:
        """/api/pages as its operator reads it: with the token `serve` printed."""
        token = parse_qs(urlsplit(login_url(self.served)).query)["token"][0]
        status, _, body = await asyncio.to_thread(
            http_get, self.served.http + "/api/pages", {"Authorization": f"Bearer {token}"}
        )
        assert status == 200, body
        rows: list[dict[str, Any]] = json.loads(body)
        return rows


def pages(livecount: str, refusing: str) -> dict[str, str]:
    """The site's files: each page carries the tag (`<script defer src=…>`) and little
    else. `refusing` is the WebSocket address of a server that counts no unmatched path."""
    tag = f'<script defer src="{livecount}/livecount.js"></script>'
    return {
        "blog/hello-plain/index.html": f"""<!doctype html>
<meta charset="utf-8">
<title>Hello, plain</title>
{tag}
<span data-livecount="hello-plain">{DASH}</span>
""",
        "about/index.html": f"""<!doctype html>
<meta charset="utf-8">
<title>About</title>
{tag}
""",
        "blog/twice/index.html": f"""<!doctype html>
<meta charset="utf-8">
<title>Twice</title>
{tag}
{tag.replace(".js", ".js?again")}
<span data-livecount="twice">{DASH}</span>
""",
        # A path no rule names, sent (data-url) to the server that refuses such paths;
        # then another one, by the History API.
        "nowhere/index.html": f"""<!doctype html>
<meta charset="utf-8">
<title>Nowhere</title>
{tag.replace("></script>", f' data-url="{refusing}"></script>')}
<span data-livecount>{DASH}</span>
<button onclick="history.pushState(null, '', '/nowhere/else/'); document.title = 'Else'">
  elsewhere
</button>
""",
        # Added by another script once the page has loaded, as a tag manager or a
        # consent banner does.
        "blog/late/index.html": f"""<!doctype html>
<meta charset="utf-8">
<title>Late</title>
<span data-livecount>{DASH}</span>
<script>
  addEventListener("load", () => {{
    const tag = document.createElement("script");
    tag.src = "{livecount}/livecount.js";
    document.head.append(tag);
  }});
</script>
""",
    }


@pytest_asyncio.fixture(scope="module")
async def plain(
    dynamodb_local_url: str,
    tmp_path_factory: pytest.TempPathFactory,
) -> AsyncIterator[Plain]:
    root = tmp_path_factory.mktemp("site")
    port = free_port()
    origin = f"http://127.0.0.1:{port}"
    store = [
        "--dynamodb-endpoint",
        dynamodb_local_url,
        "--table-prefix",
        f"t{uuid.uuid4().hex[:10]}_",
    ]
    served = await Served(
        "--allowed-origin",
        origin,
        "--path-pattern",
        "/blog/{id}/",
        *store,
        "--data-dir",
        str(tmp_path_factory.mktemp("node")),
    ).start()
    refusing = await Served(
        "--allowed-origin",
        origin,
        "--unmatched-paths",
        "refuse",
        *store,
        "--data-dir",
        str(tmp_path_factory.mktemp("node")),
    ).start()
    for name, text in pages(served.http, refusing.ws).items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    site = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "http.server",
        str(port),
        "--bind",
        "127.0.0.1",
        "--directory",
        str(root),
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )
    try:
        await eventually(lambda: asyncio.to_thread(_answers, origin), bool)
        yield Plain(served, origin, refusing)
    finally:
        site.terminate()
        await site.wait()
        await served.kill()
        await refusing.kill()


def _answers(origin: str) -> bool:
    try:
        return http_get(origin + "/about/")[0] == 200
    except OSError:
        return False


async def test_a_plain_page_with_only_the_tag_is_counted_and_listed(
    plain: Plain, open_tab: OpenTab
) -> None:
    post = await open_tab(plain.origin + "/blog/hello-plain/")
    await expect(post.page.locator("[data-livecount='hello-plain']")).to_have_text(
        "1", timeout=TIMEOUT
    )
    await open_tab(plain.origin + "/about/")
    rows = await eventually(
        plain.pages,
        lambda rows: (
            {"hello-plain", "/about"} <= {r.get("articleId") or r.get("pageName") for r in rows}
            and any(r.get("articleTitle") for r in rows)
        ),
    )
    assert {  # each row links to its page on the site's origin
        "articleId": "hello-plain",
        "articleTitle": "Hello, plain",
        "path": "/blog/hello-plain",
        "url": plain.origin + "/blog/hello-plain",
        "totalViews": 1,
        "uniqueViews": 1,
    } in rows
    assert {
        "pageName": "/about",
        "path": "/about",
        "url": plain.origin + "/about",
        "totalViews": 1,
        "uniqueViews": 1,
    } in rows


async def test_a_second_copy_of_the_tag_does_nothing(plain: Plain, open_tab: OpenTab) -> None:
    tab = await open_tab(plain.origin + "/blog/twice/")
    await expect(tab.page.locator("[data-livecount='twice']")).to_have_text("1", timeout=TIMEOUT)
    assert (
        await tab.page.evaluate(
            "performance.getEntriesByType('resource').filter("
            "(r) => r.name.includes('/livecount.js')).length"
        )
        == 2
    )
    # Both copies ran before the page's first frame; a second client would have sent
    # its view in that frame, before the first view's answer could fill the counter.
    assert (tab.sockets, len(tab.views())) == (1, 1)


async def test_a_tag_added_after_the_page_loaded_counts_it(plain: Plain, open_tab: OpenTab) -> None:
    tab = await open_tab(plain.origin + "/blog/late/")
    await expect(tab.page.locator("[data-livecount]")).to_have_text("1", timeout=TIMEOUT)
    [view] = await tab.sent_views(1)
    assert (view["currentPage"], view["articleTitle"]) == ("/blog/late/", "Late")
    assert await tab.page.evaluate("typeof window.livecount.scan") == "function"


async def test_a_refused_path_is_said_once_on_the_console(plain: Plain, open_tab: OpenTab) -> None:
    tab = await open_tab(plain.origin + "/nowhere/")

    async def refusals() -> list[dict[str, Any]]:
        return [m for m in tab.received if m.get("error") == "unrecognised_page"]

    await eventually(refusals, lambda r: len(r) == 1)
    await tab.page.click("button")
    first, _ = await eventually(refusals, lambda r: len(r) == 2)
    assert [v["currentPage"] for v in tab.views()] == ["/nowhere/", "/nowhere/else/"]
    warnings = [line for line in tab.console if "livecount" in line]
    assert warnings == [f"warning: livecount: {first['detail']} (unrecognised_page)"]
    assert "--path-pattern" in warnings[0] and "--unmatched-paths" in warnings[0]
    await expect(tab.page.locator("[data-livecount]")).to_have_text(DASH)
