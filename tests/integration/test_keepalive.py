"""The keepalive loop pings every socket once an interval, a share of them each step."""

from __future__ import annotations

import asyncio
from collections import Counter
from types import SimpleNamespace
from typing import Any

import pytest
from livecount.node import sockets
from livecount.node.sockets import Sockets

STEPS = 10


class Conn:
    def __init__(self, order: int, sent: Counter[int], ticks: list[int]) -> None:
        self.order = order
        self.sent = sent
        self.ticks = ticks
        self.pings = 0

    def ping(self, now: float, send: bool) -> None:
        if send:
            self.pings += 1
            self.sent[self.ticks[0]] += 1


async def test_each_socket_is_pinged_once_an_interval_never_all_at_once(
    monkeypatch: pytest.MonkeyPatch,
):
    monkeypatch.setattr(sockets, "PING_INTERVAL", 0.01 * STEPS)  # STEPS steps of 0.01 s
    stop = asyncio.Event()
    ticks, sent = [0], Counter[int]()

    def idle(now: float) -> list[Any]:  # called once a step, before its pings
        ticks[0] += 1
        if ticks[0] == STEPS:
            stop.set()  # this step's pings still go, then the loop ends
        return []

    conns = [Conn(i, sent, ticks) for i in range(100)]
    hub = SimpleNamespace(engine=SimpleNamespace(idle=idle), connections=conns)
    await asyncio.wait_for(Sockets.keepalive_loop(hub, stop, 0.01), 10)  # type: ignore[arg-type]
    assert [c.pings for c in conns] == [1] * 100  # each once in the interval
    assert sorted(sent.values()) == [10] * STEPS  # a tenth of them each step
