"""Faults between livecount and DynamoDB, and process kills: every view that got a
reply is counted exactly once in the writer and the reader tables."""

from __future__ import annotations

import asyncio
import functools
import json
import os
import random
import re
import signal
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import pytest_asyncio
from livecount.aws.store import Store
from websockets.asyncio.client import connect

from tests.faults import FaultProxy
from tests.support import Launch, Served, eventually, http_get

ARTICLES = ("alpha", "beta", "gamma")
WRITES = ("UpdateItem", "BatchExecuteStatement")  # counts go one by one or 25 a request
OUTAGE_SECONDS = float(os.environ.get("LIVECOUNT_OUTAGE_SECONDS", "0"))


@pytest_asyncio.fixture
async def proxy(dynamodb_local_url: str) -> AsyncIterator[FaultProxy]:
    port = urlsplit(dynamodb_local_url).port
    assert port is not None
    proxy = await FaultProxy(port).start()
    yield proxy
    await proxy.stop()


async def send_views(served: Served, count: int, start: int = 0) -> dict[str, tuple[int, int]]:
    """Send views round-robin; returns the last replied counts per article."""
    replied: dict[str, tuple[int, int]] = {}
    async with connect(served.ws) as ws:
        for i in range(start, start + count):
            article = ARTICLES[i % len(ARTICLES)]
            await ws.send(
                json.dumps({"message": "views", "articleId": article, "refreshed": i % 4 == 0})
            )
            # A deadline on each reply: a node stuck on the store fails here, not hangs.
            reply = json.loads(await asyncio.wait_for(ws.recv(), 20))
            while reply["message"] == "count":  # pushes: the sender watches its articles
                reply = json.loads(await asyncio.wait_for(ws.recv(), 20))
            assert reply["message"] == "views", reply
            replied[article] = (reply["totalViews"], reply["uniqueViews"])
    return replied


async def table(store: Store, name: str) -> dict[str, tuple[int, int]]:
    items = (await store.ddb.scan(TableName=name, ConsistentRead=True))["Items"]
    return {
        i["articleId"]["S"]: (int(i["totalViews"]["N"]), int(i["uniqueViews"]["N"])) for i in items
    }


async def exactly(store: Store, expected: dict[str, tuple[int, int]]) -> None:
    """The writer, then the reader, reach exactly the replied counts."""
    await eventually(lambda: table(store, store.tables.writer), lambda t: t == expected)
    await eventually(lambda: table(store, store.tables.reader), lambda t: t == expected)


def expected_for(views: int) -> dict[str, tuple[int, int]]:
    counts = {a: [0, 0] for a in ARTICLES}
    for i in range(views):
        counts[ARTICLES[i % len(ARTICLES)]][0] += 1
        counts[ARTICLES[i % len(ARTICLES)]][1] += i % 4 != 0
    return {a: (t, u) for a, (t, u) in counts.items()}


@pytest.mark.parametrize("fault", ["cut", "throttle", "error500"])
async def test_lost_answers_throttling_and_5xx_cost_no_view(
    launch: Launch, local_store: Store, proxy: FaultProxy, fault: Any
):
    served = await launch("--dynamodb-endpoint", proxy.url)
    proxy.set(fault, only=WRITES, budget=8)
    replied = await send_views(served, 40)
    assert replied == expected_for(40)
    await exactly(local_store, replied)
    assert proxy.faults > 0  # the faults did happen
    assert await served.stop() == 0
    assert await table(local_store, local_store.tables.writer) == replied


async def test_an_unreachable_store_does_not_stop_counting(
    launch: Launch, local_store: Store, proxy: FaultProxy
):
    served = await launch("--dynamodb-endpoint", proxy.url)
    await send_views(served, 3)  # each article's stored count is now known
    await exactly(local_store, expected_for(3))
    proxy.set("refuse")
    replied = await send_views(served, 30, start=3)
    assert replied == expected_for(33)  # replies kept counting from memory
    sent = 33
    deadline = asyncio.get_running_loop().time() + OUTAGE_SECONDS
    while asyncio.get_running_loop().time() < deadline:  # `make soak`: a long outage
        replied = await send_views(served, 3, start=sent)
        sent += 3
    assert replied == expected_for(sent)
    async with connect(served.ws) as ws:  # an article it has never read: no true count
        await ws.send(json.dumps({"message": "views", "articleId": "never-read"}))
        reply = json.loads(await ws.recv())
        assert (reply["message"], reply["error"]) == ("error", "unavailable")

    async def failures() -> float:
        _, _, body = await asyncio.to_thread(http_get, served.http + "/metrics")
        found = re.search(rb"^livecount_flush_failures_total (\S+)$", body, re.M)
        return float(found.group(1)) if found else 0.0

    await eventually(failures, lambda n: n >= 3)  # and the store really was down
    assert served.events("flush_failed")  # said in the log (rate-limited, not per write)
    proxy.set("pass")
    await exactly(local_store, replied)


async def test_sigkill_before_a_flush_loses_nothing(launch: Launch, local_store: Store):
    served = await launch("--flush-interval", "3600")
    replied = await send_views(served, 20)
    assert await table(local_store, local_store.tables.writer) == {}
    assert await served.stop(signal.SIGKILL) == -signal.SIGKILL
    again = await launch()
    assert again.events("journal_replayed")[0]["views"] == 20
    await exactly(local_store, replied)
    assert await send_views(again, 1, start=20) == {"gamma": expected_for(21)["gamma"]}


