"""`livecount backup` and `livecount restore` against real `livecount serve` processes.

- docs/DEPLOY.md's Backups section, line by line, on the embedded store: the backup
  holds views the node had only in its journal; the restored node shows the same
  reports and takes the same token; with the store down, each command says so in one
  line.
- Under load: the backup holds every view acknowledged before it began, and none that
  was not acknowledged by its end; the restore gives exactly the backup.
- Ctrl-C: a backup leaves no file, a restore takes back what it wrote.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import shlex
import shutil
import signal
from collections import Counter
from pathlib import Path
from typing import Any

from websockets.asyncio.client import connect

from tests.e2e.test_admin import in_process, livecount, run
from tests.support import ROOT, Launch, Served, eventually, http_get, sigint_as_at_a_shell

HOSTS = ["a.example", "b.example", "c.example"]
ARTICLES = [f"post-{i}" for i in range(4)]


def records(path: Path) -> list[dict[str, Any]]:
    """A backup's records, without its first line (which says when it was taken)."""
    lines = path.read_text().splitlines()
    assert json.loads(lines[0])["format"] == "livecount"
    return [json.loads(line) for line in lines[1:]]


class Tally:
    """Views acknowledged, per article: totals, uniques, hosts."""

    def __init__(self) -> None:
        self.total: Counter[str] = Counter()
        self.unique: Counter[str] = Counter()
        self.hosts: Counter[tuple[str, str]] = Counter()

    def copy(self) -> Tally:
        copied = Tally()
        copied.total, copied.unique = Counter(self.total), Counter(self.unique)
        copied.hosts = Counter(self.hosts)
        return copied


async def views(
    url: str, tally: Tally, stop: asyncio.Event, n: int | None = None, offset: int = 0
) -> None:
    """Views, each sent once the last was answered, until `stop` (or `n` of them)."""
    async with connect(url) as ws:
        i = offset
        while not stop.is_set() and (n is None or i - offset < n):
            article, host = ARTICLES[i % len(ARTICLES)], HOSTS[i % len(HOSTS)]
            refreshed = i % 3 == 0
            await ws.send(
                json.dumps(
                    {
                        "message": "views",
                        "articleId": article,
                        "articleTitle": article.title(),
                        "refreshed": refreshed,
                        "referrer": f"https://{host}/x",
                    }
                )
            )
            while json.loads(await asyncio.wait_for(ws.recv(), 20))["message"] != "views":
                pass
            tally.total[article] += 1
            tally.unique[article] += not refreshed
            tally.hosts[(article, host)] += 1
            i += 1
            await asyncio.sleep(0.002)  # a busy page, not a flood: the CPUs are shared


def api(served: Served, path: str, token: str) -> Any:
    status, _, body = http_get(f"{served.http}{path}", {"Authorization": f"Bearer {token}"})
    assert status == 200, (path, status, body)
    return json.loads(body)


def reports(served: Served, token: str) -> dict[str, Any]:
    """What the dashboard shows: every page, the referrers and timeline of each and of
    the site."""
    paths = ["/api/pages", "/api/referrers", "/api/timeline?bucket=hour"]
    for article in ARTICLES:
        paths += [
            f"/api/referrers?articleId={article}",
            f"/api/timeline?articleId={article}&bucket=hour",
        ]
    return {path: api(served, path, token) for path in paths}


# -- DEPLOY.md, line by line ----------------------------------------------------------------
def deploy_steps() -> list[str]:
    """The lines of docs/DEPLOY.md's backup steps, comments left out."""
    text = (ROOT / "docs" / "DEPLOY.md").read_text()
    block = re.search(r"<!-- backup-steps:[^\n]*-->\n```sh\n(.*?)```", text, re.S)
    assert block, "docs/DEPLOY.md has no backup-steps block"
    return [line for line in block.group(1).splitlines() if line and not line.startswith("#")]


