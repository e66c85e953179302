"""Every HTTP answer is deliberate: odd methods, HEAD, extreme dates, digits that are
not ASCII, a store that is frozen or down, raw bytes the parser refuses, a bug, and a
generative sweep of every route's parameters; and the connection itself (h11 under the
node's transport): keep-alive, pipelining, bodies and their limits, deadlines for
clients that trickle or idle, the WebSocket handshake. Each request is sent as raw
bytes over a socket, so nothing between the test and the server tidies it up first."""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import os
import signal
import socket
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast
from urllib.parse import parse_qs, quote, quote_from_bytes, urlsplit

import pytest
import pytest_asyncio
from hypothesis import HealthCheck, assume, given, seed, settings
from hypothesis import strategies as st
from livecount.aws import local as dynamodb_local
from livecount.aws.store import Store
from livecount.core.engine import Core, Settings
from livecount.core.ledger import Ledger
from livecount.core.pages import PageRules, Target
from livecount.node.admin_api import AdminApi
from livecount.node.answers import json_response, response
from livecount.node.http import Routes
from livecount.node.journal import Journal
from livecount.node.metrics import Metrics
from livecount.node.opening import MAX_BODY
from livecount.node.report_cache import ReportCache
from livecount.node.router import HttpRequest, Route, Router, parse_target
from livecount.node.sockets import Connection, Sockets
from websockets.asyncio.client import connect
from websockets.datastructures import Headers
from websockets.exceptions import InvalidStatus
from websockets.http11 import Response
from websockets.typing import Origin

from tests.conftest import fresh_prefix, open_store
from tests.faults import FaultProxy
from tests.strategies import SOAK
from tests.support import Launch, Served, eventually, login_url

# Longer than the server's 3 s bound on the store, shorter than the 10 s handshake
# timeout that used to drop an unanswered request: an answer inside it is deliberate.
CLIENT_TIMEOUT = 8.0
EXAMPLES = 5000 if SOAK else 500
API = ("/api/pages", "/api/referrers", "/api/timeline")


@dataclass
class Answer:
    status: int
    headers: dict[str, str]  # names in lower case
    body: bytes

    def json(self) -> Any:
        assert self.headers.get("content-type") == "application/json", self
        return json.loads(self.body)


def exchange(port: int, raw: bytes) -> Answer:
    """Send `raw`, read to the server's EOF, parse one HTTP/1.1 answer. Blocking: call it
    from a thread. A reset or a close without an answer fails the test."""
    with socket.create_connection(("127.0.0.1", port), timeout=CLIENT_TIMEOUT) as sock:
        sock.sendall(raw)
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    data = b"".join(chunks)
    head, sep, body = data.partition(b"\r\n\r\n")
    assert sep, f"no HTTP answer to {raw[:80]!r}: got {data[:200]!r}"
    status_line, *lines = head.decode("latin-1").split("\r\n")
    headers = {}
    for line in lines:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return Answer(int(status_line.split(" ")[1]), headers, body)


def request(method: str, target: str, *extra: str, close: bool = True) -> bytes:
    """One request; by default the last on its connection (`exchange` reads to EOF)."""
    lines = [
        f"{method} {target} HTTP/1.1",
        "Host: 127.0.0.1",
        *extra,
        *(["Connection: close"] if close else []),
    ]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def answers(data: bytes, methods: list[str]) -> list[Answer]:
    """The answers, in order, on one connection to requests of these `methods`."""
    found: list[Answer] = []
    for method in methods:
        head, sep, data = data.partition(b"\r\n\r\n")
        assert sep, f"no answer to the {len(found) + 1}th request: {head[:200]!r}"
        status_line, *lines = head.decode("latin-1").split("\r\n")
        headers = {}
        for line in lines:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        length = 0 if method == "HEAD" else int(headers.get("content-length", "0"))
        found.append(Answer(int(status_line.split(" ")[1]), headers, data[:length]))
        data = data[length:]
    assert data == b"", data[:200]
    return found


async def ask(port: int, raw: bytes) -> Answer:
    return await asyncio.to_thread(exchange, port, raw)


def errors_logged(served: Served) -> list[dict[str, Any]]:
    return [e for e in served.logs if e.get("level") in ("error", "critical")]


# -- on a real `livecount serve` --------------------------------------------------------


@pytest.mark.parametrize(
    "query",
    [
        "until=9999-12-31T23:00:00Z",
        "since=0001-01-01",
        "since=0001-01-01&until=0001-01-02",
        "until=0001-01-01T00:00:00%2B01:00",
        "until=9999-12-31T23:59:59.999999-23:59",
        "since=9999-12-31&bucket=day",
        "until=1999-12-31T23:59:59Z",
        "until=2201-01-01",
    ],
)
async def test_extreme_dates_get_400_naming_the_range(
    edge: int, query, caplog: pytest.LogCaptureFixture
):
    for path in ("/api/timeline", "/api/timeline"):  # twice: the first did not break it
        answer = await ask(edge, request("GET", f"{path}?{query}"))
        body = answer.json()
        assert answer.status == 400 and body["error"] == "invalid_parameter", body
        assert body["parameter"] in ("since", "until") and "2000-01-01" in body["detail"]
    assert [r for r in caplog.records if r.levelname == "ERROR"] == []


async def test_numbers_are_ascii_digits_only(edge: int):
    for value in ("%EF%BC%91", "%D9%A5", "%2B5", "%205", "5%20", "5_0", "0x10", "1e3", "-1"):
        answer = await ask(edge, request("GET", f"/api/pages?limit={value}"))
        assert answer.status == 400, (value, answer)
        assert answer.json()["parameter"] == "limit"
    answer = await ask(edge, request("GET", "/api/referrers?limit=05"))
    assert answer.status == 200 and answer.json() == []


