"""Every HTTP answer is deliberate: odd methods, HEAD, extreme dates, digits that are
not ASCII, a store that is frozen or down, raw bytes websockets' parser refuses, a bug,
and a generative sweep of every route's parameters. Each request is sent as raw bytes
over a socket, so nothing between the test and the server tidies it up first."""

from __future__ import annotations

import asyncio
import json
import os
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote, quote_from_bytes, urlsplit

import pytest
import pytest_asyncio
from hypothesis import HealthCheck, assume, given, seed, settings
from hypothesis import strategies as st
from livecount.aws.store import Store
from livecount.core.engine import Engine, Settings
from livecount.core.pages import PageRules
from livecount.node.http import Routes
from livecount.node.journal import Journal
from livecount.node.metrics import Metrics
from livecount.node.sockets import Bases, Connection, Sockets
from websockets.asyncio.client import connect
from websockets.datastructures import Headers
from websockets.http11 import Request

from tests.faults import FaultProxy
from tests.support import Launch, Served, eventually

# Longer than the server's 3 s bound on the store, shorter than the 10 s handshake
# timeout that used to drop an unanswered request: an answer inside it is deliberate.
CLIENT_TIMEOUT = 8.0
SOAK = os.environ.get("LIVECOUNT_SOAK") == "1"
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


def request(method: str, target: str, *extra: str) -> bytes:
    lines = [f"{method} {target} HTTP/1.1", "Host: 127.0.0.1", *extra]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


async def ask(port: int, raw: bytes) -> Answer:
    return await asyncio.to_thread(exchange, port, raw)


def errors_logged(served: Served) -> list[dict[str, Any]]:
    return [e for e in served.logs if e.get("level") in ("error", "critical")]


# -- on a real `livecount serve` --------------------------------------------------------

@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE", "OPTIONS", "TRACE", "PATCH", "FOO"])
async def test_methods_other_than_get_and_head_get_405_with_allow(launch: Launch, method):
    served = await launch()
    for path in ("/", "/api/pages", "/api/pages/x", "/healthz", "/metrics", "/nowhere"):
        answer = await ask(served.port, request(method, path, "Content-Length: 0"))
        assert answer.status == 405, (method, path, answer)
        assert answer.headers["allow"] == "GET, HEAD"
        assert answer.json()["error"] == "method_not_allowed"


async def test_head_sends_the_headers_of_get_and_no_body(launch: Launch):
    served = await launch()
    for path in ("/", "/client/livecount.mjs", "/livecount.js", "/api/pages", "/api/timeline",
                 "/healthz", "/nowhere", "/api/timeline?bucket=week"):
        got = await ask(served.port, request("GET", path))
        head = await ask(served.port, request("HEAD", path))
        assert (head.status, head.body) == (got.status, b""), path
        assert head.headers["content-length"] == str(len(got.body)) != "0", path
        assert head.headers["content-type"] == got.headers["content-type"], path


@pytest.mark.parametrize("query", [
    "until=9999-12-31T23:00:00Z", "since=0001-01-01", "since=0001-01-01&until=0001-01-02",
    "until=0001-01-01T00:00:00%2B01:00", "until=9999-12-31T23:59:59.999999-23:59",
    "since=9999-12-31&bucket=day", "until=1999-12-31T23:59:59Z", "until=2201-01-01",
])
async def test_extreme_dates_get_400_naming_the_range(launch: Launch, query):
    served = await launch()
    for path in ("/api/timeline", "/api/timeline"):  # twice: the first did not break it
        answer = await ask(served.port, request("GET", f"{path}?{query}"))
        body = answer.json()
        assert answer.status == 400 and body["error"] == "invalid_parameter", body
        assert body["parameter"] in ("since", "until") and "2000-01-01" in body["detail"]
    await served.stop()
    assert errors_logged(served) == []


async def test_numbers_are_ascii_digits_only(launch: Launch):
    served = await launch()
    for value in ("%EF%BC%91", "%D9%A5", "%2B5", "%205", "5%20", "5_0", "0x10", "1e3", "-1"):
        answer = await ask(served.port, request("GET", f"/api/pages?limit={value}"))
        assert answer.status == 400, (value, answer)
        assert answer.json()["parameter"] == "limit"
    answer = await ask(served.port, request("GET", "/api/referrers?limit=05"))
    assert answer.status == 200 and answer.json() == []


