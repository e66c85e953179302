"""Who may see what over HTTP: the operator's credential at the door of each answer.

What a page shows (a post's own totals, the WebSocket) is public; the reports, the
dashboard and `/metrics` ask for the operator's credential (`node/auth.py`) unless
`--public` names them: without it the API answers 401, the dashboard 303 to /login.
A private answer never carries CORS headers, and only the browser may cache it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import quote, urlencode

from livecount.node.answers import (
    UNFRAMED,
    json_response,
    not_found,
    redirect,
    unauthorized,
)
from livecount.node.auth import Guard, header, over_https, session_cookie
from livecount.node.report_reads import DETAILS
from livecount.node.static import Files
from websockets.datastructures import Headers
from websockets.http11 import Response

API_CACHE = "public, max-age=5"  # live data: short, but enough to absorb a refresh storm
PRIVATE_CACHE = "private, max-age=5"  # the same, kept by the browser only, never a proxy


def own_origin(headers: Headers) -> str | None:
    """This server's origin as a browser on it names it: the request's `Host`, over http,
    or https when the proxy in front says so (`over_https`)."""
    host = header(headers, "Host")
    if not host:
        return None
    return f"{'https' if over_https(headers) else 'http'}://{host.strip().lower()}"


def safe_next(value: str | None) -> str:
    """Where to go after logging in: a path on this site, never another site's URL
    (`//evil.example`, `/\\evil.example`) nor the login page again."""
    if (
        not value
        or not value.startswith("/")
        or value.startswith(("//", "/\\", "/login"))
        or len(value) > 2048
        or any(c < " " or c == "\\" for c in value)
    ):
        return "/"
    # A Location header is ASCII: anything else (a dashboard hash's Unicode id, DEL, a
    # fullwidth solidus) travels percent-encoded, so it is never read as a separator.
    return quote(value, safe="/?#&=%:@!$'()*+,;~-._")


@dataclass(frozen=True)
class Grant:
    """How a report may be answered: its CORS headers, its Cache-Control, and which
    of one page's details it shows."""

    cors: dict[str, str]
    cache: str = API_CACHE
    details: tuple[str, ...] = DETAILS


class Access:
    """The credential's checks, the login and logout pages, CORS and cache headers."""

    def __init__(
        self, guard: Guard | None, allowed_origins: tuple[str, ...] = (), files: Files | None = None
    ) -> None:
        self.guard = guard  # None: no credential at all, every report public (tests)
        self.allowed_origins = allowed_origins
        self.files = files or Files()

    def refused(self, report: str, headers: Headers, peer: str) -> Response | None:
        """None if `report` may be served to this request; else why not (401 or 429)."""
        if self.guard is None or self.guard.opens(report):
            return None
        verdict = self.guard.check(headers, peer)
        return None if verdict.granted else unauthorized(verdict, over_https(headers))

    def report(self, name: str | None, headers: Headers, peer: str) -> Grant | Response:
        """How to answer the report `name` (None: one page's own answer, whose totals
        are public but whose details may not be), or the 401 (429) instead."""
        cors = self._cors(header(headers, "Origin"))
        if name is None:
            shown = self._details(headers, peer)
            if isinstance(shown, Response):
                return shown
            cache = API_CACHE
            if self.guard is not None and not all(map(self.guard.opens, shown)):
                cors, cache = {}, PRIVATE_CACHE
            vary = ", ".join(filter(None, (cors.get("Vary"), "Authorization, Cookie")))
            # One answer for a reader, another for the owner.
            return Grant(cors | {"Vary": vary}, cache, shown)
        if refused := self.refused(name, headers, peer):
            return refused
        if self.guard is not None and not self.guard.opens(name):
            return Grant({}, PRIVATE_CACHE)  # private reports never go to another origin
        return Grant(cors)

    def dashboard(self, target: str, headers: Headers, peer: str) -> Response:
        """The dashboard, or without the credential a redirect to the login page."""
        if self.guard is None or self.guard.opens("all"):
            return self.files.answer("dashboard.html", headers, "no-cache")
        verdict = self.guard.check(headers, peer)
        if verdict.retry_after:
            return unauthorized(verdict, over_https(headers))
        if not verdict.granted:
            extra = (
                {"Set-Cookie": session_cookie("", 0, over_https(headers))}
                if verdict.stale
                else None
            )
            return redirect("/login?" + urlencode({"next": target}), extra)
        return self.files.answer("dashboard.html", headers, "private, no-cache", UNFRAMED)

    def login(self, query: Mapping[str, str], headers: Headers, peer: str) -> Response:
        """`GET /login`: the page. With `?token=` (the URL `serve` prints) a redirect to
        `next` that sets the session cookie, or back to the page with the error; with
        the token in `Authorization` (the page's script) the same in JSON."""
        if self.guard is None:
            return not_found("this node has no credential: every report is public")
        given, scripted = query.get("token"), header(headers, "Authorization") is not None
        if given is None and not scripted:
            return self.files.answer("login.html", headers, "no-store", UNFRAMED)
        go, secure = safe_next(query.get("next")), over_https(headers)
        if scripted:
            verdict = self.guard.check(headers, peer)
        else:
            verdict = self.guard.try_token(given or "", self.guard.address(peer, headers))
        if verdict.granted:
            value, max_age = self.guard.session()
            cookie = {"Set-Cookie": session_cookie(value, max_age, secure)}
            return (
                json_response(200, {"next": go}, extra=cookie) if scripted else redirect(go, cookie)
            )
        if scripted:
            return unauthorized(verdict, secure)
        failed = {
            "next": go,
            "error": "too_many_attempts" if verdict.retry_after else "wrong_token",
        }
        if verdict.retry_after:
            failed["retry"] = str(verdict.retry_after)
        return redirect("/login?" + urlencode(failed))

    @staticmethod
    def logout(headers: Headers) -> Response:
        return redirect("/login", {"Set-Cookie": session_cookie("", 0, over_https(headers))})

    def _details(self, headers: Headers, peer: str) -> tuple[str, ...] | Response:
        """The private parts of one page's answer this request may see: all with the
        credential, the public ones without; a wrong token is a 401 here too (a stale
        session cookie is no token: it only gets the public parts)."""
        if self.guard is None:
            return DETAILS
        shown = tuple(d for d in DETAILS if self.guard.opens(d))
        if len(shown) == len(DETAILS):
            return shown
        verdict = self.guard.check(headers, peer)
        if verdict.granted:
            return DETAILS
        return (
            shown
            if verdict.missing or verdict.stale
            else unauthorized(verdict, over_https(headers))
        )

    def _cors(self, origin: str | None) -> dict[str, str]:
        if not self.allowed_origins:
            return {"Access-Control-Allow-Origin": "*"}
        if origin in self.allowed_origins:
            return {"Access-Control-Allow-Origin": origin, "Vary": "Origin"}
        return {"Vary": "Origin"}
