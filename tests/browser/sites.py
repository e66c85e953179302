"""Real sites on loopback origins of their own, and Chromium tabs of them: what the
tests of the tag (test_tag.py, test_sites.py) and of the Gatsby plugin (test_gatsby.py)
share."""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass, field
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType
from typing import Any, Self
from urllib.parse import urlsplit

from playwright.async_api import ConsoleMessage, Page, WebSocket

from tests.support import eventually

# Where a test site writes its livecount server's address; served as the real one.
PLACEHOLDER = "http://livecount.invalid"


class _Handler(SimpleHTTPRequestHandler):
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        page = self._html()
        if page is None:
            super().do_GET()
            return
        body = page.read_bytes().replace(PLACEHOLDER.encode(), self.server.livecount.encode())
        self.send_response(200)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _html(self) -> Path | None:
        """The HTML file a GET answers with, if it is one: the file, a directory's
        index.html, or (a single-page app) the app's index.html for a path with no file."""
        local = Path(self.translate_path(self.path))
        if local.is_dir() and urlsplit(self.path).path.endswith("/"):
            local = local / "index.html"
        if local.suffix == ".html" and local.is_file():
            return local
        if self.server.spa and not local.exists():
            return Path(self.directory) / "index.html"
        return None


class _Server(ThreadingHTTPServer):
    livecount = ""
    spa = False


class StaticSite:
    """A built site's files on 127.0.0.1, an origin of its own, as a blog's host serves
    them. In its HTML, PLACEHOLDER becomes `livecount` (set it once the livecount server
    is up); with `spa`, a path with no file is answered with the app's index.html, as a
    single-page app's host does."""

    def __init__(self, root: Path, spa: bool = False) -> None:
        self.root = root

        def handler(*args: Any) -> _Handler:
            return _Handler(*args, directory=str(root))

        self._server = _Server(("127.0.0.1", 0), handler)
        self._server.spa = spa
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def origin(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    @property
    def livecount(self) -> str:
        return self._server.livecount

    @livecount.setter
    def livecount(self, origin: str) -> None:
        self._server.livecount = origin

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._server.shutdown()
        self._server.server_close()


@dataclass
class Tab:
    """One browser tab of a site, and what passed between it and livecount: the
    messages it sent and received, its sockets' errors (a refused handshake) and its
    console, across reloads and navigations."""

    page: Page
    sent: list[dict[str, Any]] = field(default_factory=list)
    received: list[dict[str, Any]] = field(default_factory=list)
    refusals: list[str] = field(default_factory=list)
    sockets: int = 0
    console: list[str] = field(default_factory=list)  # "warning: livecount: …"

    def follow(self, ws: WebSocket) -> None:
        self.sockets += 1
        ws.on(
            "framesent",
            lambda payload: (
                self.sent.append(json.loads(payload)) if isinstance(payload, str) else None
            ),
        )
        ws.on(
            "framereceived",
            lambda payload: (
                self.received.append(json.loads(payload)) if isinstance(payload, str) else None
            ),
        )
        ws.on("socketerror", lambda error: self.refusals.append(error))

    def said(self, message: ConsoleMessage) -> None:
        self.console.append(f"{message.type}: {message.text}")

    def views(self) -> list[dict[str, Any]]:
        return [m for m in self.sent if m.get("message") == "views"]

    async def sent_views(self, n: int) -> list[dict[str, Any]]:
        """The views sent, once there are at least `n`."""

        async def views() -> list[dict[str, Any]]:
            return self.views()

        return await eventually(views, lambda v: len(v) >= n)