async def test_escapes_that_are_not_utf8_get_400_not_a_replacement_character(launch: Launch):
    """Found by a hostile trial: `%FF%FE` was decoded to U+FFFD, an id nobody sent."""
    served = await launch()
    for target in ("/api/pages/%FF%FE", "/api/referrers?articleId=%FF", "/login?next=/%C3",
                   "/api/admin/rename?from=a&to=%FF%FE"):
        answer = await ask(served.port, request("GET", target))
        assert answer.status == 400, (target, answer)
        assert "UTF-8" in answer.json()["detail"]
    answer = await ask(served.port, request("GET", "/api/pages/caf%C3%A9"))  # é: fine, unknown
    assert answer.status == 404


@pytest.mark.parametrize("outage", ["frozen", "down"])
async def test_the_api_answers_503_while_dynamodb_is_frozen_or_down(
        launch: Launch, dynamodb_local_url: str, prefix: str, outage: str):
    proxy = await FaultProxy(int(urlsplit(dynamodb_local_url).port or 0)).start()
    try:
        served = await launch("--dynamodb-endpoint", proxy.url, "--table-prefix", prefix,
                              shared=False)
        assert (await ask(served.port, request("GET", "/api/pages"))).status == 200
        if outage == "frozen":
            proxy.set("hold")  # connections open, requests read, never answered
        else:
            await proxy.stop()  # the port closes: connections are refused
        paths = ("/api/pages", "/api/pages/some-post", "/api/pages/Home_Page?kind=page",
                 "/api/referrers", "/api/timeline?bucket=day", "/healthz")
        answers = await asyncio.gather(*(
            ask(served.port, request("GET", path, "Origin: https://a.example")) for path in paths))
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


async def test_a_raw_non_ascii_request_line_gets_400_from_livecount_serve(launch: Launch):
    served = await launch()
    for raw in (b"GET /caf\xc3\xa9 HTTP/1.1\r\nHost: x\r\n\r\n",
                b"POST /api/pages HTTP/1.1\r\nContent-Length: 2\r\n\r\n{}"):
        answer = await ask(served.port, raw)
        assert answer.status in (400, 405) and answer.json()["error"], answer


# -- the node's own transport, in process, on DynamoDB Local ----------------------------

@pytest_asyncio.fixture
async def edge(local_store: Store, tmp_path: Path) -> AsyncIterator[int]:
    """`Routes` behind the node's transport (`node/sockets.py`), as `serve` wires them."""
    engine: Engine[Connection] = Engine(Settings())
    journal = Journal(tmp_path / "journal")
    journal.lock()
    journal.open()
    routes = Routes(local_store, engine.shown, PageRules())
    sockets = Sockets(engine, Bases(local_store, engine), journal, Metrics("edge"), None,
                      routes, None, 4096, 10.0)
    server = await asyncio.get_running_loop().create_server(sockets, "127.0.0.1", 0)
    yield server.sockets[0].getsockname()[1]
    server.close()
    await sockets.close_all(1.0)
    await journal.close()


