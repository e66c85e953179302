"""Private by default, public on purpose: the operator's credential on a real node.

Every private route refuses a request with no token, a wrong one, a session cookie
that expired, was forged, or was made from an older token; what a page shows stays
open; `--public` opens exactly what it names. The token file is 0600 and kept across
restarts, wrong tokens are rate-limited per address (never the right one), no token
reaches the JSON log, and no private answer carries CORS headers.
"""

from __future__ import annotations

import asyncio
import http.client
import ipaddress
import json
import os
import socket
import stat
import sys
import time
from pathlib import Path
from typing import Any, cast
from urllib.parse import parse_qs, urlsplit

import pytest
from livecount.config import REPORTS
from livecount.core.pages import PageRules
from livecount.node.admin_api import operator_only
from livecount.node.auth import (
    COOKIE,
    FAILURE_BURST,
    SESSION_SECONDS,
    Failures,
    Guard,
    session_value,
)
from livecount.node.http import Routes
from livecount.node.router import HttpRequest, Route, parse_target
from websockets.asyncio.client import connect
from websockets.datastructures import Headers

from tests.support import Launch, Served, eventually, login_url

API = Routes(cast(Any, None), lambda target: None, PageRules()).report_paths  # every report route
PRIVATE = ("/", *API, "/metrics")
PUBLIC = (
    "/healthz",
    "/demo",
    "/demo/posts/x",
    "/client/livecount.mjs",
    "/livecount.js",
    "/login",
)


class Answer:
    def __init__(self, status: int, headers: list[tuple[str, str]], body: bytes) -> None:
        self.status = status
        self.headers = {k.lower(): v for k, v in headers}
        self.cookies = [v for k, v in headers if k.lower() == "set-cookie"]
        self.body = body

    def json(self) -> Any:
        return json.loads(self.body)

    def __repr__(self) -> str:
        return f"<{self.status} {self.headers} {self.body[:200]!r}>"


