"""Configuration, declared once: each `Config` field carries its option.

The `option(...)` of a field is its flag, parser, default, help and choices; argparse
(`add_options`), the environment (`LIVECOUNT_<NAME>`) and the table of
docs/CONFIGURATION.md (`readme_table`) are all derived from it, so they cannot drift
apart. A flag wins over the variable, the variable over the default. Repeatable options
read a comma-separated variable (`LIVECOUNT_SITE_DOMAIN=example.com,blog.example.com`).

Variables are read after the command line, and only for the options of the subcommand
that runs: a bad `LIVECOUNT_PORT` is the mistake of `serve`, not of `report`. Every
mistake is one line that names the flag or the variable, and exit code 2 (`Parser`).
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import hashlib
import ipaddress
import math
import os
import re
import socket
import sys
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any, NoReturn
from urllib.parse import urlsplit

from livecount.core.pages import (
    DEFAULT_PAGES,
    DEFAULT_PATTERNS,
    UNMATCHED,
    PageRules,
    compile_pattern,
    dns_host,
)

ENV_PREFIX = "LIVECOUNT_"
LOG_LEVELS = ("debug", "info", "warning", "error")
LOG_FORMATS = ("auto", "json", "human")  # logs.FORMATS (a sibling layer: not imported)
# What `--public` can open: each private report by name, or `all` (the dashboard too).
REPORTS = ("pages", "summary", "referrers", "timeline", "now", "metrics", "all")
TOKEN_FILE = "admin-token"  # in the data dir, unless --admin-token-file says otherwise

Parse = Callable[[str], Any]


class ConfigError(ValueError):
    """One wrong value, and where it came from (a flag or a variable)."""

    def __init__(self, source: str, problem: str) -> None:
        super().__init__(f"{source}: {problem}")
        self.source = source
        self.problem = problem


# -- parsers: text in, value out, or ArgumentTypeError saying what is wanted ----------------
def _bad(problem: str, text: str) -> argparse.ArgumentTypeError:
    return argparse.ArgumentTypeError(f"{problem}, got {text!r}")


def number(
    kind: Callable[[str], Any],
    *,
    above: float | None = None,
    least: float | None = None,
    most: float | None = None,
) -> Parse:
    """A finite number, in ASCII digits, within bounds; the error says which bound."""
    whole = kind is int
    wanted = "a whole number" if whole else "a number"

    def parse(text: str) -> Any:
        try:
            if not text.isascii():
                raise ValueError(text)
            value = kind(text.strip())
        except ValueError:
            raise _bad(f"must be {wanted}", text) from None
        if not whole and not math.isfinite(value):
            raise _bad("must be a finite number", text)
        if above is not None and not value > above:
            raise _bad(f"must be above {above:g}", text)
        if least is not None and not value >= least:
            raise _bad(f"must be at least {least:g}", text)
        if most is not None and not value <= most:
            raise _bad(f"must be at most {most:g}", text)
        return value

    parse.__name__ = kind.__name__
    return parse


def positive(kind: Callable[[str], Any]) -> Parse:
    return number(kind, above=0)


def text(value: str) -> str:
    return value


def filled(value: str) -> str:
    if not value.strip():
        raise _bad("must not be empty", value)
    return value


def path(value: str) -> Path:
    return Path(filled(value))


def directory(value: str) -> Path:
    """A path that is, or can become, a directory: not a file, nor under one (found
    late, that was a `NotADirectoryError` traceback from whichever command came first)."""
    given = path(value)
    for place in (given, *given.absolute().parents):
        if place.exists():
            if not place.is_dir():
                raise _bad(f"must be a directory, and {str(place)!r} is a file", value)
            break
    return given


MAX_WORKERS = 1024


def worker_count(value: str) -> int:
    """A count, or `auto`: one per CPU this process may run on."""
    if value.strip().lower() == "auto":
        affinity = getattr(os, "sched_getaffinity", None)  # Linux; elsewhere, every CPU
        return len(affinity(0)) if affinity else os.cpu_count() or 1
    try:
        return int(number(int, least=1, most=MAX_WORKERS)(value))
    except argparse.ArgumentTypeError:
        raise _bad(f"must be a whole number from 1 to {MAX_WORKERS}, or auto", value) from None


def choice(*allowed: str) -> Parse:
    """One of `allowed`, in any case; the canonical spelling is returned."""

    def parse(value: str) -> str:
        if value.strip().lower() not in allowed:
            raise _bad(f"must be one of {', '.join(allowed)}", value)
        return value.strip().lower()

    parse.__name__ = "choice"
    return parse


def endpoint(value: str) -> str:
    if value in ("embedded", "aws"):
        return value
    try:
        parts = urlsplit(value)
        ok = (
            parts.scheme in ("http", "https")
            and bool(parts.hostname)
            and (parts.port is None or parts.port > 0)
        )
    except ValueError:  # a port that is not a number, or past 65535; a bad [IPv6]
        ok = False
    if not ok:
        raise _bad("must be 'embedded', 'aws' or an http(s) URL with a valid port", value)
    return value


def site_domain(value: str) -> str:
    """A DNS name, stored as referrers are (ASCII, lower case): a pattern or a name no
    referrer can have would silently match nothing."""
    with contextlib.suppress(ValueError):  # an address: harmless, as referrers that are
        return str(ipaddress.ip_address(value.strip()))  # addresses never count anyway
    host = dns_host(value.strip())
    if host is None:
        raise _bad("must be a DNS name such as blog.example.com (no wildcard)", value)
    return host


def origin(value: str) -> str:
    """What browsers send in `Origin`: scheme and host (and port), nothing after."""
    try:
        parts = urlsplit(value)
        ok = (
            parts.scheme in ("http", "https")
            and bool(parts.hostname)
            and not (parts.path or parts.query or parts.fragment or parts.username)
            and (parts.port is not None or not parts.netloc.endswith(":"))
        )
    except ValueError:
        ok = False
    if not ok:
        raise _bad("must be an origin such as https://blog.example.com (no path)", value)
    return value


def matching(pattern: str, wanted: str) -> Parse:
    """Text that matches `pattern` whole; the error says what is `wanted`."""
    compiled = re.compile(pattern)

    def parse(value: str) -> str:
        if not compiled.fullmatch(value):
            raise _bad(f"must be {wanted}", value)
        return value

    parse.__name__ = "text"
    return parse


def network(value: str) -> str:
    try:
        ipaddress.ip_network(value.strip(), strict=False)
    except ValueError:
        raise _bad("must be an IP address or CIDR block such as 10.0.0.0/8", value) from None
    return value.strip()


def page_rule(value: str) -> str:
    try:
        PageRules.parse([value])
    except ValueError as exc:
        raise _bad(f"must be PATH=NAME, such as /pages/about=About_Page ({exc})", value) from None
    return value


def path_pattern(value: str) -> str:
    try:
        compile_pattern(value)
    except ValueError as exc:
        raise _bad(str(exc), value) from None
    return value


# -- the declaration ------------------------------------------------------------------------
@dataclass(frozen=True)
class Option:
    """One option. `help` and `shown` are Markdown: `--help` drops the backticks.

    `many` options repeat (and their variable is comma-separated) and give a tuple;
    `finish` turns the parsed value into the field's; `shown` is the default as a
    person should read it, when the value itself would not say it."""

    flag: str
    dest: str
    help: str
    parse: Parse = text
    default: Any = None
    choices: tuple[str, ...] = ()
    many: bool = False
    env: bool = True
    switch: bool = False
    shown: str | None = None
    metavar: str | None = None
    finish: Callable[[Any], Any] | None = None

    @property
    def env_name(self) -> str | None:
        return ENV_PREFIX + self.flag.upper().replace("-", "_") if self.env else None

    def default_text(self) -> str | None:
        """The default in Markdown, or None when there is nothing worth saying."""
        if self.shown is not None:
            return self.shown
        value = self.default
        if value is None or value == "" or value == () or self.switch:
            return None
        if isinstance(value, tuple):
            return ", ".join(f"`{_plain_value(v)}`" for v in value)
        return f"`{_plain_value(value)}`"

    def from_text(self, value: str) -> Any:
        """The value of the variable (comma-separated when `many`)."""
        if self.many:
            return tuple(self.parse(item.strip()) for item in value.split(",") if item.strip())
        return self.parse(value)


def _plain_value(value: Any) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def option(
    help: str,
    *,
    flag: str = "",
    parse: Parse = text,
    default: Any = None,
    choices: Sequence[str] = (),
    many: bool = False,
    shown: str | None = None,
    metavar: str | None = None,
    finish: Callable[[Any], Any] | None = None,
) -> Any:
    """A `Config` field whose metadata is its option; the flag defaults to the field name.

    With `finish`, the field's own default is `finish(default)`."""
    meta = {
        "option": Option(
            flag=flag,
            dest="",
            help=help,
            parse=parse,
            default=default,
            choices=tuple(choices),
            many=many,
            shown=shown,
            metavar=metavar,
            finish=finish,
        )
    }
    if finish is not None:
        return field(default_factory=lambda: finish(default), metadata=meta)
    return field(default=default, metadata=meta)