async def test_the_backup_steps_of_deploy_md_on_the_embedded_store(tmp_path: Path) -> None:
    places = {
        "/var/lib/livecount-new": tmp_path / "new",
        "/var/lib/livecount": tmp_path / "data",
        "/var/backups/livecount": tmp_path / "backups",
    }
    (tmp_path / "backups").mkdir()

    def here(word: str) -> str:
        for path, local in places.items():
            word = word.replace(path, str(local))
        return word

    # The node, everything default but its data dir: views stay in its journal (no
    # flush for a minute), so only the backup's sync can put them in the file.
    node = await Served(
        "--data-dir",
        str(places["/var/lib/livecount"]),
        "--flush-interval",
        "60",
        "--report-interval",
        "60",
    ).start()
    restored: Served | None = None
    try:
        tally = Tally()
        await views(node.ws, tally, asyncio.Event(), n=24)
        token = (places["/var/lib/livecount"] / "admin-token").read_text().strip()
        for line in deploy_steps():
            argv = [here(w) for w in shlex.split(line)]
            if argv[0] == "cp":
                shutil.copy(argv[1], argv[2])
            elif argv[:2] == ["livecount", "serve"]:
                restored = await Served(*argv[2:]).start()
            else:
                code, out, err = await run(livecount(*argv[1:]))
                assert code == 0, (line, out, err)
                done = json.loads(out.splitlines()[-1])  # off a terminal: JSON lines
                assert done["event"] == argv[1]
                if argv[1] == "backup":
                    assert done["synced"] == [
                        json.loads((places["/var/lib/livecount"] / "store.json").read_text())[
                            "nodeId"
                        ]
                    ]
                    counts = {
                        r["target"]: r["totalViews"]
                        for r in records(Path(argv[2]))
                        if r["record"] == "count"
                    }
                    assert counts == {f"post#{a}": n for a, n in tally.total.items()}
        assert restored is not None
        # The same reports, and the same token opens them.
        assert reports(restored, token) == reports(node, token)
        assert sum(row["totalViews"] for row in api(restored, "/api/pages", token)) == 24

        # The store goes down under the serving node: the backup says so in one line.
        java = node.events("dynamodb_local_started")[0]["pid"]
        os.kill(java, signal.SIGKILL)
        backup = tmp_path / "backups" / "down.ndjson"
        code, out, err = await run(
            livecount("backup", str(backup), "--data-dir", str(places["/var/lib/livecount"]))
        )
        assert code == 2 and out == "" and err.count("\n") == 1, err
        assert "Could not connect" in err
        assert not backup.exists()
    finally:
        for served in (node, restored):
            if served is not None:
                await served.kill()


# -- under load -----------------------------------------------------------------------------
async def test_a_backup_under_load_holds_what_was_acknowledged_and_restores_exactly(
    launch: Launch, dynamodb_local_url: str, prefix: str, tmp_path: Path
) -> None:
    served = await launch()
    data = tmp_path / "node"
    tally, stop = Tally(), asyncio.Event()
    load = [asyncio.create_task(views(served.ws, tally, stop, offset=k)) for k in range(4)]
    try:

        async def acknowledged() -> int:
            return sum(tally.total.values())

        await eventually(acknowledged, lambda n: n >= 200, timeout=60)
        before = tally.copy()
        backup = tmp_path / "backup.ndjson"
        code, out, err = await in_process(livecount("backup", str(backup), "--data-dir", str(data)))
        after = tally.copy()
        assert code == 0, err
        assert sum(after.total.values()) > sum(before.total.values())  # views came meanwhile
    finally:
        stop.set()
        await asyncio.gather(*load)
    saved = records(backup)
    count = {r["target"]: r for r in saved if r["record"] == "count"}
    hours: Counter[tuple[str, str]] = Counter()
    hosts: Counter[tuple[str, str]] = Counter()
    for r in saved:
        if r["record"] == "timeline":
            hours[(r["target"], "total")] += r["totalViews"]
            hours[(r["target"], "unique")] += r["uniqueViews"]
        elif r["record"] == "referrer":
            hosts[(r["target"], r["host"])] += r["views"]
    for article in ARTICLES:
        ref = f"post#{article}"
        for kind, low, high in (
            ("total", before.total, after.total),
            ("unique", before.unique, after.unique),
        ):
            held = count[ref][f"{kind}Views"]
            assert low[article] <= held <= high[article], (article, kind)
            assert low[article] <= hours[(ref, kind)] <= high[article], (article, kind)
        for host in HOSTS:
            assert (
                before.hosts[(article, host)] <= hosts[(ref, host)] <= after.hosts[(article, host)]
            ), (article, host)

    # Restored into a store of its own: exactly the backup, record for record.
    other = f"{prefix}restored_"
    where = [
        "--dynamodb-endpoint",
        dynamodb_local_url,
        "--table-prefix",
        other,
        "--data-dir",
        str(tmp_path / "new"),
    ]
    code, out, err = await in_process(livecount("restore", str(backup), *where))
    assert code == 0, err
    assert json.loads(out.splitlines()[-1])["views"] == sum(r["totalViews"] for r in count.values())
    code, out, err = await in_process(livecount("export", "--format", "ndjson", *where))
    assert code == 0, err
    again = [json.loads(line) for line in out.splitlines()[1:]]
    assert sorted(again, key=json.dumps) == sorted(saved, key=json.dumps)
    node = await launch(*where, shared=False)
    token = (data / "admin-token").read_text().strip()
    pages = {row["articleId"]: row["totalViews"] for row in api(node, "/api/pages", token)}
    assert pages == {ref[5:]: r["totalViews"] for ref, r in count.items()}