async def test_escapes_that_are_not_utf8_get_400_not_a_replacement_character(edge: int):
    """Found by a hostile trial: `%FF%FE` was decoded to U+FFFD, an id nobody sent."""
    for target in (
        "/api/pages/%FF%FE",
        "/api/referrers?articleId=%FF",
        "/login?next=/%C3",
        "/api/admin/operation?articleId=%FF%FE",
        "/nowhere/%FF",
    ):
        answer = await ask(edge, request("GET", target))
        assert answer.status == 400, (target, answer)
        assert "UTF-8" in answer.json()["detail"]
    answer = await ask(edge, request("GET", "/api/pages/caf%C3%A9"))  # é: fine, unknown
    assert answer.status == 404


@pytest.mark.parametrize("outage", ["frozen", "down"])
async def test_the_api_answers_503_while_dynamodb_is_frozen_or_down(
    launch: Launch, dynamodb_local_url: str, prefix: str, outage: str
):
    proxy = await FaultProxy(int(urlsplit(dynamodb_local_url).port or 0)).start()
    try:
        served = await launch(
            "--dynamodb-endpoint", proxy.url, "--table-prefix", prefix, shared=False
        )
        assert (await ask(served.port, request("GET", "/api/pages"))).status == 200
        if outage == "frozen":
            proxy.set("hold")  # connections open, requests read, never answered
        else:
            await proxy.stop()  # the port closes: connections are refused
        # The listing of all time answers from the node's catalog, without the store.
        assert (await ask(served.port, request("GET", "/api/pages"))).status == 200
        paths = (
            "/api/pages?period=30d",
            "/api/pages/some-post",
            "/api/pages/Home_Page?kind=page",
            "/api/referrers",
            "/api/timeline?bucket=day",
            "/healthz",
        )
        answers = await asyncio.gather(
            *(ask(served.port, request("GET", path, "Origin: https://a.example")) for path in paths)
        )
        for path, answer in zip(paths, answers, strict=True):
            body = answer.json()
            assert answer.status == 503, (path, answer)
            if path == "/healthz":
                assert body["status"] == "unavailable" and body["problems"]
                continue
            assert body["error"] == "unavailable" and answer.headers["retry-after"], path
            assert answer.headers["access-control-allow-origin"] == "*"

        async def warned() -> list[dict[str, Any]]:
            return served.events("api_unavailable")

        await eventually(warned, bool)  # logged as a warning (rate-limited) ...
        assert served.events("http_failed") == []  # ... and not as a bug
    finally:
        await proxy.stop()


async def test_a_period_answers_while_the_catalog_is_read(
    dynamodb_local_url: str, prefix: str, tmp_path: Path
):
    """Issue 24: a node's start reads every post's counts (the catalog). A period's
    listing, or one post's summary, meanwhile reads its own rows and what it shows of
    its posts, never waiting behind that read: at 50,000 posts it waited, and answered
    503."""
    proxy = await FaultProxy(int(urlsplit(dynamodb_local_url).port or 0)).start()
    try:
        async with Store.open(proxy.url, "us-east-1", prefix) as store:
            await store.create_tables()
            listed = [Target("post", f"bulk-{n:03d}") for n in range(800)]  # never viewed
            viewed = [Target("post", f"viewed-{n}") for n in range(3)]
            await store.pages.register([*listed, *viewed], None)
            ledger = Ledger()
            hour = (datetime.now(UTC) - timedelta(days=1)).strftime("%Y-%m-%dT%H")
            for n, target in enumerate(viewed):
                for _ in range(n + 1):
                    ledger.record(
                        target,
                        refreshed=False,
                        hour=hour,
                        title=f"Post {n}",
                        path=f"/blog/{target.id}/",
                    )
            flush = ledger.take(1)
            ledger.complete(flush, await store.flush(flush))
            for target in viewed:  # as the stream copies them
                item = await store.ddb.get_item(
                    TableName=store.tables.writer, Key={"articleId": {"S": target.id}}
                )
                await store.ddb.put_item(TableName=store.tables.reader, Item=item["Item"])
            # The catalog's reads of the listed posts wait: a Scan of the reader table
            # now, BatchGetItems of a hundred posts before.
            proxy.set("hold", only=("TotalSegments", '"bulk-'))
            cache = ReportCache(store, PageRules())
            port, stop = await serving(
                Routes(store, lambda t: None, PageRules(), cache=cache), tmp_path
            )
            try:
                cache.start()

                async def held() -> int:
                    return proxy.faults

                await eventually(held, bool)  # the catalog is being read
                answer = await ask(port, request("GET", "/api/pages?period=30d"))
                assert not cache.loaded.is_set()
                assert answer.status == 200, answer
                assert [
                    (r["articleId"], r["articleTitle"], r["path"], r["totalViews"])
                    for r in answer.json()
                ] == [
                    ("viewed-2", "Post 2", "/blog/viewed-2/", 3),
                    ("viewed-1", "Post 1", "/blog/viewed-1/", 2),
                    ("viewed-0", "Post 0", "/blog/viewed-0/", 1),
                ]
                answer = await ask(
                    port, request("GET", "/api/summary?period=30d&articleId=viewed-1")
                )
                assert answer.status == 200, answer
                summary = answer.json()
                assert (summary["articleTitle"], summary["totalViews"], summary["live"]) == (
                    "Post 1",
                    2,
                    {"totalViews": 2, "uniqueViews": 2},
                )
                assert not cache.loaded.is_set()
                proxy.release()
                answer = await ask(port, request("GET", "/api/pages?limit=3"))
                assert answer.status == 200 and answer.headers["x-total-count"] == "3"
                assert [(r["articleId"], r["totalViews"]) for r in answer.json()] == [
                    ("viewed-2", 3),
                    ("viewed-1", 2),
                    ("viewed-0", 1),
                ]
            finally:
                await stop()
    finally:
        await proxy.stop()


