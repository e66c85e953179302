"""`serve --workers N`: one port, N nodes that count as one, supervised by the parent."""

from __future__ import annotations

import asyncio
import fcntl
import json
import os
import signal
import subprocess
import sys
from functools import partial
from pathlib import Path
from typing import Any

from livecount.aws.store import Store
from livecount.core.journal import view_record
from livecount.core.pages import Target
from websockets.asyncio.client import connect

from tests.e2e.test_serve import OnTerminal
from tests.support import ROOT, Launch, Served, eventually

SOCKETS = 32  # on two workers, the chance that all land on one is 2**-31


async def view(url: str, article: str, sockets: int = SOCKETS, each: int = 5) -> int:
    """`each` views on each of `sockets` new sockets; returns how many were replied to."""

    async def one() -> int:
        async with connect(url) as ws:
            for _ in range(each):
                await ws.send(json.dumps({"message": "views", "articleId": article}))
                while True:
                    reply = json.loads(await asyncio.wait_for(ws.recv(), 20))
                    if reply["message"] != "count":  # a push for an earlier view
                        assert reply["message"] == "views", reply
                        break
        return each

    return sum(await asyncio.gather(*(one() for _ in range(sockets))))


async def item(store: Store, article: str) -> dict[str, Any]:
    """The writer table's item of `article`, its numbers as ints ({} if none)."""
    items = (await store.ddb.scan(TableName=store.tables.writer, ConsistentRead=True))["Items"]
    found: dict[str, Any] = next((i for i in items if i["articleId"]["S"] == article), {})
    return {k: int(v["N"]) if "N" in v else v.get("S") for k, v in found.items()}


def pid_of(served: Served, worker: str) -> int:
    """The pid of `worker`'s current process."""
    return int([e for e in served.events("worker_ready") if e["worker"] == worker][-1]["pid"])


