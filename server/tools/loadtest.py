"""`livecount loadtest`: many WebSockets sending `views`, and what came back.

It drives a livecount server (or anything that answers a `views` frame) from one
process and reports throughput, reply latency, push latency and errors. It must cost
less than what it measures, so every socket is websockets' sans-I/O protocol on a plain
asyncio transport (no task, future or coroutine switch per message), and the report
says when the client itself used most of a core: a saturated client must never be
mistaken for a slow server.

A socket may keep several views unanswered (`--in-flight`): the server answers a
socket's messages in order, so each reply belongs to the oldest view still waiting.

The pure parts (`Zipf`, `ViewMix`, `Histogram`, `PushTracker`, `Window`, `Report`) hold
the decisions and are tested on their own; `_Run` and `_Socket` are the I/O around them.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import random
import resource
import signal
import sys
import time
from bisect import bisect_right
from collections import Counter, deque
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager, suppress
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Final, cast
from urllib.parse import urlencode

import msgspec
import uvloop
from livecount import config
from livecount.config import TOKEN_FILE, Option, filled, number, positive, text
from livecount.node.auth import client_token
from livecount.tools.report import ReportError, fetch
from livecount.waits import pause
from rich.console import Console
from rich.progress import BarColumn, Progress, TaskID, TextColumn, TimeRemainingColumn
from rich.table import Table
from websockets.client import ClientProtocol
from websockets.exceptions import InvalidStatus, InvalidURI
from websockets.frames import Frame, Opcode
from websockets.http11 import Response
from websockets.protocol import Event, State
from websockets.uri import WebSocketURI, parse_uri

SATURATED_PCT: Final = 90.0  # client CPU above this share of one core: the client may be the limit
BEHIND_SHARE: Final = 0.9  # a paced run answered below this share of its rate fell behind
MAX_SUBSCRIBED: Final = 100  # ids a subscriber watches: the server's per-message limit
FD_HEADROOM: Final = 64  # descriptors the process needs besides its sockets
MAX_TRACKED: Final = 1_000_000  # views awaiting their push; beyond, views go untracked
REFERRER_HOSTS: Final = 10
LOADTEST_PREFIX: Final = "loadtest-"  # the default article ids: not a real site's


# -- pure parts ----------------------------------------------------------------------------
class Zipf:
    """Ranks 0..n-1 with P(k) proportional to 1/(k+1)^a: a few hot articles, a long tail.

    The cumulative table is built once, so a draw is one `random()` and one bisect.
    """

    def __init__(self, n: int, a: float, rng: random.Random) -> None:
        if n < 1:
            raise ValueError("Zipf needs at least one rank")
        if a < 0:
            raise ValueError("the Zipf exponent must be >= 0")
        weights = [(k + 1) ** -a for k in range(n)]
        total = math.fsum(weights)
        acc = 0.0
        self._cdf: list[float] = []
        for w in weights:
            acc += w
            self._cdf.append(acc / total)
        self._cdf[-1] = 1.0  # random() < 1.0, so a draw never falls past the last rank
        self._random = rng.random

    def __len__(self) -> int:
        return len(self._cdf)

    def probability(self, k: int) -> float:
        return self._cdf[k] - (self._cdf[k - 1] if k else 0.0)

    def sample(self) -> int:
        return bisect_right(self._cdf, self._random())


class ViewMix:
    """The `views` frames a run sends: which article, refreshed or not, which referrer.

    Each article's frame head is encoded once; a view is a draw and a concatenation.
    """

    def __init__(
        self,
        articles: int,
        zipf: float,
        refreshed_ratio: float = 0.0,
        referrer_ratio: float = 0.0,
        prefix: str = "loadtest-",
        seed: int | None = None,
    ) -> None:
        self._rng = random.Random(seed)
        self._zipf = Zipf(articles, zipf, self._rng)
        self.ids = [f"{prefix}{k}" for k in range(articles)]
        self._heads = [
            b'{"message":"views","articleId":'
            + msgspec.json.encode(i)
            + b',"articleTitle":'
            + msgspec.json.encode(self.title(i))
            for i in self.ids
        ]
        self._referrers = [
            b',"referrer":"https://ref%d.example/post"' % j for j in range(REFERRER_HOSTS)
        ]
        self.refreshed_ratio = refreshed_ratio
        self.referrer_ratio = referrer_ratio

    @staticmethod
    def title(article_id: str) -> str:
        """A load test's title: how a later run knows these posts are no real site's."""
        return f"Load test {article_id}"

    def hottest(self, n: int) -> list[str]:
        return self.ids[:n]

    def draw(self) -> tuple[int, bool, int | None]:
        """(article rank, refreshed, referrer host index or None)."""
        rank = self._zipf.sample()
        rnd = self._rng.random
        refreshed = self.refreshed_ratio > 0 and rnd() < self.refreshed_ratio
        referrer = (
            self._rng.randrange(REFERRER_HOSTS)
            if self.referrer_ratio > 0 and rnd() < self.referrer_ratio
            else None
        )
        return rank, refreshed, referrer

    def frame(self, rank: int, refreshed: bool, referrer: int | None) -> bytes:
        tail = b',"refreshed":true' if refreshed else b""
        if referrer is not None:
            tail += self._referrers[referrer]
        return self._heads[rank] + tail + b"}"

    def next(self) -> tuple[int, bytes]:
        rank, refreshed, referrer = self.draw()
        return rank, self.frame(rank, refreshed, referrer)


class Histogram:
    """Latencies in milliseconds in log buckets 1% wide.

    Memory stays a few kilobytes however long the run, and every percentile is within
    1% of the exact one; the minimum and maximum are exact.
    """

    LOW: Final = 0.001  # 1 µs: anything faster lands in bucket 0
    GROWTH: Final = 1.01
    BUCKETS: Final = int(math.log(1e7 / 0.001) / math.log(1.01)) + 2  # up to ~2.8 hours

    def __init__(self) -> None:
        self._buckets = [0] * self.BUCKETS
        self._log_growth = math.log(self.GROWTH)
        self.count = 0
        self.total = 0.0
        self.min = math.inf
        self.max = 0.0

    def record(self, ms: float) -> None:
        if ms <= self.LOW:
            index = 0
        else:
            index = min(self.BUCKETS - 1, int(math.log(ms / self.LOW) / self._log_growth) + 1)
        self._buckets[index] += 1
        self.count += 1
        self.total += ms
        self.min = min(self.min, ms)
        self.max = max(self.max, ms)

    def percentile(self, p: float) -> float | None:
        """Nearest-rank percentile (p in 0..100), or None when nothing was recorded."""
        if not self.count:
            return None
        rank = max(1, math.ceil(p / 100 * self.count))
        seen = 0
        for index, n in enumerate(self._buckets):
            seen += n
            if seen >= rank:
                if index == 0:
                    value = self.min
                elif index == self.BUCKETS - 1:  # the overflow bucket
                    value = self.max
                else:
                    value = self.LOW * self.GROWTH ** (index - 0.5)
                return min(max(value, self.min), self.max)
        return self.max

    def summary(self) -> Summary:
        def r(x: float | None) -> float | None:
            return None if x is None else round(x, 3)

        return Summary(
            count=self.count,
            p50=r(self.percentile(50)),
            p95=r(self.percentile(95)),
            p99=r(self.percentile(99)),
            max=r(self.max) if self.count else None,
            mean=r(self.total / self.count) if self.count else None,
        )


@dataclass(frozen=True)
class Summary:
    count: int
    p50: float | None
    p95: float | None
    p99: float | None
    max: float | None
    mean: float | None


@dataclass(slots=True)
class _Expected:
    total: int
    sent_at: float
    reached: int = 0  # watchers that have seen a count >= total


@dataclass(slots=True)
class _Watched:
    """One article's watchers and the views still waiting to reach all of them."""

    levels: dict[int, int] = field(default_factory=dict)  # subscriber -> highest count seen
    # subscriber -> (previous level, when seen), (level, when seen): enough to date a
    # count that a late reply turns out to have been pushed already
    times: dict[int, tuple[int, float, int, float]] = field(default_factory=dict)
    top: int = -1
    totals: list[int] = field(default_factory=list)
    waiting: list[_Expected] = field(default_factory=list)
    head: int = 0  # waiting[:head] are done; completion always comes as a prefix