def _java_of(port: int) -> int:
    """The pid of the DynamoDB Local listening on `port` (its command line says so)."""
    for entry in Path("/proc").iterdir():
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if b"DynamoDBLocal.jar" in b" ".join(argv) and str(port).encode() in argv:
            return int(entry.name)
    raise AssertionError(f"no DynamoDB Local on port {port}")


def api_routes() -> list[Route]:
    """Every `/api/*` route of the node's table, admin included: a new one is called too."""
    admin = AdminApi(cast(Any, SimpleNamespace(ddb=None, tables=None)), lambda h, p: None)
    table = Routes(
        cast(Any, None),
        lambda target: None,
        PageRules(),
        admin=admin,
        now=cast(Any, admin.operation),
    ).table()
    return [r for r in table if r.pattern.startswith("/api/")]


BODIES = {  # a body each route that takes one accepts (a new one must be added here)
    "/api/admin/rename": {"from": "some-post", "to": "other"},
    "/api/admin/delete": {"articleId": "some-post"},
    "/api/admin/title": {"articleId": "some-post", "title": "Some post"},
}


def call_of(route: Route, token: str) -> bytes:
    target = route.pattern.replace("{id:path}", "some-post")
    extra = [f"Authorization: Bearer {token}"]
    if route.body:
        body = json.dumps(BODIES[target])
        extra += ["Content-Type: application/json", f"Content-Length: {len(body)}"]
        return request(route.method, target, *extra) + body.encode()
    if "admin" in target:
        target += "?articleId=some-post"
    return request(route.method, target, *extra)


async def test_every_api_route_answers_json_in_time_while_dynamodb_is_sigstopped(
    launch: Launch, tmp_path: Path
):
    """Issue 22: admin routes used to hold the connection for 10 s and drop it, with
    nothing logged, while DynamoDB Local was frozen. Its own DynamoDB Local, stopped
    with SIGSTOP (the test's, not the session's: the others would freeze too)."""
    routes = api_routes()
    assert {
        "/api/pages",
        "/api/pages/{id:path}",
        "/api/admin/rename",
        "/api/admin/delete",
        "/api/admin/operation",
    } <= {r.pattern for r in routes}
    async with dynamodb_local.running(tmp_path / "ddb", in_memory=True) as url:
        java = _java_of(int(urlsplit(url).port or 0))
        served = await launch("--dynamodb-endpoint", url, shared=False, private=True)
        token = parse_qs(urlsplit(login_url(served)).query)["token"][0]
        async with connect(served.ws) as ws:  # something to rename and delete
            await ws.send(json.dumps({"message": "views", "articleId": "some-post"}))
            assert json.loads(await ws.recv())["message"] == "views"
        os.kill(java, signal.SIGSTOP)
        try:

            def timed(route: Route) -> tuple[Answer, float]:
                started = time.monotonic()
                answer = exchange(served.port, call_of(route, token))
                return answer, time.monotonic() - started

            with ThreadPoolExecutor(len(routes)) as threads:  # all at once
                results = await asyncio.gather(
                    *(asyncio.wrap_future(threads.submit(timed, r)) for r in routes)
                )
            for route, (answer, seconds) in zip(routes, results, strict=True):
                assert seconds < 6, (route.pattern, seconds)  # the bound
                answer.json()  # JSON, whatever it says
                assert answer.status in (200, 202, 503), (route.pattern, answer)
            assert {a.status for a, _ in results} >= {503}
        finally:
            os.kill(java, signal.SIGCONT)

        async def operation() -> Answer:
            return await ask(
                served.port,
                request(
                    "GET", "/api/admin/operation?articleId=none", f"Authorization: Bearer {token}"
                ),
            )

        await eventually(operation, lambda a: a.status == 200, timeout=30)
        assert (await ask(served.port, call_of(routes[0], token))).status == 200
        await served.stop()
        assert served.events("http_failed") == []


async def test_a_raw_non_ascii_request_line_gets_400_from_livecount_serve(seeded: Served):
    for raw in (
        b"GET /caf\xc3\xa9 HTTP/1.1\r\nHost: x\r\n\r\n",
        b"POST /api/pages HTTP/1.1\r\nContent-Length: 2\r\n\r\n{}",
    ):
        answer = await ask(seeded.port, raw)
        assert answer.status in (400, 405) and answer.json()["error"], answer


# -- the node's own transport, in process, on DynamoDB Local ----------------------------


async def serving(
    routes: Any, tmp_path: Path, origins: list[Origin | None] | None = None, timeout: float = 10.0
) -> tuple[int, Callable[[], Awaitable[None]]]:
    """`routes` behind the node's transport (`node/sockets.py`), as `serve` wires them;
    the port, and how to stop it."""
    core: Core[Connection] = Core.make(Settings())
    journal = Journal(tmp_path / "journal")
    journal.lock()
    journal.open()
    sockets = Sockets(
        core.engine,
        core.live,
        cast(Any, routes).store,
        journal,
        Metrics("edge"),
        None,
        routes,
        origins,
        4096,
        timeout,
    )
    server = await asyncio.get_running_loop().create_server(sockets, "127.0.0.1", 0)

    async def stop() -> None:
        server.close()
        await sockets.close_all(1.0)
        await journal.close()

    return server.sockets[0].getsockname()[1], stop


