"""`make bench`: every benchmark of issue 5, side by side in one run, into docs/BENCHMARKS.md.

One DynamoDB Local and one counting proxy for the whole run; a fresh `livecount serve`
(own table prefix) per measurement; load from `livecount loadtest --json` in its own
process, so its CPU is its own and its report says when it was the limit. Everything
binds 127.0.0.1, and every load is bounded in time and count.

    python -m bench.run [--quick] [--only ingest,cost,fanout,memory,profile]

Hand-written notes in docs/BENCHMARKS.md between `<!-- note:NAME -->` and
`<!-- /note:NAME -->` survive a re-run; everything else is regenerated.
"""

from __future__ import annotations

import argparse
import asyncio
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
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import uvloop
from livecount.aws import local as dynamodb_local
from livecount.aws.store import Store

from bench.proxy import CountingProxy, Tally
from bench.seed_replay import replay
from tests.support import Child, Served

ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "BENCHMARKS.md"
RESULTS = ROOT / "bench" / "results.json"
FLUSH_INTERVAL = 1.0
C = TypeVar("C", bound=Child)

# Prices (USD, us-east-1, on-demand list prices) as given in issue 5; not re-checked online.
PRICES = {
    "wru_per_m": 1.25, "rru_per_m": 0.25, "streams_getrecords_per_100k": 0.02,
    "apigw_ws_messages_per_m": 1.00, "apigw_ws_connection_minutes_per_m": 0.25,
    "lambda_requests_per_m": 0.20, "lambda_gb_s": 0.0000166667, "sns_publish_per_m": 0.50,
    "sqs_requests_per_m": 0.40,
}


@dataclass(frozen=True)
class Scale:
    ingest_s: float = 12.0
    ingest_rounds: int = 2
    ingest_connections: int = 256
    cost_s: float = 20.0
    cost_rate: float = 2000.0
    replay_views: int = 4_000
    fanout_subscribers: int = 10_000
    fanout_rate: float = 5.0
    fanout_s: float = 20.0
    memory_sockets: int = 20_000
    memory_hold_s: float = 8.0
    profile_s: float = 12.0


QUICK = Scale(ingest_s=3, ingest_rounds=1, ingest_connections=16, cost_s=3, cost_rate=300,
              replay_views=500, fanout_subscribers=300, fanout_rate=5, fanout_s=3,
              memory_sockets=500, memory_hold_s=2, profile_s=3)


# -- processes ---------------------------------------------------------------------------------
def _raise_nofile() -> None:
    """In the child before exec: the server may hold as many sockets as the hard limit."""
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def serve_args(endpoint: str, prefix: str, data: Path) -> list[str]:
    """`livecount serve` options of every measured server (address and port: `Served`'s)."""
    return ["--dynamodb-endpoint", endpoint, "--table-prefix", prefix,
            "--flush-interval", str(FLUSH_INTERVAL), "--data-dir", str(data / prefix),
            # The load comes from one address and faster than pages do: measure the
            # server's ceiling, not its abuse limits.
            "--rate-limit", "1000000", "--rate-burst", "1000000",
            "--max-connections-per-ip", "1000000"]


@asynccontextmanager
async def served(endpoint: str, prefix: str, data: Path) -> AsyncIterator[Served]:
    """A server with its own tables and its own data dir (its journal is its own)."""
    async with running(Served(*serve_args(endpoint, prefix, data),
                              preexec_fn=_raise_nofile)) as server:
        yield server


