"""The client's files (`client/`, the package `livecount_client`), served as browsers and
CDNs expect: read and gzipped once at start, each with a strong ETag (a hash of its
bytes), 304 to a matching `If-None-Match`, gzip when `Accept-Encoding` allows it
(`Vary: Accept-Encoding`). Scripts are for other sites' pages: `Access-Control-Allow-
Origin: *` and kept an hour (their URLs are stable, so never `immutable`).
"""

from __future__ import annotations

import gzip
import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from importlib import resources
from importlib.resources.abc import Traversable

from livecount.node.answers import HTML, not_found, response
from livecount.node.auth import header
from livecount_client.tag import tag
from websockets.datastructures import Headers
from websockets.http11 import Response

CLIENT = resources.files("livecount_client")  # client/ in the repo, package data in a wheel
MODULE = CLIENT / "gatsby-plugin-livecount" / "livecount.mjs"  # the client's one source
SCRIPT = "text/javascript; charset=utf-8"
SCRIPT_CACHE = "public, max-age=3600"
TYPES = {".js": SCRIPT, ".html": HTML}


@dataclass(frozen=True)
class File:
    body: bytes
    gzipped: bytes
    etag: str  # of `body`; the gzipped bytes are `etag` with `-gz`
    content_type: str


class Files:
    """Every top-level file of `root` that has a type in `TYPES`, by name, and the
    builds of the browser client's one source: the module (`livecount.mjs`, the
    Gatsby plugin's own file) and the tag (`livecount.js`, `livecount_client.tag`),
    built here, at start, so that a broken source stops the node, not a page later."""

    def __init__(self, root: Traversable = CLIENT) -> None:
        self.files: dict[str, File] = {}
        for entry in root.iterdir():
            kind = TYPES.get("." + entry.name.rpartition(".")[2])
            if kind is not None and entry.is_file():
                self._add(entry.name, entry.read_bytes(), kind)
        if root is CLIENT:
            self._add("livecount.mjs", MODULE.read_bytes(), SCRIPT)
            self._add("livecount.js", tag(), SCRIPT)

    def _add(self, name: str, body: bytes, kind: str) -> None:
        etag = hashlib.sha256(body).hexdigest()[:32]
        self.files[name] = File(body, gzip.compress(body, 9, mtime=0), etag, kind)

    @property
    def scripts(self) -> list[str]:
        return sorted(n for n, f in self.files.items() if f.content_type == SCRIPT)

    def answer(
        self, name: str, headers: Headers, cache: str, extra: Mapping[str, str] | None = None
    ) -> Response:
        """`name` for a request with these `headers`: 200, 304, or 404 if not installed."""
        found = self.files.get(name)
        if found is None:
            return not_found(f"{name} is missing from this installation")
        zipped = accepts_gzip(header(headers, "Accept-Encoding"))
        tag = f'"{found.etag}{"-gz" if zipped else ""}"'
        more = {"ETag": tag, "Vary": "Accept-Encoding", **(extra or {})}
        if zipped:
            more["Content-Encoding"] = "gzip"
        if matches(header(headers, "If-None-Match"), tag):
            answer = response(304, b"", found.content_type, cache, more)
            del answer.headers["Content-Length"], answer.headers["Content-Type"]
            return answer
        return response(
            200, found.gzipped if zipped else found.body, found.content_type, cache, more
        )


def accepts_gzip(value: str | None) -> bool:
    """Whether `Accept-Encoding` takes gzip: named (or `*`) with a q above 0."""
    weights: dict[str, float] = {}
    for item in (value or "").split(","):
        coding, _, params = item.partition(";")
        q = 1.0
        name, _, given = params.strip().partition("=")
        if name.strip().lower() == "q":
            try:
                q = float(given)
            except ValueError:
                q = 0.0
        weights[coding.strip().lower()] = q
    return weights.get("gzip", weights.get("x-gzip", weights.get("*", 0.0))) > 0


def matches(value: str | None, tag: str) -> bool:
    """Whether `If-None-Match` names `tag` (weakly, as RFC 9110 compares it there), or `*`."""
    if value is None:
        return False
    given = [t.strip().removeprefix("W/") for t in value.split(",")]
    return "*" in given or tag in given