def _pages_shown() -> str:
    return ", ".join(f"`{path}={name}`" for path, name in DEFAULT_PAGES.items())


@dataclass(frozen=True)
class StoreConfig:
    """Where a node keeps its counts (the tables, its own files) and how it writes them:
    the first part of `Config`, whose fields follow these."""

    data_dir: Path = option(  # noqa: RUF009 (option() is a field())
        "this node's own files: the journal (keep it) and the embedded DynamoDB Local's data",
        parse=directory,
        default=Path("data"),
    )
    dynamodb_endpoint: str = option(
        "`embedded`: DynamoDB Local as a child process; `aws`: the AWS endpoint of "
        "`--region`; or a URL such as `http://127.0.0.1:8000`",
        parse=endpoint,
        default="embedded",
    )
    region: str = option(
        "AWS region",
        default="us-east-1",
        parse=matching(r"[a-z0-9-]{1,50}", "an AWS region such as eu-west-1"),
    )
    # DynamoDB table names are 3-255 of [A-Za-z0-9_.-]; the longest suffix is 16.
    table_prefix: str = option(
        "prefix for every table name",
        default="",
        shown="none",
        parse=matching(r"[A-Za-z0-9_.-]{0,200}", "at most 200 of A-Z a-z 0-9 _ . -"),
    )
    node_id: str = option(
        "this node's stable name (flush sequence numbers are per node)",
        default="",
        shown="host name + data-dir hash",
        parse=matching(r"[!-~]{1,128}", "1 to 128 printable ASCII characters, no space"),
    )
    flush_interval: float = option(
        "seconds between writes to DynamoDB", parse=positive(float), default=1.0
    )
    report_interval: float = option(
        "seconds between writes of report rows (Timeline, Referrer), which feed reports, "
        "not live counts; no more than `--flush-interval`: with every flush",
        parse=positive(float),
        default=10.0,
    )
    stream_consumer: str = option(
        "`on`: this node copies the writer's stream to the reader table; `off`: a Lambda "
        "does (docs/DEPLOY.md)",
        parse=choice("on", "off"),
        default="on",
        choices=("on", "off"),
    )
    lease_time: float = option(
        "seconds without renewal before another node takes a shard lease",
        parse=positive(float),
        default=10.0,
    )


