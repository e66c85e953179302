"""`livecount serve --workers N`: N nodes on one port, one process each, supervised.

The kernel spreads a port's connections over the sockets bound to it with SO_REUSEPORT
that listen. The parent binds one such socket per worker and hands it down; the
worker (`python -m livecount.node.workers`) is a whole node, with its own journal in
`DATA_DIR/worker-<i>` and node id `<base>-w<i>`, listening on it. The shard leases and
the live feed make the workers one cluster, as they do nodes on many hosts.

The parent starts the embedded DynamoDB Local once, for all; relays the workers' logs
as whole lines (on a terminal, as its own short lines); logs `listening` once, when
every worker serves, and shows the one banner (`node/banner.py`); restarts a worker
that dies, and gives up on one that keeps dying at once; forwards SIGTERM and SIGINT
so that every worker drains as a lone node does. Parent and worker talk over a socket
pair: the parent sends the job, the worker says when it serves, and a worker that sees
the parent's end close drains and stops (nobody would forward a signal any more).
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
import pickle
import signal
import socket
import sys
import time
from contextlib import ExitStack, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import msgspec
import uvloop
from livecount import logs
from livecount.aws import local
from livecount.config import Config
from livecount.core import journal as records
from livecount.core.errors import StoreRefused
from livecount.core.ledger import Ledger
from livecount.logs import error, log, warn, warn_limited
from livecount.node import claims, lifecycle
from livecount.node.auth import login_url, read_token, token_path
from livecount.node.banner import Banner
from livecount.node.journal import Journal, JournalBusy
from livecount.waits import backoff, pause

MODULE = "livecount.node.workers"
QUICK_DEATHS = 5  # deaths in a row, each before serving or soon after: then give up
STEADY = 30.0  # seconds of serving after which a death no longer counts as "at once"
RESTART_FIRST, RESTART_MOST = 0.25, 10.0  # restart backoff, doubling per quick death
STOP_TIMEOUT = 90.0  # a worker still draining by then is killed; its journal keeps its views
REFUSED = 2  # `livecount`'s exit code for a setup the user must fix
LINE_LIMIT = 16 * 2**20  # a worker's log line, traceback and all
READY = b"ready\n"


@dataclass(frozen=True)
class WorkerJob:
    """What a worker is told: its node's config, and the store endpoint to use (the
    parent's DynamoDB Local when embedded; the journal stays bound to `embedded`)."""

    config: Config
    endpoint: str


def job(config: Config, index: int, endpoint: str, port: int) -> WorkerJob:
    return WorkerJob(
        dataclasses.replace(
            config,
            data_dir=config.data_dir / f"worker-{index}",
            node_id=f"{config.node_id}-w{index}",
            port=port,
            workers=1,
        ),
        endpoint,
    )


# -- journals a worker count would leave behind ----------------------------------------------
def journals(data_dir: Path, count: int) -> list[Path]:
    """The journals `count` workers replay (one: the lone node's own)."""
    if count == 1:
        return [data_dir / "journal"]
    return [data_dir / f"worker-{i}" / "journal" for i in range(count)]


def stray_journals(data_dir: Path, count: int) -> list[Path]:
    """Journals in `data_dir` that `count` workers would not replay and that hold views
    not yet stored."""
    found = [
        data_dir / "journal",
        *(
            folder / "journal"
            for _, folder in sorted(
                (int(f.name[7:]), f) for f in data_dir.glob("worker-*") if f.name[7:].isdigit()
            )
        ),
    ]
    used = set(journals(data_dir, count))
    return [j for j in found if j not in used and j.is_dir() and _unstored(j)]


def _unstored(directory: Path) -> bool:
    ledger = Ledger()
    records.replay(Journal(directory).read(), ledger)
    return not ledger.idle


