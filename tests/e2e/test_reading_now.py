"""Reading now, against a real `livecount serve` with real WebSocket clients: who reads
what, pushed to the pages that show it, on one node and across nodes."""

from __future__ import annotations

import asyncio
import json
import signal
import socket
import struct
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path
from typing import Any

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from tests.support import Launch, Served, eventually, http_get

LEASE_TIME = 3.0
ACROSS_NODES = 2.0  # the bound for a change to reach another node's pages


class Page:
    """A page with its socket: what it was last told of each target's readers."""

    def __init__(self, ws: ClientConnection) -> None:
        self.ws = ws
        self.reading: dict[str, int] = {}
        self.replies: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self._reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        try:
            async for raw in self.ws:
                message = json.loads(raw)
                key = message.get("articleId") or message.get("pageName")
                if message["message"] in ("views", "count") and key is not None:
                    self.reading[key] = message["readingNow"]
                if message["message"] != "count":
                    await self.replies.put(message)
        except ConnectionClosed:
            pass

    async def view(self, **fields: Any) -> dict[str, Any]:
        await self.ws.send(json.dumps({"message": "views", **fields}))
        return await asyncio.wait_for(self.replies.get(), 20)

    async def visible(self, visible: bool) -> None:
        await self.ws.send(json.dumps({"message": "visibility", "visible": visible}))

    async def sees(self, key: str, n: int, timeout: float = 20.0) -> None:
        async def now() -> int | None:
            return self.reading.get(key)

        await eventually(now, lambda seen: seen == n, timeout=timeout)

    def kill(self) -> None:
        """Drop the TCP connection at once with a reset: no close frame, no FIN."""
        sock = self.ws.transport.get_extra_info("socket")
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.ws.transport.abort()


@asynccontextmanager
async def pages(served: Served | None = None) -> AsyncIterator[Any]:
    """Open pages on nodes, every one closed (and its reader ended) at the end."""
    async with AsyncExitStack() as stack:
        opened: list[Page] = []

        async def open_page(on: Served | None = None, **headers: str) -> Page:
            target = on or served
            assert target is not None
            ws = await stack.enter_async_context(
                connect(target.ws, user_agent_header=headers.get("agent", "Mozilla/5.0 (X11)"))
            )
            page = Page(ws)
            opened.append(page)
            return page

        yield open_page
        for page in opened:
            await page.ws.close()
            await page._reader


async def test_a_second_reader_moves_the_first_pages_number_and_leaves_it(launch: Launch):
    served = await launch()
    async with pages(served) as open_page:
        first, second = await open_page(), await open_page()
        assert (await first.view(articleId="a"))["readingNow"] == 1
        assert (await second.view(articleId="a"))["readingNow"] == 2
        await first.sees("a", 2)  # pushed: the first page did nothing

        await second.visible(False)  # its tab is hidden: not reading
        await first.sees("a", 1)
        await second.visible(True)
        await first.sees("a", 2)

        await second.view(articleId="b")  # it went on to another post
        await first.sees("a", 1)
        await second.view(currentPage="/not-a-counted-page")  # refused, and not reading b
        third = await open_page()
        assert (await third.view(articleId="b"))["readingNow"] == 1

        await second.view(articleId="a")
        await first.sees("a", 2)
        await second.ws.close()  # a close frame
        await first.sees("a", 1)


async def test_a_socket_dropped_without_a_close_frame_stops_reading(launch: Launch):
    served = await launch()
    async with pages(served) as open_page:
        first = await open_page()
        await first.view(articleId="a")
        gone = [await open_page() for _ in range(3)]
        for page in gone:
            await page.view(articleId="a")
        await first.sees("a", 4)
        for page in gone:
            page.kill()
        await first.sees("a", 1)


