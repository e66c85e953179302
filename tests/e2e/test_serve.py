"""`livecount serve` as a subprocess, driven over real WebSockets, on DynamoDB Local."""

from __future__ import annotations

import asyncio
import fcntl
import json
import os
import pty
import re
import sys
import termios
from pathlib import Path
from typing import Any

import pytest
import websockets
from livecount.aws.store import Store
from livecount.core.ledger import Counts
from livecount.core.pages import Target
from websockets.asyncio.client import ClientConnection, connect

from tests.support import ROOT, Launch, Served, eventually, free_port, http_get


async def ask(ws: ClientConnection, message: dict[str, Any]) -> dict[str, Any]:
    """The answer to `message`. A `views` is answered by a `views` or an error; a `count`
    push may come first (readers move with every view), and is no answer."""
    await ws.send(json.dumps(message))
    async with asyncio.timeout(10):
        while True:
            answer: dict[str, Any] = json.loads(await ws.recv())
            if message["message"] != "views" or answer["message"] != "count":
                return answer


async def view(ws: ClientConnection, article: str, **fields: Any) -> dict[str, Any]:
    return await ask(ws, {"message": "views", "articleId": article, **fields})


async def until_count(ws: ClientConnection, article: str, total: int) -> dict[str, Any]:
    """Read pushes until one carries `total` for `article`."""
    async with asyncio.timeout(20):
        while True:
            message = json.loads(await ws.recv())
            if message.get("articleId") == article and message["totalViews"] == total:
                return message


async def table(store: Store, name: str, key: str) -> dict[str, tuple[int, int]]:
    items = (await store.ddb.scan(TableName=name, ConsistentRead=True))["Items"]
    return {i[key]["S"]: (int(i["totalViews"]["N"]), int(i["uniqueViews"]["N"])) for i in items}


async def test_replies_count_the_view_and_pushes_reach_subscribers(launch: Launch):
    served = await launch()
    async with connect(served.ws) as reader_page, connect(served.ws) as writer_page:
        first = await ask(reader_page, {"message": "subscribe", "articleIds": ["hello"]})
        assert first == {
            "message": "count",
            "articleId": "hello",
            "totalViews": 0,
            "uniqueViews": 0,
            "readingNow": 0,
        }
        assert await view(writer_page, "hello", articleTitle="Hello") == {
            "message": "views",
            "articleId": "hello",
            "totalViews": 1,
            "uniqueViews": 1,
            "readingNow": 1,
        }
        assert (await view(writer_page, "hello", refreshed=True))["totalViews"] == 2
        reply = await view(writer_page, "hello", refreshed=False)
        assert (reply["totalViews"], reply["uniqueViews"]) == (3, 2)
        pushed = await until_count(reader_page, "hello", 3)
        assert pushed["message"] == "count" and pushed["uniqueViews"] == 2


async def test_pages_are_counted_and_unknown_pages_are_not(launch: Launch, local_store: Store):
    served = await launch(
        "--page", "/=Home_Page", "--page", "/now=Now_Page", "--unmatched-paths", "refuse"
    )
    async with connect(served.ws) as ws:
        home = await ask(ws, {"message": "views", "currentPage": "/", "previousPage": ""})
        assert home == {
            "message": "views",
            "pageName": "Home_Page",
            "totalViews": 1,
            "uniqueViews": 1,
            "readingNow": 1,
        }
        assert (await ask(ws, {"message": "views", "currentPage": "/now/"}))[
            "pageName"
        ] == "Now_Page"
        bad = await ask(ws, {"message": "views", "currentPage": "/pages/about"})
        assert bad["message"] == "error" and bad["error"] == "unrecognised_page"
        assert "--unmatched-paths page" in bad["detail"]
        sub = await ask(ws, {"message": "subscribe", "pageNames": ["Now_Page"]})
        assert sub["pageName"] == "Now_Page" and sub["totalViews"] == 1
    await eventually(
        lambda: table(local_store, local_store.tables.pages, "pageName"),
        lambda t: t == {"Home_Page": (1, 1), "Now_Page": (1, 1)},
    )