class PushTracker:
    """When did a count that includes a given view reach the subscribers of its article?

    A view's reply gives the article's total including it (`expect`); a subscriber's
    `count` push of `c` proves that subscriber saw every view whose total is <= c
    (`seen`). Counts only grow, so the views that every watcher has seen are always a
    prefix of the sorted waiting list, which keeps each push O(views it covers).
    `first` times the first subscriber that saw the view, `all` the last one.
    """

    def __init__(self, max_tracked: int = MAX_TRACKED) -> None:
        self.max_tracked = max_tracked
        self.first = Histogram()
        self.all = Histogram()
        self.untracked = 0
        self._articles: dict[str, _Watched] = {}
        self._tracked = 0

    def watch(self, subscriber: int, article: str) -> None:
        self._articles.setdefault(article, _Watched()).levels.setdefault(subscriber, -1)

    def watches(self, article: str) -> bool:
        return article in self._articles

    @property
    def pending(self) -> int:
        """Views not yet seen by every watcher of their article."""
        return self._tracked

    def expect(self, article: str, total: int, sent_at: float) -> None:
        """A reply said this view made the article's total `total`."""
        art = self._articles.get(article)
        if art is None or not art.levels:
            return
        if self._tracked >= self.max_tracked:
            self.untracked += 1
            return
        entry = _Expected(total, sent_at)
        if art.top >= total:  # a push beat the reply: date it from what each watcher saw
            seen = [
                self._when(art, sub, total) for sub, level in art.levels.items() if level >= total
            ]
            entry.reached = len(seen)
            self.first.record((min(seen) - sent_at) * 1000)
            if entry.reached >= len(art.levels):
                self.all.record((max(seen) - sent_at) * 1000)
                return
        at = bisect_right(art.totals, total, lo=art.head)
        art.totals.insert(at, total)
        art.waiting.insert(at, entry)
        self._tracked += 1

    @staticmethod
    def _when(art: _Watched, sub: int, total: int) -> float:
        prev_level, prev_at, _, at = art.times[sub]
        return prev_at if prev_level >= total else at

    def seen(self, subscriber: int, article: str, count: int, now: float) -> None:
        """A subscriber received a `count` of `count` for `article` at `now`."""
        art = self._articles.get(article)
        if art is None:
            return
        old = art.levels.get(subscriber)
        if old is None or count <= old:
            return
        art.levels[subscriber] = count
        _, _, last_level, last_at = art.times.get(subscriber, (-1, 0.0, -1, 0.0))
        art.times[subscriber] = (last_level, last_at, count, now)
        art.top = max(art.top, count)
        lo = bisect_right(art.totals, old, lo=art.head)
        hi = bisect_right(art.totals, count, lo=lo)
        watchers = len(art.levels)
        waiting = art.waiting
        for i in range(lo, hi):
            entry = waiting[i]
            entry.reached += 1
            if entry.reached == 1:
                self.first.record((now - entry.sent_at) * 1000)
        self._complete(art, watchers, now)

    def leave(self, subscriber: int) -> None:
        """A subscriber is gone mid-run: views it had not seen no longer wait for it.

        When the others saw them is unknown, so those views leave untimed (`untracked`).
        """
        for art in self._articles.values():
            level = art.levels.pop(subscriber, None)
            art.times.pop(subscriber, None)
            if level is None:
                continue
            for i in range(art.head, bisect_right(art.totals, level, lo=art.head)):
                art.waiting[i].reached -= 1
            self._complete(art, len(art.levels), None)

    def _complete(self, art: _Watched, watchers: int, now: float | None) -> None:
        waiting, head = art.waiting, art.head
        while head < len(waiting) and waiting[head].reached >= watchers:
            if now is None:
                self.untracked += 1
            else:
                self.all.record((now - waiting[head].sent_at) * 1000)
            head += 1
        self._tracked -= head - art.head
        if head > 1024 and head * 2 > len(waiting):
            del waiting[:head], art.totals[:head]
            head = 0
        art.head = head


