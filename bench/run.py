"""`make bench`: issue 12's goals, each measured side by side in one run, into docs/BENCHMARKS.md.

One DynamoDB Local and one counting proxy for the whole run; a fresh `livecount serve`
(own table prefix, own data dir) per measurement; load from `livecount loadtest --json`
in its own process, so its CPU is its own. Each process's CPU (client, server with its
workers, DynamoDB Local) is sampled through the load's own window, so every figure says
which process was the limit. Everything binds 127.0.0.1, and every load is bounded in
time and count.

    python -m bench.run [--quick] [--only ingest,lag,cost,fanout,memory,profile,imports,reports]

`ingest` includes the `--workers` rounds (same run, same load).

Hand-written notes in docs/BENCHMARKS.md between `<!-- note:NAME -->` and
`<!-- /note:NAME -->` survive a re-run; everything else is regenerated.
"""

from __future__ import annotations

import argparse
import asyncio
import bisect
import itertools
import json
import os
import platform
import re
import resource
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any, TypeGuard, TypeVar

import aiohttp
import uvloop
from livecount.aws import local as dynamodb_local
from livecount.aws.store import Store

from bench import imports as import_bench
from bench.proxy import STREAM_OPS, WRITE_OPS, CountingProxy, Tally
from bench.seed_replay import replay
from tests.support import Child, Served

ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "BENCHMARKS.md"
RESULTS = ROOT / "bench" / "results.json"
FLUSH_INTERVAL = 1.0
HARNESS = 2  # results of another version of this harness are not rendered by this one
SECTIONS = ("ingest", "lag", "cost", "fanout", "memory", "profile", "imports", "reports")
C = TypeVar("C", bound=Child)

# Issue 12's goals, as the verdicts judge them.
GOAL_INGEST_RATIO = 1.0  # livecount views/s over bare-echo replies/s, hot and Zipf-1,000
GOAL_WORKERS_RATIO = 1.6  # --workers 2 over --workers 1, hot article
GOAL_ZIPF_VS_SEED = 10.0  # the seed's WCU over livecount's, Zipf over 10,000 articles
GOAL_LAG_S = 3.0  # load stopped -> reader table holds every acknowledged view
LAG_PENDING_BOUND_S = 3.0  # pending stays under this many seconds of views at the rate
GOAL_FANOUT_P99_MS = 150.0  # change -> the last of FANOUT_SUBSCRIBERS
FANOUT_SUBSCRIBERS = 10_000
GOAL_MEMORY_KIB = 20.0  # per idle socket
LIMIT_PCT = 90.0  # a process above this share of one core may be what limits the figure
OTHERS_PCT = 20.0  # processes outside the measurement using more than this: said beside it

MIXES = {"hot": ["--articles", "1"], "zipf": ["--articles", "1000", "--zipf", "1.1"]}
COST_MIXES = {"hot": ["--articles", "1"], "zipf10k": ["--articles", "10000", "--zipf", "1.1"]}
VIEW_KINDS = ["--referrer-ratio", "0.2", "--refreshed-ratio", "0.2"]
# Fixed-rate runs: slots enough that a slow reply (a flush, a GC) never holds the rate back
PACED = ["--connections", "50", "--in-flight", "4"]

# Prices (USD, us-east-1, on-demand list prices) as given in issue 5; not re-checked online.
PRICES = {
    "wru_per_m": 1.25,
    "rru_per_m": 0.25,
    "streams_getrecords_per_100k": 0.02,
    "apigw_ws_messages_per_m": 1.00,
    "apigw_ws_connection_minutes_per_m": 0.25,
    "lambda_requests_per_m": 0.20,
    "lambda_gb_s": 0.0000166667,
    "sns_publish_per_m": 0.50,
    "sqs_requests_per_m": 0.40,
}


@dataclass(frozen=True)
class Scale:
    ingest_s: float = 12.0
    ingest_rounds: int = 2
    ingest_connections: int = 256
    # Views a socket keeps unanswered: the server reads on while earlier views wait for
    # their fsync, and a client that pipelines shows it. 2, as the independent picows
    # measurement (shared/notes/measurements.md) used; echo gets the same.
    in_flight: int = 2
    workers: int = 2
    lag_s: float = 20.0
    lag_rate: float = 2000.0
    lag_articles: int = 1000
    cost_s: float = 20.0
    cost_rate: float = 2000.0
    replay_views: int = 4_000
    fanout_subscribers: int = FANOUT_SUBSCRIBERS
    fanout_rate: float = 5.0
    fanout_s: float = 20.0
    memory_sockets: int = 20_000
    memory_hold_s: float = 8.0
    profile_s: float = 12.0
    imports: import_bench.ImportScale = field(default_factory=import_bench.ImportScale)


QUICK = Scale(
    ingest_s=3,
    ingest_rounds=1,
    ingest_connections=16,
    lag_s=3,
    lag_rate=300,
    cost_s=3,
    cost_rate=300,
    replay_views=500,
    fanout_subscribers=300,
    fanout_rate=5,
    fanout_s=3,
    memory_sockets=500,
    memory_hold_s=2,
    profile_s=3,
    imports=import_bench.QUICK_IMPORTS,
)


# -- processes ---------------------------------------------------------------------------------
def _raise_nofile() -> None:
    """In the child before exec: the server may hold as many sockets as the hard limit."""
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def serve_args(endpoint: str, prefix: str, data: Path, workers: int = 1) -> list[str]:
    """`livecount serve` options of every measured server (address and port: `Served`'s)."""
    return [
        "--dynamodb-endpoint",
        endpoint,
        "--table-prefix",
        prefix,
        "--flush-interval",
        str(FLUSH_INTERVAL),
        "--data-dir",
        str(data / prefix),
        "--workers",
        str(workers),
        # The load comes from one address and faster than pages do: measure the
        # server's ceiling, not its abuse limits.
        "--rate-limit",
        "1000000",
        "--rate-burst",
        "1000000",
        "--max-connections-per-ip",
        "1000000",
        "--public",
        "metrics",
    ]  # the bench reads /metrics


@asynccontextmanager
async def served(endpoint: str, prefix: str, data: Path, workers: int = 1) -> AsyncIterator[Served]:
    """A server with its own tables and its own data dir (its journals are its own)."""
    async with running(
        Served(*serve_args(endpoint, prefix, data, workers), preexec_fn=_raise_nofile)
    ) as server:
        yield server


@asynccontextmanager
async def echo() -> AsyncIterator[Child]:
    async with running(
        Child(
            [sys.executable, "-m", "bench.echo", "--port", "0"],
            preexec_fn=_raise_nofile,
            name="bench.echo",
        )
    ) as server:
        yield server


@asynccontextmanager
async def running(child: C) -> AsyncIterator[C]:
    """Started, then stopped with SIGTERM (killed if it hangs) whatever the measurement did."""
    await child.start()
    try:
        yield child
    finally:
        await child.stop()


def shown(argv: list[str]) -> str:
    """A command line as a reader would type it (`livecount …`, ports as placeholders)."""
    words = list(argv)
    if words[:3] == [sys.executable, "-m", "livecount"]:
        words = ["livecount", *words[3:]]
    elif words[:2] == [sys.executable, "-m"]:
        words = ["python", "-m", *words[2:]]
    text = shlex.join(words)
    text = re.sub(r"--data-dir \S+/(\w+)", r"--data-dir WORK/\1", text)
    text = re.sub(r"ws://127\.0\.0\.1:\d+/ws", "ws://127.0.0.1:PORT/ws", text)
    return re.sub(r"http://127\.0\.0\.1:\d+", "http://127.0.0.1:DDB", text)


async def loadtest(url: str, *args: str, limit: float = 900.0) -> tuple[dict[str, Any], str]:
    """Run `livecount loadtest --json`; returns its report and the command line."""
    # the bench runs on tables of its own (and on echo servers): no real pages to guard
    argv = [
        sys.executable,
        "-m",
        "livecount",
        "loadtest",
        "--url",
        url,
        "--into-real-site",
        *args,
        "--json",
    ]
    proc = await asyncio.create_subprocess_exec(
        *argv,
        cwd=ROOT,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        stdin=asyncio.subprocess.DEVNULL,
        preexec_fn=_raise_nofile,
    )
    try:
        out, err = await asyncio.wait_for(proc.communicate(), limit)
    finally:
        await _reaped(proc)
    if proc.returncode != 0:
        raise RuntimeError(f"loadtest failed ({proc.returncode}): {err.decode()[-2000:]}")
    report: dict[str, Any] = json.loads(out)
    return report, shown(argv)


