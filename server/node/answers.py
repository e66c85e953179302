"""The words every HTTP answer is made of: JSON bodies, refusals.

Shared by the router (`node/router.py`), the routes (`node/http.py`), the access rules
(`node/access.py`), the client's files (`node/static.py`) and the admin API, so that
every answer has the same headers: a length, a cache policy and `nosniff`. An answer is
websockets' `Response`, as the WebSocket handshake's own answers are; the connection
(`node/opening.py`) writes it through h11.
"""

from __future__ import annotations

from collections.abc import Mapping
from http import HTTPStatus
from typing import Any

import msgspec
from livecount.node.auth import Verdict, session_cookie
from websockets.datastructures import Headers
from websockets.http11 import Response

HTML = "text/html; charset=utf-8"
UNFRAMED = {"Content-Security-Policy": "frame-ancestors 'none'", "X-Frame-Options": "DENY"}


def response(
    status: int,
    body: bytes,
    content_type: str,
    cache: str = "no-store",
    extra: Mapping[str, str] | None = None,
) -> Response:
    headers = Headers(
        {
            "Content-Type": content_type,
            "Content-Length": str(len(body)),
            "Cache-Control": cache,
            "X-Content-Type-Options": "nosniff",
        }
    )
    for name, value in (extra or {}).items():
        headers[name] = value
    return Response(status, HTTPStatus(status).phrase, headers, body)


def json_response(
    status: int, value: Any, cache: str = "no-store", extra: Mapping[str, str] | None = None
) -> Response:
    return response(status, msgspec.json.encode(value), "application/json", cache, extra)


def not_found(detail: str) -> Response:
    return json_response(404, {"error": "not_found", "detail": detail})


def bad_request(detail: str) -> Response:
    return json_response(400, {"error": "bad_request", "detail": detail})


def method_not_allowed(method: str, allow: str) -> Response:
    return json_response(
        405,
        {"error": "method_not_allowed", "detail": f"{method} is not served here; use {allow}"},
        extra={"Allow": allow},
    )


def unauthorized(verdict: Verdict, secure: bool) -> Response:
    """401 for a request without the credential (429 for an address that sent too
    many wrong tokens), clearing a session cookie that no longer holds."""
    if verdict.retry_after:
        return json_response(
            429,
            {
                "error": "too_many_attempts",
                "detail": f"{verdict.problem}: try again in {verdict.retry_after} s",
            },
            extra={"Retry-After": str(verdict.retry_after)},
        )
    extra = {"WWW-Authenticate": 'Bearer realm="livecount"'}
    if verdict.stale:
        extra["Set-Cookie"] = session_cookie("", 0, secure)
    return json_response(401, {"error": "unauthorized", "detail": verdict.problem}, extra=extra)


def redirect(location: str, extra: Mapping[str, str] | None = None) -> Response:
    return json_response(303, {"location": location}, extra={"Location": location, **(extra or {})})