class Window:
    """One socket's views awaiting replies, oldest first, at most `size` of them.

    A server answers a socket's messages in order, so a reply is always the oldest
    view's: matching is a queue, with no id on the wire.
    """

    __slots__ = ("_waiting", "size")

    def __init__(self, size: int) -> None:
        if size < 1:
            raise ValueError("a window holds at least one view")
        self.size = size
        self._waiting: deque[tuple[int, float]] = deque()

    def __len__(self) -> int:
        return len(self._waiting)

    @property
    def free(self) -> int:
        return self.size - len(self._waiting)

    def sent(self, article: int, at: float) -> None:
        if len(self._waiting) >= self.size:
            raise OverflowError(f"{self.size} views already wait for their replies")
        self._waiting.append((article, at))

    def answered(self) -> tuple[int, float] | None:
        """The (article, sent at) of the view a reply answers; None: nothing waited."""
        return self._waiting.popleft() if self._waiting else None

    def clear(self) -> int:
        """The socket is gone: its waiting views will never be answered; how many."""
        n = len(self._waiting)
        self._waiting.clear()
        return n


@dataclass(frozen=True)
class Report:
    """Everything a run measured; `to_json()` is the `--json` output."""

    url: str
    connections: int
    in_flight: int
    subscribers: int
    opened: int
    connect_failures: dict[str, int]
    connect_s: float
    duration_s: float
    target_rate: float | None
    articles: int
    zipf: float
    sent: int
    acked: int
    acked_in_window: int
    errors: dict[str, int]
    unanswered: int
    views_per_s: float
    reply_ms: Summary
    push_ms: Summary
    push_first_ms: Summary
    push_missing: int
    push_untracked: int
    pushes: int
    viewer_pushes: int
    dropped: int
    missed: int
    unexpected: int
    client_cpu_pct: float
    client_saturated: bool
    interrupted: bool
    started_at: float
    stopped_at: float

    def to_json(self) -> dict[str, Any]:
        return asdict(self) | {"limited_by": [code for code, _ in self.shortfall()]}

    def behind(self) -> bool:
        """A paced run that delivered clearly less than its target rate."""
        if not self.target_rate or self.duration_s <= 0:
            return False
        return self.missed > 0 or self.views_per_s < BEHIND_SHARE * self.target_rate

    def shortfall(self) -> list[tuple[str, str]]:
        """What held a paced run below its target rate, as (code, what to do); most
        certain first. Empty when the run kept up, or had no target."""
        if not self.behind():
            return []
        found = []
        if self.client_saturated:
            found.append(
                (
                    "client_cpu",
                    f"the client's own CPU ({self.client_cpu_pct:.0f}% of "
                    "a core): run several clients on other cores",
                )
            )
        limited = self.errors.get("rate_limited", 0)
        if limited:
            found.append(
                (
                    "rate_limited",
                    f"the server's rate limit: {limited:,} views were "
                    "refused rate_limited; serve's --rate-limit is per socket, so spread "
                    "--rate over more --connections (or raise it on a test server)",
                )
            )
        other = {k: n for k, n in self.errors.items() if k != "rate_limited"}
        if other:
            found.append(
                (
                    "errors",
                    "the server refused views: "
                    + ", ".join(f"{k} {n:,}" for k, n in sorted(other.items())),
                )
            )
        if self.missed:
            p50 = self.reply_ms.p50
            pace = (
                f" (replies took {p50:.1f} ms at p50, so {self.connections:,} sockets x "
                f"{self.in_flight} allow about "
                f"{self.connections * self.in_flight * 1000 / p50:,.0f} views/s)"
                if p50
                else ""
            )
            found.append(
                (
                    "replies",
                    f"the server's replies: {self.missed:,} views found "
                    f"every socket with --in-flight {self.in_flight} views unanswered"
                    f"{pace}; raise --connections or --in-flight",
                )
            )
        if self.dropped:
            found.append(("dropped", f"the server closed {self.dropped:,} sockets"))
        if not found:
            found.append(
                (
                    "replies",
                    f"the server's replies: {self.acked_in_window:,} of the "
                    f"{self.sent:,} views sent were answered within the load",
                )
            )
        return found

    def render(self) -> Table:
        table = Table(
            title=f"livecount loadtest → {self.url}", show_header=False, title_justify="left"
        )
        table.add_column("metric", style="bold")
        table.add_column("value", justify="right")
        table.add_column("", style="dim")
        rate = f"target {self.target_rate:g}/s" if self.target_rate else "as fast as replies allow"
        rate += f", up to {self.in_flight} unanswered per socket"
        table.add_row(
            "sockets",
            f"{self.opened:,} of {self.connections + self.subscribers:,}",
            f"{self.connections} viewing, {self.subscribers} subscribed; "
            f"opened in {self.connect_s:.1f} s",
        )
        table.add_row(
            "load",
            f"{self.duration_s:.1f} s",
            f"{rate}; {self.articles} articles, Zipf {self.zipf:g}",
        )
        table.add_row("views sent", f"{self.sent:,}", "")
        table.add_row(
            "replies",
            f"{self.acked:,}",
            f"{self.unanswered:,} unanswered" if self.unanswered else "",
        )
        errors = ", ".join(f"{code} {n:,}" for code, n in sorted(self.errors.items()))
        table.add_row("errors", f"{sum(self.errors.values()):,}", errors)
        table.add_row(
            "views/s",
            f"{self.views_per_s:,.0f}",
            f"{self.missed:,} views behind the target rate" if self.missed else "",
        )
        table.add_row("reply p50 / p95 / p99", _ms_line(self.reply_ms), _ms_tail(self.reply_ms))
        if self.subscribers:
            table.add_row("push, all subscribers", _ms_line(self.push_ms), _ms_tail(self.push_ms))
            table.add_row(
                "push, first subscriber", _ms_line(self.push_first_ms), _ms_tail(self.push_first_ms)
            )
            table.add_row(
                "pushes received",
                f"{self.pushes:,}",
                f"{self.push_missing:,} views never pushed" if self.push_missing else "",
            )
        failures = sum(self.connect_failures.values())
        table.add_row(
            "connection failures",
            f"{failures:,}",
            ", ".join(f"{k} {n:,}" for k, n in sorted(self.connect_failures.items())),
        )
        table.add_row("closed by the server", f"{self.dropped:,}", "")
        table.add_row(
            "client CPU",
            f"{self.client_cpu_pct:.0f}% of a core",
            "SATURATED" if self.client_saturated else "",
        )
        return table

    def notes(self) -> list[str]:
        notes = []
        if causes := self.shortfall():
            notes.append(
                f"Behind the target of {self.target_rate:,.0f} views/s "
                f"({self.views_per_s:,.0f} answered a second). Limited by "
                + "; and by ".join(text for _, text in causes)
                + "."
            )
        if self.client_saturated and "client_cpu" not in dict(causes):
            notes.append(
                f"The client used {self.client_cpu_pct:.0f}% of a core: it may be the "
                "bottleneck. Run fewer sockets or several clients on other cores."
            )
        if self.interrupted:
            notes.append("Interrupted: the figures cover the load until Ctrl-C.")
        if self.push_untracked:
            notes.append(
                f"{self.push_untracked:,} views were not timed for push latency "
                f"(more than {MAX_TRACKED:,} waited at once)."
            )
        return notes