@dataclass(frozen=True)
class Config(StoreConfig):
    """What a node runs with: where it stores (`StoreConfig`), then how it serves. A new
    option is one field here (or there): its flag, variable, help and documented row all
    come from it (then paste `python -m livecount.config` into docs/CONFIGURATION.md)."""

    host: str = option("address to listen on", parse=filled, default="127.0.0.1")
    port: int = option(
        "port to listen on; `0` picks a free one (logged in the `listening` event)",
        parse=number(int, least=0, most=65535),
        default=8080,
    )
    workers: int = option(
        "processes sharing the port (`auto`: one per CPU), each a node with its own journal "
        "in `DATA_DIR/worker-<i>` and node id `<node-id>-w<i>`; `1`: this process serves "
        "alone",
        parse=worker_count,
        default=1,
        metavar="N|auto",
    )
    allowed_origins: tuple[str, ...] = option(
        "accepted `Origin` of WebSocket handshakes; others get 403. None given: every Origin "
        "is accepted and a warning is logged. Clients that send no Origin (scripts, load "
        "testers) are accepted.",
        flag="allowed-origin",
        parse=origin,
        default=(),
        many=True,
        shown="none",
    )
    site_domains: tuple[str, ...] = option(
        "host whose referrers are internal, its subdomains too",
        flag="site-domain",
        parse=site_domain,
        default=(),
        many=True,
        shown="none",
    )
    push_interval: float = option(
        "seconds between live count pushes", parse=positive(float), default=0.1
    )
    pages: PageRules = option(  # noqa: RUF009
        "`PATH=NAME` page rule; given at all, the rules replace the defaults",
        flag="page",
        parse=page_rule,
        default=(),
        many=True,
        shown=_pages_shown(),
        metavar="PATH=NAME",
        finish=PageRules.parse,
    )
    path_patterns: tuple[str, ...] = option(
        "where posts live: a path whose `{id}` is the post's id, such as `/blog/{id}/` or "
        "`/{yyyy}/{mm}/{dd}/{id}/` (`{yyyy}`, `{mm}`, `{dd}` and `{*}` match a segment); "
        "`livecount import` maps paths the same way. Given at all, they replace the default",
        flag="path-pattern",
        parse=path_pattern,
        default=DEFAULT_PATTERNS,
        many=True,
        metavar="PATTERN",
    )
    unmatched_paths: str = option(
        "a path that is no `--page` and matches no `--path-pattern`: `page`, counted as a "
        "page of its own named by its path; `refuse`, not counted (the page is told why)",
        parse=choice(*UNMATCHED),
        default="page",
        choices=UNMATCHED,
    )
    max_pages: int = option(
        "posts and pages the site lists at most, on every node together: a view of a new "
        "one past it is refused (`too_many_pages`), so no client can grow the store "
        "without bound (every path counts as a page)",
        parse=positive(int),
        default=100_000,
    )
    max_pending_views: int = option(
        "views held for DynamoDB before new ones get `busy`", parse=positive(int), default=1_000_000
    )
    max_subscriptions: int = option("subscriptions per socket", parse=positive(int), default=1000)
    archive_dir: Path | None = option(  # noqa: RUF009
        "write every accepted view to gzip NDJSON files here",
        parse=directory,
        default=None,
        shown="off",
    )
    archive_max_events: int = option(
        "views per archive file at most", parse=positive(int), default=10_000
    )
    archive_max_seconds: float = option(
        "seconds an archive file stays open at most", parse=positive(float), default=300.0
    )
    log_level: str = option(
        "the least severe level logged",
        parse=choice(*LOG_LEVELS),
        default="info",
        choices=LOG_LEVELS,
    )
    log_format: str = option(
        "`auto`: short lines and a banner on a terminal, JSON lines otherwise; `json` or "
        "`human` to choose",
        parse=choice(*LOG_FORMATS),
        default="auto",
        choices=LOG_FORMATS,
    )
    max_frame_bytes: int = option(
        "largest frame in bytes; larger closes with 1009", parse=positive(int), default=4096
    )
    rate_limit: float = option(
        "messages a second per socket, on average", parse=positive(float), default=20.0
    )
    rate_burst: float = option(
        "messages a socket may send at once", parse=positive(float), default=40.0
    )
    max_connections_per_ip: int = option(
        "open sockets per client address", parse=positive(int), default=100
    )
    trusted_proxies: tuple[str, ...] = option(
        "address or CIDR whose `X-Forwarded-For` is believed",
        flag="trusted-proxy",
        parse=network,
        default=(),
        many=True,
        shown="none",
    )
    idle_timeout: float = option(
        "seconds before a socket that watches nothing and says nothing is closed",
        parse=positive(float),
        default=60.0,
    )
    handshake_timeout: float = option(
        "seconds an HTTP request or WebSocket handshake may take to arrive whole (then 408), "
        "and a keep-alive connection may stay idle",
        parse=positive(float),
        default=10.0,
    )
    access_log: str = option(
        "`on`: one `request` line per HTTP request (method, path, route, status, ms; never "
        "the client's address nor a login's token)",
        parse=choice("on", "off"),
        default="off",
        choices=("on", "off"),
    )
    slow_request: float = option(
        "seconds after which an HTTP request is logged as `slow_request` (a warning, at most "
        "one per route every 10 s)",
        parse=positive(float),
        default=1.0,
    )
    admin_token_file: Path | None = option(  # noqa: RUF009
        "the operator's token, which the dashboard, the reports and `/metrics` ask for "
        "(docs/SECURITY.md); made, random and mode 0600, if missing. Give every node of a "
        "cluster the same one",
        parse=path,
        default=None,
        shown=f"`DATA_DIR/{TOKEN_FILE}`",
    )
    public: tuple[str, ...] = option(
        'a report served without the token: `pages` for a "most read" widget, `metrics` '
        "for a Prometheus on a private network, `all` for everything, the dashboard too",
        parse=choice(*REPORTS),
        default=(),
        many=True,
        choices=REPORTS,
        shown="none: only what a page shows",
    )
    demo: str = option(
        "`on`: serve the demo at `/demo`, a tiny blog whose views count in this store, as "
        "`Home_Page`, `hello-world` and `second-post`: to try livecount, not on a real "
        "site's node; `off`: `/demo` is 404",
        parse=choice("on", "off"),
        default="off",
        choices=("on", "off"),
    )


