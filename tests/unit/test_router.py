"""The route table and its dispatcher, the client's files, and whose origin is the
server's own: in process, no socket, no store."""

from __future__ import annotations

import asyncio
import gzip
import json
from pathlib import Path
from typing import Any, cast

import pytest
from livecount.core.errors import Unavailable
from livecount.core.pages import PageRules
from livecount.core.reports import BadParameter
from livecount.node.access import own_origin
from livecount.node.admin_api import AdminApi
from livecount.node.answers import json_response
from livecount.node.http import SCRIPTS, Routes
from livecount.node.router import HttpRequest, Route, Router, loggable, parse_target
from livecount.node.static import SCRIPT, Files, accepts_gzip, matches
from websockets.datastructures import Headers
from websockets.http11 import Response


def made(method: str, target: str, **headers: str) -> HttpRequest:
    request = parse_target(
        method, target, Headers({k.replace("_", "-"): v for k, v in headers.items()}), "192.0.2.1"
    )
    assert isinstance(request, HttpRequest), request
    return request


async def ok(request: HttpRequest) -> Response:
    return json_response(200, {"params": request.params})


def test_patterns_match_whole_paths_and_decode_their_parameters():
    one, rest = Route("GET", "/api/pages/{id}", ok), Route("GET", "/demo/{rest:path}", ok)
    assert one.match("/api/pages/caf%C3%A9") == {"id": "café"}
    assert one.match("/api/pages/a%2Fb") == {"id": "a/b"}
    assert one.match("/api/pages/a/b") is None and one.match("/api/pages/") is None
    assert one.match("/api/pagesx/a") is None and one.match("/api/pages/a/") is None
    assert rest.match("/demo/posts/x") == {"rest": "posts/x"}
    assert Route("GET", "/a.b", ok).match("/axb") is None  # a dot is a dot


def test_the_table_decides_404_and_405_with_allow_and_head_is_get():
    router = Router(
        [
            Route("GET", "/ws", upgrade=True),
            Route("GET", "/thing", ok),
            Route("POST", "/thing", ok, body=True),
            Route("POST", "/act", ok),
        ]
    )
    assert isinstance(router.find(made("HEAD", "/thing")), Route)
    assert router.find(made("POST", "/thing")) == router.routes[2]
    refused = router.find(made("DELETE", "/thing"))
    assert isinstance(refused, Response) and refused.status_code == 405
    assert refused.headers["Allow"] == "GET, HEAD, POST"
    for method, path, allow in (
        ("GET", "/act", "POST"),
        ("HEAD", "/ws", "GET"),
        ("POST", "/ws", "GET"),
    ):
        refused = router.find(made(method, path))
        assert isinstance(refused, Response) and refused.headers["Allow"] == allow, path
    missing = router.find(made("POST", "/nothing"))
    assert isinstance(missing, Response) and missing.status_code == 404
    assert json.loads(missing.body)["error"] == "not_found"


def test_a_target_is_parsed_once_and_its_escapes_must_be_utf8():
    request = made("GET", "http://x.example/api/pages?limit=5&limit=7&sort=&x=%E2%82%AC")
    assert (request.path, dict(request.query)) == ("/api/pages", {"limit": "7", "x": "€"})
    for target in ("//[", "/api/pages/%FF", "/x?articleId=%C3"):
        refused = parse_target("GET", target, Headers(), "")
        assert isinstance(refused, Response) and refused.status_code == 400, target


@pytest.mark.parametrize(
    ("raised", "status", "error"),
    [
        (BadParameter("limit", "must be 1 to 1000"), 400, "invalid_parameter"),
        (Unavailable("away"), 503, "unavailable"),
        (TimeoutError(), 503, "unavailable"),
        (ZeroDivisionError("a bug"), 500, "internal"),
    ],
)
async def test_what_a_handler_raises_is_json_with_the_headers_it_set(raised, status, error):
    async def failing(request: HttpRequest) -> Response:
        request.extra["Access-Control-Allow-Origin"] = "*"  # decided before it failed
        raise raised

    router = Router([Route("GET", "/r", failing)])
    request = made("GET", "/r")
    answer = await router(request, router.routes[0])
    assert answer.status_code == status and json.loads(answer.body)["error"] == error
    assert answer.headers["Access-Control-Allow-Origin"] == "*"


async def test_one_timeout_bounds_every_handler():
    async def forever(request: HttpRequest) -> Response:
        await asyncio.Event().wait()
        raise AssertionError("unreachable")

    router = Router([Route("POST", "/slow", forever, body=True)], timeout=0.05)
    answer = await router(made("POST", "/slow"), router.routes[0])
    assert answer.status_code == 503 and answer.headers["Retry-After"] == "5"


def test_every_api_route_is_in_the_node_table():
    admin = AdminApi(cast(Any, type("S", (), {"ddb": None, "tables": None})), lambda h, p: None)
    routes = Routes(cast(Any, None), lambda target: None, PageRules(), admin=admin)
    table = {(r.method, r.pattern) for r in routes.table()}
    assert {
        ("GET", "/api/pages"),
        ("GET", "/api/pages/{id:path}"),
        ("GET", "/ws"),
        ("POST", "/api/admin/rename"),
        ("POST", "/api/admin/delete"),
        ("POST", "/api/admin/title"),
        ("GET", "/api/admin/operation"),
        ("GET", "/livecount.js"),
        ("GET", "/client/{name}"),
    } <= table
    assert [r.pattern for r in routes.table() if r.body] == [
        "/api/admin/rename",
        "/api/admin/delete",
        "/api/admin/title",
    ]


