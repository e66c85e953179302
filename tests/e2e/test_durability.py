"""Only views on disk are answered; counts never go backwards after a crash; what the
store refuses is set aside and never stops a node from starting."""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

import msgspec
import pytest
from livecount.aws.store import Store
from livecount.core import journal
from livecount.core.pages import Target
from livecount.core.report_rows import host_of
from websockets.asyncio.client import ClientConnection, connect

from tests.support import Launch, eventually, http_get


async def reply_to(ws: ClientConnection, message: dict[str, object]) -> dict[str, object]:
    """Send one message; return its answer, skipping pushes."""
    await ws.send(json.dumps(message))
    while True:
        answer: dict[str, object] = json.loads(await ws.recv())
        if answer["message"] != "count" or message["message"] == "subscribe":
            return answer


async def stored(store: Store, article: str) -> int:
    items = (await store.ddb.scan(TableName=store.tables.writer, ConsistentRead=True))["Items"]
    return next((int(i["totalViews"]["N"]) for i in items if i["articleId"]["S"] == article), 0)


@pytest.fixture
def tiny_disk(tmp_path: Path) -> Iterator[Path]:
    """A 64 KiB tmpfs for the node's journal: a real disk that really fills up."""
    folder = tmp_path / "node" / "journal"
    folder.mkdir(parents=True)
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(folder)],
        capture_output=True,
        text=True,
        check=False,
    )
    if mounted.returncode != 0:
        pytest.skip(
            f"cannot mount a tmpfs here ({mounted.stderr.strip()}); "
            "tests/unit/test_journal.py covers the failing disk through its seam"
        )
    try:
        yield folder
    finally:
        subprocess.run(["umount", "-l", str(folder)], check=False)


async def test_a_full_disk_refuses_views_says_so_and_recovers(
    launch: Launch, local_store: Store, tiny_disk: Path
):
    # The journal empties itself at the first flush once the refused disk is stored: a
    # flush a second would often come between the refusal and the /healthz read below.
    served = await launch("--flush-interval", "4")
    async with connect(served.ws) as ws:
        first = await reply_to(ws, {"message": "views", "articleId": "disk"})
        assert first["totalViews"] == 1
        filler = tiny_disk / "filler"
        with filler.open("wb", buffering=0) as f, pytest.raises(OSError):
            while True:
                f.write(b"x" * 4096)

        # The journal's last page may still have room: views go on until it is full.
        accepted, refused = 1, None
        for _ in range(500):
            answer = await reply_to(ws, {"message": "views", "articleId": "disk"})
            if answer["message"] == "error":
                refused = answer
                break
            accepted += 1
            assert answer["totalViews"] == accepted
        assert refused is not None and refused["error"] == "unavailable", refused
        status, _, body = await asyncio.to_thread(http_get, served.http + "/healthz")
        assert status == 503 and "journal_failing" in json.loads(body)["problems"]
        _, _, metrics = await asyncio.to_thread(http_get, served.http + "/metrics")
        assert b"livecount_journal_healthy 0.0" in metrics

        # Nobody frees the disk: once all it holds is stored, the journal empties
        # itself in place, and views are taken again.
        async def retry() -> dict[str, object]:
            return await reply_to(ws, {"message": "views", "articleId": "disk"})

        again = await eventually(
            retry, lambda answer: answer["message"] == "views", timeout=30, interval=0.2
        )
        assert again["totalViews"] == accepted + 1  # the refused views were never counted
        filler.unlink()
    await eventually(lambda: stored(local_store, "disk"), lambda n: n == accepted + 1)
    healthy = await eventually(
        lambda: asyncio.to_thread(http_get, served.http + "/healthz"),
        lambda answer: answer[0] == 200,
        timeout=10,
    )
    assert json.loads(healthy[2])["status"] == "ok"
    assert await served.stop() == 0
    assert served.events("journal_failed") and served.events("journal_recovered")