@asynccontextmanager
async def echo() -> AsyncIterator[Child]:
    async with running(Child([sys.executable, "-m", "bench.echo", "--port", "0"],
                             preexec_fn=_raise_nofile, name="bench.echo")) as server:
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
    argv = [sys.executable, "-m", "livecount", "loadtest", "--url", url, *args, "--json"]
    proc = await asyncio.create_subprocess_exec(
        *argv, cwd=ROOT, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        stdin=asyncio.subprocess.DEVNULL, preexec_fn=_raise_nofile)
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
    """User + system CPU seconds of a process, from /proc/PID/stat."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


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


# -- scenarios ---------------------------------------------------------------------------------
class Bench:
    def __init__(self, ddb: str, proxy: CountingProxy, scale: Scale, work: Path) -> None:
        self.ddb = ddb
        self.proxy = proxy
        self.scale = scale
        self.work = work
        self.java = java_pid()
        self._n = 0

    def prefix(self, name: str) -> str:
        self._n += 1
        return f"b{self._n}{name}_"

    def log(self, text: str) -> None:
        print(f"[bench {time.strftime('%H:%M:%S')}] {text}", file=sys.stderr, flush=True)

    async def ingest(self) -> dict[str, Any]:
        """Views/s through livecount serve vs a bare echo server, same client, same way."""
        s = self.scale
        mixes = {"hot": ["--articles", "1"],
                 "zipf": ["--articles", "1000", "--zipf", "1.1"]}
        out: dict[str, Any] = {"mixes": {}}
        for name, mix in mixes.items():
            args = ["--connections", str(s.ingest_connections), "--duration", str(s.ingest_s),
                    *mix, "--seed", "1"]
            runs: dict[str, list[dict[str, Any]]] = {"echo": [], "livecount": []}
            commands: dict[str, str] = {}
            for rnd in range(s.ingest_rounds):
                self.log(f"ingest {name} round {rnd + 1}: echo")
                async with echo() as e:
                    report, commands["loadtest"] = await loadtest(e.ws, *args)
                    commands["echo"] = shown(e.argv)
                    runs["echo"].append(report)
                self.log(f"ingest {name} round {rnd + 1}: livecount")
                runs["livecount"].append(await self._livecount_ingest(args, commands))
            best = {k: max(r["views_per_s"] for r in v) for k, v in runs.items()}
            out["mixes"][name] = {
                "commands": commands, "runs": runs,
                "echo_views_per_s": best["echo"], "livecount_views_per_s": best["livecount"],
                "ratio": round(best["livecount"] / best["echo"], 3) if best["echo"] else None,
            }
        return out

    async def _livecount_ingest(self, args: list[str], commands: dict[str, str]
                                ) -> dict[str, Any]:
        prefix = self.prefix("ingest")
        async with served(self.ddb, prefix, self.work) as srv, \
                Store.open(self.ddb, "us-east-1", prefix) as store:
            commands["serve"] = shown(srv.argv)
            cpu0, java0, t0 = cpu_s(srv.pid), self._java_cpu(), time.monotonic()
            report, _ = await loadtest(srv.ws, *args)
            wall = time.monotonic() - t0
            report["server_cpu_pct"] = round(100 * (cpu_s(srv.pid) - cpu0) / wall, 1)
            report["dynamodb_local_cpu_pct"] = round(100 * (self._java_cpu() - java0) / wall, 1)
            report["store"] = await self._store_ceiling(srv, store, report)
        return report

    def _java_cpu(self) -> float:
        return cpu_s(self.java) if self.java else 0.0

    async def _store_ceiling(self, srv: Served, store: Store, report: dict[str, Any]
                             ) -> dict[str, Any]:
        """Pending views during the load, and how long the reader takes after it."""
        start = report["started_at"] + report["connect_s"]
        stop = report["stopped_at"]
        caught = await wait_reader(store, report["acked"], stop)
        flushes = [e for e in srv.events("flushed") if start <= e["_at"]]
        during = [e for e in flushes if e["_at"] <= stop]
        after = [e for e in flushes if e["_at"] > stop]
        drained = next((e["_at"] - stop for e in after if e.get("pending") == 0), None)
        gaps = [b["_at"] - a["_at"] for a, b in itertools.pairwise(during)]
        return {
            "flushes_during_load": len(during),
            "max_pending": max((e.get("pending", 0) for e in during), default=0),
            "pending_at_last_flush": during[-1].get("pending", 0) if during else None,
            "pending_series": [e.get("pending", 0) for e in during][:60],
            "max_flush_gap_s": round(max(gaps), 2) if gaps else None,
            "writer_drained_s": round(drained, 2) if drained is not None else None,
            "reader_caught_up_s": caught,
            "goal_s": 2 * FLUSH_INTERVAL,
        }

    async def cost(self) -> dict[str, Any]:
        """Requests and capacity per 1,000 views, livecount vs the seed's scheme."""
        s = self.scale
        scenarios = {"hot": ["--articles", "1"],
                     "zipf10k": ["--articles", "10000", "--zipf", "1.1"]}
        out: dict[str, Any] = {}
        for name, mix in scenarios.items():
            prefix = self.prefix("cost")
            args = ["--connections", "50", "--duration", str(s.cost_s), "--rate",
                    str(s.cost_rate), *mix, "--referrer-ratio", "0.2", "--refreshed-ratio",
                    "0.2", "--seed", "1"]
            self.log(f"cost {name}: livecount through the counting proxy")
            async with served(self.proxy.url, prefix, self.work) as srv, \
                    Store.open(self.ddb, "us-east-1", prefix) as store:
                await asyncio.sleep(3)  # past start-up: tables, stream discovery
                idle0, t_idle = self.proxy.tally.copy(), time.monotonic()
                await asyncio.sleep(3)
                idle = self.proxy.tally - idle0
                idle_s = time.monotonic() - t_idle
                before, t0 = self.proxy.tally.copy(), time.monotonic()
                report, command = await loadtest(srv.ws, *args)
                caught = await wait_reader(store, report["acked"], report["stopped_at"])
                await asyncio.sleep(FLUSH_INTERVAL + 0.5)
                used = self.proxy.tally - before
                window = time.monotonic() - t0
            live = summarise(used, report["acked"])
            live["idle_requests_per_s"] = {
                f"{op} {t}": round(n / idle_s, 2) for (op, t), n in idle.requests.items()}
            live["window_s"] = round(window, 1)
            self.log(f"cost {name}: seed scheme replay")
            seed_prefix = self.prefix("seed")
            before = self.proxy.tally.copy()
            views = min(s.replay_views, max(report["acked"], 1))
            sent = await replay(self.proxy.url, seed_prefix, views,
                                articles=int(mix[1]), zipf=1.1 if len(mix) > 2 else 0.0,
                                referrer_ratio=0.2, refreshed_ratio=0.2, seed=1)
            seed_used = self.proxy.tally - before
            # table creation is not per view: leave it out
            for key in [k for k in seed_used.requests if k[0] in
                        ("CreateTable", "DescribeTable")]:
                del seed_used.requests[key]
            seed = summarise(seed_used, views)
            seed["replayed"] = sent
            out[name] = {"command": command, "serve": shown(srv.argv), "report": report,
                         "reader_caught_up_s": caught,
                         "livecount": live, "seed": seed,
                         "replay_command": (f"python -m bench.seed_replay --endpoint "
                                            f"http://127.0.0.1:DDB --views {views} "
                                            f"--articles {mix[1]} --referrer-ratio 0.2 "
                                            "--refreshed-ratio 0.2")}
            out[name]["dollars"] = dollars(live, seed, sent)
        return out

    async def fanout(self) -> dict[str, Any]:
        """One article, many subscribers: view → count on every subscriber."""
        s = self.scale
        prefix = self.prefix("fanout")
        args = ["--connections", "1", "--subscribers", str(s.fanout_subscribers),
                "--articles", "1", "--rate", str(s.fanout_rate), "--duration", str(s.fanout_s),
                "--open-concurrency", "500", "--push-wait", "5"]
        self.log(f"fan-out: {s.fanout_subscribers} subscribers")
        async with served(self.ddb, prefix, self.work) as srv:
            cpu0, t0 = cpu_s(srv.pid), time.monotonic()
            report, command = await loadtest(srv.ws, *args)
            report["server_cpu_pct"] = round(
                100 * (cpu_s(srv.pid) - cpu0) / (time.monotonic() - t0), 1)
            report["server_rss_kib"] = rss_kib(srv.pid)
            return {"command": command, "serve": shown(srv.argv), "report": report}

    async def memory(self) -> dict[str, Any]:
        """Server RSS per idle open socket."""
        s = self.scale
        _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        # each process needs its sockets plus a few dozen files of its own
        sockets = min(s.memory_sockets, hard - 200)
        prefix = self.prefix("memory")
        args = ["--connections", str(sockets), "--articles", "1", "--rate", "0.001",
                "--duration", str(s.memory_hold_s), "--open-concurrency", "500"]
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
            return {"command": command, "serve": shown(srv.argv), "requested": s.memory_sockets,
                    "sockets": opened, "fd_hard_limit": hard, "rss_before_kib": base,
                    "rss_peak_kib": peak,
                    "kib_per_socket": round((peak - base) / opened, 2) if opened else None,
                    "connect_failures": report["connect_failures"],
                    "connect_s": report["connect_s"]}

    async def profile(self) -> dict[str, Any]:
        """py-spy on the server under each ingest mix: where its CPU goes."""
        here = str(Path(sys.executable).parent)
        spy = shutil.which("py-spy") or shutil.which("py-spy", path=here)
        if spy is None:
            return {"skipped": "py-spy is not installed (pip install py-spy)"}
        out: dict[str, Any] = {}
        for name, mix in {"hot": ["--articles", "1"],
                          "zipf": ["--articles", "1000", "--zipf", "1.1"]}.items():
            out[name] = await self._profile_one(spy, name, mix)
        return out

    async def _profile_one(self, spy: str, name: str, mix: list[str]) -> dict[str, Any]:
        s = self.scale
        prefix = self.prefix("profile")
        raw = self.work / f"profile-{name}.txt"
        args = ["--connections", str(s.ingest_connections), "--duration", str(s.profile_s),
                *mix, "--seed", "1"]
        self.log(f"profile: py-spy on livecount serve under the {name} ingest load")
        async with served(self.ddb, prefix, self.work) as srv:
            spy_argv = [spy, "record", "--pid", str(srv.pid), "--rate", "200",
                        "--duration", str(int(s.profile_s) + 2), "--nonblocking",
                        "--format", "raw", "--output", str(raw)]
            recorder = await asyncio.create_subprocess_exec(
                *spy_argv, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL)
            try:
                report, command = await loadtest(srv.ws, *args)
                await asyncio.wait_for(recorder.wait(), 60)
            finally:
                await _reaped(recorder)
        if not raw.exists():
            return {"skipped": f"py-spy wrote nothing (exit {recorder.returncode}); "
                               "it needs ptrace permission"}
        top = collapsed_top(raw.read_text())
        spy_argv[0], spy_argv[3] = "py-spy", "PID"
        return {"command": command, "py_spy": shown(spy_argv).replace(str(self.work), "WORK"),
                "views_per_s": report["views_per_s"], **top, "raw_file": str(raw)}