async def test_every_path_counts_as_a_post_by_pattern_or_a_page_of_its_own(
    launch: Launch, local_store: Store
):
    served = await launch(
        "--path-pattern", "/blog/{id}/", "--path-pattern", "/{yyyy}/{mm}/{dd}/{id}/"
    )
    async with connect(served.ws) as ws:
        post = await ask(
            ws,
            {
                "message": "views",
                "currentPage": "/blog/hello-plain/",
                "articleTitle": "Hello, plain",
            },
        )
        assert (post.get("articleId"), post["totalViews"]) == ("hello-plain", 1)
        dated = await ask(ws, {"message": "views", "currentPage": "/2024/05/17/dated/?x=1"})
        assert dated.get("articleId") == "dated"
        for spelling in ("/about/", "/about", "/about/index.html", "/about?utm=1"):
            about = await ask(ws, {"message": "views", "currentPage": spelling})
            assert about.get("pageName") == "/about", about
        assert about["totalViews"] == 4
        sub = await ask(ws, {"message": "subscribe", "pageNames": ["/about/"]})
        assert (sub["pageName"], sub["totalViews"]) == ("/about", 4)
        home = await ask(ws, {"message": "views", "currentPage": "/"})
        assert home.get("pageName") == "Home_Page"  # the seed's names stay

    def listed(rows: list[dict[str, Any]]) -> dict[str, tuple[int, str | None]]:
        return {
            r.get("articleId") or r["pageName"]: (r["totalViews"], r.get("articleTitle"))
            for r in rows
        }

    async def pages() -> list[dict[str, Any]]:
        status, _, body = await asyncio.to_thread(http_get, served.http + "/api/pages")
        return list(json.loads(body)) if status == 200 else []

    expected = {
        "/about": (4, None),
        "hello-plain": (1, "Hello, plain"),
        "dated": (1, ""),
        "Home_Page": (1, None),
    }
    await eventually(pages, lambda rows: listed(rows) == expected)


async def test_the_reader_table_ends_equal_to_the_writer(launch: Launch, local_store: Store):
    served = await launch("--site-domain", "blog.example")
    async with connect(served.ws) as ws:
        for i in range(30):
            await view(
                ws,
                f"post-{i % 4}",
                refreshed=i % 3 == 0,
                referrer="https://news.example/x" if i % 2 else "https://blog.example/",
            )
    writer = await eventually(
        lambda: table(local_store, local_store.tables.writer, "articleId"),
        lambda t: sum(total for total, _ in t.values()) == 30,
    )
    await eventually(
        lambda: table(local_store, local_store.tables.reader, "articleId"), lambda r: r == writer
    )
    assert writer["post-0"] == (8, 5)  # i = 0,4,...,28: 8 views; 0, 12 and 24 refreshed
    # Referrer rows are separate writes of the same flushes: wait for all 15, not the first.
    await eventually(
        lambda: local_store.reports.top_referrers("site"),
        lambda hosts: hosts == [("news.example", 15)],
    )  # the site's own is internal


async def test_bad_input_gets_an_error_and_the_connection_stays(launch: Launch):
    served = await launch()
    async with connect(served.ws) as ws, connect(served.ws) as other:
        for frame in [
            "nope",
            "[]",
            '{"message":"views","articleId":1}',
            '{"message":"x"}',
            '{"message":"views","articleId":"' + "a" * 300 + '"}',
        ]:
            await ws.send(frame)
            reply = json.loads(await asyncio.wait_for(ws.recv(), 10))
            assert reply["message"] == "error" and reply["error"] and reply["detail"]
        await ws.send(b"\x00\x01")
        assert json.loads(await ws.recv())["error"] == "binary_frame"
        assert (await view(ws, "still-open"))["totalViews"] == 1
        await ws.send("x" * 5000)
        with pytest.raises(websockets.ConnectionClosed) as closed:
            await asyncio.wait_for(ws.recv(), 10)
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 1009
        assert (await view(other, "still-open"))["totalViews"] == 2


async def test_health_and_unknown_paths(launch: Launch):
    served = await launch()
    status, headers, body = await asyncio.to_thread(http_get, served.http + "/healthz")
    assert status == 200 and json.loads(body) == {"status": "ok"}
    assert headers["Content-Type"] == "application/json"
    status, _, body = await asyncio.to_thread(http_get, served.http + "/nowhere")
    assert status == 404 and json.loads(body)["error"] == "not_found"


async def test_health_is_503_when_dynamodb_stops_answering(launch: Launch):
    from moto.server import ThreadedMotoServer

    port = free_port()
    moto = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    moto.start()
    try:
        served = await launch("--dynamodb-endpoint", f"http://127.0.0.1:{port}", shared=False)
        status, _, _ = await asyncio.to_thread(http_get, served.http + "/healthz")
        assert status == 200
    finally:
        moto.stop()

    async def health() -> tuple[int, dict[str, str], bytes]:
        return await asyncio.to_thread(http_get, served.http + "/healthz")

    _, _, body = await eventually(health, lambda answer: answer[0] == 503)
    assert json.loads(body)["status"] == "unavailable"