async def test_sigkill_after_an_unconfirmed_flush_counts_it_once(
    launch: Launch, local_store: Store, proxy: FaultProxy
):
    # One flush takes all 12 views: a write whose answer never came is resent before
    # any newer delta of its key, so views of a later flush would wait for ever. At 1 s,
    # a busy machine sent the 12 over two flushes.
    served = await launch("--dynamodb-endpoint", proxy.url, "--flush-interval", "8")
    proxy.set("cut", only=WRITES)  # every write applies; no answer ever comes back
    replied = await send_views(served, 12)
    # The writes got through, but the node cannot know it.
    await eventually(lambda: table(local_store, local_store.tables.writer), lambda t: t == replied)
    assert await served.stop(signal.SIGKILL) == -signal.SIGKILL
    proxy.set("pass")
    await launch("--dynamodb-endpoint", proxy.url)  # replays and resends them
    await exactly(local_store, replied)


async def test_sigkills_mid_load_count_each_answered_referrer_once(launch: Launch, tmp_path: Path):
    """Two nodes take views of two articles from 163 hosts (some spelt to be
    normalised); one is SIGKILLed mid-load three times. Each host's count on each
    article and on the site is at least what was answered and at most what was sent."""
    rng = random.Random(7)
    same = [f"r{i}.example.org" for i in range(150)] + ["xn--80ak6aa92e.com"]
    same += ["a" * 40 + f"{i:03d}.example.org" for i in range(10)]
    hosts = {h: h for h in same} | {  # as sent: as stored
        "bücher.example": "xn--bcher-kva.example",
        "WWW.Mixed.Example": "mixed.example",
    }
    answered: Counter[tuple[str, str]] = Counter()
    unanswered: Counter[tuple[str, str]] = Counter()  # sent, the reply never came
    nodes = {
        n: await launch("--node-id", n, "--data-dir", str(tmp_path / n), "--lease-time", "3")
        for n in ("n1", "n2")
    }

    async def client(node: str, count: int) -> None:
        try:
            async with connect(nodes[node].ws) as ws:
                for _ in range(count):
                    article, host = rng.choice(("k1", "k2")), rng.choice(list(hosts))
                    keys = [(f"post#{article}", hosts[host]), ("site", hosts[host])]
                    await ws.send(
                        json.dumps(
                            {
                                "message": "views",
                                "articleId": article,
                                "referrer": f"https://{host}/p?q=1",
                            }
                        )
                    )
                    unanswered.update(keys)
                    while (reply := json.loads(await ws.recv()))["message"] == "count":
                        pass
                    assert reply["message"] == "views", reply
                    answered.update(keys)
                    unanswered.subtract(keys)
        except Exception:  # the killed node's sockets
            if node != "n1":
                raise

    for cycle in range(3):
        clients = [asyncio.create_task(client(n, 800)) for n in ("n1", "n1", "n2", "n2")]

        async def since(before: int = answered.total()) -> int:
            return answered.total() - before

        def far_enough(n: int, cycle: int = cycle) -> bool:  # a view counts post and site
            return n >= 2 * (300 + 150 * cycle)

        await eventually(since, far_enough, timeout=60)  # SIGKILL mid-load, a new point each time
        await nodes["n1"].kill()
        await asyncio.gather(*clients)
        nodes["n1"] = await launch(
            "--node-id", "n1", "--data-dir", str(tmp_path / "n1"), "--lease-time", "3"
        )

    async def referrers(ref: str) -> dict[str, int]:
        query = f"?articleId={ref.removeprefix('post#')}&" if ref != "site" else "?"
        _, _, body = await asyncio.to_thread(
            http_get, nodes["n2"].http + f"/api/referrers{query}limit=1000"
        )
        return {r["host"]: r["views"] for r in json.loads(body)}

    async def total(ref: str) -> int:  # the reader copy follows the stream
        _, _, body = await asyncio.to_thread(
            http_get, nodes["n2"].http + f"/api/pages/{ref.removeprefix('post#')}"
        )
        return int(json.loads(body)["totalViews"])

    for ref in ("post#k1", "post#k2", "site"):
        low = {h: n for (r, h), n in answered.items() if r == ref}
        high = {h: answered[(r, h)] + n for (r, h), n in unanswered.items() if r == ref}

        def between(
            got: dict[str, int], low: dict[str, int] = low, high: dict[str, int] = high
        ) -> bool:
            return all(low.get(h, 0) <= got.get(h, 0) <= high.get(h, 0) for h in {*low, *got})

        got = await eventually(functools.partial(referrers, ref), between, timeout=30)
        if ref != "site":  # every view had a referrer: the article counts the same views
            await eventually(functools.partial(total, ref), sum(got.values()).__eq__, timeout=30)


async def test_refused_credentials_stop_the_server_with_one_clear_line(
    proxy: FaultProxy, tmp_path: Path
):
    proxy.set("denied")
    served = Served("--dynamodb-endpoint", proxy.url, "--data-dir", str(tmp_path))
    listening = await served.spawn()
    assert served.proc is not None
    assert await asyncio.wait_for(served.proc.wait(), 60) == 2
    with pytest.raises(RuntimeError, match="exited before listening"):
        await listening
    assert any(
        "DynamoDB refused livecount" in line and "AccessDenied" in line for line in served.output
    )
