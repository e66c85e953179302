"""Test helpers: a real `livecount serve` subprocess, a command run in-process, and polling
with a deadline."""

from __future__ import annotations

import asyncio
import contextlib
import io
import itertools
import json
import logging
import os
import shlex
import signal
import socket
import sys
import threading
import time
import traceback
import urllib.error
import urllib.request
from collections.abc import Awaitable, Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, Self, TypeVar

from livecount.core.ledger import Delta, Flush, Row, Write
from livecount.core.pages import Target

T = TypeVar("T")
Launch = Callable[..., Awaitable["Served"]]
ROOT = Path(__file__).resolve().parent.parent
# A whole log line, tracebacks included, must fit: a reader that stops reading would
# leave the child blocked on a full pipe.
LINE_LIMIT = 16 * 2**20


_sequence = itertools.count(1)


def sigint_as_at_a_shell() -> None:
    """`preexec_fn` of a child the test will Ctrl-C: SIGINT as a shell leaves it (the
    default action, unblocked), whatever the test worker's own state. A child started
    with SIGINT ignored never raises KeyboardInterrupt: four Ctrl-C tests once saw their
    command run to the end, exit 0, all on one xdist worker."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})


def flush_of(
    targets: Mapping[Target, Delta] | None = None, rows: Mapping[Row, Delta] | None = None
) -> Flush:
    """A flush as the ledger would take it, each write with a fresh sequence number."""
    seq = next(_sequence)
    return Flush(
        seq,
        {t: Write(seq, d) for t, d in (targets or {}).items()},
        {r: Write(seq, d) for r, d in (rows or {}).items()},
    )


_one_command = threading.Lock()  # a command swaps sys.stdout and the log handler


async def command(*args: str, timeout: float = 120) -> tuple[int, str, str]:
    """`livecount ARGS` run by the CLI's `main` in a thread of this process: its exit
    code, stdout and stderr, as `python -m livecount` (`sys.exit(main())`) gives them.

    For tests of what a command does: as a subprocess each paid the AWS SDK's imports,
    1.7 s on a quiet machine and 5 s on a busy one. A test of the process itself (a
    signal, its memory) starts one. Commands run one at a time, each with the logging
    it sets up itself, and what the test process had is put back after."""

    def run() -> tuple[int, str, str]:
        from livecount import cli, logs

        out, err = io.StringIO(), io.StringIO()
        root, ours, sockets = (logging.getLogger(n) for n in ("", "livecount", "websockets"))
        with _one_command:
            saved = (root.handlers[:], root.level, ours.level, sockets.level)
            state = (logs._human, logs._human_level, logs._limited)
            logs._limited = logs.Limited()  # a fresh process has held nothing back yet
            try:
                with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
                    try:
                        code: int | str | None = cli.main(list(args))
                    except SystemExit as exc:  # argparse's usage errors, --help
                        code = exc.code
                    except Exception:  # what the interpreter does with an uncaught one
                        traceback.print_exc()
                        code = 1
                    if isinstance(code, str):
                        print(code, file=sys.stderr)
                        code = 1
            finally:
                root.handlers[:], *levels = saved
                for logger, level in zip((root, ours, sockets), levels, strict=True):
                    logger.setLevel(level)
                logs._human, logs._human_level, logs._limited = state
        return code or 0, out.getvalue(), err.getvalue()

    return await asyncio.wait_for(asyncio.to_thread(run), timeout)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def view_answered(ws: Any, message: dict[str, Any]) -> dict[str, Any]:
    """One `views` message, and its answer (pushes for earlier views read past). An
    answer of `unavailable` or `busy` counted nothing and says retry (a first count's
    read past its 3 s on a loaded machine): the view is sent again, for up to 30 s."""
    async with asyncio.timeout(30):
        while True:
            await ws.send(json.dumps(message))
            while (answer := json.loads(await ws.recv()))["message"] == "count":
                pass
            if answer.get("error") not in ("unavailable", "busy"):
                break
    assert answer["message"] == "views", answer
    return dict(answer)


async def eventually(
    probe: Callable[[], Awaitable[T]],
    check: Callable[[T], bool],
    timeout: float = 20.0,
    interval: float = 0.05,
) -> T:
    """Poll `probe` until `check` accepts its value; fail with the last value seen."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        value = await probe()
        if check(value):
            return value
        if loop.time() > deadline:
            raise AssertionError(f"condition not met within {timeout}s; last value: {value!r}")
        await asyncio.sleep(interval)