async def test_serve_waits_for_a_store_that_is_not_up_yet(tmp_path: Path):
    served = Served(
        "--dynamodb-endpoint", f"http://127.0.0.1:{free_port()}", "--data-dir", str(tmp_path)
    )
    listening = await served.spawn()
    try:

        async def said() -> list[dict[str, Any]]:
            return served.events("dynamodb_unreachable")

        await eventually(said, bool)  # says why it is waiting, and keeps waiting
        assert not listening.done()
        assert await served.stop() == 0  # and a stop while waiting is clean
        with pytest.raises(RuntimeError, match="exited before listening"):
            await listening  # it never listened
    finally:
        await served.kill()


async def test_origins_outside_the_allowed_list_get_403(launch: Launch):
    served = await launch("--allowed-origin", "https://blog.example")
    with pytest.raises(websockets.InvalidStatus) as refused:
        async with connect(served.ws, origin="https://evil.example"):  # type: ignore[arg-type]
            pass
    assert refused.value.response.status_code == 403
    async with connect(served.ws, origin="https://blog.example") as ws:  # type: ignore[arg-type]
        assert (await view(ws, "a"))["totalViews"] == 1


async def test_sigterm_flushes_everything_then_exits(launch: Launch, local_store: Store):
    served = await launch("--flush-interval", "3600")
    async with connect(served.ws) as ws:
        for _ in range(7):
            await view(ws, "late")
    assert await table(local_store, local_store.tables.writer, "articleId") == {}
    assert await served.stop() == 0
    assert await table(local_store, local_store.tables.writer, "articleId") == {"late": (7, 7)}
    assert await table(local_store, local_store.tables.reader, "articleId") == {"late": (7, 7)}


async def test_counts_survive_a_restart(launch: Launch, local_store: Store):
    """The counts are in DynamoDB when the node stops, and the next node counts on from them."""
    kept = Target("post", "kept")
    served = await launch()
    async with connect(served.ws) as ws:
        for _ in range(3):
            await view(ws, "kept")
    assert await served.stop() == 0
    assert await local_store.read_counts([kept]) == {kept: Counts(3, 3)}
    again = await launch()
    async with connect(again.ws) as ws:
        reply = await view(ws, "kept")
    assert (reply["totalViews"], reply["uniqueViews"]) == (4, 4)
    await eventually(
        lambda: local_store.read_counts([kept]), lambda counts: counts == {kept: Counts(4, 4)}
    )


async def test_the_embedded_store_keeps_counts_in_the_data_dir(tmp_path: Path):
    """The `make run` path: DynamoDB Local as a child process, files in --data-dir."""
    args = ("--data-dir", str(tmp_path), "--dynamodb-endpoint", "embedded")
    served = await Served(*args).start()
    try:
        async with connect(served.ws) as ws:
            assert (await view(ws, "embedded"))["totalViews"] == 1
            await view(ws, "embedded", refreshed=True)
        assert await served.stop() == 0
        assert served.events("dynamodb_local_stopped")
        assert (tmp_path / "dynamodb").is_dir()
        again = await Served(*args).start()
        try:
            async with connect(again.ws) as ws:
                reply = await view(ws, "embedded")
            assert Counts(reply["totalViews"], reply["uniqueViews"]) == Counts(3, 2)
        finally:
            assert await again.stop() == 0
    finally:
        await served.kill()


async def test_views_sent_just_before_the_page_leaves_are_counted(launch: Launch):
    served = await launch()
    async with connect(served.ws) as leaving:
        for _ in range(5):
            await leaving.send(json.dumps({"message": "views", "articleId": "unload"}))
    async with connect(served.ws) as ws:

        async def total() -> int:
            reply = await ask(ws, {"message": "subscribe", "articleIds": ["unload"]})
            return int(reply["totalViews"])

        await eventually(total, lambda n: n == 5)


