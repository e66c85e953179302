"""The ingest ceiling's yardstick: a bare websockets server that answers every frame.

Same library, same event loop (uvloop) and the same connection settings as
`livecount serve`, but no validation, counting or store: it replies one fixed small
JSON to each frame. What livecount reaches against this, driven by the same client
the same way, is the cost of its own work.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import sys

import uvloop
from websockets.asyncio.server import ServerConnection, serve

REPLY = b'{"message":"views","totalViews":1,"uniqueViews":1,"articleId":"echo"}'


async def answer(ws: ServerConnection) -> None:
    async for _ in ws:
        await ws.send(REPLY, text=True)


async def main(host: str, port: int) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    async with serve(
        answer,
        host,
        port,
        max_size=4096,
        max_queue=16,
        ping_interval=20,
        ping_timeout=20,
        open_timeout=10,
        close_timeout=5,
    ) as server:
        bound = next(iter(server.sockets)).getsockname()[1]
        print(
            json.dumps({"event": "listening", "port": bound, "url": f"ws://{host}:{bound}/ws"}),
            flush=True,
        )
        await stop.wait()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args()
    uvloop.run(main(args.host, args.port))
    sys.exit(0)