def refuse_strays(config: Config) -> None:
    """Views in a journal this run would not replay would wait forever: refuse to start
    until a run with the worker count that replays them has stored them."""
    strays = stray_journals(config.data_dir, config.workers)
    if not strays:
        return
    counts = sorted(
        {1 if j.parent == config.data_dir else int(j.parent.name[7:]) + 1 for j in strays}
    )
    raise JournalBusy(
        f"{', '.join(map(str, strays))} {'hold' if len(strays) > 1 else 'holds'} views "
        f"not yet stored, which --workers "
        f"{config.workers} would not replay: start once with "
        f"{' then once with '.join(f'--workers {n}' for n in counts)} to store them"
    )


# -- the parent ------------------------------------------------------------------------------
def serve(config: Config) -> int:
    """Run `config.workers` workers on one port until SIGTERM or SIGINT; the exit code:
    0 once every worker drained, 1 if one did not (or kept dying), 2 for a bad setup."""
    # The port, then the data dir, before anything starts (`node/claims.py`): the
    # parent holds the port with a socket that never listens, and the data dir's own
    # journal lock, which no worker uses.
    try:
        anchor = claims.claim(config.host, config.port)
        held = claims.hold(config.data_dir)
    except (claims.PortBusy, JournalBusy) as exc:
        print(f"livecount: {exc}", file=sys.stderr)
        return REFUSED
    refuse_strays(config)
    lifecycle.admin_guard(config)  # the token file, made once here, before any worker
    with anchor:
        supervisor = Supervisor(config, anchor.getsockname()[1])
        code = uvloop.run(supervisor.main())
    held.unlock()
    if supervisor.reason:
        print(f"livecount: {supervisor.reason}", file=sys.stderr)
    return code


class Worker:
    """One worker slot: its node, its current process, and how it has been dying."""

    def __init__(self, job: WorkerJob) -> None:
        self.job = job
        self.node = job.config.node_id
        self.proc: asyncio.subprocess.Process | None = None
        self.serving = False  # this process said it serves
        self.since = 0.0  # when it began to
        self.served = asyncio.Event()  # some process of this slot has served
        self.signalled = 0  # the stop signal this process got before it served
        self.quick_deaths = 0
        self.delays = backoff(RESTART_FIRST, RESTART_MOST)
        self.clean = False  # its last process stopped as asked

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.returncode is None


