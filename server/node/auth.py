"""The operator's credential: what a page shows is public, the reports are not.

One random token per site, kept in a file (`DATA_DIR/admin-token`, mode 0600). The API
takes it as `Authorization: Bearer`; a browser trades it once, at /login, for a session
cookie. The cookie is an expiry and an HMAC of that expiry keyed by the token: it
proves the token without holding it, so nothing needs storing, and replacing the
token's file ends every session at once (the file is read again when it changes).

Wrong tokens are counted per client address: past a burst they are answered 429 with
`Retry-After` and logged, as a wrong guess costs the guesser nothing else. The right
token and a valid session always get in, limited or not: an address may be shared (by
everyone behind a proxy that is not a `--trusted-proxy`), and a guesser must not be
able to lock the operator out. A cookie is never counted: its HMAC cannot be guessed.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import math
import os
import re
import secrets
import stat
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

from livecount.config import TOKEN_FILE, Config
from livecount.core.limits import Network, TokenBucket, client_address
from livecount.logs import log, warn, warn_limited
from websockets.datastructures import Headers

COOKIE = "livecount_session"
SESSION_SECONDS = 30 * 86_400  # a login lasts 30 days; a new token ends it sooner
FAILURE_BURST = 10  # wrong tokens an address may send at once …
FAILURE_RATE = 1 / 6  # … then one every 6 seconds
MAX_ADDRESSES = 10_000  # addresses remembered before the calm ones are forgotten
TOKEN_ENV = "LIVECOUNT_TOKEN"  # `livecount report`'s token, when not read from the file
_TOKEN = re.compile(r"[!-~]{16,512}")  # it travels in headers, cookies' keys and URLs
_SESSION = re.compile(r"([0-9]{1,12})\.([0-9a-f]{64})")


class TokenFileError(RuntimeError):
    """A token file that cannot be used; the message says what to do."""


def token_path(config: Config) -> Path:
    return config.admin_token_file or config.data_dir / TOKEN_FILE


def read_token(path: Path) -> str:
    """The token in `path`; FileNotFoundError if there is none."""
    try:
        text = path.read_text(encoding="ascii").strip()
    except UnicodeDecodeError:
        text = "\x00"  # refused below
    except IsADirectoryError:
        raise TokenFileError(f"{path} is a directory, not a token file") from None
    except PermissionError as exc:
        raise TokenFileError(f"cannot read {path}: {exc.strerror}") from None
    if not _TOKEN.fullmatch(text):
        raise TokenFileError(
            f"{path} must hold one token of 16 to 512 printable ASCII characters, no "
            "space; delete the file to have a new one made"
        )
    return text


def ensure_token(path: Path) -> tuple[str, bool]:
    """The token in `path`, and whether it was made now: random, mode 0600, written
    whole before it appears, so that workers starting together agree on one."""
    with contextlib.suppress(FileNotFoundError):
        return read_token(path), False
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        draft = path.with_name(f".{path.name}.{os.getpid()}.new")
        fd = os.open(draft, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            os.fchmod(fd, 0o600)  # a draft left by an earlier crash keeps its mode
            os.write(fd, (secrets.token_urlsafe(32) + "\n").encode())
            os.fsync(fd)
        finally:
            os.close(fd)
        try:
            os.link(draft, path)  # fails if another process made one first: theirs wins
        except FileExistsError:
            pass
        finally:
            os.unlink(draft)
    except OSError as exc:
        raise TokenFileError(f"cannot make {path}: {exc.strerror or exc}") from None
    return read_token(path), True


def client_token(token_file: Path, environ: Mapping[str, str] | None = None) -> str | None:
    """What a client on this machine sends: `LIVECOUNT_TOKEN`, else the token file's."""
    environ = os.environ if environ is None else environ
    if given := environ.get(TOKEN_ENV, "").strip():
        return given
    try:
        return read_token(token_file)
    except (FileNotFoundError, TokenFileError):
        return None