# Frames that wrap everything (start-up, the loop runner, thread bootstrap): no information.
_PLUMBING = ("(<frozen runpy>)", "(server/__main__.py)", "(server/cli.py)", "(threading.py)",
             "(uvloop/__init__.py)", "_worker (concurrent/futures/thread.py)")


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
        names = [re.sub(r":\d+\)$", ")", f.strip()) for f in stack.split(";")
                 if not f.startswith(("process ", "thread "))]
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

    return {"samples": loop_total, "worker_samples": worker_total,
            "self": share(own, loop_total) if loop_total else [],
            "inclusive": share(incl, loop_total) if loop_total else [],
            "workers": [{"function": name, "samples": k} for name, k in workers.most_common(5)]}


def summarise(t: Tally, views: int) -> dict[str, Any]:
    per = 1000 / views if views else 0.0
    wcu, rcu = sum(t.wcu.values()), sum(t.rcu.values())
    dynamo_requests = sum(n for (op, _), n in t.requests.items()
                          if op not in ("GetRecords", "GetShardIterator", "DescribeStream",
                                        "ListStreams"))
    return {
        "views": views, "tally": t.to_json(),
        "wcu_per_1000": round(wcu * per, 2), "rcu_per_1000": round(rcu * per, 2),
        "requests_per_1000": round(dynamo_requests * per, 2),
        "getrecords_per_1000": round(t.ops("GetRecords") * per, 2),
        "stream_requests_per_1000": round(
            t.ops("GetRecords", "GetShardIterator", "DescribeStream", "ListStreams") * per, 2),
    }