async def _reaped(proc: asyncio.subprocess.Process) -> None:
    """A helper process that is still running when its measurement ends or fails is killed."""
    if proc.returncode is None:
        proc.kill()
        await proc.wait()


def rss_kib(pid: int) -> int:
    """Resident set size from /proc (psutil is not a dependency)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def cpu_s(pid: int) -> float:
    """User + system CPU seconds of a process (all its threads), from /proc/PID/stat."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def machine_cpu_s() -> float:
    """Busy CPU seconds of the whole machine, every core (from /proc/stat)."""
    fields = Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]
    user, nice, system, _idle, _iowait, irq, softirq, steal = (int(f) for f in fields[:8])
    return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")


def tree(pid: int) -> list[int]:
    """A process and its descendants: `--workers N` is a parent and N worker processes."""
    found, todo = [], [pid]
    while todo:
        p = todo.pop()
        found.append(p)
        for children in Path(f"/proc/{p}/task").glob("*/children"):
            with suppress(OSError, ValueError):
                todo += [int(c) for c in children.read_text().split()]
    return found


def java_pid() -> int | None:
    """Our DynamoDB Local child (the harness started it), for its CPU share."""
    me = str(os.getpid())
    for status in Path("/proc").glob("[0-9]*/status"):
        try:
            text = status.read_text()
            cmd = (status.parent / "cmdline").read_bytes()
        except OSError:
            continue
        ppid = next((ln.split()[1] for ln in text.splitlines() if ln.startswith("PPid:")), "")
        if ppid == me and b"DynamoDBLocal.jar" in cmd:
            return int(status.parent.name)
    return None


class CpuWatch(AbstractAsyncContextManager["CpuWatch"]):
    """CPU seconds of groups of processes, sampled on a clock while it runs, read back
    over any wall-clock window by interpolation. The load client's window is only known
    once it reports; sampling every 50 ms puts its edges within a few ms."""

    def __init__(self, groups: dict[str, list[int]], every: float = 0.05) -> None:
        self.groups = groups
        self.every = every
        self.times: list[float] = []
        self.totals: list[dict[str, float]] = []
        self._last: dict[int, float] = {}  # a process that exits keeps what it used
        self._task: asyncio.Task[None] | None = None

    def sample(self) -> None:
        now = time.time()
        row: dict[str, float] = {"machine": machine_cpu_s()}
        for name, pids in self.groups.items():
            for pid in pids:
                with suppress(OSError, IndexError, ValueError):
                    self._last[pid] = cpu_s(pid)
            row[name] = sum(self._last.get(pid, 0.0) for pid in pids)
        self.times.append(now)
        self.totals.append(row)

    async def _run(self) -> None:
        while True:
            self.sample()
            await asyncio.sleep(self.every)

    async def __aenter__(self) -> CpuWatch:
        self.sample()
        self._task = asyncio.create_task(self._run())
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._task is not None:
            self._task.cancel()
            with suppress(asyncio.CancelledError):
                await self._task
        self.sample()

    def at(self, name: str, when: float) -> float:
        """CPU seconds the group had used at wall time `when` (clamped to the samples)."""
        times = self.times
        i = bisect.bisect_left(times, when)
        if i <= 0:
            return self.totals[0][name]
        if i >= len(times):
            return self.totals[-1][name]
        t0, t1 = times[i - 1], times[i]
        a, b = self.totals[i - 1][name], self.totals[i][name]
        return a + (b - a) * ((when - t0) / (t1 - t0) if t1 > t0 else 1.0)

    def seconds(self, name: str, start: float, stop: float) -> float:
        return max(0.0, self.at(name, stop) - self.at(name, start))


def limits(cpu: dict[str, float | None], cores: int) -> str:
    """What may have limited a figure: a measured process at a whole core, every core
    busy, or other processes taking a share of the cores."""
    ours = {k: v for k, v in cpu.items() if k not in ("machine", "others") and v is not None}
    busy = [
        f"{name.replace('_', ' ')} {pct:.0f}%" for name, pct in ours.items() if pct >= LIMIT_PCT
    ]
    total = cpu.get("machine")
    if total is not None and total >= LIMIT_PCT * cores:
        busy.append(f"all {cores} cores busy ({total:.0f}%)")
    others = cpu.get("others")
    if others is not None and others >= OTHERS_PCT:
        busy.append(f"other processes {others:.0f}%")
    return ", ".join(busy) or "none"


async def reader_total(store: Store) -> int:
    total, kwargs = 0, {"TableName": store.tables.reader, "ConsistentRead": True}
    while True:
        page = await store.ddb.scan(**kwargs)
        total += sum(int(i.get("totalViews", {}).get("N", 0)) for i in page.get("Items", []))
        if "LastEvaluatedKey" not in page:
            return total
        kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]


async def wait_reader(store: Store, expected: int, since: float, limit: float = 120.0) -> float:
    """Seconds from `since` (wall clock) until the reader table holds `expected` views."""
    start = time.monotonic()
    while time.monotonic() < start + limit:
        if await reader_total(store) >= expected:
            return round(time.time() - since, 2)
        # fine-grained near the goal; then gentler, since each poll is a Scan that
        # competes with the very catch-up it measures
        await asyncio.sleep(0.1 if time.monotonic() - start < 5 else 1.0)
    return float("inf")


async def pending_views(session: aiohttp.ClientSession, url: str) -> int | None:
    """The server's `livecount_pending_views` gauge: views accepted, not yet stored."""
    try:
        async with session.get(url, timeout=aiohttp.ClientTimeout(total=2)) as answer:
            text = await answer.text()
    except (aiohttp.ClientError, TimeoutError):
        return None
    found = re.search(r"^livecount_pending_views (\S+)$", text, re.M)
    return int(float(found.group(1))) if found else None


