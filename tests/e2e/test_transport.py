"""The node's own transport under clients that pipeline, and bytes that arrive together."""

from __future__ import annotations

import asyncio
import json
import sys

from websockets.asyncio.client import connect

from tests.support import Launch

HANDSHAKE = (
    b"GET /ws HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
    b"Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
    b"Sec-WebSocket-Version: 13\r\n\r\n"
)


async def test_a_page_never_sees_its_count_go_down(launch: Launch):
    """Replies wait for their fsync while pushes of the same article come and go: every
    message a socket gets shows at least the count of the one before it. Issue 22's
    race showed 36, then 28 (a push queued behind a reply was read when it left, after
    views that the next reply had not seen). Many sockets pipeline views of one article,
    in rounds, with a CPU hog beside them to stretch the loop's turns."""
    served = await launch()
    hog = await asyncio.create_subprocess_exec(
        sys.executable, "-c", "import time\nend = time.time() + 60\nwhile time.time() < end: pass"
    )

    async def page(views: int) -> list[int]:
        seen: list[int] = []
        async with connect(served.ws) as ws:

            async def send() -> None:
                for _ in range(views):
                    await ws.send(json.dumps({"message": "views", "articleId": "monotone"}))

            sending = asyncio.create_task(send())
            replies = 0
            async with asyncio.timeout(60):
                while replies < views:
                    message = json.loads(await ws.recv())
                    seen.append(message["totalViews"])
                    replies += message["message"] == "views"
            await sending
        return seen

    try:
        for _ in range(3):
            for seen in await asyncio.gather(*(page(60) for _ in range(12))):
                assert seen == sorted(seen), seen
    finally:
        hog.kill()
        await hog.wait()


async def test_frames_in_the_handshakes_segment_come_after_its_answer(launch: Launch):
    """A client may send its first frames with the handshake. A bad one (here an
    unmasked frame) then gets a 101 and a close 1002, never a traceback."""
    served = await launch()
    reader, writer = await asyncio.open_connection("127.0.0.1", served.port)
    writer.write(HANDSHAKE + b"\x81\x00")
    async with asyncio.timeout(10):
        answer = await reader.read()
    writer.close()
    assert answer.startswith(b"HTTP/1.1 101 "), answer
    close = answer.partition(b"\r\n\r\n")[2]
    assert close[:1] == b"\x88" and int.from_bytes(close[2:4], "big") == 1002, close
    view = json.dumps({"message": "views", "articleId": "early"}).encode()
    mask = b"\x01\x02\x03\x04"
    masked = bytes(b ^ mask[i % 4] for i, b in enumerate(view))
    reader, writer = await asyncio.open_connection("127.0.0.1", served.port)
    writer.write(HANDSHAKE + bytes((0x81, 0x80 | len(view))) + mask + masked)
    async with asyncio.timeout(10):
        head = await reader.readuntil(b"\r\n\r\n")
        frame = await reader.readexactly(2)
        reply = json.loads(await reader.readexactly(frame[1]))
    writer.close()
    assert head.startswith(b"HTTP/1.1 101 ") and reply["totalViews"] == 1
    assert not [e for e in served.logs if e.get("level") == "error"]


async def test_a_subscribe_right_after_a_view_answers_with_that_view(launch: Launch):
    """The subscribe's answer waits behind the view's reply, and is read when it
    leaves: never the count from before the view reached the disk."""
    served = await launch()
    async with connect(served.ws) as ws:
        await ws.send(json.dumps({"message": "subscribe", "articleIds": ["sub"]}))
        assert json.loads(await ws.recv())["totalViews"] == 0
        for n in range(1, 6):
            await ws.send(json.dumps({"message": "views", "articleId": "sub"}))
            await ws.send(json.dumps({"message": "subscribe", "articleIds": ["sub"]}))
            messages = [json.loads(await ws.recv()) for _ in range(2)]
            assert [(m["message"], m["totalViews"]) for m in messages] == [
                ("views", n),
                ("count", n),
            ], messages