def dollars(live: dict[str, Any], seed: dict[str, Any], sent: dict[str, Any]) -> dict[str, Any]:
    """US dollars per million views for each scheme, from the measured units and the model."""
    p = PRICES
    m = 1000.0  # the figures are per 1,000 views; x1000 is per million

    def dynamo(x: dict[str, Any], streams_billed: bool) -> float:
        cost: float = x["wcu_per_1000"] * m * p["wru_per_m"] / 1e6 + \
            x["rcu_per_1000"] * m * p["rru_per_m"] / 1e6
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
        cpu = next((ln.split(":", 1)[1].strip() for ln in
                    Path("/proc/cpuinfo").read_text().splitlines()
                    if ln.startswith("model name")), "")
    mem_kib = 0
    with suppress(OSError, StopIteration):
        mem_kib = int(next(ln.split()[1] for ln in Path("/proc/meminfo").read_text().splitlines()
                           if ln.startswith("MemTotal")))
    java = subprocess.run(["java", "-version"], capture_output=True, text=True, check=False)
    commit = os.environ.get("BENCH_COMMIT") or subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=False,
        cwd=ROOT).stdout.strip()
    dirty = "" if os.environ.get("BENCH_COMMIT") else subprocess.run(
        ["git", "status", "--porcelain", "--untracked-files=no"], capture_output=True, text=True,
        check=False, cwd=ROOT).stdout.strip()
    return {
        "cores": os.cpu_count(), "cpu": cpu, "memory_gib": round(mem_kib / 2**20, 1),
        "python": platform.python_version(), "kernel": platform.release(),
        "java": (java.stderr.splitlines() or [""])[0],
        "nofile_hard": resource.getrlimit(resource.RLIMIT_NOFILE)[1],
        "commit": commit + (" (with uncommitted changes)" if dirty else ""),
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
    }


