"""Day two while nodes serve: `livecount admin delete` of pages and of every id with a
prefix, against real `livecount serve` processes.

- A load test's posts and pages deleted with `--prefix` while views of them keep
  arriving, stopped with Ctrl-C midway and run again: each id is deleted whole or
  untouched, and every view is taken out once (none left behind, none twice); pages on
  another node are shown what the store holds after.
- On the embedded store, with only `--data-dir`: a page such as `Home_Page` and a
  path's own page are deleted, the load test's ids too, and they are gone from the
  listing; with the store down, each command says so in one line.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
from collections import Counter
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

from livecount.aws import store_requests
from livecount.aws.store import Store
from livecount.aws.store_admin import Operations
from livecount.core.ledger import SITE, Counts, Delta, Row
from livecount.core.moves import count_key, count_table
from livecount.core.pages import Target
from livecount.node import store_record
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from tests.e2e.test_admin import in_process, livecount
from tests.support import ROOT, Launch, Served, eventually, flush_of, http_get, sigint_as_at_a_shell

HOUR = "2026-01-02T03"
TESTED = [Target("post", f"loadtest-{i}") for i in range(60)] + [Target("page", "loadtest-page")]
REAL = [Target("post", "hello"), Target("page", "Home_Page")]
PAGES = ("--page", "/=Home_Page", "--page", "/lt=loadtest-page")  # `/lt` counts as a page


def outcome_of(out: str) -> dict[str, Any]:
    """A command's outcome: its last JSON line (stdout is not a terminal here)."""
    outcome: dict[str, Any] = json.loads(out.splitlines()[-1])
    return outcome


async def counts(store: Store, target: Target) -> Counts:
    got = await store.ddb.get_item(
        TableName=count_table(store.tables, target), Key=count_key(target), ConsistentRead=True
    )
    return store_requests.counts(got.get("Item", {}))


async def hours(store: Store, ref: str) -> Counts:
    items = (
        await store.ddb.query(
            **store_requests.query(store.tables.timeline, "target", ref, consistent=True)
        )
    )["Items"]
    found = [store_requests.counts(i) for i in items]
    return Counts(sum(c.total for c in found), sum(c.unique for c in found))


async def seed(store: Store) -> None:
    """Three views (two unique) of each tested id, five of each real one, as a node
    stores them: counts, an hour, a referrer, the site's rows, the page index."""
    targets = {t: Delta(3, 2) for t in TESTED} | {t: Delta(5, 5) for t in REAL}
    rows: dict[Row, Delta] = {}
    for target, delta in targets.items():
        rows[Row("timeline", target.ref, HOUR)] = delta
        rows[Row("referrer", target.ref, "seed.example")] = Delta(delta.total)
    everything = Counts(
        sum(d.total for d in targets.values()), sum(d.unique for d in targets.values())
    )
    rows[Row("timeline", SITE, HOUR)] = Delta(everything.total, everything.unique)
    rows[Row("referrer", SITE, "seed.example")] = Delta(everything.total)
    await store.pages.register(targets, None)  # as a node does at a first view
    result = await store.flush(flush_of(targets=targets, rows=rows))
    assert not (result.failed_targets or result.failed_rows)


class Viewer:
    """Views of `loadtest-0` and of the page `/lt` (`loadtest-page`), each sent once the
    last was answered, until `stop`; tallied per target as they were sent."""

    def __init__(self, served: Served) -> None:
        self.served = served
        self.stop = asyncio.Event()
        self.sent: Counter[Target] = Counter()
        self.unique: Counter[Target] = Counter()

    async def run(self) -> None:
        async with connect(self.served.ws) as ws:
            n = 0
            while not self.stop.is_set():
                refreshed = n % 3 == 0
                post = n % 2 == 0
                body = {"articleId": "loadtest-0"} if post else {"currentPage": "/lt"}
                await ws.send(json.dumps({"message": "views", "refreshed": refreshed, **body}))
                while json.loads(await asyncio.wait_for(ws.recv(), 20))["message"] != "views":
                    pass
                target = TESTED[0] if post else TESTED[-1]
                self.sent[target] += 1
                self.unique[target] += not refreshed
                n += 1
                await asyncio.sleep(0.002)  # a busy page, not a flood: the CPUs are shared

    async def total(self) -> int:
        return sum(self.sent.values())


class Shown:
    """A page on another node showing the tested post and page: the last count of each."""

    def __init__(self, ws: ClientConnection) -> None:
        self.ws = ws
        self.last: dict[str, int] = {}

    async def read(self) -> None:
        """Until the socket closes (as the test ends, or fails: its own error then shows)."""
        with contextlib.suppress(ConnectionClosed):
            async for raw in self.ws:
                message = json.loads(raw)
                if message.get("message") == "count":
                    self.last[message.get("articleId") or message["pageName"]] = message[
                        "totalViews"
                    ]

    async def now(self) -> dict[str, int]:
        return dict(self.last)