def gone(pid: int) -> bool:
    """No such process (the parent reaps its workers before it exits)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


async def unlocked(journal: Path) -> bool:
    """Nobody holds this journal: its worker has exited."""
    with (journal / "lock").open("a") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        fcntl.flock(lock, fcntl.LOCK_UN)
        return True


async def test_two_workers_count_as_one_survive_a_kill_and_drain_on_sigterm(
    launch: Launch, local_store: Store, tmp_path: Path
):
    # No flush before SIGTERM but the restarted worker's recovery: what a worker counted
    # reaches the table only through its journal's replay or its drain.
    served = await launch("--workers", "2", "--node-id", "base", "--flush-interval", "60")
    ready = served.events("worker_ready")
    assert sorted(e["worker"] for e in ready) == ["base-w0", "base-w1"]
    (listening,) = served.events("listening")
    assert listening["node"] == "base" and listening["workers"] == 2
    assert served.logs.index(listening) > max(map(served.logs.index, ready))
    assert {e["node"] for e in served.events("worker_listening")} == {"base-w0", "base-w1"}

    replied = await view(served.ws, "hot")
    assert replied == SOCKETS * 5
    assert await item(local_store, "hot") == {}  # nothing flushed yet

    # A worker killed with views only in its journal is restarted and replays them.
    killed = pid_of(served, "base-w0")
    os.kill(killed, signal.SIGKILL)
    await eventually(
        lambda: _async(served),
        lambda s: any(
            e["worker"] == "base-w0" and e["pid"] != killed for e in s.events("worker_ready")
        ),
        timeout=30,
    )
    (exited,) = served.events("worker_exited")
    assert (exited["worker"], exited["pid"], exited["code"]) == ("base-w0", killed, -signal.SIGKILL)
    (replayed,) = [e for e in served.events("journal_replayed") if e["node"] == "base-w0"]
    stored = await eventually(
        lambda: item(local_store, "hot"), lambda i: i.get("totalViews") == replayed["views"]
    )
    assert 0 < replayed["views"] < replied and "flush:base-w1" not in stored
    replied += await view(served.ws, "hot", sockets=8, each=1)  # the port serves on

    # SIGTERM: every worker drains, the parent exits 0; each view counted once.
    assert await served.stop() == 0
    assert {e["node"] for e in served.events("stopped")} == {"base", "base-w0", "base-w1"}
    assert [e["code"] for e in served.events("stopped") if e["node"] == "base"] == [0]
    assert len(served.events("listening")) == 1
    stored = await item(local_store, "hot")
    assert stored["totalViews"] == replied
    assert stored["flush:base-w0"] > 0 and stored["flush:base-w1"] > 0  # both wrote


async def test_at_a_terminal_the_parent_shows_one_banner_and_ctrl_c_drains_every_worker(
    dynamodb_local_url: str, prefix: str, tmp_path: Path, local_store: Store
):
    shown = await OnTerminal(
        "--workers",
        "2",
        "--dynamodb-endpoint",
        dynamodb_local_url,
        "--table-prefix",
        prefix,
        "--data-dir",
        str(tmp_path / "node"),
        "--flush-interval",
        "3600",
    ).start()
    try:
        await shown.shows("Ctrl-C stops it")
        lines = [" ".join(line.split()) for line in shown.lines]
        assert lines[0] == "starting the workers…"
        port = shown.port()
        assert f"Workers 2 processes on port {port}" in lines
        assert sum(" is ready (" in line for line in lines) == 1  # the parent's, once
        # The workers' routine JSON lines are not shown; their warnings are, as lines.
        assert not [line for line in lines if "{" in line], shown.text
        assert [line for line in lines if " warning any_origin_accepted " in line]
        replied = await view(f"ws://127.0.0.1:{port}/ws", "typed", sockets=8, each=1)
        assert await shown.ctrl_c() == 0
        assert shown.lines[-1] == "stopped.", shown.text
        assert (await item(local_store, "typed"))["totalViews"] == replied
    finally:
        await shown.close()


async def test_workers_drain_and_stop_when_the_parent_is_killed(
    launch: Launch, local_store: Store, tmp_path: Path
):
    served = await launch("--workers", "2", "--flush-interval", "60")
    replied = await view(served.ws, "orphaned")
    await served.kill()  # SIGKILL: no signal forwarded to the workers
    journals = [tmp_path / "node" / f"worker-{i}" / "journal" for i in (0, 1)]
    for journal in journals:
        await eventually(partial(unlocked, journal), bool, timeout=45)
    assert (await item(local_store, "orphaned"))["totalViews"] == replied


async def test_a_worker_that_keeps_dying_at_once_stops_everything_with_code_1(
    dynamodb_local_url: str, prefix: str, tmp_path: Path
):
    (tmp_path / "worker-1").write_text("not a folder")  # its journal cannot be made
    served = Served(
        "--workers",
        "2",
        "--data-dir",
        str(tmp_path),
        "--table-prefix",
        prefix,
        "--dynamodb-endpoint",
        dynamodb_local_url,
    )
    try:
        await served.spawn()
        assert await asyncio.wait_for(served.proc.wait(), 45) == 1  # type: ignore[union-attr]
        await served.stop()
    finally:
        await served.kill()
    deaths = [e for e in served.events("worker_exited") if e["worker"].endswith("-w1")]
    assert len(deaths) == 5 and all(e["code"] == 1 and not e["served"] for e in deaths)
    assert [e["code"] for e in served.events("workers_giving_up")] == [1]
    assert not served.events("listening")
    assert any("died 5 times in a row" in line for line in served.output)
    assert all(gone(e["pid"]) for e in served.events("worker_started"))  # none left behind


async def test_a_worker_that_refuses_to_start_stops_everything_with_code_2(
    dynamodb_local_url: str, prefix: str, tmp_path: Path
):
    journal = tmp_path / "worker-1" / "journal"
    journal.mkdir(parents=True)
    with (journal / "lock").open("a") as held:
        fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)  # another livecount has it
        served = Served(
            "--workers",
            "2",
            "--data-dir",
            str(tmp_path),
            "--table-prefix",
            prefix,
            "--dynamodb-endpoint",
            dynamodb_local_url,
        )
        try:
            await served.spawn()
            assert await asyncio.wait_for(served.proc.wait(), 45) == 2  # type: ignore[union-attr]
            await served.stop()
        finally:
            await served.kill()
    assert len(served.events("worker_exited")) == 1  # no retry: it cannot help
    assert any("in use by another livecount" in line for line in served.output)
    assert all(gone(e["pid"]) for e in served.events("worker_started"))


async def test_a_journal_the_worker_count_would_not_replay_is_not_left_behind(
    dynamodb_local_url: str, prefix: str, local_store: Store, tmp_path: Path
):
    stray = tmp_path / "worker-2" / "journal"
    stray.mkdir(parents=True)
    views = [view_record(Target("post", "stray"), False, "2030-01-01T00", "Stray", None)] * 3
    (stray / "journal-000000000.log").write_bytes(b"".join(v + b"\n" for v in views))
    store = [
        "--data-dir",
        str(tmp_path),
        "--table-prefix",
        prefix,
        "--dynamodb-endpoint",
        dynamodb_local_url,
    ]
    for count in ("2", "1"):
        refused = await asyncio.to_thread(
            subprocess.run,
            [sys.executable, "-m", "livecount", "serve", "--port", "0", "--workers", count, *store],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert refused.returncode == 2, refused.stderr
        assert refused.stderr.startswith(f"livecount: {stray} holds views not yet stored")
        assert "start once with --workers 3" in refused.stderr
    served = await Served("--workers", "3", *store, "--flush-interval", "0.2").start()
    try:
        await eventually(lambda: item(local_store, "stray"), lambda i: i.get("totalViews") == 3)
        assert await served.stop() == 0
    finally:
        await served.kill()


async def _async(value: Any) -> Any:
    return value