def _notes(old: str) -> dict[str, str]:
    return {m.group(1): m.group(2).strip() for m in
            re.finditer(r"<!-- note:(\w+) -->\n(.*?)\n<!-- /note:\1 -->", old, re.S)}


def _note(notes: dict[str, str], name: str) -> list[str]:
    text = notes.get(name, "_No analysis written yet._")
    return [f"<!-- note:{name} -->", text, f"<!-- /note:{name} -->", ""]


def _ms(s: dict[str, Any] | None, key: str) -> str:
    if not s or s.get(key) is None:
        return "-"
    return f"{s[key]:.1f}"


def _verdict(ok: bool | None) -> str:
    return "**met**" if ok else "**not met**" if ok is not None else "not measured"


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
        f"{dynamodb_local.VERSION}); RLIMIT_NOFILE hard limit {m['nofile_hard']}.",
        f"- Code: commit {m['commit']}; run {m['date']}; scale `{results['scale']}`.",
        "- Everything (server, client, DynamoDB Local, proxy) shares the same 2 cores, so "
        "every figure is a lower bound for a server that has its cores to itself.",
        "",
    ]
    out += _note(notes, "summary")
    for name in [n for n in ("ingest", "cost", "fanout", "memory", "profile")
                 if isinstance(results.get(n), dict) and "error" in results[n]]:
        out += [f"**{name} failed in this run**: `{results.pop(name)['error']}`", ""]
    if "ingest" in results:
        ing = results["ingest"]
        out += ["## 1. Ingest ceiling", "",
                "Views/s through `livecount serve` (validated, counted, replied) against a bare "
                "`websockets` echo server (`bench/echo.py`, same library, loop and limits, one "
                "fixed small JSON reply per frame), driven by the same client the same way "
                "(closed loop: each socket sends its next view when the reply arrives). Best "
                "of the rounds. Goal: ratio >= 0.7.", "",
                "| mix | echo views/s | livecount views/s | ratio | goal | client CPU (echo / "
                "livecount) | server CPU | DynamoDB Local CPU | reply p50 / p99 ms | pushes to "
                "viewers /s |",
                "|---|---|---|---|---|---|---|---|---|---|"]
        for name, x in ing["mixes"].items():
            e = max(x["runs"]["echo"], key=lambda r: r["views_per_s"])
            lc = max(x["runs"]["livecount"], key=lambda r: r["views_per_s"])
            ratio = x["ratio"]
            out.append(
                f"| {name} | {x['echo_views_per_s']:,.0f} | {x['livecount_views_per_s']:,.0f} | "
                f"{ratio:.2f} | {_verdict(ratio is not None and ratio >= 0.7)} | "
                f"{e['client_cpu_pct']:.0f}% / {lc['client_cpu_pct']:.0f}% | "
                f"{lc['server_cpu_pct']:.0f}% | {lc['dynamodb_local_cpu_pct']:.0f}% | "
                f"{_ms(lc['reply_ms'], 'p50')} / {_ms(lc['reply_ms'], 'p99')} | "
                f"{lc['viewer_pushes'] / max(lc['duration_s'], 1e-9):,.0f} |")
        def rounds(runs: list[dict[str, Any]]) -> str:
            return ", ".join(f"{r['views_per_s']:,.0f}" for r in runs)

        out += ["", "All rounds (views/s): " + "; ".join(
            f"{name} echo {rounds(x['runs']['echo'])}, livecount {rounds(x['runs']['livecount'])}"
            for name, x in ing["mixes"].items()) + ".", "", "Commands:", "", "```sh"]
        for name, x in ing["mixes"].items():
            c = x["commands"]
            out += [f"# {name}", c["echo"], c["serve"], c["loadtest"]]
        out += ["```", ""]
        out += _note(notes, "ingest")
        out += ["## 5. Store ceiling", "",
                "Measured on the livecount runs of section 1 (flush interval "
                f"{FLUSH_INTERVAL:g} s): pending views from the server's `flushed` log lines "
                "during the load, then how long after the load stopped the reader table held "
                "every acknowledged view. Goal: pending bounded, reader caught up within 2 "
                "flush intervals.", "",
                "| mix | views/s | flushes during load | max pending | pending at the last "
                "flush | longest gap between flushes s | writer drained after s | reader "
                "caught up after s | goal |",
                "|---|---|---|---|---|---|---|---|---|"]
        for name, x in ing["mixes"].items():
            for r in x["runs"]["livecount"]:
                st = r["store"]
                ok = st["reader_caught_up_s"] <= st["goal_s"]
                none = not st["flushes_during_load"]  # no flush ended: pending unknown
                out.append(
                    f"| {name} | {r['views_per_s']:,.0f} | {st['flushes_during_load']} | "
                    f"{'-' if none else format(st['max_pending'], ',')} | "
                    f"{'-' if none else format(st['pending_at_last_flush'] or 0, ',')} | "
                    f"{st['max_flush_gap_s'] if st['max_flush_gap_s'] is not None else '-'} | "
                    f"{st['writer_drained_s'] if st['writer_drained_s'] is not None else '-'} | "
                    f"{st['reader_caught_up_s']} | {_verdict(ok)} |")
        out += ["", "Pending views at each flush of the last Zipf run: `"
                + ", ".join(f"{p:,}" for p in ing["mixes"]["zipf"]["runs"]["livecount"][-1]
                            ["store"]["pending_series"]) + "`", ""]
        out += _note(notes, "store")
    if "cost" in results:
        out += ["## 2. DynamoDB cost", "",
                "Requests and capacity units counted by a proxy on loopback between the "
                "client and DynamoDB Local (`bench/proxy.py`: it adds "
                "`ReturnConsumedCapacity: TOTAL` to each request and sums what comes back; a "
                "failed conditional write counts 1 WCU as on AWS). livecount: a real "
                "`livecount serve` under `livecount loadtest` at a fixed rate, from the first "
                "view until the reader table holds them all plus one flush interval. Seed: "
                "`bench/seed_replay.py` replays the same view mix (same generator and seed) as "
                "the seed did it: one `UpdateItem` per view on PostCountWriter, one write per "
                "view with an external referrer, one read of PostCountReader to answer, and a "
                "`PutItem` copy per stream record. 20% of views have an external referrer, 20% "
                "are refreshes.", "",
                "| scenario | scheme | views | WCU / 1k views | RCU / 1k views | DynamoDB "
                "requests / 1k views | stream requests / 1k views |",
                "|---|---|---|---|---|---|---|"]
        for name, x in results["cost"].items():
            for scheme in ("livecount", "seed"):
                y = x[scheme]
                out.append(f"| {name} | {scheme} | {y['views']:,} | {y['wcu_per_1000']:.1f} | "
                           f"{y['rcu_per_1000']:.1f} | {y['requests_per_1000']:.1f} | "
                           f"{y['stream_requests_per_1000']:.1f} |")
        out += ["", "Where livecount's requests went (whole window):", ""]
        for name, x in results["cost"].items():
            reqs = x["livecount"]["tally"]["requests"]
            out.append(f"- {name} ({x['report']['acked']:,} views at "
                       f"{x['report']['views_per_s']:,.0f}/s): "
                       + ", ".join(f"{k} {v:,}" for k, v in reqs.items()))
            idle = x["livecount"]["idle_requests_per_s"]
            out.append("  - idle, before the load (per second): "
                       + (", ".join(f"{k} {v}" for k, v in idle.items()) or "none"))
        out += ["", "### Dollars per million views", "",
                "Prices: US East on-demand list prices as given in issue 5 (DynamoDB $1.25 "
                "per million WRU, $0.25 per million RRU, Streams GetRecords $0.02 per 100,000; "
                "API Gateway WebSocket $1.00 per million messages and $0.25 per million "
                "connection-minutes; Lambda $0.20 per million requests and $0.0000166667 per "
                "GB-second; SNS $0.50 per million publishes; SQS $0.40 per million requests), "
                f"applied on {m['date'][:10]}; not re-checked against AWS from this machine "
                "(no network). Free tiers ignored.", "",
                "Seed model per view (assumptions, not measured): 2 API Gateway messages (the "
                "view in, the reply out; live pushes to other readers not counted), 1 "
                "connection-minute (a page open for a minute), Lambda invocations 1 (WebSocket "
                "handler) + 0.1 (SQS consumer, batches of 10) + stream batches of 100, each "
                "128 MB for 10 ms, 1 SNS publish, 1.2 SQS requests (SNS delivery, receive and "
                "delete in batches of 10); DynamoDB as measured, its stream read by a Lambda "
                "trigger (free). livecount: DynamoDB and its Streams GetRecords as measured; "
                "the machine it runs on is a fixed cost, not per view, and is not included.", "",
                "| scenario | livecount DynamoDB+Streams $/M views | seed DynamoDB $/M views | "
                "seed whole stack $/M views | seed breakdown |",
                "|---|---|---|---|---|"]
        for name, x in results["cost"].items():
            d = x["dollars"]
            parts = ", ".join(f"{k} {v:.3f}" for k, v in d["seed"].items())
            out.append(f"| {name} | {d['livecount_total']:.3f} | {d['seed_dynamodb_only']:.3f} | "
                       f"{d['seed_total']:.3f} | {parts} |")
        out += ["", "Commands:", "", "```sh"]
        for name, x in results["cost"].items():
            out += [f"# {name} (DDB: the counting proxy that bench.run starts in front of "
                    "DynamoDB Local)", x["serve"], x["command"], x["replay_command"]]
        out += ["```", ""]
        out += _note(notes, "cost")
    if "fanout" in results:
        f = results["fanout"]
        r = f["report"]
        p99 = r["push_ms"]["p99"]
        subs = r["subscribers"]
        out += ["## 3. Live fan-out", "",
                f"{subs:,} subscribers on one article on one node, views at "
                f"{r['target_rate']:g}/s; push latency is from a view sent to the moment a "
                "`count` including it has reached every subscriber (the last of them). Goal: "
                "p99 <= 250 ms.", "",
                "| subscribers | views | push p50 ms (every sub.) | push p99 ms (every sub.) | "
                "max ms | first-sub. p50 / p99 ms | missing | goal | client CPU | server CPU |",
                "|---|---|---|---|---|---|---|---|---|---|",
                f"| {r['opened'] - r['connections']:,} | {r['acked']:,} | "
                f"{_ms(r['push_ms'], 'p50')} | {_ms(r['push_ms'], 'p99')} | "
                f"{_ms(r['push_ms'], 'max')} | {_ms(r['push_first_ms'], 'p50')} / "
                f"{_ms(r['push_first_ms'], 'p99')} | {r['push_missing']} | "
                f"{_verdict(p99 is not None and p99 <= 250 and subs >= 10_000)} | "
                f"{r['client_cpu_pct']:.0f}% | {r['server_cpu_pct']:.0f}% |",
                "", "```sh", f["serve"], f["command"], "```", ""]
        out += _note(notes, "fanout")
    if "memory" in results:
        mm = results["memory"]
        per = mm["kib_per_socket"]
        out += ["## 4. Connection memory", "",
                "Server RSS (VmRSS from /proc) before and with every socket open and idle; "
                "the harness raises RLIMIT_NOFILE to the hard limit in both processes. Goal: "
                "<= 50 KiB per socket at 20,000 sockets.", "",
                "| sockets open | RSS before KiB | RSS peak KiB | KiB per socket | goal |",
                "|---|---|---|---|---|",
                f"| {mm['sockets']:,} (of {mm['requested']:,} asked; hard fd limit "
                f"{mm['fd_hard_limit']:,}) | {mm['rss_before_kib']:,} | {mm['rss_peak_kib']:,} | "
                f"{per} | {_verdict(per is not None and per <= 50)} "
                f"{'(at fewer sockets than asked)' if mm['sockets'] < mm['requested'] else ''}|",
                "", "```sh", mm["serve"], mm["command"], "```", ""]
        out += _note(notes, "memory")
    if "profile" in results:
        out += ["## Profile", ""]
        profiles = results["profile"]
        if "skipped" in profiles:
            out += [f"Skipped: {profiles['skipped']}.", ""]
        for name, pr in profiles.items() if "skipped" not in profiles else []:
            if "skipped" in pr:
                out += [f"{name}: skipped: {pr['skipped']}.", ""]
                continue
            out += [f"### {name} mix", "",
                    f"py-spy on `livecount serve` under the {name} ingest load "
                    f"({pr['views_per_s']:,.0f} views/s while sampled). Shares are of the "
                    f"event-loop thread's {pr['samples']:,} busy samples. Self: the function "
                    "was on top of the stack; inclusive: anywhere on it (a coroutine's stack "
                    "starts at the coroutine). `Runner.run` self is time in uvloop's C code "
                    "(socket I/O, callback dispatch).", "",
                    "```sh", pr["command"], pr["py_spy"], "```", "",
                    "| self | share | | inclusive | share |", "|---|---|---|---|---|"]
            for a, b in zip(pr["self"], pr["inclusive"], strict=False):
                out.append(f"| `{a['function']}` | {a['share']}% | | `{b['function']}` | "
                           f"{b['share']}% |")
            if pr.get("workers"):
                out += ["", f"Worker threads ({pr['worker_samples']:,} samples, mostly "
                        "blocked, not CPU): " + ", ".join(
                            f"`{w['function']}` {w['samples']:,}" for w in pr["workers"])]
            out.append("")
        out += _note(notes, "profile")
    return "\n".join(out).rstrip() + "\n"