def _declared() -> list[Option]:
    return [
        dataclasses.replace(
            f.metadata["option"],
            dest=f.name,
            flag=f.metadata["option"].flag or f.name.replace("_", "-"),
        )
        for f in dataclasses.fields(Config)
    ]


OPTIONS: tuple[Option, ...] = tuple(_declared())
"""`serve`'s options (and `tables create`'s), in the order of `Config`'s fields."""


def default_node_id(data_dir: Path) -> str:
    """Stable across restarts of the same node, distinct between nodes on one host."""
    digest = hashlib.sha1(str(data_dir.resolve()).encode()).hexdigest()[:8]
    return f"{socket.gethostname()}-{digest}"


# -- argparse ------------------------------------------------------------------------------
class _Unset:
    """The namespace value of an option with a variable that the command line left out:
    the variable, or else the default, is read after parsing (`resolve`)."""

    def __init__(self, option: Option) -> None:
        self.option = option


class _Append(argparse.Action):
    """`append` into a tuple that starts empty, not from the default."""

    def __call__(
        self,
        parser: argparse.ArgumentParser,
        namespace: argparse.Namespace,
        values: Any,
        option_string: str | None = None,
    ) -> None:
        given = getattr(namespace, self.dest, None)
        items = given if isinstance(given, tuple) and given is not self.default else ()
        setattr(namespace, self.dest, (*items, values))