async def test_a_page_watches_what_it_shows_not_everything_it_showed(launch: Launch):
    served = await launch()
    async with connect(served.ws) as reader_page, connect(served.ws) as other:
        await ask(reader_page, {"message": "subscribe", "articleIds": ["kept"]})
        await view(reader_page, "first")
        await view(reader_page, "second")  # navigated on: "first" is no longer shown
        await reader_page.send(json.dumps({"message": "subscribe", "articleIds": ["sync0"]}))
        while (
            json.loads(await asyncio.wait_for(reader_page.recv(), 10)).get("articleId") != "sync0"
        ):
            pass  # its own views' replies and pushes, from before the switch
        await view(other, "first")
        await view(other, "second")
        await view(other, "kept")
        seen: set[str] = set()
        while "kept" not in seen or "second" not in seen:
            seen.add(json.loads(await asyncio.wait_for(reader_page.recv(), 10))["articleId"])
        # Pushes go out together, so any push for "first" came before this answer.
        await reader_page.send(json.dumps({"message": "subscribe", "articleIds": ["sync"]}))
        while (message := json.loads(await asyncio.wait_for(reader_page.recv(), 10))).get(
            "articleId"
        ) != "sync":
            seen.add(message["articleId"])
        assert "first" not in seen


# -- at a terminal ----------------------------------------------------------------------------
class OnTerminal:
    """`livecount serve` on a pseudo-terminal, as a person runs it: the terminal is its
    stdin, stdout, stderr and controlling terminal, so ^C typed there is the SIGINT
    Ctrl-C sends. What it shows is collected, line ends as a terminal gets them."""

    def __init__(self, *args: str) -> None:
        self.argv = [
            sys.executable,
            "-m",
            "livecount",
            "serve",
            "--host",
            "127.0.0.1",
            "--port",
            "0",
            *args,
        ]
        self.text = ""
        self.closed = asyncio.Event()
        self.master = -1
        self.proc: asyncio.subprocess.Process | None = None

    async def start(self) -> OnTerminal:
        self.master, slave = pty.openpty()
        env = {k: v for k, v in os.environ.items() if not k.startswith("LIVECOUNT_")}
        try:
            self.proc = await asyncio.create_subprocess_exec(
                *self.argv,
                stdin=slave,
                stdout=slave,
                stderr=slave,
                cwd=ROOT,
                env=env,
                start_new_session=True,
                preexec_fn=_take_the_terminal,
            )
        finally:
            os.close(slave)
        os.set_blocking(self.master, False)
        asyncio.get_running_loop().add_reader(self.master, self._read)
        return self

    def _read(self) -> None:
        try:
            data = os.read(self.master, 65536)
        except BlockingIOError:
            return
        except OSError:  # EIO: the process and its children closed the terminal
            data = b""
        if not data:
            asyncio.get_running_loop().remove_reader(self.master)
            self.closed.set()
            return
        self.text += data.decode(errors="replace")

    @property
    def lines(self) -> list[str]:
        return self.text.replace("\r\n", "\n").splitlines()

    async def shows(self, wanted: str, timeout: float = 90.0) -> None:
        async def text() -> str:
            return self.text

        await eventually(text, lambda t: wanted in t, timeout=timeout)

    def port(self) -> int:
        found = re.search(r"Dashboard +http://127\.0\.0\.1:(\d+)/", self.text)
        assert found, self.text
        return int(found[1])

    async def ctrl_c(self, timeout: float = 60.0) -> int:
        """Type ^C; the exit code, once the output is read to its end."""
        assert self.proc is not None
        os.write(self.master, b"\x03")
        code = await asyncio.wait_for(self.proc.wait(), timeout)
        await asyncio.wait_for(self.closed.wait(), timeout)
        return code

    async def close(self) -> None:
        if self.proc is not None and self.proc.returncode is None:
            self.proc.kill()
            await self.proc.wait()
        if not self.closed.is_set():
            asyncio.get_running_loop().remove_reader(self.master)
        os.close(self.master)


def _take_the_terminal() -> None:
    """In the child, a session leader by then: stdin's terminal becomes its own."""
    fcntl.ioctl(0, termios.TIOCSCTTY, 0)