async def run(scale: Scale, only: set[str], work: Path) -> dict[str, Any]:
    results: dict[str, Any] = {"machine": machine(),
                               "scale": "quick" if scale == QUICK else "full"}
    async with dynamodb_local.running(work / "ddb") as ddb:
        proxy = CountingProxy(ddb)
        await proxy.start()
        try:
            bench = Bench(ddb, proxy, scale, work)
            for name in ("ingest", "cost", "fanout", "memory", "profile"):
                if name in only:
                    t0 = time.monotonic()
                    try:
                        results[name] = await getattr(bench, name)()
                    except Exception as exc:  # one broken measurement must not lose the rest
                        results[name] = {"error": f"{type(exc).__name__}: {exc}"}
                    bench.log(f"{name} done in {time.monotonic() - t0:.0f} s")
                    (work / "results.partial.json").write_text(
                        json.dumps(results, indent=1, default=str))
        finally:
            await proxy.stop()
    return results


def main() -> None:
    p = argparse.ArgumentParser(description="Run the benchmark suite into docs/BENCHMARKS.md.")
    p.add_argument("--quick", action="store_true",
                   help="tiny loads: checks the harness only, so by default it writes into "
                        "the work dir, never over docs/BENCHMARKS.md or bench/results.json")
    p.add_argument("--only", default="ingest,cost,fanout,memory,profile",
                   help="comma-separated subset")
    p.add_argument("--out", type=Path, default=None, help=f"default: {DOC.relative_to(ROOT)}")
    p.add_argument("--results", type=Path, default=None,
                   help=f"default: {RESULTS.relative_to(ROOT)}")
    p.add_argument("--render-only", action="store_true",
                   help="rewrite the document from --results without measuring")
    p.add_argument("--work-dir", type=Path, default=None,
                   help="where DynamoDB Local and the profile go (default: a temp dir)")
    args = p.parse_args()
    if args.render_only:
        out, results_file = args.out or DOC, args.results or RESULTS
        old = out.read_text() if out.exists() else ""
        out.write_text(render(json.loads(results_file.read_text()), _notes(old)))
        return
    only = {x.strip() for x in args.only.split(",") if x.strip()}
    work = args.work_dir or Path(tempfile.mkdtemp(prefix="livecount-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    # Quick figures are not figures: they must not replace the published ones.
    out = args.out or (work / DOC.name if args.quick else DOC)
    results_file = args.results or (work / RESULTS.name if args.quick else RESULTS)
    results = uvloop.run(run(QUICK if args.quick else Scale(), only, work))
    previous: dict[str, Any] = {}
    if results_file.exists() and only != set(p.get_default("only").split(",")):
        previous = json.loads(results_file.read_text())  # a partial run keeps the rest
    merged = {**previous, **results}
    results_file.write_text(json.dumps(merged, indent=1, default=str) + "\n")
    old = out.read_text() if out.exists() else ""
    out.write_text(render(merged, _notes(old)))
    print(f"wrote {out} and {results_file} (work dir {work})", file=sys.stderr)


if __name__ == "__main__":
    main()