class Supervisor:
    def __init__(self, config: Config, port: int) -> None:
        self.config = config
        self.port = port
        self.stopping = asyncio.Event()
        self.signal: int = signal.SIGTERM
        self.workers: list[Worker] = []
        self.reason = ""  # why it gave up, if it did
        self.code = 0
        self.shown = Banner(config)

    async def main(self) -> int:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, self.stop, sig)
        if self.config.dynamodb_endpoint == "embedded":
            self.shown.step("dynamodb_local")
        with ExitStack() as recorded:
            async with local.endpoint_for(
                self.config.dynamodb_endpoint, self.config.data_dir
            ) as endpoint:
                lifecycle.record(self.config, endpoint, recorded)
                code = await self.run(endpoint) if not self.stopping.is_set() else 0
        log("stopped", workers=self.config.workers, code=code)
        self.shown.stopped(code == 0)
        return code

    async def run(self, endpoint: str) -> int:
        self.workers = [
            Worker(job(self.config, i, endpoint, self.port)) for i in range(self.config.workers)
        ]
        self.shown.step("workers")
        keepers = [asyncio.create_task(self._keep(w)) for w in self.workers]
        announce = asyncio.create_task(self._announce(endpoint))
        await self.stopping.wait()
        announce.cancel()
        _, running = await asyncio.wait(keepers, timeout=STOP_TIMEOUT)
        for w in self.workers:
            if running and w.alive:
                warn(
                    "worker_killed",
                    worker=w.node,
                    pid=w.proc.pid if w.proc else 0,
                    after=STOP_TIMEOUT,
                )
                self._send(w, signal.SIGKILL)
        if running:
            await asyncio.wait(running)
        if self.reason:
            return self.code
        return 0 if all(w.clean for w in self.workers) else 1

    def stop(self, sig: int = signal.SIGTERM) -> None:
        """SIGTERM or SIGINT: every worker gets it, and drains."""
        if not self.stopping.is_set():
            log("stopping", signal=signal.Signals(sig).name)
            self.shown.stopping()
        self._halt(sig)

    def give_up(self, code: int, reason: str) -> None:
        error("workers_giving_up", reason=reason, code=code)
        if not self.reason:
            self.reason, self.code = reason, code
        self._halt(signal.SIGTERM)

    def _halt(self, sig: int) -> None:
        if not self.stopping.is_set():
            self.signal = sig
            self.stopping.set()
        for w in self.workers:
            self._send(w, sig)

    @staticmethod
    def _send(w: Worker, sig: int) -> None:
        if w.proc is not None and w.alive:
            if not w.serving and sig != signal.SIGKILL:
                w.signalled = sig
            with suppress(ProcessLookupError):
                w.proc.send_signal(sig)

    async def _announce(self, endpoint: str) -> None:
        """The port's one `listening`, once every worker serves (tests wait for it), and
        where to go: the login URL in the banner for a person, else on stderr."""
        await asyncio.gather(*(w.served.wait() for w in self.workers))
        host, token = self.config.host, read_token(token_path(self.config))
        if not self.shown.human:
            lifecycle.announce(token, host, self.port)
        log(
            "listening",
            host=host,
            port=self.port,
            url=f"ws://{host}:{self.port}/ws",
            workers=len(self.workers),
        )
        login = {"Log in": login_url(host, self.port, token)}
        self.shown.ready(
            self.port,
            endpoint,
            workers=len(self.workers),
            extra=login if self.shown.human else None,
        )

    async def _keep(self, w: Worker) -> None:
        """Run the slot's worker until stopped, restarting it when it dies."""
        try:
            while not self.stopping.is_set():
                code = await self._run(w)
                if self.stopping.is_set():
                    # Stopped before it served (no signal handler yet): nothing to drain.
                    w.clean = code == 0 or (w.signalled != 0 and code == -w.signalled)
                    return
                if not w.serving or time.monotonic() - w.since < STEADY:
                    w.quick_deaths += 1
                else:  # it served a while: a fresh start, not a crash loop
                    w.quick_deaths, w.delays = 0, backoff(RESTART_FIRST, RESTART_MOST)
                warn(
                    "worker_exited",
                    worker=w.node,
                    pid=w.proc.pid if w.proc else 0,
                    code=code,
                    served=w.serving,
                )
                if code == REFUSED and not w.serving:
                    self.give_up(
                        REFUSED, f"worker {w.node} refused to start: see its message above"
                    )
                    return
                if w.quick_deaths >= QUICK_DEATHS:
                    self.give_up(
                        1,
                        f"worker {w.node} died {w.quick_deaths} times in a "
                        f"row, each at once (last exit code {code})",
                    )
                    return
                delay = next(w.delays)
                log("worker_restarting", worker=w.node, delay=delay)
                if await pause(self.stopping, delay):
                    return
        except Exception as exc:  # a bug here: stop everything rather than run unwatched
            error("worker_supervision_failed", exc, worker=w.node)
            self.give_up(1, f"supervising worker {w.node} failed: {exc}")

    async def _run(self, w: Worker) -> int:
        """One process of the slot, from spawn to exit; its exit code."""
        w.serving, w.signalled = False, 0
        listener = claims.bind(self.config.host, self.port)
        ours, theirs = socket.socketpair()
        try:
            fds = (listener.fileno(), theirs.fileno())
            w.proc = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                MODULE,
                *map(str, fds),
                pass_fds=fds,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
                start_new_session=True,
                limit=LINE_LIMIT,
            )
        except BaseException:
            ours.close()
            raise
        finally:
            listener.close()  # the worker's now: it leaves the port when the worker dies
            theirs.close()
        proc = w.proc
        if self.stopping.is_set():
            self._send(w, self.signal)
        log("worker_started", worker=w.node, pid=proc.pid)
        reader, writer = await asyncio.open_connection(sock=ours)
        try:
            payload = pickle.dumps(w.job)
            writer.write(len(payload).to_bytes(4, "big") + payload)
            assert proc.stdout is not None and proc.stderr is not None
            output = asyncio.gather(
                _relay(proc.stdout, sys.stdout.buffer), _relay(proc.stderr, sys.stderr.buffer)
            )
            watch = asyncio.create_task(self._watch(w, reader))
            code = await proc.wait()
            await output
            watch.cancel()
            return code
        finally:
            writer.close()

    @staticmethod
    async def _watch(w: Worker, reader: asyncio.StreamReader) -> None:
        if await reader.readline() == READY:
            w.serving, w.since = True, time.monotonic()
            w.served.set()
            log("worker_ready", worker=w.node, pid=w.proc.pid if w.proc else 0)