def _ms_line(s: Summary) -> str:
    if not s.count:
        return "-"
    return f"{s.p50:.1f} / {s.p95:.1f} / {s.p99:.1f} ms"


def _ms_tail(s: Summary) -> str:
    return f"max {s.max:.1f} ms, {s.count:,} samples" if s.count else ""


def cpu_share(cpu_s: float, wall_s: float) -> float:
    """Process CPU time as a percentage of one core over a wall-clock interval."""
    return 100.0 * cpu_s / wall_s if wall_s > 0 else 0.0


# -- options ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Options:
    url: str
    connections: int = 10
    in_flight: int = 1
    duration: float = 10.0
    rate: float | None = None
    articles: int = 100
    zipf: float = 1.1
    refreshed_ratio: float = 0.0
    referrer_ratio: float = 0.0
    subscribers: int = 0
    max_views: int = 100_000_000
    open_concurrency: int = 200
    open_timeout: float = 10.0
    drain_timeout: float = 10.0
    push_wait: float = 3.0
    article_prefix: str = LOADTEST_PREFIX
    seed: int | None = None
    subscribe_url: str | None = None  # subscribers elsewhere: pushes across nodes


def _non_negative(kind: Callable[[str], Any]) -> Callable[[str], Any]:
    return number(kind, least=0)


_ratio = number(float, least=0, most=1)


def _default(name: str) -> Any:
    """The default of an `Options` field: declared there, not again here."""
    return next(f.default for f in fields(Options) if f.name == name)


def _ws_url(value: str) -> str:
    try:
        parse_uri(value)
    except InvalidURI:
        raise argparse.ArgumentTypeError(f"must be a ws:// or wss:// URL, got {value!r}") from None
    return value


def _opt(flag: str, help: str, parse: Callable[[str], Any] = text, **more: Any) -> Option:
    """A flag, defaulting as `Options` does. No variable: `LIVECOUNT_URL` is `report`'s."""
    dest = flag.replace("-", "_")
    if "default" not in more:
        more["default"] = _default(dest)
    return Option(flag=flag, dest=dest, help=help, parse=parse, env=False, **more)


OPTIONS: Final = (
    _opt("url", "WebSocket URL", _ws_url, default="ws://127.0.0.1:8080/ws"),
    _opt("connections", "sockets that send views", positive(int)),
    _opt(
        "in-flight",
        "views a socket may have unanswered at once; `1`: it sends its next "
        "view when the reply to the previous one arrives",
        positive(int),
    ),
    _opt("duration", "seconds of load, after all sockets are open", positive(float)),
    _opt(
        "rate",
        "total views per second; without it each socket sends a view whenever "
        "fewer than `--in-flight` wait for their replies",
        positive(float),
    ),
    _opt("articles", "distinct article ids", positive(int)),
    _opt("zipf", "Zipf exponent of article popularity; 0 is uniform", _non_negative(float)),
    _opt("refreshed-ratio", "share of views sent with refreshed=true", _ratio),
    _opt(
        "referrer-ratio",
        f"share of views with an external referrer, one of {REFERRER_HOSTS} hosts",
        _ratio,
    ),
    _opt(
        "subscribers",
        f"extra sockets that only subscribe, to the {MAX_SUBSCRIBED} hottest "
        "articles (or all of them if fewer), to time pushes",
        _non_negative(int),
    ),
    _opt("max-views", "stop after this many views even before --duration", positive(int)),
    _opt("open-concurrency", "handshakes in flight at once while ramping up", positive(int)),
    _opt("open-timeout", "seconds for one socket to open", positive(float)),
    _opt("push-wait", "seconds to wait after the load for the last pushes", _non_negative(float)),
    _opt(
        "article-prefix",
        "article ids are PREFIX0, PREFIX1, …; ids with this prefix (or "
        f"{LOADTEST_PREFIX}) do not count as a real site",
        filled,
    ),
    _opt("seed", "random seed, for repeatable mixes", number(int)),
    _opt(
        "subscribe-url",
        "where the subscribers connect; another node's address measures pushes across nodes",
        _ws_url,
        shown="--url",
    ),
    _opt("json", "print one JSON object, no table", switch=True, default=False),
)


def add_options(p: argparse.ArgumentParser) -> None:
    config.add_options(p, OPTIONS)