@pytest_asyncio.fixture(scope="module")
async def edge(
    dynamodb_local_url: str, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[int]:
    """The node's routes, every report public, on DynamoDB Local: one for the module, as
    no check stores anything another reads."""
    async for store in open_store(dynamodb_local_url, fresh_prefix()):
        routes = Routes(store, lambda target: None, PageRules())
        port, stop = await serving(routes, tmp_path_factory.mktemp("edge"))
        yield port
        await stop()


@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE", "OPTIONS", "TRACE", "PATCH", "FOO"])
async def test_methods_the_table_does_not_list_get_405_with_allow_from_it(edge: int, method):
    for path in (
        "/",
        "/api/pages",
        "/api/pages/x",
        "/healthz",
        "/metrics",
        "/ws",
        "/client/livecount.mjs",
    ):
        answer = await ask(edge, request(method, path, "Content-Length: 0"))
        assert answer.status == 405, (method, path, answer)
        assert answer.headers["allow"] == ("GET" if path == "/ws" else "GET, HEAD")
        assert answer.json()["error"] == "method_not_allowed"
    answer = await ask(edge, request(method, "/nowhere", "Content-Length: 0"))
    assert answer.status == 404 and answer.json()["error"] == "not_found"


async def test_head_sends_the_headers_of_get_and_no_body(edge: int):
    for path in (
        "/",
        "/client/livecount.mjs",
        "/livecount.js",
        "/api/pages",
        "/api/timeline",
        "/healthz",
        "/nowhere",
        "/api/timeline?bucket=week",
    ):
        got = await ask(edge, request("GET", path))
        head = await ask(edge, request("HEAD", path))
        assert (head.status, head.body) == (got.status, b""), path
        assert head.headers["content-length"] == str(len(got.body)) != "0", path
        assert head.headers["content-type"] == got.headers["content-type"], path


@pytest.mark.parametrize(
    ("raw", "status", "error"),
    [
        (b"GET /caf\xc3\xa9 HTTP/1.1\r\nHost: x\r\n\r\n", 400, "bad_request"),
        (b"GET /api/pages?articleId=\xff HTTP/1.1\r\nHost: x\r\n\r\n", 400, "bad_request"),
        (b"G\xc3\x89T / HTTP/1.1\r\nHost: x\r\n\r\n", 400, "bad_request"),
        (
            b"POST /api/pages HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n{}",
            405,
            "method_not_allowed",
        ),
        (
            b"PUT / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
            405,
            "method_not_allowed",
        ),
        (b"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n{}", 400, "bad_request"),
        (b"GET /ws HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n{}", 400, "bad_request"),
        (b"GET / HTTP/1.1\r\n\r\n", 400, "bad_request"),  # HTTP/1.1 without Host
        (b"GET / HTTP/2.0\r\n\r\n", 400, "bad_request"),
        (b"GET /\r\n\r\n", 400, "bad_request"),
        (b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\r\n\r\n", 400, "bad_request"),  # TLS hello
        (b"GET /" + b"a" * 9000 + b" HTTP/1.1\r\nHost: x\r\n\r\n", 414, "uri_too_long"),
        (b"GET /" + b"a" * 70000 + b" HTTP/1.1\r\nHost: x\r\n\r\n", 414, "uri_too_long"),
        (b"GET / HTTP/1.1\r\nHost: x\r\n" + b"X: y\r\n" * 200 + b"\r\n", 431, "headers_too_large"),
        (b"GET / HTTP/1.1\r\nHost: x\r\nX: " + b"y" * 9000 + b"\r\n\r\n", 431, "headers_too_large"),
        (
            b"GET / HTTP/1.1\r\nHost: x\r\n" + (b"X: " + b"y" * 8000 + b"\r\n") * 9 + b"\r\n",
            431,
            "headers_too_large",
        ),  # every line fits, the head does not (64 KiB)
        (b"GET /api/pages HTTP/1.1\nHost: x\n\n", 400, "bad_request"),  # bare LF
        (b"GET /api/pages HTTP/1.1\r\nHost: x\nX: y\r\n\r\n", 400, "bad_request"),  # one bare LF
        (  # smuggling: a proxy that goes by Content-Length reads another request here
            b"POST /api/admin/title HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n"
            b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /healthz HTTP/1.1\r\nHost: x\r\n\r\n",
            400,
            "bad_request",
        ),
        (b"GET /ws HTTP/1.1\r\nHost: x\r\n\r\n", 426, "upgrade_required"),
        (b"GET /ws HTTP/1.0\r\nHost: x\r\n\r\n", 505, "bad_handshake"),
        (
            b"GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            b"Sec-WebSocket-Key: x\r\nSec-WebSocket-Version: 8\r\n\r\n",
            400,
            "bad_handshake",
        ),
    ],
)
async def test_what_the_parser_refuses_gets_a_json_answer(edge: int, raw, status, error):
    answer = await ask(edge, raw)
    assert answer.status == status and answer.json()["error"] == error, answer
    if status == 405:
        assert answer.headers["allow"] == "GET, HEAD"


async def test_a_valid_request_and_a_websocket_still_pass_through(edge: int):
    answer = await ask(edge, request("GET", "/api/pages"))
    assert answer.status == 200 and isinstance(answer.json(), list)
    async with connect(f"ws://127.0.0.1:{edge}/ws") as ws:
        await ws.send('{"message":"subscribe","pageNames":["Home_Page"]}')
        assert json.loads(await ws.recv())["message"] == "count"


async def talk(port: int, raw: bytes, hang_up: bool = False) -> bytes:
    """Send `raw` on one connection (then EOF, if `hang_up`); what comes back, to the
    server's EOF."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(raw)
    if hang_up:
        writer.write_eof()
    try:
        return await asyncio.wait_for(reader.read(-1), CLIENT_TIMEOUT)
    finally:
        writer.close()


async def test_three_gets_on_one_keep_alive_connection(edge: int):
    reader, writer = await asyncio.open_connection("127.0.0.1", edge)
    try:
        for path in ("/healthz", "/api/pages", "/healthz"):  # one after the other
            writer.write(request("GET", path, close=False))
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), CLIENT_TIMEOUT)
            (answer,) = answers(head, ["HEAD"])
            body = await reader.readexactly(int(answer.headers["content-length"]))
            assert answer.status == 200 and "connection" not in answer.headers, (path, answer)
            assert json.loads(body) in ({"status": "ok"}, [])
    finally:
        writer.close()


async def test_pipelined_requests_are_answered_in_order(edge: int):
    """Sent back to back in one segment: each answered, in the order sent, on the one
    connection."""
    sent = [
        ("GET", "/healthz"),
        ("HEAD", "/api/pages"),
        ("GET", "/nowhere"),
        ("GET", "/api/pages/never-seen"),
        ("POST", "/healthz"),
        ("GET", "/healthz"),
    ]
    raw = b"".join(request(m, p, close=False) for m, p in sent[:-1])
    data = await talk(edge, raw + request(*sent[-1]))
    got = answers(data, [m for m, _ in sent])
    assert [a.status for a in got] == [200, 200, 404, 404, 405, 200]
    assert got[0].json() == got[-1].json() == {"status": "ok"}
    assert got[1].body == b"" and got[2].json()["error"] == "not_found"


@pytest.mark.parametrize("after", [b"ab", b"\r\n", b"GET /\r\n\r\n"])
async def test_what_follows_a_request_does_not_cost_its_answer(edge: int, after: bytes):
    """Stray bytes behind a request (a CRLF, which h11 does not skip, or garbage): the
    request is answered, then the bytes get a 400 that ends the connection; bytes that
    are no whole line yet, from a client that then hangs up, get nothing."""
    data = await talk(edge, request("GET", "/healthz", close=False) + after, hang_up=after == b"ab")
    got = answers(data, ["GET", "GET"][: 1 if after == b"ab" else 2])
    assert got[0].status == 200 and got[0].json() == {"status": "ok"}
    assert [(a.status, a.json()["error"]) for a in got[1:]] in ([], [(400, "bad_request")])


async def test_what_follows_a_refusal_is_not_read(edge: int):
    """A refusal ends the connection: what was sent behind it gets no answer."""
    data = await talk(edge, b"GET /\r\n\r\n" + request("GET", "/healthz"))
    (refused,) = answers(data, ["GET"])
    assert refused.status == 400 and refused.headers["connection"] == "close"


async def test_a_client_that_sends_nothing_and_leaves_is_let_go(edge: int):
    _, writer = await asyncio.open_connection("127.0.0.1", edge)
    writer.write(b"GET / HT")
    writer.write_eof()
    writer.close()
    await writer.wait_closed()
    assert (await ask(edge, request("GET", "/nowhere"))).status == 404  # still serving


# -- the connection alone: a table of its own, no store ---------------------------------


def fields(record: logging.LogRecord) -> dict[str, Any]:
    """A log line's fields, as `livecount.logs` gives them."""
    return dict(getattr(record, "fields", {}))


async def echo(request: HttpRequest) -> Response:
    return json_response(200, {"body": request.body.decode(), "query": dict(request.query)})


async def forever(request: HttpRequest) -> Response:
    await asyncio.Event().wait()
    raise AssertionError("unreachable")


class Table:
    """What `Sockets` needs of the node's routes: a router (and a store for `Bases`)."""

    store = None

    def __init__(self, *routes: Route, timeout: float = 0.5) -> None:
        self.router = Router(
            [Route("GET", "/ws", upgrade=True), *routes],
            timeout,
            Metrics("t").http_seconds,
            access_log=True,
            slow=0.2,
        )


@pytest_asyncio.fixture
async def conn(tmp_path: Path) -> AsyncIterator[int]:
    """A table of test routes behind the node's transport, short deadlines."""
    port, stop = await serving(
        Table(
            Route("POST", "/echo", echo, body=True),
            Route("GET", "/echo/{word}", echo),
            Route("GET", "/forever", forever),
        ),
        tmp_path,
        [Origin("https://blog.example"), None],
        timeout=1.0,
    )
    yield port
    await stop()


def post(path: str, body: bytes, *extra: str, close: bool = True) -> bytes:
    return request("POST", path, f"Content-Length: {len(body)}", *extra, close=close) + body


async def test_bodies_are_read_whole_in_either_framing(conn: int):
    chunked = (
        request("POST", "/echo", "Transfer-Encoding: chunked")
        + b'5\r\n{"a":\r\n3\r\n 1}\r\n0\r\n\r\n'
    )
    for raw in (post("/echo", b'{"a": 1}'), chunked):
        answer = await ask(conn, raw)
        assert answer.status == 200 and json.loads(answer.json()["body"]) == {"a": 1}


@pytest.mark.parametrize(
    "raw",
    [
        post("/echo", b"x" * (MAX_BODY + 1)),
        request("POST", "/echo", f"Content-Length: {MAX_BODY + 1}"),  # refused before it is sent
        request("POST", "/echo", "Transfer-Encoding: chunked")
        + b"".join(b"1000\r\n" + b"x" * 4096 + b"\r\n" for _ in range(5))
        + b"0\r\n\r\n",
    ],
)
async def test_a_body_over_the_limit_gets_413(conn: int, raw: bytes):
    answer = await ask(conn, raw)
    assert answer.status == 413 and answer.json()["error"] == "payload_too_large"


async def test_a_route_that_takes_no_body_refuses_one(conn: int):
    answer = await ask(conn, request("GET", "/echo/x", "Content-Length: 2") + b"{}")
    assert answer.status == 400 and "takes no body" in answer.json()["detail"]


async def test_the_router_bounds_every_route(conn: int, caplog: pytest.LogCaptureFixture):
    """A handler that never ends (a store that never answers) is 503 at the router's
    timeout, and the connection serves on."""
    caplog.set_level(logging.INFO, logger="livecount")
    data = await talk(conn, request("GET", "/forever", close=False) + request("GET", "/echo/after"))
    late, after = answers(data, ["GET", "GET"])
    assert late.status == 503 and late.json()["error"] == "unavailable"
    assert late.headers["retry-after"] == "5"
    assert after.status == 200 and after.json()["query"] == {}
    # Slow, so logged as such (by route pattern), and in the access log, which is on here.
    assert [fields(r)["route"] for r in caplog.records if r.getMessage() == "slow_request"] == [
        "/forever"
    ]
    logged = [fields(r) for r in caplog.records if r.getMessage() == "request"]
    assert [(e["route"], e["status"]) for e in logged] == [("/forever", 503), ("/echo/{word}", 200)]


async def test_a_client_pipelining_without_end_is_read_as_it_is_answered(conn: int):
    """While one request is answered, what comes behind it waits; past 80 KiB the
    connection is read no further until the answer is out, and nothing is lost."""
    many = 2000  # about 120 KB of requests behind one that takes the router's timeout
    raw = request("GET", "/forever", close=False) + b"".join(
        request("GET", f"/echo/{i}", close=False) for i in range(many - 1)
    )
    data = await talk(conn, raw + request("GET", "/echo/last"))
    got = answers(data, ["GET"] * (many + 1))
    assert got[0].status == 503 and {a.status for a in got[1:]} == {200}
    assert got[-1].json()["query"] == {} and len(got) == many + 1


async def test_a_client_that_reads_no_answers_is_answered_no_further(tmp_path: Path):
    """Requests pipelined by a client that reads none of their answers: the node
    answers while the socket takes them, then waits for the client to read (asyncio's
    write flow control) instead of holding every answer in memory (200 requests of a
    few bytes each asked for 50 MB), and at the deadline ends with a 408."""
    asked, size, deadline = 200, 256 * 1024, 1.0
    answered = 0

    async def big(request: HttpRequest) -> Response:
        nonlocal answered
        answered += 1
        return response(200, b"x" * size, "text/plain")

    port, stop = await serving(Table(Route("GET", "/big", big)), tmp_path, timeout=deadline)
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # before connect: the window
    try:
        sock.connect(("127.0.0.1", port))
        sock.sendall(b"".join(request("GET", "/big", close=False) for _ in range(asked)))
        await eventually(lambda: asyncio.sleep(0, answered), bool)
        await asyncio.sleep(2 * deadline)  # the client in question: it reads nothing for long
        sock.setblocking(False)
        loop = asyncio.get_running_loop()
        data = bytearray()
        while chunk := await asyncio.wait_for(loop.sock_recv(sock, 1 << 20), CLIENT_TIMEOUT):
            data += chunk
    finally:
        sock.close()
        await stop()
    got = answers(bytes(data), ["GET"] * (answered + 1))
    assert [a.status for a in got] == [200] * answered + [408]
    # what the kernel's buffers hold on loopback (4 MiB at most here), not all 200
    assert answered < asked // 4


async def test_a_client_that_trickles_its_request_gets_408(conn: int):
    """Slowloris: a head (or a body) that never ends gets 408 at the deadline."""
    for start in (
        b"GET /echo/x HTTP/1.1\r\nHost: x\r\nX-A: ",
        request("POST", "/echo", "Content-Length: 100", close=False) + b"{",
    ):
        reader, writer = await asyncio.open_connection("127.0.0.1", conn)
        writer.write(start)
        try:
            for _ in range(3):  # a byte at a time, each well inside the deadline
                writer.write(b"a")
                await asyncio.sleep(0.2)
            data = await asyncio.wait_for(reader.read(-1), CLIENT_TIMEOUT)
        finally:
            writer.close()
        (answer,) = answers(data, ["GET"])
        assert answer.status == 408 and answer.json()["error"] == "request_timeout"


async def test_an_idle_keep_alive_connection_is_closed(conn: int):
    reader, writer = await asyncio.open_connection("127.0.0.1", conn)
    try:
        writer.write(request("GET", "/echo/x", close=False))
        data = await asyncio.wait_for(reader.read(-1), CLIENT_TIMEOUT)  # EOF: it was closed
    finally:
        writer.close()
    assert [a.status for a in answers(data, ["GET"])] == [200]


async def test_the_servers_own_origin_always_opens_the_websocket(
    conn: int, caplog: pytest.LogCaptureFixture
):
    """Issue 22: with `--allowed-origin` set, the dashboard's own socket got 403."""
    async with connect(
        f"ws://127.0.0.1:{conn}/ws", origin=Origin(f"http://127.0.0.1:{conn}")
    ) as ws:
        await ws.send('{"message":"subscribe","pageNames":["Home_Page"]}')
        assert json.loads(await ws.recv())["message"] in ("count", "error")  # (no store)
    async with connect(f"ws://127.0.0.1:{conn}/ws", origin=Origin("https://blog.example")):
        pass
    # Another site's page is refused, and the log says which option would accept it.
    for origin in ("https://evil.example", f"https://127.0.0.1:{conn}"):  # not over https
        with pytest.raises(InvalidStatus) as refused:
            async with connect(f"ws://127.0.0.1:{conn}/ws", origin=Origin(origin)):
                pass
        assert refused.value.response.status_code == 403
    warned = [fields(r) for r in caplog.records if r.getMessage() == "origin_refused"]
    assert warned[0] == {
        "origin": "https://evil.example",
        "hint": "--allowed-origin https://evil.example accepts it",
    }


async def test_what_follows_the_handshake_in_its_segment_goes_to_the_websocket(conn: int):
    key = base64.b64encode(os.urandom(16))
    payload = b'{"message":"subscribe","pageNames":["Home_Page"]}'
    mask = os.urandom(4)
    frame = (
        bytes([0x81, 0x80 | len(payload)])
        + mask
        + bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    )
    reader, writer = await asyncio.open_connection("127.0.0.1", conn)
    try:
        writer.write(
            b"GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"
            b"Connection: Upgrade\r\nSec-WebSocket-Key: "
            + key
            + b"\r\nSec-WebSocket-Version: 13\r\n\r\n"
            + frame
        )
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), CLIENT_TIMEOUT)
        assert head.startswith(b"HTTP/1.1 101 ")
        first = await asyncio.wait_for(reader.readexactly(2), CLIENT_TIMEOUT)
        assert first[0] == 0x81  # a text frame: the subscription's count
        message = json.loads(await reader.readexactly(first[1] & 0x7F))
        # The subscription's answer: this table has no store, so `unavailable`.
        assert (message["message"], message.get("error")) == ("error", "unavailable"), message
    finally:
        writer.close()