# -- scenarios ---------------------------------------------------------------------------------
class Bench:
    def __init__(self, ddb: str, proxy: CountingProxy, scale: Scale, work: Path) -> None:
        self.ddb = ddb
        self.proxy = proxy
        self.scale = scale
        self.work = work
        self.java = java_pid()
        self.cores = os.cpu_count() or 1
        self._n = 0

    def prefix(self, name: str) -> str:
        self._n += 1
        return f"b{self._n}{name}_"

    def log(self, text: str) -> None:
        print(f"[bench {time.strftime('%H:%M:%S')}] {text}", file=sys.stderr, flush=True)

    async def quiet(self, below: float = 10.0, limit: float = 30.0) -> float:
        """Wait until DynamoDB Local is idle (under `below`% of a core over half a
        second): what the previous step left it doing must not share the cores with the
        next measurement. Returns the seconds waited."""
        if self.java is None:
            return 0.0
        start = time.monotonic()
        while time.monotonic() - start < limit:
            before = cpu_s(self.java)
            await asyncio.sleep(0.5)
            if (cpu_s(self.java) - before) / 0.5 * 100 < below:
                break
        return round(time.monotonic() - start, 1)

    async def measured(self, srv: Child, args: list[str]) -> tuple[dict[str, Any], str]:
        """A load run against `srv`, each process's CPU taken over the load's own window."""
        pids = tree(srv.pid)
        groups = {"server": pids, "dynamodb_local": [self.java] if self.java else []}
        async with CpuWatch(groups) as watch:
            report, command = await loadtest(srv.ws, *args)
        stop = report["stopped_at"]
        wall = report["duration_s"]
        start = stop - wall
        server_s = watch.seconds("server", start, stop)

        def pct(seconds: float) -> float | None:
            return round(100 * seconds / wall, 1) if wall > 0 else None

        java_s = watch.seconds("dynamodb_local", start, stop)
        client_s = report["client_cpu_pct"] / 100 * wall
        machine_s = watch.seconds("machine", start, stop)
        report["cpu_pct"] = {
            "client": report["client_cpu_pct"],
            "server": pct(server_s),
            "dynamodb_local": pct(java_s) if self.java else None,
            # everything else on the machine (this harness included): other work that
            # shared the cores would show here
            "others": pct(max(0.0, machine_s - server_s - java_s - client_s)),
            "machine": pct(machine_s),
        }
        report["server_processes"] = len(pids)
        replies = report["acked_in_window"]
        report["server_cpu_us_per_reply"] = round(1e6 * server_s / replies, 1) if replies else None
        report["limit"] = limits(report["cpu_pct"], self.cores)
        return report, command

    def _ingest_args(self, mix: list[str], duration: float | None = None) -> list[str]:
        s = self.scale
        return [
            "--connections",
            str(s.ingest_connections),
            "--in-flight",
            str(s.in_flight),
            "--duration",
            str(duration or s.ingest_s),
            *mix,
            "--seed",
            "1",
        ]

    async def ingest(self) -> dict[str, Any]:
        """Views/s through livecount serve vs replies/s of a bare echo server, same client,
        same sockets, same in-flight; and each one's CPU per reply. On the hot mix, also
        `--workers N` against `--workers 1`, in the same rounds."""
        s = self.scale
        out: dict[str, Any] = {
            "harness": HARNESS,
            "in_flight": s.in_flight,
            "connections": s.ingest_connections,
            "duration_s": s.ingest_s,
            "workers": s.workers,
            "mixes": {},
        }
        for name, mix in MIXES.items():
            args = self._ingest_args(mix)
            kinds: dict[str, Callable[[], AbstractAsyncContextManager[Child]]] = {
                "echo": echo,
                "livecount": lambda: served(self.ddb, self.prefix("ingest"), self.work),
            }
            if name == "hot":
                kinds["livecount_workers"] = lambda: served(
                    self.ddb, self.prefix("workers"), self.work, workers=s.workers
                )
            runs: dict[str, list[dict[str, Any]]] = {k: [] for k in kinds}
            commands: dict[str, str] = {}
            for rnd in range(s.ingest_rounds):
                for kind, start in kinds.items():  # interleaved: a drift hits all alike
                    waited = await self.quiet()
                    self.log(f"ingest {name} round {rnd + 1}: {kind}")
                    async with start() as srv:
                        commands[kind] = shown(srv.argv)
                        report, commands["loadtest"] = await self.measured(srv, args)
                    report["quiet_wait_s"] = waited
                    runs[kind].append(report)
            best = {k: max(v, key=lambda r: r["views_per_s"]) for k, v in runs.items()}
            x: dict[str, Any] = {
                "commands": commands,
                "runs": runs,
                "best": best,
                "ratio": _ratio(best["livecount"], best["echo"]),
            }
            e_us = best["echo"]["server_cpu_us_per_reply"]
            l_us = best["livecount"]["server_cpu_us_per_reply"]
            x["cpu_ratio"] = round(l_us / e_us, 3) if e_us and l_us else None
            if "livecount_workers" in best:
                x["workers_ratio"] = _ratio(best["livecount_workers"], best["livecount"])
            out["mixes"][name] = x
        return out

    async def lag(self) -> dict[str, Any]:
        """The wide mix at a fixed rate on DynamoDB Local: pending views through the load
        (the server's gauge, polled) and how long after the load the reader table holds
        every acknowledged view."""
        s = self.scale
        prefix = self.prefix("lag")
        args = [
            *PACED,
            "--rate",
            str(s.lag_rate),
            "--duration",
            str(s.lag_s),
            "--articles",
            str(s.lag_articles),
            "--zipf",
            "1.1",
            *VIEW_KINDS,
            "--seed",
            "1",
        ]
        waited = await self.quiet()
        self.log(f"reader lag: Zipf over {s.lag_articles} articles at {s.lag_rate:g} views/s")
        async with (
            served(self.ddb, prefix, self.work) as srv,
            Store.open(self.ddb, "us-east-1", prefix) as store,
            aiohttp.ClientSession() as session,
        ):
            samples: list[tuple[float, int]] = []
            done = asyncio.Event()

            async def poll() -> None:
                while not done.is_set():
                    n = await pending_views(session, f"{srv.http}/metrics")
                    if n is not None:
                        samples.append((time.time(), n))
                    with suppress(TimeoutError):
                        await asyncio.wait_for(done.wait(), 0.5)

            poller = asyncio.create_task(poll())
            try:
                report, command = await self.measured(srv, args)
            finally:
                done.set()
                await poller
            stop = report["stopped_at"]
            caught = await wait_reader(store, report["acked"], stop)
            start = stop - report["duration_s"]
            during = [(t - start, n) for t, n in samples if start <= t <= stop]
            flushes = [e["_at"] for e in srv.events("flushed") if start <= e["_at"] <= stop]
            gaps = [b - a for a, b in itertools.pairwise(flushes)]
            bound = int(LAG_PENDING_BOUND_S * s.lag_rate)
            top = max((n for _, n in during), default=None)
            return {
                "harness": HARNESS,
                "command": command,
                "serve": shown(srv.argv),
                "report": report,
                "quiet_wait_s": waited,
                "pending_series": [[round(t, 1), n] for t, n in during],
                "max_pending": top,
                "pending_at_stop": during[-1][1] if during else None,
                "pending_bound": bound,
                "bounded": top is not None and top <= bound,
                "flushes_during_load": len(flushes),
                "max_flush_gap_s": round(max(gaps), 2) if gaps else None,
                "reader_caught_up_s": caught,
            }

    async def cost(self) -> dict[str, Any]:
        """Requests and capacity per 1,000 views, livecount vs the seed's scheme.

        The window runs from the first view until the server has stopped: its drain
        writes every row the views left pending (report rows wait up to
        `--report-interval`), so every write the views caused is in it."""
        s = self.scale
        out: dict[str, Any] = {"harness": HARNESS}
        for name, mix in COST_MIXES.items():
            prefix = self.prefix("cost")
            args = [
                *PACED,
                "--duration",
                str(s.cost_s),
                "--rate",
                str(s.cost_rate),
                *mix,
                *VIEW_KINDS,
                "--seed",
                "1",
            ]
            self.log(f"cost {name}: livecount through the counting proxy")
            async with Store.open(self.ddb, "us-east-1", prefix) as store:
                async with served(self.proxy.url, prefix, self.work) as srv:
                    await asyncio.sleep(3)  # past start-up: tables, stream discovery
                    idle0, t_idle = self.proxy.tally.copy(), time.monotonic()
                    await asyncio.sleep(3)
                    idle = self.proxy.tally - idle0
                    idle_s = time.monotonic() - t_idle
                    before, t0 = self.proxy.tally.copy(), time.monotonic()
                    report, command = await loadtest(srv.ws, *args)
                    caught = await wait_reader(store, report["acked"], report["stopped_at"])
                    at_stop = self.proxy.tally.copy()
                # stopped: drained
                used = self.proxy.tally - before
                drain = self.proxy.tally - at_stop
                window = time.monotonic() - t0
            unflushed = sum(e.get("views", 0) for e in srv.events("shutdown_unflushed"))
            live = summarise(used, report["acked"])
            live["idle_requests_per_s"] = {
                f"{op} {t}": round(n / idle_s, 2) for (op, t), n in idle.requests.items()
            }
            live["drain_requests"] = drain.to_json()["requests"]
            live["unflushed_at_stop"] = unflushed
            live["window_s"] = round(window, 1)
            self.log(f"cost {name}: seed scheme replay")
            seed_prefix = self.prefix("seed")
            before = self.proxy.tally.copy()
            views = min(s.replay_views, max(report["acked"], 1))
            sent = await replay(
                self.proxy.url,
                seed_prefix,
                views,
                articles=int(mix[1]),
                zipf=1.1 if len(mix) > 2 else 0.0,
                referrer_ratio=0.2,
                refreshed_ratio=0.2,
                seed=1,
            )
            seed_used = self.proxy.tally - before
            # table creation is not per view: leave it out
            for key in [k for k in seed_used.requests if k[0] in ("CreateTable", "DescribeTable")]:
                del seed_used.requests[key]
            seed = summarise(seed_used, views)
            seed["replayed"] = sent
            out[name] = {
                "command": command,
                "serve": shown(srv.argv),
                "report": report,
                "reader_caught_up_s": caught,
                "livecount": live,
                "seed": seed,
                "seed_over_livecount_wcu": round(seed["wcu_per_1000"] / live["wcu_per_1000"], 1)
                if live["wcu_per_1000"]
                else None,
                "replay_command": (
                    f"python -m bench.seed_replay --endpoint "
                    f"http://127.0.0.1:DDB --views {views} "
                    f"--articles {mix[1]} --referrer-ratio 0.2 "
                    "--refreshed-ratio 0.2"
                ),
            }
            out[name]["dollars"] = dollars(live, seed, sent)
        return out

    async def fanout(self) -> dict[str, Any]:
        """One article, many subscribers: view → count on every subscriber."""
        s = self.scale
        prefix = self.prefix("fanout")
        args = [
            "--connections",
            "1",
            "--subscribers",
            str(s.fanout_subscribers),
            "--articles",
            "1",
            "--rate",
            str(s.fanout_rate),
            "--duration",
            str(s.fanout_s),
            "--open-concurrency",
            "500",
            "--push-wait",
            "5",
        ]
        await self.quiet()
        self.log(f"fan-out: {s.fanout_subscribers} subscribers")
        async with served(self.ddb, prefix, self.work) as srv:
            report, command = await self.measured(srv, args)
            report["server_rss_kib"] = rss_kib(srv.pid)
            return {
                "harness": HARNESS,
                "command": command,
                "serve": shown(srv.argv),
                "report": report,
            }

    async def memory(self) -> dict[str, Any]:
        """Server RSS per idle open socket."""
        s = self.scale
        _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        # each process needs its sockets plus a few dozen files of its own
        sockets = min(s.memory_sockets, hard - 200)
        prefix = self.prefix("memory")
        args = [
            "--connections",
            str(sockets),
            "--articles",
            "1",
            "--rate",
            "0.001",
            "--duration",
            str(s.memory_hold_s),
            "--open-concurrency",
            "500",
        ]
        self.log(f"memory: {sockets} idle sockets")
        async with served(self.ddb, prefix, self.work) as srv:
            await asyncio.sleep(2)
            base = rss_kib(srv.pid)
            peak = base
            done = asyncio.Event()

            async def sample() -> None:
                nonlocal peak
                while not done.is_set():
                    peak = max(peak, rss_kib(srv.pid))
                    await asyncio.sleep(0.2)

            sampler = asyncio.create_task(sample())
            try:
                report, command = await loadtest(srv.ws, *args)
            finally:
                done.set()
                await sampler
            opened = report["opened"]
            return {
                "harness": HARNESS,
                "command": command,
                "serve": shown(srv.argv),
                "requested": s.memory_sockets,
                "sockets": opened,
                "fd_hard_limit": hard,
                "rss_before_kib": base,
                "rss_peak_kib": peak,
                "kib_per_socket": round((peak - base) / opened, 2) if opened else None,
                "connect_failures": report["connect_failures"],
                "connect_s": report["connect_s"],
            }

    async def profile(self) -> dict[str, Any]:
        """py-spy on the server under each ingest mix: where its CPU goes."""
        here = str(Path(sys.executable).parent)
        spy = shutil.which("py-spy") or shutil.which("py-spy", path=here)
        if spy is None:
            return {"harness": HARNESS, "skipped": "py-spy is not installed (pip install py-spy)"}
        out: dict[str, Any] = {"harness": HARNESS}
        for name, mix in MIXES.items():
            out[name] = await self._profile_one(spy, name, mix)
        return out

    async def _profile_one(self, spy: str, name: str, mix: list[str]) -> dict[str, Any]:
        s = self.scale
        prefix = self.prefix("profile")
        raw = self.work / f"profile-{name}.txt"
        args = self._ingest_args(mix, s.profile_s)
        await self.quiet()
        self.log(f"profile: py-spy on livecount serve under the {name} ingest load")
        async with served(self.ddb, prefix, self.work) as srv:
            spy_argv = [
                spy,
                "record",
                "--pid",
                str(srv.pid),
                "--rate",
                "200",
                "--duration",
                str(int(s.profile_s) + 2),
                "--nonblocking",
                "--format",
                "raw",
                "--output",
                str(raw),
            ]
            recorder = await asyncio.create_subprocess_exec(
                *spy_argv, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL
            )
            try:
                report, command = await loadtest(srv.ws, *args)
                await asyncio.wait_for(recorder.wait(), 60)
            finally:
                await _reaped(recorder)
        if not raw.exists():
            return {
                "skipped": f"py-spy wrote nothing (exit {recorder.returncode}); "
                "it needs ptrace permission"
            }
        top = collapsed_top(raw.read_text())
        spy_argv[0], spy_argv[3] = "py-spy", "PID"
        return {
            "command": command,
            "py_spy": shown(spy_argv).replace(str(self.work), "WORK"),
            "views_per_s": report["views_per_s"],
            **top,
            "raw_file": str(raw),
        }


