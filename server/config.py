"""Configuration: every option is a flag and a `LIVECOUNT_<NAME>` environment variable.

The flag wins over the variable, the variable over the default. Repeatable options
read a comma-separated variable (`LIVECOUNT_SITE_DOMAIN=example.com,blog.example.com`).
"""

from __future__ import annotations

import argparse
import hashlib
import os
import socket
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from livecount.core.pages import PageRules


@dataclass(frozen=True)
class Config:
    host: str = "127.0.0.1"
    port: int = 8080
    data_dir: Path = Path("data")
    dynamodb_endpoint: str = "embedded"
    region: str = "us-east-1"
    table_prefix: str = ""
    allowed_origins: tuple[str, ...] = ()
    site_domains: tuple[str, ...] = ()
    flush_interval: float = 1.0
    push_interval: float = 0.1
    pages: PageRules = field(default_factory=PageRules)
    max_pending_views: int = 1_000_000
    max_subscriptions: int = 1000
    archive_dir: Path | None = None
    archive_max_events: int = 10_000
    archive_max_seconds: float = 300.0
    log_level: str = "info"
    node_id: str = ""
    max_frame_bytes: int = 4096
    rate_limit: float = 20.0
    rate_burst: float = 40.0
    max_connections_per_ip: int = 100
    trusted_proxies: tuple[str, ...] = ()
    idle_timeout: float = 60.0
    handshake_timeout: float = 10.0
    stream_consumer: str = "on"
    lease_time: float = 10.0


def default_node_id(data_dir: Path) -> str:
    """Stable across restarts of the same node, distinct between nodes on one host."""
    digest = hashlib.sha1(str(data_dir.resolve()).encode()).hexdigest()[:8]
    return f"{socket.gethostname()}-{digest}"


def _env(name: str) -> str | None:
    return os.environ.get("LIVECOUNT_" + name.upper().replace("-", "_"))


def number(kind: Callable[[str], Any], *, above: float | None = None,
           least: float | None = None, most: float | None = None) -> Callable[[str], Any]:
    """An argparse type for a number within bounds; the error says which bound."""
    def parse(text: str) -> Any:
        value = kind(text)
        if above is not None and not value > above:
            raise argparse.ArgumentTypeError(f"must be above {above:g}, got {text}")
        if least is not None and not value >= least:
            raise argparse.ArgumentTypeError(f"must be at least {least:g}, got {text}")
        if most is not None and not value <= most:
            raise argparse.ArgumentTypeError(f"must be at most {most:g}, got {text}")
        return value

    parse.__name__ = kind.__name__
    return parse


def _positive(kind: Callable[[str], Any]) -> Callable[[str], Any]:
    return number(kind, above=0)


def _choice(*allowed: str) -> Callable[[str], str]:
    def parse(text: str) -> str:
        if text not in allowed:
            raise argparse.ArgumentTypeError(f"must be one of {', '.join(allowed)}")
        return text

    parse.__name__ = "choice"
    return parse


_port = number(int, least=0, most=65535)