async def test_request_durations_are_a_histogram_by_route(tmp_path: Path):
    table = Table(Route("GET", "/echo/{word}", echo))
    port, stop = await serving(table, tmp_path)
    try:
        for word in ("a", "b", "c"):
            await ask(port, request("GET", f"/echo/{word}"))
        await ask(port, request("GET", "/nowhere"))
    finally:
        await stop()
    seconds = table.router.seconds
    assert seconds is not None
    counts = {
        s.labels["route"]: s.value
        for m in seconds.collect()
        for s in m.samples
        if s.name.endswith("_count")
    }
    assert counts == {"/echo/{word}": 3, "(none)": 1}  # the pattern, never the raw path


async def call(routes: Routes, path: str, method: str = "GET") -> Answer:
    """The node's router called as the connection calls it, without a socket."""
    request = parse_target(method, path, Headers(), "")
    assert not isinstance(request, Response)
    route = routes.router.find(request)
    response = route if not isinstance(route, Route) else await routes.router(request, route)
    return Answer(
        response.status_code,
        {k.lower(): v for k, v in response.headers.raw_items()},
        bytes(response.body),
    )


async def test_problems_the_node_reports_make_healthz_503(local_store: Store):
    problems: list[str] = []
    routes = Routes(local_store, lambda target: None, PageRules(), problems=lambda: problems)
    assert (await call(routes, "/healthz")).json() == {"status": "ok"}
    problems.append("journal: cannot write (ENOSPC)")
    answer = await call(routes, "/healthz")
    assert answer.status == 503
    assert answer.json() == {
        "status": "unavailable",
        "problems": ["journal: cannot write (ENOSPC)"],
    }
    problems.clear()
    assert (await call(routes, "/healthz")).status == 200