def options_from(ns: argparse.Namespace) -> Options:
    names = {f.name for f in fields(Options)}
    return Options(**{o.dest: getattr(ns, o.dest) for o in OPTIONS if o.dest in names})


def raise_fd_limit(needed: int) -> int:
    """Raise the soft RLIMIT_NOFILE towards the hard one; returns the new soft limit.

    Raises `OSError` with a clear message when even the hard limit is too low.
    """
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if needed <= soft:
        return soft
    if hard != resource.RLIM_INFINITY and needed > hard:
        raise OSError(
            f"{needed} sockets and files are needed but this process may open at "
            f"most {hard} (ulimit -Hn); use fewer --connections/--subscribers"
        )
    resource.setrlimit(resource.RLIMIT_NOFILE, (needed, hard))
    return needed


# -- I/O --------------------------------------------------------------------------------------
class _Reply(msgspec.Struct):
    """The fields of any server message the client looks at; others are ignored."""

    message: str = ""
    totalViews: int = 0
    articleId: str | None = None
    error: str | None = None


_decode: Final = msgspec.json.Decoder(_Reply).decode


class _Socket(asyncio.Protocol):
    """One WebSocket: websockets' sans-I/O protocol fed straight from the transport."""

    def __init__(self, run: _Run, index: int, subscriber: bool) -> None:
        loop = asyncio.get_running_loop()
        self.run = run
        self.index = index
        self.subscriber = subscriber
        self.uri = run.subscribe_uri if subscriber else run.uri
        self.ws = ClientProtocol(self.uri, max_size=2**20)
        self.transport: asyncio.Transport | None = None
        self.opened: asyncio.Future[None] = loop.create_future()
        self.closed: asyncio.Future[None] = loop.create_future()
        self.ready: asyncio.Future[None] = loop.create_future()  # subscriber: counts arrived
        self.open = False
        self.window = Window(run.options.in_flight)  # views awaiting their replies
        self.counts_due = 0
        self._parts: list[bytes] = []
        self._receiving = False  # in data_received: writes wait for its one flush

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass
        request = self.ws.connect()
        request.headers["User-Agent"] = "livecount-loadtest"
        self.ws.send_request(request)
        self._flush()

    def data_received(self, data: bytes) -> None:
        ws = self.ws
        ws.receive_data(data)
        events = ws.events_received()
        if events:
            now = time.perf_counter()
            self._receiving = True  # views sent in answer go out in one write below
            try:
                self._handle(events, now)
            finally:
                self._receiving = False
        self._flush()

    def _handle(self, events: list[Event], now: float) -> None:
        for event in events:
            if type(event) is Frame:
                opcode = event.opcode
                if opcode is Opcode.TEXT or opcode is Opcode.CONT:
                    if event.fin and not self._parts:
                        self.run.on_text(self, event.data, now)
                    else:
                        self._parts.append(bytes(event.data))
                        if event.fin:
                            whole, self._parts = b"".join(self._parts), []
                            self.run.on_text(self, whole, now)
                elif opcode is Opcode.BINARY:
                    self.run.unexpected += 1
            elif isinstance(event, Response):
                self._handshake()

    def _handshake(self) -> None:
        if self.opened.done():
            return
        if self.ws.handshake_exc is not None:
            self.opened.set_exception(self.ws.handshake_exc)
        else:
            self.open = True
            self.opened.set_result(None)

    def eof_received(self) -> bool | None:
        self.ws.receive_eof()
        self._flush()
        return None

    def connection_lost(self, exc: Exception | None) -> None:
        was_open, self.open = self.open, False
        if not self.opened.done():
            self.opened.set_exception(exc or ConnectionError("closed during the handshake"))
        if not self.ready.done():
            self.ready.cancel()  # closed before its counts arrived
        if not self.closed.done():
            self.closed.set_result(None)
        if was_open:
            self.run.on_lost(self)

    def send(self, data: bytes) -> bool:
        # The server may be closing this socket (a limit, a restart): not an error of
        # the client's, and the close shows up in the report as a lost connection.
        if not self.open or self.ws.state is not State.OPEN:
            return False
        self.ws.send_text(data)
        if not self._receiving:
            self._flush()
        return True

    def close(self) -> None:
        if self.open and self.transport is not None and not self.transport.is_closing():
            with suppress(Exception):
                self.ws.send_close(1000)
                self._flush()

    def abort(self) -> None:
        if self.transport is not None:
            self.transport.abort()

    def _flush(self) -> None:
        transport = self.transport
        if transport is None:
            return
        chunks = self.ws.data_to_send()
        if not chunks:
            return
        if len(chunks) > 1 and all(chunks):
            transport.write(b"".join(chunks))  # one syscall for a burst of frames
            return
        for data in chunks:
            if data:
                transport.write(data)
            elif transport.can_write_eof() and not transport.is_closing():
                transport.write_eof()

    # Keep the protocol's references from extending a dead socket's life.
    def __repr__(self) -> str:
        return f"<socket {self.index}{' sub' if self.subscriber else ''}>"