# (flag, type, default, help); a list default marks a repeatable option.
_OPTIONS: list[tuple[str, Callable[[str], Any], Any, str]] = [
    ("host", str, "127.0.0.1", "address to listen on"),
    ("port", _port, 8080, "port to listen on (0 picks a free one and logs it)"),
    ("data-dir", Path, Path("data"),
     "this node's own files: the journal (keep it), the embedded DynamoDB Local's data"),
    ("dynamodb-endpoint", str, "embedded",
     "'embedded' (DynamoDB Local as a child process), 'aws', or a URL"),
    ("region", str, "us-east-1", "AWS region"),
    ("table-prefix", str, "", "prefix for every table name"),
    ("allowed-origin", str, [], "Origin accepted on the WebSocket (repeatable; none: any)"),
    ("site-domain", str, [], "host whose referrers are internal (repeatable)"),
    ("flush-interval", _positive(float), 1.0, "seconds between writes to DynamoDB"),
    ("push-interval", _positive(float), 0.1, "seconds between live count pushes"),
    ("page", str, [], "PATH=NAME page rule (repeatable; none: the seed's three pages)"),
    ("max-pending-views", _positive(int), 1_000_000,
     "views held for the store before new ones get 'busy'"),
    ("max-subscriptions", _positive(int), 1000, "subscriptions per connection"),
    ("archive-dir", Path, None, "write every accepted view to gzip NDJSON files here"),
    ("archive-max-events", _positive(int), 10_000, "views per archive file at most"),
    ("archive-max-seconds", _positive(float), 300.0, "seconds an archive file stays open"),
    ("max-frame-bytes", _positive(int), 4096, "largest frame accepted; larger closes with 1009"),
    ("rate-limit", _positive(float), 20.0, "messages a second per socket, on average"),
    ("rate-burst", _positive(float), 40.0, "messages a socket may send at once"),
    ("max-connections-per-ip", _positive(int), 100, "open sockets per client address"),
    ("trusted-proxy", str, [],
     "address or CIDR whose X-Forwarded-For is believed (repeatable)"),
    ("idle-timeout", _positive(float), 60.0,
     "seconds before a socket that watches nothing and sends nothing is closed"),
    ("handshake-timeout", _positive(float), 10.0, "seconds to complete the opening handshake"),
    ("stream-consumer", _choice("on", "off"), "on",
     "read the writer's stream here; off when a Lambda does the copy"),
    ("lease-time", _positive(float), 10.0,
     "seconds without renewal before another node takes a shard lease"),
    ("node-id", str, "", "this node's stable name (default: host name + data-dir hash)"),
    ("log-level", str, "info", "debug, info, warning or error"),
]


def add_options(parser: argparse.ArgumentParser) -> None:
    for flag, kind, default, help_text in _OPTIONS:
        env = _env(flag)
        if isinstance(default, list):
            value = [v.strip() for v in env.split(",") if v.strip()] if env else []
            parser.add_argument(f"--{flag}", type=kind, action="append", default=None,
                                help=f"{help_text} [env LIVECOUNT_{_name(flag)}]")
            parser.set_defaults(**{_dest(flag) + "_env": value})
        else:
            parser.add_argument(f"--{flag}", type=kind,
                                default=kind(env) if env is not None else default,
                                help=f"{help_text} (default: %(default)s) "
                                     f"[env LIVECOUNT_{_name(flag)}]")


def _name(flag: str) -> str:
    return flag.upper().replace("-", "_")


def _dest(flag: str) -> str:
    return flag.replace("-", "_")


def _many(ns: argparse.Namespace, flag: str) -> tuple[str, ...]:
    given: Sequence[str] | None = getattr(ns, _dest(flag))
    return tuple(given if given is not None else getattr(ns, _dest(flag) + "_env"))


def from_args(ns: argparse.Namespace) -> Config:
    return Config(
        host=ns.host,
        port=ns.port,
        data_dir=ns.data_dir,
        dynamodb_endpoint=ns.dynamodb_endpoint,
        region=ns.region,
        table_prefix=ns.table_prefix,
        allowed_origins=_many(ns, "allowed-origin"),
        site_domains=_many(ns, "site-domain"),
        flush_interval=ns.flush_interval,
        push_interval=ns.push_interval,
        pages=PageRules.parse(_many(ns, "page")),
        max_pending_views=ns.max_pending_views,
        max_subscriptions=ns.max_subscriptions,
        archive_dir=ns.archive_dir,
        archive_max_events=ns.archive_max_events,
        archive_max_seconds=ns.archive_max_seconds,
        log_level=ns.log_level,
        node_id=ns.node_id or default_node_id(ns.data_dir),
        max_frame_bytes=ns.max_frame_bytes,
        rate_limit=ns.rate_limit,
        rate_burst=ns.rate_burst,
        max_connections_per_ip=ns.max_connections_per_ip,
        trusted_proxies=_many(ns, "trusted-proxy"),
        idle_timeout=ns.idle_timeout,
        handshake_timeout=ns.handshake_timeout,
        stream_consumer=ns.stream_consumer,
        lease_time=ns.lease_time,
    )