async def test_a_bot_is_told_it_was_not_counted_and_never_reads(launch: Launch):
    served = await launch()
    async with pages(served) as open_page:
        person = await open_page()
        counted = await person.view(articleId="a")
        assert "counted" not in counted and counted["readingNow"] == 1
        bot = await open_page(agent="Mozilla/5.0 HeadlessChrome/120.0")
        reply = await bot.view(articleId="a")
        assert reply == {
            "message": "views",
            "totalViews": 1,
            "uniqueViews": 1,
            "readingNow": 1,
            "articleId": "a",
            "counted": False,
            "reason": "bot",
        }
        await bot.visible(True)
        status, _, body = await asyncio.to_thread(http_get, f"{served.http}/api/now")
        assert status == 200 and json.loads(body)["readingNow"] == 1


async def test_api_now_lists_what_is_read_most_read_first_with_titles(launch: Launch):
    served = await launch()
    async with pages(served) as open_page:
        for _ in range(3):
            await (await open_page()).view(articleId="a", articleTitle="Post A")
        for _ in range(2):
            await (await open_page()).view(articleId="b")
        hidden = await open_page()
        await hidden.view(articleId="b")
        await hidden.visible(False)
        await (await open_page()).view(currentPage="/")

        async def now() -> dict[str, Any]:
            status, headers, body = await asyncio.to_thread(http_get, f"{served.http}/api/now")
            assert status == 200 and headers["Content-Type"] == "application/json"
            return dict(json.loads(body))

        # The title comes from the store once the view is flushed and copied.
        assert await eventually(now, lambda n: n["pages"][0].get("articleTitle")) == {
            "readingNow": 6,
            "pages": [
                {"articleId": "a", "articleTitle": "Post A", "readingNow": 3},
                {"articleId": "b", "readingNow": 2},
                {"pageName": "Home_Page", "readingNow": 1},
            ],
        }
        status, _, body = await asyncio.to_thread(http_get, f"{served.http}/api/now?limit=1")
        assert json.loads(body) == {
            "readingNow": 6,
            "pages": [{"articleId": "a", "articleTitle": "Post A", "readingNow": 3}],
        }
        status, _, body = await asyncio.to_thread(http_get, f"{served.http}/api/now?limit=0")
        assert status == 400 and json.loads(body)["parameter"] == "limit"


async def start_node(launch: Launch, tmp_path: Path, name: str) -> Served:
    return await launch(
        "--node-id", name, "--data-dir", str(tmp_path / name), "--lease-time", str(LEASE_TIME)
    )


async def test_nodes_see_each_others_readers_and_a_dead_nodes_go(launch: Launch, tmp_path: Path):
    a, b = await start_node(launch, tmp_path, "a"), await start_node(launch, tmp_path, "b")
    async with pages() as open_page:
        on_a, on_b = await open_page(a), await open_page(b)
        await on_a.view(articleId="x")
        await on_b.view(articleId="x")
        # Once each node knows the other is alive (a lease round), both see both.
        await on_a.sees("x", 2, timeout=30)
        await on_b.sees("x", 2, timeout=30)

        # From then on, a change on one node reaches the other's pages within 2 s.
        more = [await open_page(b) for _ in range(2)]
        for page in more:
            await page.view(articleId="x")
        await on_a.sees("x", 4, timeout=ACROSS_NODES)
        await more[0].visible(False)
        await on_a.sees("x", 3, timeout=ACROSS_NODES)
        more[1].kill()
        await on_a.sees("x", 2, timeout=ACROSS_NODES)
        await on_a.view(articleId="y")  # a's own reader moves: b's pages learn it
        await on_b.sees("x", 1, timeout=ACROSS_NODES)

        # A node that dies takes its readers along within the lease time.
        await on_a.view(articleId="x")
        await on_a.sees("x", 2, timeout=ACROSS_NODES)
        assert await b.stop(signal.SIGKILL) == -signal.SIGKILL
        await on_a.sees("x", 1, timeout=LEASE_TIME + 1)