async def test_counts_never_go_backwards_after_a_crash(launch: Launch, local_store: Store):
    served = await launch()
    async with connect(served.ws) as ws:
        for _ in range(10):
            await reply_to(ws, {"message": "views", "articleId": "phoenix"})
    await eventually(lambda: stored(local_store, "phoenix"), lambda n: n == 10)
    await served.stop()
    # A node that flushes rarely: the next view is on disk, not yet stored, at the kill.
    slow = await launch("--flush-interval", "600")
    async with connect(slow.ws) as ws:
        assert (await reply_to(ws, {"message": "views", "articleId": "phoenix"}))[
            "totalViews"
        ] == 11
    await slow.stop(signal.SIGKILL)
    again = await launch("--flush-interval", "600")
    async with connect(again.ws) as ws:
        count = await reply_to(ws, {"message": "subscribe", "articleIds": ["phoenix"]})
        assert count["totalViews"] == 11, count  # not 1: the replayed view alone
        assert (await reply_to(ws, {"message": "views", "articleId": "phoenix"}))[
            "totalViews"
        ] == 12
    await again.stop()
    await eventually(lambda: stored(local_store, "phoenix"), lambda n: n == 12)


async def test_a_write_the_store_refuses_is_set_aside_and_the_node_starts(
    launch: Launch, local_store: Store, tmp_path: Path
):
    """A journal holding a view whose keys DynamoDB refuses (as an older livecount
    could write) must not keep the node from serving, nor block other views."""
    folder = tmp_path / "node" / "journal"
    folder.mkdir(parents=True)
    poison = "p" * 1100  # a Referrer sort key over DynamoDB's 1,024 bytes
    hour = "2026-11-25T10"
    lines = [
        journal.view_record(Target("post", "victim"), False, hour, None, poison),
        journal.view_record(Target("post", "bystander"), False, hour, None, None),
    ]
    (folder / "journal-000000000.log").write_bytes(b"".join(line + b"\n" for line in lines))
    served = await launch()  # would never listen before: recovery retried for ever
    await eventually(lambda: stored(local_store, "bystander"), lambda n: n == 1)
    await eventually(lambda: stored(local_store, "victim"), lambda n: n == 1)
    letters = (tmp_path / "node" / "dead-letters.ndjson").read_bytes().splitlines()
    refused = [msgspec.json.decode(line) for line in letters]
    # its all-time row and its rows of the hour, the day and the month
    assert {(r["table"], host_of(r["sort"])) for r in refused} == {("referrer", poison)}
    assert all(r["totalViews"] == 1 and "ValidationException" in r["error"] for r in refused)
    _, _, metrics = await asyncio.to_thread(http_get, served.http + "/metrics")
    assert f"livecount_dead_letters_total {len(refused)}.0".encode() in metrics
    async with connect(served.ws) as ws:
        answer = await reply_to(ws, {"message": "views", "articleId": "bystander"})
        assert answer["totalViews"] == 2
    assert await served.stop() == 0
    assert not served.events("flush_failed") and not served.events("shutdown_unflushed")
    restarted = await launch()
    assert (
        not restarted.events("journal_replayed")
        or restarted.events("journal_replayed")[0]["unstored"] == 0
    )
    assert await restarted.stop() == 0


async def test_a_node_without_a_table_prefix_restarts_after_a_crash(launch: Launch):
    """The journal is bound to its store as `endpoint region prefix`: with no prefix
    that ends in a space, and a restart must still recognise its own tables."""
    served = await launch("--flush-interval", "600", "--table-prefix", "")
    async with connect(served.ws) as ws:
        first = await reply_to(ws, {"message": "views", "articleId": "no-prefix"})
    await served.stop(signal.SIGKILL)
    again = await launch("--table-prefix", "")
    async with connect(again.ws) as ws:
        count = await reply_to(ws, {"message": "subscribe", "articleIds": ["no-prefix"]})
        assert count["totalViews"] == first["totalViews"]
    assert await again.stop() == 0
