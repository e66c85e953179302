"""`livecount loadtest --json` against a real `livecount serve`: every view counted once.

A short, bounded run; nothing here asserts a speed.
"""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path
from typing import Any

from livecount.aws.store import Store
from livecount.tools import loadtest as client
from websockets.asyncio.client import connect
from websockets.asyncio.server import ServerConnection, serve
from websockets.exceptions import ConnectionClosed

from tests.support import ROOT, Launch, Served, eventually, http_get

ARTICLES = 5


async def command(url: str, *args: str) -> tuple[int, str, str]:
    """Run `livecount loadtest`: its exit code, stdout and stderr."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "livecount",
        "loadtest",
        "--url",
        url,
        *args,
        cwd=ROOT,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    return proc.returncode or 0, out.decode(), err.decode()


async def loadtest(url: str, *args: str) -> dict[str, Any]:
    """Run `livecount loadtest --json`; it must exit 0 and print its report."""
    code, out, err = await command(url, "--json", *args)
    assert code == 0, err[-2000:]
    report: dict[str, Any] = json.loads(out)
    return report


async def listed(served: Served) -> dict[str, int]:
    """The ids `/api/pages` lists, posts and pages, with their total views."""
    _, _, body = await asyncio.to_thread(http_get, served.http + "/api/pages?limit=1000")
    return {r.get("articleId") or r["pageName"]: r["totalViews"] for r in json.loads(body)}


async def reader_total(store: Store) -> int:
    items = (await store.ddb.scan(TableName=store.tables.reader, ConsistentRead=True))["Items"]
    return sum(int(i["totalViews"]["N"]) for i in items)


async def test_every_view_sent_is_answered_counted_and_pushed(
    launch: Launch, local_store: Store, tmp_path: Path
):
    served = await launch("--data-dir", str(tmp_path))
    report = await loadtest(
        served.ws,
        "--connections",
        "4",
        "--duration",
        "2",
        "--articles",
        str(ARTICLES),
        "--subscribers",
        "2",
        "--refreshed-ratio",
        "0.3",
        "--referrer-ratio",
        "0.2",
        "--article-prefix",
        "lt-",
    )
    assert report["sent"] > 0
    assert report["acked"] == report["sent"]
    assert report["errors"] == {} and report["unanswered"] == 0
    assert report["connect_failures"] == {} and report["opened"] == 6
    assert report["reply_ms"]["count"] == report["sent"]
    # every view reached both subscribers: all five articles are watched
    assert report["push_ms"]["count"] == report["sent"] and report["push_missing"] == 0
    assert report["push_ms"]["p99"] is not None and report["push_ms"]["p50"] is not None

    ids = [f"lt-{k}" for k in range(ARTICLES)]
    async with connect(served.ws) as ws:
        await ws.send(json.dumps({"message": "subscribe", "articleIds": ids}))
        counts = [json.loads(await asyncio.wait_for(ws.recv(), 10)) for _ in ids]
    assert sum(c["totalViews"] for c in counts) == report["sent"]
    await eventually(lambda: reader_total(local_store), lambda n: n == report["sent"])


async def test_a_paced_run_sends_at_most_the_rate(launch: Launch, tmp_path: Path):
    served = await launch("--data-dir", str(tmp_path))
    report = await loadtest(
        served.ws,
        "--connections",
        "3",
        "--duration",
        "1",
        "--rate",
        "50",
        "--articles",
        "1",
        "--article-prefix",
        "paced-",
    )
    assert 0 < report["sent"] <= 50 + 3  # the rate over one second, plus the first burst
    assert report["acked"] == report["sent"] and report["errors"] == {}
    assert report["target_rate"] == 50


async def test_a_server_that_closes_sockets_is_reported_not_crashed_on(launch: Launch):
    """The load client meets the server's limits like any other client: it reports
    what was refused and closed, and still prints its report."""
    served = await launch("--rate-limit", "5", "--rate-burst", "5")
    report = await loadtest(served.ws, "--connections", "2", "--duration", "2", "--articles", "1")
    assert report["errors"].get("rate_limited", 0) > 0
    assert report["dropped"] > 0  # refused 20 times in a row, a socket is closed


async def test_a_socket_keeps_up_to_in_flight_views_unanswered_and_never_more():
    """A server that answers only once it holds IN_FLIGHT views of a socket: a client
    that waited for each reply would stall it, and one that sent more would show."""
    in_flight, rounds = 3, 40
    held_most: list[int] = []
    order: list[str] = []

    async def batching(ws: ServerConnection) -> None:
        held: list[str] = []
        try:
            async for frame in ws:
                held.append(json.loads(frame)["articleId"])
                held_most.append(len(held))
                if len(held) == in_flight:
                    for article in held:  # in order, as livecount answers
                        await ws.send(
                            json.dumps(
                                {
                                    "message": "views",
                                    "articleId": article,
                                    "totalViews": 1,
                                    "uniqueViews": 1,
                                }
                            )
                        )
                    order.extend(held)
                    held.clear()
        except ConnectionClosed:
            pass

    async with serve(batching, "127.0.0.1", 0) as server:
        port = next(iter(server.sockets)).getsockname()[1]
        # One socket and a whole number of windows: every window fills, so nothing here
        # waits on a clock; --max-views ends the load.
        report = await client.run(
            client.Options(
                url=f"ws://127.0.0.1:{port}/ws",
                connections=1,
                in_flight=in_flight,
                duration=30.0,
                drain_timeout=5.0,
                max_views=in_flight * rounds,
                articles=50,
                seed=3,
            )
        )
    assert max(held_most) == in_flight
    assert report.sent == report.acked == len(order) == in_flight * rounds
    assert report.unanswered == 0 and report.unexpected == 0 and report.errors == {}
    assert report.reply_ms.count == report.sent and report.in_flight == in_flight


async def test_pipelined_views_are_each_answered_and_counted_once(
    launch: Launch, local_store: Store, tmp_path: Path
):
    served = await launch("--data-dir", str(tmp_path))
    report = await loadtest(
        served.ws,
        "--connections",
        "3",
        "--in-flight",
        "4",
        "--duration",
        "2",
        "--articles",
        str(ARTICLES),
        "--article-prefix",
        "pipe-",
    )
    assert report["in_flight"] == 4 and report["sent"] > 0
    assert report["acked"] == report["sent"] and report["errors"] == {}
    assert report["unanswered"] == 0 and report["unexpected"] == 0
    ids = [f"pipe-{k}" for k in range(ARTICLES)]
    async with connect(served.ws) as ws:
        await ws.send(json.dumps({"message": "subscribe", "articleIds": ids}))
        counts = [json.loads(await asyncio.wait_for(ws.recv(), 10)) for _ in ids]
    assert sum(c["totalViews"] for c in counts) == report["sent"]
    await eventually(lambda: reader_total(local_store), lambda n: n == report["sent"])


async def test_a_store_that_counts_a_real_site_is_refused_unless_asked(launch: Launch):
    """A store with only load tests' rows is fair game; one real post, and nothing is
    sent until --into-real-site says so."""
    served = await launch()
    first = await loadtest(served.ws, "--connections", "1", "--max-views", "5", "--articles", "1")
    assert first["acked"] == 5
    await eventually(lambda: listed(served), lambda ids: "loadtest-0" in ids)
    again = await loadtest(
        served.ws,
        "--connections",
        "1",
        "--max-views",
        "5",
        "--articles",
        "1",
        "--article-prefix",
        "again-",
    )
    assert again["acked"] == 5  # a load test's rows are no real site
    async with connect(served.ws) as ws:
        await ws.send(
            json.dumps({"message": "views", "articleId": "hello-world", "articleTitle": "Hello"})
        )
        assert json.loads(await ws.recv())["message"] == "views"
    await eventually(
        lambda: listed(served), lambda ids: "hello-world" in ids and ids.get("again-0") == 5
    )

    code, out, err = await command(
        served.ws,
        "--connections",
        "1",
        "--max-views",
        "5",
        "--articles",
        "1",
        "--article-prefix",
        "again-",
    )
    assert code == 2 and out == ""
    assert err.startswith(f"livecount loadtest: {served.ws} counts a real site (hello-world)")
    assert "livecount serve --port 8081 --table-prefix loadtest- --data-dir data-loadtest" in err
    assert "--into-real-site" in err
    assert (await listed(served))["again-0"] == 5  # nothing more was sent

    code, out, err = await command(
        served.ws,
        "--connections",
        "1",
        "--max-views",
        "5",
        "--articles",
        "1",
        "--article-prefix",
        "asked-",
        "--into-real-site",
        "--json",
    )
    assert code == 0, err
    assert json.loads(out)["acked"] == 5
    await eventually(lambda: listed(served), lambda ids: "asked-0" in ids)


async def test_progress_off_a_terminal_is_plain_lines(launch: Launch):
    served = await launch()
    code, out, err = await command(
        served.ws, "--connections", "2", "--duration", "1", "--articles", "1"
    )
    assert code == 0, err
    lines = err.splitlines()
    assert "loadtest opening: 0 of 2 sockets" in lines
    assert "loadtest opening: 2 of 2 sockets" in lines
    assert lines[-1].startswith("loadtest load: 1 of 1 s, ") and "views/s" in lines[-1]
    assert "views sent" in out  # the report itself, on stdout