class Child:
    """A child process that logs JSON lines and logs `listening` with its port once it serves.

    The one process helper of the tests and the bench (`bench/run.py` imports it): both
    start `livecount serve` (the bench also its echo server), read its logs and stop it
    with SIGTERM. It lives with the tests rather than in bench/ because the tests are its
    first user and must run without the benchmark harness; the bench is one more harness
    over the same processes. Each log entry also gets `_at`, the wall time it was read,
    which the bench times flushes by.
    """

    def __init__(
        self,
        argv: Sequence[str],
        env: Mapping[str, str] | None = None,
        preexec_fn: Callable[[], None] | None = None,
        name: str = "",
        cwd: Path = ROOT,
    ) -> None:
        self.argv = list(argv)
        self.name = name or shlex.join(self.argv[:3])
        self.cwd = cwd
        self.env = {**os.environ, **(env or {})}
        self.preexec_fn = preexec_fn
        self.logs: list[dict[str, Any]] = []
        self.output: list[str] = []
        self.proc: asyncio.subprocess.Process | None = None
        self.port = 0
        self._reader: asyncio.Task[None] | None = None

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    @property
    def ws(self) -> str:
        return f"ws://127.0.0.1:{self.port}/ws"

    @property
    def http(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self, timeout: float = 90.0) -> Self:
        """Spawn and wait until it listens; kill it if it does not."""
        listening = await self.spawn()
        try:
            self.port = await asyncio.wait_for(listening, timeout)
        except BaseException:
            await self.kill()
            raise
        return self

    async def spawn(self) -> asyncio.Future[int]:
        """Spawn without waiting; the future resolves to the port once it listens."""
        self.logs.clear()
        self.proc = await asyncio.create_subprocess_exec(
            *self.argv,
            cwd=self.cwd,
            env=self.env,
            preexec_fn=self.preexec_fn,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
            limit=LINE_LIMIT,
        )
        listening: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self._reader = asyncio.create_task(self._read(listening))
        return listening

    async def _read(self, listening: asyncio.Future[int]) -> None:
        """Collect the output until it closes; `stop` and `kill` raise what broke this."""
        assert self.proc is not None and self.proc.stdout is not None
        try:
            async for raw in self.proc.stdout:
                line = raw.decode(errors="replace").rstrip()
                self.output.append(line)
                try:
                    entry = json.loads(line)
                except ValueError:
                    continue
                if not isinstance(entry, dict):
                    continue
                entry["_at"] = time.time()
                self.logs.append(entry)
                if entry.get("event") == "listening" and not listening.done():
                    listening.set_result(int(entry["port"]))
        finally:
            if not listening.done():
                listening.set_exception(
                    RuntimeError(
                        f"{self.name} exited before listening:\n" + "\n".join(self.output[-30:])
                    )
                )

    def events(self, name: str) -> list[dict[str, Any]]:
        return [e for e in self.logs if e.get("event") == name]

    async def stop(self, sig: int = signal.SIGTERM, timeout: float = 60.0) -> int:
        """Signal it and return its exit code; one that outlives `timeout` is killed."""
        assert self.proc is not None
        if self.proc.returncode is None:
            self.proc.send_signal(sig)
        try:
            code = await asyncio.wait_for(self.proc.wait(), timeout)
        except TimeoutError:
            await self.kill()
            raise TimeoutError(
                f"{self.name} was still running {timeout} s after signal {sig}; killed it"
            ) from None
        await self._drained()
        return code

    async def kill(self) -> None:
        if self.proc is not None and self.proc.returncode is None:
            self.proc.kill()
            await self.proc.wait()
        await self._drained()

    async def _drained(self) -> None:
        """Wait for the reader to read the last line, and raise what broke it, if anything."""
        if self.proc is not None and self.proc.returncode is not None and self._reader is not None:
            await self._reader


class Served(Child):
    """`python -m livecount serve` on a free loopback port, its JSON logs collected."""

    def __init__(
        self,
        *args: str,
        env: Mapping[str, str] | None = None,
        preexec_fn: Callable[[], None] | None = None,
    ) -> None:
        super().__init__(
            [
                sys.executable,
                "-m",
                "livecount",
                "serve",
                "--host",
                "127.0.0.1",
                "--port",
                "0",
                *args,
            ],
            env=env,
            preexec_fn=preexec_fn,
            name="livecount serve",
        )


def http_get(url: str, headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], bytes]:
    """A blocking GET that returns error statuses instead of raising them."""
    request = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=10) as answer:
            return answer.status, dict(answer.headers), answer.read()
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), exc.read()


def login_url(served: Child) -> str:
    """The login URL `livecount serve` printed on stderr when it started."""
    prefix = "livecount: log in to the dashboard at "
    found = [line.split(prefix, 1)[1] for line in served.output if prefix in line]
    assert len(found) == 1, f"expected one login URL, found {found}"
    return found[0].strip()