@pytest.mark.parametrize(("raw", "status", "error"), [
    (b"GET /caf\xc3\xa9 HTTP/1.1\r\nHost: x\r\n\r\n", 400, "bad_request"),
    (b"GET /api/pages?articleId=\xff HTTP/1.1\r\nHost: x\r\n\r\n", 400, "bad_request"),
    (b"G\xc3\x89T / HTTP/1.1\r\nHost: x\r\n\r\n", 400, "bad_request"),
    (b"POST /api/pages HTTP/1.1\r\nContent-Length: 2\r\n\r\n{}", 405, "method_not_allowed"),
    (b"PUT / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 405,
     "method_not_allowed"),
    (b"GET / HTTP/1.1\r\nContent-Length: 2\r\n\r\n{}", 400, "bad_request"),
    (b"GET / HTTP/2.0\r\n\r\n", 400, "bad_request"),
    (b"GET /\r\n\r\n", 400, "bad_request"),
    (b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\r\n\r\n", 400, "bad_request"),  # TLS hello
    (b"GET /" + b"a" * 9000 + b" HTTP/1.1\r\n\r\n", 414, "uri_too_long"),
    (b"GET / HTTP/1.1\r\n" + b"X: y\r\n" * 200 + b"\r\n", 431, "headers_too_large"),
    (b"GET / HTTP/1.1\r\nX: " + b"y" * 9000 + b"\r\n\r\n", 431, "headers_too_large"),
    (b"GET /api/pages HTTP/1.1\nHost: x\n\n", 400, "bad_request"),  # bare LF
    (b"GET /ws HTTP/1.1\r\nHost: x\r\n\r\n", 426, "upgrade_required"),
    (b"GET /ws HTTP/1.0\r\nHost: x\r\n\r\n", 505, "bad_handshake"),
    (b"GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
     b"Sec-WebSocket-Key: x\r\nSec-WebSocket-Version: 8\r\n\r\n", 400, "bad_handshake"),
])
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


@pytest.mark.parametrize("after", [b"ab", b"\r\n", b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"])
async def test_what_follows_a_request_does_not_cost_its_answer(edge: int, after: bytes):
    """One request per connection: a pipelined second one, or stray bytes, are not
    read, and the first still gets its answer."""
    answer = await ask(edge, request("GET", "/healthz") + after)
    assert answer.status == 200 and answer.json() == {"status": "ok"}


async def test_a_client_that_sends_nothing_and_leaves_is_let_go(edge: int):
    _, writer = await asyncio.open_connection("127.0.0.1", edge)
    writer.write(b"GET / HT")
    writer.write_eof()
    writer.close()
    await writer.wait_closed()
    assert (await ask(edge, request("GET", "/nowhere"))).status == 404  # still serving


async def call(routes: Routes, path: str, method: str = "GET") -> Answer:
    """`Routes` called as websockets calls it, without a socket."""
    response = await routes(Request(path, Headers(), method))
    assert response is not None
    return Answer(response.status_code, {k.lower(): v for k, v in response.headers.raw_items()},
                  bytes(response.body))


async def test_problems_the_node_reports_make_healthz_503(local_store: Store):
    problems: list[str] = []
    routes = Routes(local_store, lambda target: None, PageRules(), problems=lambda: problems)
    assert (await call(routes, "/healthz")).json() == {"status": "ok"}
    problems.append("journal: cannot write (ENOSPC)")
    answer = await call(routes, "/healthz")
    assert answer.status == 503
    assert answer.json() == {"status": "unavailable",
                             "problems": ["journal: cannot write (ENOSPC)"]}
    problems.clear()
    assert (await call(routes, "/healthz")).status == 200


async def test_a_bug_is_a_500_logged_once_with_its_traceback(
        local_store: Store, caplog: pytest.LogCaptureFixture):
    def broken(target: object) -> None:
        raise ZeroDivisionError("a bug")

    routes = Routes(local_store, broken, PageRules())
    answer = await call(routes, "/api/pages/Home_Page?kind=page")
    assert answer.status == 500 and answer.json()["error"] == "internal"
    failures = [r for r in caplog.records if r.levelname == "ERROR"]
    assert [r.getMessage() for r in failures] == ["http_failed"]
    assert failures[0].exc_info is not None and failures[0].exc_info[0] is ZeroDivisionError
    head = await call(routes, "/api/pages/Home_Page?kind=page", "HEAD")
    assert head.status == 500 and head.body == b""


# -- the whole parameter space, generated ----------------------------------------------

# For each parameter: values that work (so a request gets past it to the next one),
# odd values for what it takes, then anything at all.
DATES = ("9999-12-31T23:00:00Z", "0001-01-01", "0001-01-01T00:00:00+01:00", "2000-01-01",
         "9999-12-31T23:59:59.999999-23:59", "1999-12-31T23:59:59Z", "2200-12-31T23:59:59Z",
         "2201-01-01", "9999-12-31", "2026-11-24T09:30:00+02:00", "2026-W48-2", "yesterday",
         "\uff12\uff10\uff12\uff16-11-24", "2026-11-24T07:00:00\uff3a", "0", "")
NUMBERS = ("0", "1001", "-1", "\uff11", "\u0665", "\u00b2", "+5", " 5", "5_0", "0x10", "1e3",
           "5.0", "9" * 40, "NaN", "")
IDS = ("post#a", "x" * 256, "x" * 257, "\U0001f600" * 254, "\U0001f600" * 255,
       "\U0001f600" * 256, "\u00e9" * 600, "a\n", "\x00", "\x85", "\u2028", "\u202e", "\ufeff",
       "\ufffd", "\U0010ffff", ".", "..", "/", "%", "")
WORDS = ("week", "Total", "hour ", "\u0127our", "")
PARAMETERS = {  # name: (values that work, odd values)
    "articleId": (("a", "never-seen"), IDS), "pageName": (("Home_Page",), IDS),
    "kind": (("post", "page"), WORDS), "sort": (("total", "unique", "title"), WORDS),
    "limit": (("1", "05", "1000"), NUMBERS), "bucket": (("hour", "day"), WORDS),
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
    extra = st.lists(st.tuples(st.one_of(st.sampled_from(list(PARAMETERS)), anything), anything),
                     max_size=2)  # unknown names, and repeats of known ones
    return st.tuples(known, extra).map(
        lambda q: "&".join(f"{n}={v}" for n, v in [*q[0].items(), *q[1]]))


def api_request(route: str) -> st.SearchStrategy[str]:
    ids = st.one_of(value("articleId"), value("pageName"))
    path = ids.map(route.format) if "{}" in route else st.just(route)
    return st.tuples(path, st.one_of(st.none(), query(ROUTES[route]))).map(
        lambda pq: pq[0] if pq[1] is None else f"{pq[0]}?{pq[1]}")


targets = st.one_of(
    st.sampled_from(list(ROUTES)).flatmap(api_request),
    st.sampled_from(list(ROUTES)).flatmap(api_request),
    st.sampled_from(list(ROUTES)).flatmap(api_request),
    st.tuples(anything.map(lambda v: f"/api/{v}"), query(tuple(PARAMETERS))).map("?".join),
    anything.map(lambda v: f"/demo/{v}"),
    anything.map(lambda v: f"/{v}"),
    st.sampled_from(["/", "/healthz", "/metrics", "/client/livecount.mjs", "/livecount.js",
                     "/api/pages/", "//[", "/api/pages/a/b", "/api//pages", "*",
                     "http://x/api/pages"]),
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
    if method not in ("GET", "HEAD"):
        assert answer.status == 405 and answer.headers["allow"] == "GET, HEAD", where
    if method == "HEAD":
        assert answer.body == b"" and "content-length" in answer.headers, where
    elif answer.status != 200 or target.startswith("/api/"):
        answer.json()  # parses, and says it is JSON


async def seeded(launch: Launch) -> Served:
    """A server with one counted post, so lookups also find something."""
    served = await launch()
    async with connect(served.ws) as ws:
        await ws.send(json.dumps({"message": "views", "articleId": "a", "articleTitle": "A",
                                  "currentPage": "/posts/a"}))
        while (reply := json.loads(await ws.recv()))["message"] == "count":
            pass  # a live push of the page it watches may come before the reply
        assert reply["message"] == "views", reply
    return served


async def test_every_odd_value_of_every_parameter_gets_a_deliberate_answer(launch: Launch):
    served = await seeded(launch)
    statuses: set[int] = set()

    def run() -> None:
        for target in sweep():
            for method in ("GET", "HEAD"):
                answer = exchange(served.port, request(method, target))
                judge(method, target, answer)
                statuses.add(answer.status)

    await asyncio.to_thread(run)
    assert {200, 400} <= statuses  # odd values that are still fine, and refusals
    assert await served.stop() == 0
    assert errors_logged(served) == []


async def test_any_request_to_any_route_gets_a_deliberate_answer(launch: Launch):
    """Random combinations: any Unicode, bytes that are not UTF-8, raw reserved and
    control characters, repeated and unknown parameters, odd methods."""
    served = await seeded(launch)
    statuses: set[int] = set()

    @seed(20261125)
    @settings(max_examples=EXAMPLES, deadline=None, database=None,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
    @given(method=methods, target=targets)
    def run(method: str, target: str) -> None:
        assume(len(target) < 8000)  # longer is a 414: the parser tests cover that
        answer = exchange(served.port, request(method, target))
        judge(method, target, answer)
        statuses.add(answer.status)

    await asyncio.to_thread(run)
    assert {200, 400, 404, 405} <= statuses
    assert await served.stop() == 0
    assert errors_logged(served) == []