def _ratio(a: dict[str, Any], b: dict[str, Any]) -> float | None:
    return round(a["views_per_s"] / b["views_per_s"], 3) if b["views_per_s"] else None


# Frames that wrap everything (start-up, the loop runner, thread bootstrap): no information.
_PLUMBING = (
    "(<frozen runpy>)",
    "(server/__main__.py)",
    "(server/cli.py)",
    "(threading.py)",
    "(uvloop/__init__.py)",
    "_worker (concurrent/futures/thread.py)",
)


def collapsed_top(text: str, n: int = 15) -> dict[str, Any]:
    """Sample shares per function from py-spy's collapsed stacks, event-loop thread apart.

    Stacks that start in `Thread._bootstrap` are worker threads (the journal's writes,
    `to_thread`); py-spy counts a thread blocked in fsync or a queue as busy, so those are
    shown on their own, as time spent waiting rather than CPU of the event loop.
    """
    own: Counter[str] = Counter()
    incl: Counter[str] = Counter()
    workers: Counter[str] = Counter()
    loop_total = worker_total = 0
    for line in text.splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        k = int(count)
        names = [
            re.sub(r":\d+\)$", ")", f.strip())
            for f in stack.split(";")
            if not f.startswith(("process ", "thread "))
        ]
        if not names:
            continue
        if names[0].startswith("Thread._bootstrap"):
            worker_total += k
            workers[names[-1]] += k
            continue
        loop_total += k
        own[names[-1]] += k
        for name in set(names):
            incl[name] += k

    def share(c: Counter[str], total: int) -> list[dict[str, Any]]:
        rows = [(name, k) for name, k in c.most_common() if not name.endswith(_PLUMBING)]
        return [{"function": name, "share": round(100 * k / total, 1)} for name, k in rows[:n]]

    return {
        "samples": loop_total,
        "worker_samples": worker_total,
        "self": share(own, loop_total) if loop_total else [],
        "inclusive": share(incl, loop_total) if loop_total else [],
        "workers": [{"function": name, "samples": k} for name, k in workers.most_common(5)],
    }


def summarise(t: Tally, views: int) -> dict[str, Any]:
    per = 1000 / views if views else 0.0
    wcu, rcu = sum(t.wcu.values()), sum(t.rcu.values())
    dynamo_requests = sum(n for (op, _), n in t.requests.items() if op not in STREAM_OPS)
    return {
        "views": views,
        "tally": t.to_json(),
        "wcu_per_1000": round(wcu * per, 2),
        "rcu_per_1000": round(rcu * per, 2),
        "requests_per_1000": round(dynamo_requests * per, 2),
        "write_requests_per_1000": round(t.ops(*WRITE_OPS) * per, 2),
        "getrecords_per_1000": round(t.ops("GetRecords") * per, 2),
        "stream_requests_per_1000": round(t.ops(*STREAM_OPS) * per, 2),
    }


def dollars(live: dict[str, Any], seed: dict[str, Any], sent: dict[str, Any]) -> dict[str, Any]:
    """US dollars per million views for each scheme, from the measured units and the model."""
    p = PRICES
    m = 1000.0  # the figures are per 1,000 views; x1000 is per million

    def dynamo(x: dict[str, Any], streams_billed: bool) -> float:
        cost: float = (
            x["wcu_per_1000"] * m * p["wru_per_m"] / 1e6
            + x["rcu_per_1000"] * m * p["rru_per_m"] / 1e6
        )
        if streams_billed:
            cost += x["getrecords_per_1000"] * m * p["streams_getrecords_per_100k"] / 1e5
        return cost

    views = max(sent["views"], 1)
    lambda_per_view = 1 + 0.1 + sent["lambda_stream_invocations"] / views  # ws, SQS/10, stream
    seed_parts = {
        "dynamodb": dynamo(seed, streams_billed=False),  # a stream-triggered Lambda reads free
        "api_gateway_messages": 2 * p["apigw_ws_messages_per_m"],  # the view in, the reply out
        "api_gateway_connection_minutes": 1 * p["apigw_ws_connection_minutes_per_m"],
        "lambda_requests": lambda_per_view * p["lambda_requests_per_m"],
        "lambda_duration": lambda_per_view * 1e6 * 0.128 * 0.010 * p["lambda_gb_s"],
        "sns": 1 * p["sns_publish_per_m"],
        "sqs": 1.2 * p["sqs_requests_per_m"],  # SNS delivery + receive/delete in batches of 10
    }
    live_parts = {"dynamodb": dynamo(live, streams_billed=True)}
    return {
        "livecount": {k: round(v, 4) for k, v in live_parts.items()},
        "livecount_total": round(sum(live_parts.values()), 4),
        "seed": {k: round(v, 4) for k, v in seed_parts.items()},
        "seed_total": round(sum(seed_parts.values()), 4),
        "seed_dynamodb_only": round(seed_parts["dynamodb"], 4),
    }


