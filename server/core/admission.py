"""Which sockets may talk to the node, and how fast, kept apart from what they say."""

from __future__ import annotations

from collections.abc import Hashable
from dataclasses import dataclass
from typing import Generic, TypeVar

from livecount.core.limits import AddressCounter, Network, TokenBucket, client_address, is_bot

C = TypeVar("C", bound=Hashable)
GONE_KEPT = 1000  # closed sockets remembered, for their messages still in flight


@dataclass(slots=True)
class Standing:
    """What the node knows of a socket, beyond what it says."""

    address: str
    bot: bool
    bucket: TokenBucket
    seen: float  # when it last sent anything


class Admission(Generic[C]):
    """The open sockets: at most so many per client address, each within its message
    rate, bots told apart. A socket that closed is remembered a while, so its
    messages still waiting for a stored count keep its rate and its bot flag."""

    def __init__(
        self, per_address: int, rate: float, burst: float, trusted_proxies: tuple[Network, ...]
    ) -> None:
        self.sockets: dict[C, Standing] = {}
        self.addresses = AddressCounter(per_address)
        self._rate = (rate, burst)
        self._proxies = trusted_proxies
        self._gone: dict[C, Standing] = {}  # sockets that closed lately, oldest first

    def open(
        self, conn: C, peer: str, forwarded_for: str | None, user_agent: str | None, now: float
    ) -> bool:
        """Admit `conn`, unless its client address holds its share of sockets already."""
        address = client_address(peer, forwarded_for, self._proxies)
        if not self.addresses.admit(address):
            return False
        self.sockets[conn] = Standing(address, is_bot(user_agent), TokenBucket(*self._rate), now)
        return True

    def close(self, conn: C) -> None:
        if (socket := self.sockets.pop(conn, None)) is not None:
            self.addresses.release(socket.address)
            self._gone[conn] = socket
            while len(self._gone) > GONE_KEPT:
                del self._gone[next(iter(self._gone))]

    def standing(self, conn: C) -> Standing | None:
        """`conn`'s standing, open or lately closed; None if long gone or never seen."""
        return self.sockets.get(conn) or self._gone.get(conn)

    def heard(self, conn: C, now: float) -> int:
        """A message from `conn`: 0 if it is within its rate, else how many were
        refused in a row (the caller closes the socket past a bound)."""
        if (socket := self.standing(conn)) is None:
            return 0
        socket.seen = now
        return 0 if socket.bucket.allow(now) else socket.bucket.strikes

    def quiet(self, since: float) -> list[C]:
        """Open sockets that have said nothing since `since`."""
        return [conn for conn, socket in self.sockets.items() if socket.seen < since]
