"""First views of many new pages at once: one registration round at a time, each
taking what queued meanwhile (rounds at once conflict on the page count's item)."""

from __future__ import annotations

import asyncio
from typing import Any

from livecount.core.bases import Counts
from livecount.core.pages import Target
from livecount.node.sockets import ROUND, CountReader


class Pages:
    def __init__(self) -> None:
        self.rounds: list[list[Target]] = []
        self.at_once = 0
        self.most_at_once = 0

    async def register(self, targets: list[Target], cap: int | None) -> Any:
        self.at_once += 1
        self.most_at_once = max(self.most_at_once, self.at_once)
        self.rounds.append(list(targets))
        await asyncio.sleep(0.01)  # a transaction's round trip
        self.at_once -= 1
        return type("Listed", (), {"listed": set(targets), "refused": set()})()


class Store:
    def __init__(self) -> None:
        self.pages = Pages()

    async def read_counts(self, targets: list[Target]) -> dict[Target, Counts]:
        return {t: Counts(0, 0) for t in targets}


class Engine:
    def __init__(self, want: int) -> None:
        self.loaded_targets: list[Target] = []
        self.want = want
        self.all_loaded = asyncio.Event()

    def loaded(
        self, counts: dict[Target, Counts], now: float, listed: set[Target], refused: set[Target]
    ) -> list[Any]:
        self.loaded_targets += listed
        if len(self.loaded_targets) >= self.want:
            self.all_loaded.set()
        return []


class Sockets:
    def __init__(self, want: int) -> None:
        self.engine = Engine(want)
        self.tasks: list[asyncio.Task[None]] = []

    def spawn(self, work: Any) -> None:
        self.tasks.append(asyncio.get_running_loop().create_task(work))

    def act(self, conn: Any, action: Any) -> None:
        raise AssertionError("no socket waits in this test")


async def test_new_pages_are_listed_one_round_at_a_time_every_one_once() -> None:
    store, sockets = Store(), Sockets(1_200)
    reader = CountReader(store, sockets, max_pages=None)  # type: ignore[arg-type]
    pages = [Target("post", f"p{i}") for i in range(1_200)]
    for i, page in enumerate(pages):  # first views arriving over many loop turns
        reader.need((page,), (page,))
        if i % 50 == 0:
            await asyncio.sleep(0)
    async with asyncio.timeout(10):
        await sockets.engine.all_loaded.wait()
    assert store.pages.most_at_once == 1
    assert sorted(sockets.engine.loaded_targets) == sorted(pages)
    assert all(len(r) <= ROUND for r in store.pages.rounds)
    assert len(store.pages.rounds) < len(pages) // 50  # many first views share a round