# -- the document ------------------------------------------------------------------------------
def machine() -> dict[str, Any]:
    cpu = ""
    with suppress(OSError):
        cpu = next(
            (
                ln.split(":", 1)[1].strip()
                for ln in Path("/proc/cpuinfo").read_text().splitlines()
                if ln.startswith("model name")
            ),
            "",
        )
    mem_kib = 0
    with suppress(OSError, StopIteration):
        mem_kib = int(
            next(
                ln.split()[1]
                for ln in Path("/proc/meminfo").read_text().splitlines()
                if ln.startswith("MemTotal")
            )
        )
    java = subprocess.run(["java", "-version"], capture_output=True, text=True, check=False)
    commit = (
        os.environ.get("BENCH_COMMIT")
        or subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            check=False,
            cwd=ROOT,
        ).stdout.strip()
    )
    dirty = (
        ""
        if os.environ.get("BENCH_COMMIT")
        else subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            check=False,
            cwd=ROOT,
        ).stdout.strip()
    )
    return {
        "cores": os.cpu_count(),
        "cpu": cpu,
        "memory_gib": round(mem_kib / 2**20, 1),
        "python": platform.python_version(),
        "kernel": platform.release(),
        "java": (java.stderr.splitlines() or [""])[0],
        "nofile_hard": resource.getrlimit(resource.RLIMIT_NOFILE)[1],
        "commit": commit + (" (with uncommitted changes)" if dirty else ""),
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
    }


def _notes(old: str) -> dict[str, str]:
    return {
        m.group(1): m.group(2).strip()
        for m in re.finditer(r"<!-- note:(\w+) -->\n(.*?)\n<!-- /note:\1 -->", old, re.S)
    }


def _note(notes: dict[str, str], name: str) -> list[str]:
    text = notes.get(name, "_No analysis written yet._")
    return [f"<!-- note:{name} -->", text, f"<!-- /note:{name} -->", ""]


def _ms(s: dict[str, Any] | None, key: str) -> str:
    if not s or s.get(key) is None:
        return "-"
    return f"{s[key]:.1f}"


def _pct(x: float | None) -> str:
    return "-" if x is None else f"{x:.0f}%"


def _num(x: float | None, fmt: str = ",.0f") -> str:
    return "-" if x is None else format(x, fmt)


def _verdict(ok: bool | None, why: str = "") -> str:
    text = "**met**" if ok else "**not met**" if ok is not None else "not judged"
    return f"{text} ({why})" if why else text


def goals(results: dict[str, Any]) -> list[tuple[str, str, str]]:
    """(goal, measured, verdict) for each goal of issue 12 this run measured."""
    rows: list[tuple[str, str, str]] = []
    quick = results.get("scale") == "quick"
    small = "quick scale" if quick else ""
    ing = results.get("ingest")
    if _current(ing):
        for name, x in ing["mixes"].items():
            r = x["ratio"]
            lc, e = x["best"]["livecount"], x["best"]["echo"]
            rows.append(
                (
                    f"ingest >= {GOAL_INGEST_RATIO:g}x the bare websockets echo, {name} "
                    f"(in flight {ing['in_flight']} per socket)",
                    f"{_num(lc['views_per_s'])} vs {_num(e['views_per_s'])}/s = "
                    f"{_num(r, '.2f')}x; server CPU-µs per reply "
                    f"{_num(lc['server_cpu_us_per_reply'], '.1f')} vs echo "
                    f"{_num(e['server_cpu_us_per_reply'], '.1f')}; client CPU "
                    f"{_pct(e['cpu_pct']['client'])} (echo run), "
                    f"{_pct(lc['cpu_pct']['client'])} (livecount run)",
                    _verdict(None if r is None else r >= GOAL_INGEST_RATIO, small),
                )
            )
            if "workers_ratio" in x:
                w = x["workers_ratio"]
                rows.append(
                    (
                        f"--workers {ing['workers']} >= {GOAL_WORKERS_RATIO:g}x --workers "
                        f"1, {name}",
                        f"{_num(x['best']['livecount_workers']['views_per_s'])} vs "
                        f"{_num(x['best']['livecount']['views_per_s'])}/s = "
                        f"{_num(w, '.2f')}x",
                        _verdict(None if w is None else w >= GOAL_WORKERS_RATIO, small),
                    )
                )
    cost = results.get("cost")
    if _current(cost) and "zipf10k" in cost:
        times = cost["zipf10k"]["seed_over_livecount_wcu"]
        rows.append(
            (
                f"Zipf over 10,000 articles: >= {GOAL_ZIPF_VS_SEED:g}x fewer WCU than the seed",
                f"{cost['zipf10k']['livecount']['wcu_per_1000']:.1f} vs "
                f"{cost['zipf10k']['seed']['wcu_per_1000']:.1f} WCU = "
                f"{_num(times, '.1f')}x fewer",
                _verdict(None if times is None else times >= GOAL_ZIPF_VS_SEED, small),
            )
        )
    lag = results.get("lag")
    if _current(lag):
        caught = lag["reader_caught_up_s"]
        ok = lag["bounded"] and caught <= GOAL_LAG_S
        rows.append(
            (
                f"reader holds every view <= {GOAL_LAG_S:g} s after the load, pending "
                f"bounded (Zipf over {lag['report']['articles']:,} articles at "
                f"{lag['report']['target_rate']:,.0f} views/s)",
                f"{caught} s; pending at most {_num(lag['max_pending'])} (bound "
                f"{lag['pending_bound']:,})",
                _verdict(ok, small),
            )
        )
    fan = results.get("fanout")
    if _current(fan):
        r = fan["report"]
        p99 = r["push_ms"]["p99"]
        subs = r["opened"] - r["connections"]
        rows.append(
            (
                f"fan-out p99 <= {GOAL_FANOUT_P99_MS:g} ms to the last of "
                f"{FANOUT_SUBSCRIBERS:,} subscribers",
                f"{_ms(r['push_ms'], 'p99')} ms at {subs:,} subscribers",
                _verdict(
                    None if p99 is None else p99 <= GOAL_FANOUT_P99_MS,
                    f"only {subs:,} subscribers" if subs < FANOUT_SUBSCRIBERS else small,
                ),
            )
        )
    mem = results.get("memory")
    if _current(mem):
        per = mem["kib_per_socket"]
        rows.append(
            (
                f"<= {GOAL_MEMORY_KIB:g} KiB per idle socket",
                f"{_num(per, '.2f')} KiB at {mem['sockets']:,} sockets",
                _verdict(None if per is None else per <= GOAL_MEMORY_KIB, small),
            )
        )
    return rows


def _current(section: Any) -> TypeGuard[dict[str, Any]]:
    return isinstance(section, dict) and section.get("harness") == HARNESS