def target_of(named: dict[str, Any]) -> Target:
    """The target an API row or an outcome names, `{"articleId": …}` or `{"pageName": …}`."""
    return (
        Target("post", named["articleId"])
        if "articleId" in named
        else Target("page", named["pageName"])
    )


async def interrupted(argv: list[str]) -> tuple[int, dict[str, Any]]:
    """Run a prefix delete, Ctrl-C it once its progress says an id is done, and return
    its exit code and its outcome line."""
    proc = await asyncio.create_subprocess_exec(
        *argv,
        cwd=ROOT,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        preexec_fn=sigint_as_at_a_shell,
    )
    assert proc.stdout is not None
    lines: list[dict[str, Any]] = []
    try:
        async with asyncio.timeout(120):
            while line := await proc.stdout.readline():
                lines.append(json.loads(line))
                if lines[-1].get("event") == "progress" and lines[-1]["done"] >= 1:
                    proc.send_signal(signal.SIGINT)
                    break
            else:
                raise AssertionError(f"it ended without saying an id was done: {lines}")
            out, _ = await proc.communicate()
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    assert proc.returncode is not None
    return proc.returncode, outcome_of(out.decode())


async def test_a_prefix_delete_racing_live_views_takes_each_view_out_once(
    launch: Launch, local_store: Store, dynamodb_local_url: str, prefix: str, tmp_path: Path
):
    store = local_store
    await seed(store)
    seeded = Counts(3 * len(TESTED), 2 * len(TESTED))
    counter = await launch("--node-id", "a", "--data-dir", str(tmp_path / "a"), *PAGES)
    shower = await launch("--node-id", "b", "--data-dir", str(tmp_path / "b"), *PAGES)
    delete = livecount(
        "admin",
        "delete",
        "--prefix",
        "loadtest-",
        "--dynamodb-endpoint",
        dynamodb_local_url,
        "--table-prefix",
        prefix,
        "--data-dir",
        str(tmp_path / "admin"),
    )
    viewer = Viewer(counter)
    removed = Counts(0, 0)  # what the runs said they took out
    async with asyncio.TaskGroup() as tasks, AsyncExitStack() as pages:
        ws = await pages.enter_async_context(connect(shower.ws))
        await ws.send(
            json.dumps(
                {
                    "message": "subscribe",
                    "articleIds": ["loadtest-0"],
                    "pageNames": ["loadtest-page"],
                }
            )
        )
        shown = Shown(ws)
        tasks.create_task(shown.read())
        viewing = tasks.create_task(viewer.run())
        await eventually(viewer.total, lambda n: n >= 50)

        # Ctrl-C midway: the ids under way finish, none other begins.
        code, stopped = await interrupted(delete)
        assert code == 130 and stopped["stopped"], stopped
        assert 0 < len(stopped["deleted"]) < len(TESTED) and stopped["partWay"] == []
        assert len(stopped["deleted"]) + len(stopped["left"]) == len(TESTED)
        removed = add(removed, stopped)
        ops = Operations(store)
        untouched = [t for t in map(target_of, stopped["left"]) if t in TESTED[1:-1]]
        for target in untouched:  # as seeded (no views come to these), no operation record
            assert await counts(store, target) == Counts(3, 2), target
            assert await ops.current(target) is None, target
        for target in map(target_of, stopped["deleted"]):
            assert (await ops.current(target)).state == "done"  # type: ignore[union-attr]

        code, out, err = await in_process(delete)  # the rest, views still arriving
        assert code == 0, err
        assert set(map(target_of, outcome_of(out)["deleted"])) >= set(untouched)
        removed = add(removed, outcome_of(out))
        viewer.stop.set()
        await viewing
        sent = Counts(sum(viewer.sent.values()), sum(viewer.unique.values()))

        # Views that reached the node while a run moved their id stay on it (in its
        # count, in its rows, or both: the node writes them apart). Once the node stored
        # them all, the ids hold what no run took out yet, and the site their rows.
        async def stored() -> tuple[Counts, Counts]:
            held = await asyncio.gather(*(counts(store, t) for t in TESTED))
            rows = await asyncio.gather(*(hours(store, t.ref) for t in TESTED))
            site = await hours(store, SITE)
            return total(held), Counts(
                site.total - total(rows).total, site.unique - total(rows).unique
            )

        left = Counts(
            seeded.total + sent.total - removed.total, seeded.unique + sent.unique - removed.unique
        )
        real = Counts(10, 10)
        await eventually(stored, lambda got: got == (left, real), timeout=30)
        code, out, err = await in_process(delete)  # takes them out, count and rows
        if code == 0:
            removed = add(removed, outcome_of(out))
        else:  # nothing came after the second run's moves: nothing is left to delete
            assert code == 1 and "no post or page with views" in err, err

        # Every view of the tested ids taken out once: none left, none twice.
        assert removed == Counts(seeded.total + sent.total, seeded.unique + sent.unique)
        assert await hours(store, SITE) == real  # the site: its real views only
        for target in TESTED:
            assert await counts(store, target) == Counts(0, 0), target
            assert await hours(store, target.ref) == Counts(0, 0), target
        assert sorted(await store.tracked()) == sorted(REAL)
        assert await store.pages.count() == len(REAL)  # the index's count, in step
        for target in REAL:
            assert await counts(store, target) == Counts(5, 5)
        # Pages on the other node are shown what the store holds now: nothing (a reset
        # made the node forget the larger counts it showed, posts and pages alike).
        await eventually(shown.now, lambda c: c == {"loadtest-0": 0, "loadtest-page": 0})
        status, _, body = await asyncio.to_thread(http_get, f"{shower.http}/api/pages")
        assert status == 200 and set(map(target_of, json.loads(body))) == set(REAL), body