async def _relay(source: asyncio.StreamReader, sink: BinaryIO) -> None:
    """Copy a worker's output line by line, so two workers' lines never mix. Its own
    `listening` becomes `worker_listening`: the port's one `listening` is the parent's.
    For a person, its JSON lines are shown as the parent's own (`logs.relayed`)."""
    while True:
        try:
            line = await source.readline()
        except ValueError:  # longer than LINE_LIMIT: dropped, not cut into pieces
            warn_limited("worker_line_too_long")
            continue
        if not line:
            return
        if b'"event":"listening"' in line:
            line = _renamed(line, "worker_listening")
        shown = logs.relayed(line)
        if shown is None:  # below what a person is shown
            continue
        with suppress(OSError):  # nobody reads our output any more: keep draining theirs
            sink.write(shown if shown.endswith(b"\n") else shown + b"\n")
            sink.flush()


def _renamed(line: bytes, event: str) -> bytes:
    try:
        entry = msgspec.json.decode(line)
    except msgspec.DecodeError:
        return line
    if not isinstance(entry, dict):
        return line
    entry["event"] = event
    return msgspec.json.encode(entry) + b"\n"


# -- the worker ------------------------------------------------------------------------------
def work(listener_fd: int, control_fd: int) -> int:
    """A worker process: its job comes over `control_fd`, it serves on `listener_fd`;
    exit codes as `livecount serve`'s."""
    listener = socket.socket(fileno=listener_fd)
    control = socket.socket(fileno=control_fd)
    try:
        uvloop.run(_work(listener, control))
    except (local.EmbeddedError, JournalBusy, StoreRefused) as exc:
        print(f"livecount: {exc}", file=sys.stderr)
        return REFUSED
    except KeyboardInterrupt:
        return 130
    return 0


async def _work(listener: socket.socket, control: socket.socket) -> None:
    reader, writer = await asyncio.open_connection(sock=control)
    size = int.from_bytes(await reader.readexactly(4), "big")
    given: WorkerJob = pickle.loads(await reader.readexactly(size))  # from our own parent
    logs.setup(given.config.log_level, given.config.node_id, "json")  # its parent relays
    ready = asyncio.Event()
    helpers = [asyncio.create_task(_tell(ready, writer)), asyncio.create_task(_orphaned(reader))]
    try:
        await lifecycle.run(given.config, ready, sock=listener, endpoint=given.endpoint)
    finally:
        for helper in helpers:
            helper.cancel()


async def _tell(ready: asyncio.Event, writer: asyncio.StreamWriter) -> None:
    await ready.wait()
    writer.write(READY)
    await writer.drain()


async def _orphaned(reader: asyncio.StreamReader) -> None:
    """The parent's end closed: it is gone, and no signal will come; stop as if told."""
    await reader.read()
    warn("supervisor_gone")
    os.kill(os.getpid(), signal.SIGTERM)


if __name__ == "__main__":
    sys.exit(work(int(sys.argv[1]), int(sys.argv[2])))
