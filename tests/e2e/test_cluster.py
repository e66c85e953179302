"""Three nodes on one DynamoDB behave as one counter, and a killed node costs no view."""

from __future__ import annotations

import asyncio
import json
import signal
from functools import partial
from pathlib import Path
from typing import Any

from livecount.aws.store import Store
from websockets.asyncio.client import ClientConnection, connect

from tests.support import Launch, Served, eventually

LEASE_TIME = "3"


async def start_node(launch: Launch, tmp_path: Path, name: str) -> Served:
    return await launch("--node-id", name, "--data-dir", str(tmp_path / name),
                        "--lease-time", LEASE_TIME)


async def watch(served: Served, article: str) -> tuple[ClientConnection, list[int]]:
    """A page on `served` showing `article`; the list collects every total pushed."""
    ws = await connect(served.ws)
    await ws.send(json.dumps({"message": "subscribe", "articleIds": [article]}))
    seen: list[int] = []

    async def read() -> None:
        async for raw in ws:
            message = json.loads(raw)
            if message.get("articleId") == article:
                seen.append(message["totalViews"])

    asyncio.get_running_loop().create_task(read())
    return ws, seen


async def view(served: Served, article: str, times: int,
               progress: list[int] | None = None) -> int:
    """Send views; returns how many were replied to (a killed node replies to none).
    Each reply also lands in `progress`, for whoever waits on the load."""
    replied = 0
    try:
        async with connect(served.ws) as ws:
            for _ in range(times):
                await ws.send(json.dumps({"message": "views", "articleId": article}))
                while True:
                    reply: dict[str, Any] = json.loads(await ws.recv())
                    if reply["message"] == "views":
                        replied += 1
                        if progress is not None:
                            progress.append(replied)
                        break
    except (OSError, Exception):  # the node died mid-way: what it replied to counts
        pass
    return replied


def holder(nodes: dict[str, Served]) -> str:
    """The node that took the writer stream's lease last."""
    taken = [(e["ts"], name) for name, s in nodes.items() for e in s.events("lease_taken")]
    return max(taken)[1]


async def test_three_nodes_one_counter_and_a_kill_costs_nothing(
        launch: Launch, local_store: Store, tmp_path: Path):
    nodes = {name: await start_node(launch, tmp_path, name) for name in ("a", "b", "c")}
    await eventually(lambda: _async(nodes), lambda n: any(s.events("lease_taken")
                                                          for s in n.values()))
    pages = {name: await watch(served, "hot") for name, served in nodes.items()}

    # One counter: views on every node reach the pages on every node.
    replied = sum(await asyncio.gather(*(view(s, "hot", 10) for s in nodes.values())))
    assert replied == 30
    for _, seen in pages.values():
        await eventually(partial(_async, seen), lambda s: 30 in s)

    # Kill the node reading the stream while every node takes views.
    victim = holder(nodes)
    survivors = {n: s for n, s in nodes.items() if n != victim}
    progress: list[int] = []
    load = [asyncio.create_task(view(s, "hot", 400, progress if n == victim else None))
            for n, s in nodes.items()]
    await eventually(lambda: _async(progress), lambda p: len(p) >= 20)  # mid-load
    assert await nodes[victim].stop(signal.SIGKILL) == -signal.SIGKILL
    replied += sum(await asyncio.gather(*load))

    # A survivor takes the lease over, and pushes keep flowing to the survivors' pages.
    await eventually(lambda: _async(survivors),
                     lambda s: any(e.get("previous") == victim
                                   for n in s.values() for e in n.events("lease_taken")),
                     timeout=30)
    replied += sum(await asyncio.gather(*(view(s, "hot", 5) for s in survivors.values())))

    # The killed node comes back and replays its journal: every replied view, once.
    # The one view it may have taken without its reply getting out is counted too:
    # the page did send it.
    await start_node(launch, tmp_path, victim)
    writer = await eventually(lambda: _table(local_store, local_store.tables.writer),
                              lambda t: t.get("hot", 0) >= replied, timeout=30)
    assert replied <= writer["hot"] <= replied + 1
    await eventually(lambda: _table(local_store, local_store.tables.reader),
                     lambda t: t == writer, timeout=30)
    for name in survivors:
        await eventually(partial(_async, pages[name][1]), lambda s: writer["hot"] in s,
                         timeout=30)
    for ws, _ in pages.values():
        await ws.close()


async def _async(value: Any) -> Any:
    return value


async def _table(store: Store, name: str) -> dict[str, int]:
    items = (await store.ddb.scan(TableName=name, ConsistentRead=True))["Items"]
    return {i["articleId"]["S"]: int(i["totalViews"]["N"]) for i in items}


async def test_the_lambda_way_nodes_without_a_consumer(
        launch: Launch, local_store: Store, tmp_path: Path, lambda_env: None):
    from livecount.aws import lambda_copy as aws_lambda

    from tests.integration.test_lambda import recorded_event

    one = await launch("--stream-consumer", "off", "--data-dir", str(tmp_path / "one"))
    two = await launch("--stream-consumer", "off", "--data-dir", str(tmp_path / "two"))
    page, seen = await watch(two, "served")
    assert await view(one, "served", 4) == 4
    await eventually(lambda: _table(local_store, local_store.tables.writer),
                     lambda t: t == {"served": 4})
    assert await _table(local_store, local_store.tables.reader) == {}  # no consumer here
    assert not any(s.events("lease_taken") for s in (one, two))

    await asyncio.to_thread(aws_lambda.handler, await recorded_event(local_store), None)
    assert await _table(local_store, local_store.tables.reader) == {"served": 4}
    # The function's feed items carry the count to the other node's page.
    await eventually(partial(_async, seen), lambda s: 4 in s)
    await page.close()
