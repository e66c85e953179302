"""A TCP proxy the tests control, between `livecount serve` and DynamoDB Local.

It understands just enough HTTP/1.1 (Content-Length bodies, keep-alive) to act per
request: pass it on, hold it, answer with a throttling or 5xx error itself, forward
it and then cut the connection before the answer (applied, but the answer lost), or
refuse connections outright. Loopback only.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from dataclasses import dataclass, field
from typing import Literal

Mode = Literal["pass", "refuse", "hold", "throttle", "error500", "cut", "denied"]

_SYNTHETIC = {
    "throttle": (
        400,
        "ProvisionedThroughputExceededException",
        "The level of configured provisioned throughput for the table was exceeded.",
    ),
    "error500": (500, "InternalServerError", "Internal server error"),
    "denied": (400, "AccessDeniedException", "User is not authorized to perform this action"),
}


@dataclass
class FaultProxy:
    upstream_port: int
    mode: Mode = "pass"
    # Apply the mode only to requests whose body contains this (e.g. "UpdateItem").
    only: str | tuple[str, ...] | None = None
    # After this many faulty requests, go back to "pass" (None: until told).
    budget: int | None = None
    faults: int = 0
    requests: int = 0
    port: int = 0
    _server: asyncio.Server | None = None
    # What broke a connection's handler other than the connection itself: `stop` raises
    # it, so a broken proxy fails the test instead of passing for a store fault.
    failures: list[BaseException] = field(default_factory=list)
    _tasks: set[asyncio.Task[None]] = field(default_factory=set)
    _writers: set[asyncio.StreamWriter] = field(default_factory=set)

    def __post_init__(self) -> None:
        self._release = asyncio.Event()

    async def start(self) -> FaultProxy:
        self._server = await asyncio.start_server(self._client, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def set(
        self, mode: Mode, only: str | tuple[str, ...] | None = None, budget: int | None = None
    ) -> None:
        self.mode, self.only, self.budget, self.faults = mode, only, budget, 0

    def release(self) -> None:
        """Pass everything from now on, and let the held requests go: their connections
        close unanswered, so the client sends them again."""
        self.set("pass")
        self._release.set()
        self._release = asyncio.Event()

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
        self._release.set()
        for writer in list(self._writers):
            writer.close()  # its reads end, so its task ends
        await asyncio.gather(*self._tasks)  # a handler records its own failures
        if self.failures:
            raise RuntimeError(f"the fault proxy failed: {self.failures!r}") from self.failures[0]

    def _fault_for(self, body: bytes) -> Mode:
        only = (self.only,) if isinstance(self.only, str) else self.only
        if self.mode == "pass" or (only and not any(o.encode() in body for o in only)):
            return "pass"
        if self.budget is not None and self.faults >= self.budget:
            self.mode = "pass"
            return "pass"
        self.faults += 1
        return self.mode

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        self._writers.add(writer)
        upstream: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None
        try:
            if self.mode == "refuse" and self._fault_for(b"") == "refuse":
                return
            while True:
                request = await _read_message(reader)
                if request is None:
                    return
                self.requests += 1
                fault = self._fault_for(request)
                if fault == "hold":
                    await self._release.wait()  # the client's timeout ends it first
                    return
                if fault in _SYNTHETIC:
                    writer.write(_synthetic(*_SYNTHETIC[fault]))
                    await writer.drain()
                    continue
                if upstream is None:
                    upstream = await asyncio.open_connection("127.0.0.1", self.upstream_port)
                    self._writers.add(upstream[1])
                upstream[1].write(request)
                await upstream[1].drain()
                response = await _read_message(upstream[0])
                if response is None or fault in ("cut", "refuse"):
                    return  # the request was applied; its answer never arrives
                writer.write(response)
                await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError):
            return  # either side went away: what the proxy is for
        except Exception as exc:
            self.failures.append(exc)
        finally:
            self._tasks.discard(task)
            self._writers.discard(writer)
            for w in (writer, upstream[1] if upstream else None):
                if w is not None:
                    w.close()
                    with contextlib.suppress(ConnectionError):  # already reset by the peer
                        await w.wait_closed()


async def _read_message(reader: asyncio.StreamReader) -> bytes | None:
    """One HTTP/1.1 request or response with a Content-Length body, or None at EOF."""
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except asyncio.IncompleteReadError:
        return None
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value.strip())
    return head + (await reader.readexactly(length) if length else b"")


def _synthetic(status: int, code: str, message: str) -> bytes:
    body = json.dumps(
        {"__type": f"com.amazonaws.dynamodb.v20120810#{code}", "message": message}
    ).encode()
    reason = "Bad Request" if status == 400 else "Internal Server Error"
    return (
        f"HTTP/1.1 {status} {reason}\r\nContent-Type: application/x-amz-json-1.0\r\n"
        f"x-amzn-RequestId: fault\r\nContent-Length: {len(body)}\r\n\r\n"
    ).encode() + body