async def test_a_bug_is_a_500_logged_once_with_its_traceback(
    local_store: Store, caplog: pytest.LogCaptureFixture
):
    def broken(target: object) -> None:
        raise ZeroDivisionError("a bug")

    routes = Routes(local_store, broken, PageRules())
    answer = await call(routes, "/api/pages/Home_Page?kind=page")
    assert answer.status == 500 and answer.json()["error"] == "internal"
    failures = [r for r in caplog.records if r.levelname == "ERROR"]
    assert [r.getMessage() for r in failures] == ["http_failed"]
    assert failures[0].exc_info is not None and failures[0].exc_info[0] is ZeroDivisionError
    head = await call(routes, "/api/pages/Home_Page?kind=page", "HEAD")
    assert head.status == 500  # its body is dropped by the connection (tested above)


# -- the whole parameter space, generated ----------------------------------------------

# For each parameter: values that work (so a request gets past it to the next one),
# odd values for what it takes, then anything at all.
DATES = (
    "9999-12-31T23:00:00Z",
    "0001-01-01",
    "0001-01-01T00:00:00+01:00",
    "2000-01-01",
    "9999-12-31T23:59:59.999999-23:59",
    "1999-12-31T23:59:59Z",
    "2200-12-31T23:59:59Z",
    "2201-01-01",
    "9999-12-31",
    "2026-11-24T09:30:00+02:00",
    "2026-W48-2",
    "yesterday",
    "\uff12\uff10\uff12\uff16-11-24",
    "2026-11-24T07:00:00\uff3a",
    "0",
    "",
)
NUMBERS = (
    "0",
    "1001",
    "-1",
    "\uff11",
    "\u0665",
    "\u00b2",
    "+5",
    " 5",
    "5_0",
    "0x10",
    "1e3",
    "5.0",
    "9" * 40,
    "NaN",
    "",
)
IDS = (
    "post#a",
    "x" * 256,
    "x" * 257,
    "\U0001f600" * 254,
    "\U0001f600" * 255,
    "\U0001f600" * 256,
    "\u00e9" * 600,
    "a\n",
    "\x00",
    "\x85",
    "\u2028",
    "\u202e",
    "\ufeff",
    "\ufffd",
    "\U0010ffff",
    ".",
    "..",
    "/",
    "%",
    "",
)
WORDS = ("week", "Total", "hour ", "\u0127our", "")
PARAMETERS = {  # name: (values that work, odd values)
    "articleId": (("a", "never-seen"), IDS),
    "pageName": (("Home_Page",), IDS),
    "kind": (("post", "page"), WORDS),
    "sort": (("total", "unique", "title"), WORDS),
    "limit": (("1", "05", "1000"), NUMBERS),
    "bucket": (("hour", "day"), WORDS),
    "since": (("2026-11-01", "2000-01-01T00:00:00Z"), DATES),
    "until": (("2026-11-24T23:59:59Z", "2200-12-31T23:59:59Z"), DATES),
}
ROUTES = {  # path (with {} for the id segment): the parameters it reads
    "/api/pages": ("sort", "limit"),
    "/api/pages/{}": ("kind",),
    "/api/referrers": ("articleId", "pageName", "limit"),
    "/api/timeline": ("articleId", "pageName", "bucket", "since", "until"),
}
# Sent as they are: reserved and control characters, but no CR, LF or space (those
# end the request line: the parser tests' business).
RAW = st.characters(min_codepoint=0, max_codepoint=0x7F, exclude_characters="\r\n ")
anything = st.one_of(
    st.text(max_size=40).map(lambda t: quote(t, safe="")),  # any Unicode, as UTF-8
    st.binary(max_size=20).map(lambda b: quote_from_bytes(b, safe="")),  # not UTF-8 at all
    st.text(alphabet=RAW, max_size=20),
)