async def test_at_a_terminal_serve_shows_progress_then_where_to_go_and_ctrl_c_stops_it(
    dynamodb_local_url: str, prefix: str, tmp_path: Path, local_store: Store
):
    data = tmp_path / "node"
    shown = await OnTerminal(
        "--dynamodb-endpoint",
        dynamodb_local_url,
        "--table-prefix",
        prefix,
        "--data-dir",
        str(data),
        "--flush-interval",
        "3600",
    ).start()
    try:
        await shown.shows("Ctrl-C stops it")
        lines = [" ".join(line.split()) for line in shown.lines]
        ready = next(i for i, line in enumerate(lines) if " is ready (" in line)
        steps = [line for line in lines[:ready] if " warning " not in line]
        assert steps == [
            "checking the tables…",
            "replaying the journal…",
            "catching up the stream…",
        ], shown.text
        port = shown.port()
        token = (data / "admin-token").read_text().strip()
        for row in (
            f"Dashboard http://127.0.0.1:{port}/",
            f"WebSocket ws://127.0.0.1:{port}/ws",
            f"Log in http://127.0.0.1:{port}/login?token={token}",
            f'Store DynamoDB at {dynamodb_local_url}, table prefix "{prefix}"',
            f"Data dir {data.resolve()}",
        ):
            assert row in lines, (row, shown.text)
        assert not [line for line in lines if line.startswith("{")]  # no JSON for a person
        assert "log in to the dashboard at" not in shown.text  # the banner says it
        # No demo unless `--demo on`: its views would count in this store.
        assert not [line for line in lines if line.startswith("Demo ")], shown.text
        for path in ("/demo", "/demo/posts/hello-world"):
            assert (await asyncio.to_thread(http_get, f"http://127.0.0.1:{port}{path}"))[0] == 404
        async with connect(f"ws://127.0.0.1:{port}/ws") as ws:
            assert (await view(ws, "typed"))["totalViews"] == 1
        assert await table(local_store, local_store.tables.writer, "articleId") == {}
        assert await shown.ctrl_c() == 0
        tail = [" ".join(line.split()) for line in shown.lines[len(lines) :]]
        assert [
            line
            for line in tail
            if line.endswith("stopping: closing sockets, storing the last views…")
        ], shown.text
        assert tail[-1] == "stopped.", shown.text
        # Stopped after storing what it counted, as the banner promised.
        assert await table(local_store, local_store.tables.writer, "articleId") == {"typed": (1, 1)}
    finally:
        await shown.close()


async def test_at_a_terminal_log_format_json_gives_json_lines(
    dynamodb_local_url: str, prefix: str, tmp_path: Path
):
    shown = await OnTerminal(
        "--dynamodb-endpoint",
        dynamodb_local_url,
        "--table-prefix",
        prefix,
        "--data-dir",
        str(tmp_path / "node"),
        "--log-format",
        "json",
    ).start()
    try:
        await shown.shows('"event":"ready"')
        entries = [json.loads(line) for line in shown.lines if line.startswith("{")]
        events = [e["event"] for e in entries]
        assert {"starting", "tables_ready", "listening", "ready"} <= set(events), events
        others = [line for line in shown.lines if line.strip() and not line.startswith("{")]
        assert [line.split(" at ")[0] for line in others] == [
            "livecount: log in to the dashboard"
        ]  # stderr, as before: not the JSON log
        assert "is ready" not in shown.text
        seen = len(shown.lines)
        assert await shown.ctrl_c() == 0
        after = [line.removeprefix("^C") for line in shown.lines[seen:]]
        assert "stopped" in [json.loads(line)["event"] for line in after if line]
    finally:
        await shown.close()


async def test_the_page_cap_holds_across_nodes_and_restarts(launch: Launch, tmp_path: Path):
    """Every path counts as a page, so the site lists at most --max-pages of them, on all
    nodes together: past it, a new page is refused and counted nowhere; known ones count."""
    first = await launch("--max-pages", "3", "--node-id", "a", "--data-dir", str(tmp_path / "a"))
    second = await launch("--max-pages", "3", "--node-id", "b", "--data-dir", str(tmp_path / "b"))
    async with connect(first.ws) as ws:
        for path in ("/one", "/two", "/three"):
            assert (await ask(ws, {"message": "views", "currentPage": path}))["totalViews"] == 1
        refused = await ask(ws, {"message": "views", "currentPage": "/four"})
        assert refused["error"] == "too_many_pages" and "--max-pages" in refused["detail"]
    async with connect(second.ws) as ws:  # the other node: the same count
        assert (await ask(ws, {"message": "views", "articleId": "new"}))[
            "error"
        ] == "too_many_pages"
        known = await ask(ws, {"message": "views", "currentPage": "/two/"})
        assert known.get("pageName") == "/two" and known["totalViews"] >= 1  # counted
        bot = await ask(ws, {"message": "views", "currentPage": "/five", "resumed": True})
        assert bot.get("counted") is False  # a view that counts nothing lists nothing
    await first.stop()
    again = await launch("--max-pages", "4", "--node-id", "a", "--data-dir", str(tmp_path / "a"))
    async with connect(again.ws) as ws:  # after a restart, with room for one more
        assert (await ask(ws, {"message": "views", "currentPage": "/four"}))["totalViews"] == 1
        assert (await ask(ws, {"message": "views", "currentPage": "/six"}))[
            "error"
        ] == "too_many_pages"