def login_url(host: str, port: int, token: str) -> str:
    if host in ("", "0.0.0.0", "::"):  # listening everywhere: this machine is one of them
        host = "127.0.0.1"
    if ":" in host:
        host = f"[{host}]"
    return f"http://{host}:{port}/login?token={quote(token, safe='')}"


# -- sessions: an expiry, signed with the token ----------------------------------------------
def session_value(token: str, expires: int) -> str:
    mac = hmac.new(token.encode(), f"livecount session {expires}".encode(), hashlib.sha256)
    return f"{expires}.{mac.hexdigest()}"


def session_valid(token: str, value: str, now: float) -> bool:
    found = _SESSION.fullmatch(value)
    if found is None or int(found[1]) <= now:
        return False
    return hmac.compare_digest(session_value(token, int(found[1])), value)


def session_cookie(value: str, max_age: int, secure: bool) -> str:
    """A `Set-Cookie` value: sent back only to this site, never to its scripts."""
    return f"{COOKIE}={value}; Path=/; Max-Age={max_age}; HttpOnly; SameSite=Strict" + (
        "; Secure" if secure else ""
    )


# -- wrong tokens, per address ---------------------------------------------------------------
class Failures:
    """Wrong tokens per client address: `burst` at once, then one per 1/`rate` seconds."""

    def __init__(
        self,
        burst: float = FAILURE_BURST,
        rate: float = FAILURE_RATE,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.burst = burst
        self.rate = rate
        self.clock = clock
        self._buckets: dict[str, TokenBucket] = {}

    def wait(self, address: str) -> int:
        """Whole seconds before `address` may try a token again; 0: now."""
        bucket = self._buckets.get(address)
        if bucket is None:
            return 0
        tokens = min(self.burst, bucket.tokens + (self.clock() - bucket.stamp) * self.rate)
        return 0 if tokens >= 1 else max(1, math.ceil((1 - tokens) / self.rate))

    def failed(self, address: str) -> None:
        if address not in self._buckets and len(self._buckets) >= MAX_ADDRESSES:
            self._forget()
        self._buckets.setdefault(address, TokenBucket(self.rate, self.burst)).allow(self.clock())

    def _forget(self) -> None:
        """Drop the addresses whose allowance has grown back whole, or else everyone."""
        now = self.clock()
        calm = [
            a
            for a, b in self._buckets.items()
            if b.tokens + (now - b.stamp) * self.rate >= self.burst
        ]
        for address in calm or list(self._buckets):
            del self._buckets[address]


# -- one request's credential ----------------------------------------------------------------
@dataclass(frozen=True)
class Verdict:
    """Whether a request holds the credential, and if not, why."""

    granted: bool
    problem: str = ""  # for the 401's detail
    retry_after: int = 0  # above 0: this address sent too many wrong tokens
    stale: bool = False  # it sent a session cookie that no longer holds: clear it
    missing: bool = False  # it sent no credential at all


GRANTED = Verdict(True)
_MISSING = Verdict(
    False,
    "this report is private: send the admin token as "
    "`Authorization: Bearer <token>`, or log in at /login",
    missing=True,
)


class Guard:
    """The token (re-read when its file changes), the sessions made from it, and the
    wrong tokens counted per address. `public` names the reports anyone may read."""

    def __init__(
        self,
        path: Path,
        public: Iterable[str] = (),
        trusted: tuple[Network, ...] = (),
        clock: Callable[[], float] = time.time,
        failures: Failures | None = None,
    ) -> None:
        self.path = path
        self.public = frozenset(public)
        self.trusted = trusted
        self.clock = clock
        self.failures = failures or Failures()
        self.token, self.made = ensure_token(path)
        self._seen = self._signature()
        mode = self._seen[3] if self._seen else 0
        if mode & 0o077:
            warn(
                "admin_token_readable",
                file=str(path),
                mode=oct(mode),
                hint=f"others on this machine can read it: chmod 600 {path}",
            )
        log("admin_token", file=str(path), made=self.made)

    def opens(self, report: str) -> bool:
        """Whether `report` is served without the token."""
        return "all" in self.public or report in self.public

    def address(self, peer: str, headers: Headers) -> str:
        return client_address(peer, header(headers, "X-Forwarded-For"), self.trusted)

    def check(self, headers: Headers, peer: str) -> Verdict:
        """The verdict on the credential `headers` carry: a bearer token, else a cookie."""
        authorization = header(headers, "Authorization")
        if authorization is not None:
            scheme, _, given = authorization.strip().partition(" ")
            if scheme.lower() != "bearer":
                return Verdict(False, "send the token as `Authorization: Bearer <token>`")
            return self.try_token(given.strip(), self.address(peer, headers))
        value = session_of(header(headers, "Cookie"))
        if value is None:
            return _MISSING
        if session_valid(self.current(), value, self.clock()):
            return GRANTED
        return Verdict(
            False,
            "the session has ended (it expired, or the token changed): log in again at /login",
            stale=True,
        )

    def try_token(self, given: str, address: str) -> Verdict:
        """`given` against the token: the right one gets in whatever `address` sent
        before; a wrong one is counted, and past the burst answered `retry_after`."""
        if hmac.compare_digest(given.encode("utf-8", "surrogateescape"), self.current().encode()):
            return GRANTED
        if wait := self.failures.wait(address):
            warn_limited("login_limited", address, address=address, retry_after=wait)
            return Verdict(False, "too many wrong tokens from this address", retry_after=wait)
        self.failures.failed(address)
        warn_limited("wrong_token", address, address=address)
        return Verdict(False, "wrong token")

    def session(self) -> tuple[str, int]:
        """A new session's cookie value, and its lifetime in seconds."""
        return session_value(self.current(), int(self.clock()) + SESSION_SECONDS), SESSION_SECONDS

    def current(self) -> str:
        """The token, read again if its file changed. A file that is missing or broken
        keeps the token known last (an editor may be halfway through a save)."""
        seen = self._signature()
        if seen != self._seen:
            self._seen = seen
            try:
                token = read_token(self.path)
            except (OSError, TokenFileError) as exc:
                warn_limited(
                    "admin_token_unreadable",
                    str(self.path),
                    file=str(self.path),
                    error=str(exc),
                    hint="the token read last is still used",
                )
            else:
                if token != self.token:
                    log("admin_token_changed", file=str(self.path))
                self.token = token
        return self.token

    def _signature(self) -> tuple[int, int, int, int] | None:
        try:
            found = os.stat(self.path)
        except OSError:
            return None
        return found.st_ino, found.st_mtime_ns, found.st_size, stat.S_IMODE(found.st_mode)


def header(headers: Headers, name: str) -> str | None:
    """A header's value; repeated, its values joined as HTTP joins them (never the
    `MultipleValuesError` of `Headers.get`, which would be a 500)."""
    values = headers.get_all(name)
    if not values:
        return None
    return ("; " if name.lower() == "cookie" else ", ").join(values)


def session_of(cookie_header: str | None) -> str | None:
    """This site's session cookie in a `Cookie` header, if there is one. By hand: a
    stranger's malformed cookie must not hide ours, as it can from `SimpleCookie`."""
    for pair in (cookie_header or "").split(";"):
        name, _, value = pair.strip().partition("=")
        if name == COOKIE:
            return value.strip().strip('"')
    return None


def over_https(headers: Headers) -> bool:
    """Whether the browser came over https, as a proxy in front says. Believed from
    anyone: it only adds `Secure`, which can harm no one but the one who lied."""
    proto = (header(headers, "X-Forwarded-Proto") or "").split(",")[0].strip().lower()
    forwarded = (header(headers, "Forwarded") or "").split(",")[0].lower()
    return (
        proto == "https" or re.search(r"(^|;)\s*proto=\"?https\"?\s*(;|$)", forwarded) is not None
    )