def add(removed: Counts, outcome: dict[str, Any]) -> Counts:
    """`removed` and the views a run's outcome says it took out."""
    return Counts(removed.total + outcome["totalViews"], removed.unique + outcome["uniqueViews"])


def total(counts: list[Counts]) -> Counts:
    return Counts(sum(c.total for c in counts), sum(c.unique for c in counts))


async def test_on_the_embedded_store_pages_and_a_load_test_are_deleted_while_it_serves(
    tmp_path: Path,
):
    """Issue 21: `admin delete Home_Page` said "never counted", and `--prefix loadtest-`
    refused while the server ran."""
    data = tmp_path / "data"
    node = await Served(
        "--data-dir",
        str(data),
        "--flush-interval",
        "0.2",
        "--report-interval",
        "0.2",
        "--public",
        "all",
    ).start()

    async def cli(*args: str) -> tuple[int, str, str]:
        return await in_process(livecount("admin", *args, "--data-dir", str(data)))

    try:
        paths = [
            "/",
            "/",
            "/about",
            "/posts/hello",
            "/posts/loadtest-0",
            "/posts/loadtest-1",
            "/posts/loadtest-1",
        ]
        async with connect(node.ws) as ws:
            for path in paths:
                await ws.send(json.dumps({"message": "views", "currentPage": path}))
                while json.loads(await ws.recv())["message"] != "views":
                    pass
        record = store_record.read(data)
        assert record is not None
        async with Store.open(record.endpoint, record.region, record.table_prefix) as store:
            stored = {
                Target("page", "Home_Page"): 2,
                Target("page", "/about"): 1,
                Target("post", "hello"): 1,
                Target("post", "loadtest-1"): 2,
            }

            async def totals() -> dict[Target, int]:  # what the commands act on: the store
                return {t: (await counts(store, t)).total for t in stored}

            await eventually(totals, lambda found: found == stored)

            code, out, err = await cli("delete", "Home_Page")
            assert code == 1 and err.count("\n") == 1, err
            assert "a page of that name does: livecount admin delete --page Home_Page" in err
            code, out, err = await cli("delete", "--page", "Home_Page")
            assert code == 0 and "Deleted the page 'Home_Page'" in out, err
            code, out, err = await cli("delete", "--page", "/about")
            assert code == 0 and "2 items emptied, 1 views" in out, (out, err)
            code, out, err = await cli("delete", "--prefix", "loadtest-", "--dry-run")
            looked = outcome_of(out)
            assert code == 0 and looked["dryRun"] and looked["totalViews"] == 3, out
            assert await counts(store, Target("post", "loadtest-1")) == Counts(2, 2)
            code, out, err = await cli("delete", "--prefix", "loadtest-")
            assert code == 0, err
            done = outcome_of(out)
            assert sorted(d["articleId"] for d in done["deleted"]) == ["loadtest-0", "loadtest-1"]
            assert (done["event"], done["totalViews"]) == ("delete", 3)

        # Gone from the listing and from the node's own counts once the feed's reset
        # reached it (the listing is the node's catalog, kept by the feed).
        def listed(answer: tuple[int, Any, bytes]) -> list[str | None]:
            return [r.get("articleId") for r in json.loads(answer[2])] if answer[0] == 200 else []

        await eventually(
            lambda: asyncio.to_thread(http_get, f"{node.http}/api/pages"),
            lambda answer: listed(answer) == ["hello"],
        )

        async def statuses() -> list[int]:
            asked = ("/api/pages/loadtest-1", "/api/pages/Home_Page?kind=page")
            return [(await asyncio.to_thread(http_get, f"{node.http}{p}"))[0] for p in asked]

        await eventually(statuses, lambda found: found == [404, 404])

        # The store goes down under the node: every command says so in one line.
        os.kill(node.events("dynamodb_local_started")[0]["pid"], signal.SIGKILL)
        commands = [
            ("delete", "x"),
            ("delete", "--page", "x"),
            ("delete", "--prefix", "x"),
            ("rename", "a", "b"),
            ("rename", "--page", "a", "b"),
            ("title", "a", "T"),
        ]  # at once: each tries the store a few times before it says so
        for args, (code, out, err) in zip(
            commands, await asyncio.gather(*(cli(*args) for args in commands)), strict=True
        ):
            assert code == 2 and out == "" and err.count("\n") == 1, (args, out, err)
            assert "Could not connect" in err, (args, err)
    finally:
        await node.kill()