def render(results: dict[str, Any], notes: dict[str, str]) -> str:
    m = results["machine"]
    out = [
        "# Benchmarks",
        "",
        "Generated by `make bench` (`python -m bench.run`); the figures compared with each "
        "other were measured side by side in the same run on the same machine. Text between "
        "`note` markers is written by hand and kept across runs; the rest is regenerated "
        "(`python -m bench.run --render-only` redraws it from `bench/results.json`).",
        "",
        f"- Machine: {m['cores']} cores ({m['cpu']}), {m['memory_gib']} GiB, Linux "
        f"{m['kernel']}; Python {m['python']}; {m['java']} (DynamoDB Local "
        f"{dynamodb_local.VERSION}, its tables "
        f"{results.get('dynamodb_local', 'on disk')}); RLIMIT_NOFILE hard limit "
        f"{m['nofile_hard']}.",
        f"- Code: commit {m['commit']}; run {m['date']}; scale `{results['scale']}`"
        + (
            " (tiny loads that check the harness: not figures)."
            if results["scale"] == "quick"
            else "."
        ),
        f"- Everything (server, client, DynamoDB Local, proxy) shares the same {m['cores']} "
        "cores, so every figure is a lower bound for a server that has its cores to itself. "
        "CPU shares are of one core, over the load's own window; `limit` names any measured "
        f"process at {LIMIT_PCT:g}% of a core or more, says when every core was busy, and "
        f"when other processes (this harness included) used {OTHERS_PCT:g}% or more.",
        "",
        "## Goals (issue 12)",
        "",
        "| goal | measured | verdict |",
        "|---|---|---|",
    ]
    out += [f"| {g} | {v} | {ok} |" for g, v, ok in goals(results)]
    out.append("")
    out += _note(notes, "summary")
    for name in SECTIONS:
        section = results.get(name)
        if isinstance(section, dict) and "error" in section:
            out += [f"**{name} failed in this run**: `{section['error']}`", ""]
        elif section is not None and not _current(section):
            out += [
                f"**{name}**: the stored results come from another version of the "
                f"harness; run `python -m bench.run --only {name}`.",
                "",
            ]
    if _current(results.get("ingest")):
        out += _render_ingest(results["ingest"], notes)
    if _current(results.get("lag")):
        out += _render_lag(results["lag"], notes)
    if _current(results.get("cost")):
        out += _render_cost(results["cost"], notes, m)
    if _current(results.get("fanout")):
        out += _render_fanout(results["fanout"], notes)
    if _current(results.get("memory")):
        out += _render_memory(results["memory"], notes)
    if _current(results.get("profile")):
        out += _render_profile(results["profile"], notes)
    if _current(results.get("imports")):
        out += import_bench.render(results["imports"], lambda name: _note(notes, name))
    if _current(results.get("reports")):
        from bench import reports  # it uses this module's helpers: imported when needed

        out += reports.render(results["reports"], lambda name: _note(notes, name))
    return "\n".join(out).rstrip() + "\n"


