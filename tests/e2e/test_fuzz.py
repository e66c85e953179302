"""100,000 hostile frames at a real `livecount serve`: each gets its error reply or the
right close code, other sockets keep being served, and memory stays flat."""

from __future__ import annotations

import asyncio
import json
import os
import random
from pathlib import Path
from typing import Any

import websockets
from livecount.core import protocol
from websockets.asyncio.client import ClientConnection, connect

from tests.strategies import random_frame
from tests.support import Launch, Served

FRAMES = int(os.environ.get("LIVECOUNT_FUZZ_FRAMES", "100000"))
SOCKETS = 8
SENTINEL = "!"  # always invalid_json: marks the end of a valid frame's replies
SEEN = {"views", "count", "error"}


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


async def next_reply(ws: ClientConnection) -> dict[str, Any]:
    """The next reply that is not a live push."""
    while True:
        reply = json.loads(await asyncio.wait_for(ws.recv(), 20))
        assert reply.get("message") in SEEN, reply
        if reply["message"] != "count":
            return reply


async def hammer(
    served: Served, frames: list[tuple[str, str | bytes]], tally: dict[str, int]
) -> None:
    ws = await connect(served.ws, max_size=None)
    try:
        for kind, payload in frames:
            if kind == "bad-utf8" or (kind == "text" and len(str(payload).encode()) > 4096):
                await ws.send(payload, text=True)
                try:
                    await next_reply(ws)
                    raise AssertionError(f"{kind} frame was answered, not closed")
                except websockets.ConnectionClosed as closed:
                    expected = 1007 if kind == "bad-utf8" else 1009
                    assert closed.rcvd is not None and closed.rcvd.code == expected
                tally["closed"] += 1
                ws = await connect(served.ws, max_size=None)
                continue
            try:
                protocol.decode(payload)
                expected_code = None
            except protocol.ProtocolError as exc:
                expected_code = exc.code
            await ws.send(payload)
            if expected_code is not None:
                reply = await next_reply(ws)
                assert reply["message"] == "error" and reply["error"] == expected_code, reply
                tally["errors"] += 1
                continue
            await ws.send(SENTINEL)
            while (reply := await next_reply(ws)).get("error") != "invalid_json":
                tally[reply["message"]] += 1
    finally:
        await ws.close()


async def test_a_flood_of_hostile_frames(launch: Launch):
    served = await launch("--max-subscriptions", "50")
    assert served.proc is not None
    rng = random.Random(20261124)
    corpus = [random_frame(rng) for _ in range(FRAMES)]
    tally: dict[str, int] = {"closed": 0, "errors": 0, "views": 0, "error": 0}
    witness_views = 0
    async with connect(served.ws) as witness:
        baseline = 0
        for part in range(5):
            chunk = corpus[part * FRAMES // 5 : (part + 1) * FRAMES // 5]
            await asyncio.gather(
                *(hammer(served, chunk[i::SOCKETS], tally) for i in range(SOCKETS))
            )
            await witness.send(json.dumps({"message": "views", "articleId": "witness"}))
            witness_views += 1
            assert (await next_reply(witness))["totalViews"] == witness_views
            if part == 0:  # after warm-up: caches, pools and arenas are at size
                baseline = rss_kib(served.proc.pid)
        grown = rss_kib(served.proc.pid) - baseline
    assert tally["closed"] > 0 and tally["errors"] > FRAMES // 2 and tally["views"] > 0
    assert grown < 24 * 1024, f"RSS grew by {grown} KiB under the flood"
    assert served.proc.returncode is None
    # No frame made it fail in its own code (a bug is logged at level error, whatever its name).
    assert [e for e in served.logs if e.get("level") in ("error", "critical")] == []