class _Display:
    """Progress on stderr, never with --json: a rich bar on a terminal, otherwise (a CI
    log, a pipe) a plain line when a phase starts and ends and every `every` seconds."""

    def __init__(
        self,
        enabled: bool,
        console: Console | None = None,
        every: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.console = console or Console(stderr=True)
        self.progress: Progress | None = None
        self.task: TaskID | None = None
        self.plain = enabled and not self.console.is_terminal
        self.every = every
        self.clock = clock
        self._phase: tuple[str, float, str] | None = None  # description, total, unit
        self._last: tuple[float, str] = (0.0, "")  # completed, info
        self._printed = 0.0
        if enabled and self.console.is_terminal:
            self.progress = Progress(
                TextColumn("{task.description}"),
                BarColumn(),
                TextColumn("{task.completed:,.0f}/{task.total:,.0f}{task.fields[unit]}"),
                TextColumn("{task.fields[info]}"),
                TimeRemainingColumn(compact=True),
                TextColumn("left"),
                console=self.console,
                transient=True,
                refresh_per_second=4,
            )

    @contextmanager
    def phase(self, description: str, total: float, unit: str = "") -> Iterator[None]:
        if self.plain:
            self._phase, self._last = (description, total, unit), (0.0, "")
            self._line()
            try:
                yield
            finally:
                self._line()
                self._phase = None
            return
        if self.progress is None:
            yield
            return
        with self.progress:
            self.task = self.progress.add_task(description, total=total, info="", unit=unit)
            try:
                yield
            finally:
                self.progress.remove_task(self.task)
                self.task = None

    def update(self, completed: float, info: str) -> None:
        if self.progress is not None and self.task is not None:
            self.progress.update(self.task, completed=completed, info=info)
        elif self.plain and self._phase is not None:
            self._last = (completed, info)
            if self.clock() - self._printed >= self.every:
                self._line()

    def _line(self) -> None:
        assert self._phase is not None
        description, total, unit = self._phase
        completed, info = self._last
        line = f"loadtest {description}: {completed:,.0f} of {total:,.0f}{unit}"
        self.console.print(
            line + (f", {info}" if info else ""), markup=False, highlight=False, soft_wrap=True
        )
        self._printed = self.clock()


class _Run:
    """One load test: open the sockets, send views, drain, close, report."""

    def __init__(self, options: Options, display: _Display) -> None:
        self.options = options
        self.display = display
        self.uri: WebSocketURI = parse_uri(options.url)
        self.subscribe_uri: WebSocketURI = parse_uri(options.subscribe_url or options.url)
        self.mix = ViewMix(
            options.articles,
            options.zipf,
            options.refreshed_ratio,
            options.referrer_ratio,
            options.article_prefix,
            options.seed,
        )
        self.reply_ms = Histogram()
        self.tracker = PushTracker()
        self.viewers: list[_Socket] = []
        self.subscribers: list[_Socket] = []
        self.idle: deque[_Socket] = deque()
        self.connect_failures: Counter[str] = Counter()
        self.errors: Counter[str] = Counter()
        self.sending = False
        self.stopping = False
        self.interrupted = False
        self.sent = self.acked = self.in_flight = 0
        self.pushes = self.viewer_pushes = self.dropped = self.unexpected = self.missed = 0
        self.views_left = options.max_views
        self.stop = asyncio.Event()

    # -- callbacks from sockets: the hot path ---------------------------------------------------
    def on_text(self, sock: _Socket, data: bytes | bytearray | memoryview, now: float) -> None:
        try:
            msg = _decode(data)
        except msgspec.DecodeError:
            self.unexpected += 1
            return
        kind = msg.message
        if sock.subscriber:
            if kind == "count" and msg.articleId is not None:
                self.pushes += 1
                self.tracker.seen(sock.index, msg.articleId, msg.totalViews, now)
                if sock.counts_due:
                    sock.counts_due -= 1
                    if not sock.counts_due and not sock.ready.done():
                        sock.ready.set_result(None)
            elif kind == "error":
                self.errors[f"subscribe:{msg.error}"] += 1
                if not sock.ready.done():
                    sock.ready.set_exception(RuntimeError(f"subscribe refused: {msg.error}"))
            else:
                self.unexpected += 1
            return
        if kind == "count":
            self.viewer_pushes += 1  # the server subscribes a viewer to what it viewed
            return
        answered = sock.window.answered()
        if answered is None:
            self.unexpected += 1
            return
        rank, sent_at = answered
        self.in_flight -= 1
        self.reply_ms.record((now - sent_at) * 1000)
        if kind == "views":
            self.acked += 1
            article = self.mix.ids[rank]
            if self.tracker.watches(article):
                self.tracker.expect(article, msg.totalViews, sent_at)
        elif kind == "error":
            self.errors[msg.error or "unknown"] += 1
        else:
            self.unexpected += 1
        if self.sending:
            if self.options.rate is None:
                self.send_view(sock)
            else:
                self.idle.append(sock)

    def on_lost(self, sock: _Socket) -> None:
        if not self.stopping:
            self.dropped += 1
        self.in_flight -= sock.window.clear()
        if sock.subscriber and not self.stopping:  # at the end, unseen views stay missing
            self.tracker.leave(sock.index)

    def send_view(self, sock: _Socket) -> None:
        if self.views_left <= 0:
            self.sending = False
            self.stop.set()
            return
        rank, frame = self.mix.next()
        sent_at = time.perf_counter()
        if sock.send(frame):
            sock.window.sent(rank, sent_at)
            self.in_flight += 1
            self.sent += 1
            self.views_left -= 1

    # -- phases -----------------------------------------------------------------------------------
    async def load(self) -> tuple[float, float, int]:
        """Send views until the duration, --max-views or Ctrl-C; returns wall, cpu, acked."""
        opts = self.options
        live = [s for s in self.viewers if s.open]
        cpu0, t0 = time.process_time(), time.perf_counter()
        self.sending = True
        pacer = None
        if opts.rate is None:
            for _ in range(opts.in_flight):
                for sock in live:
                    self.send_view(sock)
        else:
            for _ in range(opts.in_flight):  # one entry per free slot of a socket
                self.idle.extend(live)
            pacer = asyncio.create_task(self._pace(opts.rate, len(self.idle)))
        with self.display.phase("load", opts.duration, " s"):
            deadline = t0 + opts.duration
            while (left := deadline - time.perf_counter()) > 0 and not await pause(
                self.stop, min(0.25, left)
            ):
                elapsed = time.perf_counter() - t0
                self.display.update(elapsed, self.progress_info(elapsed))
        self.sending = False
        wall, cpu, acked = time.perf_counter() - t0, time.process_time() - cpu0, self.acked
        if pacer is not None:
            pacer.cancel()
            with suppress(asyncio.CancelledError):
                await pacer
        return wall, cpu, acked

    def progress_info(self, elapsed: float) -> str:
        info = f"{self.acked / elapsed:,.0f} views/s"
        if self.options.rate is not None:
            info += f" of {self.options.rate:,.0f} targeted"
        info += f", {sum(self.errors.values()):,} errors"
        if self.missed:
            info += f", {self.missed:,} views behind: no socket free"
        return info

    async def _pace(self, rate: float, sockets: int) -> None:
        """Hand views to free slots of sockets at `rate` (`sockets`: how many slots);
        what no free slot can take is missed."""
        start = time.perf_counter()
        dispatched = 0
        while self.sending:
            due = int((time.perf_counter() - start) * rate) - dispatched
            if due > sockets:  # nobody free for a while: do not burst to catch up later
                self.missed += due - sockets
                dispatched += due - sockets
                due = sockets
            while due > 0 and self.idle and self.sending:
                sock = self.idle.popleft()
                if sock.open:
                    self.send_view(sock)
                    dispatched += 1
                    due -= 1
            await asyncio.sleep(0.001)

    async def until(self, done: Callable[[], bool], within: float) -> bool:
        deadline = time.perf_counter() + within
        while not done():
            if time.perf_counter() >= deadline:
                return False
            await asyncio.sleep(0.01)
        return True

    def interrupt(self) -> None:
        if self.interrupted:  # a second Ctrl-C: stop at once, no report
            for sock in [*self.viewers, *self.subscribers]:
                sock.abort()
            raise KeyboardInterrupt
        self.interrupted = True
        self.stop.set()


# -- phases around the load ---------------------------------------------------------------
async def open_all(run: _Run) -> float:
    """Open every socket, a bounded number at a time; returns the seconds it took."""
    opts = run.options
    loop = asyncio.get_running_loop()
    limit = asyncio.Semaphore(opts.open_concurrency)
    total = opts.connections + opts.subscribers
    started = time.perf_counter()
    done = 0

    async def one(sock: _Socket) -> None:
        nonlocal done
        async with limit:
            if run.stop.is_set():
                return
            try:
                async with asyncio.timeout(opts.open_timeout):
                    await loop.create_connection(
                        lambda: sock,
                        sock.uri.host,
                        sock.uri.port,
                        ssl=True if sock.uri.secure else None,
                    )
                    await sock.opened
            except InvalidStatus as exc:
                run.connect_failures[f"HTTP {exc.response.status_code}"] += 1
                sock.abort()
            except TimeoutError:
                run.connect_failures["timeout"] += 1
                sock.abort()
            except Exception as exc:
                run.connect_failures[type(exc).__name__] += 1
                sock.abort()
            done += 1
            failed = sum(run.connect_failures.values())
            run.display.update(done, f"{failed:,} failed" if failed else "")

    run.viewers = [_Socket(run, i, False) for i in range(opts.connections)]
    run.subscribers = [_Socket(run, i, True) for i in range(opts.subscribers)]
    with run.display.phase("opening", total, " sockets"):
        await asyncio.gather(*(one(s) for s in [*run.subscribers, *run.viewers]))
    return time.perf_counter() - started


async def subscribe_all(run: _Run) -> None:
    """Subscribe every subscriber to the hottest articles and wait for their counts."""
    watched = run.mix.hottest(min(run.options.articles, MAX_SUBSCRIBED))
    frame = msgspec.json.encode({"message": "subscribe", "articleIds": watched})
    live = [s for s in run.subscribers if s.open]
    for sock in live:
        for article in watched:
            run.tracker.watch(sock.index, article)
        sock.counts_due = len(watched)
        sock.send(frame)
    if not live:
        return
    with suppress(TimeoutError):
        async with asyncio.timeout(run.options.open_timeout):
            await asyncio.gather(*(s.ready for s in live), return_exceptions=True)
    for sock in live:
        ready = sock.ready
        if not ready.done() or ready.cancelled() or ready.exception() is not None:
            run.connect_failures["subscribe"] += 1
            sock.abort()


async def close_all(run: _Run, grace: float = 5.0) -> None:
    run.stopping = True
    socks = [*run.viewers, *run.subscribers]
    for sock in socks:
        sock.close()
    waits = [s.closed for s in socks if s.transport is not None]
    if waits:
        with suppress(TimeoutError):
            async with asyncio.timeout(grace):
                await asyncio.gather(*waits, return_exceptions=True)
    for sock in socks:
        if not sock.closed.done():
            sock.abort()


async def run(
    options: Options,
    display: _Display | None = None,
    on_interrupt: Callable[[Callable[[], None]], None] | None = None,
) -> Report:
    """Run one load test and return its report; SIGINT stops the load and still reports."""
    display = display or _Display(False)
    raise_fd_limit(options.connections + options.subscribers + FD_HEADROOM)
    r = _Run(options, display)
    if on_interrupt is not None:
        on_interrupt(r.interrupt)
    started_at = time.time()
    connect_s = await open_all(r)
    if options.subscribers and not r.stop.is_set():
        await subscribe_all(r)
    wall = cpu = 0.0
    acked_in_window = 0
    if not r.stop.is_set() and any(s.open for s in r.viewers):
        wall, cpu, acked_in_window = await r.load()
    stopped_at = time.time()
    await r.until(lambda: r.in_flight <= 0, options.drain_timeout)
    if options.subscribers:
        await r.until(lambda: r.tracker.pending == 0, options.push_wait)
    await close_all(r)
    share = cpu_share(cpu, wall)
    return Report(
        url=options.url,
        connections=options.connections,
        in_flight=options.in_flight,
        subscribers=options.subscribers,
        opened=options.connections + options.subscribers - sum(r.connect_failures.values()),
        connect_failures=dict(r.connect_failures),
        connect_s=round(connect_s, 3),
        duration_s=round(wall, 3),
        target_rate=options.rate,
        articles=options.articles,
        zipf=options.zipf,
        sent=r.sent,
        acked=r.acked,
        acked_in_window=acked_in_window,
        errors={k: v for k, v in r.errors.items() if not k.startswith("subscribe:")},
        unanswered=r.sent
        - r.acked
        - sum(v for k, v in r.errors.items() if not k.startswith("subscribe:")),
        views_per_s=round(acked_in_window / wall, 1) if wall else 0.0,
        reply_ms=r.reply_ms.summary(),
        push_ms=r.tracker.all.summary(),
        push_first_ms=r.tracker.first.summary(),
        push_missing=r.tracker.pending,
        push_untracked=r.tracker.untracked,
        pushes=r.pushes,
        viewer_pushes=r.viewer_pushes,
        dropped=r.dropped,
        missed=r.missed,
        unexpected=r.unexpected,
        client_cpu_pct=round(share, 1),
        client_saturated=share > SATURATED_PCT,
        interrupted=r.interrupted,
        started_at=started_at,
        stopped_at=stopped_at,
    )


# -- the real site's safety ------------------------------------------------------------------
SEPARATE_STORE: Final = (
    "Run it against a store of its own instead: a second server on another port,\n"
    "  livecount serve --port 8081 --table-prefix loadtest- --data-dir data-loadtest\n"
    "  livecount loadtest --url ws://127.0.0.1:8081/ws\n"
    "and delete data-loadtest afterwards (on AWS: its loadtest- tables).\n"
    "Or pass --into-real-site to write into this one anyway."
)


def api_base(ws_url: str) -> str:
    """The HTTP address of the server behind a WebSocket URL: `/ws` is beside `/api`."""
    uri = parse_uri(ws_url)
    host = f"[{uri.host}]" if ":" in uri.host else uri.host
    path = uri.path.split("?", 1)[0].removesuffix("/").removesuffix("/ws")
    return f"{'https' if uri.secure else 'http'}://{host}:{uri.port}{path}"


def real_pages(rows: Iterable[Mapping[str, Any]], prefix: str) -> list[str]:
    """The ids in `/api/pages` rows that no load test wrote: every page (a load test
    sends posts only), and every post but those with `prefix`, the default prefix or a
    load test's title (`ViewMix`'s; a title shows once the stream has copied it)."""
    found = []
    for row in rows:
        if (name := row.get("pageName")) is not None:
            found.append(str(name))
        elif (
            (id_ := row.get("articleId")) is not None
            and not str(id_).startswith((prefix, LOADTEST_PREFIX))
            and row.get("articleTitle") != ViewMix.title(str(id_))
        ):
            found.append(str(id_))
    return found


def stored_real_pages(options: Options) -> list[str]:
    """Real pages the target's store holds, asked of its report API (`ReportError` when
    it cannot be asked). The API lists at most 1000 rows: the most viewed, and the
    first by title, which together catch a site beside a large load test's rows."""
    base = api_base(options.url)
    found: dict[str, None] = {}
    # the listing is private: the token `livecount report` would send, from here
    token = client_token(Path("data") / TOKEN_FILE)
    for sort in ("total", "title"):
        url = f"{base}/api/pages?{urlencode({'sort': sort, 'limit': 1000})}"
        rows = fetch(url, token)
        if not isinstance(rows, list) or not all(isinstance(r, dict) for r in rows):
            raise ReportError(f"{url} did not answer a list of pages: is it livecount?")
        found |= dict.fromkeys(real_pages(rows, options.article_prefix))
    return list(found)


def refusal(options: Options) -> tuple[str, int] | None:
    """Why the load test must not write into the target's store, and the exit code;
    None when it may."""
    try:
        real = stored_real_pages(options)
    except ReportError as exc:
        return (
            f"{exc}\nBefore it sends anything, the load test asks the server's "
            "/api/pages whether it counts a real site; for a server without that API, "
            "pass --into-real-site.",
            1,
        )
    if not real:
        return None
    shown = ", ".join(real[:5]) + (f" and {len(real) - 5:,} more" if len(real) > 5 else "")
    return (
        f"{options.url} counts a real site ({shown}): a load test's views would stay in "
        f"its stats for good, so nothing was sent.\n{SEPARATE_STORE}",
        2,
    )


def main(ns: argparse.Namespace) -> int:
    options = options_from(ns)
    try:
        parse_uri(options.url)
        parse_uri(options.subscribe_url or options.url)
    except InvalidURI as exc:
        ns.parser.error(str(exc))
    if not ns.into_real_site and (refused := refusal(options)) is not None:
        print(f"livecount loadtest: {refused[0]}", file=sys.stderr)
        return refused[1]
    display = _Display(not ns.json)

    async def go() -> Report:
        loop = asyncio.get_running_loop()

        def install(handler: Callable[[], None]) -> None:
            loop.add_signal_handler(signal.SIGINT, handler)

        try:
            return await run(options, display, install)
        finally:
            loop.remove_signal_handler(signal.SIGINT)

    try:
        report = uvloop.run(go())
    except OSError as exc:
        print(f"livecount loadtest: {exc}", file=sys.stderr)
        return 1
    if ns.json:
        sys.stdout.write(msgspec.json.encode(report.to_json()).decode() + "\n")
    else:
        console = Console()
        console.print(report.render())
        for note in report.notes():
            console.print(f"[yellow]{note}[/yellow]")
    if report.opened == 0:
        print("livecount loadtest: no socket could be opened", file=sys.stderr)
        return 1
    return 130 if report.interrupted else 0


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = commands.add_parser(
        "loadtest",
        help="drive a server with many WebSockets and report",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Open many WebSockets, send views, report throughput and latency. "
        "Ctrl-C stops the\nload and still reports. Its views are counted like "
        "any others, so it refuses a\nserver whose store already counts real "
        "pages.",
        epilog=SEPARATE_STORE,
    )
    add_options(p)
    config.add_options(
        p,
        [
            Option(
                "into-real-site",
                "into_real_site",
                "write into a store that already counts real "
                "pages; the load test's views stay in its stats",
                switch=True,
                default=False,
                env=False,
            )
        ],
    )
    p.set_defaults(run=main, parser=p)


__all__ = [
    "Histogram",
    "Options",
    "PushTracker",
    "Report",
    "ViewMix",
    "Window",
    "Zipf",
    "register",
    "run",
]
