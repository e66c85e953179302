"""Three nodes on one DynamoDB behave as one counter, and a killed node costs no view."""

from __future__ import annotations

import asyncio
import json
import signal
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

from livecount.aws.store import Store
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosedError

from tests.support import Launch, Served, eventually

LEASE_TIME = "3"


async def start_node(launch: Launch, tmp_path: Path, name: str) -> Served:
    return await launch(
        "--node-id", name, "--data-dir", str(tmp_path / name), "--lease-time", LEASE_TIME
    )


class Page:
    """A page showing one article; `seen` collects every total pushed to it.

    Its reader runs in the test's task group, so a reader that fails fails the test at
    once; the only failure it expects is losing the connection when its node is killed.
    """

    def __init__(self, ws: ClientConnection, article: str) -> None:
        self.ws = ws
        self.article = article
        self.seen: list[int] = []
        self.node_killed = False

    async def read(self) -> None:
        try:
            async for raw in self.ws:  # ends when the test closes the page
                message = json.loads(raw)
                if message.get("articleId") == self.article:
                    self.seen.append(message["totalViews"])
        except ConnectionClosedError:
            if not self.node_killed:
                raise

    async def totals(self) -> list[int]:
        return self.seen


async def watch(
    pages: AsyncExitStack, readers: asyncio.TaskGroup, served: Served, article: str
) -> Page:
    """A page on `served` showing `article`, closed when `pages` closes."""
    ws = await pages.enter_async_context(connect(served.ws))
    await ws.send(json.dumps({"message": "subscribe", "articleIds": [article]}))
    page = Page(ws, article)
    readers.create_task(page.read())
    return page


async def view(
    served: Served,
    article: str,
    times: int,
    progress: list[int] | None = None,
    may_die: bool = False,
) -> int:
    """Send views; returns how many were replied to. A node that may die (`may_die`)
    may drop the connection mid-way: then what it replied to counts.
    Each reply also lands in `progress`, for whoever waits on the load."""
    replied = 0
    try:
        async with connect(served.ws) as ws:
            for _ in range(times):
                await ws.send(json.dumps({"message": "views", "articleId": article}))
                while True:
                    reply: dict[str, Any] = json.loads(await asyncio.wait_for(ws.recv(), 20))
                    if reply["message"] == "views":
                        replied += 1
                        if progress is not None:
                            progress.append(replied)
                        break
    except ConnectionClosedError:
        if not may_die:
            raise
    return replied


def holder(nodes: dict[str, Served]) -> str:
    """The node that took the writer stream's lease last."""
    taken = [(e["ts"], name) for name, s in nodes.items() for e in s.events("lease_taken")]
    return max(taken)[1]


async def test_three_nodes_one_counter_and_a_kill_costs_nothing(
    launch: Launch, local_store: Store, tmp_path: Path
):
    nodes = {name: await start_node(launch, tmp_path, name) for name in ("a", "b", "c")}
    await eventually(
        lambda: _async(nodes), lambda n: any(s.events("lease_taken") for s in n.values())
    )
    # Pages close before their readers are awaited: closing ends them.
    async with asyncio.TaskGroup() as readers, AsyncExitStack() as opened:
        pages = {
            name: await watch(opened, readers, served, "hot") for name, served in nodes.items()
        }

        # One counter: views on every node reach the pages on every node.
        replied = sum(await asyncio.gather(*(view(s, "hot", 10) for s in nodes.values())))
        assert replied == 30
        for page in pages.values():
            await eventually(page.totals, lambda s: 30 in s)

        # Kill the node reading the stream while every node takes views.
        victim = holder(nodes)
        survivors = {n: s for n, s in nodes.items() if n != victim}
        progress: list[int] = []
        async with asyncio.TaskGroup() as load:
            runs = [
                load.create_task(
                    view(s, "hot", 400, progress if n == victim else None, may_die=n == victim)
                )
                for n, s in nodes.items()
            ]
            await eventually(lambda: _async(progress), lambda p: len(p) >= 20)  # mid-load
            pages[victim].node_killed = True
            assert await nodes[victim].stop(signal.SIGKILL) == -signal.SIGKILL
        replied += sum(run.result() for run in runs)

        # A survivor takes the lease over, and pushes keep flowing to the survivors' pages.
        await eventually(
            lambda: _async(survivors),
            lambda s: any(
                e.get("previous") == victim for n in s.values() for e in n.events("lease_taken")
            ),
            timeout=30,
        )
        replied += sum(await asyncio.gather(*(view(s, "hot", 5) for s in survivors.values())))

        # The killed node comes back and replays its journal: every replied view, once.
        # The one view it may have taken without its reply getting out is counted too:
        # the page did send it.
        await start_node(launch, tmp_path, victim)
        writer = await eventually(
            lambda: _table(local_store, local_store.tables.writer),
            lambda t: t.get("hot", 0) >= replied,
            timeout=30,
        )
        assert replied <= writer["hot"] <= replied + 1
        await eventually(
            lambda: _table(local_store, local_store.tables.reader),
            lambda t: t == writer,
            timeout=30,
        )
        for name in survivors:
            await eventually(pages[name].totals, lambda s: writer["hot"] in s, timeout=30)


async def _async(value: Any) -> Any:
    return value


async def _table(store: Store, name: str) -> dict[str, int]:
    items = (await store.ddb.scan(TableName=name, ConsistentRead=True))["Items"]
    return {i["articleId"]["S"]: int(i["totalViews"]["N"]) for i in items}


async def test_the_lambda_way_nodes_without_a_consumer(
    launch: Launch, local_store: Store, tmp_path: Path, lambda_env: None
):
    from livecount.aws import lambda_copy as aws_lambda

    from tests.integration.test_lambda import recorded_event

    one = await launch("--stream-consumer", "off", "--data-dir", str(tmp_path / "one"))
    two = await launch("--stream-consumer", "off", "--data-dir", str(tmp_path / "two"))
    async with asyncio.TaskGroup() as readers, AsyncExitStack() as opened:
        page = await watch(opened, readers, two, "served")
        assert await view(one, "served", 4) == 4
        await eventually(
            lambda: _table(local_store, local_store.tables.writer), lambda t: t == {"served": 4}
        )
        assert await _table(local_store, local_store.tables.reader) == {}  # no consumer here
        assert not any(s.events("lease_taken") for s in (one, two))

        await asyncio.to_thread(aws_lambda.handler, await recorded_event(local_store), None)
        assert await _table(local_store, local_store.tables.reader) == {"served": 4}
        # The function's feed items carry the count to the other node's page.
        await eventually(page.totals, lambda s: 4 in s)