def _render_ingest(ing: dict[str, Any], notes: dict[str, str]) -> list[str]:
    n, k = ing["connections"], ing["in_flight"]
    out = [
        "## 1. Ingest ceiling",
        "",
        f"Replies per second through `livecount serve` (each view validated, counted, on "
        f"disk, replied) against a bare `websockets` echo server (`bench/echo.py`: the same "
        f"library's asyncio API, loop and limits, one fixed small JSON reply per frame), "
        f"driven by the same client the same way: {n} sockets, each keeping up to **{k} "
        f"views in flight** (`--in-flight {k}`: a socket sends its next view whenever fewer "
        f"than {k} wait for their replies; replies come back in order), "
        f"{ing['duration_s']:g} s a round. Best round of each. **CPU-µs per reply** is the "
        "server process's CPU time (user + system, all its threads) over the load's "
        "window divided by the replies in it: the figure that carries from one machine to "
        f"another. Goal: livecount >= {GOAL_INGEST_RATIO:g}x the echo server's replies/s, "
        "on both mixes; the CPU column judges the same goal per unit of CPU (livecount's "
        "CPU-µs per view <= echo's per reply).",
        "",
        "| mix | echo replies/s | livecount views/s | ratio | verdict | echo CPU-µs / "
        "reply | livecount CPU-µs / view | CPU ratio | verdict | client CPU (echo run / "
        "livecount run) | echo server CPU | livecount server CPU | DynamoDB Local CPU "
        "(livecount run) | reply p50 / p99 ms (echo / livecount) | limit (echo run; "
        "livecount run) |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name, x in ing["mixes"].items():
        e, lc = x["best"]["echo"], x["best"]["livecount"]
        ratio, cpu_ratio = x["ratio"], x["cpu_ratio"]
        out.append(
            f"| {name} | {_num(e['views_per_s'])} | {_num(lc['views_per_s'])} | "
            f"{_num(ratio, '.2f')} | "
            f"{_verdict(None if ratio is None else ratio >= GOAL_INGEST_RATIO)} | "
            f"{_num(e['server_cpu_us_per_reply'], '.1f')} | "
            f"{_num(lc['server_cpu_us_per_reply'], '.1f')} | {_num(cpu_ratio, '.2f')} | "
            f"{_verdict(None if cpu_ratio is None else cpu_ratio <= 1.0)} | "
            f"{_pct(e['cpu_pct']['client'])} / {_pct(lc['cpu_pct']['client'])} | "
            f"{_pct(e['cpu_pct']['server'])} | {_pct(lc['cpu_pct']['server'])} | "
            f"{_pct(lc['cpu_pct']['dynamodb_local'])} | "
            f"{_ms(e['reply_ms'], 'p50')} / {_ms(e['reply_ms'], 'p99')} ; "
            f"{_ms(lc['reply_ms'], 'p50')} / {_ms(lc['reply_ms'], 'p99')} | "
            f"{e['limit']}; {lc['limit']} |"
        )

    def rounds(runs: list[dict[str, Any]]) -> str:
        return ", ".join(
            f"{r['views_per_s']:,.0f} ({_num(r['server_cpu_us_per_reply'], '.1f')} µs)"
            for r in runs
        )

    out += [
        "",
        "All rounds, views/s (server CPU-µs per reply): "
        + "; ".join(
            f"{name} "
            + ", ".join(
                f"{kind.replace('_', ' ')} {rounds(runs)}" for kind, runs in x["runs"].items()
            )
            for name, x in ing["mixes"].items()
        )
        + ".",
        "",
        "Commands:",
        "",
        "```sh",
    ]
    for name, x in ing["mixes"].items():
        c = x["commands"]
        out += [f"# {name}", c["echo"], c["livecount"], c["loadtest"]]
    out += ["```", ""]
    out += _note(notes, "ingest")
    hot = ing["mixes"].get("hot", {})
    if "workers_ratio" in hot:
        w = ing["workers"]
        one, many = hot["best"]["livecount"], hot["best"]["livecount_workers"]
        ratio = hot["workers_ratio"]
        out += [
            "### Workers",
            "",
            f"The hot mix of the table above through `livecount serve --workers {w}` "
            "(one port, SO_REUSEPORT, a node per worker) against `--workers 1`, in the "
            f"same rounds, same client and in-flight. Goal: >= {GOAL_WORKERS_RATIO:g}x. "
            "Server CPU is the parent's and every worker's together; the client and "
            "DynamoDB Local share the same cores.",
            "",
            "| server | views/s | vs --workers 1 | verdict | server CPU (processes) | "
            "CPU-µs / view | client CPU | DynamoDB Local CPU | reply p50 / p99 ms | limit |",
            "|---|---|---|---|---|---|---|---|---|---|",
        ]
        for label, r, rel in (
            ("--workers 1", one, "1.00"),
            (f"--workers {w}", many, _num(ratio, ".2f")),
        ):
            ok = (
                _verdict(None if ratio is None else ratio >= GOAL_WORKERS_RATIO)
                if r is many
                else ""
            )
            out.append(
                f"| `{label}` | {_num(r['views_per_s'])} | {rel} | {ok} | "
                f"{_pct(r['cpu_pct']['server'])} ({r['server_processes']}) | "
                f"{_num(r['server_cpu_us_per_reply'], '.1f')} | "
                f"{_pct(r['cpu_pct']['client'])} | "
                f"{_pct(r['cpu_pct']['dynamodb_local'])} | "
                f"{_ms(r['reply_ms'], 'p50')} / {_ms(r['reply_ms'], 'p99')} | "
                f"{r['limit']} |"
            )
        out += [
            "",
            "```sh",
            hot["commands"]["livecount_workers"],
            hot["commands"]["loadtest"],
            "```",
            "",
        ]
        out += _note(notes, "workers")
    return out


def _render_lag(lag: dict[str, Any], notes: dict[str, str]) -> list[str]:
    r = lag["report"]
    caught = lag["reader_caught_up_s"]
    ok = lag["bounded"] and caught <= GOAL_LAG_S
    series = lag["pending_series"]
    step = max(1, len(series) // 40)
    out = [
        "## 2. Reader lag on the wide mix",
        "",
        f"Zipf 1.1 over {r['articles']:,} articles at {r['target_rate']:,.0f} views/s (20% "
        "with an external referrer, 20% refreshes) on DynamoDB Local directly, flush "
        f"interval {FLUSH_INTERVAL:g} s. Pending views: the server's "
        "`livecount_pending_views` gauge (views accepted, not yet stored), read from "
        "`/metrics` every 0.5 s through the load; bounded means it stayed under "
        f"{LAG_PENDING_BOUND_S:g} s of views at the rate ({lag['pending_bound']:,}). "
        "Caught up: from the load stopping until a consistent scan of the reader table "
        f"holds every acknowledged view. Goal: pending bounded and caught up within "
        f"{GOAL_LAG_S:g} s.",
        "",
        "| views/s reached (asked) | views | views behind the rate | max pending | pending "
        "at the end of the load | flushes during load | longest gap between flushes s | "
        "reader caught up after s | verdict | server CPU | DynamoDB Local CPU | client "
        "CPU | limit |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
        f"| {_num(r['views_per_s'])} ({r['target_rate']:,.0f}) | {r['acked']:,} | "
        f"{r['missed']:,} | {_num(lag['max_pending'])} | {_num(lag['pending_at_stop'])} | "
        f"{lag['flushes_during_load']} | {_num(lag['max_flush_gap_s'], '.2f')} | {caught} | "
        f"{_verdict(ok)} | {_pct(r['cpu_pct']['server'])} | "
        f"{_pct(r['cpu_pct']['dynamodb_local'])} | {_pct(r['cpu_pct']['client'])} | "
        f"{r['limit']} |",
        "",
        "Pending views through the load (seconds into the load: pending): `"
        + ", ".join(f"{t:g}: {n:,}" for t, n in series[::step])
        + "`",
        "",
        "```sh",
        lag["serve"],
        lag["command"],
        "```",
        "",
    ]
    return out + _note(notes, "store")


def _render_cost(cost: dict[str, Any], notes: dict[str, str], m: dict[str, Any]) -> list[str]:
    out = [
        "## 3. DynamoDB cost",
        "",
        "Requests and capacity units counted by a proxy on loopback between the "
        "server and DynamoDB Local (`bench/proxy.py`: it adds "
        "`ReturnConsumedCapacity: TOTAL` to each request and sums what comes back; a "
        "failed conditional write counts 1 WCU as on AWS; PartiQL statements, for which "
        "DynamoDB Local reports no capacity, are counted as AWS bills an item under 1 KB: "
        "1 unit each, a failed condition included, and listed as estimated below). "
        "livecount: a real "
        "`livecount serve` under `livecount loadtest` at a fixed rate; the window runs "
        "from the first view until the server has stopped, so its drain (report rows wait "
        "up to `--report-interval`) is in it. Seed: "
        "`bench/seed_replay.py` replays the same view mix (same generator and seed) as "
        "the seed did it: one `UpdateItem` per view on PostCountWriter, one write per "
        "view with an external referrer, one read of PostCountReader to answer, and a "
        "`PutItem` copy per stream record. 20% of views have an external referrer, 20% "
        "are refreshes. Goal: Zipf over 10,000 articles >= "
        f"{GOAL_ZIPF_VS_SEED:g}x fewer WCU than the seed (issue 12's hot-article goal, 2 WCU "
        "per 1,000 views, is retired by issue 23).",
        "",
        "| scenario | scheme | views | WCU / 1k views | RCU / 1k views | DynamoDB "
        "requests / 1k views | of which writes | stream requests / 1k views | goal | "
        "verdict |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name, x in cost.items():
        if not isinstance(x, dict) or "livecount" not in x:
            continue
        for scheme in ("livecount", "seed"):
            y = x[scheme]
            goal = verdict = ""
            if scheme == "livecount" and name == "zipf10k":
                times = x["seed_over_livecount_wcu"]
                goal = f">= {GOAL_ZIPF_VS_SEED:g}x fewer WCU than the seed ({_num(times, '.1f')}x)"
                verdict = _verdict(None if times is None else times >= GOAL_ZIPF_VS_SEED)
            out.append(
                f"| {name} | {scheme} | {y['views']:,} | {y['wcu_per_1000']:.2f} | "
                f"{y['rcu_per_1000']:.2f} | {y['requests_per_1000']:.1f} | "
                f"{y.get('write_requests_per_1000', 0):.1f} | "
                f"{y['stream_requests_per_1000']:.1f} | {goal} | {verdict} |"
            )
    out += ["", "Where livecount's requests went (whole window):", ""]
    for name, x in cost.items():
        if not isinstance(x, dict) or "livecount" not in x:
            continue
        live = x["livecount"]
        reqs = live["tally"]["requests"]
        out.append(
            f"- {name} ({x['report']['acked']:,} views at "
            f"{x['report']['views_per_s']:,.0f}/s; reader caught up "
            f"{x['reader_caught_up_s']} s after the load): "
            + ", ".join(f"{k} {v:,}" for k, v in reqs.items())
        )
        out.append(
            "  - of which at shutdown (the drain): "
            + (", ".join(f"{k} {v:,}" for k, v in live["drain_requests"].items()) or "none")
        )
        if live.get("unflushed_at_stop"):
            out.append(
                f"  - **{live['unflushed_at_stop']:,} views were still unstored when "
                "the server stopped: their writes are missing from these figures**"
            )
        if live["tally"].get("estimated"):
            out.append(
                "  - capacity estimated (DynamoDB Local returned none): "
                + ", ".join(f"{k} {v:,}" for k, v in live["tally"]["estimated"].items())
            )
        idle = live["idle_requests_per_s"]
        out.append(
            "  - idle, before the load (per second): "
            + (", ".join(f"{k} {v}" for k, v in idle.items()) or "none")
        )
    out += [
        "",
        "### Dollars per million views",
        "",
        "Prices: US East on-demand list prices as given in issue 5 (DynamoDB $1.25 "
        "per million WRU, $0.25 per million RRU, Streams GetRecords $0.02 per 100,000; "
        "API Gateway WebSocket $1.00 per million messages and $0.25 per million "
        "connection-minutes; Lambda $0.20 per million requests and $0.0000166667 per "
        "GB-second; SNS $0.50 per million publishes; SQS $0.40 per million requests), "
        f"applied on {m['date'][:10]}; not re-checked against AWS from this machine "
        "(no network). Free tiers ignored.",
        "",
        "Seed model per view (assumptions, not measured): 2 API Gateway messages (the "
        "view in, the reply out; live pushes to other readers not counted), 1 "
        "connection-minute (a page open for a minute), Lambda invocations 1 (WebSocket "
        "handler) + 0.1 (SQS consumer, batches of 10) + stream batches of 100, each "
        "128 MB for 10 ms, 1 SNS publish, 1.2 SQS requests (SNS delivery, receive and "
        "delete in batches of 10); DynamoDB as measured, its stream read by a Lambda "
        "trigger (free). livecount: DynamoDB and its Streams GetRecords as measured; "
        "the machine it runs on is a fixed cost, not per view, and is not included.",
        "",
        "| scenario | livecount DynamoDB+Streams $/M views | seed DynamoDB $/M views | "
        "seed whole stack $/M views | seed breakdown |",
        "|---|---|---|---|---|",
    ]
    for name, x in cost.items():
        if not isinstance(x, dict) or "dollars" not in x:
            continue
        d = x["dollars"]
        parts = ", ".join(f"{k} {v:.3f}" for k, v in d["seed"].items())
        out.append(
            f"| {name} | {d['livecount_total']:.3f} | {d['seed_dynamodb_only']:.3f} | "
            f"{d['seed_total']:.3f} | {parts} |"
        )
    out += ["", "Commands:", "", "```sh"]
    for name, x in cost.items():
        if not isinstance(x, dict) or "serve" not in x:
            continue
        out += [
            f"# {name} (DDB: the counting proxy that bench.run starts in front of DynamoDB Local)",
            x["serve"],
            x["command"],
            x["replay_command"],
        ]
    out += ["```", ""]
    return out + _note(notes, "cost")


def _render_fanout(f: dict[str, Any], notes: dict[str, str]) -> list[str]:
    r = f["report"]
    p99 = r["push_ms"]["p99"]
    subs = r["opened"] - r["connections"]
    ok = _verdict(
        None if p99 is None else p99 <= GOAL_FANOUT_P99_MS,
        f"only {subs:,} subscribers" if subs < FANOUT_SUBSCRIBERS else "",
    )
    out = [
        "## 4. Live fan-out",
        "",
        f"{subs:,} subscribers on one article on one node, views at "
        f"{r['target_rate']:g}/s; push latency is from a view sent to the moment a "
        "`count` including it has reached every subscriber (the last of them). Goal: "
        f"p99 <= {GOAL_FANOUT_P99_MS:g} ms at {FANOUT_SUBSCRIBERS:,} subscribers.",
        "",
        "| subscribers | views | push p50 ms (every sub.) | push p99 ms (every sub.) | "
        "max ms | first-sub. p50 / p99 ms | missing | verdict | client CPU | server CPU |",
        "|---|---|---|---|---|---|---|---|---|---|",
        f"| {subs:,} | {r['acked']:,} | "
        f"{_ms(r['push_ms'], 'p50')} | {_ms(r['push_ms'], 'p99')} | "
        f"{_ms(r['push_ms'], 'max')} | {_ms(r['push_first_ms'], 'p50')} / "
        f"{_ms(r['push_first_ms'], 'p99')} | {r['push_missing']} | {ok} | "
        f"{_pct(r['cpu_pct']['client'])} | {_pct(r['cpu_pct']['server'])} |",
        "",
        "```sh",
        f["serve"],
        f["command"],
        "```",
        "",
    ]
    return out + _note(notes, "fanout")


def _render_memory(mm: dict[str, Any], notes: dict[str, str]) -> list[str]:
    per = mm["kib_per_socket"]
    fewer = " (at fewer sockets than asked)" if mm["sockets"] < mm["requested"] else ""
    out = [
        "## 5. Connection memory",
        "",
        "Server RSS (VmRSS from /proc) before and with every socket open and idle; "
        "the harness raises RLIMIT_NOFILE to the hard limit in both processes. Goal: "
        f"<= {GOAL_MEMORY_KIB:g} KiB per socket.",
        "",
        "| sockets open | RSS before KiB | RSS peak KiB | KiB per socket | verdict |",
        "|---|---|---|---|---|",
        f"| {mm['sockets']:,} (of {mm['requested']:,} asked; hard fd limit "
        f"{mm['fd_hard_limit']:,}) | {mm['rss_before_kib']:,} | {mm['rss_peak_kib']:,} | "
        f"{per} | {_verdict(None if per is None else per <= GOAL_MEMORY_KIB)}{fewer} |",
        "",
        "```sh",
        mm["serve"],
        mm["command"],
        "```",
        "",
    ]
    return out + _note(notes, "memory")


def _render_profile(profiles: dict[str, Any], notes: dict[str, str]) -> list[str]:
    out = ["## Profile", ""]
    if "skipped" in profiles:
        out += [f"Skipped: {profiles['skipped']}.", ""]
    for name, pr in profiles.items():
        if name in ("harness", "skipped"):
            continue
        if "skipped" in pr:
            out += [f"{name}: skipped: {pr['skipped']}.", ""]
            continue
        out += [
            f"### {name} mix",
            "",
            f"py-spy on `livecount serve` under the {name} ingest load "
            f"({pr['views_per_s']:,.0f} views/s while sampled). Shares are of the "
            f"event-loop thread's {pr['samples']:,} busy samples. Self: the function "
            "was on top of the stack; inclusive: anywhere on it (a coroutine's stack "
            "starts at the coroutine). `Runner.run` self is time in uvloop's C code "
            "(socket I/O, callback dispatch).",
            "",
            "```sh",
            pr["command"],
            pr["py_spy"],
            "```",
            "",
            "| self | share | | inclusive | share |",
            "|---|---|---|---|---|",
        ]
        for a, b in zip(pr["self"], pr["inclusive"], strict=False):
            out.append(
                f"| `{a['function']}` | {a['share']}% | | `{b['function']}` | {b['share']}% |"
            )
        if pr.get("workers"):
            out += [
                "",
                f"Worker threads ({pr['worker_samples']:,} samples, mostly "
                "blocked, not CPU): "
                + ", ".join(f"`{w['function']}` {w['samples']:,}" for w in pr["workers"]),
            ]
        out.append("")
    return out + _note(notes, "profile")


def _log(text: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {text}", file=sys.stderr, flush=True)


async def _on_disk(name: str, scale: Scale, work: Path) -> dict[str, Any]:
    """The sections that import issue 24's history: bench/imports.py, bench/reports.py."""
    if name == "imports":
        return await import_bench.measure(work, scale.imports, _log)
    from bench import reports  # it uses this module's helpers: imported when needed

    sized = reports.QUICK_REPORTS if scale == QUICK else reports.ReportScale()
    return await reports.measure(work, sized, scale.imports, _log)


async def run(scale: Scale, only: set[str], work: Path, disk: bool = False) -> dict[str, Any]:
    results: dict[str, Any] = {
        "machine": machine(),
        "scale": "quick" if scale == QUICK else "full",
        "dynamodb_local": "on disk" if disk else "in memory",
    }
    for name in [n for n in SECTIONS if n in only]:
        t0 = time.monotonic()
        if name in ("imports", "reports"):  # on disk, DynamoDB Local's of their own
            try:
                results[name] = {"harness": HARNESS, **await _on_disk(name, scale, work)}
            except Exception as exc:  # one broken measurement must not lose the rest
                results[name] = {"error": f"{type(exc).__name__}: {exc}"}
            continue
        # A DynamoDB Local of its own per section: one that earlier sections filled
        # (their items, their stream records) is slower, and that is no figure of ours.
        async with dynamodb_local.running(work / f"ddb-{name}", in_memory=not disk) as ddb:
            proxy = CountingProxy(ddb)
            await proxy.start()
            bench = Bench(ddb, proxy, scale, work)
            try:
                results[name] = await getattr(bench, name)()
            except Exception as exc:  # one broken measurement must not lose the rest
                results[name] = {"error": f"{type(exc).__name__}: {exc}"}
            finally:
                await proxy.stop()
        bench.log(f"{name} done in {time.monotonic() - t0:.0f} s")
        (work / "results.partial.json").write_text(json.dumps(results, indent=1, default=str))
    return results


def main() -> None:
    p = argparse.ArgumentParser(description="Run the benchmark suite into docs/BENCHMARKS.md.")
    p.add_argument(
        "--quick",
        action="store_true",
        help="tiny loads: checks the harness only, so by default it writes into "
        "the work dir, never over docs/BENCHMARKS.md or bench/results.json",
    )
    everything = ",".join(SECTIONS)
    p.add_argument(
        "--only",
        default=everything,
        help="comma-separated subset of " + everything + " (ingest includes the --workers rounds)",
    )
    p.add_argument("--out", type=Path, default=None, help=f"default: {DOC.relative_to(ROOT)}")
    p.add_argument(
        "--results", type=Path, default=None, help=f"default: {RESULTS.relative_to(ROOT)}"
    )
    p.add_argument(
        "--render-only",
        action="store_true",
        help="rewrite the document from --results without measuring",
    )
    p.add_argument(
        "--ddb-disk",
        action="store_true",
        help="DynamoDB Local on disk, as `make run` keeps it (default: in memory: "
        "on disk it syncs every write, a few hundred a second here)",
    )
    p.add_argument(
        "--work-dir",
        type=Path,
        default=None,
        help="where DynamoDB Local and the profile go (default: a temp dir)",
    )
    args = p.parse_args()
    if args.render_only:
        out, results_file = args.out or DOC, args.results or RESULTS
        old = out.read_text() if out.exists() else ""
        out.write_text(render(json.loads(results_file.read_text()), _notes(old)))
        return
    only = {x.strip() for x in args.only.split(",") if x.strip()}
    unknown = only - set(SECTIONS)
    if unknown:
        p.error(f"unknown section(s) {', '.join(sorted(unknown))}; choose from {everything}")
    work = args.work_dir or Path(tempfile.mkdtemp(prefix="livecount-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    # Quick figures are not figures: they must not replace the published ones.
    out = args.out or (work / DOC.name if args.quick else DOC)
    results_file = args.results or (work / RESULTS.name if args.quick else RESULTS)
    results = uvloop.run(run(QUICK if args.quick else Scale(), only, work, args.ddb_disk))
    previous: dict[str, Any] = {}
    if results_file.exists() and only != set(everything.split(",")):
        # a partial run keeps the rest, if this harness measured it
        previous = {
            k: v
            for k, v in json.loads(results_file.read_text()).items()
            if k in SECTIONS and _current(v)
        }
    merged = {**previous, **results}
    results_file.write_text(json.dumps(merged, indent=1, default=str) + "\n")
    old = out.read_text() if out.exists() else ""
    out.write_text(render(merged, _notes(old)))
    print(f"wrote {out} and {results_file} (work dir {work})", file=sys.stderr)


if __name__ == "__main__":
    main()