def help_text(opt: Option) -> str:
    """The `--help` line: the help, the default once, the variable; no Markdown."""
    parts = [opt.help]
    shown = opt.default_text()
    if shown:
        parts.append(f"(default: {shown})")
    if opt.many:
        parts.append("(repeatable)")
    if opt.env_name:
        parts.append(f"[env {opt.env_name}{', comma-separated' if opt.many else ''}]")
    return " ".join(parts).replace("`", "").replace("%", "%%")


def add_options(parser: argparse._ActionsContainer, options: Iterable[Option] = OPTIONS) -> None:
    """Add each option as a flag; one with a variable is resolved after parsing."""
    for opt in options:
        flag = f"--{opt.flag}"
        if opt.switch:
            parser.add_argument(flag, dest=opt.dest, action="store_true", help=help_text(opt))
            continue
        default = _Unset(opt) if opt.env else (tuple(opt.default) if opt.many else opt.default)
        parser.add_argument(
            flag,
            dest=opt.dest,
            type=opt.parse,
            default=default,
            action=_Append if opt.many else "store",
            choices=opt.choices or None,
            metavar=None if opt.choices else (opt.metavar or opt.flag.upper().replace("-", "_")),
            help=help_text(opt),
        )


def resolve(ns: argparse.Namespace, environ: Mapping[str, str] | None = None) -> None:
    """Fill in what the command line left out: the variable if set, else the default.

    Raises `ConfigError` naming the variable when its value is wrong."""
    environ = os.environ if environ is None else environ
    for name, value in list(vars(ns).items()):
        if not isinstance(value, _Unset):
            continue
        opt = value.option
        env = environ.get(opt.env_name) if opt.env_name else None
        if env is None:
            setattr(ns, name, opt.default)
            continue
        try:
            setattr(ns, name, opt.from_text(env))
        except argparse.ArgumentTypeError as exc:
            raise ConfigError(opt.env_name or opt.flag, str(exc)) from None


