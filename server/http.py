"""Plain HTTP on the WebSocket's port: health, the demo page, the snippet.

websockets answers these through its `process_request` hook, so one port and one
event loop serve both; a request for `/ws` goes on to the WebSocket handshake.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import msgspec
from websockets.datastructures import Headers
from websockets.http11 import Request, Response

WS_PATH = "/ws"
CLIENT_DIR = Path(__file__).resolve().parent.parent / "client"
_REASONS = {200: "OK", 400: "Bad Request", 403: "Forbidden", 404: "Not Found",
            405: "Method Not Allowed", 503: "Service Unavailable"}


def response(status: int, body: bytes, content_type: str, cache: str = "no-store",
             extra: dict[str, str] | None = None) -> Response:
    headers = Headers({"Content-Type": content_type, "Content-Length": str(len(body)),
                       "Cache-Control": cache, "X-Content-Type-Options": "nosniff"})
    for name, value in (extra or {}).items():
        headers[name] = value
    return Response(status, _REASONS.get(status, ""), headers, body)


def json_response(status: int, value: Any, cache: str = "no-store") -> Response:
    return response(status, msgspec.json.encode(value), "application/json", cache)


def _file(path: Path, content_type: str) -> Response:
    try:
        body = path.read_bytes()
    except FileNotFoundError:
        return json_response(404, {"error": "not_found", "detail": f"{path.name} is missing"})
    return response(200, body, content_type, cache="public, max-age=300")


class Routes:
    """Path → handler; the handlers are the only place HTTP knows about the node."""

    def __init__(self, ping: Callable[[], Awaitable[None]]) -> None:
        self._ping = ping

    async def __call__(self, request: Request) -> Response | None:
        path = request.path.split("?", 1)[0]
        if path == WS_PATH:
            return None
        if path == "/healthz":
            return await self.healthz()
        if path == "/demo" or path.startswith("/demo/"):
            return _file(CLIENT_DIR / "demo.html", "text/html; charset=utf-8")
        if path == "/client/gatsby-snippet.js":
            return _file(CLIENT_DIR / "gatsby-snippet.js", "text/javascript; charset=utf-8")
        return json_response(404, {"error": "not_found", "detail": f"no route for {path}"})

    async def healthz(self) -> Response:
        try:
            await asyncio.wait_for(self._ping(), 3)
        except Exception as exc:  # any failure to answer means unhealthy, whatever its kind
            return json_response(503, {"status": "unavailable", "detail": str(exc) or "timeout"})
        return json_response(200, {"status": "ok"})
