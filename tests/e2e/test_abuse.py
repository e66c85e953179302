"""Limits on a real `livecount serve`: floods, hoarded sockets, idlers, bots."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest
import websockets
from websockets.asyncio.client import ClientConnection, connect

from tests.support import Launch, eventually


async def counts_of(url: str, article: str) -> tuple[int, int]:
    async with connect(url) as ws:
        await ws.send(json.dumps({"message": "subscribe", "articleIds": [article]}))
        reply = json.loads(await ws.recv())
        return reply["totalViews"], reply["uniqueViews"]


async def served_a_round_trip(url: str) -> bool:
    """Whether a new socket is answered; the limits accept a socket and then close it."""
    try:
        async with connect(url) as ws:
            await ws.send(json.dumps({"message": "subscribe", "articleIds": ["x"]}))
            return json.loads(await asyncio.wait_for(ws.recv(), 10))["message"] == "count"
    except websockets.ConnectionClosed:
        return False


async def closed_code(ws: ClientConnection) -> int | None:
    with pytest.raises(websockets.ConnectionClosed) as closed:
        async with asyncio.timeout(20):
            while True:
                await ws.recv()
    return closed.value.rcvd.code if closed.value.rcvd else None


async def test_a_flood_is_refused_then_closed_and_only_replied_views_count(launch: Launch):
    served = await launch("--rate-limit", "1", "--rate-burst", "3")
    counted = 0
    refused = 0
    async with connect(served.ws) as ws:
        for _ in range(40):
            try:
                await ws.send(json.dumps({"message": "views", "articleId": "flooded"}))
            except websockets.ConnectionClosed:
                break
        try:
            async with asyncio.timeout(20):
                while True:
                    reply: dict[str, Any] = json.loads(await ws.recv())
                    if reply["message"] == "views":
                        counted += 1
                    elif reply.get("error") == "rate_limited":
                        refused += 1
        except websockets.ConnectionClosed as closed:
            assert closed.rcvd is not None and closed.rcvd.code == 1008
    assert counted >= 3 and refused > 0
    assert await counts_of(served.ws, "flooded") == (counted, counted)


async def test_one_address_cannot_hold_every_socket(launch: Launch):
    served = await launch("--max-connections-per-ip", "2")
    async with connect(served.ws), connect(served.ws), connect(served.ws) as third:
        assert await closed_code(third) == 1008
    # The first two were released: a new socket is served, not closed. (Opening one
    # proves nothing: the limit closes a socket after accepting it.)
    await eventually(lambda: served_a_round_trip(served.ws), bool)


async def test_forwarded_for_counts_only_behind_a_trusted_proxy(launch: Launch, tmp_path: Path):
    def behind(ip: str) -> Any:
        return connect(served.ws, additional_headers={"X-Forwarded-For": ip})

    served = await launch("--max-connections-per-ip", "1", "--trusted-proxy", "127.0.0.1")
    async with behind("198.51.100.1") as a, behind("198.51.100.2") as b:
        await a.send(json.dumps({"message": "subscribe", "articleIds": ["x"]}))
        await b.send(json.dumps({"message": "subscribe", "articleIds": ["x"]}))
        assert json.loads(await a.recv())["message"] == "count"
        assert json.loads(await b.recv())["message"] == "count"
        async with behind("198.51.100.1") as again:
            assert await closed_code(again) == 1008
    untrusting = await launch(
        "--max-connections-per-ip", "1", "--data-dir", str(tmp_path / "other")
    )
    async with (
        connect(untrusting.ws, additional_headers={"X-Forwarded-For": "1.2.3.4"}),
        connect(untrusting.ws, additional_headers={"X-Forwarded-For": "5.6.7.8"}) as b,
    ):
        assert await closed_code(b) == 1008  # both are 127.0.0.1 to it


async def test_idle_sockets_are_closed_but_watching_ones_stay(launch: Launch):
    served = await launch("--idle-timeout", "1")
    async with connect(served.ws) as idle, connect(served.ws) as watching:
        await watching.send(json.dumps({"message": "subscribe", "articleIds": ["x"]}))
        assert json.loads(await watching.recv())["message"] == "count"
        assert await closed_code(idle) == 1001
        await watching.send(json.dumps({"message": "subscribe", "articleIds": ["y"]}))
        assert json.loads(await watching.recv())["articleId"] == "y"


async def test_bots_see_counts_but_are_not_counted(launch: Launch):
    served = await launch()
    async with connect(served.ws) as reader:
        await reader.send(json.dumps({"message": "views", "articleId": "seen"}))
        assert json.loads(await reader.recv())["totalViews"] == 1
    agent = "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)"
    async with connect(served.ws, user_agent_header=agent) as bot:
        for _ in range(3):
            await bot.send(json.dumps({"message": "views", "articleId": "seen"}))
            reply = json.loads(await bot.recv())
            while reply["message"] == "count":
                reply = json.loads(await bot.recv())
            assert (reply["totalViews"], reply["uniqueViews"]) == (1, 1)
    assert await counts_of(served.ws, "seen") == (1, 1)