def test_no_token_reaches_a_log_line():
    for target in ("/login?token=secret", "/log%69n?%74oken=secret", "/LOGIN?x=1&token=secret"):
        assert "secret" not in loggable(target)
    assert loggable("/api/pages?limit=5") == "/api/pages?limit=5"


# -- the client's files ----------------------------------------------------------------------
@pytest.fixture
def files(tmp_path: Path) -> Files:
    (tmp_path / "tag.js").write_text("console.log('x');\n" * 50)
    (tmp_path / "page.html").write_text("<p>hi</p>")
    (tmp_path / "notes.txt").write_text("not served")
    return Files(cast(Any, tmp_path))


def test_files_are_read_once_with_a_strong_etag_and_gzip(files: Files, tmp_path: Path):
    assert set(files.files) == {"tag.js", "page.html"} and files.scripts == ["tag.js"]
    plain = files.answer("tag.js", Headers(), "public, max-age=3600")
    assert plain.status_code == 200 and plain.headers["Content-Type"] == SCRIPT
    assert plain.headers["Vary"] == "Accept-Encoding" and "Content-Encoding" not in plain.headers
    tag = plain.headers["ETag"]
    assert tag.startswith('"') and not tag.startswith("W/")
    zipped = files.answer("tag.js", Headers({"Accept-Encoding": "br, gzip;q=0.8"}), "x")
    assert zipped.headers["Content-Encoding"] == "gzip" and zipped.headers["ETag"] != tag
    assert gzip.decompress(zipped.body) == plain.body and len(zipped.body) < len(plain.body)
    (tmp_path / "tag.js").write_text("changed")  # read at start: a change is not served
    assert files.answer("tag.js", Headers(), "x").body == plain.body


def test_a_matching_if_none_match_gets_304_without_a_body(files: Files):
    tag = files.answer("tag.js", Headers(), "x").headers["ETag"]
    for sent in (tag, f"W/{tag}", f'"other", {tag}', "*"):
        answer = files.answer("tag.js", Headers({"If-None-Match": sent}), "public, max-age=1")
        assert (answer.status_code, answer.body) == (304, b""), sent
        assert (
            answer.headers["ETag"] == tag and answer.headers["Cache-Control"] == "public, max-age=1"
        )
        assert "Content-Length" not in answer.headers
    assert files.answer("tag.js", Headers({"If-None-Match": '"other"'}), "x").status_code == 200
    # The gzipped bytes are another representation, with a tag of their own.
    assert (
        files.answer(
            "tag.js", Headers({"If-None-Match": tag, "Accept-Encoding": "gzip"}), "x"
        ).status_code
        == 200
    )
    assert files.answer("gone.js", Headers(), "x").status_code == 404


@pytest.mark.parametrize(
    ("value", "takes"),
    [
        (None, False),
        ("", False),
        ("gzip", True),
        ("deflate, gzip", True),
        ("GZIP", True),
        ("gzip;q=0", False),
        ("gzip; q=0.5", True),
        ("*", True),
        ("*;q=0", False),
        ("br", False),
        ("gzip;q=0, *", False),
        ("x-gzip", True),
        ("gzip;q=nope", False),
    ],
)
def test_accept_encoding(value, takes):
    assert accepts_gzip(value) is takes


def test_if_none_match_compares_weakly():
    assert matches('W/"a"', '"a"') and matches('"b", "a"', '"a"') and not matches('"b"', '"a"')
    assert not matches(None, '"a"')


async def test_the_one_tag_script_and_the_client_scripts_are_served_to_any_site():
    routes = Routes(cast(Any, None), lambda target: None, PageRules())
    assert all(name in routes.files.scripts for name in SCRIPTS.values())
    for target in ("/livecount.js", "/client/livecount.mjs"):
        request = made("GET", target)
        route = routes.router.find(request)
        assert isinstance(route, Route) and route.handler is not None
        answer = await route.handler(request)
        assert answer.status_code == 200 and answer.headers["Content-Type"] == SCRIPT
        assert answer.headers["Access-Control-Allow-Origin"] == "*"
        assert answer.headers["Cache-Control"] == "public, max-age=3600"
    for target in ("/client/dashboard.html", "/client/livecount.js"):
        missing = made("GET", target)  # a page, not a script; the tag, away from /livecount.js
        route = routes.router.find(missing)
        assert isinstance(route, Route) and route.handler is not None
        answer = await route.handler(missing)
        assert answer.status_code == 404, target
    # The tag opens /ws beside its own URL: loaded from /client/ it would open /client/ws.
    assert "/livecount.js" in json.loads(answer.body)["detail"]


# -- the server's own origin ------------------------------------------------------------------
@pytest.mark.parametrize(
    ("headers", "origin"),
    [
        ({"Host": "stats.example:8080"}, "http://stats.example:8080"),
        ({"Host": "Stats.Example"}, "http://stats.example"),
        ({"Host": "stats.example", "X-Forwarded-Proto": "https"}, "https://stats.example"),
        (
            {"Host": "stats.example", "Forwarded": "for=1.2.3.4;proto=https"},
            "https://stats.example",
        ),
        ({}, None),
    ],
)
def test_own_origin_is_the_host_over_the_scheme_the_browser_used(headers, origin):
    assert own_origin(Headers(headers)) == origin