def _get(port: int, path: str, headers: dict[str, str], source: str) -> Answer:
    """One GET that does not follow redirects, from the loopback address `source`."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10, source_address=(source, 0))
    try:
        conn.request("GET", path, headers=headers)
        answer = conn.getresponse()
        return Answer(answer.status, answer.getheaders(), answer.read())
    finally:
        conn.close()


async def get(served: Served, path: str, source: str = "127.0.0.1", **headers: str) -> Answer:
    return await asyncio.to_thread(
        _get, served.port, path, {k.replace("_", "-"): v for k, v in headers.items()}, source
    )


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def cookie(value: str) -> dict[str, str]:
    return {"Cookie": f"theme=dark; {COOKIE}={value}"}


def token_of(served: Served) -> str:
    return parse_qs(urlsplit(login_url(served)).query)["token"][0]


async def private(launch: Launch, *args: str) -> tuple[Served, str]:
    served = await launch(*args, private=True)
    return served, token_of(served)


async def count_a_view(served: Served, article: str = "hello") -> dict[str, Any]:
    async with connect(served.ws) as ws:
        await ws.send(
            json.dumps(
                {
                    "message": "views",
                    "articleId": article,
                    "articleTitle": "Hello",
                    "referrer": "https://news.example/",
                    "currentPage": f"/posts/{article}",
                }
            )
        )
        reply: dict[str, Any] = json.loads(await ws.recv())
    return reply


def refused(answer: Answer, path: str) -> bool:
    """The refusal of a private route: the dashboard sends the browser to log in; the
    API and /metrics say 401 in JSON, with no CORS header."""
    if path == "/":
        return answer.status == 303 and answer.headers["location"] == "/login?next=%2F"
    return (
        answer.status == 401
        and answer.json()["error"] == "unauthorized"
        and answer.headers["www-authenticate"].startswith("Bearer")
        and "access-control-allow-origin" not in answer.headers
    )


# -- every private route, every way of not holding the credential ----------------------------
async def test_every_private_route_refuses_no_token_a_wrong_one_and_a_bad_cookie(launch: Launch):
    served, token = await private(launch)
    assert {"/api/pages", "/api/referrers", "/api/timeline"} <= set(API)
    now = int(time.time())
    ways = {
        "nothing": {},
        "a wrong token": bearer("x" * 43),
        "not a bearer": {"Authorization": f"Basic {token}"},
        "an expired cookie": cookie(session_value(token, now - 1)),
        "a forged cookie": cookie(f"{now + 3600}.{'0' * 64}"),
        "a cookie of another token": cookie(session_value("another-token-0123456789", now + 60)),
        "a cookie that is not one": cookie("yes"),
    }
    for path in PRIVATE:
        for way, headers in ways.items():
            answer = await get(served, path, Origin="https://evil.example", **headers)
            assert refused(answer, path), (path, way, answer)
            if "cookie" in way and "not one" not in way:  # a stale session is cleared
                assert any(
                    c.startswith(f"{COOKIE}=;") and "Max-Age=0" in c for c in answer.cookies
                ), (path, way, answer)
    # … and the right token, or a session made from it, opens every one of them.
    session = cookie(session_value(token, now + 60))
    for path in PRIVATE:
        for headers in (bearer(token), session):
            answer = await get(served, path, **headers)
            assert answer.status == 200, (path, answer)
            assert "public" not in answer.headers["cache-control"], (path, answer)


async def test_what_a_page_shows_is_public(launch: Launch):
    served, token = await private(launch, "--demo", "on")
    reply = await count_a_view(served)
    assert (reply["message"], reply["articleId"]) == ("views", "hello") and reply["totalViews"]
    for path in PUBLIC:
        answer = await get(served, path)
        assert answer.status == 200, (path, answer)

    async def own_totals() -> Answer:
        return await get(served, "/api/pages/hello", Origin="https://blog.example")

    answer = await eventually(own_totals, lambda a: a.status == 200)
    # A post's own totals, for any page and any origin; not its referrers or timeline.
    assert answer.json()["articleId"] == "hello" and answer.json()["totalViews"] == 1
    assert not {"referrers", "timeline"} & answer.json().keys()
    assert answer.headers["access-control-allow-origin"] == "*"
    # With the token, the details too, and then for this browser only, not other origins.
    full = await get(served, "/api/pages/hello", Origin="https://blog.example", **bearer(token))
    assert {"referrers", "timeline"} <= full.json().keys()
    assert "access-control-allow-origin" not in full.headers
    assert full.headers["cache-control"].startswith("private")
    assert "Authorization" in full.headers["vary"] and "Cookie" in answer.headers["vary"]
    # A wrong token is refused even here; a stale cookie only gets the public part.
    assert (await get(served, "/api/pages/hello", **bearer("nope" * 8))).status == 401
    stale = await get(served, "/api/pages/hello", **cookie(session_value(token, 1)))
    assert stale.status == 200 and "referrers" not in stale.json()


@pytest.mark.parametrize(
    "opened", [("pages",), ("metrics",), ("pages", "now", "referrers"), ("timeline",), ("all",)]
)
async def test_public_opens_exactly_the_reports_it_names(launch: Launch, opened):
    served, _ = await private(launch, *(a for name in opened for a in ("--public", name)))
    names = {"/": "all", "/metrics": "metrics"} | {p: p.removeprefix("/api/") for p in API}
    for path, name in names.items():
        answer = await get(served, path, Origin="https://blog.example")
        if name in opened or "all" in opened:
            assert answer.status == 200, (path, answer)
            if path in API:  # a public report is for any page: CORS as before
                assert answer.headers["access-control-allow-origin"] == "*", (path, answer)
                assert answer.headers["cache-control"] == "public, max-age=5"
        else:
            assert refused(answer, path), (opened, path, answer)


async def test_public_takes_only_report_names(tmp_path: Path):
    served = Served("--public", "dashboard", "--data-dir", str(tmp_path))
    listening = await served.spawn()
    assert served.proc is not None and await asyncio.wait_for(served.proc.wait(), 30) == 2
    with pytest.raises(RuntimeError):
        await listening
    assert any(
        "--public" in line and "must be one of" in line and "metrics" in line
        for line in served.output
    ), served.output
    assert set(REPORTS) == {"pages", "summary", "referrers", "timeline", "now", "metrics", "all"}


# -- the login page and the session cookie ---------------------------------------------------
async def test_login_by_url_sets_a_strict_httponly_cookie_and_goes_on(launch: Launch):
    served, token = await private(launch)
    url = urlsplit(login_url(served))
    assert (url.hostname, url.port, url.path) == ("127.0.0.1", served.port, "/login")
    answer = await get(served, f"/login?token={token}&next=/%3Fpost%3Dhello")
    assert answer.status == 303 and answer.headers["location"] == "/?post=hello"
    (made,) = answer.cookies
    parts = [p.strip() for p in made.split(";")]
    assert parts[0].startswith(f"{COOKIE}=")
    assert {"Path=/", "HttpOnly", "SameSite=Strict", f"Max-Age={SESSION_SECONDS}"} <= set(parts)
    assert "Secure" not in parts  # plain http: a Secure cookie would never come back
    session = parts[0].split("=", 1)[1]
    assert (await get(served, "/", **cookie(session))).status == 200
    assert (await get(served, "/api/timeline", **cookie(session))).status == 200
    # Behind an https proxy, the cookie is Secure.
    for headers in ({"X-Forwarded-Proto": "https"}, {"Forwarded": "for=1.2.3.4;proto=https"}):
        answer = await get(served, f"/login?token={token}", **headers)
        assert "Secure" in [p.strip() for p in answer.cookies[0].split(";")], headers
    # `next` stays on this site.
    for elsewhere in ("//evil.example/", "https://evil.example/", "/\\evil.example", "/login"):
        answer = await get(served, f"/login?token={token}&next={elsewhere}")
        assert answer.headers["location"] == "/", elsewhere
    # A wrong token goes back to the page, which says so; the token leaves the URL.
    answer = await get(served, "/login?token=wrong-wrong-wrong&next=/")
    assert answer.status == 303 and not answer.cookies
    assert answer.headers["location"] == "/login?next=%2F&error=wrong_token"
    # Logging out clears the cookie.
    answer = await get(served, "/logout", **cookie(session))
    assert answer.status == 303 and answer.headers["location"] == "/login"
    assert "Max-Age=0" in answer.cookies[0]


async def test_the_login_pages_script_gets_json(launch: Launch):
    served, token = await private(launch)
    answer = await get(served, "/login?next=/x", **bearer(token))
    assert (answer.status, answer.json()) == (200, {"next": "/x"})
    assert answer.cookies and "HttpOnly" in answer.cookies[0]
    answer = await get(served, "/login?next=/x", **bearer("w" * 20))
    assert answer.status == 401 and answer.json()["error"] == "unauthorized"
    assert not answer.cookies


# -- the token file ---------------------------------------------------------------------------
async def test_the_token_file_is_0600_and_kept_across_restarts(launch: Launch, tmp_path: Path):
    served, token = await private(launch)
    path = tmp_path / "node" / "admin-token"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert path.read_text().strip() == token and len(token) >= 40
    assert served.events("admin_token")[0]["made"] is True
    session = cookie(session_value(token, int(time.time()) + 600))
    await served.stop()
    again = await launch(private=True)
    assert token_of(again) == token and again.events("admin_token")[0]["made"] is False
    assert (await get(again, "/api/pages", **session)).status == 200  # sessions survive
    # A new token in the file ends every session made from the old one, at once.
    path.write_text("a-brand-new-token-of-enough-length\n")
    for headers in (session, bearer(token)):
        assert (await get(again, "/api/pages", **headers)).status == 401
    assert (
        await get(again, "/api/pages", **bearer("a-brand-new-token-of-enough-length"))
    ).status == 200
    assert again.events("admin_token_changed")


async def test_admin_token_file_puts_it_elsewhere(launch: Launch, tmp_path: Path):
    elsewhere = tmp_path / "secrets" / "livecount-token"
    served, token = await private(launch, "--admin-token-file", str(elsewhere))
    assert elsewhere.read_text().strip() == token
    assert not (tmp_path / "node" / "admin-token").exists()
    assert (await get(served, "/metrics", **bearer(token))).status == 200


@pytest.mark.parametrize("content", ["", "short", "has a space in it here", "é" * 20])
async def test_an_unusable_token_file_stops_serve_with_one_line(tmp_path: Path, content):
    (tmp_path / "admin-token").write_text(content)
    served = Served("--data-dir", str(tmp_path))
    listening = await served.spawn()
    assert served.proc is not None and await asyncio.wait_for(served.proc.wait(), 30) == 2
    with pytest.raises(RuntimeError):
        await listening
    assert [line for line in served.output if line.startswith("livecount:")] == [
        f"livecount: {tmp_path / 'admin-token'} must hold one token of 16 to 512 printable "
        "ASCII characters, no space; delete the file to have a new one made"
    ]


# -- wrong tokens, per address ----------------------------------------------------------------
async def test_wrong_tokens_are_limited_but_the_operator_is_never_locked_out(launch: Launch):
    """Issue 22: ten wrong tokens used to lock the address out, the right token with it
    (and behind a proxy that is not a `--trusted-proxy`, every address is one)."""
    served, token = await private(launch)
    session = cookie(session_value(token, int(time.time()) + 600))
    for i in range(FAILURE_BURST):
        assert (
            await get(served, "/api/pages", **bearer(f"guess-{i:02d}-xxxxxxxxxx"))
        ).status == 401
    answer = await get(served, "/api/pages", **bearer("guess-next-xxxxxxxx"))
    assert answer.status == 429 and answer.json()["error"] == "too_many_attempts"
    assert int(answer.headers["retry-after"]) >= 1
    answer = await get(served, "/login?token=guess-by-link-xxxxxx")
    assert parse_qs(urlsplit(answer.headers["location"]).query)["error"] == ["too_many_attempts"]
    # The right token still gets in, by header or by link, and so does a session …
    assert (await get(served, "/api/pages", **bearer(token))).status == 200
    answer = await get(served, f"/login?token={token}")
    assert answer.status == 303 and answer.cookies and answer.headers["location"] == "/"
    assert (await get(served, "/api/pages", **session)).status == 200
    # … and the address is still limited for wrong ones.
    assert (await get(served, "/api/pages", **bearer("guess-after-xxxxxxx"))).status == 429
    assert served.events("wrong_token") and served.events("login_limited")


async def test_another_address_is_not_limited(launch: Launch):
    served, _ = await private(launch)
    other = "127.0.0.2"
    with socket.socket() as probe:  # Linux routes all of 127/8 to loopback
        probe.bind((other, 0))
    for i in range(FAILURE_BURST + 1):
        await get(served, "/api/pages", **bearer(f"guess-{i:02d}-xxxxxxxxxx"))
    assert (await get(served, "/api/pages", **bearer("guess-more-xxxxxxxx"))).status == 429
    assert (await get(served, "/api/pages", other, **bearer("guess-more-xxxxxxxx"))).status == 401


def _request(path: str, **headers: str) -> Headers:
    return Headers({k.replace("_", "-"): v for k, v in headers.items()})


async def test_the_limit_is_per_address_and_believes_only_trusted_proxies(tmp_path: Path):
    guard = Guard(tmp_path / "token", trusted=(ipaddress.ip_network("10.0.0.1"),))
    router = Routes(cast(Any, None), lambda target: None, PageRules(), guard=guard).router
    wrong = {"Authorization": "Bearer wrong-wrong-wrong-wrong"}
    right = {"Authorization": f"Bearer {guard.token}"}

    async def status(peer: str, **headers: str) -> int:
        request = parse_target("GET", "/metrics", _request("/metrics", **headers), peer)
        assert isinstance(request, HttpRequest)
        route = router.find(request)
        assert isinstance(route, Route)
        return (await router(request, route)).status_code

    for _ in range(FAILURE_BURST):
        assert await status("192.0.2.1", **wrong) == 401
    assert await status("192.0.2.1", **wrong) == 429
    assert await status("192.0.2.1", **right) == 200  # the right token is never locked out
    assert await status("192.0.2.2", **wrong) == 401  # another address
    # Behind the trusted proxy, the address it forwards is the one limited …
    for _ in range(FAILURE_BURST):
        await status("10.0.0.1", **wrong, X_Forwarded_For="198.51.100.7")
    assert await status("10.0.0.1", **wrong, X_Forwarded_For="198.51.100.7") == 429
    assert await status("10.0.0.1", **wrong, X_Forwarded_For="198.51.100.8") == 401
    # … and from anyone else the header is not believed.
    assert await status("192.0.2.1", **wrong, X_Forwarded_For="198.51.100.9") == 429


async def test_authorize_asks_for_the_credential_whatever_is_public(tmp_path: Path):
    """What changes counts (the dashboard's rename and delete) is never opened by
    `--public`, not even `all`."""
    guard = Guard(tmp_path / "token", public=("all",))
    authorize = operator_only(guard)
    refusal = authorize(_request("/api/admin/delete"), "192.0.2.1")
    assert refusal is not None and refusal.status_code == 401
    assert (
        authorize(_request("/api/admin/delete", Authorization=f"Bearer {guard.token}"), "") is None
    )
    session = session_value(guard.token, int(time.time()) + 60)
    assert authorize(_request("/x", Cookie=f"{COOKIE}={session}"), "") is None


def test_failures_grow_back_one_every_few_seconds():
    now = [0.0]
    failures = Failures(burst=3, rate=0.5, clock=lambda: now[0])
    assert failures.wait("a") == 0
    for _ in range(3):
        failures.failed("a")
    assert failures.wait("a") == 2 and failures.wait("b") == 0
    now[0] += 1.0
    assert failures.wait("a") == 1
    now[0] += 1.0
    assert failures.wait("a") == 0  # one more try …
    failures.failed("a")
    assert failures.wait("a") == 2  # … and it is spent again


# -- the log, CORS, and `livecount report` ----------------------------------------------------
async def test_no_token_reaches_the_json_log(launch: Launch):
    served, token = await private(launch, "--log-level", "debug")
    wrong = "wrong-token-that-must-not-be-logged"
    await get(served, f"/login?token={token}")
    await get(served, f"/login?token={wrong}")
    await get(served, f"/login?%74oken={wrong}")
    await get(served, "/api/pages", **bearer(wrong))
    await get(served, "/api/pages", **bearer(token))
    await get(served, "/", **cookie(session_value(token, 1)))
    await served.stop()
    assert served.events("wrong_token")  # the attempts were logged, without what was sent
    json_lines = [line for line in served.output if line.startswith("{")]
    assert json_lines and not [line for line in json_lines if token in line or wrong in line]
    assert [line for line in served.output if token in line] == [
        f"livecount: log in to the dashboard at {login_url(served)}"
    ]


async def test_cors_never_gives_a_private_report_to_another_origin(launch: Launch):
    served, token = await private(
        launch, "--allowed-origin", "https://blog.example", "--public", "pages"
    )
    await count_a_view(served)
    for path in (*API, "/metrics", "/api/pages/hello"):
        if path == "/api/pages":
            continue
        answer = await get(served, path, Origin="https://blog.example", **bearer(token))
        assert answer.status == 200, (path, answer)
        assert not any(h.startswith("access-control-") for h in answer.headers), (path, answer)
    # What is public follows --allowed-origin as before, and never allows credentials.
    for path in ("/api/pages", "/api/pages/hello"):
        answer = await get(served, path, Origin="https://blog.example")
        assert answer.status == 200, (path, answer)
        assert answer.headers["access-control-allow-origin"] == "https://blog.example"
        assert "access-control-allow-credentials" not in answer.headers


async def report(
    served: Served, *args: str, env: dict[str, str] | None = None, cwd: Path | None = None
) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "livecount",
        "report",
        *args,
        "--url",
        served.http,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        cwd=cwd,
        env={k: v for k, v in os.environ.items() if not k.startswith("LIVECOUNT_")} | (env or {}),
    )
    out, err = await proc.communicate()
    return proc.returncode or 0, out.decode(), err.decode()


async def test_report_sends_the_token_from_the_data_dir_or_the_environment(
    launch: Launch, tmp_path: Path
):
    served, token = await private(launch)
    await count_a_view(served)
    nowhere = tmp_path / "elsewhere"
    nowhere.mkdir()
    code, _, err = await report(served, "pages", "--json", cwd=nowhere)
    assert code == 2 and "private" in err and "LIVECOUNT_TOKEN" in err
    code, out, _ = await report(
        served, "pages", "--json", "--data-dir", str(tmp_path / "node"), cwd=nowhere
    )
    assert code == 0 and isinstance(json.loads(out), list)
    code, out, _ = await report(
        served, "timeline", "--json", cwd=nowhere, env={"LIVECOUNT_TOKEN": token}
    )
    assert code == 0 and len(json.loads(out)) >= 48
    code, _, err = await report(
        served, "referrers", cwd=nowhere, env={"LIVECOUNT_TOKEN": "not-the-token-at-all"}
    )
    assert code == 2 and "wrong" in err
    code, out, _ = await report(
        served,
        "pages",
        "--json",
        "--admin-token-file",
        str(tmp_path / "node" / "admin-token"),
        cwd=nowhere,
    )
    assert code == 0