def value(name: str) -> st.SearchStrategy[str]:
    good, odd = (st.sampled_from(v).map(lambda t: quote(t, safe="")) for v in PARAMETERS[name])
    return st.one_of(good, good, odd, odd, odd, anything)


def query(names: tuple[str, ...]) -> st.SearchStrategy[str]:
    known = st.fixed_dictionaries({}, optional={n: value(n) for n in names})
    extra = st.lists(
        st.tuples(st.one_of(st.sampled_from(list(PARAMETERS)), anything), anything), max_size=2
    )  # unknown names, and repeats of known ones
    return st.tuples(known, extra).map(
        lambda q: "&".join(f"{n}={v}" for n, v in [*q[0].items(), *q[1]])
    )


def api_request(route: str) -> st.SearchStrategy[str]:
    ids = st.one_of(value("articleId"), value("pageName"))
    path = ids.map(route.format) if "{}" in route else st.just(route)
    return st.tuples(path, st.one_of(st.none(), query(ROUTES[route]))).map(
        lambda pq: pq[0] if pq[1] is None else f"{pq[0]}?{pq[1]}"
    )


targets = st.one_of(
    st.sampled_from(list(ROUTES)).flatmap(api_request),
    st.sampled_from(list(ROUTES)).flatmap(api_request),
    st.sampled_from(list(ROUTES)).flatmap(api_request),
    st.tuples(anything.map(lambda v: f"/api/{v}"), query(tuple(PARAMETERS))).map("?".join),
    anything.map(lambda v: f"/demo/{v}"),
    anything.map(lambda v: f"/{v}"),
    st.sampled_from(
        [
            "/",
            "/healthz",
            "/metrics",
            "/client/livecount.mjs",
            "/api/pages/",
            "//[",
            "/api/pages/a/b",
            "/api//pages",
            "*",
            "http://x/api/pages",
        ]
    ),
)
methods = st.sampled_from(["GET"] * 6 + ["HEAD", "POST", "OPTIONS"])


