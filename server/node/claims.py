"""What `serve` takes before it starts anything: its port, then its data dir.

A second `serve` on the same port or data dir must fail at once, in one line, having
started nothing and written nothing; found only after DynamoDB Local, the tables and
the stream lease, it failed late, with a traceback, or with a second DynamoDB Local
on the same files. So the listening socket is bound first (and handed to the server,
or to the workers), then the data dir is locked (its journal's lock, which the admin
tools take too), and only then does anything else begin.
"""

from __future__ import annotations

import fcntl
import socket
from pathlib import Path

from livecount.node.journal import Journal, JournalBusy


class PortBusy(RuntimeError):
    """The port cannot be listened on; the message says why."""


def bind(host: str, port: int, share: bool = True) -> socket.socket:
    """A socket on `host`'s first address and `port`, not listening yet. Shared
    (SO_REUSEPORT), it gets a share of the port's connections once it listens, and
    none before: a worker's socket leaves the port with it."""
    family, kind, proto, _, address = socket.getaddrinfo(
        host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
    )[0]
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if share:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        if family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        sock.bind(address)
    except BaseException:
        sock.close()
        raise
    return sock


def claim(host: str, port: int, share: bool = True) -> socket.socket:
    """The port, bound and not listening (`0`: a free one); `PortBusy` if another
    server has it. Shared, it holds the port for workers, whose own sockets join it;
    a port already served is refused all the same, since SO_REUSEPORT would silently
    share it with another server of the same user."""
    try:
        if port and share:
            bind(host, port, share=False).close()
        return bind(host, port, share)
    except OSError as exc:
        raise PortBusy(f"cannot listen on {host} port {port}: {exc.strerror or exc}") from None


def hold(data_dir: Path) -> Journal:
    """Lock `data_dir` for this process, as its node's journal does (`JournalBusy` if
    another livecount has it): the lone node's journal, or the directory a parent of
    workers keeps for itself."""
    journal = Journal(data_dir / "journal")
    try:
        journal.lock()
    except JournalBusy:
        raise JournalBusy(
            f"the data dir {data_dir} is in use by another livecount (a serve, "
            "or an admin command); give each node its own --data-dir"
        ) from None
    return journal


def in_use(data_dir: Path) -> bool:
    """Whether a `livecount serve` (or an admin tool) holds `data_dir` now; creates
    nothing."""
    try:
        with (data_dir / "journal" / "lock").open("rb") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except FileNotFoundError:
        return False
    except BlockingIOError:
        return True
    return False
