"""Abuse limits: per-socket message rate, sockets per client address, bots.

Pure: time and addresses come in as arguments, so every rule is a plain unit test.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Final


@dataclass(slots=True)
class TokenBucket:
    """`rate` messages a second on average, bursts up to `burst`."""

    rate: float
    burst: float
    tokens: float = -1.0
    stamp: float = 0.0
    strikes: int = 0  # refusals in a row; the caller closes the socket past a bound

    def allow(self, now: float) -> bool:
        if self.tokens < 0:  # first message: a full bucket
            self.tokens, self.stamp = self.burst, now
        self.tokens = min(self.burst, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now
        if self.tokens >= 1:
            self.tokens -= 1
            self.strikes = 0
            return True
        self.strikes += 1
        return False


@dataclass
class AddressCounter:
    """Open sockets per client address, so one address cannot hold them all."""

    limit: int
    _open: dict[str, int] = field(default_factory=dict)

    def admit(self, address: str) -> bool:
        count = self._open.get(address, 0)
        if count >= self.limit:
            return False
        self._open[address] = count + 1
        return True

    def release(self, address: str) -> None:
        count = self._open.get(address, 0) - 1
        if count > 0:
            self._open[address] = count
        else:
            self._open.pop(address, None)

    def __len__(self) -> int:
        return sum(self._open.values())


Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def parse_networks(specs: Iterable[str]) -> tuple[Network, ...]:
    """`--trusted-proxy` values: addresses or CIDR blocks."""
    return tuple(ipaddress.ip_network(s.strip(), strict=False) for s in specs if s.strip())


def client_address(peer: str, forwarded_for: str | None, trusted: tuple[Network, ...]) -> str:
    """The client's address: the peer's, or, when the peer is a trusted proxy, the
    right-most address in X-Forwarded-For that is not itself a trusted proxy."""
    if not forwarded_for or not _within(peer, trusted):
        return peer
    for hop in reversed([h.strip() for h in forwarded_for.split(",") if h.strip()]):
        if not _within(hop, trusted):
            try:
                return str(ipaddress.ip_address(hop))
            except ValueError:
                return peer  # garbage in the header: fall back to what we can see
    return peer


def _within(address: str, networks: tuple[Network, ...]) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip in n for n in networks)


# Well-known crawlers, link previewers, monitors and headless browsers. Short and
# documented on purpose: it names families, not versions, so it ages slowly.
BOT_PATTERN: Final = re.compile(
    r"bot\b|bot/|crawl|spider|slurp|archiver|facebookexternalhit|embedly|quora link preview"
    r"|whatsapp|telegram|discord|slack|vkshare|pinterest|bitlybot|tumblr|redditbot|skype"
    r"|lighthouse|pagespeed|gtmetrix|pingdom|uptimerobot|statuscake|headlesschrome|phantomjs"
    r"|prerender|rendertron|curl/|wget/|python-requests|go-http-client|httpclient|okhttp",
    re.IGNORECASE,
)


def is_bot(user_agent: str | None) -> bool:
    return bool(user_agent) and BOT_PATTERN.search(user_agent or "") is not None