# -- Ctrl-C ---------------------------------------------------------------------------------
async def progress(proc: asyncio.subprocess.Process, phase: str) -> None:
    """Read the command's JSON lines until one says `phase` is under way."""
    assert proc.stdout is not None
    while line := await asyncio.wait_for(proc.stdout.readline(), 60):
        event = json.loads(line)
        if event.get("event") == "progress" and event["phase"] == phase:
            return
    raise AssertionError(f"no {phase} progress before the end")


async def test_ctrl_c_stops_a_backup_and_leaves_no_file(launch: Launch, tmp_path: Path) -> None:
    served = await launch("--lease-time", "30")
    await views(served.ws, Tally(), asyncio.Event(), n=3)
    served.proc.send_signal(signal.SIGSTOP)  # type: ignore[union-attr]
    try:  # a node stuck: the backup waits for its answer
        backup = tmp_path / "backup.ndjson"
        proc = await asyncio.create_subprocess_exec(
            *livecount("backup", str(backup), "--data-dir", str(tmp_path / "node")),
            cwd=ROOT,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            preexec_fn=sigint_as_at_a_shell,
        )
        await progress(proc, "sync")
        proc.send_signal(signal.SIGINT)
        _, err = await asyncio.wait_for(proc.communicate(), 30)
    finally:
        served.proc.send_signal(signal.SIGCONT)  # type: ignore[union-attr]
    assert proc.returncode == 130
    assert err.decode().splitlines() == [
        f"livecount: backup stopped: nothing written ({backup} untouched)"
    ]
    assert list(tmp_path.glob("*backup.ndjson*")) == []


async def test_ctrl_c_stops_a_restore_and_takes_back_what_it_wrote(
    dynamodb_local_url: str, prefix: str, tmp_path: Path
) -> None:
    backup = tmp_path / "big.ndjson"
    lines = [{"record": "export", "format": "livecount", "version": 1, "exportedAt": "x"}]
    for i in range(20):
        lines.append(
            {"record": "count", "target": f"post#p{i}", "totalViews": 99, "uniqueViews": 9}
        )
        lines += [
            {
                "record": "timeline",
                "target": f"post#p{i}",
                "hour": f"2030-01-01T{h:02}",
                "totalViews": 1,
                "uniqueViews": 1,
            }
            for h in range(24)
        ]
    backup.write_text("".join(json.dumps(line) + "\n" for line in lines))
    where = [
        "--dynamodb-endpoint",
        dynamodb_local_url,
        "--table-prefix",
        prefix,
        "--data-dir",
        str(tmp_path / "new"),
    ]
    proc = await asyncio.create_subprocess_exec(
        *livecount("restore", str(backup), *where),
        cwd=ROOT,
        preexec_fn=sigint_as_at_a_shell,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    await progress(proc, "write")
    proc.send_signal(signal.SIGINT)
    _, said = await asyncio.wait_for(proc.communicate(), 120)
    assert proc.returncode == 130
    assert said.decode().splitlines()[-1] == (
        "livecount: restore stopped: what it had written is taken back, the store is empty"
    )
    code, out, err = await in_process(livecount("export", "--format", "ndjson", *where))
    assert code == 0 and out.count("\n") == 1, out  # the header alone: nothing stored
    code, out, err = await in_process(livecount("restore", str(backup), *where))  # empty: it may
    assert code == 0, err
    assert json.loads(out.splitlines()[-1])["views"] == 20 * 99