def from_args(ns: argparse.Namespace) -> Config:
    """The `Config` for a parsed `serve` (or `tables create`) command line."""
    resolve(ns)
    values: dict[str, Any] = {}
    for opt in OPTIONS:
        value = getattr(ns, opt.dest)
        values[opt.dest] = opt.finish(value) if opt.finish else value
    # The page rules take the patterns and the policy for other paths too.
    values["pages"] = PageRules.parse(ns.pages, values["path_patterns"], values["unmatched_paths"])
    if not values["node_id"]:
        values["node_id"] = default_node_id(values["data_dir"])
    if values["admin_token_file"] is None:  # here, so that workers share their parent's
        values["admin_token_file"] = values["data_dir"] / TOKEN_FILE
    return Config(**values)


class Parser(argparse.ArgumentParser):
    """argparse, with every mistake one line (`livecount: --port: must be …`), exit 2,
    and the `LIVECOUNT_*` variables of the options of this (sub)command read after the
    command line. Subcommands made with `add_subparsers` are Parsers too."""

    def parse_known_args(  # type: ignore[override]
        self,
        args: Sequence[str] | None = None,
        namespace: argparse.Namespace | None = None,
    ) -> tuple[argparse.Namespace, list[str]]:
        ns, extra = super().parse_known_args(args, namespace)
        try:
            resolve(ns)
        except ConfigError as exc:
            self.error(str(exc))
        return ns, extra

    def parse_args(  # type: ignore[override]
        self,
        args: Sequence[str] | None = None,
        namespace: argparse.Namespace | None = None,
    ) -> argparse.Namespace:
        ns, extra = self.parse_known_args(args, namespace)
        if extra:
            self.error(
                _with_hint(
                    f"unrecognized arguments: {' '.join(extra)}", getattr(ns, "ids_hint", None)
                )
            )
        return ns

    def error(self, message: str) -> NoReturn:
        command = (self.prog.split() or ["livecount"])[0]
        message = _with_hint(message.removeprefix("argument "), self.get_default("ids_hint"))
        self.exit(2, f"{command}: {message}\n")


def _with_hint(message: str, ids_hint: str | None) -> str:
    """A command whose positionals are ids (`set_defaults(ids_hint=…)`) says how to give
    one that starts with -, when that is what went wrong."""
    given = message.partition("unrecognized arguments: ")[2].split()
    if ids_hint and any(a.startswith("-") and not a.startswith("--") for a in given):
        return f"{message} (an id that starts with - goes after --: {ids_hint})"
    return message


def version() -> str:
    try:
        return metadata.version("livecount")
    except metadata.PackageNotFoundError:  # run from a tree that was never installed
        return "unknown"


# -- the documented table -------------------------------------------------------------
def readme_table(options: Iterable[Option] = OPTIONS) -> str:
    """docs/CONFIGURATION.md's table, made from the declarations (a test compares them)."""
    rows = ["| option | variable | default | meaning |", "|---|---|---|---|"]
    for opt in options:
        meaning = opt.help
        if opt.choices:
            meaning += f" (one of {', '.join(f'`{c}`' for c in opt.choices)})"
        if opt.many:
            meaning += " (repeatable; the variable is comma-separated)"
        rows.append(
            f"| `--{opt.flag}` | `{opt.env_name}` | {opt.default_text() or ''} "
            f"| {meaning.replace('|', '&#124;')} |"
        )
    return "\n".join(rows) + "\n"


if __name__ == "__main__":  # `python -m livecount.config`: the table of docs/CONFIGURATION.md
    sys.stdout.write(readme_table())