def sweep() -> list[str]:
    """Every odd value in every parameter and path segment of every route: alone, and
    with the route's other parameters valid, so the odd value is what it is judged on."""
    base = {name: good[0] for name, (good, _) in PARAMETERS.items()}
    targets = []
    for route, names in ROUTES.items():
        for name in names:
            others = [n for n in names if n != name and n not in ("articleId", "pageName")]
            for odd in PARAMETERS[name][1]:
                for pairs in ([(name, odd)], [(n, base[n]) for n in others] + [(name, odd)]):
                    query = "&".join(f"{n}={quote(v, safe='')}" for n, v in pairs)
                    targets.append(f"{route.format('a')}?{query}")
    for odd in IDS:
        for kind in ("post", "page"):
            targets.append(f"/api/pages/{quote(odd, safe='')}?kind={kind}")
    return targets


def judge(method: str, target: str, answer: Answer) -> None:
    """200 with JSON (or the resource), or a JSON 4xx: never a 5xx, never a GET body
    for HEAD, never a GET answer for another method."""
    where = f"{method} {target!r}"
    assert answer.status == 200 or 400 <= answer.status < 500, (where, answer)
    if method not in ("GET", "HEAD"):  # 405 where the table has the path, else 404 (or
        assert answer.status in (400, 404, 405), where  # 400 for a target that is no URL)
        if answer.status == 405:
            assert answer.headers["allow"] == "GET, HEAD", where
    if method == "HEAD":
        assert answer.body == b"" and "content-length" in answer.headers, where
    elif answer.status != 200 or target.startswith("/api/"):
        answer.json()  # parses, and says it is JSON


@pytest_asyncio.fixture(scope="module")
async def seeded(module_launch: Launch) -> AsyncIterator[Served]:
    """A `livecount serve` with one counted post, so lookups also find something: one for
    the module's checks that only ask, which must leave it clean (exit code 0 when it
    stops, no error logged)."""
    served = await module_launch()
    async with connect(served.ws) as ws:
        await ws.send(
            json.dumps(
                {
                    "message": "views",
                    "articleId": "a",
                    "articleTitle": "A",
                    "currentPage": "/posts/a",
                }
            )
        )
        while (reply := json.loads(await ws.recv()))["message"] == "count":
            pass  # a live push of the page it watches may come before the reply
        assert reply["message"] == "views", reply
    yield served
    assert await served.stop() == 0
    assert errors_logged(served) == []


async def test_every_odd_value_of_every_parameter_gets_a_deliberate_answer(seeded: Served):
    statuses: set[int] = set()

    def run() -> None:
        for target in sweep():
            for method in ("GET", "HEAD"):
                answer = exchange(seeded.port, request(method, target))
                judge(method, target, answer)
                statuses.add(answer.status)

    await asyncio.to_thread(run)
    assert {200, 400} <= statuses  # odd values that are still fine, and refusals
    assert errors_logged(seeded) == []


async def test_any_request_to_any_route_gets_a_deliberate_answer(seeded: Served):
    """Random combinations: any Unicode, bytes that are not UTF-8, raw reserved and
    control characters, repeated and unknown parameters, odd methods."""
    statuses: set[int] = set()

    @seed(20261125)
    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
    )
    @given(method=methods, target=targets)
    def run(method: str, target: str) -> None:
        assume(len(target) < 8000)  # longer is a 414: the parser tests cover that
        answer = exchange(seeded.port, request(method, target))
        judge(method, target, answer)
        statuses.add(answer.status)

    await asyncio.to_thread(run)
    assert {200, 400, 404, 405} <= statuses
    assert errors_logged(seeded) == []
